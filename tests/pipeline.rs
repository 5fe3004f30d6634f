//! The middleware pipeline over real sockets: CORS answered at the gateway,
//! stage order as configuration (and what a reorder changes), rate-limit keys,
//! leaky-bucket shaping in time, live limiter switches under an open
//! keep-alive connection, and the access log (one line per request,
//! rejections included).

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api_gateway::config::{AccessLogTarget, KeySource};
use api_gateway::pipeline::Stage;
use api_gateway::Config;
use api_gateway_admin::{Command, LimitSpec, Reply};

use support::*;

const ORIGIN: &str = "https://app.example";

fn preflight(origin: &str) -> Vec<u8> {
    format!(
        "OPTIONS /api/items HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
    )
    .into_bytes()
}

fn cors_get(origin: &str) -> Vec<u8> {
    format!("GET /api/items HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\r\n").into_bytes()
}

/// Stages by their config names, as a config file lists them.
fn stages(names: &[&str]) -> Vec<Stage> {
    names
        .iter()
        .map(|n| Stage::from_name(n).unwrap_or_else(|| panic!("stage {n}")))
        .collect()
}

/// A config whose limiter is `spec` (the support default is unlimited).
fn limited(backend: &TestBackend, spec: LimitSpec) -> Config {
    let mut c = config(&[backend.addr]);
    c.rate_limit.spec = spec;
    c
}

/// A budget that does not refill during a test (one token per 100 s).
fn budget(capacity: u32) -> LimitSpec {
    LimitSpec::TokenBucket {
        capacity,
        refill_per_sec: 0.01,
    }
}

fn requests(b: &TestBackend) -> usize {
    b.requests.load(Ordering::SeqCst)
}

#[test]
fn cors_preflight_is_answered_at_the_gateway() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let addr = gw.listen_addr();

    let r = request(addr, &preflight(ORIGIN));
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let methods = r.header("Access-Control-Allow-Methods").expect("methods");
    assert!(methods.contains("POST"), "{methods}");
    let headers = r.header("Access-Control-Allow-Headers").expect("headers");
    assert!(headers.contains("Content-Type"), "{headers}");
    assert_eq!(r.header("Access-Control-Max-Age"), Some("600"));
    assert!(r.body.is_empty());
    assert_eq!(requests(&backend), 0, "a preflight never reaches a backend");

    // The actual cross-origin request is proxied and gets the CORS headers.
    let r = request(addr, &cors_get(ORIGIN));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let expose = r.header("Access-Control-Expose-Headers").expect("expose");
    assert!(expose.contains("x-request-id"), "{expose}");
    assert_eq!(requests(&backend), 1);

    // Not a CORS request (no Origin): no CORS headers.
    let r = get(addr, "/api/items");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    gw.shutdown();
}

