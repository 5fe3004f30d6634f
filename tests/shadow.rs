//! Shadow limiters on a real gateway (issue 18): `rate_limit.shadow` at the
//! top level and per route, what `GET /gateway/rate-limiter/shadow` and
//! `/metrics` report, that shadows never change a response, and "promote"
//! (the live switch with a shadow's spec).
//!
//! The limits are per hour, so the few seconds a test takes cannot refill a
//! bucket or cross a window: every algorithm's counts are those of its
//! algorithm run alone on the same requests at one instant, which the test
//! computes with the gateway's own limiter code.

mod admin_rig;
mod support;

use std::net::SocketAddr;

use admin_rig::admin_request;
use api_gateway::algo::cells::Evictions;
use api_gateway::algo::limit;
use api_gateway::algo::Nanos;
use api_gateway::{Config, Gateway};
use api_gateway_admin::LimitSpec;
use serde_json::Value;
use support::{prom, Response, TestBackend};

const HOUR_MS: u64 = 3_600_000;

/// A gateway with admin in front of `backend`; `rate_limit` and `routes`
/// are JSON text spliced into the config (`routes`: empty, or
/// `, "routes": [...]`).
fn gateway(backend: SocketAddr, rate_limit: &str, routes: &str) -> (Gateway, SocketAddr) {
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "workers": 1, "access_log": "off",
            "rate_limit": {rate_limit},
            "backends": [{{"name": "b", "addr": "{backend}"}}]{routes}}}"#
    );
    let cfg = Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let gw = support::start(cfg);
    let admin = gw.admin_addr().expect("admin enabled");
    (gw, admin)
}

fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    admin_request(addr, method, path, None, body)
}

fn report(addr: SocketAddr) -> Value {
    let r = admin(addr, "GET", "/gateway/rate-limiter/shadow", "");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The scope of `report` for `route` (`None`: the top level).
fn scope<'a>(report: &'a Value, route: Option<&str>) -> &'a Value {
    report["limiters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["route"].as_str() == route)
        .unwrap_or_else(|| panic!("no scope {route:?} in {report:#}"))
}

/// `(would_allow, would_reject)` of `spec` run alone on `n` requests of
/// one key at one instant.
fn alone(spec: &LimitSpec, n: usize) -> (u64, u64) {
    let l = limit::build(spec, 1_024, &Evictions::default());
    let allowed = (0..n)
        .filter(|_| l.check(7, Nanos::from_millis(1_000)).is_admitted())
        .count() as u64;
    (allowed, n as u64 - allowed)
}

/// Statuses and rate-limit headers of `n` requests to `path`.
fn run(gw: &Gateway, path: &str, n: usize) -> Vec<(u16, Option<String>, Option<String>)> {
    (0..n)
        .map(|_| {
            let r = support::get(gw.listen_addr(), path);
            let h = |name: &str| r.header(name).map(str::to_string);
            (r.status, h("ratelimit-remaining"), h("retry-after"))
        })
        .collect()
}

