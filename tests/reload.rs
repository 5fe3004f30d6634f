//! Live config reload over real sockets: under load (no request lost, each
//! routed by the config active when it started), refusal of an invalid
//! config, state carried over (limiter budgets, open circuits), removed
//! backends drained, restart-only fields, the redacted config, and SIGHUP
//! against the real binary.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::reload::ConfigSource;
use api_gateway::Gateway;
use api_gateway_admin::{Command, Reply};
use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

/// A config file in the temp dir, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str, doc: &Value) -> ConfigFile {
        let path = std::env::temp_dir().join(format!("reload-{name}-{}.json", std::process::id()));
        let f = ConfigFile(path);
        f.write(doc);
        f
    }

    fn write(&self, doc: &Value) {
        std::fs::write(&self.0, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A gateway started from `file`, as `--config` starts one.
fn start_file(file: &ConfigFile) -> Gateway {
    let (config, source) = ConfigSource::file(&file.0).expect("config is valid");
    Gateway::start_with(config, source).expect("gateway starts")
}

/// The common top of every config here: ephemeral ports, admin on
/// loopback, access log off, a limiter that never limits.
fn base(workers: usize) -> Value {
    json!({
        "listen": "127.0.0.1:0",
        "admin": "127.0.0.1:0",
        "workers": workers,
        "access_log": "off",
        "rate_limit": {"algorithm": "token-bucket", "capacity": 1_000_000, "refill_per_sec": 1_000_000},
    })
}

fn json_of(reply: Reply) -> Value {
    match reply {
        Reply::Json(v) => v,
        other => panic!("expected JSON, got {other:?}"),
    }
}

fn apply(gw: &Gateway, doc: &Value) -> Reply {
    gw.command(Command::ApplyConfig(doc.to_string()))
}

fn admin(gw: &Gateway, method: &str, path: &str, body: &str) -> Response {
    let addr = gw.admin_addr().expect("admin port");
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    request(addr, raw.as_bytes())
}

fn health(gw: &Gateway) -> Value {
    json_of(gw.command(Command::Health))
}

/// One request on a keep-alive connection.
fn get_on(c: &mut Client, path: &str) -> Response {
    c.roundtrip(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
}

// ------------------------------------------------------------ under load

/// Config "X" (even generations) or "Y" (odd ones): Y adds route `/b` and
/// backend `b`. Both stamp their generation on every response of their
/// routes (`X-Gen`), so a response says which config routed it.
fn load_config(gen: u64, a: SocketAddr, b: SocketAddr) -> Value {
    let y = gen % 2 == 1;
    let stamp = json!({"set": {"X-Gen": gen.to_string()}});
    let mut backends = vec![json!({"name": "a", "addr": a.to_string()})];
    let mut routes = vec![
        json!({"name": "main", "path_prefix": "/a", "upstream": "app", "response_headers": stamp}),
    ];
    if y {
        backends.push(json!({"name": "b", "addr": b.to_string()}));
        routes.push(
            json!({"name": "extra", "path_prefix": "/b", "upstream": "app", "response_headers": stamp}),
        );
    }
    let mut doc = base(2);
    doc["upstreams"] =
        json!([{"name": "app", "backends": backends, "load_balancer": "round-robin"}]);
    doc["routes"] = json!(routes);
    doc
}

/// What one client saw of one request.
struct Record {
    /// Reloads acknowledged before the request was written.
    acked_before: u64,
    /// Reloads begun before its response was read in full.
    issued_after: u64,
    path: &'static str,
    status: u16,
    gen: Option<u64>,
    backend: Option<String>,
}

#[test]
fn fifty_reloads_under_load_lose_no_request_and_each_is_routed_by_the_config_of_its_start() {
    const RELOADS: u64 = 50;
    const CLIENTS: usize = 4;
    let (a, b) = (TestBackend::start(), TestBackend::start());
    let file = ConfigFile::new("load", &load_config(0, a.addr, b.addr));
    let gw = start_file(&file);
    let addr = gw.listen_addr();
    let issued = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (issued, acked, done, completed) = (
                issued.clone(),
                acked.clone(),
                done.clone(),
                completed.clone(),
            );
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                let mut seen = Vec::new();
                let mut n = i;
                while !done.load(Ordering::SeqCst) {
                    let path = if n % 2 == 0 { "/a" } else { "/b" };
                    n += 1;
                    let acked_before = acked.load(Ordering::SeqCst);
                    let r = get_on(&mut c, path);
                    let issued_after = issued.load(Ordering::SeqCst);
                    completed.fetch_add(1, Ordering::SeqCst);
                    seen.push(Record {
                        acked_before,
                        issued_after,
                        path,
                        status: r.status,
                        gen: r.header("x-gen").map(|g| g.parse().unwrap()),
                        backend: r.header("x-backend").map(str::to_string),
                    });
                }
                seen
            })
        })
        .collect();
    let started = Instant::now();
    for gen in 1..=RELOADS {
        // Pace reloads by traffic, not by time: some requests between each.
        let before = completed.load(Ordering::SeqCst);
        assert!(
            eventually(WAIT, || completed.load(Ordering::SeqCst) >= before + 40),
            "traffic stalled before reload {gen}"
        );
        issued.store(gen, Ordering::SeqCst);
        // Alternate the trigger: the file (as SIGHUP does) and a body.
        let doc = load_config(gen, a.addr, b.addr);
        let reply = if gen % 2 == 0 {
            file.write(&doc);
            json_of(gw.command(Command::ReloadConfig))
        } else {
            json_of(apply(&gw, &doc))
        };
        assert_eq!(reply["generation"], gen, "{reply}");
        acked.store(gen, Ordering::SeqCst);
    }
    let before = completed.load(Ordering::SeqCst);
    assert!(eventually(WAIT, || completed.load(Ordering::SeqCst) >= before + 10));
    done.store(true, Ordering::SeqCst);
    let records: Vec<Record> = clients
        .into_iter()
        .flat_map(|t| {
            t.join()
                .expect("no client failed (no reset, no torn response)")
        })
        .collect();
    let elapsed = started.elapsed();

    let mut failures = Vec::new();
    for r in &records {
        let window = r.acked_before..=r.issued_after;
        let ok = match (r.path, r.status, r.gen) {
            // `/a` exists in both configs: routed by one active during the
            // request, and to `b` only by a config that has `b`.
            ("/a", 200, Some(g)) => {
                window.contains(&g) && (g % 2 == 1 || r.backend.as_deref() == Some("a"))
            }
            // `/b` exists only in Y (odd generations).
            ("/b", 200, Some(g)) => window.contains(&g) && g % 2 == 1,
            // X was active at some point of the request.
            ("/b", 404, None) => window.clone().any(|g| g % 2 == 0),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{} -> {} gen {:?} backend {:?}, reloads acked before {} issued after {}",
                r.path, r.status, r.gen, r.backend, r.acked_before, r.issued_after
            ));
        }
    }
    let to_b = records
        .iter()
        .filter(|r| r.backend.as_deref() == Some("b"))
        .count();
    eprintln!(
        "reload under load: {} requests on {CLIENTS} keep-alive connections, {RELOADS} reloads, \
         {} failures, {to_b} answered by the backend that comes and goes, in {elapsed:?}",
        records.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(to_b > 0, "backend b never served while present");
    let h = health(&gw);
    assert_eq!(h["generation"], RELOADS);
    assert_eq!(h["config"]["reloads"], json!({"ok": RELOADS, "error": 0}));
    assert_eq!(h["totals"]["status"]["5xx"], 0);
}

