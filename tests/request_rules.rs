//! Request-level rules over real sockets: paths that could escape a `routes`
//! prefix, protocol upgrades outside `allowed_upgrades`, the gateway's own
//! `X-Forwarded-Proto`, `TRACE`, and access-log lines a request cannot forge.

mod support;

use std::io::Read;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api_gateway::config::AccessLogTarget;
use support::*;

/// Shapes that climb out of `/public/` once a backend normalizes them.
const BYPASS: &[&[u8]] = &[
    b"/public/../echo/internal",
    b"/public/%2e%2e/echo",
    b"/public/%2E%2E/echo",
    b"/public/..%2fecho",
    b"/public/..%2Fecho",
    b"/public/..;/echo",
    b"/public/..;jsessionid=x/echo",
    b"/public/.%2E/x",
    b"/public/%2e./x",
    b"/public/./x",
    b"/public/x/..",
    b"/public/..%3b/echo",
    b"/a/./b",
    b"/a%5c..%5cb",
    b"/public/..%5Cecho",
    b"/a\\b",
    b"/public\\..\\echo",
    b"/public/../echo?q=1",
    b"http://test/public/../echo",
    b"http://test/public/..;/echo",
    b"HTTP://test/public/%2e%2e/echo",
];

/// `GET target` with `Host: test`, on its own connection.
fn get_target(addr: std::net::SocketAddr, target: &[u8]) -> Response {
    let mut raw = b"GET ".to_vec();
    raw.extend_from_slice(target);
    raw.extend_from_slice(b" HTTP/1.1\r\nHost: test\r\n\r\n");
    request(addr, &raw)
}

/// Without routes (the target is forwarded as sent), the whole class is
/// refused with 400 before anything else looks at the path.
#[test]
fn dot_segments_and_encoded_separators_get_400_and_never_reach_the_backend() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let addr = gw.listen_addr();
    for target in BYPASS {
        let r = get_target(addr, target);
        let shown = String::from_utf8_lossy(target);
        assert_eq!(r.status, 400, "{shown}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert!(
            body["error"].as_str().unwrap().starts_with("path contains"),
            "{shown}: {body}"
        );
        assert_eq!(body["status"], 400);
    }
    assert_eq!(backend.paths(), Vec::<String>::new(), "nothing got through");
    assert_eq!(get(addr, "/public/ok").status, 200);
    gw.shutdown();
}

/// With routes, the path is normalized before matching: every bypass shape
/// either is refused (400: a hidden separator, parameters on a dot segment,
/// a climb above the root) or resolves to a path outside `/public/` (404
/// here, as no route takes it). None reaches the backend as a `/public/`
/// request, and what is inside the prefix is forwarded normalized.
#[test]
fn with_routes_bypass_shapes_never_escape_a_prefix() {
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.routes = vec![api_gateway::config::RouteConfig::prefix(0, "/public/")];
    let gw = start(cfg);
    let addr = gw.listen_addr();
    for target in BYPASS {
        let r = get_target(addr, target);
        let shown = String::from_utf8_lossy(target);
        match r.status {
            400 | 404 => {}
            // Inside the prefix after normalization: forwarded as normalized.
            200 => {
                let seen = backend.last_seen().path;
                assert!(
                    seen.starts_with("/public/"),
                    "{shown} reached the backend as {seen}"
                );
                assert!(
                    !seen.contains("/../") && !seen.contains("/./"),
                    "{shown}: {seen}"
                );
            }
            s => panic!("{shown}: status {s}: {}", r.text()),
        }
    }
    for p in backend.paths() {
        assert!(p.starts_with("/public/"), "escaped the prefix: {p}");
    }
    assert_eq!(get(addr, "/public/ok").status, 200);
    assert_eq!(get(addr, "/echo/internal").status, 404);
    gw.shutdown();
}

#[test]
fn paths_that_only_look_close_are_forwarded_unchanged() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let addr = gw.listen_addr();
    let legit = [
        "/a..b",
        "/...",
        "/.well-known/x",
        "/a.b/c",
        "/v1.2/..x/x..",
        "/a/%2e%2e%2e",
        "/a/%252e%252e/b",
        "/search?q=../../etc&next=%2Fhome%5C",
    ];
    for path in legit {
        let r = get(addr, path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), format!("GET {path}"), "{path}");
    }
    assert_eq!(backend.paths(), legit);
    gw.shutdown();
}

#[test]
fn an_upgrade_that_is_not_allowed_is_forwarded_as_a_plain_request() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(
        b"GET /headers HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("upgrade"), None);
    let seen = backend.last_seen();
    for gone in ["upgrade", "connection", "http2-settings"] {
        assert_eq!(seen.header(gone), None, "{gone} reached the backend");
    }
    // No tunnel: the connection still carries HTTP requests.
    let r = c.roundtrip(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "GET /after"));
    gw.shutdown();
}

