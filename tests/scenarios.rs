//! The original design's demo scenarios, end to end over loopback: three
//! demo backends (Backend-A/B/C, weights 3/2/1) behind a gateway, driven by
//! bursts of real client connections and by the same control commands the
//! admin API sends (load distribution, weighted traffic, rate limiting,
//! circuit breaker trip and self-healing, total meltdown).
//!
//! Waiting for state is done by polling with a bound (`eventually`); the only
//! sleep waits out `open_ms`, because there time itself is under test.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::demo::DemoBackend;
use api_gateway::Gateway;
use api_gateway_admin::{BalanceSpec, BreakerSpec, Command, LimitSpec, Reply};
use serde_json::Value;

use support::*;

const NAMES: [&str; 3] = ["Backend-A", "Backend-B", "Backend-C"];
/// Crash mode only affects `/api` paths.
const PATH: &str = "/api/users";

/// Backend-A/B/C (weights 3/2/1) and a gateway in front of them whose
/// circuits reopen for a probe after `open_ms`.
fn demo(open_ms: u64) -> (Vec<DemoBackend>, Gateway) {
    let backends: Vec<DemoBackend> = NAMES
        .iter()
        .map(|n| DemoBackend::spawn(n, "127.0.0.1:0".parse().unwrap()).expect("demo backend"))
        .collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(DemoBackend::addr).collect();
    let mut cfg = config(&addrs);
    for (def, (name, weight)) in cfg.backends.iter_mut().zip(NAMES.iter().zip([3, 2, 1])) {
        def.name = (*name).to_string();
        def.weight = weight;
    }
    cfg.circuit_breaker = BreakerSpec {
        failure_threshold: 3,
        window_ms: 10_000,
        open_ms,
        ..cfg.circuit_breaker
    };
    (backends, start(cfg))
}

