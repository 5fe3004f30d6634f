//! Power of two choices over peak-EWMA latency (Finagle's and Linkerd's
//! default balancer).
//!
//! Each pick draws two distinct backends at random and takes the cheaper,
//! cost = latency estimate × (in flight + 1) / slow-start ramp. Two random
//! choices are almost as good as scanning every backend (Mitzenmacher) and
//! never herd: the worst backend is never chosen while others accept, yet no
//! single "best" one takes everything. The estimates and in-flight counts
//! live in the backends' long-lived state, so they survive swaps and
//! reloads; the balancer itself holds only its random stream (one
//! `AtomicU64`). Each backend is offered at most once per pick.
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

use api_gateway_protocol::BalanceSpec;

use super::{mix64, reduce, Balancer, Offered, PickKey, GOLDEN};
use crate::algo::{BackendId, Nanos};
use crate::backend::{Backend, BackendTable};

/// Cost of a backend with requests in flight but no latency sample yet
/// (Finagle's penalty, `Long.MaxValue >> 16` ns, about 39 hours): a new
/// backend gets one probe, not every request until its first answer.
const PENALTY: f64 = (i64::MAX >> 16) as f64;

/// Power of two choices over peak-EWMA latency.
///
/// ```
/// use api_gateway::algo::balance::{Balancer, P2cEwma, PickKey};
/// use api_gateway::algo::Nanos;
/// use api_gateway::backend::{BackendDef, BackendTable};
/// use api_gateway_protocol::BreakerSpec;
///
/// let defs: Vec<BackendDef> = (0..2)
///     .map(|i| BackendDef {
///         name: format!("b{i}"),
///         addr: format!("127.0.0.1:{}", 3001 + i).parse().unwrap(),
///         weight: 1,
///         tls: None,
///     })
///     .collect();
/// let table = BackendTable::new(&defs, BreakerSpec::default());
/// let p2c = P2cEwma::new(&table, 10_000);
/// let now = Nanos::from_secs(1);
/// // b0 answered in 20 ms, b1 in 1 ms: b1 is cheaper.
/// p2c.observe(table.get(0), Nanos::from_millis(20), now);
/// p2c.observe(table.get(1), Nanos::from_millis(1), now);
/// let key = PickKey { client_hash: 0, now };
/// assert_eq!(p2c.pick(&key, &table, &mut |_| true), Some(1));
/// // b1 refused (say its circuit is open): b0 is next.
/// assert_eq!(p2c.pick(&key, &table, &mut |id| id != 1), Some(0));
/// ```
#[derive(Debug)]
pub struct P2cEwma {
    n: usize,
    /// The estimate's time constant.
    decay: Nanos,
    spec: BalanceSpec,
    /// splitmix64 state: one `fetch_add` per pick, so concurrent workers
    /// draw distinct numbers without a lock or a thread-local RNG.
    rng: AtomicU64,
}

impl P2cEwma {
    /// Builds over `table`'s backends with a latency estimate that forgets
    /// with time constant `decay_ms`.
    pub fn new(table: &BackendTable, decay_ms: u64) -> P2cEwma {
        P2cEwma {
            n: table.len(),
            decay: Nanos::from_millis(decay_ms),
            spec: BalanceSpec::P2cEwma { decay_ms },
            rng: AtomicU64::new(0),
        }
    }

    /// A backend's cost at `now`: lower is better. An unobserved idle
    /// backend costs 0 (it gets tried); a warming one (ramp 0.1..1) costs up
    /// to 10 times more, so it takes a growing share as it warms up.
    pub fn cost(&self, b: &Backend, now: Nanos, slow_start: Nanos) -> f64 {
        let est = b.latency.estimate(now, self.decay);
        let inflight = b.inflight();
        let load = if est == 0.0 && inflight > 0 {
            // Unmeasured but busy: one probe at a time until it answers.
            PENALTY + f64::from(inflight)
        } else {
            est * (f64::from(inflight) + 1.0)
        };
        load / b.ramp(now, slow_start)
    }

    fn random(&self) -> u64 {
        // Relaxed: the stream only has to differ between picks; it orders
        // no other memory.
        mix64(
            self.rng
                .fetch_add(GOLDEN, Ordering::Relaxed)
                .wrapping_add(GOLDEN),
        )
    }
}