#[test]
fn cors_restricted_origins_echo_the_allowed_one_only() {
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.cors.allow_origins = vec!["https://good.example".into()];
    let gw = start(cfg);
    let addr = gw.listen_addr();

    let r = request(addr, &cors_get("https://good.example"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://good.example")
    );
    assert!(
        r.headers_named("Vary").iter().any(|v| v.contains("Origin")),
        "an echoed origin must come with Vary: Origin: {r:?}"
    );

    let r = request(addr, &cors_get("https://evil.example"));
    assert_eq!(
        r.status, 200,
        "CORS is enforced by the browser, not by a 403"
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    assert_eq!(r.header("Access-Control-Expose-Headers"), None);
    assert!(
        r.headers_named("Vary").iter().any(|v| v.contains("Origin")),
        "the answer depends on Origin even when it grants nothing: {r:?}"
    );

    // A preflight from a disallowed origin gets no permission (the browser
    // then blocks the actual request), and still never reaches a backend.
    let before = requests(&backend);
    let r = request(addr, &preflight("https://evil.example"));
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    assert_eq!(r.header("Access-Control-Allow-Methods"), None);
    let r = request(addr, &preflight("https://good.example"));
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://good.example")
    );
    assert!(r.header("Access-Control-Allow-Methods").is_some());
    assert_eq!(requests(&backend), before);
    gw.shutdown();
}

#[test]
fn pipeline_order_decides_whether_a_rate_limited_preflight_is_429_or_204() {
    let backend = TestBackend::start();
    let run = |order: &[&str]| -> Vec<Response> {
        let mut cfg = limited(&backend, budget(1));
        cfg.pipeline = stages(order);
        let gw = start(cfg);
        let addr = gw.listen_addr();
        // Spend the client's only token, then send preflights.
        let first = request(addr, &cors_get(ORIGIN));
        assert_eq!(first.status, 200);
        let rs = (0..3).map(|_| request(addr, &preflight(ORIGIN))).collect();
        gw.shutdown();
        rs
    };

    let limited_first = run(&["logger", "rate-limit", "cors", "circuit-breaker", "proxy"]);
    for r in &limited_first {
        assert_eq!(r.status, 429, "rate-limit runs before cors: {r:?}");
        assert!(r.header("Retry-After").is_some());
        assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    }

    let cors_first = run(&["logger", "cors", "rate-limit", "circuit-breaker", "proxy"]);
    for r in &cors_first {
        assert_eq!(r.status, 204, "cors answers before rate-limit: {r:?}");
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(r.header("RateLimit-Limit"), None, "limiter never ran");
    }
    assert_eq!(requests(&backend), 2, "only the two GETs were proxied");
}

#[test]
fn pipeline_without_rate_limit_never_sends_429() {
    let backend = TestBackend::start();
    let mut cfg = limited(&backend, budget(1));
    cfg.pipeline = stages(&["logger", "cors", "circuit-breaker", "proxy"]);
    let gw = start(cfg);
    let mut c = Client::connect(gw.listen_addr());
    for i in 0..15 {
        let r = c.roundtrip(format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("RateLimit-Limit"), None);
    }
    assert_eq!(requests(&backend), 15);
    drop(c);
    gw.shutdown();
}

#[test]
fn rate_limit_keyed_by_api_key_gives_each_key_its_own_budget() {
    let backend = TestBackend::start();
    let mut cfg = limited(&backend, budget(3));
    cfg.rate_limit.key = KeySource::Header("X-API-Key".into());
    let gw = start(cfg);
    let addr = gw.listen_addr();
    let send = |key: Option<&str>| {
        let h = key
            .map(|k| format!("X-API-Key: {k}\r\n"))
            .unwrap_or_default();
        request(
            addr,
            format!("GET /k HTTP/1.1\r\nHost: t\r\n{h}\r\n").as_bytes(),
        )
    };
    // Interleaved, so a shared budget would run out after three requests.
    for remaining in ["2", "1", "0"] {
        for key in [Some("alpha"), Some("beta"), None] {
            let r = send(key);
            assert_eq!(r.status, 200, "{key:?}: {r:?}");
            assert_eq!(r.header("RateLimit-Remaining"), Some(remaining), "{key:?}");
        }
    }
    // Each budget is spent on its own; no key spills into the IP budget.
    for key in [Some("alpha"), Some("beta"), None] {
        let r = send(key);
        assert_eq!(r.status, 429, "{key:?}: {r:?}");
    }
    assert_eq!(requests(&backend), 9);
    gw.shutdown();
}

#[test]
fn leaky_bucket_shapes_a_concurrent_burst_into_even_spacing() {
    // T = 50 ms between releases; a queue of 5 behind the one passed at once.
    let backend = TestBackend::start();
    let gw = start(limited(
        &backend,
        LimitSpec::LeakyBucket {
            capacity: 5,
            leak_per_sec: 20.0,
        },
    ));
    let addr = gw.listen_addr();
    let n = 8;
    let gate = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let gate = gate.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                gate.wait();
                let r =
                    c.roundtrip(format!("GET /shape/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                (r, Instant::now())
            })
        })
        .collect();
    gate.wait();
    let t0 = Instant::now();
    let done: Vec<(Response, Instant)> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let mut ok: Vec<Duration> = done
        .iter()
        .filter(|(r, _)| r.status == 200)
        .map(|(_, at)| at.duration_since(t0))
        .collect();
    let denied: Vec<&(Response, Instant)> = done.iter().filter(|(r, _)| r.status == 429).collect();
    assert_eq!((ok.len(), denied.len()), (6, 2), "{done:?}");
    ok.sort();
    let gaps: Vec<u128> = ok.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    eprintln!("leaky bucket: completions {ok:?}, gaps {gaps:?} ms");
    assert!(
        gaps.iter().all(|&g| g >= 35),
        "releases must be ~50 ms apart: {gaps:?}"
    );
    assert!(
        ok[5] - ok[0] >= Duration::from_millis(225),
        "six releases span 5 x 50 ms: {ok:?}"
    );
    for (r, at) in denied {
        assert!(r.header("Retry-After").unwrap().parse::<u64>().unwrap() >= 1);
        // Denied at once, not after queueing.
        assert!(at.duration_since(t0) < ok[2], "{:?}", at.duration_since(t0));
    }
    gw.shutdown();
}