/// `n` concurrent requests, one connection (and thread) each, released
/// together by a barrier once every connection is open.
fn burst(addr: SocketAddr, n: usize) -> Vec<Response> {
    let gate = Arc::new(Barrier::new(n));
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let gate = gate.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                gate.wait();
                c.roundtrip(format!("GET {PATH} HTTP/1.1\r\nHost: demo\r\n\r\n").as_bytes())
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// `n` requests one after another, each on a fresh connection.
fn sequential(addr: SocketAddr, n: usize) -> Vec<Response> {
    (0..n).map(|_| get(addr, PATH)).collect()
}

fn backend_of(r: &Response) -> &str {
    r.header("x-backend").unwrap_or("-")
}

/// Responses per `x-backend` value.
fn tally(rs: &[Response]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rs {
        *m.entry(backend_of(r).to_string()).or_insert(0) += 1;
    }
    m
}

fn expect_split(rs: &[Response], want: [usize; 3]) {
    assert!(rs.iter().all(|r| r.status == 200), "statuses: {rs:?}");
    let t = tally(rs);
    for (name, n) in NAMES.iter().zip(want) {
        assert_eq!(t.get(*name).copied().unwrap_or(0), n, "split {t:?}");
    }
}

fn health(gw: &Gateway) -> Value {
    match gw.command(Command::Health) {
        Reply::Json(v) => v,
        other => panic!("health: {other:?}"),
    }
}

fn circuit(gw: &Gateway, name: &str) -> String {
    let h = health(gw);
    let b = h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {h}"));
    b["circuitState"].as_str().unwrap().to_string()
}

fn events(gw: &Gateway) -> Vec<String> {
    health(gw)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn applied(r: Reply) {
    assert!(matches!(r, Reply::Json(_)), "command rejected: {r:?}");
}

/// Asserts the gateway-made JSON error shape and that its id is the header's.
fn expect_json_error(r: &Response) {
    let body = r.json();
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    let rid = r.header("x-request-id").expect("x-request-id");
    assert_eq!(body["request_id"], rid, "body id must match the header");
}

#[test]
fn round_robin_burst_of_30_splits_10_10_10() {
    let (_backends, gw) = demo(800);
    expect_split(&burst(gw.listen_addr(), 30), [10, 10, 10]);
    let r = get(gw.listen_addr(), PATH);
    assert_eq!(r.header("x-lb-algorithm"), Some("round-robin"));
    gw.shutdown();
}

#[test]
fn weighted_round_robin_burst_of_30_splits_15_10_5_smoothly() {
    let (_backends, gw) = demo(800);
    applied(gw.command(Command::SetLoadBalancer(BalanceSpec::WeightedRoundRobin)));
    // Sequential, so the order is the balancer's order: smooth, not AAABBC.
    let rs = sequential(gw.listen_addr(), 30);
    let first: Vec<&str> = rs[..6].iter().map(backend_of).collect();
    let [a, b, c] = NAMES;
    assert_eq!(first, [a, b, a, c, a, b]);
    assert_eq!(rs[0].header("x-lb-algorithm"), Some("weighted-round-robin"));
    expect_split(&rs, [15, 10, 5]);
    // And the same split when the 30 arrive at once.
    expect_split(&burst(gw.listen_addr(), 30), [15, 10, 5]);
    gw.shutdown();
}

#[test]
fn token_bucket_burst_of_50_admits_exactly_20() {
    let (backends, gw) = demo(800);
    // Refill so slow (one token per 10 s) that none arrives during the burst.
    applied(gw.command(Command::SetRateLimiter(LimitSpec::TokenBucket {
        capacity: 20,
        refill_per_sec: 0.1,
    })));
    let rs = burst(gw.listen_addr(), 50);
    let ok: Vec<&Response> = rs.iter().filter(|r| r.status == 200).collect();
    let limited: Vec<&Response> = rs.iter().filter(|r| r.status == 429).collect();
    assert_eq!((ok.len(), limited.len()), (20, 30), "{:?}", tally(&rs));
    for r in &ok {
        assert_eq!(r.header("RateLimit-Limit"), Some("20"), "{r:?}");
        assert_eq!(r.header("X-RateLimit-Limit"), Some("20"), "{r:?}");
        let remaining: u32 = r.header("RateLimit-Remaining").unwrap().parse().unwrap();
        assert!(remaining < 20);
        assert!(r.header("RateLimit-Reset").is_some() && r.header("X-RateLimit-Reset").is_some());
    }
    // Each admitted request took a distinct token: remaining 19, 18, ..., 0.
    let mut remaining: Vec<u32> = ok
        .iter()
        .map(|r| r.header("RateLimit-Remaining").unwrap().parse().unwrap())
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..20).collect::<Vec<u32>>());
    for r in &limited {
        let retry: u64 = r
            .header("Retry-After")
            .expect("Retry-After")
            .parse()
            .expect("Retry-After is whole seconds");
        assert!(retry >= 1, "Retry-After must never be 0");
        for h in ["RateLimit-", "X-RateLimit-"] {
            assert_eq!(r.header(&format!("{h}Limit")), Some("20"));
            assert_eq!(r.header(&format!("{h}Remaining")), Some("0"));
            let reset: u64 = r.header(&format!("{h}Reset")).unwrap().parse().unwrap();
            assert!(reset >= 1, "{r:?}");
        }
        assert_eq!(r.header("x-backend"), None, "a 429 never reaches a backend");
        expect_json_error(r);
    }
    let served: u64 = backends.iter().map(DemoBackend::served).sum();
    assert_eq!(served, 20, "only admitted requests reach the backends");
    gw.shutdown();
}

