//! Route matching with 1,000 routes (issue 12 target: median < 200 ns per
//! match).
//!
//! The table mixes the three host tiers and every path shape:
//! - 100 exact hosts (`api{h}.corp.test`) × 3 routes: prefixes of depth 1 and
//!   3, an exact `/health` (GET only);
//! - 50 wildcard hosts (`*.t{w}.example.test`) × 4 routes: a `/` catch-all,
//!   prefixes of depth 2 and 4, an exact path (POST only);
//! - 125 services without hosts × 4 routes: prefixes of depth 1, 3 and 4
//!   (the deepest POST only), an exact path of depth 4 (GET only).
//!
//! Each lookup below is benched alone (`route_match/<case>`), and `mix` runs
//! them all per iteration (its time / 12 is the mean per match): hits at each
//! tier, a method the most specific route refuses, 404s and 405s with their `Allow`.

use std::hint::black_box;

use api_gateway::route::{PathRule, RouteDef, RouteMatch, RouteTable};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn def(name: String, hosts: &[String], path: PathRule, methods: &[&str]) -> RouteDef {
    RouteDef {
        name,
        hosts: hosts.to_vec(),
        path,
        methods: methods.iter().map(|m| m.to_string()).collect(),
    }
}

fn routes() -> Vec<RouteDef> {
    use PathRule::{Exact, Prefix};
    let mut defs = Vec::new();
    for h in 0..100 {
        let host = [format!("api{h}.corp.test")];
        defs.push(def(format!("h{h}-v1"), &host, Prefix("/v1".into()), &[]));
        defs.push(def(
            format!("h{h}-users"),
            &host,
            Prefix(format!("/v1/users/{h}")),
            &["GET", "PUT"],
        ));
        defs.push(def(
            format!("h{h}-health"),
            &host,
            Exact("/health".into()),
            &["GET"],
        ));
    }
    for w in 0..50 {
        let host = [format!("*.t{w}.example.test")];
        defs.push(def(
            format!("w{w}-all"),
            &host,
            Prefix("/".into()),
            &["GET"],
        ));
        defs.push(def(
            format!("w{w}-api"),
            &host,
            Prefix("/api/v2".into()),
            &[],
        ));
        defs.push(def(
            format!("w{w}-icons"),
            &host,
            Prefix(format!("/static/img/icons/{w}")),
            &["GET"],
        ));
        defs.push(def(
            format!("w{w}-login"),
            &host,
            Exact("/api/v2/login".into()),
            &["POST"],
        ));
    }
    for s in 0..125 {
        defs.push(def(
            format!("s{s}"),
            &[],
            Prefix(format!("/s{s}")),
            &["GET", "POST"],
        ));
        defs.push(def(
            format!("s{s}-items"),
            &[],
            Prefix(format!("/s{s}/v1/items")),
            &[],
        ));
        defs.push(def(
            format!("s{s}-count"),
            &[],
            Exact(format!("/s{s}/v1/items/count")),
            &["GET"],
        ));
        defs.push(def(
            format!("s{s}-ops"),
            &[],
            Prefix(format!("/s{s}/admin/ops/x")),
            &["POST"],
        ));
    }
    assert_eq!(defs.len(), 1000);
    defs
}

/// (case, host, path, method, expected: route name, "404" or "405 <Allow>").
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "exact_host_prefix_d3",
        "api42.corp.test",
        "/v1/users/42/profile",
        "GET",
        "h42-users",
    ),
    (
        "exact_host_exact_path",
        "api7.corp.test",
        "/health",
        "GET",
        "h7-health",
    ),
    (
        "exact_host_prefix_d1",
        "api99.corp.test",
        "/v1/orders/1",
        "DELETE",
        "h99-v1",
    ),
    (
        "wildcard_prefix_d2",
        "a.b.t13.example.test",
        "/api/v2/orders/5",
        "GET",
        "w13-api",
    ),
    (
        "wildcard_prefix_d4",
        "cdn.t7.example.test",
        "/static/img/icons/7/a.png",
        "GET",
        "w7-icons",
    ),
    (
        "wildcard_catch_all",
        "x.t3.example.test",
        "/s17/v1/items/count",
        "GET",
        "w3-all",
    ),
    (
        "any_host_prefix_d3",
        "unknown.test",
        "/s99/v1/items/123/details",
        "GET",
        "s99-items",
    ),
    (
        "any_host_exact_path",
        "",
        "/s12/v1/items/count",
        "GET",
        "s12-count",
    ),
    (
        "refused_method",
        "api5.corp.test",
        "/s9/v1/items/count",
        "DELETE",
        "405 GET",
    ),
    (
        "no_route",
        "unknown.test",
        "/nothing/here/at/all",
        "GET",
        "404",
    ),
    (
        "not_allowed",
        "",
        "/s5/admin/ops/x/run",
        "DELETE",
        "405 POST",
    ),
    (
        "not_allowed_exact_host",
        "api1.corp.test",
        "/health",
        "POST",
        "405 GET",
    ),
];

fn outcome(t: &RouteTable, host: &str, path: &str, method: &str, allow: &mut Vec<u8>) -> String {
    match t.find(host.as_bytes(), path.as_bytes(), method.as_bytes(), allow) {
        RouteMatch::Found { id, .. } => t.name(id).to_string(),
        RouteMatch::NoRoute => "404".into(),
        RouteMatch::MethodNotAllowed => format!("405 {}", String::from_utf8_lossy(allow)),
    }
}

fn route_match(c: &mut Criterion) {
    let table = RouteTable::new(&routes()).unwrap();
    let mut allow = Vec::with_capacity(256);
    for &(case, host, path, method, want) in CASES {
        assert_eq!(
            outcome(&table, host, path, method, &mut allow),
            want,
            "{case}"
        );
    }

    let mut g = c.benchmark_group("route_match");
    g.throughput(Throughput::Elements(1));
    for &(case, host, path, method, _) in CASES {
        g.bench_function(case, |b| {
            b.iter(|| {
                black_box(table.find(
                    black_box(host.as_bytes()),
                    black_box(path.as_bytes()),
                    black_box(method.as_bytes()),
                    &mut allow,
                ))
            })
        });
    }
    g.throughput(Throughput::Elements(CASES.len() as u64));
    g.bench_function("mix", |b| {
        b.iter(|| {
            for &(_, host, path, method, _) in CASES {
                black_box(table.find(
                    black_box(host.as_bytes()),
                    black_box(path.as_bytes()),
                    black_box(method.as_bytes()),
                    &mut allow,
                ));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, route_match);
criterion_main!(benches);
