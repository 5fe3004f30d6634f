//! Smooth weighted round robin, precomputed.
//!
//! At build time we lay out one full cycle (total weight slots) with each
//! backend's slots spread evenly (see `smooth_cycle`); `pick` indexes it
//! with one atomic counter, so the pick path is lock-free and exactly
//! proportional.
//! Weights are divided by their gcd and, if the cycle would exceed
//! [`MAX_CYCLE`], scaled down proportionally (each stays >= 1).
//!
//! Slow start cannot reshape the cycle (the ramp moves every pick; a rebuild
//! would allocate on the request path), so a warming backend at ramp `r` is
//! offered at its slots with probability `r`, and otherwise passed over to
//! the cycle's next backend like a refusal: it gets `r` times its share.
//! Passed-over backends are still offered last, so `None` still means every
//! backend refused.
#![deny(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use api_gateway_protocol::BalanceSpec;

use super::{mix64, Balancer, Offered, PickKey};
use crate::algo::{BackendId, Nanos};
use crate::backend::BackendTable;

/// Longest precomputed cycle (sum of the effective weights). Bounds memory
/// (8 bytes per slot) and build time; above it weights are scaled down, so
/// shares stay proportional to within rounding (one part in `MAX_CYCLE / n`).
pub const MAX_CYCLE: u64 = 10_000;

/// Smooth weighted round robin over the table it was built from.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// One SWRR cycle: backend ids in nginx's order.
    seq: Box<[u32]>,
    /// For each slot, the cyclic distance back to the previous slot holding
    /// the same backend (`seq.len()` if it occurs once). Lets the failover
    /// walk skip already-offered backends without a set.
    back: Box<[u32]>,
    /// Distinct backends in the cycle (= table length).
    distinct: usize,
    next: AtomicUsize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The effective weights: reduced by their gcd, then capped to `MAX_CYCLE`.
fn effective_weights(weights: &[u64]) -> Vec<u64> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut w: Vec<u64> = weights.iter().map(|&w| w / g).collect();
    let total: u64 = w.iter().sum();
    if total > MAX_CYCLE {
        for x in &mut w {
            *x = (*x * MAX_CYCLE / total).max(1);
        }
    }
    w
}

/// One smooth cycle: each backend's `w` slots are spread evenly over the
/// cycle of length `N = Σw`, heaviest backend first, at the ideal positions
/// `offset + round(k·N/w)` (taken slots probe forward to the next free one).
///
/// Unlike nginx's SWRR (a3/b2/c1 → a b a c b a, which repeats `a` across the
/// cycle boundary), this is smooth *cyclically*: a3/b2/c1 → a b a c a b, so no
/// backend gets two requests in a row as long as its weight is at most half
/// the total. Over a cycle each backend gets exactly its weight.
fn smooth_cycle(weights: &[u64]) -> Vec<u32> {
    let total = weights.iter().sum::<u64>() as usize;
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Heaviest first (stable: equal weights keep table order).
    order.sort_by(|&a, &b| weights[b].cmp(&weights[a]));
    let mut seq: Vec<Option<u32>> = vec![None; total];
    for id in order {
        let w = weights[id] as usize;
        if w == 0 {
            continue;
        }
        let offset = seq.iter().position(Option::is_none).unwrap_or(0);
        for k in 0..w {
            let ideal = (offset + (2 * k * total + w) / (2 * w)) % total;
            let slot = (0..total)
                .map(|d| (ideal + d) % total)
                .find(|&i| seq[i].is_none())
                .unwrap_or(ideal);
            seq[slot] = Some(id as u32);
        }
    }
    seq.into_iter().map(|s| s.unwrap_or(0)).collect()
}