#[test]
fn crashed_backend_trips_open_fails_fast_then_self_heals() {
    const OPEN_MS: u64 = 800;
    let (backends, gw) = demo(OPEN_MS);
    let addr = gw.listen_addr();
    let a = &backends[0];
    a.set_crashed(true);

    // Round robin keeps sending A its share until three failures trip it.
    let mut a_states = Vec::new();
    for _ in 0..30 {
        let r = get(addr, PATH);
        if backend_of(&r) == "Backend-A" {
            assert_eq!(r.status, 500, "crashed A answers 500");
            a_states.push(r.header("x-circuit-state").unwrap().to_string());
            if a_states.len() == 3 {
                break;
            }
        } else {
            assert_eq!(r.status, 200, "{r:?}");
        }
    }
    let tripped = Instant::now();
    assert_eq!(a_states, ["CLOSED", "CLOSED", "OPEN"]);
    assert_eq!(circuit(&gw, "Backend-A"), "OPEN");

    // Open: traffic shifts to B and C, and nothing reaches A (fail fast).
    let served_a = a.served();
    let rs = sequential(addr, 10);
    assert!(
        tripped.elapsed() < Duration::from_millis(OPEN_MS / 2),
        "the fail-fast check must finish well inside open_ms"
    );
    assert!(rs.iter().all(|r| r.status == 200), "{rs:?}");
    let t = tally(&rs);
    assert_eq!(t.get("Backend-A"), None, "{t:?}");
    assert!(
        t.contains_key("Backend-B") && t.contains_key("Backend-C"),
        "{t:?}"
    );
    assert_eq!(a.served(), served_a, "no request reached A while open");

    // Recover A, wait out open_ms: the next pick of A is the half-open probe;
    // it succeeds and closes the circuit.
    a.set_crashed(false);
    thread::sleep(Duration::from_millis(OPEN_MS).saturating_sub(tripped.elapsed()));
    let mut probe = None;
    assert!(
        eventually(Duration::from_secs(3), || {
            let r = get(addr, PATH);
            assert_eq!(r.status, 200, "{r:?}");
            let hit = backend_of(&r) == "Backend-A";
            if hit {
                probe = Some(r);
            }
            hit
        }),
        "A never got its probe"
    );
    // The probe is answered while the circuit is still HALF_OPEN: its
    // success is recorded once its response has been fully delivered.
    assert_eq!(probe.unwrap().header("x-circuit-state"), Some("HALF_OPEN"));
    assert!(
        eventually(Duration::from_secs(2), || circuit(&gw, "Backend-A")
            == "CLOSED"),
        "probe success must close the circuit"
    );
    let ev = events(&gw);
    let open_at = ev
        .iter()
        .position(|e| e == "circuit Backend-A CLOSED -> OPEN");
    let closed_at = ev
        .iter()
        .position(|e| e == "circuit Backend-A HALF_OPEN -> CLOSED");
    assert!(
        matches!((open_at, closed_at), (Some(o), Some(c)) if o < c),
        "events: {ev:?}"
    );

    // A is back in the rotation.
    expect_split(&sequential(addr, 30), [10, 10, 10]);
    gw.shutdown();
}

#[test]
fn total_meltdown_answers_503_fast_once_all_circuits_open() {
    // open_ms long enough that no probe happens during the test.
    let (backends, gw) = demo(10_000);
    let addr = gw.listen_addr();
    for b in &backends {
        b.set_crashed(true);
    }
    // Round robin gives each backend exactly 3 of 9 concurrent requests:
    // three slow 500s each, which trips every circuit.
    let rs = burst(addr, 9);
    assert!(rs.iter().all(|r| r.status == 500), "{rs:?}");
    expect_split_any_status(&rs, [3, 3, 3]);
    assert!(
        eventually(Duration::from_secs(2), || NAMES
            .iter()
            .all(|n| circuit(&gw, n) == "OPEN")),
        "health: {}",
        health(&gw)
    );

    let served: Vec<u64> = backends.iter().map(DemoBackend::served).collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t0 = Instant::now();
        let r = get(addr, PATH);
        slowest = slowest.max(t0.elapsed());
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.header("x-backend"), None);
        expect_json_error(&r);
    }
    // A 503 from an open circuit must not wait for a backend: the crash
    // delay is 300 ms, so anything near it means a backend was tried.
    assert!(
        slowest < Duration::from_millis(100),
        "slowest 503 took {slowest:?}"
    );
    eprintln!("meltdown: slowest of 20 fail-fast 503s took {slowest:?}");
    let after: Vec<u64> = backends.iter().map(DemoBackend::served).collect();
    assert_eq!(after, served, "no backend is contacted while all are open");
    let ev = events(&gw);
    for n in NAMES {
        let e = format!("circuit {n} CLOSED -> OPEN");
        assert!(ev.contains(&e), "{e} missing from {ev:?}");
    }
    gw.shutdown();
}

fn expect_split_any_status(rs: &[Response], want: [usize; 3]) {
    let t = tally(rs);
    for (name, n) in NAMES.iter().zip(want) {
        assert_eq!(t.get(*name).copied().unwrap_or(0), n, "split {t:?}");
    }
}