impl Balancer for P2cEwma {
    fn pick(
        &self,
        key: &PickKey,
        table: &BackendTable,
        accept: &mut dyn FnMut(BackendId) -> bool,
    ) -> Option<BackendId> {
        // Defensive: never index past the table we are handed.
        let n = self.n.min(table.len());
        match n {
            0 => return None,
            1 => return accept(0).then_some(0),
            _ => {}
        }
        let (now, slow_start) = (key.now, table.slow_start());
        let cost = |id: BackendId| self.cost(table.get(id), now, slow_start);
        let r = self.random();
        // Two distinct draws from one word: the first from its high bits,
        // the second (over the other n - 1) from the rotated word, shifted
        // past the first so every ordered pair is equally likely.
        let a = reduce(r, n);
        let mut b = reduce(r.rotate_left(32), n - 1);
        if b >= a {
            b += 1;
        }
        let (first, second) = if cost(b) < cost(a) { (b, a) } else { (a, b) };
        if accept(first) {
            return Some(first);
        }
        if accept(second) {
            return Some(second);
        }
        if n == 2 {
            return None;
        }
        // Both refused (circuit open, switched off): the cheapest of the
        // rest, scanned from a random start so ties do not always go to the
        // lowest id. O(n) per offer, O(n^2) only while backends keep refusing;
        // costs are re-read each scan since they move concurrently.
        let mut offered = Offered::new();
        offered.insert(first);
        offered.insert(second);
        let start = reduce(mix64(r), n);
        while offered.len() < n {
            let mut best: Option<(BackendId, f64)> = None;
            for step in 0..n {
                let id = (start + step) % n;
                if offered.contains(id) {
                    continue;
                }
                let c = cost(id);
                if best.is_none_or(|(_, bc)| c < bc) {
                    best = Some((id, c));
                }
            }
            let (id, _) = best?;
            offered.insert(id);
            if accept(id) {
                return Some(id);
            }
        }
        None
    }

    fn spec(&self) -> &BalanceSpec {
        &self.spec
    }

