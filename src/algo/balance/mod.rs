//! Load balancers: one file per algorithm, one small trait.
//!
//! A balancer is *built* from the backend table and swapped whole on change;
//! counters that must survive a swap (in-flight counts, breaker state) live in
//! the [`BackendTable`], not in the balancer. The pick path is lock-free
//! (relaxed atomics at most) and never offers a backend twice in one call.
#![deny(missing_docs)]

use std::sync::Arc;

use api_gateway_protocol::BalanceSpec;

use super::{BackendId, Nanos};
use crate::backend::{Backend, BackendTable};

pub mod consistent_hash;
pub mod ip_hash;
pub mod least_conn;
pub mod p2c_ewma;
pub mod round_robin;
pub mod weighted_rr;

pub use consistent_hash::ConsistentHash;
pub use ip_hash::IpHash;
pub use least_conn::LeastConnections;
pub use p2c_ewma::P2cEwma;
pub use round_robin::RoundRobin;
pub use weighted_rr::WeightedRoundRobin;

/// What a balancer may key a choice on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PickKey {
    /// Hash of the client's address (fixed seed, stable across restarts).
    pub client_hash: u64,
    /// The request's time on the gateway clock (slow-start ramps, latency
    /// estimates).
    pub now: Nanos,
}

/// One load-balancing algorithm.
pub trait Balancer: Send + Sync {
    /// Offers backends to `accept` in this algorithm's order of preference and
    /// returns the first one it accepts; `None` if it accepts none.
    ///
    /// `accept` has side effects (it takes a circuit-breaker permit), so a
    /// balancer must return a backend as soon as `accept` says yes to it, and
    /// offer each backend at most once per call.
    fn pick(
        &self,
        key: &PickKey,
        table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId>;

    /// The spec this balancer was built from.
    fn spec(&self) -> &BalanceSpec;

    /// Called by the data path when a response head arrives from `backend`,
    /// with `rtt` the time from sending the request to that head, at `now`.
    /// Balancers that learn from latency record it (in the backend's
    /// long-lived state, so it survives swaps); the default does nothing.
    fn observe(&self, _backend: &Backend, _rtt: Nanos, _now: Nanos) {}
}

/// Builds the balancer for `spec` over `table`'s backends (off the request
/// path: the weighted and ring algorithms precompute their schedules here).
pub fn build(spec: &BalanceSpec, table: &BackendTable) -> Arc<dyn Balancer> {
    match *spec {
        BalanceSpec::RoundRobin => Arc::new(RoundRobin::new(table)),
        BalanceSpec::WeightedRoundRobin => Arc::new(WeightedRoundRobin::new(table)),
        BalanceSpec::LeastConnections => Arc::new(LeastConnections::new(table)),
        BalanceSpec::IpHash => Arc::new(IpHash::new(table)),
        BalanceSpec::ConsistentHash { virtual_nodes } => {
            Arc::new(ConsistentHash::new(table, virtual_nodes))
        }
        BalanceSpec::P2cEwma { decay_ms } => Arc::new(P2cEwma::new(table, decay_ms)),
    }
}

/// The splitmix64 increment (2^64 / golden ratio): consecutive states are
/// spread over the whole word, so `mix64` of them is a good random stream.
pub(crate) const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 finalizer: a fixed, seedless 64-bit mixer (full avalanche),
/// so placements computed from it are identical across restarts and hosts.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Maps a uniform 64-bit hash onto `0..n` without a division (Lemire's
/// multiply-shift); unbiased enough for `n` far below 2^32.
pub(crate) fn reduce(hash: u64, n: usize) -> usize {
    ((u128::from(hash) * n as u128) >> 64) as usize
}

/// The backends already offered during one `pick`: enforces "never offer a
/// backend twice" without allocating for tables of up to 256 backends.
pub(crate) struct Offered {
    inline: [u64; 4],
    spill: Vec<u64>,
    len: usize,
}

impl Offered {
    pub(crate) fn new() -> Offered {
        Offered {
            inline: [0; 4],
            spill: Vec::new(),
            len: 0,
        }
    }

    /// How many distinct backends were offered.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn slot(&mut self, id: BackendId) -> (&mut u64, u64) {
        let (word, bit) = (id / 64, 1u64 << (id % 64));
        if word < self.inline.len() {
            (&mut self.inline[word], bit)
        } else {
            let w = word - self.inline.len();
            if self.spill.len() <= w {
                self.spill.resize(w + 1, 0);
            }
            (&mut self.spill[w], bit)
        }
    }

