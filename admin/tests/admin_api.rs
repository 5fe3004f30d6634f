//! Socket-level tests of the admin server: a real server on 127.0.0.1:0, a
//! fake gateway thread answering envelopes (and recording the commands), and
//! raw HTTP over std `TcpStream` read to EOF. No sleeps as synchronisation:
//! every wait is bounded by a socket timeout or a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use api_gateway_admin::{
    check_exposure, spawn, spawn_with, AdminConfig, AdminHandle, AdminOptions, BalanceSpec,
    Command, Envelope, LimitSpec, Reply,
};
use crossbeam_channel::{unbounded, Receiver};
use serde_json::{json, Value};

const TOKEN: &str = "s3cret-token";

fn health_json(backend_addr: &str) -> Value {
    json!({"status":"ok","uptime_ms":1234,"listen":"127.0.0.1:4000",
     "pipeline":["logger","cors","rate-limit","circuit-breaker","proxy"],
     "rateLimiter":{"algorithm":"token-bucket","capacity":20,"refill_per_sec":2.0,"key":"ip"},
     "loadBalancer":{"algorithm":"round-robin"},
     "circuitBreaker":{"failure_threshold":3,"window_ms":10000,"open_ms":15000},
     "backends":[{"name":"Backend-A","address":backend_addr,"weight":3,"up":true,
        "circuitState":"CLOSED","inflight":0,"requests":10,"failures":0,
        "status":{"2xx":10,"5xx":0},"latency_ms":{"p50":1,"p90":2,"p99":5}}],
     "totals":{"requests":100,"proxied":90,"rate_limited":5,"circuit_broken":2,"errors":3,
        "status":{"1xx":0,"2xx":88,"3xx":0,"4xx":7,"5xx":5}},
     "connections":{"open":3,"accepted":50},
     "events":[{"at_ms":1200,"message":"circuit Backend-A CLOSED -> OPEN"}]})
}

/// The fake gateway's answer to a command.
fn fake_reply(cmd: &Command, backend_addr: &str) -> Reply {
    let known = |n: &str| n == "Backend-A";
    match cmd {
        Command::Health => Reply::Json(health_json(backend_addr)),
        Command::Metrics => Reply::Text("gateway_requests_total 100\n".into()),
        Command::SetRateLimiter(s) => Reply::Json(json!({"rateLimiter": s.name()})),
        Command::SetLoadBalancer(s) => Reply::Json(json!({"loadBalancer": s.name()})),
        Command::ToggleBackend(n) | Command::ResetCircuit(n) if !known(n) => {
            Reply::NotFound(format!("unknown backend '{n}'"))
        }
        Command::ToggleBackend(n) => Reply::Json(json!({"backend": n, "up": false})),
        Command::ResetCircuit(n) => Reply::Json(json!({"backend": n, "circuitState": "CLOSED"})),
        Command::ResetMetrics => Reply::Json(json!({"reset": true})),
        Command::Routes => Reply::Json(json!({"routes": []})),
        Command::ShadowReport => Reply::Json(json!({"enabled": false, "limiters": []})),
        Command::Upstreams => Reply::Json(json!({"upstreams": []})),
        Command::Consumers => Reply::Json(json!({"consumers": []})),
        Command::ReloadTls => Reply::Invalid("no tls listener".into()),
        Command::Config => Reply::Json(json!({"listen": "127.0.0.1:4000"})),
        Command::ReloadConfig => Reply::Json(json!({"reloaded": true, "generation": 1})),
        Command::ApplyConfig(text) if text.contains("bad") => {
            Reply::Invalid("routes[0].upstream: no upstream named \"bad\"".into())
        }
        Command::ApplyConfig(_) => Reply::Json(json!({"reloaded": true, "generation": 2})),
        Command::SetUpstreamBalancer { upstream, .. }
        | Command::SetRouteLimiter {
            route: upstream, ..
        } => Reply::NotFound(format!("no '{upstream}'")),
    }
}

