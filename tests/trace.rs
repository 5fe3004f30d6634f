//! The per-request decision trace (issue 18) over real sockets: what each
//! stage recorded is checked against the config and against what the client
//! and the backend saw (a 429 and its `Retry-After`, the backend that
//! answered, an auth failure, a retry, a queued request), the trust rule
//! (off, untrusted, wrong and right token off loopback), the bounded ring,
//! sampling, and the admin endpoints.
//!
//! A trace reaches the ring when its request settles, which may be just
//! after the client has read the response: fetching one polls (bounded).

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use api_gateway::{Config, Gateway};
use api_gateway_admin::{Command, Reply};
use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(10);
const TOKEN: &str = "trace-admin-token-0123456789";

/// A gateway from a JSON document (admin on an ephemeral loopback port).
fn gateway(doc: Value) -> Gateway {
    let text = doc.to_string();
    start(Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

/// The base document: one worker, no log, the given backends, `extra`
/// merged in.
fn doc(backends: &[SocketAddr], extra: Value) -> Value {
    let list: Vec<Value> = backends
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"name": format!("b{i}"), "addr": a.to_string()}))
        .collect();
    let mut d = json!({
        "listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "workers": 1, "access_log": "off",
        "rate_limit": {"algorithm": "token-bucket", "capacity": 1_000_000, "refill_per_sec": 1_000_000},
        "circuit_breaker": {"failure_threshold": 10_000},
        "load_balancer": "round-robin",
        "backends": list,
        "trace": {"enabled": true},
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut d, extra) {
        d.extend(e);
    }
    d
}

/// `GET path` asking for a trace, with `more` header lines.
fn traced(path: &str, more: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\nX-Gateway-Trace: 1\r\n{more}\r\n").into_bytes()
}

/// The trace `id`, once its request settled.
fn fetch(gw: &Gateway, id: &str) -> Value {
    let mut found = None;
    let ok = eventually(WAIT, || match gw.command(Command::Trace(id.into())) {
        Reply::Json(v) => {
            found = Some(v);
            true
        }
        _ => false,
    });
    assert!(ok, "trace {id} never reached the ring");
    found.unwrap()
}

/// Every trace summary held, newest first.
fn summaries(gw: &Gateway) -> Vec<Value> {
    match gw.command(Command::Traces) {
        Reply::Json(v) => v["traces"].as_array().cloned().unwrap_or_default(),
        other => panic!("{other:?}"),
    }
}

fn trace_id(r: &Response) -> String {
    r.header("x-gateway-trace-id")
        .unwrap_or_else(|| panic!("no X-Gateway-Trace-Id: {:?}", r.headers))
        .to_string()
}

fn stage<'a>(t: &'a Value, name: &str) -> &'a Value {
    t["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["stage"] == name))
        .unwrap_or_else(|| panic!("no {name} stage in {t:#}"))
}

