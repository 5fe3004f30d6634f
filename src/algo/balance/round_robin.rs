//! Round robin: each backend in turn, one shared atomic counter.
//!
//! `fetch_add` hands every pick its own starting slot, so concurrent workers
//! spread exactly evenly. A rejected backend is passed over to the next in
//! rotation, and the counter is bumped past it so the next pick does not land
//! on the same successor again (which would double its share).
#![deny(missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};

use api_gateway_protocol::BalanceSpec;

use super::{Balancer, PickKey};
use crate::algo::BackendId;
use crate::backend::BackendTable;

/// Round robin over every backend of the table it was built from.
///
/// ```
/// use api_gateway::algo::balance::{Balancer, PickKey, RoundRobin};
/// use api_gateway::algo::Nanos;
/// use api_gateway::backend::{BackendDef, BackendTable};
/// use api_gateway_protocol::BreakerSpec;
///
/// let defs: Vec<BackendDef> = ["a", "b", "c"]
///     .iter()
///     .enumerate()
///     .map(|(i, name)| BackendDef {
///         name: name.to_string(),
///         addr: format!("127.0.0.1:{}", 3001 + i).parse().unwrap(),
///         weight: 1,
///         tls: None,
///     })
///     .collect();
/// let table = BackendTable::new(&defs, BreakerSpec::default());
/// let rr = RoundRobin::new(&table);
/// let key = PickKey { client_hash: 0, now: Nanos::ZERO };
/// let picks: Vec<_> = (0..4).map(|_| rr.pick(&key, &table, &mut |_| true)).collect();
/// assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0)]);
/// // `b` is down: its turn passes to `c`.
/// assert_eq!(rr.pick(&key, &table, &mut |id| id != 1), Some(2));
/// ```
#[derive(Debug)]
pub struct RoundRobin {
    n: usize,
    next: AtomicUsize,
}

impl RoundRobin {
    /// Builds over `table`'s backends, starting at id 0.
    pub fn new(table: &BackendTable) -> RoundRobin {
        RoundRobin {
            n: table.len(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Balancer for RoundRobin {
    fn pick(
        &self,
        _key: &PickKey,
        _table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        if self.n == 0 {
            return None;
        }
        // Relaxed: the counter only spreads load; it orders no other memory.
        // (Wrap-around at 2^64 skews one rotation when n is not a power of two.)
        let start = self.next.fetch_add(1, Ordering::Relaxed) % self.n;
        for skipped in 0..self.n {
            let id = (start + skipped) % self.n;
            if accept(id) {
                if skipped > 0 {
                    self.next.fetch_add(skipped, Ordering::Relaxed);
                }
                return Some(id);
            }
        }
        None
    }

    fn spec(&self) -> &BalanceSpec {
        &BalanceSpec::RoundRobin
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::sync::Arc;

    #[test]
    fn exact_rotation() {
        let t = table(&[1, 5, 1]); // weights are ignored
        let rr = RoundRobin::new(&t);
        assert_eq!(counts(&rr, &t, 30, |i| i, &[]), [10, 10, 10]);
        let seq: Vec<_> = (0..6)
            .map(|_| rr.pick(&key(0), &t, &mut |_| true).unwrap())
            .collect();
        assert_eq!(seq, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skipped_backend_share_is_spread_not_doubled() {
        let t = table(&[1, 1, 1]);
        let rr = RoundRobin::new(&t);
        let seq: Vec<_> = (0..6)
            .map(|_| pick_checked(&rr, &t, 0, &[1]).unwrap())
            .collect();
        assert_eq!(seq, [0, 2, 0, 2, 0, 2]);
        let t = table(&[1, 1, 1, 1]);
        let rr = RoundRobin::new(&t);
        assert_eq!(counts(&rr, &t, 30, |i| i, &[1]), [10, 0, 10, 10]);
    }

    #[test]
    fn common_contract() {
        check_common(|t| Arc::new(RoundRobin::new(t)));
    }

    #[test]
    fn threads_share_exactly() {
        let t = Arc::new(table(&[1, 1, 1, 1]));
        let rr = Arc::new(RoundRobin::new(&t));
        let hits: Arc<Vec<_>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (t, rr, hits) = (t.clone(), rr.clone(), hits.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let id = rr.pick(&key(0), &t, &mut |_| true).unwrap();
                        hits[id].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for h in hits.iter() {
            assert_eq!(h.load(Ordering::Relaxed), 1000);
        }
    }
}
