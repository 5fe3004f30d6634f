//! Routing several services (issue 12), over real sockets: the config is
//! JSON, as a user writes it, and every rule of the contract has a test —
//! precedence, segment boundaries, wildcards, host case and port,
//! absolute-form, 404 and 405 + Allow, prefix rewriting, header rules both
//! ways, per-route timeouts and limits, the old string form, and the
//! normalization table (what the client sent, what the backend received).

mod support;

use std::net::SocketAddr;

use api_gateway::Config;
use support::*;

/// Three upstreams (`default`, `users`, `orders`), one test backend each,
/// named after the upstream's letter (`d`, `u`, `o`), plus `routes`.
struct Rig {
    gw: api_gateway::Gateway,
    d: TestBackend,
    u: TestBackend,
    o: TestBackend,
}

fn rig(routes: &str) -> Rig {
    rig_with(routes, "")
}

fn rig_with(routes: &str, extra: &str) -> Rig {
    let (d, u, o) = (
        TestBackend::start(),
        TestBackend::start(),
        TestBackend::start(),
    );
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
            "rate_limit": {{"algorithm": "token-bucket", "capacity": 1000000, "refill_per_sec": 1000000}},
            "backends": [{{"name": "d", "addr": "{}"}}],
            "upstreams": [
              {{"name": "users", "backends": [{{"name": "u", "addr": "{}"}}]}},
              {{"name": "orders", "backends": [{{"name": "o", "addr": "{}"}}]}}
            ],
            "routes": {routes}{extra}}}"#,
        d.addr, u.addr, o.addr
    );
    let cfg = Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    Rig {
        gw: start(cfg),
        d,
        u,
        o,
    }
}

impl Rig {
    fn addr(&self) -> SocketAddr {
        self.gw.listen_addr()
    }

    /// Sends `GET path` with `Host: host`; returns the response.
    fn get(&self, host: &str, path: &str) -> Response {
        self.send("GET", host, path)
    }

    fn send(&self, method: &str, host: &str, path: &str) -> Response {
        let raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        request(self.addr(), raw.as_bytes())
    }

    /// Which backend answered (`x-backend`), or the status when the gateway did.
    fn who(&self, host: &str, path: &str) -> String {
        let r = self.get(host, path);
        match r.header("x-backend") {
            Some(b) => b.to_string(),
            None => r.status.to_string(),
        }
    }
}

#[test]
fn precedence_exact_host_then_wildcard_then_any_host_then_path_rules() {
    let r = rig(r#"[
          {"name": "any", "path_prefix": "/", "upstream": "default"},
          {"name": "wild-short", "hosts": ["*.test"], "path_prefix": "/", "upstream": "orders"},
          {"name": "wild-long", "hosts": ["*.example.test"], "path_prefix": "/", "upstream": "users"},
          {"name": "exact-host", "hosts": ["api.example.test"], "path_prefix": "/", "upstream": "default"},
          {"name": "p-short", "hosts": ["paths.test"], "path_prefix": "/api", "upstream": "users"},
          {"name": "p-long", "hosts": ["paths.test"], "path_prefix": "/api/v1", "upstream": "orders"},
          {"name": "p-exact", "hosts": ["paths.test"], "path": "/api/v1/exact", "upstream": "default"},
          {"name": "p-first", "hosts": ["order.test"], "path_prefix": "/x", "upstream": "users"},
          {"name": "p-second", "hosts": ["order.test"], "path_prefix": "/x", "upstream": "orders"}
        ]"#);
    // 1. exact host > wildcard (longer suffix first) > no hosts.
    assert_eq!(r.who("api.example.test", "/"), "d");
    assert_eq!(r.who("www.example.test", "/"), "u");
    assert_eq!(r.who("www.other.test", "/"), "o");
    assert_eq!(r.who("elsewhere.org", "/"), "d");
    // 2. exact path > prefix; 3. longest prefix.
    assert_eq!(r.who("paths.test", "/api/v1/exact"), "d");
    assert_eq!(r.who("paths.test", "/api/v1/exact/more"), "o");
    assert_eq!(r.who("paths.test", "/api/v1/x"), "o");
    assert_eq!(r.who("paths.test", "/api/v2"), "u");
    // 4. config order.
    assert_eq!(r.who("order.test", "/x/1"), "u");
    // A host whose routes do not match the path falls to less specific routes.
    assert_eq!(r.who("paths.test", "/other"), "o", "wildcard *.test");
    let _ = (&r.d, &r.u, &r.o);
}