struct Harness {
    admin: Option<AdminHandle>,
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Command>>>,
    fake: Option<JoinHandle<()>>,
}

impl Harness {
    fn start(token: Option<&str>, gateway_addr: SocketAddr, backend_addr: &str) -> Harness {
        let (tx, rx) = unbounded::<Envelope>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let fake = {
            let seen = Arc::clone(&seen);
            let backend_addr = backend_addr.to_string();
            // Ends when the admin drops its sender (after shutdown).
            thread::spawn(move || {
                for env in rx {
                    seen.lock().unwrap().push(env.cmd.clone());
                    let _ = env.reply.try_send(fake_reply(&env.cmd, &backend_addr));
                }
            })
        };
        let admin = spawn(
            AdminConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                token: token.map(str::to_string),
                gateway_addr,
            },
            tx,
        )
        .expect("admin binds");
        let addr = admin.local_addr();
        Harness {
            admin: Some(admin),
            addr,
            seen,
            fake: Some(fake),
        }
    }

    fn simple() -> Harness {
        Harness::start(None, "127.0.0.1:9".parse().unwrap(), "127.0.0.1:9")
    }

    fn commands(&self) -> Vec<Command> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(a) = self.admin.take() {
            a.shutdown();
        }
        if let Some(f) = self.fake.take() {
            f.join().unwrap();
        }
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {}", self.body))
            .to_string()
    }
}

