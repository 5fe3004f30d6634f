//! The local half of a global limit: per key and window, own admissions,
//! the last global count pulled from the store, and this gateway's share.
//!
//! Bounded: a fixed array of 4-entry buckets, each behind one short mutex
//! (held for a few arithmetic operations, never across I/O); a full bucket
//! evicts the entry least worth keeping, in the local tables' order
//! ([`crate::algo::cells::Worth`]): keys with budget left before limited ones. Windows are aligned on wall-clock time so every
//! gateway numbers them alike. Decisions err towards denying, except where
//! the README's error bound says otherwise.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use crossbeam_channel::{Receiver, Sender};

use super::super::Decision;
use crate::algo::cells::{bucket_of, tag_of, Evictions, Worth};
use crate::algo::Nanos;

/// Entries per bucket (one lock covers them).
const WAYS: usize = 4;
/// Largest number of entries (x 72 bytes: 72 MiB); larger `max_keys` are clamped.
pub const MAX_ENTRIES: usize = 1 << 20;
/// How long a fail-closed denial asks clients to wait.
const CLOSED_RETRY: Nanos = Nanos(1_000_000_000);

/// Which window algorithm the table implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Fixed window: at most `limit` per aligned window.
    Fixed,
    /// Sliding counter: `prev * (W - e) / W + curr < limit`.
    Sliding,
}

/// How decisions are made right now (from the store's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Store up: global estimate and local share.
    Global,
    /// Store down, fail-open: global estimate as last known, no share
    /// (each gateway may use the whole limit).
    Local,
    /// Store down, fail-closed: deny.
    Deny,
}

/// Construction parameters of a [`GlobalTable`].
pub struct Params {
    /// Algorithm.
    pub kind: Kind,
    /// Requests per window.
    pub limit: u64,
    /// Window length.
    pub window_ms: u64,
    /// Unix time (ns) of the gateway clock's zero.
    pub unix_offset: u64,
    /// Sync period (retry hint when the share is used up).
    pub sync_ms: u64,
    /// Most keys tracked.
    pub max_keys: usize,
    /// Where evictions of live entries are counted.
    pub evictions: Evictions,
}

/// One key's state in one window. `local >= acked` always.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    /// Tag of the key (0: empty).
    key: u64,
    /// Window number (wall-clock aligned).
    widx: u64,
    /// Global count of window `widx` at the last sync (includes `acked`).
    base: u64,
    /// Own admissions already included in `base`.
    acked: u64,
    /// Own admissions in window `widx`.
    local: u64,
    /// Global count of window `widx - 1` (sliding counter), own view.
    prev: u64,
    /// Own admissions of window `widx - 1` not yet pushed.
    prev_delta: u64,
    /// Own admissions since the last sync answer for this key.
    epoch: u64,
    /// Waiting for the sync thread.
    queued: bool,
}

impl Entry {
    fn fresh(key: u64, widx: u64) -> Entry {
        Entry {
            key,
            widx,
            ..Entry::default()
        }
    }

    /// Moves the entry to window `widx` (no-op if already there).
    fn roll(&mut self, widx: u64) {
        if self.widx == widx {
            return;
        }
        let (prev, prev_delta) = if self.widx + 1 == widx {
            (
                self.base + (self.local - self.acked),
                self.local - self.acked,
            )
        } else {
            (0, 0)
        };
        *self = Entry {
            prev,
            prev_delta,
            queued: self.queued,
            ..Entry::fresh(self.key, widx)
        };
    }
}

/// What the sync thread pushes for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Bucket index (to find the entry again).
    pub bucket: u32,
    /// Key tag.
    pub key: u64,
    /// Window of the push.
    pub widx: u64,
    /// `local` at snapshot time.
    pub snap_local: u64,
    /// Own admissions to add to the window's global count.
    pub delta: u64,
    /// Own admissions to add to the previous window's count (sliding only).
    pub prev_delta: u64,
}

/// The store's answer for one [`Record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Global count of the record's window after the push.
    pub cur: u64,
    /// Global count of the previous window after the push (sliding only).
    pub prev: Option<u64>,
}