#[test]
fn switching_the_limiter_live_applies_to_the_next_request_on_an_open_connection() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let req = b"GET /live HTTP/1.1\r\nHost: t\r\n\r\n";
    let r = c.roundtrip(req);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("RateLimit-Limit"), Some("1000000"));

    let switch = |spec: LimitSpec| {
        let reply = gw.command(Command::SetRateLimiter(spec));
        assert!(matches!(reply, Reply::Json(_)), "{reply:?}");
    };
    switch(budget(2));
    for want in [200, 200, 429] {
        let r = c.roundtrip(req);
        assert_eq!(r.status, want, "{r:?}");
        assert_eq!(r.header("RateLimit-Limit"), Some("2"));
        assert_eq!(r.header("Connection"), None, "a 429 keeps the connection");
    }
    switch(LimitSpec::FixedWindow {
        limit: 5,
        window_ms: 60_000,
    });
    let r = c.roundtrip(req);
    assert_eq!(r.status, 200, "the new limiter starts fresh: {r:?}");
    assert_eq!(r.header("RateLimit-Limit"), Some("5"));
    assert_eq!(r.header("RateLimit-Remaining"), Some("4"));
    assert_eq!(backend.connections(), 1, "one client connection throughout");
    drop(c);
    gw.shutdown();
}

/// One access-log line, split into the fields the tests look at.
#[derive(Debug)]
struct LogLine {
    target: String,
    status: u16,
    backend: String,
    request_id: String,
}

fn parse_log(text: &str) -> Vec<LogLine> {
    text.lines()
        .map(|l| {
            // `time client "METHOD path" status backend duration bytes id`
            let (_, rest) = l.split_once('"').expect("quoted target");
            let (target, rest) = rest.split_once('"').expect("quoted target");
            let f: Vec<&str> = rest.split_whitespace().collect();
            assert_eq!(f.len(), 5, "{l}");
            LogLine {
                target: target.to_string(),
                status: f[0].parse().expect("status"),
                backend: f[1].to_string(),
                request_id: f[4].to_string(),
            }
        })
        .collect()
}

#[test]
fn access_log_has_exactly_one_line_per_request_rejections_included() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let path = std::env::temp_dir().join(format!(
        "api-gateway-access-{}-{nanos}.log",
        std::process::id()
    ));
    let backend = TestBackend::start();
    let mut cfg = limited(&backend, budget(2));
    cfg.access_log = AccessLogTarget::File(path.to_string_lossy().into_owned());
    let gw = start(cfg);
    let addr = gw.listen_addr();

    // 200, 200, 429 (budget of 2), and a preflight answered by cors (204).
    let mut sent = Vec::new();
    for i in 0..3 {
        let target = format!("GET /log/{i}");
        sent.push((target.clone(), get(addr, &format!("/log/{i}"))));
    }
    sent.push((
        "OPTIONS /api/items".to_string(),
        request(addr, &preflight(ORIGIN)),
    ));
    let statuses: Vec<u16> = sent.iter().map(|(_, r)| r.status).collect();
    assert_eq!(statuses, [200, 200, 429, 204]);

    let read = || std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(3), || read().lines().count()
            >= sent.len()),
        "log so far: {:?}",
        read()
    );
    // Past a few flush intervals nothing more appears: exactly one line each.
    thread::sleep(Duration::from_millis(300));
    let lines = parse_log(&read());
    assert_eq!(lines.len(), sent.len(), "{lines:?}");
    for (target, r) in &sent {
        let line = lines
            .iter()
            .find(|l| &l.target == target)
            .unwrap_or_else(|| panic!("no line for {target}: {lines:?}"));
        assert_eq!(line.status, r.status, "{line:?}");
        assert_eq!(Some(line.request_id.as_str()), r.header("x-request-id"));
        let backend_name = r.header("x-backend").unwrap_or("-");
        assert_eq!(line.backend, backend_name, "{line:?}");
    }
    assert_eq!(lines.iter().filter(|l| l.backend == "B0").count(), 2);
    gw.shutdown();
    let _ = std::fs::remove_file(&path);
}
