//! Churning the rate limiter's key table must not reset a limited client.
//!
//! Issue 10: with a fixed window of 5 per 600 s, a client at its limit was
//! admitted 5 more times after 120k distinct source IPs passed, because a
//! full bucket evicted the entry that expires soonest, which was exactly the
//! limited client. Now eviction takes the entry that records the least spent
//! budget first, so one-request churn keys evict each other and the limited
//! client keeps its state; every eviction is counted in `/metrics`.
//!
//! The churn goes over one keep-alive connection, pipelined, with the key
//! taken from `X-Client` so that 100k+
//! distinct keys cost no new sockets. The only backend is switched off, so
//! every admitted request is answered 503 by the gateway itself (no backend
//! round trip): the limiter runs before, and its verdict is 429 or not-429.

mod support;

use std::time::Instant;

use api_gateway::config::KeySource;
use api_gateway_admin::{Command, LimitSpec, Reply};

use support::*;

/// Table size (slots); small so that churning 100x the table stays fast
/// (`GW_CHURN_MAX_KEYS=1024` runs the scale: 102,400 keys, ~15 s).
const MAX_KEYS: usize = 256;

fn req(client: &str) -> Vec<u8> {
    format!("GET /r HTTP/1.1\r\nHost: t\r\nX-Client: {client}\r\n\r\n").into_bytes()
}

/// Series `name` in a Prometheus text body.
fn prom(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {name} in:\n{text}"))
}

fn metrics(gw: &api_gateway::Gateway) -> String {
    match gw.command(Command::Metrics) {
        Reply::Text(t) => t,
        other => panic!("metrics: {other:?}"),
    }
}

/// Requests in flight at once on the churn connection. Kept small: the
/// worker rescans the bytes buffered after a head for the next blank line,
/// so a deep pipeline (a full 16 KiB buffer) costs that scan per request.
const DEPTH: usize = 32;

/// Sends `n` requests of distinct keys `churn-{i}` on one keep-alive
/// connection, pipelined `DEPTH` at a time; returns how many were rate
/// limited.
fn churn(addr: std::net::SocketAddr, n: usize) -> usize {
    let mut c = Client::connect(addr);
    let mut limited = 0;
    let mut batch = Vec::with_capacity(DEPTH * 64);
    for start in (0..n).step_by(DEPTH) {
        let end = (start + DEPTH).min(n);
        batch.clear();
        for i in start..end {
            batch.extend_from_slice(&req(&format!("churn-{i}")));
        }
        c.send(&batch);
        for _ in start..end {
            limited += usize::from(c.read(false).status == 429);
        }
    }
    limited
}

#[test]
fn limited_client_stays_limited_after_churn_of_100x_the_table() {
    let mut c = config(&[dead_addr()]);
    c.rate_limit.spec = LimitSpec::FixedWindow {
        limit: 5,
        window_ms: 600_000,
    };
    c.rate_limit.key = KeySource::Header("X-Client".into());
    let max_keys = std::env::var("GW_CHURN_MAX_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_KEYS);
    c.rate_limit.max_keys = max_keys;
    let gw = start(c);
    let name = "B0".to_string();
    assert!(matches!(
        gw.command(Command::ToggleBackend(name)),
        Reply::Json(_)
    ));
    let addr = gw.listen_addr();

    let mut victim = Client::connect(addr);
    let statuses: Vec<u16> = (0..6)
        .map(|_| victim.roundtrip(&req("victim")).status)
        .collect();
    assert_eq!(
        statuses,
        [503, 503, 503, 503, 503, 429],
        "5 admitted, then limited"
    );
    let before = prom(&metrics(&gw), "gateway_ratelimit_evictions_total");

    // Every churn key is fresh: none of them is limited.
    let t = Instant::now();
    assert_eq!(churn(addr, 100 * max_keys), 0);
    let took = t.elapsed();
    // A fresh connection: the first one may have idled out meanwhile.
    let mut victim = Client::connect(addr);

    let extra = (0..10)
        .filter(|_| victim.roundtrip(&req("victim")).status != 429)
        .count();
    let evicted = prom(&metrics(&gw), "gateway_ratelimit_evictions_total") - before;
    eprintln!(
        "max_keys {max_keys}: {} churn keys in {took:?}; extra admissions of the \
         limited client: {extra}; evictions: {evicted}",
        100 * max_keys
    );
    assert_eq!(extra, 0, "the limited client kept its state");
    // The churn keys evicted each other: all but about one table's worth.
    assert!(
        evicted as usize >= 100 * max_keys - 2 * max_keys,
        "evictions counted: {evicted}"
    );
    gw.shutdown();
}