/// Bounded per-key state of a global limit.
pub struct GlobalTable {
    kind: Kind,
    limit: u64,
    window: u64,
    window_ms: u64,
    unix_offset: u64,
    sync: Nanos,
    buckets: Box<[Mutex<[Entry; WAYS]>]>,
    dirty_tx: Sender<u32>,
    dirty_rx: Receiver<u32>,
    overflow: AtomicBool,
    evictions: Evictions,
}

impl GlobalTable {
    /// A table for `p.max_keys` keys (rounded up to a power of two, at most
    /// [`MAX_ENTRIES`]), all allocated now.
    pub fn new(p: Params) -> GlobalTable {
        let n = crate::algo::cells::slots_for(p.max_keys, MAX_ENTRIES) / WAYS;
        let (dirty_tx, dirty_rx) = crossbeam_channel::bounded(n.min(65_536));
        GlobalTable {
            kind: p.kind,
            limit: p.limit,
            window: p.window_ms.max(1).saturating_mul(1_000_000),
            window_ms: p.window_ms.max(1),
            unix_offset: p.unix_offset,
            sync: Nanos::from_millis(p.sync_ms),
            buckets: (0..n)
                .map(|_| Mutex::new([Entry::default(); WAYS]))
                .collect(),
            dirty_tx,
            dirty_rx,
            overflow: AtomicBool::new(false),
            evictions: p.evictions,
        }
    }

    /// Algorithm.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Window length in ms (part of the store key: counts of different
    /// window lengths never mix).
    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// Entries (fixed).
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    fn lock(&self, b: usize) -> MutexGuard<'_, [Entry; WAYS]> {
        // A panic elsewhere while holding the lock leaves plain counters:
        // still usable, so never propagate the poison.
        self.buckets[b].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for `tag` in `slots` at window `widx` (`e` ns into it):
    /// its own, an empty or stale one, or (bucket full) the one least worth
    /// keeping ([`GlobalTable::worth`]), reset.
    fn find(&self, slots: &mut [Entry; WAYS], tag: u64, widx: u64, e: u64) -> usize {
        if let Some(i) = slots.iter().position(|e| e.key == tag) {
            return i;
        }
        // Stale: its window and the next are over (no estimate uses it).
        let stale = slots.iter().position(|e| e.key == 0 || e.widx + 2 <= widx);
        let i = stale.unwrap_or_else(|| {
            self.evictions.record();
            (0..WAYS)
                .min_by_key(|&i| self.worth(&slots[i], widx, e))
                .unwrap_or(0)
        });
        // Eviction forgets unpushed admissions of the victim: an under-count
        // bounded by table pressure (size the table with `max_keys`).
        slots[i] = Entry {
            queued: slots[i].queued,
            ..Entry::fresh(tag, widx)
        };
        i
    }

    /// What a live entry is worth keeping at window `widx`, `e` ns in:
    /// limited when the estimate this gateway knows (global count at the
    /// last sync plus its own unpushed admissions) has reached the limit,
    /// which is what a reset would forget; the estimate is the spent budget.
    fn worth(&self, en: &Entry, widx: u64, e: u64) -> Worth {
        let mut en = *en;
        en.roll(widx);
        let w = u128::from(self.window);
        let cur = u128::from(en.base + (en.local - en.acked));
        let prev_w = match self.kind {
            Kind::Fixed => 0,
            Kind::Sliding => u128::from(en.prev) * (w - u128::from(e)),
        };
        let est = prev_w + cur * w;
        Worth::Live {
            limited: est >= u128::from(self.limit) * w,
            used: u64::try_from(est >> 8).unwrap_or(u64::MAX),
            until: (widx + 2).saturating_mul(self.window),
        }
    }

