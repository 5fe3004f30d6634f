//! Sliding log: at most `limit` requests in ANY trailing window (exact).
//!
//! Per key, a ring of `limit` timestamps; an admission overwrites an entry only
//! if its stamp has left the window (CAS), so at most `limit` unexpired stamps,
//! hence admissions, exist at any `now`, whatever the races. The head index is
//! only a hint pointing at the oldest entry. Memory is capped at [`MAX_TABLE_BYTES`].

use std::sync::atomic::{AtomicU64, Ordering};

use api_gateway_protocol::{LimitSpec, SLIDING_LOG_MAX_LIMIT};

use super::{window_ns, Decision, RateLimiter};
use crate::algo::cells::{bucket_of, claim_with, slots_for, Evictions, Found, Worth, PROBE};
use crate::algo::Nanos;

/// Cap on the table's memory: `slots * (limit + 2) * 8` bytes stay below this,
/// by tracking fewer keys than asked if needed (e.g. 4096 keys at `limit` 1024,
/// 65536 at `limit` 100). Extra keys evict others, as in any full table.
pub const MAX_TABLE_BYTES: usize = 64 << 20;

/// Low bits of a tag word (and high bits of a stamp word): the slot's epoch.
const EPOCH_BITS: u32 = 12;
const EPOCH_MASK: u64 = (1 << EPOCH_BITS) - 1;
/// Low bits of a stamp word: microseconds + 1 (0 = unused), 142 years' range.
const STAMP_BITS: u32 = 64 - EPOCH_BITS;
const STAMP_MASK: u64 = (1 << STAMP_BITS) - 1;

/// Exact sliding-window log over a bounded table of per-key rings.
///
/// Contention is bounded: a decision is one CAS on the oldest entry plus one
/// CAS on the head hint. A retry happens only when another thread's CAS on the
/// same key succeeded (lock-free). The head can lag by at most the one admission
/// in progress, and any thread that sees it lag advances it (helping), so no
/// thread waits on another's progress.
///
/// Eviction resets a ring in O(1): a slot's tag word is `key:52 | epoch:12`,
/// and taking a slot over bumps the epoch *in the same CAS* that changes the
/// owner. Stamps are `epoch:12 | µs:52`, and a stamp of an older epoch counts as
/// empty. A late writer whose view of the epoch is stale sees a newer epoch in the
/// ring and starts over rather than overwrite it, so a racing takeover cannot erase
/// the new owner's admissions. It can over-count only if one slot is taken over
/// 4096 times within a window (epoch wrap).
///
/// Stamps are rounded *up* to whole microseconds: an admission leaves the window
/// at most 1 µs late, never early.
pub struct SlidingLog {
    spec: LimitSpec,
    limit: usize,
    window: u64,
    /// Per slot: `key:52 | epoch:12` of the owner (0 = never used).
    tags: Box<[AtomicU64]>,
    /// Per slot: admissions so far; `head % limit` is the oldest entry.
    heads: Box<[AtomicU64]>,
    /// Per slot: `limit` stamp words, `epoch:12 | (µs + 1):52`.
    stamps: Box<[AtomicU64]>,
    /// Live owners taken over from full buckets.
    evictions: Evictions,
}

/// A stamp word as seen by the owner of epoch `epoch`.
enum Seen {
    /// Counts until this time (ns); `0` for unused or older-epoch entries.
    Until(u64),
    /// Written under a newer epoch: the slot changed owner since we looked.
    Newer,
}

impl SlidingLog {
    /// `limit` requests (clamped to `1..=SLIDING_LOG_MAX_LIMIT`) per trailing
    /// `window`, tracking up to `max_keys` keys within [`MAX_TABLE_BYTES`].
    pub fn new(limit: u32, window: Nanos, max_keys: usize) -> Self {
        let l = limit.clamp(1, SLIDING_LOG_MAX_LIMIT) as usize;
        let slots = slots_for(max_keys, MAX_TABLE_BYTES / ((l + 2) * 8));
        let atomics = |n: usize| (0..n).map(|_| AtomicU64::new(0)).collect::<Box<[_]>>();
        SlidingLog {
            spec: LimitSpec::SlidingLog {
                limit,
                window_ms: window.as_millis(),
            },
            limit: l,
            window: window_ns(window),
            tags: atomics(slots),
            heads: atomics(slots),
            stamps: atomics(slots * l),
            evictions: Evictions::default(),
        }
    }

    /// Counts the table's evictions into `evictions` (shared with the metric).
    pub fn counting(mut self, evictions: Evictions) -> Self {
        self.evictions = evictions;
        self
    }

    /// Slots in the key table (fixed).
    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    /// Bytes held by the table (tags, heads, rings).
    pub fn table_bytes(&self) -> usize {
        (self.tags.len() + self.heads.len() + self.stamps.len()) * 8
    }

