//! Least connections: the backend with the fewest requests in flight.
//!
//! The in-flight counts live in the [`BackendTable`] (the caller increments
//! after a pick and decrements when the request ends), so they survive a
//! balancer swap (pingora #269/#821). Ties are broken by an atomic turn
//! counter, so equally loaded backends take turns instead of the lowest id winning.
#![deny(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use api_gateway_protocol::BalanceSpec;

use super::{Balancer, Offered, PickKey};
use crate::algo::BackendId;
use crate::backend::BackendTable;

/// Fewest in-flight requests first (weights are not used: the count itself
/// tracks how fast each backend drains).
#[derive(Debug)]
pub struct LeastConnections {
    n: usize,
    /// Picks so far; selects among tied backends.
    rotation: AtomicUsize,
}

impl LeastConnections {
    /// Builds over `table`'s backends.
    pub fn new(table: &BackendTable) -> LeastConnections {
        LeastConnections {
            n: table.len(),
            rotation: AtomicUsize::new(0),
        }
    }
}

impl Balancer for LeastConnections {
    fn pick(
        &self,
        _key: &PickKey,
        table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        // Defensive: never index past the table we are handed.
        let n = self.n.min(table.len());
        if n == 0 {
            return None;
        }
        // Relaxed: the counter only spreads ties; it orders no other memory.
        let turn = self.rotation.fetch_add(1, Ordering::Relaxed);
        let mut offered = Offered::new();
        // Two scans per offer: find the minimum and how many backends share
        // it, then take the `turn % ties`-th of them. Choosing among the tied
        // (rather than rotating the scan's start over all backends) keeps
        // ties exact even when only some backends tie (loads 3/1/1 → 50/50).
        // O(n) for the usual first-choice hit, O(n^2) only while backends are
        // rejected. Counts are re-read each scan (they move concurrently);
        // `offered` keeps the "at most once" promise regardless.
        loop {
            let (mut min, mut ties, mut first) = (u32::MAX, 0usize, None);
            for id in 0..n {
                if offered.contains(id) {
                    continue;
                }
                let load = table.get(id).inflight();
                if load < min {
                    (min, ties, first) = (load, 1, Some(id));
                } else if load == min {
                    ties += 1;
                }
            }
            let first = first?;
            let mut chosen = first;
            if ties > 1 {
                let mut skip = turn % ties;
                // If loads moved since the first scan we may find fewer ties:
                // then `first` (a true minimum a moment ago) stands.
                for id in first..n {
                    if !offered.contains(id) && table.get(id).inflight() == min {
                        if skip == 0 {
                            chosen = id;
                            break;
                        }
                        skip -= 1;
                    }
                }
            }
            offered.insert(chosen);
            if accept(chosen) {
                return Some(chosen);
            }
        }
    }

    fn spec(&self) -> &BalanceSpec {
        &BalanceSpec::LeastConnections
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::sync::Arc;

    fn load(t: &BackendTable, loads: &[u32]) {
        for (id, &n) in loads.iter().enumerate() {
            for _ in 0..n {
                t.get(id).begin_inflight();
            }
        }
    }

    #[test]
    fn prefers_the_least_loaded() {
        let t = table(&[1, 1, 1]);
        load(&t, &[5, 2, 7]);
        let lc = LeastConnections::new(&t);
        assert_eq!(counts(&lc, &t, 20, |i| i, &[]), [0, 20, 0]);
        // Next-least when the least is rejected.
        assert_eq!(pick_checked(&lc, &t, 0, &[1]), Some(0));
        assert_eq!(pick_checked(&lc, &t, 0, &[1, 0]), Some(2));
    }

    #[test]
    fn equal_loads_take_turns() {
        let t = table(&[1, 1, 1]);
        load(&t, &[4, 4, 4]);
        let lc = LeastConnections::new(&t);
        assert_eq!(counts(&lc, &t, 30, |i| i, &[]), [10, 10, 10]);
        // Tie among the two least loaded only.
        let t = table(&[1, 1, 1]);
        load(&t, &[3, 1, 1]);
        let lc = LeastConnections::new(&t);
        assert_eq!(counts(&lc, &t, 30, |i| i, &[]), [0, 15, 15]);
    }

    #[test]
    fn follows_the_callers_inflight_accounting() {
        // The caller leases after each pick: picks fill up evenly.
        let t = Arc::new(table(&[1, 1, 1]));
        load(&t, &[0, 3, 1]);
        let lc = LeastConnections::new(&t);
        let mut leases = Vec::new();
        for _ in 0..5 {
            let id = lc.pick(&key(0), &t, &mut |_| true).unwrap();
            leases.push(crate::upstream::Lease::begin(t.clone(), id));
        }
        let now: Vec<u32> = t.iter().map(|b| b.inflight()).collect();
        assert_eq!(now, [3, 3, 3]);
        drop(leases);
        let now: Vec<u32> = t.iter().map(|b| b.inflight()).collect();
        assert_eq!(now, [0, 3, 1]);
    }

    #[test]
    fn counts_survive_a_rebuild() {
        let t = table(&[1, 1]);
        load(&t, &[2, 0]);
        let first = LeastConnections::new(&t);
        assert_eq!(first.pick(&key(0), &t, &mut |_| true), Some(1));
        let rebuilt = LeastConnections::new(&t);
        assert_eq!(rebuilt.pick(&key(0), &t, &mut |_| true), Some(1));
    }

    #[test]
    fn common_contract() {
        check_common(|t| Arc::new(LeastConnections::new(t)));
    }
}