fn stage_names(t: &Value) -> Vec<String> {
    t["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect()
}

/// Neither trace header reached the backend.
fn backend_saw_no_trace_fields(b: &TestBackend) {
    for seen in b.seen.lock().unwrap().iter() {
        for (name, value) in &seen.headers {
            assert!(
                !name.to_ascii_lowercase().starts_with("x-gateway-trace"),
                "forwarded {name}: {value}"
            );
            assert!(!value.contains(TOKEN), "the token leaked in {name}");
        }
    }
}

#[test]
fn allowed_and_denied_requests_record_each_stage_truly() {
    let (a, b) = (TestBackend::start(), TestBackend::start());
    let gw = gateway(doc(
        &[a.addr, b.addr],
        json!({"rate_limit": {"algorithm": "fixed-window", "limit": 2, "window_ms": 60_000}}),
    ));
    let mut c = Client::connect(gw.listen_addr());

    // Allowed, with a client request id: the trace id is the gateway's own.
    let r = c.roundtrip(&traced("/a?x=1", "X-Request-Id: client-abc\r\n"));
    assert_eq!(r.status, 200);
    let id = trace_id(&r);
    assert_ne!(id, "client-abc");
    assert_eq!(id.len(), 16, "{{prefix:08x}}{{serial:08x}}");
    let t = fetch(&gw, &id);
    assert_eq!(t["id"], id.as_str());
    assert_eq!(t["request_id"], "client-abc");
    assert_eq!(t["sampled"], false);
    assert_eq!(t["method"], "GET");
    assert_eq!(t["target"], "/a?x=1");
    assert_eq!(t["client_ip"], "127.0.0.1");
    assert_eq!(t["status"], 200);
    assert_eq!(t["verdict"], "proxied");
    assert!(t["started_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert!(t["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        stage_names(&t),
        [
            "route",
            "rate-limit",
            "circuit-breaker",
            "load-balancer",
            "backend"
        ]
    );
    let route = stage(&t, "route");
    assert_eq!(route["route"], Value::Null, "no routes configured");
    assert_eq!(route["path"], "/a");
    assert_eq!(route["host"], "t");
    assert_eq!(route["upstream"], "default");
    let rl = stage(&t, "rate-limit");
    assert_eq!(rl["verdict"], "allow");
    assert_eq!(rl["algorithm"], "fixed-window");
    assert_eq!(rl["key_source"], "ip");
    assert_eq!(rl["key"], "127.0.0.1");
    assert_eq!(rl["limit"], 2);
    assert_eq!(
        (rl["before"].as_u64(), rl["after"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        r.header("ratelimit-remaining"),
        Some("1"),
        "after = what the client was told"
    );
    let cb = stage(&t, "circuit-breaker");
    let states: Vec<(&str, &str)> = cb["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["name"].as_str().unwrap(), b["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("b0", "closed"), ("b1", "closed")]);
    assert_eq!(cb["excluded"], json!([]));
    let lb = stage(&t, "load-balancer");
    assert_eq!(lb["algorithm"], "round-robin");
    assert_eq!(lb["candidates"].as_array().unwrap().len(), 2);
    assert_eq!(lb["candidates"][0]["weight"], 1);
    let answered = r.header("x-backend").unwrap();
    assert_eq!(lb["pick"], answered);
    let be = stage(&t, "backend");
    assert_eq!(be["backend"], answered);
    assert_eq!(be["status"], 200);
    let tm = &be["timings"];
    assert!(tm["queue"].is_null(), "never queued: {tm}");
    let phases: Vec<f64> = ["connect", "send", "first_byte", "last_byte"]
        .iter()
        .map(|p| {
            tm[p]
                .as_f64()
                .unwrap_or_else(|| panic!("{p} missing: {tm}"))
        })
        .collect();
    assert!(phases.windows(2).all(|w| w[0] <= w[1]), "{phases:?}");
    assert!(phases[3] <= t["duration_ms"].as_f64().unwrap());

    // The second is allowed too: one left before it, none after.
    let r = c.roundtrip(&traced("/a", ""));
    let t = fetch(&gw, &trace_id(&r));
    let rl = stage(&t, "rate-limit");
    assert_eq!(
        (rl["before"].as_u64(), rl["after"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(t["request_id"], r.header("x-request-id").unwrap());
    assert_eq!(t["request_id"], t["id"], "no client id: ours");

    // The third is denied: nothing used, the reply ends the stages.
    let r = c.roundtrip(&traced("/a", ""));
    assert_eq!(r.status, 429);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(stage_names(&t), ["route", "rate-limit", "reply"]);
    let rl = stage(&t, "rate-limit");
    assert_eq!(rl["verdict"], "deny");
    assert_eq!(
        (rl["before"].as_u64(), rl["after"].as_u64()),
        (Some(0), Some(0))
    );
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert_eq!(rl["retry_after_s"].as_u64(), Some(retry_after));
    let reply = stage(&t, "reply");
    assert_eq!(reply["status"], 429);
    assert_eq!(reply["error"], "rate limit exceeded");
    assert_eq!(t["status"], 429);
    assert_eq!(t["verdict"], "rate-limited");

    // The list, over the admin port: newest first, with the summaries.
    let admin = gw.admin_addr().unwrap();
    let list = request(
        admin,
        format!("GET /gateway/trace HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(list.status, 200, "{}", list.text());
    let list = list.json();
    assert_eq!(list["enabled"], true);
    assert_eq!(list["sample_per_million"], 0);
    assert_eq!(list["capacity"], 256);
    let traces = list["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 3);
    assert_eq!(traces[0]["verdict"], "rate-limited");
    assert_eq!(traces[0]["status"], 429);
    for key in [
        "id",
        "request_id",
        "method",
        "target",
        "status",
        "sampled",
        "duration_ms",
        "verdict",
    ] {
        assert!(!traces[2][key].is_null(), "summary lacks {key}");
    }
    assert_eq!(traces[2]["request_id"], "client-abc");
    backend_saw_no_trace_fields(&a);
    backend_saw_no_trace_fields(&b);
}

#[test]
fn an_auth_failure_records_its_reason_and_the_401() {
    let backend = TestBackend::start();
    let gw = gateway(doc(
        &[backend.addr],
        json!({
            "consumers": [{"name": "alice", "api_keys": ["k-alice-0123456789abcdef"]}],
            "routes": [{"name": "api", "path_prefix": "/api", "upstream": "default",
                        "auth": {"api_key": {"header": "X-API-Key"}},
                        "rate_limit": {"algorithm": "sliding-log", "limit": 10, "window_ms": 60_000,
                                       "key": "header:X-API-Key"}}],
        }),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(&traced("/api/x", ""));
    assert_eq!(r.status, 401);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(stage_names(&t), ["route", "auth", "reply"]);
    let route = stage(&t, "route");
    assert_eq!(route["route"], "api");
    assert_eq!(route["upstream"], "default");
    assert_eq!(route["path"], "/api/x");
    let auth = stage(&t, "auth");
    assert_eq!(auth["result"], "failed");
    assert_eq!(auth["reason"], "missing");
    assert_eq!(stage(&t, "reply")["status"], 401);
    assert_eq!(t["verdict"], "auth-failed");

    let r = c.roundtrip(&traced("/api/x", "X-API-Key: k-bogus\r\n"));
    assert_eq!(r.status, 401);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(stage(&t, "auth")["reason"], "unknown");

    // With the key: the consumer, and the limiter keyed by the header
    // shows its name and hash, never the key.
    let r = c.roundtrip(&traced("/api/x", "X-API-Key: k-alice-0123456789abcdef\r\n"));
    assert_eq!(r.status, 200);
    let t = fetch(&gw, &trace_id(&r));
    let auth = stage(&t, "auth");
    assert_eq!(auth["result"], "ok");
    assert_eq!(auth["consumer"], "alice");
    let rl = stage(&t, "rate-limit");
    assert_eq!(rl["key_source"], "header:X-API-Key");
    assert_eq!(rl["key"], "X-API-Key");
    assert_eq!(rl["algorithm"], "sliding-log");
    assert_eq!(rl["key_hash"].as_str().unwrap().len(), 16);
    assert!(!t.to_string().contains("k-alice"), "a key leaked: {t}");
}

#[test]
fn a_retry_names_the_failed_backend_and_the_backend_stage_the_next() {
    let good = TestBackend::start();
    let gw = gateway(doc(
        &[dead_addr(), good.addr],
        json!({"retry": {"attempts": 2}, "timeouts": {"connect_ms": 500}}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    // Round robin offers b0 (refusing) first.
    let r = c.roundtrip(&traced("/r", ""));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-retry-count"), Some("1"));
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(
        stage_names(&t),
        [
            "route",
            "rate-limit",
            "circuit-breaker",
            "load-balancer",
            "retry",
            "backend"
        ]
    );
    assert_eq!(stage(&t, "load-balancer")["pick"], "b0");
    let retry = stage(&t, "retry");
    assert_eq!(retry["attempt"], 1);
    assert_eq!(retry["failed_backend"], "b0");
    assert_eq!(retry["reason"], "connect-failure");
    assert_eq!(retry["next_backend"], "b1");
    let be = stage(&t, "backend");
    assert_eq!(be["backend"], "b1");
    assert_eq!(be["status"], 200);
    assert!(be["timings"]["connect"].as_f64().is_some());
    assert_eq!(good.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn a_queued_request_records_its_wait() {
    // One backend, one request in flight at a time: the first (untraced)
    // request is held until the test lets it go.
    let (release, held) = mpsc::channel::<()>();
    let held = Arc::new(Mutex::new(held));
    let backend = RawBackend::start(move |mut s, conn| {
        let mut first = true;
        while let Some(head) = read_head(&mut s) {
            if conn == 1 && first && head.starts_with(b"GET /hold ") {
                let _ = held.lock().unwrap().recv_timeout(WAIT);
            }
            first = false;
            if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .is_err()
            {
                return;
            }
        }
    });
    let gw = gateway(doc(
        &[backend.addr],
        json!({"max_inflight_per_backend": 1, "queue": {"max": 4, "timeout_ms": 5000}}),
    ));
    let mut holder = Client::connect(gw.listen_addr());
    holder.send(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(eventually(WAIT, || backend
        .connections
        .load(Ordering::SeqCst)
        == 1));
    let mut waiter = Client::connect(gw.listen_addr());
    waiter.send(&traced("/queued", ""));
    let depth = || match gw.command(Command::Metrics) {
        Reply::Text(t) => prom(&t, "gateway_upstream_queue_depth{upstream=\"default\"}"),
        other => panic!("{other:?}"),
    };
    assert!(eventually(WAIT, || depth() == 1.0), "the request queued");
    release.send(()).unwrap();
    assert_eq!(holder.read(false).status, 200);
    let r = waiter.read(false);
    assert_eq!(r.status, 200);
    let t = fetch(&gw, &trace_id(&r));
    let names = stage_names(&t);
    assert_eq!(
        names,
        [
            "route",
            "rate-limit",
            "circuit-breaker",
            "load-balancer",
            "queue",
            "circuit-breaker",
            "load-balancer",
            "backend"
        ]
    );
    // The first selection found the only backend at its cap.
    let first_cb = &t["stages"][2];
    assert_eq!(first_cb["backends"][0]["excluded"], "at-cap");
    assert_eq!(t["stages"][3]["refusal"], "at-cap");
    let q = stage(&t, "queue");
    assert_eq!(q["outcome"], "served");
    let (entered, left) = (
        q["entered_ms"].as_f64().unwrap(),
        q["left_ms"].as_f64().unwrap(),
    );
    assert!(entered <= left, "{q}");
    assert_eq!(t["stages"][6]["pick"], "b0");
    let tm = &stage(&t, "backend")["timings"];
    assert_eq!(tm["queue"].as_f64(), Some(left));
    assert!(tm["queue"].as_f64() <= tm["connect"].as_f64(), "{tm}");
}

#[test]
fn an_untrusted_trace_request_gets_no_trace_and_never_reaches_the_backend() {
    // Tracing off: the header is dropped and ignored.
    let backend = TestBackend::start();
    let gw = gateway(doc(&[backend.addr], json!({"trace": {"enabled": false}})));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(&traced(
        "/off",
        &format!("X-Gateway-Trace-Token: {TOKEN}\r\n"),
    ));
    assert_eq!(r.status, 200);
    assert!(r.header("x-gateway-trace-id").is_none());
    // A second request on the connection: the first has settled.
    assert_eq!(
        c.roundtrip(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n").status,
        200
    );
    assert!(summaries(&gw).is_empty(), "nothing in the ring");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 2);
    backend_saw_no_trace_fields(&backend);
    gw.shutdown();

    // Off loopback (a trusted proxy says the client is 203.0.113.7): only
    // the admin token opens a trace.
    let backend = TestBackend::start();
    let gw = gateway(doc(
        &[backend.addr],
        json!({"trusted_proxies": ["127.0.0.1/32"], "admin_token": TOKEN}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let xff = "X-Forwarded-For: 203.0.113.7\r\n";
    for more in [
        xff.to_string(),
        format!("{xff}X-Gateway-Trace-Token: wrong-token-0123456789ab\r\n"),
        format!(
            "{xff}X-Gateway-Trace-Token: {}\r\n",
            &TOKEN[..TOKEN.len() - 1]
        ),
    ] {
        let r = c.roundtrip(&traced("/untrusted", &more));
        assert_eq!(r.status, 200);
        assert!(r.header("x-gateway-trace-id").is_none(), "{more}");
    }
    let r = c.roundtrip(&traced(
        "/trusted",
        &format!("{xff}X-Gateway-Trace-Token: {TOKEN}\r\n"),
    ));
    assert_eq!(r.status, 200);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(t["client_ip"], "203.0.113.7");
    assert_eq!(stage(&t, "rate-limit")["key"], "203.0.113.7");
    assert_eq!(summaries(&gw).len(), 1, "only the right token's trace");
    assert!(!t.to_string().contains(TOKEN));
    assert_eq!(backend.requests.load(Ordering::SeqCst), 4);
    backend_saw_no_trace_fields(&backend);
}

#[test]
fn the_ring_keeps_the_last_max_traces() {
    let backend = TestBackend::start();
    let gw = gateway(doc(
        &[backend.addr],
        json!({"trace": {"enabled": true, "max_traces": 3}}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let ids: Vec<String> = (0..5)
        .map(|i| trace_id(&c.roundtrip(&traced(&format!("/n/{i}"), ""))))
        .collect();
    fetch(&gw, &ids[4]);
    let admin = gw.admin_addr().unwrap();
    let get_trace = |id: &str| {
        request(
            admin,
            format!(
                "GET /gateway/trace/{id} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    for id in &ids[..2] {
        let r = get_trace(id);
        assert_eq!(r.status, 404, "{id} was evicted");
        assert!(r.json()["error"].is_string());
    }
    for (i, id) in ids[2..].iter().enumerate() {
        let r = get_trace(id);
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["target"], format!("/n/{}", i + 2));
    }
    assert_eq!(get_trace("nope").status, 404);
    let list: Vec<String> = summaries(&gw)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(list, [ids[4].clone(), ids[3].clone(), ids[2].clone()]);
}

#[test]
fn sampling_traces_requests_that_did_not_ask() {
    let backend = TestBackend::start();
    // Every request, with tracing on demand off.
    let gw = gateway(doc(
        &[backend.addr],
        json!({"trace": {"enabled": false, "sample_per_million": 1_000_000}}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = c.roundtrip(format!("GET /s/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        ids.push(trace_id(&r));
    }
    let t = fetch(&gw, &ids[2]);
    assert_eq!(t["sampled"], true);
    assert_eq!(stage(&t, "backend")["status"], 200);
    assert_eq!(summaries(&gw).len(), 3);
    gw.shutdown();

    // None, even with tracing on demand on (and no header).
    let gw = gateway(doc(
        &[backend.addr],
        json!({"trace": {"enabled": true, "sample_per_million": 0}}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    for i in 0..3 {
        let r = c.roundtrip(format!("GET /u/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert!(r.header("x-gateway-trace-id").is_none());
    }
    // A traced request after them: once it is in, the others have settled.
    let r = c.roundtrip(&traced("/last", ""));
    fetch(&gw, &trace_id(&r));
    assert_eq!(summaries(&gw).len(), 1);
}

#[test]
fn a_reload_turns_tracing_on() {
    let backend = TestBackend::start();
    let base = doc(&[backend.addr], json!({"trace": {"enabled": false}}));
    let gw = gateway(base.clone());
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(&traced("/before", ""));
    assert!(r.header("x-gateway-trace-id").is_none());
    let mut next = base;
    next["trace"] = json!({"enabled": true, "max_traces": 2});
    // The restart-only settings as they run (ephemeral ports).
    next["listen"] = json!(gw.listen_addr().to_string());
    next["admin"] = json!(gw.admin_addr().unwrap().to_string());
    match gw.command(Command::ApplyConfig(next.to_string())) {
        Reply::Json(_) => {}
        other => panic!("reload refused: {other:?}"),
    }
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(&traced("/after", ""));
    fetch(&gw, &trace_id(&r));
    match gw.command(Command::Traces) {
        Reply::Json(v) => {
            assert_eq!(v["enabled"], true);
            assert_eq!(v["capacity"], 2);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn shadow_limiters_decisions_follow_the_live_one() {
    let backend = TestBackend::start();
    let gw = gateway(doc(
        &[backend.addr],
        json!({"rate_limit": {"algorithm": "fixed-window", "limit": 1, "window_ms": 60_000,
                              "shadow": ["token-bucket", "sliding-log"]}}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(&traced("/s", ""));
    assert_eq!(r.status, 200);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(stage_names(&t)[..3], ["route", "rate-limit", "shadows"]);
    let shadows = stage(&t, "shadows")["shadows"].as_array().unwrap().clone();
    let algos: Vec<&str> = shadows
        .iter()
        .map(|s| s["algorithm"].as_str().unwrap())
        .collect();
    assert_eq!(algos, ["token-bucket", "sliding-log"]);
    assert!(
        shadows.iter().all(|s| s["verdict"] == "allow"),
        "{shadows:?}"
    );
    // The live limit of 1 is spent: the live limiter and the exact
    // sliding log both deny the second.
    let r = c.roundtrip(&traced("/s", ""));
    assert_eq!(r.status, 429);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(stage_names(&t), ["route", "rate-limit", "shadows", "reply"]);
    assert_eq!(stage(&t, "shadows")["shadows"][1]["verdict"], "deny");
}

/// A backend that answers every request with its own `X-Gateway-Trace-Id`.
fn forging_backend() -> SocketAddr {
    RawBackend::start(|mut s, _| {
        while read_head(&mut s).is_some() {
            let reply =
                "HTTP/1.1 200 OK\r\nX-Gateway-Trace-Id: forged\r\nContent-Length: 2\r\n\r\nok";
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
        }
    })
    .addr
}

#[test]
fn the_trace_id_is_the_gateways_alone() {
    let gw = gateway(doc(&[forging_backend()], json!({})));
    let mut c = Client::connect(gw.listen_addr());
    // Untraced: the backend's field does not reach the client.
    let r = c.roundtrip(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.headers_named("x-gateway-trace-id"), Vec::<&str>::new());
    // Traced: exactly one, the gateway's, and it names a real trace.
    let r = c.roundtrip(&traced("/x", ""));
    assert_eq!(r.headers_named("x-gateway-trace-id").len(), 1);
    let id = trace_id(&r);
    assert_ne!(id, "forged");
    assert_eq!(fetch(&gw, &id)["status"], 200);
}

#[test]
fn a_trace_keeps_no_query_key_and_no_unbounded_text() {
    let backend = TestBackend::start();
    let gw = gateway(doc(
        &[backend.addr],
        json!({
            "consumers": [{"name": "alice", "api_keys": ["k-alice-secret-0001"]}],
            "routes": [{"name": "api", "path_prefix": "/api", "upstream": "default",
                        "auth": {"api_key": {"query": "apikey"}}}],
        }),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(&traced("/api/x?apikey=k-alice-secret-0001&page=2", ""));
    assert_eq!(r.status, 200);
    let t = fetch(&gw, &trace_id(&r));
    assert_eq!(stage(&t, "auth")["consumer"], "alice");
    let text = t.to_string();
    assert!(!text.contains("k-alice-secret"), "{t:#}");
    assert!(t["target"].as_str().unwrap().contains("page=2"), "{t:#}");
    let listed = summaries(&gw);
    assert!(!Value::Array(listed).to_string().contains("k-alice-secret"));

    // A long path and host are kept to 512 bytes each.
    let long = "a".repeat(4_000);
    let raw = format!(
        "GET /api/{long} HTTP/1.1\r\nHost: {}.test\r\nX-Gateway-Trace: 1\r\nX-API-Key-Unused: 1\r\n\r\n",
        "h".repeat(3_000)
    );
    let r = c.roundtrip(raw.as_bytes());
    let t = fetch(&gw, &trace_id(&r));
    let route = stage(&t, "route");
    assert_eq!(route["path"].as_str().unwrap().len(), 512, "{route:#}");
    assert_eq!(route["host"].as_str().unwrap().len(), 512, "{route:#}");
    assert_eq!(t["target"].as_str().unwrap().len(), 512);
}

#[test]
fn wrong_tokens_off_loopback_are_counted_and_short_tokens_refused() {
    let backend = TestBackend::start();
    let gw = gateway(doc(
        &[backend.addr],
        json!({"trusted_proxies": ["127.0.0.1/32"], "admin_token": TOKEN}),
    ));
    let mut c = Client::connect(gw.listen_addr());
    let xff = "X-Forwarded-For: 203.0.113.7\r\n";
    for token in ["guess", "trace-admin-token-012345678", ""] {
        let r = c.roundtrip(&traced(
            "/x",
            &format!("{xff}X-Gateway-Trace-Token: {token}\r\n"),
        ));
        assert_eq!(r.status, 200);
        assert!(r.header("x-gateway-trace-id").is_none(), "{token}");
    }
    let metrics = match gw.command(Command::Metrics) {
        Reply::Text(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(prom(&metrics, "gateway_trace_token_refused_total"), 3.0);

    // The data port answers whether a token was right: with tracing on and
    // a data port beyond loopback, a short admin token is refused at load.
    let mut short = doc(
        &[backend.addr],
        json!({"admin_token": "short-token", "listen": "0.0.0.0:0"}),
    );
    let e = Config::from_json(&short.to_string()).unwrap_err().0;
    assert!(
        e.starts_with("admin_token: must be at least 16 characters"),
        "{e}"
    );
    short["trace"] = json!({"enabled": false});
    assert!(Config::from_json(&short.to_string()).is_ok());
    short["trace"] = json!({"enabled": true});
    short["listen"] = json!("127.0.0.1:0");
    assert!(Config::from_json(&short.to_string()).is_ok());
}
