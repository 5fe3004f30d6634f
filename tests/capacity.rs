//! The in-flight cap per backend and the queue in front of it, over real
//! sockets: a slow backend never has more than `max_inflight_per_backend`
//! requests, the excess waits in a bounded queue, and what cannot wait
//! gets a fast 503 with `Retry-After`; nothing waits past the timeout.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::Config;
use serde_json::json;
use support::*;

/// A backend that holds each request `hold` before answering, and counts
/// how many it holds at once (the peak).
struct Slow {
    addr: SocketAddr,
    peak: Arc<AtomicUsize>,
    served: Arc<AtomicUsize>,
}

fn slow(hold: Duration) -> Slow {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let (p, s) = (peak.clone(), served.clone());
    let addr = answering(move |_| {
        let held = now.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(held, Ordering::SeqCst);
        thread::sleep(hold);
        now.fetch_sub(1, Ordering::SeqCst);
        s.fetch_add(1, Ordering::SeqCst);
        200
    });
    Slow { addr, peak, served }
}

fn gateway(addr: SocketAddr, extra: serde_json::Value) -> api_gateway::Gateway {
    let mut doc = json!({
        "listen": "127.0.0.1:0", "admin": null, "workers": 2, "access_log": "off",
        "rate_limit": {"algorithm": "token-bucket", "capacity": 1_000_000, "refill_per_sec": 1_000_000},
        "backends": [{"name": "slow", "addr": addr.to_string()}],
        "max_inflight_per_backend": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        doc[k] = v.clone();
    }
    start(Config::from_json(&doc.to_string()).unwrap())
}

/// `n` clients at once, each one GET; (status, Retry-After, elapsed) each.
fn burst(addr: SocketAddr, n: usize) -> Vec<(u16, Option<String>, Duration)> {
    let threads: Vec<_> = (0..n)
        .map(|i| {
            thread::spawn(move || {
                let started = Instant::now();
                let r = get(addr, &format!("/r{i}"));
                (
                    r.status,
                    r.header("retry-after").map(str::to_string),
                    started.elapsed(),
                )
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn the_cap_holds_the_queue_fills_and_the_excess_gets_a_fast_503() {
    // Each request holds the backend 150 ms, 2 at a time; 3 may wait up
    // to 1.5 s (the last of them is served after about 450 ms), the other
    // 5 are turned away at once.
    let b = slow(Duration::from_millis(150));
    let gw = gateway(b.addr, json!({"queue": {"max": 3, "timeout_ms": 1500}}));
    let results = burst(gw.listen_addr(), 10);
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let turned_away: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    eprintln!(
        "10 at once, cap 2, queue 3: {ok} served, {} turned away; peak at the backend {}",
        turned_away.len(),
        b.peak.load(Ordering::SeqCst)
    );
    assert_eq!(ok + turned_away.len(), 10, "{results:?}");
    assert!(b.peak.load(Ordering::SeqCst) <= 2, "the cap held");
    assert_eq!(ok, 5, "2 in flight + 3 queued: {results:?}");
    for r in &turned_away {
        assert_eq!(r.1.as_deref(), Some("1"), "503 carries Retry-After");
        assert!(
            r.2 < Duration::from_millis(250),
            "turned away at once: {:?}",
            r.2
        );
    }
    assert_eq!(b.served.load(Ordering::SeqCst), 5);
    let text = match gw.command(api_gateway_admin::Command::Metrics) {
        api_gateway_admin::Reply::Text(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        prom(&text, "gateway_upstream_queue_depth{upstream=\"default\"}"),
        0.0
    );
    assert_eq!(
        prom(
            &text,
            "gateway_upstream_queue_rejected_total{upstream=\"default\",reason=\"full\"}"
        ),
        5.0
    );
    assert_eq!(
        prom(
            &text,
            "gateway_upstream_queue_wait_seconds_count{upstream=\"default\"}"
        ),
        3.0,
        "the three that waited"
    );
    let ups = match gw.command(api_gateway_admin::Command::Upstreams) {
        api_gateway_admin::Reply::Json(v) => v,
        other => panic!("{other:?}"),
    };
    let q = &ups["upstreams"][0]["queue"];
    assert_eq!(
        (q["max"].as_u64(), q["full"].as_u64()),
        (Some(3), Some(5)),
        "{ups}"
    );
    assert_eq!(ups["upstreams"][0]["max_inflight_per_backend"], 2);
}

#[test]
fn nothing_waits_past_the_queue_timeout() {
    // 2 s per request: the queued ones cannot be served within 200 ms.
    let b = slow(Duration::from_millis(2000));
    let gw = gateway(b.addr, json!({"queue": {"max": 10, "timeout_ms": 200}}));
    let results = burst(gw.listen_addr(), 6);
    let timed_out: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert_eq!(timed_out.len(), 4, "{results:?}");
    for r in &timed_out {
        assert_eq!(r.1.as_deref(), Some("1"));
        assert!(
            r.2 >= Duration::from_millis(190) && r.2 < Duration::from_millis(700),
            "503 after the 200 ms wait, not later: {:?}",
            r.2
        );
    }
    assert!(b.peak.load(Ordering::SeqCst) <= 2);
}

#[test]
fn without_a_queue_the_excess_is_refused_at_once() {
    let b = slow(Duration::from_millis(300));
    let gw = gateway(b.addr, json!({}));
    let results = burst(gw.listen_addr(), 5);
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert_eq!(ok, 2, "{results:?}");
    assert!(results
        .iter()
        .filter(|r| r.0 == 503)
        .all(|r| r.1.as_deref() == Some("1") && r.2 < Duration::from_millis(250)));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200, "capacity comes back");
}
