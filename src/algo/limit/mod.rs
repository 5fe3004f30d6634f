//! Rate limiters: one file per local algorithm, one small trait
//! ([`RateLimiter`]), and [`global`] for one limit shared by several gateways
//! through a store.
//!
//! A limiter answers `check(key, now)` with one decision for that key, taken
//! atomically (one compare-and-swap on a cell, or one short per-bucket lock in
//! `global`); never check-then-act. Per-key state lives in a bounded table
//! ([`crate::algo::cells`], or `global`'s own), so a flood of distinct keys
//! cannot grow memory. The local limiters err towards denying: races and
//! rounding may over-count, never under-count (`global` documents its own
//! error bound). The specs and their bounds come from the protocol crate;
//! this module builds and runs limiters, it parses and renders nothing.

#![deny(missing_docs)]

use std::sync::Arc;

use api_gateway_protocol::{rate_interval_ns, LimitSpec, MAX_RATE_PER_SEC, MAX_SPAN_NS};

use super::cells::Evictions;
use super::Nanos;

pub mod fixed_window;
pub mod global;
pub mod leaky_bucket;
pub mod shadow;
pub mod sliding_counter;
pub mod sliding_log;
pub mod token_bucket;

pub use fixed_window::FixedWindow;
pub use leaky_bucket::LeakyBucket;
pub use sliding_counter::SlidingCounter;
pub use sliding_log::SlidingLog;
pub use token_bucket::TokenBucket;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward now.
    Allow,
    /// Forward after this long (leaky bucket: the request is queued).
    Delay(Nanos),
    /// Reject with 429.
    Deny,
}

/// A decision plus what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Admit, queue, or reject.
    pub verdict: Verdict,
    /// The configured limit (requests per window, or bucket capacity).
    pub limit: u64,
    /// Requests left before the next rejection (after this one).
    pub remaining: u64,
    /// Time until the limit fully resets (window end, bucket full).
    pub reset_after: Nanos,
    /// On `Deny`: how long until a request would be admitted (never zero).
    pub retry_after: Nanos,
}

impl Decision {
    /// An admission (`Allow`, or `Delay(d)` when `d > 0`).
    pub fn admit(delay: Nanos, limit: u64, remaining: u64, reset_after: Nanos) -> Decision {
        Decision {
            verdict: if delay == Nanos::ZERO {
                Verdict::Allow
            } else {
                Verdict::Delay(delay)
            },
            limit,
            remaining,
            reset_after,
            retry_after: Nanos::ZERO,
        }
    }

    /// A denial; `retry_after` is raised to at least 1 ns so a 429 never
    /// says "retry in 0".
    pub fn deny(limit: u64, reset_after: Nanos, retry_after: Nanos) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            limit,
            remaining: 0,
            reset_after,
            retry_after: Nanos(retry_after.0.max(1)),
        }
    }

    /// Whether the request goes through (now or after a delay).
    pub fn is_admitted(&self) -> bool {
        self.verdict != Verdict::Deny
    }
}

/// One rate-limiting algorithm over a bounded table of client keys.
pub trait RateLimiter: Send + Sync {
    /// Decides for the request of `key` (a hash of the client identity) at `now`.
    fn check(&self, key: u64, now: Nanos) -> Decision;
    /// The spec this limiter was built from (name and parameters).
    fn spec(&self) -> &LimitSpec;
}

