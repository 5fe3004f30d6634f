//! Token bucket: bursts of up to `capacity`, then `refill_per_sec` steady.
//!
//! Represented as GCRA (governor's choice): the one-word state is the
//! theoretical arrival time `TAT` in ns, and the bucket holds
//! `(now + capacity*T - TAT) / T` tokens, clipped to `[0, capacity]`, where
//! `T = 1/refill_per_sec` rounded up to whole ns (so rounding only slows refill).
//! `TAT <= now` means a full bucket, so state 0 is a fresh key.

use api_gateway_protocol::{LimitSpec, MAX_REFILL_NS};

use super::{interval_ns, span_ns, Decision, RateLimiter};
use crate::algo::cells::{CellCodec, CellTable, Evictions, Worth};
use crate::algo::Nanos;

/// Token bucket (as GCRA) over a bounded table of keys.
///
/// ```
/// use api_gateway::algo::limit::{RateLimiter, TokenBucket, Verdict};
/// use api_gateway::algo::Nanos;
///
/// // 2 at once, then one every 500 ms.
/// let tb = TokenBucket::new(2, 2.0, 1024);
/// let t0 = Nanos::from_secs(1);
/// assert_eq!(tb.check(7, t0).verdict, Verdict::Allow);
/// assert_eq!(tb.check(7, t0).verdict, Verdict::Allow);
/// let denied = tb.check(7, t0);
/// assert_eq!(denied.verdict, Verdict::Deny);
/// assert_eq!(denied.retry_after, Nanos::from_millis(500));
/// assert_eq!(tb.check(7, Nanos::from_millis(1_500)).verdict, Verdict::Allow);
/// ```
pub struct TokenBucket {
    spec: LimitSpec,
    capacity: u64,
    /// Emission interval `T` (ns per token).
    interval: u64,
    /// Burst tolerance `capacity * T`: how far `TAT` may run ahead of `now`.
    /// At most [`MAX_REFILL_NS`] (validated; clamped for unvalidated specs),
    /// so `TAT <= now + tolerance + T` stays far from u64 overflow.
    tolerance: u64,
    table: CellTable,
}

impl TokenBucket {
    /// A bucket of `capacity` tokens refilled at `refill_per_sec`, tracking up
    /// to `max_keys` keys.
    pub fn new(capacity: u32, refill_per_sec: f64, max_keys: usize) -> Self {
        let interval = interval_ns(refill_per_sec);
        let capacity = u64::from(capacity);
        TokenBucket {
            spec: LimitSpec::TokenBucket {
                capacity: capacity as u32,
                refill_per_sec,
            },
            capacity,
            interval,
            tolerance: span_ns(capacity, interval, MAX_REFILL_NS),
            table: CellTable::new(max_keys),
        }
    }

    /// Counts the table's evictions into `evictions` (shared with the metric).
    pub fn counting(mut self, evictions: Evictions) -> Self {
        self.table.count_into(evictions);
        self
    }

    /// Slots in the key table (fixed).
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }
}

impl CellCodec for TokenBucket {
    type Out = Decision;

    /// Pure GCRA step: taking one token moves `TAT` one interval later; the
    /// request fits iff the new `TAT` is at most `capacity*T` ahead of `now`.
    #[inline]
    fn decide(&self, tat: u64, now: Nanos) -> (Option<u64>, Decision) {
        // A TAT in the past is a full bucket: tokens do not accumulate
        // beyond capacity, so restart from `now`.
        let base = tat.max(now.0);
        let new_tat = base.saturating_add(self.interval);
        let ahead = new_tat - now.0;
        if ahead <= self.tolerance {
            let remaining = (self.tolerance - ahead) / self.interval;
            (
                Some(new_tat),
                Decision::admit(Nanos::ZERO, self.capacity, remaining, Nanos(ahead)),
            )
        } else {
            // One token will have been refilled once `ahead` shrinks to
            // the tolerance.
            let retry = Nanos(ahead - self.tolerance);
            let reset = Nanos(base - now.0);
            (None, Decision::deny(self.capacity, reset, retry))
        }
    }

    /// The state is the TAT: fresh (a full bucket) once it is not after
    /// `now`; else `TAT - now` is the spent budget (in ns of refill), and
    /// the key is limited when not even one token is left.
    #[inline]
    fn worth(&self, tat: u64, now: Nanos) -> Worth {
        if tat <= now.0 {
            return Worth::Fresh;
        }
        let ahead = tat - now.0;
        Worth::Live {
            limited: ahead.saturating_add(self.interval) > self.tolerance,
            used: ahead,
            until: tat,
        }
    }
}

impl RateLimiter for TokenBucket {
    fn check(&self, key: u64, now: Nanos) -> Decision {
        self.table.update(key, now, self)
    }

