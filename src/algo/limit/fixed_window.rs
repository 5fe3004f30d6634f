//! Fixed window: at most `limit` requests per aligned window `[k*W, (k+1)*W)`.
//!
//! State is one word, `window_index:32 | count:32`, updated by one CAS; a
//! state from another window reads as count 0, so state 0 is a fresh key.
//! Known trade-off: up to `2 * limit` can pass within a short span straddling
//! a window boundary (end of one window + start of the next).

use api_gateway_protocol::LimitSpec;

use super::{window_ns, Decision, RateLimiter};
use crate::algo::cells::{CellCodec, CellTable, Evictions, Worth};
use crate::algo::Nanos;

const COUNT_MASK: u64 = 0xFFFF_FFFF;

/// Fixed-window counter over a bounded table of keys.
pub struct FixedWindow {
    spec: LimitSpec,
    limit: u64,
    window: u64,
    table: CellTable,
}

impl FixedWindow {
    /// `limit` requests per `window` (aligned to multiples of `window` since
    /// the clock's epoch), tracking up to `max_keys` keys.
    pub fn new(limit: u32, window: Nanos, max_keys: usize) -> Self {
        FixedWindow {
            spec: LimitSpec::FixedWindow {
                limit,
                window_ms: window.as_millis(),
            },
            limit: u64::from(limit),
            window: window_ns(window),
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

    /// Count already admitted in window `idx` according to `state`. The index
    /// is stored mod 2^32: a state idle for exactly a multiple of 2^32 windows
    /// (49 days at 1 ms windows) would alias, which only over-counts.
    #[inline]
    fn count_in(state: u64, idx: u64) -> u64 {
        if state >> 32 == idx & COUNT_MASK {
            state & COUNT_MASK
        } else {
            0
        }
    }
}

impl CellCodec for FixedWindow {
    type Out = Decision;

    /// Pure decision for one request against `state` at `now`.
    #[inline]
    fn decide(&self, state: u64, now: Nanos) -> (Option<u64>, Decision) {
        let idx = now.0 / self.window;
        let window_end = (idx + 1).saturating_mul(self.window);
        let reset_after = Nanos(window_end - now.0);
        let count = Self::count_in(state, idx);
        if count < self.limit {
            let new = ((idx & COUNT_MASK) << 32) | (count + 1);
            let remaining = self.limit - count - 1;
            (
                Some(new),
                Decision::admit(Nanos::ZERO, self.limit, remaining, reset_after),
            )
        } else {
            // The next window starts fresh: that is the earliest admission.
            (None, Decision::deny(self.limit, reset_after, reset_after))
        }
    }

    /// Fresh when nothing is counted in the current window; else the count
    /// is the spent budget, until the end of the window.
    #[inline]
    fn worth(&self, state: u64, now: Nanos) -> Worth {
        let idx = now.0 / self.window;
        match Self::count_in(state, idx) {
            0 => Worth::Fresh,
            count => Worth::Live {
                limited: count >= self.limit,
                used: count,
                until: (idx + 1).saturating_mul(self.window),
            },
        }
    }
}

impl RateLimiter for FixedWindow {
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

    use super::super::test_kit::{admitted, flood, hammer, max_in_span};
    use super::super::Verdict;
    use super::*;
    use crate::algo::{Clock, ManualClock};

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn counts_up_to_limit_then_denies_until_window_end() {
        let clock = ManualClock::new(ms(1_000));
        let fw = FixedWindow::new(3, ms(1_000), 16);
        for left in [2, 1, 0] {
            let d = fw.check(7, clock.now());
            assert_eq!(d.verdict, Verdict::Allow);
            assert_eq!((d.limit, d.remaining), (3, left));
            assert_eq!(d.reset_after, ms(1_000));
        }
        clock.advance(ms(400));
        let d = fw.check(7, clock.now());
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.retry_after, ms(600));
        clock.advance(ms(600));
        assert_eq!(fw.check(7, clock.now()).verdict, Verdict::Allow);
    }

    #[test]
    fn boundary_burst_admits_twice_the_limit_within_two_ms() {
        let fw = FixedWindow::new(10, ms(1_000), 16);
        // 10 at the very end of window 0, 10 at the very start of window 1:
        // 20 admitted within 2 ms, the known weakness of fixed windows.
        let end = Nanos(ms(1_000).0 - ms(1).0);
        let before: usize = (0..11).filter(|_| fw.check(1, end).is_admitted()).count();
        let after: usize = (0..11)
            .filter(|_| fw.check(1, ms(1_001)).is_admitted())
            .count();
        assert_eq!((before, after), (10, 10));
    }

    #[test]
    fn keys_are_independent() {
        let fw = FixedWindow::new(1, ms(1_000), 16);
        assert!(fw.check(1, ms(5)).is_admitted());
        assert!(!fw.check(1, ms(5)).is_admitted());
        assert!(fw.check(2, ms(5)).is_admitted());
        assert!(fw.check(0, ms(5)).is_admitted());
    }

    #[test]
    fn table_stays_bounded_under_key_flood() {
        let fw = FixedWindow::new(5, ms(60_000), 1000);
        let cap = fw.capacity();
        assert_eq!(cap, 1024);
        assert_eq!(flood(&fw, ms(1)), 100_000, "fresh keys are never denied");
        assert_eq!(fw.capacity(), cap);
    }

    /// Issue 10's numbers: 5 per 600 s, then 120k distinct keys in 13 s
    /// through a 1024-slot table. The limited client stays limited until its
    /// window ends, and the churn keys' evictions are counted.
    #[test]
    fn churn_does_not_reset_a_limited_client() {
        let ev = Evictions::default();
        let fw = FixedWindow::new(5, ms(600_000), 1024).counting(ev.clone());
        let clock = ManualClock::new(ms(1_000));
        let victim = 0xC0FFEE;
        let admitted = (0..6).filter(|_| fw.check(victim, clock.now()).is_admitted());
        assert_eq!(admitted.count(), 5);
        for i in 0..120_000u64 {
            if i % 10_000 == 0 {
                clock.advance(ms(1_000)); // 13 s in all
            }
            let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            assert!(fw.check(key, clock.now()).is_admitted());
        }
        let extra = (0..10).filter(|_| fw.check(victim, clock.now()).is_admitted());
        assert_eq!(extra.count(), 0, "still limited after the churn");
        assert!(ev.get() >= 120_000 - 1024, "evictions: {}", ev.get());
        clock.set(ms(600_000));
        assert!(fw.check(victim, clock.now()).is_admitted(), "next window");
    }

    #[test]
    fn worth_tells_fresh_from_spent_and_limited() {
        let fw = FixedWindow::new(2, ms(1_000), 16);
        let now = ms(1_500);
        assert_eq!(fw.worth(0, now), Worth::Fresh);
        let (one, _) = fw.decide(0, now);
        let one = one.unwrap();
        assert_eq!(
            fw.worth(one, now),
            Worth::Live {
                limited: false,
                used: 1,
                until: ms(2_000).0
            }
        );
        let two = fw.decide(one, now).0.unwrap();
        assert!(matches!(
            fw.worth(two, now),
            Worth::Live {
                limited: true,
                used: 2,
                ..
            }
        ));
        assert_eq!(fw.worth(two, ms(2_000)), Worth::Fresh, "next window");
        assert_eq!(fw.decide(two, ms(2_000)).1, fw.decide(0, ms(2_000)).1);
    }

    #[test]
    fn threads_hammering_one_key_admit_exactly_limit() {
        let l: Arc<dyn RateLimiter> = Arc::new(FixedWindow::new(500, ms(1_000), 64));
        let ds = hammer(&l, 4, 1_000, 99, ms(10));
        assert_eq!(admitted(&ds), 500);
        assert!(ds
            .iter()
            .filter(|d| !d.is_admitted())
            .all(|d| d.retry_after == ms(990)));
    }

    proptest! {
        /// Any span of one window length holds at most 2*limit admissions,
        /// and each aligned window at most limit.
        #[test]
        fn never_more_than_twice_limit_per_window_span(
            ops in prop::collection::vec((0u64..4, 0u64..400), 1..400),
            limit in 1u32..6,
        ) {
            let w = ms(1_000).0;
            let fw = FixedWindow::new(limit, Nanos(w), 256);
            let mut now = 0;
            let mut times = vec![Vec::new(); 4];
            for (key, dt_ms) in ops {
                now += dt_ms * 1_000_000;
                if fw.check(key, Nanos(now)).is_admitted() {
                    times[key as usize].push(now);
                }
            }
            for t in &times {
                prop_assert!(max_in_span(t, w) <= 2 * limit as usize);
                let mut per_window = std::collections::HashMap::new();
                for &x in t {
                    *per_window.entry(x / w).or_insert(0usize) += 1;
                }
                prop_assert!(per_window.values().all(|&n| n <= limit as usize));
            }
        }
    }
}
