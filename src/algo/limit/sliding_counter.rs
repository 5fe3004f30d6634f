//! Sliding counter: weighted estimate over the previous and current fixed windows.
//!
//! With `e` ns elapsed in the current window of length `W`, the trailing-window
//! count is estimated as `prev * (W - e) / W + curr`; a request is admitted iff
//! that estimate (before it) is `< limit`. One word: `index:22 | prev:21 | curr:21`,
//! one CAS per decision; limits above 2^21 - 1 are clamped (over-count only).

use api_gateway_protocol::LimitSpec;

use super::{window_ns, Decision, RateLimiter};
use crate::algo::cells::{CellCodec, CellTable, Evictions, Worth};
use crate::algo::Nanos;

const IDX_BITS: u32 = 22;
const CNT_BITS: u32 = 21;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
const CNT_MASK: u64 = (1 << CNT_BITS) - 1;

/// Largest effective limit: what one 21-bit count field holds (validation
/// rejects larger ones, so the clamp in [`SlidingCounter::new`] never bites
/// for a configured limiter).
pub const MAX_LIMIT: u32 = CNT_MASK as u32;
const _: () = assert!(MAX_LIMIT == api_gateway_protocol::SLIDING_COUNTER_MAX_LIMIT);

/// Sliding-window counter (pingora `Rate`-style estimate) over a bounded table.
///
/// Error: the estimate assumes the previous window's requests were spread
/// evenly. It is exact for evenly spread traffic; for bunched traffic it can
/// be wrong either way. Worst cases: requests bunched at the *end* of the
/// previous window are under-weighted, so a trailing window can hold up to
/// `2 * limit` (the fixed window's bound, since each aligned window admits at
/// most `limit`; but reached only by that adversarial pattern); bunched at the *start*, they are over-weighted
/// (spurious denials). Every aligned window still admits at most `limit`.
pub struct SlidingCounter {
    spec: LimitSpec,
    limit: u64,
    window: u64,
    table: CellTable,
}

/// Counts of the previous and current windows as seen from window `idx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    prev: u64,
    curr: u64,
}

