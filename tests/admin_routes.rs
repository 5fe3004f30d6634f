//! The control plane of routes and upstreams (issue 12) against a real
//! gateway: `/gateway/routes`, `/gateway/upstreams`, the per-upstream
//! balancer switch and the per-route limiter switch, their 404s, the health
//! report's upstream fields, and the `upstream`/`route` Prometheus labels.
//! The effect of each switch is read from the data port: `x-lb-algorithm`
//! of the responses from each upstream, and which route answers 429.

mod admin_rig;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use admin_rig::{admin_request, eventually};
use api_gateway::{Config, Gateway};
use serde_json::Value;
use support::{names, prom, Response, TestBackend};

const WAIT: Duration = Duration::from_secs(10);

/// Two upstreams (`default`: d1, d2; `users`: u1, u2) and four routes.
/// `users-api` has its own limiter keyed by `X-API-Key`; the others follow
/// the top-level (effectively unlimited) token bucket, keyed by IP.
struct Rig {
    gw: Gateway,
    admin: SocketAddr,
    _backends: Vec<TestBackend>,
}

fn rig() -> Rig {
    let b: Vec<TestBackend> = (0..4).map(|_| TestBackend::start()).collect();
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "workers": 1, "access_log": "off",
            "rate_limit": {{"algorithm": "token-bucket", "capacity": 1000000, "refill_per_sec": 1000000}},
            "load_balancer": "round-robin",
            "backends": [{{"name": "d1", "addr": "{}"}}, {{"name": "d2", "addr": "{}"}}],
            "upstreams": [
              {{"name": "users", "load_balancer": "least-connections",
                "circuit_breaker": {{"failure_threshold": 4, "window_ms": 10000, "open_ms": 15000}},
                "backends": [{{"name": "u1", "addr": "{}", "weight": 2}}, {{"name": "u2", "addr": "{}"}}]}}
            ],
            "routes": [
              {{"name": "users-api", "hosts": ["api.example.test", "*.example.test"],
                "path_prefix": "/api/users", "methods": ["GET", "POST"], "upstream": "users",
                "strip_prefix": true, "add_prefix": "/v2",
                "rate_limit": {{"algorithm": "fixed-window", "limit": 1000, "window_ms": 60000, "key": "header:X-API-Key"}},
                "request_headers": {{"set": {{"X-Route": "users-api"}}, "remove": ["X-Debug"]}},
                "response_headers": {{"set": {{"X-Frame-Options": "DENY"}}}},
                "timeouts": {{"backend_response_ms": 5000}}}},
              {{"name": "orders", "path_prefix": "/api/orders", "upstream": "default"}},
              {{"name": "health", "path": "/health", "methods": ["GET"], "upstream": "default"}},
              {{"name": "site", "path_prefix": "/", "upstream": "default"}}
            ]}}"#,
        b[0].addr, b[1].addr, b[2].addr, b[3].addr
    );
    let cfg = Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let gw = support::start(cfg);
    let admin = gw.admin_addr().expect("admin enabled");
    Rig {
        gw,
        admin,
        _backends: b,
    }
}

impl Rig {
    fn get(&self, path: &str) -> Response {
        admin_request(self.admin, "GET", path, None, "")
    }

    fn post(&self, path: &str, body: &str) -> Response {
        admin_request(self.admin, "POST", path, None, body)
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    /// A data-port request with `Host: host` and extra header lines.
    fn send(&self, host: &str, path: &str, extra: &str) -> Response {
        let raw =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        support::request(self.gw.listen_addr(), raw.as_bytes())
    }

    fn users(&self) -> Response {
        self.send("api.example.test", "/api/users/1", "")
    }

    fn health_route(&self) -> Response {
        self.send("any.test", "/health", "")
    }

    fn orders(&self) -> Response {
        self.send("any.test", "/api/orders/7", "")
    }

    /// Route `name`'s entry of `/gateway/routes`.
    fn route(&self, name: &str) -> Value {
        let all = self.json("/gateway/routes");
        all["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no route {name} in {all}"))
    }

