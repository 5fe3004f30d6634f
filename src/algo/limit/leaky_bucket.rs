//! Leaky bucket that SHAPES traffic (nginx `limit_req` with `burst`, no `nodelay`).
//!
//! Requests of a key are released exactly `T = 1/leak_per_sec` apart (T rounded
//! up to whole ns). One word of state, the GCRA `TAT`: the earliest time the next
//! request may be released. A request is admitted with delay `d = max(TAT, now) - now`
//! iff at most `capacity - 1` requests are still waiting, i.e. iff `d <= capacity * T`.

use api_gateway_protocol::{LimitSpec, MAX_SPAN_NS};

use super::{interval_ns, span_ns, Decision, RateLimiter};
use crate::algo::cells::{CellCodec, CellTable, Evictions, Worth};
use crate::algo::Nanos;

/// Traffic shaper: queue of `capacity` per key, drained at `leak_per_sec`.
///
/// Queue semantics, exactly: a request is *waiting* from its arrival until its
/// release time `now + delay` (exclusive), so a request released at `now` is
/// not waiting. Up to `capacity` requests may wait at once; from an idle key a
/// burst therefore gets delays `0, T, 2T, ..., capacity*T` (one passes at
/// once, `capacity` are queued) and the next is denied with
/// `retry_after` = time until one waiting request is released.
/// `remaining` is the free queue room after this request.
pub struct LeakyBucket {
    spec: LimitSpec,
    capacity: u64,
    /// Emission interval `T` (ns between releases).
    interval: u64,
    /// Largest delay a request may be given: `capacity * T`, at most one day
    /// (validated; clamped for unvalidated specs). A parked request never
    /// waits longer, and `TAT <= now + max_delay + T` cannot overflow.
    max_delay: u64,
    table: CellTable,
}