// ------------------------------------------------------------ refusal

#[test]
fn an_invalid_config_is_refused_naming_the_field_and_the_old_one_keeps_serving() {
    let a = TestBackend::start();
    let mut doc = base(1);
    doc["upstreams"] =
        json!([{"name": "app", "backends": [{"name": "a", "addr": a.addr.to_string()}]}]);
    doc["routes"] = json!([
        {"name": "one", "path_prefix": "/one", "upstream": "app"},
        {"name": "two", "path_prefix": "/two", "upstream": "app"},
    ]);
    let file = ConfigFile::new("invalid", &doc);
    let gw = start_file(&file);
    let mut c = Client::connect(gw.listen_addr());
    assert_eq!(get_on(&mut c, "/two").status, 200);

    // Through the admin API: 400, the error names the field.
    let mut bad = doc.clone();
    bad["routes"][1]["upstream"] = json!("nowhere");
    let r = admin(&gw, "POST", "/gateway/config", &bad.to_string());
    assert_eq!(r.status, 400, "{}", r.text());
    let err = r.json()["error"].as_str().unwrap().to_string();
    assert!(err.starts_with("routes[1].upstream: "), "{err}");
    // Not JSON at all.
    let r = admin(&gw, "POST", "/gateway/config", "{\"listen\": ");
    assert_eq!(r.status, 400, "{}", r.text());
    // The same through the file: the reload is refused too.
    bad["routes"][0]["path_prefix"] = json!("no-slash");
    file.write(&bad);
    let r = admin(&gw, "POST", "/gateway/config/reload", "");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap().starts_with("routes["),
        "{}",
        r.text()
    );

    // Nothing changed: same generation, same routes, the open connection
    // carries on, the failures are on record.
    assert_eq!(get_on(&mut c, "/two").status, 200);
    assert_eq!(get_on(&mut c, "/one").status, 200);
    let h = health(&gw);
    assert_eq!(h["generation"], 0);
    assert_eq!(h["config"]["reloads"], json!({"ok": 0, "error": 3}));
    assert_eq!(h["config"]["last_reload"]["result"], "error");
    assert!(h["config"]["last_reload"]["at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let events = h["events"].to_string();
    assert!(events.contains("config reload refused"), "{events}");
    let metrics = admin(&gw, "GET", "/metrics", "").text();
    assert_eq!(
        prom(&metrics, "gateway_config_reload_total{result=\"error\"}"),
        3.0
    );
    assert_eq!(prom(&metrics, "gateway_config_generation"), 0.0);
}

// ------------------------------------------------------------ state carried over

/// A gateway whose top-level limiter allows `capacity` requests (no refill
/// to speak of) in front of one backend; `route` adds a route of its own.
fn limited(a: SocketAddr, capacity: u32, route: Option<&str>) -> Value {
    let mut doc = base(1);
    doc["rate_limit"] =
        json!({"algorithm": "token-bucket", "capacity": capacity, "refill_per_sec": 0.001});
    doc["backends"] = json!([{"name": "a", "addr": a.to_string()}]);
    if let Some(r) = route {
        doc["routes"] = json!([
            {"name": r, "path_prefix": format!("/{r}"), "upstream": "default"},
            {"name": "rest", "path_prefix": "/", "upstream": "default"},
        ]);
    }
    doc
}

#[test]
fn a_limiter_keeps_its_budget_across_a_reload_that_leaves_it_unchanged_and_resets_when_it_changes()
{
    let a = TestBackend::start();
    let gw = start_file(&ConfigFile::new("budget", &limited(a.addr, 3, None)));
    let mut c = Client::connect(gw.listen_addr());
    let statuses =
        |c: &mut Client, n: usize| -> Vec<u16> { (0..n).map(|_| get_on(c, "/x").status).collect() };
    assert_eq!(statuses(&mut c, 4), [200, 200, 200, 429]);
    // Same limiter, other changes (a route is added): the budget is spent.
    let reply = json_of(apply(&gw, &limited(a.addr, 3, Some("extra"))));
    assert_eq!(reply["changes"], "routes +extra +rest", "{reply}");
    assert_eq!(statuses(&mut c, 1), [429]);
    assert_eq!(
        get_on(&mut c, "/extra/1").status,
        429,
        "routes follow the same limiter"
    );
    // The same file again: still spent.
    json_of(apply(&gw, &limited(a.addr, 3, Some("extra"))));
    assert_eq!(statuses(&mut c, 1), [429]);
    // New parameters: a new limiter, a fresh budget.
    json_of(apply(&gw, &limited(a.addr, 2, Some("extra"))));
    assert_eq!(statuses(&mut c, 3), [200, 200, 429]);
}

#[test]
fn an_open_circuit_stays_open_across_a_reload_and_a_changed_address_starts_fresh() {
    // A backend that fails every request (the demo breaker counts a 500).
    let bad = RawBackend::start(|mut s, _| {
        while read_head(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 500 X\r\nContent-Length: 4\r\n\r\nfail");
        }
    });
    let ok = TestBackend::start();
    let doc = |addr: SocketAddr, route: bool| {
        let mut d = base(1);
        d["backends"] = json!([{"name": "a", "addr": addr.to_string()}]);
        d["circuit_breaker"] = json!({"failure_threshold": 2, "window_ms": 60_000,
            "open_ms": 600_000, "failure_statuses": [500, 502, 503, 504]});
        if route {
            d["routes"] = json!([{"name": "all", "path_prefix": "/", "upstream": "default"}]);
        }
        d
    };
    let gw = start_file(&ConfigFile::new("circuit", &doc(bad.addr, false)));
    let mut c = Client::connect(gw.listen_addr());
    assert_eq!(get_on(&mut c, "/1").status, 500);
    assert_eq!(get_on(&mut c, "/2").status, 500);
    let state = |gw: &Gateway| health(gw)["backends"][0]["circuitState"].clone();
    assert_eq!(state(&gw), "OPEN");
    assert_eq!(
        get_on(&mut c, "/3").status,
        503,
        "the open circuit fails fast"
    );
    // A reload that changes something else keeps the circuit OPEN.
    let reply = json_of(apply(&gw, &doc(bad.addr, true)));
    assert_eq!(reply["changes"], "routes +all");
    assert_eq!(state(&gw), "OPEN");
    assert_eq!(get_on(&mut c, "/4").status, 503);
    // The same name at another address is another backend: CLOSED.
    json_of(apply(&gw, &doc(ok.addr, true)));
    assert_eq!(state(&gw), "CLOSED");
    assert_eq!(get_on(&mut c, "/5").status, 200);
    assert_eq!(
        health(&gw)["upstream"]["openCircuits"],
        0,
        "its budget slot was freed"
    );
}

#[test]
fn a_removed_backend_gets_no_new_request_and_its_request_in_flight_completes() {
    let (a, b) = (TestBackend::start(), TestBackend::start());
    let doc = |addr: SocketAddr, name: &str| {
        let mut d = base(1);
        d["backends"] = json!([{"name": name, "addr": addr.to_string()}]);
        d
    };
    let gw = start_file(&ConfigFile::new("drain", &doc(a.addr, "a")));
    let addr = gw.listen_addr();
    // A pooled connection to `a`, then a slow request in flight on it.
    assert_eq!(get(addr, "/warm").status, 200);
    let slow = thread::spawn(move || {
        let mut c = Client::connect(addr);
        let r = get_on(&mut c, "/slow?ms=600");
        // The same client connection goes on under the new config.
        let next = get_on(&mut c, "/after");
        (r, next)
    });
    assert!(eventually(WAIT, || a
        .paths()
        .iter()
        .any(|p| p.starts_with("/slow"))));
    let reply = json_of(apply(&gw, &doc(b.addr, "b")));
    assert_eq!(
        reply["changes"], "backends +default/b -default/a",
        "{reply}"
    );
    // New requests go to `b` only, while `a`'s request is still running.
    for i in 0..5 {
        let r = get(addr, &format!("/new{i}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-backend"), Some("b"));
    }
    let (r, next) = slow.join().unwrap();
    assert_eq!(r.status, 200, "the request in flight finished on `a`");
    assert_eq!(r.header("x-backend"), Some("a"));
    assert_eq!(next.header("x-backend"), Some("b"));
    let to_a: Vec<String> = a.paths();
    assert_eq!(to_a, ["/warm", "/slow?ms=600"], "nothing new reached `a`");
    let h = health(&gw);
    let names: Vec<&str> = h["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b"]);
    let events = h["events"].to_string();
    assert!(
        events.contains("backends +default/b -default/a"),
        "{events}"
    );
}