#[test]
fn prefixes_match_on_segment_boundaries() {
    let r = rig(r#"[{"path_prefix": "/api", "upstream": "users"}]"#);
    for ok in ["/api", "/api/", "/api/x", "/api?q=1"] {
        assert_eq!(r.who("h", ok), "u", "{ok}");
    }
    for no in ["/apiary", "/ap", "/", "/xapi"] {
        assert_eq!(r.who("h", no), "404", "{no}");
    }
}

#[test]
fn wildcard_hosts_need_at_least_one_label() {
    let r = rig(r#"[{"hosts": ["*.example.test"], "path_prefix": "/", "upstream": "users"}]"#);
    assert_eq!(r.who("a.example.test", "/"), "u");
    assert_eq!(r.who("a.b.example.test", "/"), "u");
    assert_eq!(r.who("example.test", "/"), "404");
    assert_eq!(r.who("xexample.test", "/"), "404");
}

#[test]
fn hosts_match_without_case_or_port_and_absolute_form_uses_the_authority() {
    let r = rig(
        r#"[{"hosts": ["api.example.test"], "path_prefix": "/", "upstream": "users"},
            {"path_prefix": "/", "upstream": "orders"}]"#,
    );
    assert_eq!(r.who("API.Example.TEST", "/"), "u");
    assert_eq!(r.who("api.example.test:8080", "/"), "u");
    assert_eq!(
        r.who("api.example.test.", "/"),
        "u",
        "a trailing dot is the same name"
    );
    assert_eq!(
        r.who("%61pi.example.test", "/"),
        "u",
        "an escaped name is the same name"
    );
    assert_eq!(r.who("other.test", "/"), "o");
    // RFC 9112 §3.2.2: the target's authority wins over Host.
    let resp = request(
        r.addr(),
        b"GET http://api.example.test/x HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.header("x-backend"), Some("u"));
    assert_eq!(r.u.last_seen().path, "/x");
}

#[test]
fn no_route_is_404_json_and_wrong_method_is_405_with_allow() {
    let r = rig(
        r#"[{"path_prefix": "/api", "methods": ["GET", "POST"], "upstream": "users"},
            {"path_prefix": "/api", "methods": ["PUT"], "upstream": "orders"}]"#,
    );
    let resp = r.get("h", "/nothing");
    assert_eq!(resp.status, 404);
    let body = resp.json();
    assert_eq!(body["error"], "no route");
    assert_eq!(
        body["request_id"].as_str(),
        resp.header("x-request-id"),
        "{body}"
    );
    // A method another route at the same path takes falls through to it.
    assert_eq!(r.send("PUT", "h", "/api/x").header("x-backend"), Some("o"));
    let resp = r.send("DELETE", "h", "/api/x");
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, POST, PUT"));
    assert_eq!(resp.json()["error"], "method not allowed");
    // Keep-alive survives both answers.
    let mut c = Client::connect(r.addr());
    assert_eq!(
        c.roundtrip(b"GET /nothing HTTP/1.1\r\nHost: h\r\n\r\n")
            .status,
        404
    );
    assert_eq!(
        c.roundtrip(b"PATCH /api HTTP/1.1\r\nHost: h\r\n\r\n")
            .status,
        405
    );
    assert_eq!(
        c.roundtrip(b"GET /api HTTP/1.1\r\nHost: h\r\n\r\n").status,
        200
    );
}

#[test]
fn strip_prefix_and_add_prefix_rewrite_what_the_backend_sees() {
    let r = rig(
        r#"[{"path_prefix": "/api/users", "upstream": "users", "strip_prefix": true, "add_prefix": "/v2"},
            {"path_prefix": "/strip/", "upstream": "orders", "strip_prefix": true},
            {"path": "/exact", "upstream": "default", "strip_prefix": true, "add_prefix": "/e"}]"#,
    );
    let cases = [
        ("/api/users", &r.u, "/v2"),
        ("/api/users/", &r.u, "/v2/"),
        ("/api/users/42", &r.u, "/v2/42"),
        ("/api/users/42?q=a/../b", &r.u, "/v2/42?q=a/../b"),
        ("/strip/x/y", &r.o, "/x/y"),
        ("/strip/", &r.o, "/"),
        ("/exact", &r.d, "/e"),
    ];
    for (sent, backend, want) in cases {
        let resp = r.get("h", sent);
        assert_eq!(resp.status, 200, "{sent}");
        assert_eq!(backend.last_seen().path, want, "{sent}");
    }
}