    /// Whether `id` was offered already.
    pub(crate) fn contains(&mut self, id: BackendId) -> bool {
        let (word, bit) = self.slot(id);
        *word & bit != 0
    }

    /// Marks `id` offered; `false` if it already was.
    pub(crate) fn insert(&mut self, id: BackendId) -> bool {
        let (word, bit) = self.slot(id);
        let fresh = *word & bit == 0;
        *word |= bit;
        self.len += usize::from(fresh);
        fresh
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Tables and pick loops shared by the balancers' tests.
    use super::*;
    use crate::backend::BackendDef;
    use api_gateway_protocol::BreakerSpec;

    /// A table of backends `10.0.0.<i+1>:8080` with these weights.
    pub(crate) fn table(weights: &[u32]) -> BackendTable {
        let defs: Vec<BackendDef> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| BackendDef {
                name: format!("b{i}"),
                addr: format!("10.0.0.{}:8080", i + 1).parse().unwrap(),
                weight,
                tls: None,
            })
            .collect();
        BackendTable::new(&defs, BreakerSpec::default())
    }

    pub(crate) fn key(client_hash: u64) -> PickKey {
        PickKey {
            client_hash,
            now: Nanos::ZERO,
        }
    }

    /// Picks `n` times for `key_of(i)` and counts the picks per backend,
    /// checking the "offer each backend at most once" contract on the way.
    pub(crate) fn counts(
        b: &dyn Balancer,
        t: &BackendTable,
        n: u64,
        key_of: impl Fn(u64) -> u64,
        rejected: &[BackendId],
    ) -> Vec<u64> {
        let mut counts = vec![0; t.len()];
        for i in 0..n {
            if let Some(id) = pick_checked(b, t, key_of(i), rejected) {
                counts[id] += 1;
            }
        }
        counts
    }

    /// One pick that rejects `rejected`, asserting the offer contract.
    pub(crate) fn pick_checked(
        b: &dyn Balancer,
        t: &BackendTable,
        client_hash: u64,
        rejected: &[BackendId],
    ) -> Option<BackendId> {
        let mut offered = Vec::new();
        let got = b.pick(&key(client_hash), t, &mut |id| {
            assert!(!offered.contains(&id), "backend {id} offered twice");
            offered.push(id);
            !rejected.contains(&id)
        });
        match got {
            Some(id) => assert_eq!(offered.last(), Some(&id), "must return at once"),
            // Nothing accepted: every backend must have been offered.
            None => assert_eq!(offered.len(), t.len(), "gave up early"),
        }
        got
    }

    /// The contract every algorithm must meet: skip rejected backends, `None`
    /// when all are rejected, nothing from an empty table.
    pub(crate) fn check_common(make: impl Fn(&BackendTable) -> Arc<dyn Balancer>) {
        let t = table(&[1, 2, 3, 1]);
        let b = make(&t);
        for i in 0..200u64 {
            let h = mix64(i);
            let id = pick_checked(&*b, &t, h, &[1, 2]).unwrap();
            assert!(id == 0 || id == 3);
            assert_eq!(pick_checked(&*b, &t, h, &[0, 1, 2, 3]), None);
        }
        let empty = table(&[]);
        assert_eq!(make(&empty).pick(&key(1), &empty, &mut |_| true), None);
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    #[test]
    fn build_dispatches_on_the_spec() {
        let t = table(&[1, 1]);
        for spec in [
            BalanceSpec::RoundRobin,
            BalanceSpec::WeightedRoundRobin,
            BalanceSpec::LeastConnections,
            BalanceSpec::IpHash,
            BalanceSpec::ConsistentHash { virtual_nodes: 7 },
            BalanceSpec::P2cEwma { decay_ms: 1000 },
        ] {
            let b = build(&spec, &t);
            assert_eq!(b.spec(), &spec);
            assert!(b.pick(&key(9), &t, &mut |_| true).is_some());
        }
    }

    #[test]
    fn offered_set_spills_past_the_inline_words() {
        let mut o = Offered::new();
        for id in [0, 63, 64, 255, 256, 1000] {
            assert!(!o.contains(id));
            assert!(o.insert(id));
            assert!(!o.insert(id));
            assert!(o.contains(id));
        }
        assert_eq!(o.len(), 6);
    }

    #[test]
    fn reduce_stays_in_range() {
        for h in [0, 1, u64::MAX / 2, u64::MAX] {
            assert!(reduce(h, 7) < 7);
        }
        assert_eq!(reduce(u64::MAX, 3), 2);
    }
}
