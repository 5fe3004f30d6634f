//! Rate limiters: one file per algorithm, one small trait.
//!
//! A limiter answers `check(key, now)` with one atomic decision for that key;
//! never check-then-act. Per-key state lives in a bounded table
//! ([`crate::algo::cells`]), so a flood of distinct keys cannot grow memory.
//! Every limiter errs towards denying: races and rounding may over-count, never under-count.

#![deny(missing_docs)]

use std::sync::Arc;

use api_gateway_admin::LimitSpec;

use super::Nanos;

pub mod fixed_window;
pub mod global;
pub mod leaky_bucket;
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
/// (the sliding log may track fewer: see [`sliding_log::MAX_TABLE_BYTES`]).
pub fn build(spec: &LimitSpec, max_keys: usize) -> Arc<dyn RateLimiter> {
    match *spec {
        LimitSpec::FixedWindow { limit, window_ms } => Arc::new(FixedWindow::new(
            limit,
            Nanos::from_millis(window_ms),
            max_keys,
        )),
        LimitSpec::SlidingLog { limit, window_ms } => Arc::new(SlidingLog::new(
            limit,
            Nanos::from_millis(window_ms),
            max_keys,
        )),
        LimitSpec::SlidingCounter { limit, window_ms } => Arc::new(SlidingCounter::new(
            limit,
            Nanos::from_millis(window_ms),
            max_keys,
        )),
        LimitSpec::TokenBucket {
            capacity,
            refill_per_sec,
        } => Arc::new(TokenBucket::new(capacity, refill_per_sec, max_keys)),
        LimitSpec::LeakyBucket {
            capacity,
            leak_per_sec,
        } => Arc::new(LeakyBucket::new(capacity, leak_per_sec, max_keys)),
    }
}

/// Nanoseconds between two events at `per_sec` events per second, rounded
/// UP so rounding can only slow the rate (never admit more than configured).
/// Non-finite or non-positive rates (rejected by `LimitSpec::validate`)
/// degrade to the slowest representable rate rather than panic.
pub fn interval_ns(per_sec: f64) -> u64 {
    let t = (1e9 / per_sec).ceil();
    if t.is_finite() && t >= 1.0 {
        // `as` saturates at u64::MAX for huge values.
        t as u64
    } else if t.is_finite() && t >= 0.0 {
        1
    } else {
        u64::MAX
    }
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

    /// 100k distinct keys through `l`, 1 ms apart; returns how many were
    /// admitted (each is a first request of a fresh key, so: all of them).
    pub fn flood(l: &dyn RateLimiter, start: Nanos) -> usize {
        (0..100_000u64)
            .filter(|&i| {
                let key = i.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x55;
                l.check(key, start.saturating_add(Nanos(i * 1_000)))
                    .is_admitted()
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_dispatches_on_spec() {
        for name in api_gateway_admin::protocol::LIMITER_NAMES {
            let spec = LimitSpec::default_for(name).unwrap();
            let l = build(&spec, 64);
            assert_eq!(l.spec(), &spec);
            assert_eq!(l.spec().name(), name);
            assert!(l.check(42, Nanos::from_secs(1)).is_admitted());
        }
    }

    #[test]
    fn interval_rounds_up() {
        assert_eq!(interval_ns(10.0), 100_000_000);
        assert_eq!(interval_ns(3.0), 333_333_334);
        assert_eq!(interval_ns(1e9), 1);
        assert_eq!(interval_ns(2e9), 1);
        assert_eq!(interval_ns(1e-30), u64::MAX);
        assert_eq!(interval_ns(0.0), u64::MAX);
    }

    #[test]
    fn deny_never_says_zero() {
        let d = Decision::deny(1, Nanos::ZERO, Nanos::ZERO);
        assert_eq!(d.retry_after, Nanos(1));
        assert!(!d.is_admitted());
    }
}