impl LeakyBucket {
    /// A shaper queueing up to `capacity` requests per key and releasing
    /// `leak_per_sec` per second, tracking up to `max_keys` keys.
    pub fn new(capacity: u32, leak_per_sec: f64, max_keys: usize) -> Self {
        let interval = interval_ns(leak_per_sec);
        let capacity64 = u64::from(capacity);
        LeakyBucket {
            spec: LimitSpec::LeakyBucket {
                capacity,
                leak_per_sec,
            },
            capacity: capacity64,
            interval,
            max_delay: span_ns(capacity64, interval, MAX_SPAN_NS),
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

    /// The emission interval `T`: released requests are exactly this far apart.
    pub fn interval(&self) -> Nanos {
        Nanos(self.interval)
    }
}

impl CellCodec for LeakyBucket {
    type Out = Decision;

    /// Pure step. Release times already handed out are `TAT - T, TAT - 2T, ...`;
    /// those after `now` are waiting, and there are `ceil(d / T) - 1` of them
    /// (for `d > 0`), which is below `capacity` iff `d <= capacity * T`.
    #[inline]
    fn decide(&self, tat: u64, now: Nanos) -> (Option<u64>, Decision) {
        // `max` keeps releases T apart even if a racing thread passes a
        // slightly stale `now`: TAT never moves backwards.
        let release = tat.max(now.0);
        let delay = release - now.0;
        if delay <= self.max_delay {
            let new_tat = release.saturating_add(self.interval);
            // Waiting after this request: ceil(d / T) (this one included
            // when d > 0).
            let waiting = delay.div_ceil(self.interval);
            let remaining = self.capacity.saturating_sub(waiting);
            (
                Some(new_tat),
                Decision::admit(
                    Nanos(delay),
                    self.capacity,
                    remaining,
                    Nanos(new_tat - now.0),
                ),
            )
        } else {
            // Room appears when the delay would shrink to `capacity * T`.
            let retry = Nanos(delay - self.max_delay);
            (None, Decision::deny(self.capacity, Nanos(delay), retry))
        }
    }

    /// The state is the TAT: an empty queue (fresh) once it is not after
    /// `now`; else `TAT - now` is the queued work, and the key is limited
    /// when its queue is full (the next request would be denied).
    #[inline]
    fn worth(&self, tat: u64, now: Nanos) -> Worth {
        if tat <= now.0 {
            return Worth::Fresh;
        }
        let delay = tat - now.0;
        Worth::Live {
            limited: delay > self.max_delay,
            used: delay,
            until: tat,
        }
    }
}

impl RateLimiter for LeakyBucket {
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
    fn burst_is_spaced_exactly_t_apart_then_queue_full() {
        let clock = ManualClock::new(ms(5_000));
        let lb = LeakyBucket::new(3, 10.0, 16); // T = 100 ms
        assert_eq!(lb.interval(), ms(100));
        let d = lb.check(1, clock.now());
        assert_eq!((d.verdict, d.remaining), (Verdict::Allow, 3));
        for (k, left) in [(1, 2), (2, 1), (3, 0)] {
            let d = lb.check(1, clock.now());
            assert_eq!(d.verdict, Verdict::Delay(ms(100 * k)));
            assert_eq!((d.limit, d.remaining), (3, left));
        }
        // 3 waiting = capacity: the next is denied until one is released.
        let d = lb.check(1, clock.now());
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.retry_after, ms(100));
        // 100 ms later the first queued one is released: room for one more,
        // released right after the last queued (t0 + 400 ms).
        clock.advance(ms(100));
        assert_eq!(lb.check(1, clock.now()).verdict, Verdict::Delay(ms(300)));
        assert_eq!(lb.check(1, clock.now()).verdict, Verdict::Deny);
    }

    #[test]
    fn steady_arrivals_slower_than_leak_are_never_delayed() {
        let lb = LeakyBucket::new(2, 10.0, 16);
        for i in 0..50 {
            assert_eq!(lb.check(3, ms(150 * i)).verdict, Verdict::Allow);
        }
    }

    #[test]
    fn arrival_between_releases_waits_for_its_slot() {
        let lb = LeakyBucket::new(2, 10.0, 16);
        assert_eq!(lb.check(3, ms(0)).verdict, Verdict::Allow);
        assert_eq!(lb.check(3, ms(30)).verdict, Verdict::Delay(ms(70)));
        assert_eq!(lb.check(3, ms(40)).verdict, Verdict::Delay(ms(160)));
        // Waiting: released at 100 and 200 -> 2 = capacity.
        let d = lb.check(3, ms(50));
        assert_eq!((d.verdict, d.retry_after), (Verdict::Deny, ms(50)));
    }

    #[test]
    fn keys_are_independent() {
        let lb = LeakyBucket::new(1, 1.0, 16);
        assert_eq!(lb.check(1, ms(5)).verdict, Verdict::Allow);
        assert_eq!(lb.check(1, ms(5)).verdict, Verdict::Delay(ms(1_000)));
        assert_eq!(lb.check(2, ms(5)).verdict, Verdict::Allow);
    }

    #[test]
    fn table_stays_bounded_under_key_flood() {
        let lb = LeakyBucket::new(2, 0.5, 4096);
        assert_eq!(flood(&lb, ms(1)), 100_000);
        assert_eq!(lb.capacity(), 4096);
    }

    /// The slowest accepted rate: one release per day, a queue of one day.
    #[test]
    fn one_release_per_day_at_the_boundary() {
        let day = Nanos::from_secs(86_400);
        let lb = LeakyBucket::new(1, 1.0 / 86_400.0, 16);
        assert_eq!(lb.interval(), day);
        let t0 = Nanos::from_secs(7);
        assert_eq!(lb.check(1, t0).verdict, Verdict::Allow);
        assert_eq!(lb.check(1, t0).verdict, Verdict::Delay(day));
        let d = lb.check(1, t0);
        assert_eq!((d.verdict, d.retry_after), (Verdict::Deny, day));
        // Released at t0 + 1 day: room again, released one day after it.
        assert_eq!(
            lb.check(1, t0.saturating_add(day)).verdict,
            Verdict::Delay(day)
        );
    }

    /// Issue 10: capacity 2 at 1e-15/s gave `T` = `capacity * T` = u64::MAX:
    /// of 20 concurrent requests one passed and 19 were parked forever.
    /// Built without validation, such rates now act as one per day and the
    /// queue wait is clamped to one day: one passes, one waits a day, 18
    /// are denied.
    #[test]
    fn unvalidated_tiny_rates_keep_the_queue_bound() {
        let day = Nanos::from_secs(86_400).0;
        for rate in [1e-15, 1e-300, 0.0, f64::NAN] {
            let l: Arc<dyn RateLimiter> = Arc::new(LeakyBucket::new(2, rate, 64));
            let ds = hammer(&l, 4, 5, 9, ms(1));
            let mut delays: Vec<u64> = ds
                .iter()
                .filter_map(|d| match d.verdict {
                    Verdict::Allow => Some(0),
                    Verdict::Delay(n) => Some(n.0),
                    Verdict::Deny => None,
                })
                .collect();
            delays.sort_unstable();
            assert_eq!(delays, vec![0, day], "{rate}");
        }
        // A huge queue is clamped to one day of waiting, not u64::MAX.
        let lb = LeakyBucket::new(u32::MAX, 1e-15, 16);
        assert_eq!(lb.check(1, ms(1)).verdict, Verdict::Allow);
        assert_eq!(lb.check(1, ms(1)).verdict, Verdict::Delay(Nanos(day)));
        assert_eq!(lb.check(1, ms(1)).verdict, Verdict::Deny);
    }

    #[test]
    fn worth_is_limited_iff_the_queue_is_full() {
        let lb = LeakyBucket::new(2, 10.0, 16); // T = 100 ms, max delay 200 ms
        assert_eq!(lb.worth(ms(5).0, ms(5)), Worth::Fresh);
        assert!(matches!(
            lb.worth(ms(1_200).0, ms(1_000)),
            Worth::Live { limited: false, .. }
        ));
        assert!(lb.decide(ms(1_200).0, ms(1_000)).1.is_admitted());
        assert!(matches!(
            lb.worth(ms(1_201).0, ms(1_000)),
            Worth::Live { limited: true, .. }
        ));
        assert!(!lb.decide(ms(1_201).0, ms(1_000)).1.is_admitted());
    }

    #[test]
    fn threads_hammering_one_key_get_distinct_release_slots() {
        let l: Arc<dyn RateLimiter> = Arc::new(LeakyBucket::new(200, 10.0, 64));
        let ds = hammer(&l, 4, 1_000, 8, ms(1));
        assert_eq!(admitted(&ds), 201, "one immediate + capacity queued");
        let mut delays: Vec<u64> = ds
            .iter()
            .filter_map(|d| match d.verdict {
                Verdict::Allow => Some(0),
                Verdict::Delay(n) => Some(n.0),
                Verdict::Deny => None,
            })
            .collect();
        delays.sort_unstable();
        let expect: Vec<u64> = (0..=200).map(|k| k * ms(100).0).collect();
        assert_eq!(delays, expect);
    }

    proptest! {
        /// Releases (`now + delay`) of a key are at least T apart, never more
        /// than `capacity` wait at once, and no delay exceeds `capacity * T`.
        #[test]
        fn releases_are_spaced_and_queue_is_bounded(
            ops in prop::collection::vec((0u64..3, 0u64..200), 1..300),
            capacity in 1u32..5,
        ) {
            let lb = LeakyBucket::new(capacity, 10.0, 256);
            let t = ms(100).0;
            let mut now = 0;
            let mut releases = vec![Vec::<u64>::new(); 3];
            for (key, dt_ms) in ops {
                now += dt_ms * 1_000_000;
                let d = lb.check(key, Nanos(now));
                let delay = match d.verdict {
                    Verdict::Allow => 0,
                    Verdict::Delay(n) => n.0,
                    Verdict::Deny => {
                        prop_assert!(d.retry_after.0 > 0);
                        continue;
                    }
                };
                prop_assert!(delay <= u64::from(capacity) * t);
                let r = &mut releases[key as usize];
                let waiting = r.iter().filter(|&&x| x > now).count();
                prop_assert!(waiting < capacity as usize);
                if let Some(&last) = r.last() {
                    prop_assert!(now + delay >= last + t);
                }
                r.push(now + delay);
            }
        }
    }
}