// ------------------------------------------------------------ fields and visibility

#[test]
fn restart_only_fields_are_reported_not_applied_and_the_rest_applies() {
    let a = TestBackend::start();
    let mut doc = base(1);
    doc["backends"] = json!([{"name": "a", "addr": a.addr.to_string()}]);
    let gw = start_file(&ConfigFile::new("restart", &doc));
    let listen = gw.listen_addr();
    let mut next = doc.clone();
    next["listen"] = json!("127.0.0.1:1");
    next["workers"] = json!(3);
    next["limits"] = json!({"max_body_bytes": 5});
    let reply = json_of(apply(&gw, &next));
    assert_eq!(
        reply["not_applied"],
        json!(["listen", "workers"]),
        "{reply}"
    );
    // Still where it was, with the new body limit in force.
    let r = request(
        listen,
        b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
    );
    assert_eq!(r.status, 413);
    let h = health(&gw);
    assert_eq!(h["listen"], listen.to_string());
    assert_eq!(h["workers"], 1);
    assert_eq!(
        h["config"]["last_reload"]["not_applied"],
        json!(["listen", "workers"])
    );
    let shown = admin(&gw, "GET", "/gateway/config", "").json();
    assert_eq!(
        shown["listen"],
        listen.to_string(),
        "the document shows what runs"
    );
    assert_eq!(shown["limits"]["max_body_bytes"], 5);
}

