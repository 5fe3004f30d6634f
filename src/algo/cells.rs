//! Bounded, lock-free keyed table of `AtomicU64` cells: per-client limiter state.
//!
//! Invariants: the slot count is fixed at construction (a power of two, allocated
//! up front) and never grows, so a flood of distinct keys cannot grow memory.
//! Each slot is one tag word (the owning key) and one state word; state changes
//! only through one compare-and-swap per decision, never check-then-act.
//! A racing takeover may make a key inherit another key's state (over-count),
//! never forget an admission it has just counted for the new owner (under-count).
//!
//! Eviction order (issue 10): when all [`PROBE`] slots of a key's bucket have
//! live owners, the one whose state carries the least information goes, as
//! ranked by [`Worth`]: a state equivalent to a fresh key's is simply reused;
//! then, among live states, every key that would still be admitted goes before
//! any key that is being limited, the least spent budget first. So a limited
//! client loses its state only when its whole bucket is limited.

#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Nanos;

/// Slots probed per key: one bucket, which is exactly one 64-byte cache line
/// (4 tags + 4 states), so a lookup costs one line whatever the outcome.
pub const PROBE: usize = 4;

/// Largest slot count of a [`CellTable`]: 4 Mi slots x 16 bytes = 64 MiB.
/// Larger `max_keys` are clamped here (documented bound on memory).
pub const MAX_SLOTS: usize = 1 << 22;

/// Tag of an empty slot. Key 0 is stored as tag 1 (see [`tag_of`]): keys are
/// random-seeded 64-bit hashes, so conflating 0 with 1 costs nothing measurable.
pub const EMPTY: u64 = 0;

/// The tag stored for `key` (never [`EMPTY`]).
#[inline]
pub fn tag_of(key: u64) -> u64 {
    key.max(1)
}

/// Slot count for `max_keys`: rounded up to a power of two, at least [`PROBE`],
/// at most `cap` (itself rounded down to a power of two, and at least [`PROBE`]).
pub fn slots_for(max_keys: usize, cap: usize) -> usize {
    let cap = prev_power_of_two(cap.max(PROBE));
    let want = max_keys.max(PROBE);
    if want >= cap {
        cap
    } else {
        want.next_power_of_two()
    }
}

fn prev_power_of_two(n: usize) -> usize {
    debug_assert!(n > 0);
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Index of the first slot of `key`'s bucket among `buckets` (a power of two).
/// The key is already a hash, but the caller's hash quality is not ours to
/// assume: a Fibonacci multiply spreads sequential keys over the whole table.
#[inline]
pub fn bucket_of(key: u64, buckets: usize) -> usize {
    debug_assert!(buckets.is_power_of_two());
    let bits = buckets.trailing_zeros();
    let mixed = key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    mixed.checked_shr(64 - bits).unwrap_or(0) as usize
}

/// What a slot's state is worth keeping: eviction takes the least.
///
/// The derived order is the eviction order: `Fresh` first, then live states
/// that are not limited (least `used` first, then the soonest `until`), then
/// limited ones (same tie-breaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Worth {
    /// Equivalent to a fresh key's state: reusing the slot as is changes no
    /// decision (a key at its full budget, an expired window, an empty queue).
    Fresh,
    /// State that some future decision depends on.
    Live {
        /// The key's next request would be denied (or queued past the
        /// queue's end) right now: forgetting it would hand out its whole
        /// budget again. Ranked above any key that still has budget.
        limited: bool,
        /// Budget spent, in the algorithm's own unit (comparable only within
        /// one table): what forgetting the state would give back.
        used: u64,
        /// When (ns) the state becomes [`Worth::Fresh`] without new requests.
        until: u64,
    },
}

/// How one algorithm reads and writes its one-word state in a [`CellTable`].
///
/// State `0` must mean "fresh key", and a state that [`CellCodec::worth`]
/// calls [`Worth::Fresh`] must decide exactly like `0` (a reclaimed slot
/// keeps its old state word).
pub trait CellCodec {
    /// What a decision hands back to the caller.
    type Out;
    /// Pure decision on `state` at `now`: the new state (`None`: no write, as
    /// on a denial) and the answer.
    fn decide(&self, state: u64, now: Nanos) -> (Option<u64>, Self::Out);
    /// What `state` is worth keeping at `now` (for eviction).
    fn worth(&self, state: u64, now: Nanos) -> Worth;
}

