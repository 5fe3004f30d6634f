//! IP hash: the same client always lands on the same backend.
//!
//! The primary is `hash(client) mod n` over the *whole* table, not over the
//! currently eligible backends, so one backend going down moves only its own
//! clients. Those fail over along a probe sequence derived from the key alone
//! (deterministic, spread evenly over the survivors), then a linear sweep.
#![deny(missing_docs)]

use api_gateway_protocol::BalanceSpec;

use super::{mix64, reduce, Balancer, Offered, PickKey};
use crate::algo::BackendId;
use crate::backend::BackendTable;

/// Fixed seed (never random: placement must survive restarts).
const SEED: u64 = 0x1f3d_5b79_a2c4_e608;
/// Hashed probes before the sweep; enough to leave the sweep cold in practice.
const MAX_PROBES: usize = 8;

/// Client-address affinity over the table it was built from.
#[derive(Debug)]
pub struct IpHash {
    n: usize,
}

impl IpHash {
    /// Builds over `table`'s backends.
    pub fn new(table: &BackendTable) -> IpHash {
        IpHash { n: table.len() }
    }

    /// Where `key` goes when every backend accepts.
    pub fn primary(&self, key: &PickKey) -> Option<BackendId> {
        (self.n > 0).then(|| reduce(mix64(key.client_hash ^ SEED), self.n))
    }
}

impl Balancer for IpHash {
    fn pick(
        &self,
        key: &PickKey,
        _table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        let n = self.n;
        if n == 0 {
            return None;
        }
        let mut h = mix64(key.client_hash ^ SEED);
        let primary = reduce(h, n);
        // The common case: no set, no further hashing.
        if accept(primary) {
            return Some(primary);
        }
        let mut offered = Offered::new();
        offered.insert(primary);
        // Rehash chain: each step depends only on the key, so a displaced
        // client keeps the same fallback for as long as its primary is out.
        for _ in 0..MAX_PROBES.min(2 * n) {
            h = mix64(h.wrapping_add(0x9e37_79b9_7f4a_7c15));
            let id = reduce(h, n);
            if offered.insert(id) && accept(id) {
                return Some(id);
            }
            if offered.len() == n {
                return None;
            }
        }
        // Rare (many backends out): guarantee every backend gets its offer.
        for step in 1..n {
            let id = (primary + step) % n;
            if offered.insert(id) && accept(id) {
                return Some(id);
            }
        }
        None
    }

    fn spec(&self) -> &BalanceSpec {
        &BalanceSpec::IpHash
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::sync::Arc;

    const KEYS: u64 = 10_000;

    fn keys() -> impl Iterator<Item = u64> {
        // Sequential-looking client hashes (as from nearby addresses).
        (0..KEYS).map(|i| i * 7919)
    }

    #[test]
    fn same_client_same_backend() {
        let t = table(&[1, 1, 1]);
        let ih = IpHash::new(&t);
        for k in keys().take(100) {
            let first = ih.pick(&key(k), &t, &mut |_| true);
            assert_eq!(first, ih.primary(&key(k)));
            for _ in 0..3 {
                assert_eq!(ih.pick(&key(k), &t, &mut |_| true), first);
            }
        }
    }

    #[test]
    fn spreads_evenly() {
        let t = table(&[1, 1, 1, 1, 1]);
        let ih = IpHash::new(&t);
        let c = counts(&ih, &t, KEYS, |i| i * 7919, &[]);
        for &x in &c {
            assert!((1800..=2200).contains(&x), "{c:?}");
        }
    }

    #[test]
    fn only_the_missing_backends_keys_move() {
        let t = table(&[1, 1, 1, 1, 1]);
        let ih = IpHash::new(&t);
        let down = 2;
        let mut moved_to = vec![0u64; t.len()];
        for k in keys() {
            let before = pick_checked(&ih, &t, k, &[]).unwrap();
            let after = pick_checked(&ih, &t, k, &[down]).unwrap();
            if before == down {
                assert_ne!(after, down);
                moved_to[after] += 1;
                // Deterministic failover.
                assert_eq!(pick_checked(&ih, &t, k, &[down]), Some(after));
            } else {
                assert_eq!(before, after, "key {k} of a healthy backend moved");
            }
        }
        // The displaced keys spread over the four survivors (~500 each).
        let moved: u64 = moved_to.iter().sum();
        for (id, &m) in moved_to.iter().enumerate() {
            if id != down {
                assert!(
                    m * 4 > moved * 3 / 4 && m * 4 < moved * 5 / 4,
                    "{moved_to:?}"
                );
            }
        }
    }

    #[test]
    fn many_down_still_finds_the_last_one() {
        let t = table(&[1; 40]);
        let ih = IpHash::new(&t);
        let down: Vec<BackendId> = (0..39).collect();
        for k in keys().take(200) {
            assert_eq!(pick_checked(&ih, &t, k, &down), Some(39));
        }
    }

    #[test]
    fn common_contract() {
        check_common(|t| Arc::new(IpHash::new(t)));
    }
}