    #[inline]
    fn entry(&self, slot: usize, pos: u64) -> &AtomicU64 {
        &self.stamps[slot * self.limit + (pos % self.limit as u64) as usize]
    }

    /// How the owner of `epoch` reads stamp word `w`.
    #[inline]
    fn seen(&self, w: u64, epoch: u64) -> Seen {
        let (e, field) = (w >> STAMP_BITS, w & STAMP_MASK);
        if w == 0 {
            Seen::Until(0)
        } else if e == epoch {
            Seen::Until(((field - 1) * 1_000).saturating_add(self.window))
        } else if (e.wrapping_sub(epoch) & EPOCH_MASK) < (1 << (EPOCH_BITS - 1)) {
            Seen::Newer
        } else {
            Seen::Until(0)
        }
    }

    /// What slot `s` is worth keeping at `now`: fresh once its newest stamp
    /// has left the window; else limited when all `limit` stamps are still in
    /// it (as `check` sees it: the head entry and, if the head hint may lag,
    /// the next one). Keys with budget left are ranked by expiry only
    /// (`used` 0): counting their stamps would cost a search of the ring per
    /// candidate on every miss, and the guarantee needs only `limited`. A
    /// slot written under a newer epoch than its tag says is being taken
    /// over right now: never chosen.
    ///
    /// `beat`: the expiry of a candidate with budget left already seen. A
    /// slot expiring no sooner loses to it either way, so it is reported as
    /// limited without loading its oldest stamp (one cache line per probed
    /// slot on the eviction path).
    fn slot_worth(&self, s: usize, now: Nanos, beat: u64) -> Worth {
        const BUSY: Worth = Worth::Live {
            limited: true,
            used: u64::MAX,
            until: u64::MAX,
        };
        let limit = self.limit as u64;
        let epoch = self.tags[s].load(Ordering::Acquire) & EPOCH_MASK;
        let head = self.heads[s].load(Ordering::Acquire);
        let until = |pos: u64| match self.seen(self.entry(s, pos).load(Ordering::Acquire), epoch) {
            Seen::Until(t) => Some(t),
            Seen::Newer => None,
        };
        let Some(newest) = until(head.wrapping_add(limit - 1)) else {
            return BUSY;
        };
        if newest <= now.0 {
            return Worth::Fresh;
        }
        if newest >= beat {
            return Worth::Live {
                limited: true,
                used: limit,
                until: newest,
            };
        }
        let Some(oldest) = until(head) else {
            return BUSY;
        };
        let limited = oldest > now.0 && !(limit > 1 && until(head + 1).is_some_and(|t| t <= now.0));
        Worth::Live {
            limited,
            used: if limited { limit } else { 0 },
            until: newest,
        }
    }