impl WeightedRoundRobin {
    /// Builds the cycle from `table`'s weights (O(total weight × backends)).
    pub fn new(table: &BackendTable) -> WeightedRoundRobin {
        let weights: Vec<u64> = table.iter().map(|b| u64::from(b.weight.max(1))).collect();
        let seq = smooth_cycle(&effective_weights(&weights));
        let len = seq.len();
        let mut last = vec![None::<usize>; weights.len()];
        let mut back = vec![len as u32; len];
        // Two passes so the first occurrence sees the last one of the
        // previous cycle (the distance is cyclic).
        for pass in 0..2 {
            for (p, &id) in seq.iter().enumerate() {
                let pos = pass * len + p;
                if let (1, Some(prev)) = (pass, last[id as usize]) {
                    back[p] = (pos - prev) as u32;
                }
                last[id as usize] = Some(pos);
            }
        }
        WeightedRoundRobin {
            seq: seq.into_boxed_slice(),
            back: back.into_boxed_slice(),
            distinct: weights.len(),
            next: AtomicUsize::new(0),
        }
    }

    /// One cycle of the schedule, in order.
    pub fn schedule(&self) -> impl Iterator<Item = BackendId> + '_ {
        self.seq.iter().map(|&id| id as BackendId)
    }

    /// Walks the cycle from `start`, each backend at its first appearance
    /// only (its `back` reaches past `start`), calling `offer`: `Some(true)`
    /// takes that backend, `Some(false)` is a refusal, `None` passes it over
    /// without offering it.
    fn walk(
        &self,
        start: usize,
        offer: &mut dyn FnMut(BackendId) -> Option<bool>,
    ) -> Option<BackendId> {
        let len = self.seq.len();
        let mut seen = 0;
        for step in 0..len {
            let p = (start + step) % len;
            if step > 0 && self.back[p] as usize <= step {
                continue;
            }
            let id = self.seq[p] as BackendId;
            if offer(id) == Some(true) {
                return Some(id);
            }
            seen += 1;
            if seen == self.distinct {
                break;
            }
        }
        None
    }
}

/// A uniform draw in `[0, 1)` from the top 53 bits of a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

impl Balancer for WeightedRoundRobin {
    fn pick(
        &self,
        key: &PickKey,
        table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        let len = self.seq.len();
        if len == 0 {
            return None;
        }
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        let start = ticket % len;
        let slow_start = table.slow_start();
        if slow_start == Nanos::ZERO {
            // No ramps configured: the plain walk, no set, no coin.
            return self.walk(start, &mut |id| Some(accept(id)));
        }
        // Warming backends toss a coin at their slot; one that loses is
        // offered only after everyone else (`passed` then holds it).
        let coin = mix64(ticket as u64);
        let mut offered = Offered::new();
        let mut passed = false;
        let mut offer = |id: BackendId| {
            // Defensive: an id past `table` (not the one we were built
            // from) has no ramp to read.
            let ramp = if id < table.len() {
                table.get(id).ramp(key.now, slow_start)
            } else {
                1.0
            };
            if ramp < 1.0 && unit(mix64(coin ^ id as u64)) >= ramp {
                passed = true;
                return None;
            }
            offered.insert(id);
            Some(accept(id))
        };
        if let Some(id) = self.walk(start, &mut offer) {
            return Some(id);
        }
        if !passed {
            return None;
        }
        // Everyone who won the toss refused: now the ones that lost it.
        self.walk(start, &mut |id| (!offered.contains(id)).then(|| accept(id)))
    }