    fn observe(&self, backend: &Backend, rtt: Nanos, now: Nanos) {
        backend.latency.observe(rtt, now, self.decay);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::upstream::Lease;
    use std::sync::Arc;

    const NOW: Nanos = Nanos::from_secs(100);

    fn at(now: Nanos) -> PickKey {
        PickKey {
            client_hash: 0,
            now,
        }
    }

    /// Records one sample per backend at `now` (ms).
    fn latencies(p: &P2cEwma, t: &BackendTable, ms: &[u64], now: Nanos) {
        for (id, &m) in ms.iter().enumerate() {
            p.observe(t.get(id), Nanos::from_millis(m), now);
        }
    }

    fn counts_at(p: &P2cEwma, t: &BackendTable, n: u64, now: Nanos) -> Vec<u64> {
        let mut c = vec![0; t.len()];
        for _ in 0..n {
            c[p.pick(&at(now), t, &mut |_| true).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn a_slow_backend_gets_few_picks() {
        let t = table(&[1, 1, 1, 1]);
        let p = P2cEwma::new(&t, 10_000);
        latencies(&p, &t, &[20, 1, 1, 1], NOW);
        let c = counts_at(&p, &t, 4000, NOW);
        // Idle backends: the slow one loses every pair it is drawn into.
        assert_eq!(c[0], 0, "{c:?}");
        for &n in &c[1..] {
            assert!((1100..=1570).contains(&n), "{c:?}");
        }
    }

    #[test]
    fn a_slow_backend_still_gets_load_the_fast_one_cannot_take() {
        // The caller leases each pick and never finishes: the fast backend
        // takes picks until 1.3 ms × (k + 1) exceeds 20 ms × (j + 1).
        let t = Arc::new(table(&[1, 1]));
        let p = P2cEwma::new(&t, 10_000);
        p.observe(t.get(0), Nanos::from_millis(20), NOW);
        p.observe(t.get(1), Nanos(1_300_000), NOW);
        let mut leases = Vec::new();
        let mut order = Vec::new();
        for _ in 0..32 {
            let id = p.pick(&at(NOW), &t, &mut |_| true).unwrap();
            order.push(id);
            leases.push(Lease::begin(t.clone(), id));
        }
        // 15 fast (19.5 ms < 20), one slow at 20.8, 15 fast (39 < 40),
        // one slow at 40.3.
        let slow: Vec<usize> = (0..32).filter(|&i| order[i] == 0).collect();
        assert_eq!(slow, [15, 31]);
    }

    #[test]
    fn equal_latencies_spread_evenly() {
        let t = table(&[1, 1, 1, 1]);
        let p = P2cEwma::new(&t, 10_000);
        latencies(&p, &t, &[5, 5, 5, 5], NOW);
        let c = counts_at(&p, &t, 8000, NOW);
        for &n in &c {
            assert!((1800..=2200).contains(&n), "{c:?}");
        }
        // Unobserved (all cost 0) spreads the same way.
        let t = table(&[1, 1, 1, 1]);
        let p = P2cEwma::new(&t, 10_000);
        let c = counts_at(&p, &t, 8000, NOW);
        for &n in &c {
            assert!((1800..=2200).contains(&n), "{c:?}");
        }
    }

    #[test]
    fn inflight_counts_matter() {
        let t = Arc::new(table(&[1, 1]));
        let p = P2cEwma::new(&t, 10_000);
        // b0 1 ms with 4 in flight (cost 5) vs b1 3 ms idle (cost 3): b1.
        latencies(&p, &t, &[1, 3], NOW);
        let _busy: Vec<_> = (0..4).map(|_| Lease::begin(t.clone(), 0)).collect();
        assert_eq!(counts_at(&p, &t, 10, NOW), [0, 10]);
        // b1 with 1 in flight (cost 6) now loses to b0 (5).
        let _one = Lease::begin(t.clone(), 1);
        assert_eq!(counts_at(&p, &t, 10, NOW), [10, 0]);
    }

    #[test]
    fn an_unmeasured_backend_is_tried_once_then_waited_for() {
        let t = Arc::new(table(&[1, 1]));
        let p = P2cEwma::new(&t, 10_000);
        p.observe(t.get(0), Nanos::from_millis(5), NOW);
        // b1 has no sample: cost 0, it gets the probe.
        assert_eq!(p.pick(&at(NOW), &t, &mut |_| true), Some(1));
        // With that probe in flight it is penalized, not flooded.
        let _probe = Lease::begin(t.clone(), 1);
        assert_eq!(counts_at(&p, &t, 10, NOW), [10, 0]);
    }

    #[test]
    fn a_starved_backend_is_retried_as_its_estimate_decays() {
        let t = table(&[1, 1]);
        let p = P2cEwma::new(&t, 10_000);
        latencies(&p, &t, &[20, 1], NOW);
        assert_eq!(counts_at(&p, &t, 10, NOW), [0, 10]);
        // 40 s (4 decays) later b1 is still answering in 1 ms, b0 unheard:
        // 20 ms · e^-4 ≈ 0.37 ms < 1 ms, so b0 is measured again.
        let later = NOW.saturating_add(Nanos::from_secs(40));
        p.observe(t.get(1), Nanos::from_millis(1), later);
        assert_eq!(counts_at(&p, &t, 10, later), [10, 0]);
    }

    #[test]
    fn a_warming_backend_looks_costlier() {
        let slow_start = Nanos::from_secs(10);
        let t = table(&[1, 1]).with_slow_start(slow_start);
        let p = P2cEwma::new(&t, 10_000);
        // b0 is 5x faster but just recovered: 1 ms / 0.1 = 10 > 5.
        latencies(&p, &t, &[1, 5], NOW);
        t.get(0).begin_ramp(NOW);
        assert_eq!(counts_at(&p, &t, 10, NOW), [0, 10]);
        // Halfway (ramp 0.55): 1 / 0.55 ≈ 1.8 < 5, it wins again.
        let mid = NOW.saturating_add(Nanos::from_secs(5));
        assert_eq!(counts_at(&p, &t, 10, mid), [10, 0]);
    }

    #[test]
    fn refused_backends_are_skipped() {
        let t = table(&[1, 1, 1, 1, 1]);
        let p = P2cEwma::new(&t, 10_000);
        latencies(&p, &t, &[1, 2, 3, 4, 5], NOW);
        for _ in 0..100 {
            // Only the slowest accepts: every pick must end there.
            assert_eq!(pick_checked(&p, &t, 0, &[0, 1, 2, 3]), Some(4));
            // The fallback scan takes the cheapest of the rest: with 0 and 1
            // refused, whatever pair was drawn, 2 is reached before 3 and 4.
            let mut offered = Vec::new();
            let got = p.pick(&at(NOW), &t, &mut |id| {
                offered.push(id);
                id >= 2
            });
            let got = got.unwrap();
            if offered.len() > 2 {
                assert_eq!(got, 2, "{offered:?}");
            }
        }
        assert_eq!(pick_checked(&p, &t, 0, &[0, 1, 2, 3, 4]), None);
    }

    #[test]
    fn never_offers_a_backend_twice() {
        for n in 1..=9 {
            let t = table(&vec![1; n]);
            let p = P2cEwma::new(&t, 10_000);
            for round in 0..50u64 {
                let mut seen = vec![0u32; n];
                let mut calls = 0;
                let got = p.pick(&at(Nanos(round)), &t, &mut |id| {
                    seen[id] += 1;
                    calls += 1;
                    false
                });
                assert_eq!(got, None);
                assert_eq!(calls, n, "every backend offered");
                assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
            }
        }
    }

    #[test]
    fn one_backend_is_offered_once() {
        let t = table(&[1]);
        let p = P2cEwma::new(&t, 10_000);
        assert_eq!(pick_checked(&p, &t, 0, &[]), Some(0));
        assert_eq!(pick_checked(&p, &t, 0, &[0]), None);
    }

    #[test]
    fn observe_feeds_the_shared_estimate() {
        let t = table(&[1, 1]);
        let p = P2cEwma::new(&t, 10_000);
        p.observe(t.get(1), Nanos::from_millis(7), NOW);
        assert_eq!(t.get(1).latency.estimate(NOW, p.decay), 7e6);
        assert_eq!(t.get(0).latency.estimate(NOW, p.decay), 0.0);
        // Other balancers ignore samples (the default hook).
        let rr = super::super::RoundRobin::new(&t);
        rr.observe(t.get(0), Nanos::from_millis(7), NOW);
        assert_eq!(t.get(0).latency.estimate(NOW, p.decay), 0.0);
        // A rebuilt balancer sees the same estimate.
        let again = P2cEwma::new(&t, 10_000);
        assert_eq!(again.cost(t.get(1), NOW, Nanos::ZERO), 7e6);
    }

    #[test]
    fn common_contract() {
        check_common(|t| Arc::new(P2cEwma::new(t, 10_000)));
    }
}