    /// One decision for `key` at gateway time `now`.
    pub fn check(&self, key: u64, now: Nanos, mode: Mode, nodes: u64) -> Decision {
        let t = now.0.saturating_add(self.unix_offset);
        let w = self.window;
        let widx = t / w;
        let e = t - widx * w;
        let to_end = w - e;
        let reset = match self.kind {
            Kind::Fixed => Nanos(to_end),
            Kind::Sliding => Nanos(to_end + w),
        };
        if mode == Mode::Deny {
            return Decision::deny(self.limit, reset, CLOSED_RETRY);
        }
        let b = bucket_of(key, self.buckets.len());
        let mut slots = self.lock(b);
        let i = self.find(&mut slots, tag_of(key), widx, e);
        let en = &mut slots[i];
        en.roll(widx);
        let d = self.decide(en, e, reset, mode == Mode::Global, nodes);
        // Touched keys are synced (admitted: to push; denied: to refresh the
        // share or the global count).
        let newly = !en.queued;
        en.queued = true;
        drop(slots);
        if newly && self.dirty_tx.try_send(b as u32).is_err() {
            self.overflow.store(true, Ordering::Release);
        }
        d
    }

    /// Pure decision on `en` (updated on admission). All estimates are scaled
    /// by `W` (u128) so the sliding weight `prev * (W - e) / W` stays exact.
    fn decide(&self, en: &mut Entry, e: u64, reset: Nanos, share: bool, nodes: u64) -> Decision {
        let w = u128::from(self.window);
        let cap = u128::from(self.limit) * w;
        let cur = en.base + (en.local - en.acked);
        let prev_w = match self.kind {
            Kind::Fixed => 0,
            Kind::Sliding => u128::from(en.prev) * (w - u128::from(e)),
        };
        let est = prev_w + u128::from(cur) * w;
        if est >= cap {
            return Decision::deny(self.limit, reset, self.retry(en.prev, cur, e));
        }
        if share {
            // This gateway's part of what was globally left at the last
            // sync: ceil(left / gateways), so at least 1 while anything is left.
            let known = prev_w + u128::from(en.base) * w;
            let left = cap.saturating_sub(known);
            let part = left.div_ceil(u128::from(nodes.max(1)) * w);
            if u128::from(en.epoch) >= part {
                // The next sync brings a fresh share.
                return Decision::deny(self.limit, reset, self.sync);
            }
        }
        en.local += 1;
        en.epoch += 1;
        let remaining = cap.saturating_sub(est + w).div_ceil(w) as u64;
        Decision::admit(Nanos::ZERO, self.limit, remaining, reset)
    }

    /// Time until the estimate drops below the limit (as the local sliding
    /// counter computes it); the window end for a fixed window.
    fn retry(&self, prev: u64, cur: u64, e: u64) -> Nanos {
        let to_end = self.window - e;
        let (w, l, p, c) = (
            u128::from(self.window),
            u128::from(self.limit),
            u128::from(prev),
            u128::from(cur),
        );
        match self.kind {
            Kind::Fixed => Nanos(to_end),
            Kind::Sliding if c < l && p > 0 => {
                let e_ok = w * (p + c - l) / p + 1;
                Nanos((e_ok.min(w) as u64).saturating_sub(e))
            }
            Kind::Sliding => {
                let c = c.max(1);
                let e_next = w * c.saturating_sub(l) / c + 1;
                Nanos(to_end.saturating_add(e_next as u64))
            }
        }
    }

    /// Snapshot of every queued entry in the `backlog` buckets (after adding
    /// the buckets touched since the last call). Entries stay queued until
    /// their answer is applied, so a failed sync loses nothing.
    pub fn collect(&self, backlog: &mut BTreeSet<u32>) -> Vec<Record> {
        backlog.extend(self.dirty_rx.try_iter());
        if self.overflow.swap(false, Ordering::AcqRel) {
            backlog.extend(0..self.buckets.len() as u32);
        }
        let mut out = Vec::new();
        for &b in backlog.iter() {
            let slots = self.lock(b as usize);
            for en in slots.iter().filter(|e| e.queued && e.key != 0) {
                out.push(Record {
                    bucket: b,
                    key: en.key,
                    widx: en.widx,
                    snap_local: en.local,
                    delta: en.local - en.acked,
                    prev_delta: en.prev_delta,
                });
            }
        }
        out
    }