    fn spec(&self) -> &BalanceSpec {
        &BalanceSpec::WeightedRoundRobin
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::sync::Arc;

    #[test]
    fn smooth_order() {
        let t = table(&[3, 2, 1]);
        let w = WeightedRoundRobin::new(&t);
        // a3/b2/c1 → a b a c a b: no backend twice in a row, even across the
        // cycle boundary (b | a).
        assert_eq!(w.schedule().collect::<Vec<_>>(), [0, 1, 0, 2, 0, 1]);
        // 5/1/1: the heavy backend never runs more than 3 in a row cyclically
        // (nginx's a a b a c a a runs 4 across the boundary).
        let t = table(&[5, 1, 1]);
        let w = WeightedRoundRobin::new(&t);
        assert_eq!(w.schedule().collect::<Vec<_>>(), [0, 0, 1, 0, 0, 2, 0]);
        // Equal weights reduce (gcd) to plain round robin.
        let t = table(&[2, 2, 2]);
        let w = WeightedRoundRobin::new(&t);
        assert_eq!(w.schedule().collect::<Vec<_>>(), [0, 1, 2]);
    }

    #[test]
    fn exact_shares() {
        let t = table(&[3, 2, 1]);
        let w = WeightedRoundRobin::new(&t);
        assert_eq!(counts(&w, &t, 30, |i| i, &[]), [15, 10, 5]);
        let t = table(&[6, 4, 2]); // gcd-reduced to the same cycle
        assert_eq!(WeightedRoundRobin::new(&t).seq.len(), 6);
    }

    #[test]
    fn failover_follows_the_sequence() {
        let t = table(&[3, 2, 1]);
        let w = WeightedRoundRobin::new(&t);
        // Cycle a b a c a b with `a` rejected: each a-slot falls to the next
        // distinct backend after it: b, c, b.
        let seq: Vec<_> = (0..6)
            .map(|_| pick_checked(&w, &t, 0, &[0]).unwrap())
            .collect();
        assert_eq!(seq, [1, 1, 2, 2, 1, 1]);
    }

    #[test]
    fn huge_weights_are_capped_proportionally() {
        let t = table(&[1_000_000, 3_000_000, 1]);
        let w = WeightedRoundRobin::new(&t);
        let len = w.seq.len() as u64;
        assert!(len <= MAX_CYCLE + 1, "cycle {len}");
        let c = counts(&w, &t, len, |i| i, &[]);
        assert_eq!(c[2], 1, "a tiny weight keeps at least one slot");
        assert!((c[1] as f64 / c[0] as f64 - 3.0).abs() < 0.01, "{c:?}");
    }

    #[test]
    fn back_distances_are_cyclic() {
        let t = table(&[3, 2, 1]);
        let w = WeightedRoundRobin::new(&t);
        // a b a c a b: a@0 prev a@4 (dist 2), b@1 prev b@5 (2), c unique (6).
        assert_eq!(&*w.back, &[2, 2, 2, 6, 2, 4]);
    }

    #[test]
    fn slow_start_scales_a_warming_backends_share() {
        let slow_start = Nanos::from_secs(10);
        let t = table(&[3, 2, 1]).with_slow_start(slow_start);
        let w = WeightedRoundRobin::new(&t);
        let t0 = Nanos::from_secs(100);
        let picks = |now: Nanos| {
            let mut c = [0u64; 3];
            for _ in 0..6000 {
                c[w.pick(
                    &PickKey {
                        client_hash: 0,
                        now,
                    },
                    &t,
                    &mut |_| true,
                )
                .unwrap()] += 1;
            }
            c
        };
        // No ramp begun: exact shares, as without slow start.
        assert_eq!(picks(t0), [3000, 2000, 1000]);
        // b0's ramp began just now: about 10% of its 3000; what it passes
        // over goes to the backend after its slot.
        t.get(0).begin_ramp(t0);
        let c = picks(t0);
        assert!((240..=360).contains(&c[0]), "{c:?}");
        assert_eq!(c.iter().sum::<u64>(), 6000);
        // Halfway: ramp 0.55.
        let c = picks(t0.saturating_add(Nanos::from_secs(5)));
        assert!((1550..=1750).contains(&c[0]), "{c:?}");
        // After `slow_start`: its full share again, exactly.
        assert_eq!(picks(t0.saturating_add(slow_start)), [3000, 2000, 1000]);
    }

    #[test]
    fn a_passed_over_backend_is_still_offered_last() {
        let t = table(&[1, 1, 1]).with_slow_start(Nanos::from_secs(10));
        let w = WeightedRoundRobin::new(&t);
        t.get(1).begin_ramp(Nanos::from_secs(1));
        // All but the warming backend refuse: whatever its coin says, it
        // must end up offered (once), and taken.
        for _ in 0..100 {
            assert_eq!(pick_checked(&w, &t, 0, &[0, 2]), Some(1));
            assert_eq!(pick_checked(&w, &t, 0, &[0, 1, 2]), None);
        }
    }

    #[test]
    fn common_contract() {
        check_common(|t| Arc::new(WeightedRoundRobin::new(t)));
    }
}