#[test]
fn shadows_count_what_each_algorithm_alone_would_and_never_change_a_response() {
    let backend = TestBackend::start();
    let live = format!(r#"{{"algorithm": "fixed-window", "limit": 5, "window_ms": {HOUR_MS}"#);
    let (plain, plain_admin) = gateway(backend.addr, &format!("{live}}}"), "");
    let (shadowed, shadow_admin) =
        gateway(backend.addr, &format!(r#"{live}, "shadow": "all"}}"#), "");

    // The same 12 requests answer the same with and without shadows.
    let without = run(&plain, "/x", 12);
    let with = run(&shadowed, "/x", 12);
    assert_eq!(with, without);
    assert_eq!(with.iter().filter(|r| r.0 == 429).count(), 7);

    // Off: nothing to report, no metric families.
    let off = report(plain_admin);
    assert_eq!(off["enabled"], false);
    assert_eq!(off["limiters"].as_array().unwrap().len(), 0);
    let metrics = admin(plain_admin, "GET", "/metrics", "").text();
    assert!(!metrics.contains("gateway_shadow_"), "{metrics}");

    let rep = report(shadow_admin);
    assert_eq!(rep["enabled"], true);
    let top = scope(&rep, None);
    assert_eq!(top["scope"], "top-level");
    assert_eq!(top["live"], "fixed-window");
    assert_eq!(top["limit"], 5);
    assert_eq!(top["window_ms"], HOUR_MS);
    let rows = top["algorithms"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["algorithm"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "fixed-window");
    assert_eq!(rows[0]["live"], true);
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "fixed-window",
            "leaky-bucket",
            "sliding-counter",
            "sliding-log",
            "token-bucket"
        ]
    );
    let metrics = admin(shadow_admin, "GET", "/metrics", "").text();
    for row in rows {
        let name = row["algorithm"].as_str().unwrap();
        let spec: LimitSpec = serde_json::from_value(row["spec"].clone()).unwrap();
        let (allow, reject) = alone(&spec, 12);
        assert_eq!(
            (row["would_allow"].as_u64(), row["would_reject"].as_u64()),
            (Some(allow), Some(reject)),
            "{name}: {row:#}"
        );
        assert_eq!(row["requests"], 12);
        let a = &row["agreement"];
        let cells: u64 = [
            "both_allow",
            "both_reject",
            "live_only_reject",
            "shadow_only_reject",
        ]
        .iter()
        .map(|c| a[c].as_u64().unwrap())
        .sum();
        assert_eq!(cells, 12, "{name}");
        // The live limiter admitted the first 5: a shadow that admits
        // `allow` of the same burst agrees on min(5, allow) admissions.
        assert_eq!(a["both_allow"].as_u64(), Some(allow.min(5)), "{name}");
        let live = if row["live"] == true { "true" } else { "false" };
        let series = format!(
            "gateway_shadow_decisions_total{{limiter=\"top-level\",algorithm=\"{name}\",live=\"{live}\",decision=\"reject\"}}"
        );
        assert_eq!(prom(&metrics, &series), reject as f64, "{series}");
    }
    // The sliding log is the reference: never beyond the limit, never short.
    let log = rows
        .iter()
        .find(|r| r["algorithm"] == "sliding-log")
        .unwrap();
    assert_eq!(log["accuracy"]["overshoot"], 0);
    assert_eq!(log["accuracy"]["undershoot"], 0);
    assert_eq!(log["accuracy"]["overshoot_ratio"], 1.0);
}

#[test]
fn routes_have_their_own_shadows_or_follow_the_top_level_list() {
    let backend = TestBackend::start();
    let own = |extra: &str| {
        format!(r#"{{"algorithm": "sliding-log", "limit": 3, "window_ms": {HOUR_MS}{extra}}}"#)
    };
    let routes = format!(
        r#", "routes": [{{"name": "listed", "path_prefix": "/listed", "upstream": "default", "rate_limit": {}}},
            {{"name": "inherits", "path_prefix": "/inherits", "upstream": "default", "rate_limit": {}}},
            {{"name": "off", "path_prefix": "/off", "upstream": "default", "rate_limit": {}}},
            {{"name": "follows", "path_prefix": "/", "upstream": "default"}}]"#,
        own(r#", "shadow": ["token-bucket"]"#),
        own(""),
        own(r#", "shadow": []"#),
    );
    let top =
        r#"{"algorithm": "token-bucket", "capacity": 4, "refill_per_sec": 0.001, "shadow": "all"}"#;
    let (gw, admin_addr) = gateway(backend.addr, top, &routes);
    for path in ["/listed", "/inherits", "/off", "/follows"] {
        let statuses: Vec<u16> = run(&gw, path, 6).iter().map(|r| r.0).collect();
        assert!(statuses.contains(&200), "{path}: {statuses:?}");
    }
    let rep = report(admin_addr);
    let scopes = rep["limiters"].as_array().unwrap();
    // `off` has none; `follows` is counted by the top-level limiter.
    assert_eq!(scopes.len(), 3, "{rep:#}");
    let top = scope(&rep, None);
    assert_eq!(top["routes"], serde_json::json!(["follows"]));
    assert_eq!(top["live"], "token-bucket");
    assert_eq!(top["algorithms"].as_array().unwrap().len(), 5);
    assert_eq!(top["algorithms"][0]["requests"], 6);

    let listed = scope(&rep, Some("listed"));
    let rows = listed["algorithms"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["algorithm"], "sliding-log");
    assert_eq!(rows[1]["algorithm"], "token-bucket");
    // 3 per hour as a bucket: capacity 3.
    assert_eq!(rows[1]["spec"]["capacity"], 3);
    assert_eq!(
        (
            rows[0]["would_allow"].as_u64(),
            rows[0]["would_reject"].as_u64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(rows[1]["would_allow"], 3);

    let inherits = scope(&rep, Some("inherits"));
    assert_eq!(inherits["algorithms"].as_array().unwrap().len(), 5);
    assert_eq!(inherits["algorithms"][0]["requests"], 6);
}

#[test]
fn promoting_a_shadow_makes_it_the_live_limiter_and_the_old_one_a_shadow() {
    let backend = TestBackend::start();
    let (gw, admin_addr) = gateway(
        backend.addr,
        &format!(
            r#"{{"algorithm": "fixed-window", "limit": 4, "window_ms": {HOUR_MS}, "shadow": "all"}}"#
        ),
        "",
    );
    run(&gw, "/", 6);
    let before = report(admin_addr);
    let top = scope(&before, None);
    let bucket = top["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["algorithm"] == "token-bucket")
        .unwrap();
    assert_eq!(bucket["would_allow"], 4);
    // Promote: the dashboard's button is the live switch, with the shadow's
    // translated parameters as its body.
    let mut spec = bucket["spec"].clone();
    spec.as_object_mut().unwrap().remove("algorithm");
    let r = admin(
        admin_addr,
        "POST",
        "/gateway/rate-limiter/token-bucket",
        &spec.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let after = report(admin_addr);
    let top = scope(&after, None);
    assert_eq!(top["live"], "token-bucket");
    let rows = top["algorithms"].as_array().unwrap();
    assert_eq!(rows[0]["spec"], bucket["spec"]);
    assert!(rows
        .iter()
        .any(|r| r["algorithm"] == "fixed-window" && r["live"] == false));
    // The shadows start afresh beside the new live algorithm.
    assert!(rows.iter().all(|r| r["requests"] == 0), "{after:#}");
    // And it is live: a fresh bucket of 4 admits 4 of the next 6.
    let statuses: Vec<u16> = run(&gw, "/", 6).iter().map(|r| r.0).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        scope(&report(admin_addr), None)["algorithms"][0]["would_allow"],
        4
    );
}

#[test]
fn a_reload_that_keeps_the_limiter_keeps_its_shadow_counts() {
    let backend = TestBackend::start();
    let cfg = |level: u64, shadow: &str| {
        format!(
            r#"{{"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "workers": 1, "access_log": "off", "timeouts": {{"idle_ms": {level}}},
                "rate_limit": {{"algorithm": "fixed-window", "limit": 4, "window_ms": {HOUR_MS}, "shadow": {shadow}}},
                "backends": [{{"name": "b", "addr": "{}"}}]}}"#,
            backend.addr
        )
    };
    let text = cfg(60000, r#""all""#);
    let gw = support::start(Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}")));
    let admin_addr = gw.admin_addr().unwrap();
    run(&gw, "/", 5);
    let apply = |text: String| {
        let r = admin(admin_addr, "POST", "/gateway/config", &text);
        assert_eq!(r.status, 200, "{}", r.text());
    };
    apply(cfg(30000, r#""all""#));
    assert_eq!(
        scope(&report(admin_addr), None)["algorithms"][0]["requests"],
        5
    );
    // A different list is a different set: it starts afresh.
    apply(cfg(30000, r#"["sliding-log"]"#));
    let rows = scope(&report(admin_addr), None)["algorithms"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["requests"], 0);
}
