//! Retries over real sockets: a refused connect or a silent backend is
//! retried on another backend for idempotent requests only, and a failing
//! upstream gets no more tries than its retry budget allows.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use api_gateway::Config;
use serde_json::json;
use support::*;

/// A gateway over `backends` (round robin, one worker) with `retry` and a
/// breaker that never opens (so every try reaches a backend).
fn gateway(backends: &[SocketAddr], retry: serde_json::Value) -> api_gateway::Gateway {
    let list: Vec<_> = backends
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"name": format!("b{i}"), "addr": a.to_string()}))
        .collect();
    let doc = json!({
        "listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
        "rate_limit": {"algorithm": "token-bucket", "capacity": 1_000_000, "refill_per_sec": 1_000_000},
        "circuit_breaker": {"failure_threshold": 10_000},
        "timeouts": {"connect_ms": 500, "backend_response_ms": 3000},
        "backends": list,
        "retry": retry,
    });
    start(Config::from_json(&doc.to_string()).unwrap())
}

fn send(c: &mut Client, method: &str, path: &str, body: &str) -> Response {
    c.roundtrip(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

fn metric(gw: &api_gateway::Gateway, series: &str) -> f64 {
    match gw.command(api_gateway_admin::Command::Metrics) {
        api_gateway_admin::Reply::Text(t) => prom(&t, series),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_get_to_a_refusing_backend_succeeds_on_another_and_a_post_is_not_retried() {
    let good = TestBackend::start();
    let gw = gateway(&[dead_addr(), good.addr], json!({"attempts": 2}));
    let mut c = Client::connect(gw.listen_addr());
    let mut retried = 0;
    for i in 0..20 {
        let r = send(&mut c, "GET", &format!("/get/{i}"), "");
        assert_eq!(r.status, 200, "GET {i} failed: {}", r.text());
        assert_eq!(r.header("x-backend"), Some("b1"));
        match r.header("x-retry-count") {
            Some("1") => retried += 1,
            None => {}
            other => panic!("x-retry-count {other:?}"),
        }
    }
    // Round robin offers the refusing backend first every time: the retry
    // takes the other turn.
    assert_eq!(
        retried, 20,
        "each request that met the refusing backend was retried once"
    );
    assert_eq!(good.requests.load(Ordering::SeqCst), 20);
    assert_eq!(metric(&gw, "gateway_retries_total"), 20.0);

    // A POST (not idempotent) that meets the refusing backend gets its 502.
    let mut statuses = Vec::new();
    for i in 0..4 {
        let mut c = Client::connect(gw.listen_addr());
        let r = send(&mut c, "POST", &format!("/post/{i}"), "x=1");
        assert!(r.header("x-retry-count").is_none());
        statuses.push(r.status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502], "POSTs are never retried");
    assert_eq!(metric(&gw, "gateway_retries_total"), 20.0);
}

#[test]
fn a_silent_backend_costs_one_per_try_timeout_then_the_next_backend_answers() {
    // Accepts, reads the request, never answers.
    let silent = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let mut buf = [0u8; 1];
        let _ = std::io::Read::read(&mut s, &mut buf);
    });
    let good = TestBackend::start();
    let gw = gateway(
        &[silent.addr, good.addr],
        json!({"attempts": 1, "on": ["504"], "per_try_timeout_ms": 150}),
    );
    let mut c = Client::connect(gw.listen_addr());
    for i in 0..4 {
        let started = std::time::Instant::now();
        let r = send(&mut c, "GET", &format!("/x/{i}"), "");
        assert_eq!(r.status, 200, "{}", r.text());
        let took = started.elapsed();
        if r.header("x-retry-count") == Some("1") {
            assert!(
                took.as_millis() >= 150,
                "the silent try waited its per-try timeout"
            );
        }
        assert!(
            took.as_millis() < 2000,
            "bounded by the per-try timeout, not the 3 s backend timeout: {took:?}"
        );
    }
    assert_eq!(good.requests.load(Ordering::SeqCst), 4);
}

#[test]
fn with_every_backend_failing_retries_stop_at_the_budget() {
    let (a, b) = (TestBackend::start(), TestBackend::start());
    // 0.2 × requests + 1/s × 10 s: with 50 requests, 20 retries at most.
    let gw = gateway(
        &[a.addr, b.addr],
        json!({"attempts": 2, "budget_ratio": 0.2, "budget_min_per_sec": 1}),
    );
    let mut c = Client::connect(gw.listen_addr());
    let mut retries = 0;
    for _ in 0..50 {
        let r = send(&mut c, "GET", "/status?code=503", "");
        assert_eq!(r.status, 503, "the last try's answer is the client's");
        retries += r
            .header("x-retry-count")
            .map_or(0, |n| n.parse::<u32>().unwrap());
    }
    let tries = a.requests.load(Ordering::SeqCst) + b.requests.load(Ordering::SeqCst);
    eprintln!("50 requests to an upstream answering 503: {tries} tries, {retries} retries");
    assert_eq!(retries, 20, "0.2 × 50 + 1 × 10");
    assert_eq!(
        tries, 70,
        "the backends saw each request once and 20 retries"
    );
    assert_eq!(metric(&gw, "gateway_retries_total"), 20.0);
    assert!(metric(&gw, "gateway_retry_budget_exhausted_total") >= 30.0);
}