    /// Entries after `from` that are already expired: entries are in
    /// admission order from the head, so the expired ones are a prefix and a
    /// binary search finds it (log2(limit) loads).
    fn expired_after(&self, slot: usize, from: u64, epoch: u64, now: Nanos) -> u64 {
        let (mut lo, mut hi) = (0u64, self.limit as u64 - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let w = self.entry(slot, from + 1 + mid).load(Ordering::Acquire);
            if matches!(self.seen(w, epoch), Seen::Until(t) if t <= now.0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

impl RateLimiter for SlidingLog {
    fn check(&self, key: u64, now: Nanos) -> Decision {
        let limit = self.limit as u64;
        let base = bucket_of(key, self.tags.len() / PROBE) * PROBE;
        // 52 bits of key identify the owner (high bits folded in); a clash
        // needs the same bucket too and only makes two keys share a ring.
        let key_part = ((key ^ (key >> STAMP_BITS)) & STAMP_MASK).max(1);
        // Rounded up: the stamp may only leave the window late.
        let field = (now.0.div_ceil(1_000) + 1).min(STAMP_MASK);
        // Expiry of the best candidate with budget left in this round of
        // probing: a slot expiring later cannot be chosen whatever its
        // state, so `slot_worth` skips loading its oldest stamp.
        let mut beat = u64::MAX;
        'own: loop {
            let found = claim_with(
                &self.tags[base..base + PROBE],
                |t| t >> EPOCH_BITS == key_part,
                |old| (key_part << EPOCH_BITS) | (old.wrapping_add(1) & EPOCH_MASK),
                |j| {
                    if j == 0 {
                        beat = u64::MAX; // a new round of probing
                    }
                    let w = self.slot_worth(base + j, now, beat);
                    if let Worth::Live {
                        limited: false,
                        until,
                        ..
                    } = w
                    {
                        beat = beat.min(until);
                    }
                    ((), w)
                },
            );
            let slot = base
                + match found {
                    Found::Mine(j) | Found::Reclaimed(j) => j,
                    Found::Evicted(j, ()) => {
                        self.evictions.record();
                        j
                    }
                };
            let tag = self.tags[slot].load(Ordering::Acquire);
            if tag >> EPOCH_BITS != key_part {
                continue 'own; // taken over already
            }
            let epoch = tag & EPOCH_MASK;
            let stamp = (epoch << STAMP_BITS) | field;
            loop {
                let head = self.heads[slot].load(Ordering::Acquire);
                let oldest = self.entry(slot, head);
                let w = oldest.load(Ordering::Acquire);
                let Seen::Until(until) = self.seen(w, epoch) else {
                    continue 'own;
                };
                if until <= now.0 {
                    if oldest
                        .compare_exchange(w, stamp, Ordering::AcqRel, Ordering::Acquire)
                        .is_err()
                    {
                        continue; // another admission took this entry first
                    }
                    // Failure means a helper already advanced it: fine.
                    let _ = self.heads[slot].compare_exchange(
                        head,
                        head + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    let remaining = self.expired_after(slot, head, epoch, now);
                    return Decision::admit(Nanos::ZERO, limit, remaining, Nanos(self.window));
                }
                // Oldest by the hint is still in the window. If the hint lags
                // (an admission between its entry CAS and head CAS), the true
                // oldest is the next entry: help advance the head, look again.
                let Seen::Until(next) =
                    self.seen(self.entry(slot, head + 1).load(Ordering::Acquire), epoch)
                else {
                    continue 'own;
                };
                if limit > 1 && next <= now.0 {
                    let _ = self.heads[slot].compare_exchange(
                        head,
                        head + 1,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    continue;
                }
                let first_out = until.min(next);
                let newest = self
                    .entry(slot, head.wrapping_add(limit - 1))
                    .load(Ordering::Acquire);
                let reset = match self.seen(newest, epoch) {
                    Seen::Until(t) => t.max(until),
                    Seen::Newer => until,
                };
                return Decision::deny(limit, Nanos(reset - now.0), Nanos(first_out - now.0));
            }
        }
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

    #[test]
    fn admits_again_exactly_when_oldest_ages_out() {
        let sl = SlidingLog::new(3, ms(1_000), 16);
        let d = sl.check(1, ms(100));
        assert_eq!((d.verdict, d.remaining), (Verdict::Allow, 2));
        assert_eq!(sl.check(1, ms(400)).remaining, 1);
        assert_eq!(sl.check(1, ms(700)).remaining, 0);
        let d = sl.check(1, ms(800));
        assert_eq!(d.verdict, Verdict::Deny);
        assert_eq!(d.retry_after, ms(300), "the 100 ms stamp leaves at 1100 ms");
        assert_eq!(d.reset_after, ms(900), "the 700 ms stamp leaves at 1700 ms");
        // 1 ns before the oldest ages out: still denied; at that instant: admitted.
        assert!(!sl.check(1, Nanos(ms(1_100).0 - 1)).is_admitted());
        let d = sl.check(1, ms(1_100));
        assert_eq!((d.verdict, d.remaining), (Verdict::Allow, 0));
        assert!(!sl.check(1, ms(1_399)).is_admitted());
        let d = sl.check(1, ms(1_400));
        assert!(d.is_admitted());
        // After a long pause the whole log has aged out.
        assert_eq!(sl.check(1, ms(10_000)).remaining, 2);
    }

    #[test]
    fn no_boundary_burst_unlike_fixed_window() {
        let sl = SlidingLog::new(10, ms(1_000), 16);
        let before = (0..11)
            .filter(|_| sl.check(1, ms(999)).is_admitted())
            .count();
        let after = (0..11)
            .filter(|_| sl.check(1, ms(1_001)).is_admitted())
            .count();
        assert_eq!((before, after), (10, 0));
        assert_eq!(sl.check(1, ms(1_999)).verdict, Verdict::Allow);
    }

    #[test]
    fn keys_are_independent() {
        let sl = SlidingLog::new(1, ms(1_000), 16);
        assert!(sl.check(1, ms(5)).is_admitted());
        assert!(!sl.check(1, ms(5)).is_admitted());
        assert!(sl.check(2, ms(5)).is_admitted());
        assert!(
            sl.check(0, Nanos::ZERO).is_admitted(),
            "t = 0 is a real stamp"
        );
        assert!(!sl.check(0, Nanos::ZERO).is_admitted());
    }

    #[test]
    fn memory_is_capped() {
        let sl = SlidingLog::new(SLIDING_LOG_MAX_LIMIT, ms(1_000), 1 << 20);
        assert_eq!(sl.capacity(), 4096);
        assert!(sl.table_bytes() <= MAX_TABLE_BYTES);
        let small = SlidingLog::new(100, ms(1_000), 1000);
        assert_eq!(small.capacity(), 1024);
    }

    #[test]
    fn table_stays_bounded_under_key_flood() {
        let sl = SlidingLog::new(2, ms(60_000), 1024);
        let bytes = sl.table_bytes();
        // Evicted rings are reset (epoch bump): every fresh key gets through.
        assert_eq!(flood(&sl, ms(1)), 100_000);
        assert_eq!(sl.table_bytes(), bytes);
        assert_eq!(sl.capacity(), 1024);
    }

    #[test]
    fn worth_is_limited_while_every_stamp_is_in_the_window() {
        let sl = SlidingLog::new(3, ms(1_000), 4); // one bucket
        let slot_of = |key: u64| {
            (0..PROBE)
                .find(|&j| sl.tags[j].load(Ordering::Acquire) >> EPOCH_BITS == key)
                .unwrap()
        };
        sl.check(5, ms(100));
        let s = slot_of(5);
        let live = |limited, used, until: u64| Worth::Live {
            limited,
            used,
            until,
        };
        assert_eq!(
            sl.slot_worth(s, ms(100), u64::MAX),
            live(false, 0, ms(1_100).0)
        );
        sl.check(5, ms(400));
        sl.check(5, ms(700));
        assert_eq!(
            sl.slot_worth(s, ms(800), u64::MAX),
            live(true, 3, ms(1_700).0)
        );
        assert_eq!(
            sl.slot_worth(s, ms(1_100), u64::MAX),
            live(false, 0, ms(1_700).0)
        );
        assert_eq!(
            sl.slot_worth(s, ms(1_699), u64::MAX),
            live(false, 0, ms(1_700).0)
        );
        assert_eq!(sl.slot_worth(s, ms(1_700), u64::MAX), Worth::Fresh);
        // Losing to a sooner-expiring candidate anyway: not looked at closely.
        assert_eq!(
            sl.slot_worth(s, ms(1_100), ms(1_500).0),
            live(true, 3, ms(1_700).0)
        );
    }

    #[test]
    fn churn_evicts_one_request_keys_before_a_limited_one() {
        let ev = Evictions::default();
        let sl = SlidingLog::new(3, ms(60_000), 4).counting(ev.clone()); // one bucket
        for _ in 0..3 {
            assert!(sl.check(77, ms(10)).is_admitted());
        }
        for k in 1_000..1_400 {
            assert!(sl.check(k, ms(20)).is_admitted());
        }
        assert!(!sl.check(77, ms(30)).is_admitted(), "still limited");
        assert_eq!(ev.get(), 400 - 3);
    }

    #[test]
    fn threads_hammering_one_key_admit_exactly_limit() {
        let l: Arc<dyn RateLimiter> = Arc::new(SlidingLog::new(500, ms(1_000), 64));
        let ds = hammer(&l, 4, 1_000, 3, ms(10));
        assert_eq!(admitted(&ds), 500);
    }

    #[test]
    fn threads_hammering_with_advancing_time_never_exceed_limit() {
        // Each thread uses its own advancing `now`; at most `limit` stamps
        // may be unexpired at any time, so per thread-time the count holds.
        let sl = Arc::new(SlidingLog::new(50, ms(100), 64));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let sl = Arc::clone(&sl);
                std::thread::spawn(move || {
                    (0..2_000u64)
                        .filter(|i| sl.check(9, ms(i / 4)).is_admitted())
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // Each entry's successive stamps are >= 100 ms apart and lie in
        // [0, 500 ms): at most 5 per entry, 50 entries.
        assert!(total <= 250, "{total}");
        assert!(total >= 50);
    }

    proptest! {
        /// Never more than `limit` in any trailing window.
        #[test]
        fn never_more_than_limit_in_any_trailing_window(
            ops in prop::collection::vec((0u64..3, 0u64..300), 1..400),
            limit in 1u32..6,
        ) {
            let w = ms(1_000).0;
            let sl = SlidingLog::new(limit, Nanos(w), 256);
            let mut now = 0;
            let mut times = vec![Vec::new(); 3];
            for (key, dt_ms) in ops {
                now += dt_ms * 1_000_000;
                let d = sl.check(key, Nanos(now));
                if d.is_admitted() {
                    times[key as usize].push(now);
                } else {
                    // Exactness: denied only when the log is full.
                    let t = &times[key as usize];
                    let in_window = t.iter().filter(|&&x| x + w > now).count();
                    prop_assert_eq!(in_window, limit as usize);
                }
            }
            for t in &times {
                prop_assert!(max_in_span(t, w) <= limit as usize);
            }
        }
    }
}