    /// Upstream `name`'s entry of `/gateway/upstreams`.
    fn upstream(&self, name: &str) -> Value {
        let all = self.json("/gateway/upstreams");
        all["upstreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no upstream {name} in {all}"))
    }

    /// Waits until route `name` counted `n` requests (counters are settled
    /// when the exchange ends, which may trail the client's read).
    fn route_settled(&self, name: &str, n: u64) -> Value {
        eventually(WAIT, "route counters", || {
            let r = self.route(name);
            (r["counters"]["requests"] == n).then_some(r)
        })
    }
}

#[test]
fn routes_report_match_policies_limiters_and_live_counters() {
    let rig = rig();
    for _ in 0..3 {
        assert_eq!(rig.users().status, 200);
    }
    let all = rig.json("/gateway/routes");
    assert_eq!(all["routing"], true);
    let listed: Vec<&str> = all["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["users-api", "orders", "health", "site"]);

    let u = rig.route_settled("users-api", 3);
    assert_eq!(u["upstream"], "users");
    assert_eq!(
        names(&u["match"]["hosts"]),
        ["api.example.test", "*.example.test"]
    );
    assert_eq!(u["match"]["path_prefix"], "/api/users");
    assert!(u["match"].get("path").is_none(), "{u}");
    assert_eq!(names(&u["match"]["methods"]), ["GET", "POST"]);
    let p = &u["policies"];
    assert_eq!(p["strip_prefix"], true);
    assert_eq!(p["add_prefix"], "/v2");
    assert_eq!(p["rateLimiter"]["algorithm"], "fixed-window");
    assert_eq!(p["rateLimiter"]["limit"], 1000);
    assert_eq!(p["rateLimiter"]["key"], "header:X-API-Key");
    assert_eq!(p["rateLimiter"]["inherited"], false);
    assert_eq!(p["request_headers"]["set"]["X-Route"], "users-api", "{p}");
    assert_eq!(p["request_headers"]["remove"].as_array().unwrap().len(), 1);
    assert_eq!(p["response_headers"]["set"]["X-Frame-Options"], "DENY");
    assert_eq!(p["timeouts"]["backend_response_ms"], 5000);
    assert!(p["timeouts"]["connect_ms"].is_u64(), "effective value");
    assert_eq!(names(&p["timeouts"]["overridden"]), ["backend_response_ms"]);
    let c = &u["counters"];
    assert_eq!(c["2xx"], 3);
    for k in ["1xx", "3xx", "4xx", "429", "5xx"] {
        assert_eq!(c[k], 0, "{k}: {c}");
    }
    for q in ["p50", "p99"] {
        assert!(c["latency_ms"][q].is_u64(), "{q}: {c}");
    }

    let h = rig.route("health");
    assert_eq!(h["match"]["path"], "/health");
    assert!(h["match"].get("path_prefix").is_none(), "{h}");
    assert_eq!(h["match"]["hosts"], serde_json::json!([]), "any host");
    assert_eq!(h["upstream"], "default");
    assert_eq!(h["policies"]["strip_prefix"], false);
    assert_eq!(h["policies"]["rateLimiter"]["algorithm"], "token-bucket");
    assert_eq!(h["policies"]["rateLimiter"]["key"], "ip");
    assert_eq!(h["policies"]["rateLimiter"]["inherited"], true);
    assert_eq!(h["counters"]["requests"], 0);
    assert!(h["counters"]["latency_ms"]["p50"].is_null(), "no samples");

    // A metrics reset zeroes the route counters too.
    assert_eq!(rig.post("/gateway/metrics/reset", "").status, 200);
    assert_eq!(rig.route("users-api")["counters"]["requests"], 0);
}

#[test]
fn upstreams_report_balancers_breakers_and_backends() {
    let rig = rig();
    let all = rig.json("/gateway/upstreams");
    let listed: Vec<&str> = all["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["default", "users"], "default first");
    let d = rig.upstream("default");
    assert_eq!(d["loadBalancer"]["algorithm"], "round-robin");
    assert_eq!(names(&d["routes"]), ["orders", "health", "site"]);
    let u = rig.upstream("users");
    assert_eq!(u["loadBalancer"]["algorithm"], "least-connections");
    assert_eq!(u["circuitBreaker"]["failure_threshold"], 4);
    assert_eq!(u["panic"], false);
    assert_eq!(u["openCircuits"], 0);
    assert!(u["maxOpenCircuits"].is_u64());
    assert_eq!(names(&u["routes"]), ["users-api"]);
    let backends = u["backends"].as_array().unwrap();
    let got: Vec<(&str, u64)> = backends
        .iter()
        .map(|b| (b["name"].as_str().unwrap(), b["weight"].as_u64().unwrap()))
        .collect();
    assert_eq!(got, [("u1", 2), ("u2", 1)]);
    // The same per-backend object as /gateway/health.
    let health = rig.json("/gateway/health");
    let in_health = health["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "u1")
        .cloned()
        .expect("u1 in health");
    let mut keys: Vec<&String> = backends[0].as_object().unwrap().keys().collect();
    let mut health_keys: Vec<&String> = in_health.as_object().unwrap().keys().collect();
    keys.sort();
    health_keys.sort();
    assert_eq!(keys, health_keys);
    assert_eq!(backends[0]["upstream"], "users");
    assert_eq!(backends[0]["circuitState"], "CLOSED");
}

#[test]
fn health_keeps_the_seed_fields_and_names_every_upstream() {
    let rig = rig();
    let h = rig.json("/gateway/health");
    // The seed's fields describe `default` and the top-level limiter.
    assert_eq!(h["loadBalancer"]["algorithm"], "round-robin");
    assert_eq!(h["rateLimiter"]["algorithm"], "token-bucket");
    assert_eq!(h["upstream"]["panic"], false);
    assert!(h["upstream"]["maxOpenCircuits"].is_u64());
    let backends: Vec<(String, String)> = h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["upstream"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("d1", "default"),
        ("d2", "default"),
        ("u1", "users"),
        ("u2", "users"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(backends, want);
    let ups = h["upstreams"].as_array().unwrap();
    assert_eq!(ups[1]["name"], "users");
    assert_eq!(ups[1]["loadBalancer"]["algorithm"], "least-connections");
    assert_eq!(names(&ups[1]["backends"]), ["u1", "u2"]);
    assert_eq!(
        names(&h["routes"]),
        ["users-api", "orders", "health", "site"]
    );

    // Backend names are unique across upstreams: the seed's toggle and
    // reset reach a backend of `users` too.
    let r = rig.post("/gateway/backend/u2/toggle", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["upstream"], "users");
    assert_eq!(r.json()["up"], false);
    for _ in 0..4 {
        assert_eq!(rig.users().header("x-backend"), Some("u1"), "u2 is down");
    }
    let r = rig.post("/gateway/circuit/u2/reset", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["circuitState"], "CLOSED");
    assert_eq!(rig.post("/gateway/backend/nope/toggle", "").status, 404);
}

#[test]
fn unknown_upstreams_and_routes_are_404_json_and_bad_params_400() {
    let rig = rig();
    let r = rig.post("/gateway/upstreams/nope/load-balancer/ip-hash", "");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let r = rig.post("/gateway/routes/nope/rate-limiter/fixed-window", "");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    // With routes configured, `default` names an upstream, not a route.
    assert_eq!(
        rig.post("/gateway/routes/default/rate-limiter/fixed-window", "")
            .status,
        404
    );
    // Algorithm and parameters are checked as on the seed's endpoints.
    let r = rig.post("/gateway/upstreams/users/load-balancer/nope", "");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("round-robin"));
    let r = rig.post(
        "/gateway/routes/orders/rate-limiter/token-bucket",
        r#"{"capacity": "lots", "refill_per_sec": 1}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().starts_with("capacity"));
    let r = rig.get("/gateway/upstreams/users/load-balancer/ip-hash");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    // Nothing changed.
    assert_eq!(
        rig.upstream("users")["loadBalancer"]["algorithm"],
        "least-connections"
    );
    assert_eq!(
        rig.route("orders")["policies"]["rateLimiter"]["inherited"],
        true
    );
}

#[test]
fn upstream_balancer_switch_applies_to_that_upstream_only() {
    let rig = rig();
    let lb = |r: &Response| r.header("x-lb-algorithm").unwrap_or("-").to_string();
    assert_eq!(lb(&rig.users()), "least-connections");
    assert_eq!(lb(&rig.health_route()), "round-robin");

    let r = rig.post(
        "/gateway/upstreams/users/load-balancer/consistent-hash",
        r#"{"virtual_nodes": 40}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["upstream"], "users");
    assert_eq!(body["loadBalancer"]["algorithm"], "consistent-hash");
    assert_eq!(body["loadBalancer"]["virtual_nodes"], 40);
    for _ in 0..3 {
        assert_eq!(lb(&rig.users()), "consistent-hash");
        assert_eq!(lb(&rig.health_route()), "round-robin");
        assert_eq!(lb(&rig.orders()), "round-robin");
    }
    assert_eq!(rig.upstream("users")["loadBalancer"]["virtual_nodes"], 40);
    let h = rig.json("/gateway/health");
    assert_eq!(
        h["loadBalancer"]["algorithm"], "round-robin",
        "default kept"
    );
    assert_eq!(
        h["upstreams"][1]["loadBalancer"]["algorithm"],
        "consistent-hash"
    );
    assert!(
        h["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "load-balancer" && e["upstream"] == "users"),
        "typed event names the upstream: {}",
        h["events"]
    );

    // The seed's endpoint acts on `default` only.
    assert_eq!(rig.post("/gateway/load-balancer/ip-hash", "").status, 200);
    assert_eq!(lb(&rig.health_route()), "ip-hash");
    assert_eq!(lb(&rig.users()), "consistent-hash");
    // And the new endpoint reaches `default` by name.
    let r = rig.post("/gateway/upstreams/default/load-balancer/round-robin", "");
    assert_eq!(r.status, 200);
    assert_eq!(lb(&rig.health_route()), "round-robin");
    assert_eq!(
        rig.json("/gateway/health")["loadBalancer"]["algorithm"],
        "round-robin"
    );
}

#[test]
fn route_limiter_switch_changes_429s_of_that_route_only() {
    let rig = rig();
    let r = rig.post(
        "/gateway/routes/orders/rate-limiter/fixed-window",
        r#"{"limit": 2, "window_ms": 60000}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["route"], "orders");
    assert_eq!(body["rateLimiter"]["algorithm"], "fixed-window");
    assert_eq!(body["rateLimiter"]["inherited"], false);
    // No key of its own: the top-level key, as the data path uses.
    assert_eq!(body["rateLimiter"]["key"], "ip");

    let statuses: Vec<u16> = (0..4).map(|_| rig.orders().status).collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    // Same client, other routes: untouched (still the top-level bucket).
    for _ in 0..6 {
        assert_eq!(rig.health_route().status, 200);
        assert_eq!(rig.send("any.test", "/page", "").status, 200);
    }
    let o = rig.route_settled("orders", 4);
    assert_eq!(o["counters"]["2xx"], 2);
    assert_eq!(o["counters"]["4xx"], 2);
    assert_eq!(o["counters"]["429"], 2);
    let h = rig.route_settled("health", 6);
    assert_eq!(h["counters"]["429"], 0);
    assert_eq!(
        rig.json("/gateway/health")["rateLimiter"]["algorithm"],
        "token-bucket"
    );

    // A top-level switch now reaches the routes that follow it, not `orders`.
    let r = rig.post(
        "/gateway/rate-limiter/fixed-window",
        r#"{"limit": 1, "window_ms": 60000}"#,
    );
    assert_eq!(r.status, 200);
    let statuses: Vec<u16> = (0..3).map(|_| rig.health_route().status).collect();
    assert_eq!(statuses, [200, 429, 429]);
    let o = rig.route("orders");
    assert_eq!(o["policies"]["rateLimiter"]["limit"], 2, "own limiter kept");
    assert_eq!(rig.route("site")["policies"]["rateLimiter"]["limit"], 1);
    assert_eq!(
        rig.route("site")["policies"]["rateLimiter"]["inherited"],
        true
    );

    // A route with its own key keeps it: per-API-key budgets.
    let r = rig.post(
        "/gateway/routes/users-api/rate-limiter/fixed-window",
        r#"{"limit": 1, "window_ms": 60000}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["rateLimiter"]["key"], "header:X-API-Key");
    let with_key = |k: &str| {
        rig.send(
            "api.example.test",
            "/api/users/1",
            &format!("X-API-Key: {k}\r\n"),
        )
        .status
    };
    assert_eq!(with_key("a"), 200);
    assert_eq!(with_key("a"), 429);
    assert_eq!(with_key("b"), 200);
    assert!(
        rig.json("/gateway/health")["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "rate-limiter" && e["route"] == "users-api"),
        "typed event names the route"
    );
}

#[test]
fn prometheus_labels_backends_with_their_upstream_and_has_route_series() {
    let rig = rig();
    for _ in 0..2 {
        assert_eq!(rig.users().status, 200);
    }
    assert_eq!(rig.health_route().status, 200);
    rig.route_settled("health", 1);
    rig.route_settled("users-api", 2);
    let text = rig.get("/metrics").text();
    let up_u = |b: &str| format!("backend=\"{b}\",upstream=\"users\"");
    let u_requests: f64 = ["u1", "u2"]
        .iter()
        .map(|b| {
            prom(
                &text,
                &format!("gateway_backend_requests_total{{{}}}", up_u(b)),
            )
        })
        .sum();
    assert_eq!(u_requests, 2.0);
    for b in ["d1", "d2"] {
        let l = format!("backend=\"{b}\",upstream=\"default\"");
        prom(&text, &format!("gateway_backend_requests_total{{{l}}}"));
        assert_eq!(
            prom(
                &text,
                &format!("gateway_circuit_state{{{l},state=\"CLOSED\"}}")
            ),
            1.0
        );
        assert_eq!(prom(&text, &format!("gateway_backend_up{{{l}}}")), 1.0);
    }
    assert_eq!(
        prom(&text, "gateway_upstream_panic{upstream=\"users\"}"),
        0.0
    );
    let ua = "route=\"users-api\",upstream=\"users\"";
    assert_eq!(
        prom(&text, &format!("gateway_route_requests_total{{{ua}}}")),
        2.0
    );
    assert_eq!(
        prom(
            &text,
            &format!("gateway_route_responses_total{{{ua},class=\"2xx\"}}")
        ),
        2.0
    );
    assert_eq!(
        prom(&text, &format!("gateway_route_rate_limited_total{{{ua}}}")),
        0.0
    );
    assert_eq!(
        prom(
            &text,
            &format!("gateway_route_duration_seconds_count{{{ua}}}")
        ),
        2.0
    );
    assert_eq!(
        prom(
            &text,
            &format!("gateway_route_duration_seconds_bucket{{{ua},le=\"+Inf\"}}")
        ),
        2.0
    );
    let hl = "route=\"health\",upstream=\"default\"";
    assert_eq!(
        prom(&text, &format!("gateway_route_requests_total{{{hl}}}")),
        1.0
    );
    for family in [
        "gateway_route_requests_total",
        "gateway_route_responses_total",
        "gateway_route_rate_limited_total",
        "gateway_route_duration_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
    }
    // Bounded cardinality: route labels are the four config names, and no
    // request path or host ever becomes a label value.
    let mut routes: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split("route=\"").nth(1)?.split('"').next())
        .collect();
    routes.sort();
    routes.dedup();
    assert_eq!(routes, ["health", "orders", "site", "users-api"]);
    assert!(!text.contains("/api/users"), "no raw path in the metrics");
    assert!(!text.contains("example.test"), "no raw host in the metrics");
}

#[test]
fn without_routes_the_catch_all_is_reported_as_one_route() {
    let backend = TestBackend::start();
    let mut c = support::config(&[backend.addr]);
    c.admin = Some("127.0.0.1:0".parse().unwrap());
    let gw = support::start(c);
    let admin = gw.admin_addr().unwrap();
    assert_eq!(support::get(gw.listen_addr(), "/anything").status, 200);
    let routes = eventually(WAIT, "catch-all counted", || {
        let v = admin_request(admin, "GET", "/gateway/routes", None, "").json();
        (v["routes"][0]["counters"]["requests"] == 1).then_some(v)
    });
    assert_eq!(routes["routing"], false);
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    let r = &list[0];
    assert_eq!(r["name"], "default");
    assert_eq!(r["upstream"], "default");
    assert_eq!(r["match"]["path_prefix"], "/");
    assert_eq!(r["policies"]["rateLimiter"]["inherited"], true);
    let ups = admin_request(admin, "GET", "/gateway/upstreams", None, "").json();
    assert_eq!(ups["upstreams"].as_array().unwrap().len(), 1);
    assert_eq!(names(&ups["upstreams"][0]["routes"]), ["default"]);
    let text = admin_request(admin, "GET", "/metrics", None, "").text();
    assert_eq!(
        prom(
            &text,
            "gateway_route_requests_total{route=\"default\",upstream=\"default\"}"
        ),
        1.0
    );
}