impl SlidingCounter {
    /// `limit` requests per (estimated) trailing `window`, tracking up to
    /// `max_keys` keys. `limit` is clamped to [`MAX_LIMIT`].
    pub fn new(limit: u32, window: Nanos, max_keys: usize) -> Self {
        SlidingCounter {
            spec: LimitSpec::SlidingCounter {
                limit,
                window_ms: window.as_millis(),
            },
            limit: u64::from(limit.min(MAX_LIMIT)),
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

    /// Decodes `state` as of window `idx`. The stored index is mod 2^22, so a
    /// state idle for a multiple of 2^22 windows could alias as recent; that
    /// only over-counts.
    #[inline]
    fn counts(state: u64, idx: u64) -> Counts {
        let stored = state >> (2 * CNT_BITS);
        let (prev, curr) = ((state >> CNT_BITS) & CNT_MASK, state & CNT_MASK);
        match idx.wrapping_sub(stored) & IDX_MASK {
            0 => Counts { prev, curr },
            1 => Counts {
                prev: curr,
                curr: 0,
            },
            _ => Counts { prev: 0, curr: 0 },
        }
    }
}

impl CellCodec for SlidingCounter {
    type Out = Decision;

    /// Pure decision. All arithmetic is scaled by `W` and done in u128 so
    /// `prev * (W - e)` cannot overflow (2^21 * 8.64e13 > 2^64).
    #[inline]
    fn decide(&self, state: u64, now: Nanos) -> (Option<u64>, Decision) {
        let w = u128::from(self.window);
        let idx = now.0 / self.window;
        let start = idx * self.window;
        let e = u128::from(now.0 - start);
        let c = Self::counts(state, idx);
        let (prev, curr, limit) = (
            u128::from(c.prev),
            u128::from(c.curr),
            u128::from(self.limit),
        );
        // estimate * W, before this request.
        let scaled = prev * (w - e) + curr * w;
        let to_end = self.window - (now.0 - start);
        if scaled < limit * w {
            let curr = curr + 1;
            let after = prev * (w - e) + curr * w;
            // Further admissions possible right now: each adds W to `after`.
            let remaining = (limit * w).saturating_sub(after).div_ceil(w) as u64;
            let new = ((idx & IDX_MASK) << (2 * CNT_BITS)) | (c.prev << CNT_BITS) | curr as u64;
            // Full reset once this window's counts have aged out of the next.
            let reset = Nanos(to_end.saturating_add(self.window));
            (
                Some(new),
                Decision::admit(Nanos::ZERO, self.limit, remaining, reset),
            )
        } else {
            let retry = if curr < limit {
                // prev > 0 here. Admitted once prev*(W-e') + curr*W < limit*W,
                // i.e. e' > W*(prev+curr-limit)/prev; the next window (where the
                // estimate starts at curr < limit) is the latest it can be.
                let e_ok = w * (prev + curr - limit) / prev + 1;
                (e_ok.min(w) - e) as u64
            } else {
                // Next window: curr becomes prev and must decay below limit:
                // curr*(W-e') < limit*W, i.e. e' > W*(curr-limit)/curr.
                let e_next = w * (curr - limit) / curr + 1;
                to_end.saturating_add(e_next as u64)
            };
            let reset = if c.curr > 0 {
                to_end.saturating_add(self.window)
            } else {
                to_end
            };
            (None, Decision::deny(self.limit, Nanos(reset), Nanos(retry)))
        }
    }

    /// Fresh when neither window counts anything; else the spent budget is
    /// the estimate (scaled by `W`, then shifted into a u64: the rank only),
    /// live until the end of the window after its last counted one.
    #[inline]
    fn worth(&self, state: u64, now: Nanos) -> Worth {
        let idx = now.0 / self.window;
        let c = Self::counts(state, idx);
        if c.prev == 0 && c.curr == 0 {
            return Worth::Fresh;
        }
        let w = u128::from(self.window);
        let e = u128::from(now.0 - idx * self.window);
        // Exactly `decide`'s test: the next request is denied iff this holds.
        let scaled = u128::from(c.prev) * (w - e) + u128::from(c.curr) * w;
        let limited = scaled >= u128::from(self.limit) * w;
        let until = if c.curr > 0 { idx + 2 } else { idx + 1 };
        Worth::Live {
            limited,
            // < 2^69 before the shift: prev, curr < 2^21 and W < 2^47.
            used: u64::try_from(scaled >> 8).unwrap_or(u64::MAX),
            until: until.saturating_mul(self.window),
        }
    }
}

impl RateLimiter for SlidingCounter {
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

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    fn admit_count(sc: &SlidingCounter, key: u64, now: Nanos, tries: usize) -> usize {
        (0..tries)
            .filter(|_| sc.check(key, now).is_admitted())
            .count()
    }

    #[test]
    fn weighted_estimate_matches_hand_computation() {
        let sc = SlidingCounter::new(10, ms(1_000), 16);
        // Window 0: 8 requests.
        assert_eq!(admit_count(&sc, 1, ms(500), 8), 8);
        // t = 1.25 s: prev weighs 8 * 0.75 = 6, so curr may reach 4
        // (estimates before each: 6, 7, 8, 9 < 10; then 10 is not < 10).
        assert_eq!(admit_count(&sc, 1, ms(1_250), 10), 4);
        let d = sc.check(1, ms(1_250));
        assert_eq!(d.verdict, Verdict::Deny);
        // Estimate is exactly 10 at e = 250 ms; 1 ns later it is below.
        assert_eq!(d.retry_after, Nanos(1));
        // t = 1.5 s: 8 * 0.5 + 4 = 8 -> two more (8, 9), then 10.
        assert_eq!(admit_count(&sc, 1, ms(1_500), 10), 2);
        // t = 2.9 s: prev = 6 weighs 6 * 0.1 = 0.6 -> 9 pass (0.6 + 9 = 9.6),
        // the 10th would start at 9.6 < 10 too: 10 pass, then 10.6.
        assert_eq!(admit_count(&sc, 1, ms(2_900), 20), 10);
        // t = 3.0 s: prev = 10 weighs fully: nothing passes until it decays;
        // e' > W * (10 - 10) / 10 = 0, so retry is 1 ns into window 3.
        let d = sc.check(1, ms(3_000));
        assert_eq!((d.verdict, d.retry_after), (Verdict::Deny, Nanos(1)));
        assert_eq!(admit_count(&sc, 1, ms(3_100), 20), 1, "10 * 0.9 = 9");
    }

    #[test]
    fn denial_inside_window_waits_for_prev_to_decay() {
        let sc = SlidingCounter::new(4, ms(1_000), 16);
        assert_eq!(admit_count(&sc, 2, ms(0), 4), 4);
        // t = 1.0 s: prev 4 weighs 4 -> deny; admitted when 4*(1 - e) < 4,
        // i.e. e > 0: retry 1 ns. At 1.3 s: 4*0.7 = 2.8 -> 2 pass (2.8, 3.8).
        assert_eq!(admit_count(&sc, 2, ms(1_300), 5), 2);
        // Now estimate = 2.8 + 2 = 4.8. Admitted when 4(1-e) + 2 < 4,
        // i.e. e > 0.5 s: retry = 500 ms + 1 ns - 300 ms.
        let d = sc.check(2, ms(1_300));
        assert_eq!(d.retry_after, Nanos(ms(200).0 + 1));
        assert!(sc.check(2, Nanos(ms(1_500).0 + 1)).is_admitted());
    }

    #[test]
    fn keys_are_independent() {
        let sc = SlidingCounter::new(1, ms(1_000), 16);
        assert!(sc.check(1, ms(5)).is_admitted());
        assert!(!sc.check(1, ms(5)).is_admitted());
        assert!(sc.check(2, ms(5)).is_admitted());
    }

    #[test]
    fn huge_limits_are_clamped_not_wrapped() {
        let sc = SlidingCounter::new(u32::MAX, ms(1_000), 16);
        let d = sc.check(1, ms(1));
        assert_eq!(d.limit, u64::from(MAX_LIMIT));
        assert_eq!(d.remaining, u64::from(MAX_LIMIT) - 1);
    }

    #[test]
    fn worth_is_the_estimate_and_limited_exactly_when_denied() {
        let sc = SlidingCounter::new(4, ms(1_000), 16);
        assert_eq!(sc.worth(0, ms(500)), Worth::Fresh);
        let mut s = 0;
        for _ in 0..4 {
            s = sc.decide(s, ms(500)).0.unwrap();
        }
        // 4 in window 0: limited now and at 1.0 s (prev weighs fully)...
        assert!(matches!(
            sc.worth(s, ms(500)),
            Worth::Live { limited: true, .. }
        ));
        assert!(matches!(
            sc.worth(s, ms(1_000)),
            Worth::Live { limited: true, .. }
        ));
        assert!(!sc.decide(s, ms(1_000)).1.is_admitted());
        // ...not 1 ns later, when the next request is admitted.
        let later = Nanos(ms(1_000).0 + 1);
        assert!(matches!(
            sc.worth(s, later),
            Worth::Live { limited: false, until, .. } if until == ms(2_000).0
        ));
        assert!(sc.decide(s, later).1.is_admitted());
        assert_eq!(sc.worth(s, ms(2_000)), Worth::Fresh);
        assert_eq!(sc.decide(s, ms(2_000)).1, sc.decide(0, ms(2_000)).1);
    }

    #[test]
    fn table_stays_bounded_under_key_flood() {
        let sc = SlidingCounter::new(3, ms(60_000), 512);
        assert_eq!(flood(&sc, ms(1)), 100_000);
        assert_eq!(sc.capacity(), 512);
    }

    #[test]
    fn threads_hammering_one_key_admit_exactly_limit() {
        let l: Arc<dyn RateLimiter> = Arc::new(SlidingCounter::new(400, ms(1_000), 64));
        let ds = hammer(&l, 4, 1_000, 77, ms(10));
        assert_eq!(admitted(&ds), 400);
    }

    proptest! {
        /// Documented bound: at most 2*limit in any trailing window, at most
        /// `limit` per aligned window.
        #[test]
        fn within_documented_error(
            ops in prop::collection::vec((0u64..3, 0u64..300), 1..400),
            limit in 1u32..6,
        ) {
            let w = ms(1_000).0;
            let sc = SlidingCounter::new(limit, Nanos(w), 256);
            let mut now = 0;
            let mut times = vec![Vec::new(); 3];
            for (key, dt_ms) in ops {
                now += dt_ms * 1_000_000;
                if sc.check(key, Nanos(now)).is_admitted() {
                    times[key as usize].push(now);
                }
            }
            for t in &times {
                prop_assert!(max_in_span(t, w) <= 2 * limit as usize);
                prop_assert!(max_in_span(t, 1) <= limit as usize);
                let mut per_window = std::collections::HashMap::new();
                for &x in t {
                    *per_window.entry(x / w).or_insert(0usize) += 1;
                }
                prop_assert!(per_window.values().all(|&n| n <= limit as usize));
            }
        }
    }
}