#[test]
fn header_rules_apply_on_both_sides() {
    let r = rig(r#"[{"path_prefix": "/", "upstream": "users",
             "request_headers": {"set": {"X-Route": "users-api"}, "remove": ["X-Debug"]},
             "response_headers": {"set": {"X-Frame-Options": "DENY"}, "remove": ["X-Echo"]}}]"#);
    let resp = request(
        r.addr(),
        b"POST /echo HTTP/1.1\r\nHost: h\r\nX-Debug: 1\r\nX-Route: forged\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    assert_eq!(resp.header("x-echo"), None, "removed from the response");
    assert_eq!(resp.text(), "hi");
    let seen = r.u.last_seen();
    assert_eq!(seen.header("x-debug"), None);
    let routes: Vec<_> = seen
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-route"))
        .collect();
    assert_eq!(routes.len(), 1, "set replaces the client's: {routes:?}");
    assert_eq!(routes[0].1, "users-api");
}

#[test]
fn per_route_timeouts_override_the_top_level_ones() {
    let r = rig(
        r#"[{"path_prefix": "/fast", "upstream": "users", "strip_prefix": true,
             "timeouts": {"backend_response_ms": 150}},
            {"path_prefix": "/", "upstream": "orders"}]"#,
    );
    // /fast/slow reaches the backend as /slow (it sleeps `ms`).
    let resp = r.get("h", "/fast/slow?ms=1500");
    assert_eq!(resp.status, 504, "{}", resp.text());
    let resp = r.get("h", "/slow?ms=300");
    assert_eq!(resp.status, 200, "the other route keeps the default 30 s");
    assert_eq!(resp.text(), "slow");
}

#[test]
fn per_route_limits_have_their_own_key_space() {
    let r = rig(r#"[{"name": "a", "path_prefix": "/a", "upstream": "users",
             "rate_limit": {"algorithm": "fixed-window", "limit": 2, "window_ms": 60000, "key": "ip"}},
            {"name": "b", "path_prefix": "/b", "upstream": "orders",
             "rate_limit": {"algorithm": "fixed-window", "limit": 2, "window_ms": 60000}},
            {"name": "c", "path_prefix": "/c", "upstream": "default"}]"#);
    let statuses =
        |path: &str, n: usize| -> Vec<u16> { (0..n).map(|_| r.get("h", path).status).collect() };
    assert_eq!(statuses("/a", 3), [200, 200, 429]);
    // Route b's budget is untouched by route a's.
    assert_eq!(statuses("/b", 3), [200, 200, 429]);
    // Route c has no limit of its own: the (huge) top-level one.
    assert_eq!(statuses("/c", 5), [200; 5]);
    let resp = r.get("h", "/a");
    assert_eq!(resp.status, 429);
    assert!(resp.header("retry-after").is_some());
}

