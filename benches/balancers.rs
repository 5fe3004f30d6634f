//! Pick-path cost of every balancer and of the breaker's permit round trip.
//!
//! Each balancer is measured single-threaded and with 2 threads contending on
//! the same instance (`iter_custom`: wall time while both run `iters` picks),
//! next to a `Mutex` round-robin baseline. `accept` always says yes, so this is
//! the first-choice path the gateway takes when every backend is healthy.
//! `p2c-ewma` runs over latency estimates seeded once (1..5 ms) with the clock
//! moving 1 µs per pick, so every pick pays for the decay it computes.

use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::algo::balance::{build, Balancer, PickKey};
use api_gateway::algo::breaker::{Breaker, Outcome};
use api_gateway::algo::Nanos;
use api_gateway::backend::{BackendDef, BackendTable};
use api_gateway_admin::{BalanceSpec, BreakerSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const THREADS: usize = 2;

/// When the latencies are seeded; picks happen after it.
const T0: Nanos = Nanos::from_secs(1);

fn table() -> BackendTable {
    let defs: Vec<BackendDef> = [3, 2, 1, 1, 1]
        .iter()
        .enumerate()
        .map(|(i, &weight)| BackendDef {
            name: format!("b{i}"),
            addr: format!("10.0.0.{}:8080", i + 1).parse().unwrap(),
            weight,
            tls: None,
        })
        .collect();
    let table = BackendTable::new(&defs, BreakerSpec::default());
    for b in table.iter() {
        let rtt = Nanos::from_millis(1 + b.id as u64);
        b.latency.observe(rtt, T0, Nanos::from_secs(10));
    }
    table
}

/// Runs `op(i)` `iters` times on each of `THREADS` threads at once and
/// returns the wall time (per-op latency under contention).
fn contended(iters: u64, op: impl Fn(u64) + Send + Sync + 'static) -> Duration {
    let op = Arc::new(op);
    let start = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (op, start) = (op.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for i in 0..iters {
                    op(i.wrapping_mul(THREADS as u64) + t as u64);
                }
            })
        })
        .collect();
    start.wait();
    let begin = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    begin.elapsed()
}

fn pick(b: &dyn Balancer, t: &BackendTable, i: u64) -> Option<usize> {
    // Distinct client per pick, as under real traffic (matters for the hashes).
    let key = PickKey {
        client_hash: i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        now: T0.saturating_add(Nanos(i.wrapping_mul(1_000))),
    };
    b.pick(&key, t, &mut |_| true)
}

fn balancers(c: &mut Criterion) {
    let specs = [
        BalanceSpec::RoundRobin,
        BalanceSpec::WeightedRoundRobin,
        BalanceSpec::LeastConnections,
        BalanceSpec::IpHash,
        BalanceSpec::ConsistentHash { virtual_nodes: 160 },
        BalanceSpec::P2cEwma { decay_ms: 10_000 },
    ];
    let mut g = c.benchmark_group("balancers");
    g.throughput(Throughput::Elements(1));
    for spec in specs {
        let t = Arc::new(table());
        let b = build(&spec, &t);
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new(spec.name(), "1thread"), |bench| {
            bench.iter(|| {
                i = i.wrapping_add(1);
                black_box(pick(&*b, &t, i))
            })
        });
        g.bench_function(BenchmarkId::new(spec.name(), "2threads"), |bench| {
            bench.iter_custom(|iters| {
                let (b, t) = (b.clone(), t.clone());
                contended(iters, move |i| {
                    black_box(pick(&*b, &t, i));
                })
            })
        });
    }
    // The response-path hook p2c-ewma adds: one peak-EWMA update (an exp and
    // a CAS), both threads on the same backend's estimate.
    let t = Arc::new(table());
    let p2c = build(&BalanceSpec::P2cEwma { decay_ms: 10_000 }, &t);
    let mut i = 0u64;
    g.bench_function(BenchmarkId::new("p2c-ewma-observe", "1thread"), |bench| {
        bench.iter(|| {
            i = i.wrapping_add(1);
            let rtt = Nanos(1_000_000 + (i & 0xffff) * 16);
            p2c.observe(t.get(0), rtt, T0.saturating_add(Nanos(i * 1_000)));
        })
    });
    g.bench_function(BenchmarkId::new("p2c-ewma-observe", "2threads"), |bench| {
        bench.iter_custom(|iters| {
            let (p2c, t) = (p2c.clone(), t.clone());
            contended(iters, move |i| {
                let rtt = Nanos(1_000_000 + (i & 0xffff) * 16);
                p2c.observe(t.get(0), rtt, T0.saturating_add(Nanos(i * 1_000)));
            })
        })
    });
    // Baseline: the obvious locked round robin.
    let rr = Arc::new(Mutex::new(0usize));
    g.bench_function(BenchmarkId::new("mutex-rr-baseline", "1thread"), |bench| {
        bench.iter(|| {
            let mut n = rr.lock().unwrap();
            *n = (*n + 1) % 5;
            black_box(*n)
        })
    });
    g.bench_function(BenchmarkId::new("mutex-rr-baseline", "2threads"), |bench| {
        bench.iter_custom(|iters| {
            let rr = rr.clone();
            contended(iters, move |_| {
                let mut n = rr.lock().unwrap();
                *n = (*n + 1) % 5;
                black_box(*n);
            })
        })
    });
    g.finish();
}

fn breaker(c: &mut Criterion) {
    let mut g = c.benchmark_group("breaker");
    g.throughput(Throughput::Elements(1));
    let b = Arc::new(Breaker::new(BreakerSpec::default()));
    let mut now = 0u64;
    g.bench_function("acquire+record/1thread", |bench| {
        bench.iter(|| {
            now += 1_000;
            let p = b.try_acquire(Nanos(now)).unwrap();
            black_box(b.record(p, Outcome::Success, Nanos(now)))
        })
    });
    g.bench_function("acquire+record/2threads", |bench| {
        bench.iter_custom(|iters| {
            let b = b.clone();
            contended(iters, move |i| {
                let now = Nanos(i * 1_000);
                let p = b.try_acquire(now).unwrap();
                black_box(b.record(p, Outcome::Success, now));
            })
        })
    });
    // The failure path writes (CAS); a huge threshold keeps it CLOSED.
    let spec = BreakerSpec {
        failure_threshold: 10_000,
        window_ms: 1,
        open_ms: 1,
        ..BreakerSpec::default()
    };
    let f = Arc::new(Breaker::new(spec));
    g.bench_function("acquire+record-failure/1thread", |bench| {
        bench.iter(|| {
            now += 1_000;
            let p = f.try_acquire(Nanos(now)).unwrap();
            black_box(f.record(p, Outcome::Failure, Nanos(now)))
        })
    });
    g.finish();
}

criterion_group!(benches, balancers, breaker);
criterion_main!(benches);