/// Builds the limiter for `spec`, tracking at most `max_keys` clients
/// (the sliding log may track fewer: see [`sliding_log::MAX_TABLE_BYTES`])
/// and counting live keys evicted from its table into `evictions`.
pub fn build(spec: &LimitSpec, max_keys: usize, evictions: &Evictions) -> Arc<dyn RateLimiter> {
    let ev = evictions.clone();
    match *spec {
        LimitSpec::FixedWindow { limit, window_ms } => {
            Arc::new(FixedWindow::new(limit, Nanos::from_millis(window_ms), max_keys).counting(ev))
        }
        LimitSpec::SlidingLog { limit, window_ms } => {
            Arc::new(SlidingLog::new(limit, Nanos::from_millis(window_ms), max_keys).counting(ev))
        }
        LimitSpec::SlidingCounter { limit, window_ms } => Arc::new(
            SlidingCounter::new(limit, Nanos::from_millis(window_ms), max_keys).counting(ev),
        ),
        LimitSpec::TokenBucket {
            capacity,
            refill_per_sec,
        } => Arc::new(TokenBucket::new(capacity, refill_per_sec, max_keys).counting(ev)),
        LimitSpec::LeakyBucket {
            capacity,
            leak_per_sec,
        } => Arc::new(LeakyBucket::new(capacity, leak_per_sec, max_keys).counting(ev)),
    }
}

/// Nanoseconds between two events at `per_sec` events per second, rounded
/// UP so rounding can only slow the rate (never admit more than configured):
/// [`rate_interval_ns`], the function that also validates specs. Rates it
/// refuses (never in a validated spec) degrade without panicking or
/// saturating: faster than 1e9/s to 1 ns, anything else (slower than one per
/// day, zero, negative, NaN) to one day, the slowest accepted rate.
pub fn interval_ns(per_sec: f64) -> u64 {
    match rate_interval_ns(per_sec) {
        Some(t) => t,
        None if per_sec > MAX_RATE_PER_SEC => 1,
        None => MAX_SPAN_NS,
    }
}

/// `capacity * interval`, computed without overflow and clamped to `cap`:
/// a derived span (queue wait, refill time) that validation keeps below
/// `cap`, so the clamp only bites for specs built without validation, where
/// it errs towards denying (a shorter queue, a smaller burst).
pub(crate) fn span_ns(capacity: u64, interval: u64, cap: u64) -> u64 {
    capacity.checked_mul(interval).map_or(cap, |s| s.min(cap))
}

/// A window length in ns, at least 1 (validated specs never give 0; this
/// keeps a bad direct construction from dividing by zero).
pub(crate) fn window_ns(window: Nanos) -> u64 {
    window.0.max(1)
}

/// Shared test helpers: exact-total stress, key floods, span counting.
#[cfg(test)]
pub(crate) mod test_kit {
    use super::*;
    use std::sync::Barrier;

    /// Largest number of `times` (sorted ascending) inside any half-open
    /// span `[t, t + span)`.
    pub fn max_in_span(times: &[u64], span: u64) -> usize {
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] >= times[lo].saturating_add(span) {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    /// `threads` threads each call `check(key, now)` `per_thread` times with
    /// the same `now`; returns every decision.
    pub fn hammer(
        l: &Arc<dyn RateLimiter>,
        threads: usize,
        per_thread: usize,
        key: u64,
        now: Nanos,
    ) -> Vec<Decision> {
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let l = Arc::clone(l);
                let b = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    b.wait();
                    (0..per_thread)
                        .map(|_| l.check(key, now))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("stress thread panicked"))
            .collect()
    }

    /// Number of admitted decisions.
    pub fn admitted(ds: &[Decision]) -> usize {
        ds.iter().filter(|d| d.is_admitted()).count()
    }

    /// 100k distinct keys through `l`, 1 µs apart; returns how many were
    /// admitted (each is a first request of a fresh key, so: all of them).
    pub fn flood(l: &dyn RateLimiter, start: Nanos) -> usize {
        churn(l, 100_000, start, Nanos(1_000))
    }

    /// `n` distinct one-request keys through `l`, `step` apart from `start`;
    /// returns how many were admitted.
    pub fn churn(l: &dyn RateLimiter, n: u64, start: Nanos, step: Nanos) -> usize {
        (0..n)
            .filter(|&i| {
                let key = i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x55;
                l.check(key, start.saturating_add(Nanos(i.saturating_mul(step.0))))
                    .is_admitted()
            })
            .count()
    }