fn http(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("complete head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    http(addr, "GET", path, &[], "")
}

fn post(addr: SocketAddr, path: &str, body: &str) -> Resp {
    http(addr, "POST", path, &[], body)
}

fn is_json(r: &Resp) -> bool {
    r.header("content-type") == Some("application/json")
}

#[test]
fn health_and_metrics_pass_through() {
    let h = Harness::simple();
    let r = get(h.addr, "/gateway/health");
    assert_eq!(r.status, 200);
    assert!(is_json(&r));
    let v = r.json();
    assert_eq!(v["backends"][0]["circuitState"], "CLOSED");
    assert_eq!(v["pipeline"].as_array().unwrap().len(), 5);

    let r = get(h.addr, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    assert!(r.body.contains("gateway_requests_total"));
    assert_eq!(h.commands(), vec![Command::Health, Command::Metrics]);
}

#[test]
fn switching_algorithms_sends_validated_specs() {
    let h = Harness::simple();
    let r = post(h.addr, "/gateway/rate-limiter/token-bucket", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["rateLimiter"], "token-bucket");
    let r = post(
        h.addr,
        "/gateway/rate-limiter/fixed-window",
        r#"{"limit": 7, "window_ms": 1000}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(
        h.addr,
        "/gateway/load-balancer/consistent-hash",
        r#"{"virtual_nodes": 50}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = post(h.addr, "/gateway/load-balancer/weighted-round-robin", "");
    assert_eq!(r.status, 200);
    assert_eq!(
        h.commands(),
        vec![
            Command::SetRateLimiter(LimitSpec::TokenBucket {
                capacity: 20,
                refill_per_sec: 2.0
            }),
            Command::SetRateLimiter(LimitSpec::FixedWindow {
                limit: 7,
                window_ms: 1000
            }),
            Command::SetLoadBalancer(BalanceSpec::ConsistentHash { virtual_nodes: 50 }),
            Command::SetLoadBalancer(BalanceSpec::WeightedRoundRobin),
        ]
    );
}

#[test]
fn routes_and_upstreams_endpoints_send_scoped_commands() {
    let h = Harness::simple();
    assert_eq!(get(h.addr, "/gateway/routes").json(), json!({"routes": []}));
    assert_eq!(
        get(h.addr, "/gateway/upstreams").json(),
        json!({"upstreams": []})
    );
    let r = post(
        h.addr,
        "/gateway/upstreams/us%20ers/load-balancer/consistent-hash",
        r#"{"virtual_nodes": 50}"#,
    );
    // The gateway's NotFound passes through as a JSON 404.
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.error().contains("us ers"), "{}", r.body);
    let r = post(
        h.addr,
        "/gateway/routes/users-api/rate-limiter/fixed-window",
        r#"{"limit": 7}"#,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    // Invalid params never reach the gateway.
    let r = post(h.addr, "/gateway/routes/users-api/rate-limiter/nope", "");
    assert_eq!(r.status, 400);
    let r = get(
        h.addr,
        "/gateway/routes/users-api/rate-limiter/fixed-window",
    );
    assert_eq!(r.status, 405);
    assert_eq!(
        h.commands(),
        vec![
            Command::Routes,
            Command::Upstreams,
            Command::SetUpstreamBalancer {
                upstream: "us ers".into(),
                spec: BalanceSpec::ConsistentHash { virtual_nodes: 50 },
            },
            Command::SetRouteLimiter {
                route: "users-api".into(),
                spec: LimitSpec::FixedWindow {
                    limit: 7,
                    window_ms: 10000
                },
            },
        ]
    );
}

#[test]
fn config_endpoints_pass_the_body_through_as_sent() {
    let h = Harness::simple();
    assert_eq!(
        get(h.addr, "/gateway/config").json(),
        json!({"listen": "127.0.0.1:4000"})
    );
    assert_eq!(post(h.addr, "/gateway/config/reload", "").status, 200);
    // The text as sent, duplicate keys and all: the gateway's own parser
    // judges it.
    let text = r#"{"listen": "127.0.0.1:0", "listen": "127.0.0.1:1"}"#;
    assert_eq!(post(h.addr, "/gateway/config", text).status, 200);
    let r = post(h.addr, "/gateway/config", r#"{"bad": 1}"#);
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("routes[0].upstream"), "{}", r.body);
    // No body, or one beyond the config bound (1 MiB): refused here.
    assert_eq!(post(h.addr, "/gateway/config", "").status, 400);
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1024 * 1024));
    assert_eq!(post(h.addr, "/gateway/config", &big).status, 413);
    // A config bigger than other bodies' 64 KiB bound is fine.
    let mid = format!("{{\"x\": \"{}\"}}", "a".repeat(100 * 1024));
    assert_eq!(post(h.addr, "/gateway/config", &mid).status, 200);
    assert_eq!(http(h.addr, "PUT", "/gateway/config", &[], "").status, 405);
    assert_eq!(
        h.commands(),
        vec![
            Command::Config,
            Command::ReloadConfig,
            Command::ApplyConfig(text.into()),
            Command::ApplyConfig(r#"{"bad": 1}"#.into()),
            Command::ApplyConfig(mid),
        ]
    );
}

#[test]
fn bad_input_is_400_naming_names_and_fields() {
    let h = Harness::simple();
    let r = post(h.addr, "/gateway/rate-limiter/quantum-bucket", "");
    assert_eq!(r.status, 400);
    assert!(is_json(&r));
    let e = r.error();
    for n in api_gateway_admin::protocol::LIMITER_NAMES {
        assert!(e.contains(n), "{e}");
    }
    let r = post(h.addr, "/gateway/load-balancer/random", "");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("least-connections"));
    let r = post(
        h.addr,
        "/gateway/rate-limiter/token-bucket",
        r#"{"capacity": 0}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("capacity"), "{}", r.body);
    let r = post(
        h.addr,
        "/gateway/rate-limiter/leaky-bucket",
        r#"{"leak_per_sec": "fast"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("leak_per_sec"), "{}", r.body);
    let r = post(h.addr, "/gateway/rate-limiter/token-bucket", "{not json");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("JSON"));
    // Nothing invalid ever reached the gateway.
    assert!(h.commands().is_empty(), "{:?}", h.commands());
}

#[test]
fn backend_actions_and_404s() {
    let h = Harness::simple();
    let r = post(h.addr, "/gateway/backend/Backend-A/toggle", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["backend"], "Backend-A");
    let r = post(h.addr, "/gateway/circuit/Backend-A/reset", "");
    assert_eq!(r.status, 200);
    let r = post(h.addr, "/gateway/metrics/reset", "");
    assert_eq!(r.status, 200);
    let r = post(h.addr, "/gateway/backend/Backend-Z/toggle", "");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("Backend-Z"));
    let r = post(h.addr, "/gateway/circuit/Backend-Z/reset", "");
    assert_eq!(r.status, 404);
    assert!(is_json(&r));
    let r = post(h.addr, "/gateway/demo/Backend-Z/crash", "");
    assert_eq!(r.status, 404);
    assert!(r.error().contains("Backend-Z"));
    assert_eq!(
        h.commands(),
        vec![
            Command::ToggleBackend("Backend-A".into()),
            Command::ResetCircuit("Backend-A".into()),
            Command::ResetMetrics,
            Command::ToggleBackend("Backend-Z".into()),
            Command::ResetCircuit("Backend-Z".into()),
            Command::Health,
        ]
    );

    // Successful actions are in the admin's event log, failed ones are not.
    let r = get(h.addr, "/gateway/events");
    assert_eq!(r.status, 200);
    let events = r.json()["events"].as_array().unwrap().clone();
    let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["toggle", "circuit-reset", "metrics-reset"]);
    assert!(events[0]["message"].as_str().unwrap().contains("Backend-A"));
    assert!(events[0]["at_unix_ms"].as_u64().unwrap() > 0);
}