    fn spec(&self) -> &LimitSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::super::test_kit::{admitted, flood, hammer};
    use super::super::Verdict;
    use super::*;
    use crate::algo::{Clock, ManualClock};

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn burst_of_capacity_then_exactly_refill_rate() {
        let clock = ManualClock::new(ms(10_000));
        let tb = TokenBucket::new(5, 2.0, 16);
        // Capacity at once, with remaining counting down.
        for left in (0..5).rev() {
            let d = tb.check(1, clock.now());
            assert_eq!((d.verdict, d.remaining, d.limit), (Verdict::Allow, left, 5));
        }
        let d = tb.check(1, clock.now());
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.retry_after, ms(500));
        assert_eq!(d.reset_after, ms(2_500), "5 tokens at 2/s");
        // Then exactly 2 per second: poll every 10 ms for 10 s.
        let mut got = 0;
        for _ in 0..1_000 {
            clock.advance(ms(10));
            got += usize::from(tb.check(1, clock.now()).is_admitted());
        }
        assert_eq!(got, 20);
        // Idle long enough and the burst is back, but never more than capacity.
        clock.advance(ms(60_000));
        let burst = (0..10)
            .filter(|_| tb.check(1, clock.now()).is_admitted())
            .count();
        assert_eq!(burst, 5);
    }

    #[test]
    fn partial_refill_gives_whole_tokens_only() {
        let tb = TokenBucket::new(3, 10.0, 16);
        for _ in 0..3 {
            assert!(tb.check(4, ms(0)).is_admitted());
        }
        // 250 ms refill 2.5 tokens: 2 pass, the third waits 50 ms.
        assert!(tb.check(4, ms(250)).is_admitted());
        assert!(tb.check(4, ms(250)).is_admitted());
        let d = tb.check(4, ms(250));
        assert_eq!((d.verdict, d.retry_after), (Verdict::Deny, ms(50)));
    }

    #[test]
    fn keys_are_independent() {
        let tb = TokenBucket::new(1, 1.0, 16);
        assert!(tb.check(1, ms(5)).is_admitted());
        assert!(!tb.check(1, ms(5)).is_admitted());
        assert!(tb.check(2, ms(5)).is_admitted());
    }

    #[test]
    fn table_stays_bounded_under_key_flood() {
        let tb = TokenBucket::new(5, 0.1, 100_000 / 64);
        let cap = tb.capacity();
        assert_eq!(flood(&tb, ms(1)), 100_000);
        assert_eq!(tb.capacity(), cap);
        assert_eq!(cap, 2048);
    }

    /// The slowest accepted rate (one token per day) works exactly: the
    /// GCRA arithmetic neither saturates nor rounds a day away.
    #[test]
    fn one_token_per_day_at_the_boundary() {
        let day = Nanos::from_secs(86_400);
        let tb = TokenBucket::new(365, 1.0 / 86_400.0, 16);
        let t0 = Nanos::from_secs(5);
        let burst = (0..400).filter(|_| tb.check(1, t0).is_admitted()).count();
        assert_eq!(burst, 365);
        let d = tb.check(1, t0);
        assert_eq!((d.verdict, d.retry_after), (Verdict::Deny, day));
        assert_eq!(d.reset_after, Nanos(365 * day.0));
        assert!(!tb.check(1, Nanos(t0.0 + day.0 - 1)).is_admitted());
        assert!(tb.check(1, t0.saturating_add(day)).is_admitted());
        assert!(!tb.check(1, t0.saturating_add(day)).is_admitted());
    }

    /// Issue 10: rates far below one per day used to make `T` and
    /// `capacity * T` saturate at u64::MAX. Built without validation, they
    /// now act as the slowest accepted rate.
    #[test]
    fn unvalidated_tiny_or_bad_rates_do_not_saturate() {
        for rate in [1e-15, 0.0, -3.0, f64::NAN] {
            let tb = TokenBucket::new(2, rate, 16);
            let t0 = Nanos::from_secs(1);
            let ds: Vec<_> = (0..20).map(|_| tb.check(1, t0)).collect();
            assert_eq!(admitted(&ds), 2, "{rate}");
            assert!(ds[2..]
                .iter()
                .all(|d| d.retry_after == Nanos::from_secs(86_400)));
        }
        // Capacity x one day beyond MAX_REFILL_NS: the burst is clamped.
        let tb = TokenBucket::new(u32::MAX, 1e-15, 16);
        assert_eq!(tb.check(1, Nanos::ZERO).remaining, 364);
    }

    #[test]
    fn worth_is_limited_iff_no_whole_token_is_left() {
        let tb = TokenBucket::new(2, 10.0, 16); // T = 100 ms, tolerance 200 ms
        assert_eq!(tb.worth(0, ms(5)), Worth::Fresh);
        assert_eq!(tb.worth(ms(5).0, ms(5)), Worth::Fresh);
        let live = |limited, ahead: u64| Worth::Live {
            limited,
            used: ahead,
            until: ms(1_000).0 + ahead,
        };
        assert_eq!(tb.worth(ms(1_100).0, ms(1_000)), live(false, ms(100).0));
        assert_eq!(tb.worth(ms(1_101).0, ms(1_000)), live(true, ms(101).0));
        assert!(!tb.decide(ms(1_101).0, ms(1_000)).1.is_admitted());
        assert!(tb.decide(ms(1_100).0, ms(1_000)).1.is_admitted());
    }

    #[test]
    fn threads_hammering_one_key_admit_exactly_capacity() {
        let l: Arc<dyn RateLimiter> = Arc::new(TokenBucket::new(300, 1.0, 64));
        let ds = hammer(&l, 4, 1_000, 5, ms(1));
        assert_eq!(admitted(&ds), 300);
    }

    proptest! {
        /// Between any two admissions (inclusive) of a key at most
        /// `capacity + rate * span` requests pass.
        #[test]
        fn never_more_than_capacity_plus_rate_times_span(
            ops in prop::collection::vec((0u64..3, 0u64..300), 1..300),
            capacity in 1u32..5,
            rate in 1u32..20,
        ) {
            let tb = TokenBucket::new(capacity, f64::from(rate), 256);
            let mut now = 0;
            let mut times = vec![Vec::new(); 3];
            for (key, dt_ms) in ops {
                now += dt_ms * 1_000_000;
                if tb.check(key, Nanos(now)).is_admitted() {
                    times[key as usize].push(now);
                }
            }
            for t in &times {
                for i in 0..t.len() {
                    for j in i..t.len() {
                        let span_s = (t[j] - t[i]) as f64 / 1e9;
                        let allowed = f64::from(capacity) + f64::from(rate) * span_s;
                        prop_assert!((j - i + 1) as f64 <= allowed + 1e-9);
                    }
                }
            }
        }
    }
}