    /// Issue 10's scenario against any limiter of `slots` slots: a victim
    /// key is driven to its limit at `t0`, then 100x `slots` fresh
    /// one-request keys pass within `span`; returns how many of 10 further
    /// requests of the victim, right after the churn, are admitted.
    pub fn extra_after_churn(l: &dyn RateLimiter, slots: usize, t0: Nanos, span: Nanos) -> usize {
        let victim = 0xDEAD_BEEF_u64;
        let mut admitted = 0;
        while l.check(victim, t0).is_admitted() {
            admitted += 1;
            assert!(admitted < 1_000_000, "victim never limited");
        }
        let n = 100 * slots as u64;
        let step = Nanos(span.0 / n);
        assert_eq!(churn(l, n, t0, step), n as usize, "fresh keys are admitted");
        let end = t0.saturating_add(span);
        (0..10)
            .filter(|_| l.check(victim, end).is_admitted())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_dispatches_on_spec() {
        for name in api_gateway_protocol::LIMITER_NAMES {
            let spec = LimitSpec::default_for(name).unwrap();
            let l = build(&spec, 64, &Evictions::default());
            assert_eq!(l.spec(), &spec);
            assert_eq!(l.spec().name(), name);
            assert!(l.check(42, Nanos::from_secs(1)).is_admitted());
        }
    }

    #[test]
    fn interval_rounds_up_and_never_saturates() {
        assert_eq!(interval_ns(10.0), 100_000_000);
        assert_eq!(interval_ns(3.0), 333_333_334);
        assert_eq!(interval_ns(1e9), 1);
        assert_eq!(interval_ns(2e9), 1);
        assert_eq!(interval_ns(f64::INFINITY), 1);
        assert_eq!(interval_ns(1.0 / 86_400.0), MAX_SPAN_NS);
        // Unvalidated rates: the slowest accepted rate, never u64::MAX.
        for bad in [1e-15, 1e-30, 0.0, -1.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(interval_ns(bad), MAX_SPAN_NS, "{bad}");
        }
    }

    #[test]
    fn spans_clamp_instead_of_overflowing() {
        assert_eq!(span_ns(3, 7, 100), 21);
        assert_eq!(span_ns(30, 7, 100), 100);
        assert_eq!(
            span_ns(u64::from(u32::MAX), MAX_SPAN_NS, MAX_SPAN_NS),
            MAX_SPAN_NS
        );
        assert_eq!(span_ns(u64::MAX, u64::MAX, 5), 5);
    }

    /// Issue 10, for every algorithm: 100x the table in fresh keys does not
    /// give a limited client its budget back, and the evictions are counted.
    #[test]
    fn limited_client_survives_churn_in_every_algorithm() {
        let specs = [
            LimitSpec::FixedWindow {
                limit: 5,
                window_ms: 600_000,
            },
            LimitSpec::SlidingLog {
                limit: 5,
                window_ms: 600_000,
            },
            LimitSpec::SlidingCounter {
                limit: 5,
                window_ms: 600_000,
            },
            LimitSpec::TokenBucket {
                capacity: 5,
                refill_per_sec: 0.01,
            },
            LimitSpec::LeakyBucket {
                capacity: 5,
                leak_per_sec: 0.01,
            },
        ];
        for spec in specs {
            let ev = Evictions::default();
            let l = build(&spec, 1024, &ev);
            let extra =
                test_kit::extra_after_churn(&*l, 1024, Nanos::from_secs(1), Nanos::from_secs(13));
            assert_eq!(extra, 0, "{spec:?}");
            assert!(ev.get() >= 100 * 1024 - 1024, "{spec:?}: {}", ev.get());
        }
    }

    #[test]
    fn deny_never_says_zero() {
        let d = Decision::deny(1, Nanos::ZERO, Nanos::ZERO);
        assert_eq!(d.retry_after, Nanos(1));
        assert!(!d.is_admitted());
    }
}
