//! Bounded, lock-free keyed table of `AtomicU64` cells: per-client limiter state.
//!
//! Invariants: the slot count is fixed at construction (a power of two, allocated
//! up front) and never grows, so a flood of distinct keys cannot grow memory.
//! Each slot is one tag word (the owning key) and one state word; state changes
//! only through one compare-and-swap per decision, never check-then-act.
//! A racing takeover may make a key inherit another key's state (over-count),
//! never forget an admission it has just counted for the new owner (under-count).

#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

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

/// How a key got its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found<S> {
    /// The slot already carries this key's tag.
    Mine(usize),
    /// An empty or stale slot (its state is equivalent to a fresh key's) now
    /// carries this key's tag; its state can be used as is.
    Reclaimed(usize),
    /// Every probed slot had a live owner; the one whose state expires soonest
    /// (it carries the least information) was taken over. `S` is what the
    /// victim's state looked like *before* the takeover, so the caller can
    /// reset it by CAS (and lose to, hence keep, any racing write).
    Evicted(usize, S),
}

/// Finds or takes a slot for `key` among the [`PROBE`] tags of one bucket.
///
/// `inspect(j)` returns slot `j`'s state snapshot and the time (ns) at which
/// that state becomes equivalent to a fresh key's; `<= now` means stale.
/// Lock-free: a retry happens only when another thread's tag CAS succeeded.
pub fn claim<S>(
    tags: &[AtomicU64],
    key: u64,
    now: Nanos,
    inspect: impl FnMut(usize) -> (S, u64),
) -> Found<S> {
    let tag = tag_of(key);
    claim_with(tags, now, |t| t == tag, |_| tag, inspect)
}

/// [`claim`] for tables whose tag word carries more than the key: `is_mine`
/// recognises the key's tag word, and `takeover(old)` gives the word written
/// when taking a slot whose word was `old` (never [`EMPTY`]). The sliding log
/// uses it to bump an epoch in the same CAS that changes the owner.
pub fn claim_with<S>(
    tags: &[AtomicU64],
    now: Nanos,
    is_mine: impl Fn(u64) -> bool,
    takeover: impl Fn(u64) -> u64,
    mut inspect: impl FnMut(usize) -> (S, u64),
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
        // Prefer an empty or stale slot; otherwise the live owner whose state
        // expires first: evicting it forgets the least (closest to fresh).
        let mut victim: Option<(usize, S, u64)> = None;
        let mut stale = None;
        for (j, &t) in seen.iter().enumerate() {
            if t == EMPTY {
                stale = Some(j);
                break;
            }
            let (snap, expiry) = inspect(j);
            if expiry <= now.0 {
                stale = Some(j);
                break;
            }
            if victim.as_ref().is_none_or(|v| expiry < v.2) {
                victim = Some((j, snap, expiry));
            }
        }
        if let Some(j) = stale {
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
///
/// State `0` must mean "fresh key" to the algorithm using the table, and an
/// algorithm must treat any stale state exactly like a fresh one, because a
/// reclaimed slot keeps its old state word.
pub struct CellTable {
    buckets: Box<[Bucket]>,
}

impl CellTable {
    /// A table with room for `max_keys` live keys (rounded up to a power of
    /// two, clamped to [`MAX_SLOTS`]), all allocated now.
    pub fn new(max_keys: usize) -> Self {
        let slots = slots_for(max_keys, MAX_SLOTS);
        let buckets = (0..slots / PROBE).map(|_| Bucket::default()).collect();
        CellTable { buckets }
    }

    /// Number of slots (fixed for the table's lifetime).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * PROBE
    }

    /// Runs one atomic decision on `key`'s state, in governor's shape:
    /// load → pure `decide(old)` → CAS → retry on conflict; no write when
    /// `decide` returns `None` as new state (a denial).
    ///
    /// `expiry(state)` is when that state becomes equivalent to fresh (ns).
    #[inline]
    pub fn update<R>(
        &self,
        key: u64,
        now: Nanos,
        expiry: impl Fn(u64) -> u64,
        mut decide: impl FnMut(u64) -> (Option<u64>, R),
    ) -> R {
        let bucket = &self.buckets[bucket_of(key, self.buckets.len())];
        let found = claim(&bucket.tags, key, now, |j| {
            let s = bucket.states[j].load(Ordering::Acquire);
            (s, expiry(s))
        });
        let (j, mut old) = match found {
            Found::Mine(j) | Found::Reclaimed(j) => (j, bucket.states[j].load(Ordering::Acquire)),
            Found::Evicted(j, snap) => {
                // Reset by CAS from the pre-takeover snapshot: if anyone wrote
                // since (a racer of the victim or of our key), the CAS fails
                // and we decide on the current state instead, which can only
                // over-count the new owner.
                let (new, r) = decide(0);
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
            let (new, r) = decide(old);
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

    /// Counter that never expires: shows eviction picks a slot, resets it,
    /// and that a re-found key keeps its state.
    #[test]
    fn full_bucket_evicts_soonest_expiring_and_resets() {
        let t = CellTable::new(PROBE); // one bucket
        let now = Nanos(10);
        // State = expiry time; each key writes its own expiry 100 + key.
        let touch = |key: u64| t.update(key, now, |s| s, |old| (Some(100 + key), old));
        for k in 1..=4 {
            assert_eq!(touch(k), 0, "fresh key sees state 0");
        }
        assert_eq!(touch(3), 103, "own slot found again");
        // Key 9: bucket full of live owners; key 1 expires first (101).
        assert_eq!(touch(9), 0, "evicted slot is reset to fresh");
        assert_eq!(touch(1), 0, "key 1 was the victim: it comes back fresh");
        assert_eq!(t.capacity(), PROBE);
    }

    #[test]
    fn stale_slot_is_reclaimed_without_reset() {
        let t = CellTable::new(PROBE);
        for k in 1..=4 {
            t.update(k, Nanos(0), |s| s, |_| (Some(50), ()));
        }
        // At now=60 every state (expiry 50) is stale: key 7 takes one over
        // and sees its old state word, which the algorithm treats as fresh.
        let seen = t.update(7, Nanos(60), |s| s, |old| (None, old));
        assert_eq!(seen, 50);
    }
}
