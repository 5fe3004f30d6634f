//! Rate-limiter `check` cost: each algorithm single-threaded over a realistic
//! key mix, and with 2 threads contending on a few hot keys (`iter_custom`),
//! next to a `Mutex<HashMap>` fixed-window baseline (pingora-limits style).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use api_gateway::algo::cells::Evictions;
use api_gateway::algo::limit::{build, RateLimiter};
use api_gateway::algo::Nanos;
use api_gateway_admin::protocol::LIMITER_NAMES;
use api_gateway_admin::LimitSpec;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Keys tracked by each table (the gateway's default order of magnitude).
const MAX_KEYS: usize = 65_536;
/// Pre-generated key sequence length (power of two: index by mask).
const MIX_LEN: usize = 1 << 16;
/// Simulated time between two checks: 1 µs (1 M requests/s).
const STEP_NS: u64 = 1_000;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 90% of requests from 256 hot clients, 10% from 200k cold ones (more than
/// the table holds, so eviction is exercised), already hashed like the
/// caller's seeded hash.
fn key_mix() -> Vec<u64> {
    let mut s = 42;
    (0..MIX_LEN)
        .map(|_| {
            let r = splitmix(&mut s);
            let id = if r % 10 < 9 {
                r % 256
            } else {
                1_000 + r % 200_000
            };
            let mut h = id;
            splitmix(&mut h)
        })
        .collect()
}

/// Specs under which (almost) every check admits, so every check writes its
/// CAS: the expensive path. The API defaults mostly deny hot keys, which
/// costs only loads.
fn admit_heavy() -> Vec<(&'static str, LimitSpec)> {
    vec![
        (
            "fixed-window/admit",
            LimitSpec::FixedWindow {
                limit: u32::MAX,
                window_ms: 10_000,
            },
        ),
        (
            "sliding-log/admit",
            LimitSpec::SlidingLog {
                limit: 1024,
                window_ms: 1,
            },
        ),
        (
            "sliding-counter/admit",
            LimitSpec::SlidingCounter {
                limit: 1 << 20,
                window_ms: 10_000,
            },
        ),
        (
            "token-bucket/admit",
            LimitSpec::TokenBucket {
                capacity: 1 << 20,
                refill_per_sec: 1e9,
            },
        ),
        (
            "leaky-bucket/admit",
            LimitSpec::LeakyBucket {
                capacity: 1 << 20,
                leak_per_sec: 1e9,
            },
        ),
    ]
}

/// All benchmarked specs: the API defaults, then the admit-heavy ones.
fn specs() -> Vec<(&'static str, LimitSpec)> {
    let mut v: Vec<_> = LIMITER_NAMES
        .iter()
        .map(|&n| (n, LimitSpec::default_for(n).unwrap()))
        .collect();
    v.extend(admit_heavy());
    v
}

/// Baseline: a fixed window under one global lock.
struct MutexFixedWindow {
    limit: u32,
    window: u64,
    map: Mutex<HashMap<u64, (u64, u32)>>,
}

impl MutexFixedWindow {
    fn check(&self, key: u64, now: Nanos) -> bool {
        let idx = now.0 / self.window;
        let mut map = self.map.lock().unwrap();
        let e = map.entry(key).or_insert((idx, 0));
        if e.0 != idx {
            *e = (idx, 0);
        }
        if e.1 < self.limit {
            e.1 += 1;
            true
        } else {
            false
        }
    }
}

fn baseline() -> MutexFixedWindow {
    MutexFixedWindow {
        limit: 100,
        window: 10_000_000_000,
        map: Mutex::new(HashMap::with_capacity(MAX_KEYS)),
    }
}

/// Runs `f(i)` for `iters` iterations on each of `threads` threads at once;
/// returns the wall time, i.e. the per-thread latency of `iters` checks.
fn contended(threads: usize, iters: u64, f: impl Fn(u64) + Send + Sync + 'static) -> Duration {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (f, b) = (Arc::clone(&f), Arc::clone(&barrier));
            std::thread::spawn(move || {
                b.wait();
                for i in 0..iters {
                    f(i * 2 + t);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed()
}

fn single_thread(c: &mut Criterion) {
    let keys = key_mix();
    let mut g = c.benchmark_group("limiters/1-thread");
    g.throughput(Throughput::Elements(1));
    for (name, spec) in specs() {
        let l = build(&spec, MAX_KEYS, &Evictions::default());
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let key = keys[i as usize & (MIX_LEN - 1)];
                black_box(l.check(key, Nanos(i * STEP_NS)))
            })
        });
    }
    let base = baseline();
    let mut i = 0u64;
    g.bench_function("mutex-hashmap-fixed-window", |b| {
        b.iter(|| {
            i += 1;
            let key = keys[i as usize & (MIX_LEN - 1)];
            black_box(base.check(key, Nanos(i * STEP_NS)))
        })
    });
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    // Both threads hit the same 4 hot keys: worst-case CAS contention.
    let hot: Arc<Vec<u64>> = Arc::new(key_mix().into_iter().take(4).collect());
    let mut g = c.benchmark_group("limiters/2-threads");
    g.throughput(Throughput::Elements(1));
    for (name, spec) in specs() {
        let l: Arc<dyn RateLimiter> = build(&spec, MAX_KEYS, &Evictions::default());
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (l, hot) = (Arc::clone(&l), Arc::clone(&hot));
                contended(2, iters, move |i| {
                    black_box(l.check(hot[(i & 3) as usize], Nanos(i * STEP_NS)));
                })
            })
        });
    }
    let base = Arc::new(baseline());
    g.bench_function("mutex-hashmap-fixed-window", |b| {
        b.iter_custom(|iters| {
            let (base, hot) = (Arc::clone(&base), Arc::clone(&hot));
            contended(2, iters, move |i| {
                black_box(base.check(hot[(i & 3) as usize], Nanos(i * STEP_NS)));
            })
        })
    });
    g.finish();
}

/// The shadow limiters' price per request on top of the live check: all
/// four other algorithms plus the accuracy meter, for one busy key (the
/// keep-alive bench's single client) and for the realistic key mix (new
/// keys replacing old ones in a full meter).
fn shadows(c: &mut Criterion) {
    use api_gateway::algo::limit::shadow::{ShadowSet, Shadows};
    let live = LimitSpec::TokenBucket {
        capacity: 100,
        refill_per_sec: 10.0,
    };
    let mut g = c.benchmark_group("limiters/shadows");
    g.throughput(Throughput::Elements(1));
    let ev = Evictions::default();
    let keys = key_mix();
    for (name, mix) in [("all-four/one-key", false), ("all-four/key-mix", true)] {
        let l = build(&live, MAX_KEYS, &ev);
        let set = ShadowSet::new(&live, &Shadows::All, MAX_KEYS, &ev).expect("four shadows");
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let key = if mix {
                    keys[i as usize & (MIX_LEN - 1)]
                } else {
                    7
                };
                let now = Nanos(i * STEP_NS);
                let d = l.check(key, now);
                black_box(set.observe(key, now, &d))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, single_thread, two_threads, shadows);
criterion_main!(benches);