#[test]
fn unknown_paths_and_wrong_methods() {
    let h = Harness::simple();
    let r = get(h.addr, "/nope");
    assert_eq!(r.status, 404);
    assert!(is_json(&r));
    assert!(r.error().contains("/nope"));
    let r = get(h.addr, "/gateway/rate-limiter/token-bucket");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert!(is_json(&r));
    let r = post(h.addr, "/gateway/health", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    let r = http(h.addr, "DELETE", "/", &[], "");
    assert_eq!(r.status, 405);
    assert!(h.commands().is_empty());
}

#[test]
fn dashboard_and_assets() {
    let h = Harness::simple();
    for (path, ct, needle) in [
        ("/", "text/html; charset=utf-8", "<html"),
        ("/index.html", "text/html; charset=utf-8", "app.js"),
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            "/gateway/health",
        ),
        ("/style.css", "text/css; charset=utf-8", "{"),
    ] {
        let r = get(h.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ct), "{path}");
        assert!(r.body.contains(needle), "{path} lacks {needle}");
    }
    // The page must work offline: no external scripts or styles.
    let page = get(h.addr, "/").body;
    assert!(!page.contains("http://") && !page.contains("https://"));
}

#[test]
fn token_is_enforced_on_every_request() {
    let h = Harness::start(Some(TOKEN), "127.0.0.1:9".parse().unwrap(), "127.0.0.1:9");
    for path in ["/gateway/health", "/gateway/events", "/metrics", "/nope"] {
        let r = get(h.addr, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(is_json(&r));
        assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    }
    // The static dashboard files carry no data: a browser must be able to
    // load them before it has a way to send the token (`/#token=...`).
    for path in ["/", "/index.html", "/app.js", "/style.css?v=1"] {
        assert_eq!(get(h.addr, path).status, 200, "{path}");
    }
    let r = http(h.addr, "POST", "/", &[], "");
    assert_eq!(r.status, 401, "only GET of a static file skips the token");
    let wrong = format!("Bearer {TOKEN}x");
    let r = http(
        h.addr,
        "GET",
        "/gateway/health",
        &[("Authorization", &wrong)],
        "",
    );
    assert_eq!(r.status, 401);
    let r = http(
        h.addr,
        "POST",
        "/gateway/metrics/reset",
        &[("Authorization", "Bearer")],
        "",
    );
    assert_eq!(r.status, 401);
    assert!(
        h.commands().is_empty(),
        "unauthenticated requests reached the gateway"
    );
    let right = format!("Bearer {TOKEN}");
    let r = http(
        h.addr,
        "GET",
        "/gateway/health",
        &[("Authorization", &right)],
        "",
    );
    assert_eq!(r.status, 200);
    let r = http(h.addr, "GET", "/", &[("Authorization", &right)], "");
    assert_eq!(r.status, 200);
    assert_eq!(h.commands(), vec![Command::Health]);
}

#[test]
fn exposure_rule_and_bind_errors() {
    let any: SocketAddr = "0.0.0.0:0".parse().unwrap();
    assert!(check_exposure(&any, None).is_err());
    // Off loopback the token needs 16 characters; TOKEN is shorter.
    assert!(check_exposure(&any, Some(TOKEN)).is_err());
    assert!(check_exposure(&any, Some("a-sixteen-char-t")).is_ok());
    assert!(check_exposure(&"127.0.0.1:0".parse().unwrap(), None).is_ok());
    let (tx, _rx) = unbounded();
    let cfg = |addr| AdminConfig {
        addr,
        token: None,
        gateway_addr: "127.0.0.1:9".parse().unwrap(),
    };
    let err = spawn(cfg(any), tx.clone()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    // A port that is already taken: the bind error is returned, not swallowed.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(spawn(cfg(taken.local_addr().unwrap()), tx).is_err());
}

#[test]
fn silent_gateway_means_503_and_notify_is_called() {
    let (tx, rx): (_, Receiver<Envelope>) = unbounded();
    let wakes = Arc::new(AtomicUsize::new(0));
    let admin = {
        let wakes = Arc::clone(&wakes);
        spawn_with(
            AdminConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                token: None,
                gateway_addr: "127.0.0.1:9".parse().unwrap(),
            },
            tx,
            AdminOptions {
                reply_timeout: Duration::from_millis(200),
                notify: Some(Arc::new(move || {
                    wakes.fetch_add(1, Ordering::SeqCst);
                })),
                ..AdminOptions::default()
            },
        )
        .unwrap()
    };
    let r = get(admin.local_addr(), "/gateway/health");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("did not answer"));
    let r = post(admin.local_addr(), "/gateway/backend/Backend-A/toggle", "");
    assert_eq!(r.status, 503);
    assert_eq!(wakes.load(Ordering::SeqCst), 2);
    // Both envelopes arrived; nobody answered them.
    assert_eq!(rx.try_iter().count(), 2);
    // The admin's own endpoints still work without the gateway.
    assert_eq!(get(admin.local_addr(), "/gateway/events").status, 200);
    admin.shutdown();

    // A gateway that has gone away entirely is also a 503.
    let (tx, rx) = unbounded::<Envelope>();
    drop(rx);
    let admin = spawn(
        AdminConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            token: None,
            gateway_addr: "127.0.0.1:9".parse().unwrap(),
        },
        tx,
    )
    .unwrap();
    let r = get(admin.local_addr(), "/gateway/health");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("not running"));
}