    /// Applies the store's answers (same order as `records`); refills
    /// `backlog` with buckets that still have something to push.
    pub fn apply(&self, records: &[Record], counts: &[Counts], backlog: &mut BTreeSet<u32>) {
        backlog.clear();
        for (r, c) in records.iter().zip(counts) {
            let mut slots = self.lock(r.bucket as usize);
            let Some(en) = slots.iter_mut().find(|e| e.key == r.key) else {
                continue;
            };
            if en.widx == r.widx {
                // Never below our own acknowledged count (a Redis that lost
                // its data mid-window): one gateway alone never exceeds L.
                en.base = c.cur.max(r.snap_local);
                en.acked = r.snap_local.min(en.local);
                en.epoch = en.local - en.acked;
                if let Some(p) = c.prev {
                    en.prev_delta = en.prev_delta.saturating_sub(r.prev_delta);
                    en.prev = p + en.prev_delta;
                }
            } else if en.widx == r.widx + 1 {
                // Rolled while the push was in flight: what it pushed is no
                // longer owed to the (now previous) window.
                en.prev_delta = en.prev_delta.saturating_sub(r.delta);
                en.prev = c.cur + en.prev_delta;
            } else {
                continue;
            }
            en.queued = en.local > en.acked || en.prev_delta > 0;
            if en.queued {
                backlog.insert(r.bucket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const W_MS: u64 = 1_000;

    fn table(kind: Kind, limit: u64) -> GlobalTable {
        GlobalTable::new(Params {
            kind,
            limit,
            window_ms: W_MS,
            unix_offset: 0,
            sync_ms: 50,
            max_keys: 64,
            evictions: Evictions::default(),
        })
    }

    /// A stand-in for Redis: INCRBY on a map, one "round trip" per call.
    #[derive(Default)]
    struct FakeStore(HashMap<(u64, u64), u64>);

    impl FakeStore {
        fn sync(&mut self, t: &GlobalTable, backlog: &mut BTreeSet<u32>) {
            let recs = t.collect(backlog);
            let counts: Vec<Counts> = recs
                .iter()
                .map(|r| {
                    let cur = self.0.entry((r.key, r.widx)).or_default();
                    *cur += r.delta;
                    let cur = *cur;
                    let prev = (t.kind() == Kind::Sliding && r.widx > 0).then(|| {
                        let p = self.0.entry((r.key, r.widx - 1)).or_default();
                        *p += r.prev_delta;
                        *p
                    });
                    Counts { cur, prev }
                })
                .collect();
            t.apply(&recs, &counts, backlog);
        }
    }

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn alone_it_behaves_like_a_fixed_window() {
        let t = table(Kind::Fixed, 5);
        let admitted = (0..10)
            .filter(|_| t.check(7, ms(100), Mode::Global, 1).is_admitted())
            .count();
        assert_eq!(admitted, 5);
        let d = t.check(7, ms(100), Mode::Global, 1);
        assert_eq!(d.retry_after, ms(900));
        assert!(t.check(7, ms(1_000), Mode::Global, 1).is_admitted());
    }

    #[test]
    fn share_limits_each_gateway_between_syncs() {
        let t = table(Kind::Fixed, 10);
        // 3 gateways: ceil(10 / 3) = 4 before the first sync.
        let a = (0..10)
            .filter(|_| t.check(1, ms(10), Mode::Global, 3).is_admitted())
            .count();
        assert_eq!(a, 4);
        let d = t.check(1, ms(10), Mode::Global, 3);
        assert_eq!(d.retry_after, ms(50), "share denial: wait for a sync");
        // Store down, fail-open: the share no longer applies, the limit does.
        let a = (0..10)
            .filter(|_| t.check(1, ms(20), Mode::Local, 3).is_admitted())
            .count();
        assert_eq!(a, 6);
        assert!(!t.check(1, ms(20), Mode::Deny, 3).is_admitted());
    }

    /// Three gateways, each synced every 50 ms in turn, each receiving `rate`
    /// requests per ms for one key: per window, admitted <= limit + bound.
    fn three_gateways(kind: Kind, limit: u64, per_ms: usize) -> Vec<u64> {
        let gws: Vec<GlobalTable> = (0..3).map(|_| table(kind, limit)).collect();
        let mut backlogs = vec![BTreeSet::new(); 3];
        let mut store = FakeStore::default();
        let mut per_window = vec![0u64; 5];
        for now_ms in 0..5 * W_MS {
            for (g, t) in gws.iter().enumerate() {
                // Staggered syncs: gateway g syncs at now % 50 == 17 g.
                if now_ms % 50 == 17 * g as u64 {
                    store.sync(t, &mut backlogs[g]);
                }
                for _ in 0..per_ms {
                    if t.check(42, ms(now_ms), Mode::Global, 3).is_admitted() {
                        per_window[(now_ms / W_MS) as usize] += 1;
                    }
                }
            }
        }
        eprintln!("{kind:?} limit {limit}, 3 x {per_ms}/ms: admitted per window {per_window:?}");
        per_window
    }

    #[test]
    fn fixed_window_excess_is_within_the_bound() {
        let limit = 100;
        for per_ms in [1, 5, 50] {
            let got = three_gateways(Kind::Fixed, limit, per_ms);
            // Bound: (N-1) * min(3 * ceil(L/N), r * (2S + 2d)), d = 0 here.
            let r = per_ms as u64;
            let bound = 2 * (3 * limit.div_ceil(3)).min(r * 100);
            for (i, &n) in got.iter().enumerate() {
                assert!(n <= limit + bound, "rate {per_ms}/ms window {i}: {n}");
                assert!(
                    n >= limit * 9 / 10,
                    "rate {per_ms}/ms window {i}: {n} (under-admits)"
                );
            }
        }
    }

    #[test]
    fn sliding_counter_per_window_within_the_bound() {
        let limit = 60;
        let got = three_gateways(Kind::Sliding, limit, 3);
        let bound = 2 * 3 * limit.div_ceil(3);
        // Aligned windows: the estimate includes curr, so each holds <= L + bound.
        assert!(got.iter().all(|&n| n <= limit + bound), "{got:?}");
        assert!(got[1..].iter().all(|&n| n >= limit / 3), "{got:?}");
    }

    #[test]
    fn failed_sync_keeps_counts_queued() {
        let t = table(Kind::Fixed, 10);
        let mut backlog = BTreeSet::new();
        for _ in 0..3 {
            t.check(9, ms(5), Mode::Global, 1);
        }
        let first = t.collect(&mut backlog);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].delta, 3);
        // The sync failed (apply not called): the next collect pushes again.
        t.check(9, ms(6), Mode::Global, 1);
        let again = t.collect(&mut backlog);
        assert_eq!(again[0].delta, 4);
        t.apply(&again, &[Counts { cur: 7, prev: None }], &mut backlog);
        assert!(backlog.is_empty());
        // Global 7 (ours 4 + 3 elsewhere): 3 more pass.
        let n = (0..10)
            .filter(|_| t.check(9, ms(7), Mode::Global, 1).is_admitted())
            .count();
        assert_eq!(n, 3);
    }

    /// The local tables' rule holds here too: one-request churn keys evict
    /// each other, a key at its (known) global limit stays.
    #[test]
    fn churn_evicts_keys_with_budget_before_a_limited_one() {
        let ev = Evictions::default();
        let t = GlobalTable::new(Params {
            kind: Kind::Fixed,
            limit: 5,
            window_ms: 600_000,
            unix_offset: 0,
            sync_ms: 50,
            max_keys: 4, // one bucket
            evictions: ev.clone(),
        });
        let admitted = (0..6)
            .filter(|_| t.check(7, ms(10), Mode::Global, 1).is_admitted())
            .count();
        assert_eq!(admitted, 5);
        for k in 100..500u64 {
            assert!(t.check(k, ms(20), Mode::Global, 1).is_admitted());
        }
        assert!(!t.check(7, ms(30), Mode::Global, 1).is_admitted());
        assert_eq!(ev.get(), 400 - 3);
    }

    #[test]
    fn table_stays_bounded_under_key_flood() {
        let t = table(Kind::Fixed, 3);
        let cap = t.capacity();
        for k in 0..100_000u64 {
            assert!(t
                .check(
                    k.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    ms(k / 100),
                    Mode::Global,
                    1
                )
                .is_admitted());
        }
        assert_eq!(t.capacity(), cap);
        let mut backlog = BTreeSet::new();
        assert!(t.collect(&mut backlog).len() <= cap);
    }
}