/// A count of live owners evicted from full buckets. Clones share the count,
/// so successive tables (a live limiter switch) add to one metric.
#[derive(Debug, Clone, Default)]
pub struct Evictions(Arc<AtomicU64>);

impl Evictions {
    /// Counts one eviction.
    #[inline]
    pub fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Evictions so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Back to zero (metrics reset).
    pub fn reset(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// How a key got its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<S> {
    /// The slot already carries this key's tag.
    Mine(usize),
    /// An empty slot, or one whose state is [`Worth::Fresh`], now carries
    /// this key's tag; its state can be used as is.
    Reclaimed(usize),
    /// Every probed slot had a live owner; the least worth keeping (see
    /// [`Worth`]) was taken over. `S` is what the victim's state looked like
    /// *before* the takeover, so the caller can reset it by CAS (and lose
    /// to, hence keep, any racing write).
    Evicted(usize, S),
}

/// Finds or takes a slot for `key` among the [`PROBE`] tags of one bucket.
///
/// `inspect(j)` returns slot `j`'s state snapshot and what it is worth at
/// `now`. Lock-free: a retry happens only when another thread's tag CAS
/// succeeded.
pub fn claim<S>(
    tags: &[AtomicU64],
    key: u64,
    inspect: impl FnMut(usize) -> (S, Worth),
) -> Found<S> {
    let tag = tag_of(key);
    claim_with(tags, |t| t == tag, |_| tag, inspect)
}

/// [`claim`] for tables whose tag word carries more than the key: `is_mine`
/// recognises the key's tag word, and `takeover(old)` gives the word written
/// when taking a slot whose word was `old` (never [`EMPTY`]). The sliding log
/// uses it to bump an epoch in the same CAS that changes the owner.
pub fn claim_with<S>(
    tags: &[AtomicU64],
    is_mine: impl Fn(u64) -> bool,
    takeover: impl Fn(u64) -> u64,
    mut inspect: impl FnMut(usize) -> (S, Worth),
) -> Found<S> {
    debug_assert_eq!(tags.len(), PROBE);
    loop {
        let mut seen = [EMPTY; PROBE];
        for (j, t) in tags.iter().enumerate() {
            seen[j] = t.load(Ordering::Acquire);
            if is_mine(seen[j]) {
                return Found::Mine(j);
            }
        }
        // Prefer an empty or fresh-equivalent slot; otherwise the live owner
        // least worth keeping (see `Worth`'s order).
        let mut victim: Option<(usize, S, Worth)> = None;
        let mut fresh = None;
        for (j, &t) in seen.iter().enumerate() {
            if t == EMPTY {
                fresh = Some(j);
                break;
            }
            let (snap, worth) = inspect(j);
            if worth == Worth::Fresh {
                fresh = Some(j);
                break;
            }
            if victim.as_ref().is_none_or(|v| worth < v.2) {
                victim = Some((j, snap, worth));
            }
        }
        if let Some(j) = fresh {
            if cas_tag(&tags[j], seen[j], takeover(seen[j])) {
                return Found::Reclaimed(j);
            }
        } else if let Some((j, snap, _)) = victim {
            if cas_tag(&tags[j], seen[j], takeover(seen[j])) {
                return Found::Evicted(j, snap);
            }
        }
        // Lost the race for that slot (maybe to our own key): look again.
    }
}

#[inline]
fn cas_tag(tag: &AtomicU64, old: u64, new: u64) -> bool {
    tag.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// One cache line: the tags and single-word states of [`PROBE`] slots.
#[repr(align(64))]
#[derive(Default)]
struct Bucket {
    tags: [AtomicU64; PROBE],
    states: [AtomicU64; PROBE],
}

/// A bounded table of one-word states keyed by client hash.
pub struct CellTable {
    buckets: Box<[Bucket]>,
    evictions: Evictions,
}

impl CellTable {
    /// A table with room for `max_keys` live keys (rounded up to a power of
    /// two, clamped to [`MAX_SLOTS`]), all allocated now. It counts its
    /// evictions privately until [`CellTable::count_into`].
    pub fn new(max_keys: usize) -> Self {
        let slots = slots_for(max_keys, MAX_SLOTS);
        let buckets = (0..slots / PROBE).map(|_| Bucket::default()).collect();
        CellTable {
            buckets,
            evictions: Evictions::default(),
        }
    }

    /// Counts this table's evictions into `evictions` (a shared metric).
    pub fn count_into(&mut self, evictions: Evictions) {
        self.evictions = evictions;
    }

    /// Number of slots (fixed for the table's lifetime).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * PROBE
    }

    /// Runs one atomic decision on `key`'s state, in governor's shape:
    /// load → pure `codec.decide(old)` → CAS → retry on conflict; no write
    /// when `decide` returns `None` as new state (a denial).
    #[inline]
    pub fn update<C: CellCodec>(&self, key: u64, now: Nanos, codec: &C) -> C::Out {
        let bucket = &self.buckets[bucket_of(key, self.buckets.len())];
        let found = claim(&bucket.tags, key, |j| {
            let s = bucket.states[j].load(Ordering::Acquire);
            (s, codec.worth(s, now))
        });
        let (j, mut old) = match found {
            Found::Mine(j) | Found::Reclaimed(j) => (j, bucket.states[j].load(Ordering::Acquire)),
            Found::Evicted(j, snap) => {
                self.evictions.record();
                // Reset by CAS from the pre-takeover snapshot: if anyone wrote
                // since (a racer of the victim or of our key), the CAS fails
                // and we decide on the current state instead, which can only
                // over-count the new owner.
                let (new, r) = codec.decide(0, now);
                match new {
                    None => return r,
                    Some(n) => match bucket.states[j].compare_exchange(
                        snap,
                        n,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return r,
                        Err(cur) => (j, cur),
                    },
                }
            }
        };
        let state = &bucket.states[j];
        loop {
            let (new, r) = codec.decide(old, now);
            let Some(n) = new else { return r };
            match state.compare_exchange_weak(old, n, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return r,
                Err(cur) => old = cur,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_and_clamp() {
        assert_eq!(slots_for(0, MAX_SLOTS), PROBE);
        assert_eq!(slots_for(1000, MAX_SLOTS), 1024);
        assert_eq!(slots_for(1024, MAX_SLOTS), 1024);
        assert_eq!(slots_for(usize::MAX, MAX_SLOTS), MAX_SLOTS);
        assert_eq!(slots_for(10_000, 5000), 4096);
        assert_eq!(CellTable::new(100).capacity(), 128);
    }

    #[test]
    fn bucket_index_in_range() {
        for b in [1usize, 2, 64, 1 << 20] {
            for k in [0u64, 1, 7, u64::MAX, 0xdead_beef] {
                assert!(bucket_of(k, b) < b);
            }
        }
    }

    #[test]
    fn worth_orders_fresh_then_budget_left_then_limited() {
        let live = |limited, used, until| Worth::Live {
            limited,
            used,
            until,
        };
        let mut v = vec![
            live(true, 1, 5),
            live(false, 9, 1),
            live(true, 1, 3),
            Worth::Fresh,
            live(false, 2, 100),
            live(false, 2, 50),
        ];
        v.sort();
        assert_eq!(
            v,
            [
                Worth::Fresh,
                live(false, 2, 50),
                live(false, 2, 100),
                live(false, 9, 1),
                live(true, 1, 3),
                live(true, 1, 5),
            ]
        );
    }

    /// Test codec: the state is a request count (0 = fresh); `limit` or more
    /// is limited; every state expires at `100 + count`.
    struct Counter {
        limit: u64,
    }

    impl CellCodec for Counter {
        type Out = u64;
        fn decide(&self, state: u64, _now: Nanos) -> (Option<u64>, u64) {
            (Some(state + 1), state)
        }
        fn worth(&self, state: u64, _now: Nanos) -> Worth {
            if state == 0 {
                Worth::Fresh
            } else {
                Worth::Live {
                    limited: state >= self.limit,
                    used: state,
                    until: 100 + state,
                }
            }
        }
    }

    #[test]
    fn full_bucket_evicts_the_least_worth_and_resets_it() {
        let ev = Evictions::default();
        let mut t = CellTable::new(PROBE);
        t.count_into(ev.clone()); // one bucket
        let c = Counter { limit: 3 };
        let now = Nanos(10);
        let touch = |key: u64| t.update(key, now, &c);
        // Key 1 is limited (3 requests); keys 2 and 4 spent 2, key 3 one.
        for (key, n) in [(1, 3), (2, 2), (3, 1), (4, 2)] {
            for seen in 0..n {
                assert_eq!(touch(key), seen, "own slot found again");
            }
        }
        assert_eq!(ev.get(), 0, "four keys fit: no eviction");
        // Key 9: bucket full of live owners; key 3 spent the least.
        assert_eq!(touch(9), 0, "evicted slot is reset to fresh");
        assert_eq!(ev.get(), 1);
        assert_eq!(touch(1), 3, "the limited key kept its state");
        // Key 5 takes key 9's slot (one request: the cheapest), and key 9
        // coming back takes key 5's in turn; keys 2 and 4 (two each) stay.
        assert_eq!(touch(5), 0);
        assert_eq!(touch(9), 0, "key 9 was the victim: it comes back fresh");
        assert_eq!((touch(2), touch(4)), (2, 2));
        assert_eq!(ev.get(), 3);
        assert_eq!(touch(1), 4, "still there");
    }

    #[test]
    fn limited_key_is_evicted_only_when_its_whole_bucket_is_limited() {
        let ev = Evictions::default();
        let mut t = CellTable::new(PROBE);
        t.count_into(ev.clone());
        let c = Counter { limit: 2 };
        let now = Nanos(0);
        // Victim limited first; then 100x the table in one-request keys.
        t.update(7, now, &c);
        t.update(7, now, &c);
        for k in 1_000..1_000 + 100 * PROBE as u64 {
            assert_eq!(t.update(k, now, &c), 0);
        }
        assert_eq!(t.update(7, now, &c), 2, "victim kept its count");
        assert!(ev.get() >= 100 * PROBE as u64 - PROBE as u64);
        // Three more limited keys fill the bucket: now a limited key has to
        // go, the one that spent the least (one of 20..22: 7 has one more).
        for k in [20, 21, 22] {
            for _ in 0..3 {
                t.update(k, now, &c);
            }
        }
        assert_eq!(t.update(7, now, &c), 3, "7 is in the bucket with 20..22");
        assert_eq!(t.update(30, now, &c), 0, "a new key takes a limited slot");
        let survivors = [7u64, 20, 21, 22]
            .iter()
            .filter(|&&k| t.update(k, now, &c) > 0)
            .count();
        assert_eq!(survivors, 3);
    }

    #[test]
    fn fresh_slot_is_reclaimed_without_reset_or_count() {
        struct Expiring;
        impl CellCodec for Expiring {
            type Out = u64;
            fn decide(&self, state: u64, _now: Nanos) -> (Option<u64>, u64) {
                (Some(50), state)
            }
            fn worth(&self, state: u64, now: Nanos) -> Worth {
                if state <= now.0 {
                    Worth::Fresh
                } else {
                    Worth::Live {
                        limited: false,
                        used: 1,
                        until: state,
                    }
                }
            }
        }
        let ev = Evictions::default();
        let mut t = CellTable::new(PROBE);
        t.count_into(ev.clone());
        for k in 1..=4 {
            t.update(k, Nanos(0), &Expiring);
        }
        // At now=60 every state (expiry 50) is fresh: key 7 takes one over
        // and sees its old state word, which the algorithm treats as fresh.
        assert_eq!(t.update(7, Nanos(60), &Expiring), 50);
        assert_eq!(ev.get(), 0, "reusing a fresh slot is not an eviction");
    }
}
