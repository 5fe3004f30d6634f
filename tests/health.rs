//! Active health checks in a running gateway: a backend whose `/health`
//! fails leaves the rotation within `interval × unhealthy_after` (+ one
//! interval) without a client error, comes back after it recovers, moves
//! only its own keys under consistent hashing, and an upstream with no
//! healthy backend answers 503 at once.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_gateway::Config;
use serde_json::json;
use support::*;

/// A backend whose `/health` answers `health` (switchable) and every other
/// path 200.
struct Flaky {
    addr: SocketAddr,
    health: Arc<AtomicU16>,
}

fn flaky() -> Flaky {
    let health = Arc::new(AtomicU16::new(200));
    let h = health.clone();
    let addr = answering(move |path| {
        if path == "/health" {
            h.load(Ordering::SeqCst)
        } else {
            200
        }
    });
    Flaky { addr, health }
}

fn gateway(backends: &[&Flaky], balancer: &str) -> api_gateway::Gateway {
    let list: Vec<_> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"name": format!("b{i}"), "addr": b.addr.to_string()}))
        .collect();
    let doc = json!({
        "listen": "127.0.0.1:0", "admin": null, "workers": 2, "access_log": "off",
        "rate_limit": {"algorithm": "token-bucket", "capacity": 1_000_000, "refill_per_sec": 1_000_000},
        "trusted_proxies": ["127.0.0.1/32"],
        "backends": list,
        "load_balancer": balancer,
        "health_check": {"path": "/health", "interval_ms": 100, "timeout_ms": 100,
                         "unhealthy_after": 2, "healthy_after": 2},
    });
    start(Config::from_json(&doc.to_string()).unwrap())
}

fn health_of(gw: &api_gateway::Gateway, backend: &str) -> String {
    let h = match gw.command(api_gateway_admin::Command::Health) {
        api_gateway_admin::Reply::Json(v) => v,
        other => panic!("{other:?}"),
    };
    h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == backend)
        .map(|b| b["health"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn a_failing_backend_leaves_the_rotation_in_time_without_client_errors_and_comes_back() {
    let (a, b) = (flaky(), flaky());
    let gw = gateway(&[&a, &b], "round-robin");
    assert!(eventually(Duration::from_secs(5), || health_of(&gw, "b1") == "healthy"));
    let mut c = Client::connect(gw.listen_addr());
    let get_one = |c: &mut Client| -> (u16, String) {
        let r = c.roundtrip(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        (r.status, r.header("x-backend").unwrap_or("").to_string())
    };
    // Both serve.
    let first: Vec<_> = (0..10).map(|_| get_one(&mut c)).collect();
    assert!(first.iter().any(|r| r.1 == "b1") && first.iter().all(|r| r.0 == 200));
    // b1's health check starts failing: traffic keeps flowing, all 200.
    let failed_at = Instant::now();
    b.health.store(503, Ordering::SeqCst);
    let mut last_to_b1 = Duration::ZERO;
    while failed_at.elapsed() < Duration::from_millis(800) {
        let (status, backend) = get_one(&mut c);
        assert_eq!(status, 200, "no client sees the failing check");
        if backend == "b1" {
            last_to_b1 = failed_at.elapsed();
        }
    }
    eprintln!("b1 got its last request {last_to_b1:?} after its checks began to fail");
    // 2 failed checks 100 ms apart, + one interval for the phase of the
    // schedule, + slack for a loaded machine.
    assert!(last_to_b1 < Duration::from_millis(450), "{last_to_b1:?}");
    assert_eq!(health_of(&gw, "b1"), "unhealthy");
    // Recovery: back in rotation after 2 passing checks.
    b.health.store(200, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(5), || health_of(&gw, "b1") == "healthy"));
    let after: Vec<_> = (0..10).map(|_| get_one(&mut c)).collect();
    assert!(
        after.iter().any(|r| r.1 == "b1"),
        "b1 serves again: {after:?}"
    );
    let metrics = match gw.command(api_gateway_admin::Command::Metrics) {
        api_gateway_admin::Reply::Text(t) => t,
        other => panic!("{other:?}"),
    };
    assert!(prom(&metrics, "gateway_health_checks_total{result=\"fail\"}") >= 2.0);
    assert_eq!(
        prom(
            &metrics,
            "gateway_backend_health{backend=\"b1\",upstream=\"default\",state=\"healthy\"}"
        ),
        1.0
    );
}

#[test]
fn with_consistent_hashing_only_the_unhealthy_backends_keys_move() {
    let (a, b, c) = (flaky(), flaky(), flaky());
    let gw = gateway(&[&a, &b, &c], "consistent-hash");
    let addr = gw.listen_addr();
    let owner = |ip: &str| -> String {
        let raw = format!(
            "GET /k HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {ip}\r\nConnection: close\r\n\r\n"
        );
        let r = request(addr, raw.as_bytes());
        assert_eq!(r.status, 200);
        r.header("x-backend").unwrap().to_string()
    };
    let ips: Vec<String> = (1..=60)
        .map(|i| format!("10.0.{}.{}", i / 200, i % 200 + 1))
        .collect();
    let before: HashMap<&String, String> = ips.iter().map(|ip| (ip, owner(ip))).collect();
    b.health.store(500, Ordering::SeqCst);
    assert!(eventually(Duration::from_secs(5), || health_of(&gw, "b1")
        == "unhealthy"));
    let mut moved = 0;
    for ip in &ips {
        let now = owner(ip);
        assert_ne!(now, "b1");
        if before[ip] == "b1" {
            moved += 1;
        } else {
            assert_eq!(now, before[ip], "{ip} moved though its backend is healthy");
        }
    }
    assert!(moved > 0, "b1 owned some keys");
}

#[test]
fn an_upstream_with_no_healthy_backend_answers_503_at_once() {
    let a = flaky();
    a.health.store(500, Ordering::SeqCst);
    let gw = gateway(&[&a], "round-robin");
    assert!(eventually(Duration::from_secs(5), || health_of(&gw, "b0")
        == "unhealthy"));
    let started = Instant::now();
    let r = get(gw.listen_addr(), "/x");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "no healthy backend");
    assert!(started.elapsed() < Duration::from_millis(200));
}