#[test]
fn a_backend_101_to_a_request_that_did_not_upgrade_is_a_502_not_a_tunnel() {
    // The test backend's /ws answers 101 to any request.
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r =
        c.roundtrip(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(backend.last_seen().header("upgrade"), None);
    gw.shutdown();
}

#[test]
fn of_several_offers_only_the_allowed_ones_are_forwarded() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, WebSocket, TLS/1.2\r\n\r\n",
    );
    assert_eq!(r.status, 101);
    assert_eq!(backend.last_seen().header("upgrade"), Some("WebSocket"));
    c.send(b"still a tunnel");
    let mut got = [0u8; 14];
    c.reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"STILL A TUNNEL");
    // Closed first: shutdown would otherwise give the open tunnel its grace.
    drop(c);
    gw.shutdown();
}

#[test]
fn allowed_upgrades_is_the_whole_list() {
    let backend = TestBackend::start();
    // Nothing allowed: not even a WebSocket may tunnel.
    let mut cfg = config(&[backend.addr]);
    cfg.allowed_upgrades = Vec::new();
    let gw = start(cfg);
    let ws = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(request(gw.listen_addr(), ws).status, 502);
    assert_eq!(backend.last_seen().header("upgrade"), None);
    gw.shutdown();
    // A listed protocol matches case-insensitively.
    let mut cfg = config(&[backend.addr]);
    cfg.allowed_upgrades = vec!["H2C".into()];
    let gw = start(cfg);
    let h2c = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    assert_eq!(request(gw.listen_addr(), h2c).status, 101);
    assert_eq!(backend.last_seen().header("upgrade"), Some("h2c"));
    gw.shutdown();
}

#[test]
fn x_forwarded_proto_is_set_by_the_gateway() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let r = request(
        gw.listen_addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\nx-forwarded-proto: https\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = backend.last_seen();
    let protos: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-proto"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(protos, ["http"]);
    // Without a client value it is there too.
    get(gw.listen_addr(), "/");
    assert_eq!(
        backend.last_seen().header("x-forwarded-proto"),
        Some("http")
    );
    gw.shutdown();
}

#[test]
fn trace_gets_405_with_allow_and_is_never_forwarded() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let r = request(
        gw.listen_addr(),
        b"TRACE /echo HTTP/1.1\r\nHost: a\r\nCookie: secret=1\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], "method not allowed");
    let allow = r.header("allow").expect("a 405 lists what is allowed");
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(
        methods.contains(&"GET") && methods.contains(&"POST"),
        "{allow}"
    );
    assert!(!methods.contains(&"TRACE"), "{allow}");
    assert!(!r.text().contains("secret"), "nothing echoed");
    // A backend that folds method case must not see it either.
    let r = request(gw.listen_addr(), b"trace / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 405);
    // CONNECT's 405 (refused while parsing) carries the same Allow.
    let r = request(
        gw.listen_addr(),
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    );
    assert_eq!((r.status, r.header("allow")), (405, Some(allow)));
    assert_eq!(backend.paths(), Vec::<String>::new());
    gw.shutdown();
}

#[test]
fn access_log_escapes_what_a_request_could_forge_lines_with() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let path = std::env::temp_dir().join(format!(
        "api-gateway-escape-{}-{nanos}.log",
        std::process::id()
    ));
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.access_log = AccessLogTarget::File(path.to_string_lossy().into_owned());
    let gw = start(cfg);
    let addr = gw.listen_addr();
    // httparse lets `"`, `\` and UTF-8 (bytes >= 0x80) into a target; not
    // controls below 0x21 or DEL, which are 400s before a target is known.
    // U+2028 (E2 80 A8) is a line break to some log viewers.
    let forged =
        b"GET /x\"_200_B0_1.0ms_0_forged\"\xc3\xa9\xe2\x80\xa8 HTTP/1.1\r\nHost: a\r\n\r\n";
    let r = request(addr, forged);
    assert_eq!(r.status, 200, "{}", r.text());
    let backslash = b"GET /y\\\"\xc2\x85 HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_eq!(request(addr, backslash).status, 400);

    let read = || std::fs::read(&path).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(3), || read()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            >= 2),
        "log so far: {:?}",
        String::from_utf8_lossy(&read())
    );
    // A few flush intervals later nothing more appears.
    thread::sleep(Duration::from_millis(200));
    let text = read();
    assert!(
        text.iter()
            .all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "raw bytes in the log: {:?}",
        String::from_utf8_lossy(&text)
    );
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        assert_eq!(line.matches('"').count(), 2, "one quoted field: {line}");
    }
    assert!(
        lines[0].contains(r#""GET /x\x22_200_B0_1.0ms_0_forged\x22\xC3\xA9\xE2\x80\xA8" 200 B0 "#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""GET /y\x5C\x22\xC2\x85" 400 - "#),
        "{}",
        lines[1]
    );
    gw.shutdown();
    let _ = std::fs::remove_file(&path);
}