#[test]
fn the_old_string_form_still_routes_to_default() {
    let r = rig(r#"["/a", "/b/"]"#);
    assert_eq!(r.who("h", "/a"), "d");
    assert_eq!(r.who("h", "/a/x"), "d");
    assert_eq!(r.who("h", "/b/x"), "d");
    assert_eq!(r.who("h", "/c"), "404");
    assert_eq!(
        r.who("h", "/ab"),
        "404",
        "segment boundaries, like object routes"
    );
}

/// The normalization table: with routes configured, the backend sees the
/// normalized path, and routes (and their policies) are chosen on it.
#[test]
fn normalization_table_what_the_backend_receives() {
    let r = rig(
        r#"[{"name": "public", "path_prefix": "/public", "upstream": "users",
             "request_headers": {"set": {"X-Route": "public"}}},
            {"name": "admin", "path_prefix": "/admin", "upstream": "orders",
             "request_headers": {"set": {"X-Route": "admin"}}},
            {"name": "rest", "path_prefix": "/", "upstream": "default"}]"#,
    );
    // (sent, the backend that gets it, the path it sees)
    let forwarded = [
        ("/public/../admin", "o", "/admin"),
        ("//admin", "o", "/admin"),
        ("/%61dmin", "o", "/admin"),
        ("/./admin", "o", "/admin"),
        ("/public/%2e%2e/admin", "o", "/admin"),
        ("/public/%2E%2E/admin/x", "o", "/admin/x"),
        ("/public//a///b", "u", "/public/a/b"),
        ("/public/a/./b/../c", "u", "/public/a/c"),
        ("/public/%7euser", "u", "/public/~user"),
        ("/public/a%3ab", "u", "/public/a%3Ab"),
        ("/public/a?x=/../%2f", "u", "/public/a?x=/../%2f"),
        ("/x/..", "d", "/"),
    ];
    for (sent, who, want) in forwarded {
        let resp = r.get("h", sent);
        assert_eq!(
            resp.header("x-backend"),
            Some(who),
            "{sent}: {}",
            resp.status
        );
        let backend = match who {
            "u" => &r.u,
            "o" => &r.o,
            _ => &r.d,
        };
        let seen = backend.last_seen();
        assert_eq!(seen.path, want, "{sent}");
        // The policy is the matched route's, never the raw path's.
        let expect_route = match who {
            "u" => Some("public"),
            "o" => Some("admin"),
            _ => None,
        };
        assert_eq!(seen.header("x-route"), expect_route, "{sent}");
    }
    for bad in [
        "/%2e%2e/admin",
        "/public/../../admin",
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a%00b",
        "/public/..;/admin",
        "/a%zz",
    ] {
        let resp = r.get("h", bad);
        assert_eq!(resp.status, 400, "{bad}");
        assert!(resp.json()["error"].is_string(), "{bad}");
    }
    assert_eq!(r.o.requests.load(std::sync::atomic::Ordering::SeqCst), 6);
}

#[test]
fn without_routes_the_target_is_forwarded_byte_for_byte() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let resp = request(
        gw.listen_addr(),
        b"GET /x//y/%61%3a?q=/../%2f HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 200);
    assert_eq!(backend.last_seen().path, "/x//y/%61%3a?q=/../%2f");
}

#[test]
fn the_example_config_loads_and_routes() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/routes.json"))
            .expect("examples/routes.json");
    let cfg = Config::from_json(&text).expect("the example config is valid");
    assert!(cfg.routing());
    assert!(cfg.upstreams.len() >= 2, "several services");
}

#[test]
fn a_catch_all_does_not_take_a_method_the_specific_route_refuses() {
    let r = rig(
        r#"[{"name": "users", "path_prefix": "/api/users", "methods": ["GET", "POST"], "upstream": "users"},
            {"name": "site", "path_prefix": "/", "upstream": "default"}]"#,
    );
    let resp = r.send("DELETE", "h", "/api/users/1");
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, POST"));
    assert_eq!(r.who("h", "/api/users/1"), "u");
    assert_eq!(r.who("h", "/about"), "d");
    assert_eq!(r.d.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}