/// A fake data plane: answers `count` connections, then exits. Connection
/// `i` (in accept order) gets 429 when `i % 3 == 2`, otherwise 200 with
/// `x-backend` alternating between Backend-A and Backend-B. Returns the
/// request lines it saw.
fn fake_data_plane(count: usize) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut lines = Vec::new();
        for i in 0..count {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let head = read_head(&mut s);
            lines.push(head.lines().next().unwrap_or_default().to_string());
            assert!(head.contains("Connection: close"), "{head}");
            let resp = if i % 3 == 2 {
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                    .to_string()
            } else {
                let b = if i % 2 == 0 { "Backend-A" } else { "Backend-B" };
                format!("HTTP/1.1 200 OK\r\nX-Backend: {b}\r\nContent-Length: 2\r\n\r\nok")
            };
            s.write_all(resp.as_bytes()).unwrap();
        }
        lines
    });
    (addr, h)
}

fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => buf.push(byte[0]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn burst_load_test_counts_what_the_gateway_answers() {
    let (gw, fake) = fake_data_plane(30);
    let h = Harness::start(None, gw, "127.0.0.1:9");
    let r = post(
        h.addr,
        "/gateway/loadtest",
        r#"{"requests": 30, "concurrency": 5, "path": "/api/users"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["sent"], 30);
    assert_eq!(v["ok"], 20);
    assert_eq!(v["limited"], 10);
    assert_eq!(v["unavailable"], 0);
    assert_eq!(v["errors"], 0);
    assert_eq!(v["by_backend"]["Backend-A"], 10);
    assert_eq!(v["by_backend"]["Backend-B"], 10);
    let hist: u64 = v["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert!(b["le_ms"].as_f64().unwrap() > 0.0);
            b["count"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(hist, 30);
    let lat = &v["latency_ms"];
    for k in ["p50", "p90", "p99", "max"] {
        assert!(lat[k].as_f64().is_some(), "{k}");
    }
    assert!(lat["p50"].as_f64() <= lat["max"].as_f64());
    assert!(v["duration_ms"].as_u64().is_some());
    let lines = fake.join().unwrap();
    assert!(
        lines.iter().all(|l| l == "GET /api/users HTTP/1.1"),
        "{lines:?}"
    );
    // The load test is in the event log; nothing went to the gateway loop.
    let events = get(h.addr, "/gateway/events").json();
    assert_eq!(events["events"][0]["kind"], "loadtest");
    assert!(h.commands().is_empty());
}

#[test]
fn sustained_load_test_and_validation() {
    let (gw, fake) = fake_data_plane(6);
    let h = Harness::start(None, gw, "127.0.0.1:9");
    let r = post(
        h.addr,
        "/gateway/loadtest",
        r#"{"rate": 30, "seconds": 0.2}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["mode"], "sustained");
    assert_eq!(v["sent"], 6);
    assert_eq!(v["ok"], 4);
    assert_eq!(v["limited"], 2);
    // 6 requests at 30/s: the last is due at 5/30 s.
    assert!(v["duration_ms"].as_u64().unwrap() >= 160, "{v}");
    fake.join().unwrap();

    for (body, field) in [
        (r#"{"requests": 5000}"#, "requests"),
        (r#"{"concurrency": 999}"#, "concurrency"),
        (r#"{"rate": 10, "seconds": 120}"#, "seconds"),
        (r#"{"path": "no-slash"}"#, "path"),
    ] {
        let r = post(h.addr, "/gateway/loadtest", body);
        assert_eq!(r.status, 400, "{body}");
        assert!(r.error().contains(field), "{body}: {}", r.body);
    }
}

#[test]
fn load_test_against_a_dead_gateway_reports_errors() {
    // Bind then drop: nothing listens on this port any more.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h = Harness::start(None, dead, "127.0.0.1:9");
    let r = post(h.addr, "/gateway/loadtest", r#"{"requests": 4}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["sent"].as_u64(), v["errors"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(v["transport_errors"], 4);
    assert!(!v["error_samples"].as_array().unwrap().is_empty());
}

#[test]
fn demo_crash_calls_the_backend_from_health() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = listener.local_addr().unwrap();
    let fake_backend = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = read_head(&mut s);
        let body = r#"{"crashed":true,"server":"Backend-A"}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).unwrap();
        head
    });
    let h = Harness::start(None, "127.0.0.1:9".parse().unwrap(), &backend.to_string());
    let r = post(h.addr, "/gateway/demo/Backend-A/crash", "");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["crashed"], true);
    let head = fake_backend.join().unwrap();
    assert_eq!(head.lines().next(), Some("POST /admin/crash HTTP/1.1"));
    // The demo backend's guard: the custom header, and Host on its own port.
    assert!(head.contains("\r\nX-Demo-Admin: 1\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nHost: {backend}\r\n")), "{head}");
    assert_eq!(h.commands(), vec![Command::Health]);
    let events = get(h.addr, "/gateway/events").json();
    let msg = events["events"][0]["message"].as_str().unwrap().to_string();
    assert!(
        msg.contains("crashed") && msg.contains("Backend-A"),
        "{msg}"
    );

    // A backend that does not answer is a 502, not a hang.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let h2 = Harness::start(None, "127.0.0.1:9".parse().unwrap(), &dead.to_string());
    let r = post(h2.addr, "/gateway/demo/Backend-A/crash", "");
    assert_eq!(r.status, 502);
    assert!(is_json(&r));
}

#[test]
fn shutdown_joins_workers_and_closes_the_port() {
    let (tx, _rx) = unbounded::<Envelope>();
    let admin = spawn(
        AdminConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            token: None,
            gateway_addr: "127.0.0.1:9".parse().unwrap(),
        },
        tx,
    )
    .unwrap();
    let addr = admin.local_addr();
    assert_eq!(get(addr, "/gateway/events").status, 200);
    admin.shutdown();
    // The listener is gone once shutdown returns: no one accepts any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect(addr) {
            Err(_) => break,
            Ok(mut s) => {
                // The listener may still accept briefly while it tears down; an
                // accepted socket must at least not be served.
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                let _ = s.write_all(b"GET /gateway/events HTTP/1.1\r\nConnection: close\r\n\r\n");
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                assert!(buf.is_empty(), "served after shutdown");
                if std::time::Instant::now() > deadline {
                    break;
                }
            }
        }
    }
}

#[test]
fn browser_guards_refuse_cross_origin_and_rebinding() {
    let h = Harness::simple();
    let origin = format!("http://{}", h.addr);
    let r = http(
        h.addr,
        "POST",
        "/gateway/metrics/reset",
        &[("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(r.status, 403);
    assert!(r.error().contains("cross-origin"));
    let r = http(
        h.addr,
        "POST",
        "/gateway/metrics/reset",
        &[("Origin", &origin)],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // A hostile name resolving to 127.0.0.1 (DNS rebinding) cannot read anything.
    let r = http(
        h.addr,
        "GET",
        "/gateway/health",
        &[("Host", "evil.example:9100")],
        "",
    );
    assert_eq!(r.status, 403);
    assert!(is_json(&r));
    let r = http(
        h.addr,
        "GET",
        "/gateway/health",
        &[("Host", "localhost")],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(h.commands(), vec![Command::ResetMetrics, Command::Health]);
}

#[test]
fn only_one_load_test_at_a_time() {
    // A data plane that accepts one connection and holds it until released,
    // so the first load test is provably still running.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = listener.local_addr().unwrap();
    let (accepted_tx, accepted_rx) = crossbeam_channel::bounded(1);
    let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
    let plane = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        read_head(&mut s);
        accepted_tx.send(()).unwrap();
        release_rx.recv_timeout(Duration::from_secs(20)).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let h = Harness::start(None, gw, "127.0.0.1:9");
    let addr = h.addr;
    let first = thread::spawn(move || post(addr, "/gateway/loadtest", r#"{"requests": 1}"#));
    accepted_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let r = post(h.addr, "/gateway/loadtest", r#"{"requests": 1}"#);
    assert_eq!(r.status, 409);
    assert!(r.error().contains("already running"));
    // Health keeps being served while the load test occupies a worker.
    assert_eq!(get(h.addr, "/gateway/health").status, 200);
    release_tx.send(()).unwrap();
    let r = first.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ok"], 1);
    plane.join().unwrap();
}