#[test]
fn the_active_config_is_shown_with_every_secret_redacted() {
    let a = TestBackend::start();
    let mut doc = base(1);
    doc["admin_token"] = json!("admin-token-0123456789abcdef");
    doc["backends"] = json!([{"name": "a", "addr": a.addr.to_string()}]);
    doc["consumers"] = json!([{"name": "alice", "api_keys": ["alice-key-1", "alice-key-2"]}]);
    doc["routes"] = json!([
        {"name": "api", "path_prefix": "/api", "upstream": "default",
         "auth": {"api_key": {}, "jwt": {"algorithms": ["HS256"], "secret": "jwt-secret-xyz"}}},
    ]);
    let gw = start_file(&ConfigFile::new("secrets", &doc));
    let addr = gw.admin_addr().unwrap();
    let raw = format!(
        "GET /gateway/config HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer admin-token-0123456789abcdef\r\nConnection: close\r\n\r\n"
    );
    let r = request(addr, raw.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    for secret in [
        "admin-token-0123456789abcdef",
        "alice-key-1",
        "alice-key-2",
        "jwt-secret-xyz",
    ] {
        assert!(!text.contains(secret), "{secret} is shown: {text}");
    }
    let shown = r.json();
    assert_eq!(shown["consumers"][0]["name"], "alice");
    assert_eq!(
        shown["consumers"][0]["api_keys"],
        json!(["<redacted>", "<redacted>"])
    );
    assert_eq!(shown["routes"][0]["auth"]["jwt"]["secret"], "<redacted>");
    assert_eq!(shown["routes"][0]["name"], "api");
}

#[test]
fn a_reload_replaces_live_switches_with_the_files_settings_and_says_so() {
    let a = TestBackend::start();
    let mut doc = base(1);
    doc["backends"] = json!([{"name": "a", "addr": a.addr.to_string()}]);
    let file = ConfigFile::new("overrides", &doc);
    let gw = start_file(&file);
    let r = admin(&gw, "POST", "/gateway/rate-limiter/fixed-window", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin(&gw, "POST", "/gateway/load-balancer/least-connections", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(health(&gw)["rateLimiter"]["algorithm"], "fixed-window");
    let r = admin(&gw, "POST", "/gateway/config/reload", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["overrides_replaced"],
        json!(["rate limiter", "load balancer of upstream default"])
    );
    let h = health(&gw);
    assert_eq!(h["rateLimiter"]["algorithm"], "token-bucket");
    assert_eq!(h["loadBalancer"]["algorithm"], "round-robin");
    let events = h["events"].to_string();
    assert!(
        events.contains("live overrides replaced by the config"),
        "{events}"
    );
}

#[test]
fn a_gateway_without_a_file_explains_how_to_reload() {
    let a = TestBackend::start();
    let gw = start(config(&[a.addr]));
    match gw.command(Command::ReloadConfig) {
        Reply::Invalid(e) => assert!(e.contains("POST /gateway/config"), "{e}"),
        other => panic!("{other:?}"),
    }
    // Its document is rendered from the config, and a body applies.
    let shown = json_of(gw.command(Command::Config));
    assert_eq!(shown["backends"][0]["name"], "B0");
    let mut doc = base(1);
    doc["backends"] = json!([{"name": "B0", "addr": a.addr.to_string()}]);
    assert_eq!(json_of(apply(&gw, &doc))["generation"], 1);
    assert_eq!(get(gw.listen_addr(), "/x").status, 200);
}

// ------------------------------------------------------------ the binary

#[test]
fn sighup_reloads_the_config_file_of_the_real_binary() {
    use support::binary::{free_port, GatewayProcess};
    let a = TestBackend::start();
    let (port, admin_port) = (free_port(), free_port());
    let doc = |with_route: bool| {
        let mut d = json!({
            "listen": format!("127.0.0.1:{port}"),
            "admin": format!("127.0.0.1:{admin_port}"),
            "workers": 1,
            "access_log": "off",
            "backends": [{"name": "a", "addr": a.addr.to_string()}],
        });
        d["routes"] = if with_route {
            json!([{"name": "new", "path_prefix": "/new", "upstream": "default"}])
        } else {
            json!([{"name": "old", "path_prefix": "/old", "upstream": "default"}])
        };
        d
    };
    let mut p = GatewayProcess::spawn("sighup", &doc(false), 1024);
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let admin_addr: SocketAddr = format!("127.0.0.1:{admin_port}").parse().unwrap();
    let health = || {
        let raw = format!(
            "GET /gateway/health HTTP/1.1\r\nHost: {admin_addr}\r\nConnection: close\r\n\r\n"
        );
        std::net::TcpStream::connect(admin_addr)
            .ok()
            .map(|_| request(admin_addr, raw.as_bytes()).json())
    };
    assert!(
        eventually(WAIT, || health().is_some()),
        "the binary came up"
    );
    assert_eq!(get(listen, "/old/x").status, 200);
    assert_eq!(get(listen, "/new/x").status, 404);
    p.rewrite(&doc(true));
    p.signal("HUP");
    assert!(
        eventually(WAIT, || health().is_some_and(|h| h["generation"] == 1)),
        "SIGHUP reloaded the file"
    );
    assert!(p.is_running());
    assert_eq!(get(listen, "/new/x").status, 200);
    assert_eq!(get(listen, "/old/x").status, 404);
    // A broken file: refused, logged at `warn` (SIGHUP has no other
    // answer), and the running config stays.
    let mut broken = doc(true);
    broken["routes"][0]["upstream"] = json!("missing");
    p.rewrite(&broken);
    p.signal("HUP");
    assert!(
        eventually(WAIT, || health()
            .is_some_and(|h| h["config"]["reloads"]["error"] == 1)),
        "the refusal is on record"
    );
    assert_eq!(health().unwrap()["generation"], 1);
    assert_eq!(get(listen, "/new/x").status, 200);
    let log = p.stop();
    assert_eq!(
        log.matches("config reload refused, old config kept: routes[0].upstream")
            .count(),
        1,
        "{log}"
    );
}
