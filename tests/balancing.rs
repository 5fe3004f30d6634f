//! Latency-aware balancing and slow start over real sockets: `p2c-ewma`
//! keeps traffic off a backend 20 ms slower than the others where round
//! robin gives it a third, and a backend whose circuit closes ramps back
//! in over `slow_start_ms`.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::Config;
use serde_json::json;
use support::*;

/// A backend that waits `delay` before each answer, and answers 503
/// while `failing` is set.
struct Paced {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
}

fn paced(delay: Duration) -> Paced {
    let failing = Arc::new(AtomicBool::new(false));
    let f = failing.clone();
    let addr = answering(move |_| {
        thread::sleep(delay);
        if f.load(Ordering::SeqCst) {
            503
        } else {
            200
        }
    });
    Paced { addr, failing }
}

fn gateway(backends: &[&Paced], extra: serde_json::Value) -> api_gateway::Gateway {
    let list: Vec<_> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"name": format!("b{i}"), "addr": b.addr.to_string()}))
        .collect();
    let mut doc = json!({
        "listen": "127.0.0.1:0", "admin": null, "workers": 2, "access_log": "off",
        "rate_limit": {"algorithm": "token-bucket", "capacity": 1_000_000, "refill_per_sec": 1_000_000},
        "backends": list,
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    start(Config::from_json(&doc.to_string()).unwrap())
}

/// `total` requests over `clients` keep-alive connections; the share the
/// backend named `name` got.
fn share_of(addr: SocketAddr, total: usize, clients: usize, name: &str) -> f64 {
    let per = total / clients;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let name = name.to_string();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut hits = 0usize;
                for _ in 0..per {
                    let r = c.roundtrip(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
                    assert_eq!(r.status, 200);
                    if r.header("x-backend") == Some(name.as_str()) {
                        hits += 1;
                    }
                }
                hits
            })
        })
        .collect();
    let hits: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    hits as f64 / (per * clients) as f64
}

#[test]
fn p2c_ewma_keeps_traffic_off_a_slower_backend_where_round_robin_gives_it_a_third() {
    let fast1 = paced(Duration::ZERO);
    let fast2 = paced(Duration::ZERO);
    let slow = paced(Duration::from_millis(20));
    let p2c = gateway(
        &[&fast1, &fast2, &slow],
        json!({"load_balancer": "p2c-ewma"}),
    );
    let rr = gateway(
        &[&fast1, &fast2, &slow],
        json!({"load_balancer": "round-robin"}),
    );
    let p2c_share = share_of(p2c.listen_addr(), 3000, 6, "b2");
    let rr_share = share_of(rr.listen_addr(), 3000, 6, "b2");
    eprintln!(
        "3,000 requests, one backend 20 ms slower: p2c-ewma sent it {:.1}%, round robin {:.1}%",
        p2c_share * 100.0,
        rr_share * 100.0
    );
    assert!(p2c_share < 0.15, "p2c-ewma share {p2c_share}");
    assert!(
        (rr_share - 1.0 / 3.0).abs() < 0.02,
        "round-robin share {rr_share}"
    );
}

#[test]
fn a_backend_whose_circuit_closes_ramps_back_in_over_slow_start() {
    let (a, b) = (paced(Duration::ZERO), paced(Duration::ZERO));
    let gw = gateway(
        &[&a, &b],
        json!({"load_balancer": "weighted-round-robin", "slow_start_ms": 1200,
               "circuit_breaker": {"failure_threshold": 1, "open_ms": 60_000}}),
    );
    let mut c = Client::connect(gw.listen_addr());
    // b1 fails once: its circuit opens.
    b.failing.store(true, Ordering::SeqCst);
    for _ in 0..4 {
        let _ = c.roundtrip(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    b.failing.store(false, Ordering::SeqCst);
    // The operator closes it: the ramp starts now.
    let reply = gw.command(api_gateway_admin::Command::ResetCircuit("b1".into()));
    assert!(
        matches!(reply, api_gateway_admin::Reply::Json(_)),
        "{reply:?}"
    );
    let started = Instant::now();
    let bucket = Duration::from_millis(300);
    let mut buckets = [(0usize, 0usize); 5];
    while started.elapsed() < bucket * 5 {
        let i = (started.elapsed().as_millis() / bucket.as_millis()) as usize;
        let r = c.roundtrip(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.status, 200);
        if let Some(slot) = buckets.get_mut(i) {
            slot.1 += 1;
            if r.header("x-backend") == Some("b1") {
                slot.0 += 1;
            }
        }
    }
    let shares: Vec<f64> = buckets
        .iter()
        .map(|&(hit, all)| hit as f64 / all.max(1) as f64)
        .collect();
    eprintln!(
        "b1's share per 300 ms after its circuit closed (slow start 1.2 s): {:?}",
        shares
            .iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect::<Vec<_>>()
    );
    assert!(shares[0] < 0.25, "starts low: {shares:?}");
    assert!(
        shares[0] < shares[2] && shares[2] < shares[4] + 0.05,
        "ramps up: {shares:?}"
    );
    assert!(shares[4] > 0.4, "full share after the ramp: {shares:?}");
}
