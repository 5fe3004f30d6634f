//! Consistent hashing: a sorted ring of `virtual_nodes × weight` points per
//! backend, looked up by binary search (ketama).
//!
//! Point positions hash the backend's *stable identity* (socket address and
//! replica index) with a fixed seed, never its display name or table order, so
//! placement survives restarts and renames. Removing one of N backends moves
//! only the keys it owned (~1/N): they walk clockwise to the next backend.
#![deny(missing_docs)]

use std::net::SocketAddr;

use api_gateway_protocol::BalanceSpec;

use super::{mix64, Balancer, Offered, PickKey};
use crate::algo::BackendId;
use crate::backend::BackendTable;

/// Upper bound on ring points (12 bytes each: 3 MiB). Above it every
/// backend's point count is scaled down proportionally (each keeps >= 1).
pub const MAX_RING_POINTS: u64 = 1 << 18;

/// FNV-1a 64 offset basis: the fixed seed of the ring (sozu's
/// `DEFAULT_HASH_SEED` lesson: a random seed would reshuffle on restart).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Separates client positions from point positions.
const KEY_SEED: u64 = 0x6a09_e667_f3bc_c909;

/// FNV-1a over `bytes`, then a splitmix finalizer: FNV alone clusters
/// replicas whose inputs differ only in the last byte.
fn fnv1a_mixed(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// Ring position of `addr`'s `replica`-th point: family tag, IP octets, port
/// (big-endian), replica (little-endian u32). Flow info and scope id are left
/// out (they do not name a different server).
pub fn point_position(addr: &SocketAddr, replica: u32) -> u64 {
    let mut buf = [0u8; 1 + 16 + 2 + 4];
    let ip_len = match addr {
        SocketAddr::V4(a) => {
            buf[0] = 4;
            buf[1..5].copy_from_slice(&a.ip().octets());
            4
        }
        SocketAddr::V6(a) => {
            buf[0] = 6;
            buf[1..17].copy_from_slice(&a.ip().octets());
            16
        }
    };
    let mut end = 1 + ip_len;
    buf[end..end + 2].copy_from_slice(&addr.port().to_be_bytes());
    end += 2;
    buf[end..end + 4].copy_from_slice(&replica.to_le_bytes());
    end += 4;
    fnv1a_mixed(&buf[..end])
}

/// A hash ring over the table it was built from.
#[derive(Debug)]
pub struct ConsistentHash {
    spec: BalanceSpec,
    /// Sorted point positions (dense `u64`s: cache-friendly binary search).
    points: Box<[u64]>,
    /// `owners[i]` owns `points[i]`.
    owners: Box<[u32]>,
    /// Distinct backends on the ring (= table length).
    distinct: usize,
}

impl ConsistentHash {
    /// Builds the ring with `virtual_nodes × weight` points per backend
    /// (capped at [`MAX_RING_POINTS`] in total).
    pub fn new(table: &BackendTable, virtual_nodes: u32) -> ConsistentHash {
        let vnodes = u64::from(virtual_nodes.max(1));
        let total: u64 = table.iter().map(|b| vnodes * u64::from(b.weight)).sum();
        let mut ring: Vec<(u64, u32)> = Vec::new();
        for b in table.iter() {
            let mut count = vnodes * u64::from(b.weight);
            if total > MAX_RING_POINTS {
                count = (count * MAX_RING_POINTS / total).max(1);
            }
            ring.extend((0..count as u32).map(|r| (point_position(&b.addr, r), b.id as u32)));
        }
        // Owner as tie-break: a (vanishingly rare) position collision still
        // sorts the same way on every build.
        ring.sort_unstable();
        ConsistentHash {
            spec: BalanceSpec::ConsistentHash { virtual_nodes },
            points: ring.iter().map(|&(p, _)| p).collect(),
            owners: ring.iter().map(|&(_, o)| o).collect(),
            distinct: table.len(),
        }
    }

    /// Number of points on the ring.
    pub fn ring_len(&self) -> usize {
        self.points.len()
    }

    /// Index of the first point at or clockwise after `key`'s position.
    fn slot(&self, key: &PickKey) -> usize {
        let pos = mix64(key.client_hash ^ KEY_SEED);
        let i = self.points.partition_point(|&p| p < pos);
        if i == self.points.len() {
            0 // past the last point: wrap to the first
        } else {
            i
        }
    }
}

impl Balancer for ConsistentHash {
    fn pick(
        &self,
        key: &PickKey,
        _table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.slot(key);
        let first = self.owners[start] as BackendId;
        if accept(first) {
            return Some(first);
        }
        let mut offered = Offered::new();
        offered.insert(first);
        // Walk clockwise; each backend is offered at its first point only.
        for step in 1..len {
            if offered.len() == self.distinct {
                break;
            }
            let id = self.owners[(start + step) % len] as BackendId;
            if offered.insert(id) && accept(id) {
                return Some(id);
            }
        }
        None
    }

    fn spec(&self) -> &BalanceSpec {
        &self.spec
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use std::sync::Arc;

    const KEYS: u64 = 10_000;

    #[test]
    fn ring_size_is_vnodes_times_weight() {
        let t = table(&[1, 2, 3]);
        assert_eq!(ConsistentHash::new(&t, 160).ring_len(), 960);
        let t = table(&[1_000_000, 1]);
        let ch = ConsistentHash::new(&t, 1000);
        assert!(ch.ring_len() as u64 <= MAX_RING_POINTS + 1);
        assert!(ch.owners.contains(&1), "every backend keeps a point");
    }

    #[test]
    fn positions_depend_on_address_not_name_or_order() {
        // Same addresses, different names and order: same owner by address.
        let a = table(&[1, 1, 1]);
        let ch_a = ConsistentHash::new(&a, 50);
        let defs: Vec<_> = [2usize, 0, 1]
            .iter()
            .map(|&i| crate::backend::BackendDef {
                name: format!("renamed-{i}"),
                addr: a.get(i).addr,
                weight: 1,
                tls: None,
            })
            .collect();
        let b = BackendTable::new(&defs, Default::default());
        let ch_b = ConsistentHash::new(&b, 50);
        for k in 0..1000u64 {
            let ka = ch_a.pick(&key(k), &a, &mut |_| true).unwrap();
            let kb = ch_b.pick(&key(k), &b, &mut |_| true).unwrap();
            assert_eq!(a.get(ka).addr, b.get(kb).addr);
        }
        // And positions are fixed constants of the address (not per-process).
        let addr: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        assert_eq!(point_position(&addr, 0), point_position(&addr, 0));
        assert_ne!(point_position(&addr, 0), point_position(&addr, 1));
    }

    #[test]
    fn distribution_follows_weights() {
        let weights = [1, 2, 3, 1, 1];
        let t = table(&weights);
        let ch = ConsistentHash::new(&t, 160);
        let n = 100_000;
        let c = counts(&ch, &t, n, mix64, &[]);
        let total_w: u32 = weights.iter().sum();
        for (id, &w) in weights.iter().enumerate() {
            let expect = n as f64 * f64::from(w) / f64::from(total_w);
            let err = (c[id] as f64 - expect).abs() / expect;
            println!(
                "consistent-hash: backend {id} weight {w}: {} keys, {:.1}% off",
                c[id],
                err * 100.0
            );
            assert!(err < 0.15, "backend {id}: {} vs {expect:.0} ({c:?})", c[id]);
        }
    }

    #[test]
    fn removing_one_of_five_moves_only_its_keys() {
        let t = table(&[1; 5]);
        let ch = ConsistentHash::new(&t, 160);
        let down = 3;
        let mut moved = 0u64;
        for k in 0..KEYS {
            let h = mix64(k.wrapping_mul(31));
            let before = pick_checked(&ch, &t, h, &[]).unwrap();
            let after = pick_checked(&ch, &t, h, &[down]).unwrap();
            if before == down {
                moved += 1;
                assert_ne!(after, down);
            } else {
                assert_eq!(before, after, "a key of a healthy backend moved");
            }
        }
        let fraction = moved as f64 / KEYS as f64;
        println!("consistent-hash: removing 1 of 5 moved {moved}/{KEYS} keys ({fraction:.4})");
        assert!((fraction - 0.2).abs() < 0.04, "moved {fraction}");
    }

    #[test]
    fn common_contract() {
        check_common(|t| Arc::new(ConsistentHash::new(t, 20)));
    }
}
