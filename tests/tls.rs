//! HTTPS termination (issue 14), over real sockets with a real TLS client
//! (rustls): certificates chosen by SNI (exact, wildcard, default, unknown
//! without a default), TLS 1.2 and 1.3 and the `min_version` floor, ALPN,
//! resumption, keep-alive, big bodies both ways, chunked, plain HTTP to the
//! TLS port, the handshake deadline, many handshakes at once, and
//! `X-Forwarded-Proto`.
//!
//! Certificates are made in the test with rcgen (a CA, leaves signed by it)
//! and written to a temporary directory the test removes.

mod support;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_gateway::Config;
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::CertificateDer;
use rustls::StreamOwned;
use support::pki::{provider, tls_connect, Leaf, Pki, Tls};
use support::*;

fn roundtrip(tls: &mut Tls, raw: &[u8]) -> Response {
    tls.get_mut().write_all(raw).unwrap();
    tls.get_mut().flush().unwrap();
    read_response(tls, raw.starts_with(b"HEAD ")).expect("a response over TLS")
}

fn get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// The gateway with a TLS listener (`tls` is the JSON of its object minus
/// `listen`), one test backend, `extra` top-level fields.
fn gateway(tls: &str, extra: &str) -> (api_gateway::Gateway, TestBackend) {
    let b = TestBackend::start();
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
            "rate_limit": {{"algorithm": "token-bucket", "capacity": 1000000, "refill_per_sec": 1000000}},
            "backends": [{{"name": "b", "addr": "{}"}}],
            "tls": {{"listen": "127.0.0.1:0", {tls}}}{extra}}}"#,
        b.addr
    );
    let c = Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (start(c), b)
}

fn cert_json(l: &Leaf, hosts: &[&str]) -> String {
    let hosts = if hosts.is_empty() {
        String::new()
    } else {
        format!(r#", "hosts": {}"#, serde_json::json!(hosts))
    };
    format!(r#"{{"cert": "{}", "key": "{}"{hosts}}}"#, l.cert, l.key)
}

/// Three certificates: `a.test` exact, `*.w.test` wildcard, and a default.
fn three(pki: &Pki) -> (String, [Leaf; 3]) {
    let a = pki.leaf("a", &["a.test"]);
    let w = pki.leaf("w", &["*.w.test", "deep.x.w.test"]);
    let d = pki.leaf("d", &["default.test", "other.test", "b.w.test"]);
    let json = format!(
        r#""certificates": [{}, {}, {}]"#,
        cert_json(&a, &["a.test"]),
        cert_json(&w, &["*.w.test"]),
        cert_json(&d, &[])
    );
    (json, [a, w, d])
}

fn peer_leaf(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn alert_of(e: &std::io::Error) -> String {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .map(|r| format!("{r:?}"))
        .unwrap_or_else(|| e.to_string())
}

#[test]
fn https_request_is_proxied_with_x_forwarded_proto_https() {
    let pki = Pki::new("xfp");
    let (json, _) = three(&pki);
    let (gw, b) = gateway(&json, "");
    let mut tls = tls_connect(gw.tls_addr().unwrap(), "a.test", pki.client()).unwrap();
    let r = roundtrip(
        &mut tls,
        b"GET /x HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: http\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = b.last_seen();
    assert_eq!(seen.path, "/x");
    assert_eq!(
        seen.headers_named("x-forwarded-proto"),
        ["https"],
        "the client's value is never passed on"
    );
    // The plain listener still serves, and says http.
    let r = request(
        gw.listen_addr(),
        b"GET /y HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(b.last_seen().header("x-forwarded-proto"), Some("http"));
}

#[test]
fn sni_picks_exact_then_wildcard_then_default() {
    let pki = Pki::new("sni");
    let (json, [a, w, d]) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    let addr = gw.tls_addr().unwrap();
    let leaf = |name: &str| peer_leaf(&tls_connect(addr, name, pki.client()).unwrap());
    assert_eq!(leaf("a.test"), a.der);
    assert_eq!(leaf("one.w.test"), w.der);
    // One or more labels before the suffix, as route hosts.
    assert_eq!(leaf("deep.x.w.test"), w.der);
    // Unknown names get the default (valid here for other.test).
    assert_eq!(leaf("other.test"), d.der);
    // No SNI at all: the default.
    let mut no_sni = (*pki.client()).clone();
    no_sni.enable_sni = false;
    let t = tls_connect(addr, "default.test", Arc::new(no_sni)).unwrap();
    assert_eq!(peer_leaf(&t), d.der);
}

#[test]
fn unknown_sni_without_a_default_gets_unrecognized_name() {
    let pki = Pki::new("nodefault");
    let a = pki.leaf("a", &["a.test"]);
    let json = format!(r#""certificates": [{}]"#, cert_json(&a, &["a.test"]));
    let (gw, b) = gateway(&json, "");
    let e = tls_connect(gw.tls_addr().unwrap(), "nobody.test", pki.client()).unwrap_err();
    assert!(
        alert_of(&e).contains("UnrecognisedName"),
        "{}",
        alert_of(&e)
    );
    // The known name still works.
    let mut ok = tls_connect(gw.tls_addr().unwrap(), "a.test", pki.client()).unwrap();
    assert_eq!(roundtrip(&mut ok, &get("a.test", "/")).status, 200);
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn tls_1_2_and_1_3_both_work_and_min_version_1_3_refuses_1_2() {
    let pki = Pki::new("versions");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut tls = tls_connect(
            gw.tls_addr().unwrap(),
            "a.test",
            pki.client_with(&[v], &[b"http/1.1"]),
        )
        .unwrap();
        assert_eq!(tls.get_ref().conn.protocol_version(), Some(v.version));
        assert_eq!(roundtrip(&mut tls, &get("a.test", "/v")).status, 200);
    }
    let (gw13, _b) = gateway(&format!(r#"{json}, "min_version": "1.3""#), "");
    let e = tls_connect(
        gw13.tls_addr().unwrap(),
        "a.test",
        pki.client_with(&[&rustls::version::TLS12], &[b"http/1.1"]),
    )
    .unwrap_err();
    assert!(alert_of(&e).contains("ProtocolVersion"), "{}", alert_of(&e));
}

#[test]
fn alpn_offers_http_1_1_only() {
    let pki = Pki::new("alpn");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    let addr = gw.tls_addr().unwrap();
    let tls = tls_connect(
        addr,
        "a.test",
        pki.client_with(rustls::ALL_VERSIONS, &[b"h2", b"http/1.1"]),
    )
    .unwrap();
    assert_eq!(tls.get_ref().conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let e = tls_connect(
        addr,
        "a.test",
        pki.client_with(rustls::ALL_VERSIONS, &[b"h2"]),
    )
    .unwrap_err();
    assert!(
        alert_of(&e).contains("NoApplicationProtocol"),
        "{}",
        alert_of(&e)
    );
    // No ALPN at all is fine (HTTP/1.1 is assumed).
    let mut tls = tls_connect(addr, "a.test", pki.client_with(rustls::ALL_VERSIONS, &[])).unwrap();
    assert_eq!(roundtrip(&mut tls, &get("a.test", "/")).status, 200);
}

#[test]
fn twenty_keep_alive_requests_on_one_tls_connection_and_resumption() {
    let pki = Pki::new("keepalive");
    let (json, _) = three(&pki);
    let (gw, b) = gateway(&json, "");
    let cfg = pki.client();
    let mut tls = tls_connect(gw.tls_addr().unwrap(), "a.test", cfg.clone()).unwrap();
    for i in 0..20 {
        let r = roundtrip(&mut tls, &get("a.test", &format!("/n/{i}")));
        assert_eq!(r.status, 200, "request {i}");
    }
    assert_eq!(b.connections(), 1, "one pooled backend connection");
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 20);
    // A second connection with the same client config resumes the session.
    let again = tls_connect(gw.tls_addr().unwrap(), "a.test", cfg).unwrap();
    assert_eq!(
        again.get_ref().conn.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}

#[test]
fn eight_mib_both_ways_and_chunked_through_tls() {
    let pki = Pki::new("bodies");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    let mut tls = tls_connect(gw.tls_addr().unwrap(), "a.test", pki.client()).unwrap();
    let body = pattern(8 << 20, 3);
    let mut raw = format!(
        "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = roundtrip(&mut tls, &raw);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(hash(&r.body), hash(&body));
    // A chunked request body, then a chunked response, on the same connection.
    let r = roundtrip(
        &mut tls,
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    assert_eq!(r.text(), "hello world");
    let r = roundtrip(&mut tls, &get("a.test", "/chunked?parts=5"));
    assert_eq!(r.text(), "part-0;part-1;part-2;part-3;part-4;");
}

#[test]
fn plain_http_to_the_tls_port_gets_400_and_is_never_proxied() {
    let pki = Pki::new("plain");
    let (json, _) = three(&pki);
    let (gw, b) = gateway(&json, "");
    let r = request(
        gw.tls_addr().unwrap(),
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("HTTPS port"), "{}", r.text());
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn silent_and_garbage_clients_are_closed_at_the_handshake_deadline() {
    let pki = Pki::new("deadline");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(&json, r#", "timeouts": {"handshake_ms": 300}"#);
    let addr = gw.tls_addr().unwrap();
    // A truncated ClientHello record (header says 512 bytes, 5 come).
    let truncated: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03];
    for sent in [&b""[..], truncated] {
        let t0 = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(sent).unwrap();
        // Someone else is served meanwhile.
        let mut tls = tls_connect(addr, "a.test", pki.client()).unwrap();
        assert_eq!(roundtrip(&mut tls, &get("a.test", "/")).status, 200);
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let waited = t0.elapsed();
        assert_eq!(n, 0, "closed without an answer");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "closed after {waited:?}"
        );
    }
}

#[test]
fn two_hundred_concurrent_handshakes() {
    let pki = Pki::new("many");
    let (json, _) = three(&pki);
    let (gw, b) = gateway(&json, "");
    let addr = gw.tls_addr().unwrap();
    let cfg = pki.client();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let mut tls = tls_connect(addr, "a.test", cfg).unwrap();
                roundtrip(&mut tls, &get("a.test", &format!("/c/{i}"))).status
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|&s| s == 200)
        .count();
    assert_eq!(ok, 200);
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 200);
}

#[test]
fn config_errors_name_the_field() {
    let pki = Pki::new("errors");
    let a = pki.leaf("a", &["a.test"]);
    let other = pki.leaf("other", &["o.test"]);
    let base = |tls: &str| {
        format!(
            r#"{{"listen": "127.0.0.1:0", "admin": null, "backends": [{{"addr": "127.0.0.1:1"}}],
                "tls": {{"listen": "127.0.0.1:0", {tls}}}}}"#
        )
    };
    let cases = [
        (
            r#""certificates": [{"cert": "/nonexistent.pem", "key": "/nonexistent.key"}]"#
                .to_string(),
            "tls.certificates[0].cert: cannot read \"/nonexistent.pem\"",
        ),
        (
            format!(
                r#""certificates": [{{"cert": "{}", "key": "{}"}}]"#,
                a.cert, other.key
            ),
            "tls.certificates[0].key:",
        ),
        (
            format!(
                r#""certificates": [{}], "min_version": "1.1""#,
                cert_json(&a, &[])
            ),
            "tls.min_version: must be \"1.2\" or \"1.3\"",
        ),
        (
            format!(
                r#""certificates": [{}, {}]"#,
                cert_json(&a, &["a.test"]),
                cert_json(&other, &["A.test"])
            ),
            "tls.certificates[1].hosts[0]: \"a.test\" is already served by tls.certificates[0]",
        ),
        (
            format!(
                r#""certificates": [{}, {}]"#,
                cert_json(&a, &[]),
                cert_json(&other, &[])
            ),
            "tls.certificates[1]: a second default certificate",
        ),
        (
            r#""certificates": []"#.to_string(),
            "tls.certificates: at least one",
        ),
    ];
    for (tls, want) in cases {
        let e = Config::from_json(&base(&tls)).unwrap_err().0;
        assert!(e.starts_with(want), "{e}\n  wanted: {want}");
    }
    let e = Config::from_json(
        &base(&format!(r#""certificates": [{}]"#, cert_json(&a, &[]))).replace(
            r#""admin": null,"#,
            r#""admin": null, "proxy_protocol": true,"#,
        ),
    )
    .unwrap_err()
    .0;
    assert!(e.starts_with("proxy_protocol:"), "{e}");
}

#[test]
fn certificate_reload_serves_new_handshakes_and_keeps_open_connections() {
    let pki = Pki::new("reload");
    let (json, [a, ..]) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    let addr = gw.tls_addr().unwrap();
    let mut open = tls_connect(addr, "a.test", pki.client()).unwrap();
    assert_eq!(roundtrip(&mut open, &get("a.test", "/1")).status, 200);
    assert_eq!(peer_leaf(&open), a.der);
    // The certificate is renewed on disk: same files, a new key and cert.
    let renewed = pki.leaf("a", &["a.test"]);
    assert_eq!(renewed.cert, a.cert);
    assert_ne!(renewed.der, a.der);
    let reply = gw.command(api_gateway_admin::Command::ReloadTls);
    assert!(
        matches!(reply, api_gateway_admin::Reply::Json(_)),
        "{reply:?}"
    );
    // New handshakes get the new certificate...
    let fresh = tls_connect(addr, "a.test", pki.client()).unwrap();
    assert_eq!(peer_leaf(&fresh), renewed.der);
    // ...and the connection opened before goes on.
    assert_eq!(roundtrip(&mut open, &get("a.test", "/2")).status, 200);
    // A broken file is refused and the current certificates stay.
    std::fs::write(&renewed.key, "not a key").unwrap();
    let reply = gw.command(api_gateway_admin::Command::ReloadTls);
    assert!(
        matches!(reply, api_gateway_admin::Reply::Invalid(_)),
        "{reply:?}"
    );
    let still = tls_connect(addr, "a.test", pki.client()).unwrap();
    assert_eq!(peer_leaf(&still), renewed.der);
}

#[test]
fn a_config_reload_reads_the_certificates_again_under_an_open_connection() {
    use api_gateway::reload::ConfigSource;
    use api_gateway_admin::{Command, Reply};
    let pki = Pki::new("config-reload");
    let (json, [a, ..]) = three(&pki);
    let b = TestBackend::start();
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
            "backends": [{{"name": "b", "addr": "{}"}}],
            "tls": {{"listen": "127.0.0.1:0", {json}}}}}"#,
        b.addr
    );
    let path = std::env::temp_dir().join(format!("tls-config-reload-{}.json", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let (config, source) = ConfigSource::file(&path).unwrap();
    let gw = api_gateway::Gateway::start_with(config, source).unwrap();
    let addr = gw.tls_addr().unwrap();
    let mut open = tls_connect(addr, "a.test", pki.client()).unwrap();
    assert_eq!(roundtrip(&mut open, &get("a.test", "/1")).status, 200);
    assert_eq!(peer_leaf(&open), a.der);
    // Renewed on disk, the config file untouched: the reload reads it.
    let renewed = pki.leaf("a", &["a.test"]);
    match gw.command(Command::ReloadConfig) {
        Reply::Json(v) => assert_eq!(v["not_applied"], serde_json::json!([]), "{v}"),
        other => panic!("{other:?}"),
    }
    let fresh = tls_connect(addr, "a.test", pki.client()).unwrap();
    assert_eq!(peer_leaf(&fresh), renewed.der);
    assert_eq!(roundtrip(&mut open, &get("a.test", "/2")).status, 200);
    assert_eq!(gw.tls_addr(), Some(addr), "the listener stays");
    // An unreadable key refuses the whole reload, naming the field.
    std::fs::write(&renewed.key, "not a key").unwrap();
    match gw.command(Command::ReloadConfig) {
        Reply::Invalid(e) => assert!(e.starts_with("tls.certificates[0]"), "{e}"),
        other => panic!("{other:?}"),
    }
    let still = tls_connect(addr, "a.test", pki.client()).unwrap();
    assert_eq!(peer_leaf(&still), renewed.der);
    assert_eq!(roundtrip(&mut open, &get("a.test", "/3")).status, 200);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn redirect_http_answers_308_to_the_https_url_except_health() {
    let pki = Pki::new("redirect");
    let (json, _) = three(&pki);
    let (gw, b) = gateway(&format!(r#"{json}, "redirect_http": true"#), "");
    let port = gw.tls_addr().unwrap().port();
    let r = request(
        gw.listen_addr(),
        b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: shop.test:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 308);
    let want = format!("https://shop.test:{port}/a/b?x=1&y=2");
    assert_eq!(r.header("location"), Some(want.as_str()));
    // Health checks still get through on plain HTTP.
    let r = request(
        gw.listen_addr(),
        b"GET /health HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Over TLS nothing is redirected.
    let mut tls = tls_connect(gw.tls_addr().unwrap(), "a.test", pki.client()).unwrap();
    assert_eq!(roundtrip(&mut tls, &get("a.test", "/a/b")).status, 200);
}

#[test]
fn handshake_metrics_and_certificate_expiry() {
    let pki = Pki::new("metrics");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    let addr = gw.tls_addr().unwrap();
    for v in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut t = tls_connect(addr, "a.test", pki.client_with(&[v], &[b"http/1.1"])).unwrap();
        assert_eq!(roundtrip(&mut t, &get("a.test", "/")).status, 200);
    }
    let _ = request(
        addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let text = match gw.command(api_gateway_admin::Command::Metrics) {
        api_gateway_admin::Reply::Text(t) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        prom(&text, r#"gateway_tls_handshakes_total{result="ok"}"#),
        2.0
    );
    assert_eq!(
        prom(&text, r#"gateway_tls_handshakes_total{result="not_tls"}"#),
        1.0
    );
    assert_eq!(
        prom(&text, r#"gateway_tls_versions_total{version="1.2"}"#),
        1.0
    );
    assert_eq!(
        prom(&text, r#"gateway_tls_versions_total{version="1.3"}"#),
        1.0
    );
    // rcgen's default validity ends in 4096: far in the future.
    let expiry = text
        .lines()
        .find(|l| l.starts_with("gateway_tls_certificate_expiry_seconds{certificate=\"0\""))
        .expect("an expiry line per certificate");
    let secs: f64 = expiry.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 60.0 * 365.0 * 86_400.0, "{expiry}");
}

/// A TLS backend: answers every request on a connection with
/// `200 tls-backend`, keep-alive; counts connections.
struct TlsBackend {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

fn tls_backend(leaf: &Leaf) -> TlsBackend {
    let certs = vec![leaf.der.clone()];
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&leaf.key).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = connections.clone();
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut s = BufReader::new(StreamOwned::new(conn, sock));
                loop {
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        match std::io::BufRead::read_line(&mut s, &mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.extend_from_slice(line.as_bytes());
                    }
                    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\ntls-backend";
                    if s.get_mut().write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    TlsBackend { addr, connections }
}

/// A gateway in front of one backend whose `tls` object is `tls`.
fn gateway_to(addr: SocketAddr, tls: &str) -> api_gateway::Gateway {
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
            "circuit_breaker": {{"failure_threshold": 100}},
            "backends": [{{"name": "t", "addr": "{addr}", "tls": {tls}}}]}}"#
    );
    start(Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}")))
}

#[test]
fn tls_to_a_backend_verifies_its_certificate() {
    let pki = Pki::new("upstream");
    let leaf = pki.leaf("api", &["api.internal"]);
    let ca_file = pki.dir.join("ca.pem");
    std::fs::write(&ca_file, pki.ca.pem()).unwrap();
    let other = Pki::new("upstream-other");
    let other_ca = other.dir.join("ca.pem");
    std::fs::write(&other_ca, other.ca.pem()).unwrap();
    let b = tls_backend(&leaf);
    let verified = |name: &str, ca: &std::path::Path| {
        format!(
            r#"{{"server_name": "{name}", "ca_file": "{}"}}"#,
            ca.display()
        )
    };
    // The right CA: proxied, and the TLS connection is pooled.
    let gw = gateway_to(b.addr, &verified("api.internal", &ca_file));
    let mut c = Client::connect(gw.listen_addr());
    for _ in 0..3 {
        let r = c.roundtrip(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((r.status, r.text().as_str()), (200, "tls-backend"));
    }
    assert_eq!(b.connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    let once = |tls: &str| {
        let gw = gateway_to(b.addr, tls);
        request(
            gw.listen_addr(),
            b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        )
    };
    // Another CA: the backend cannot prove itself, so 502, never a plaintext send.
    let r = once(&verified("api.internal", &other_ca));
    assert_eq!(r.status, 502, "{}", r.text());
    // The right CA but the wrong name: 502 as well.
    let r = once(&verified("evil.internal", &ca_file));
    assert_eq!(r.status, 502, "{}", r.text());
    // Only an explicit insecure_skip_verify takes any certificate.
    let r = once(r#"{"insecure_skip_verify": true}"#);
    assert_eq!((r.status, r.text().as_str()), (200, "tls-backend"));
}

/// The README's HTTPS example: `examples/https.json` (with its certificate
/// paths, which the README's `openssl` command fills, pointed at a test
/// certificate, and ephemeral ports) loads and serves a request over TLS.
#[test]
fn the_https_example_config_works() {
    let pki = Pki::new("example");
    let leaf = pki.leaf("localhost", &["localhost", "127.0.0.1"]);
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/https.json"))
        .unwrap();
    let b = TestBackend::start();
    let text = text
        .replace("target/tls/localhost.pem", &leaf.cert)
        .replace("target/tls/localhost.key", &leaf.key)
        .replace("127.0.0.1:4000", "127.0.0.1:0")
        .replace("127.0.0.1:4443", "127.0.0.1:0")
        .replace("\"127.0.0.1:4001\"", "null")
        .replace("127.0.0.1:3001", &b.addr.to_string())
        .replace("127.0.0.1:3002", &b.addr.to_string());
    let gw = start(Config::from_json(&text).unwrap_or_else(|e| panic!("{e}")));
    let mut tls = tls_connect(gw.tls_addr().unwrap(), "localhost", pki.client()).unwrap();
    assert_eq!(
        roundtrip(&mut tls, &get("localhost", "/api/users")).status,
        200
    );
}

/// TLS 1.0 and 1.1 are refused. rustls (our client) cannot offer them, so
/// `openssl s_client` does; skipped with a message when openssl is missing,
/// unless `CI` is set (`.ci/run` installs it).
#[test]
fn tls_1_0_and_1_1_are_refused() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required in CI"
        );
        eprintln!("skipped: openssl not installed");
        return;
    }
    let pki = Pki::new("old");
    let (json, _) = three(&pki);
    let (gw, b) = gateway(&json, "");
    let addr = gw.tls_addr().unwrap().to_string();
    for flag in ["-tls1", "-tls1_1"] {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", "a.test", flag])
            .args(["-cipher", "DEFAULT@SECLEVEL=0"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} was accepted:\n{text}");
        assert!(
            !text.contains("BEGIN CERTIFICATE"),
            "{flag} got a certificate:\n{text}"
        );
    }
    // The same tool with TLS 1.2 gets through (the refusal is the version).
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr,
            "-servername",
            "a.test",
            "-tls1_2",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BEGIN CERTIFICATE"), "{text}");
    assert_eq!(b.requests.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// PEM chains and every key encoding the contract names: an RSA key
/// (PKCS#8), an EC key in SEC1 form (`BEGIN EC PRIVATE KEY`, converted
/// with openssl when it is installed), and a certificate file holding the
/// leaf followed by its CA.
#[test]
fn rsa_keys_sec1_ec_keys_and_pem_chains_are_accepted() {
    let pki = Pki::new("keys");
    // RSA: the JWT fixture's 2048-bit PKCS#8 key signs a leaf.
    let rsa_pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt/rsa_private.pem"
    ))
    .unwrap();
    let rsa_key = KeyPair::from_pem_and_sign_algo(&rsa_pem, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["rsa.test".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "rsa");
    let rsa_cert = params.signed_by(&rsa_key, &pki.ca, &pki.ca_key).unwrap();
    let chain = pki.dir.join("rsa-chain.pem");
    std::fs::write(&chain, rsa_cert.pem() + &pki.ca.pem()).unwrap();
    let rsa_key_path = pki.dir.join("rsa.key");
    std::fs::write(&rsa_key_path, &rsa_pem).unwrap();
    let mut certs = vec![format!(
        r#"{{"cert": "{}", "key": "{}", "hosts": ["rsa.test"]}}"#,
        chain.display(),
        rsa_key_path.display()
    )];
    // EC in SEC1 form.
    let ec = pki.leaf("ec", &["ec.test"]);
    let sec1 = pki.dir.join("ec-sec1.key");
    let converted = std::process::Command::new("openssl")
        .args(["ec", "-in", &ec.key, "-out"])
        .arg(&sec1)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if converted {
        let text = std::fs::read_to_string(&sec1).unwrap();
        assert!(text.contains("BEGIN EC PRIVATE KEY"), "{text}");
        certs.push(format!(
            r#"{{"cert": "{}", "key": "{}", "hosts": ["ec.test"]}}"#,
            ec.cert,
            sec1.display()
        ));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required in CI"
        );
        eprintln!("SEC1 case skipped: openssl not installed");
    }
    let (gw, _b) = gateway(&format!(r#""certificates": [{}]"#, certs.join(",")), "");
    let addr = gw.tls_addr().unwrap();
    let mut rsa = tls_connect(addr, "rsa.test", pki.client()).unwrap();
    assert_eq!(peer_leaf(&rsa), *rsa_cert.der());
    assert_eq!(
        rsa.get_ref().conn.peer_certificates().unwrap().len(),
        2,
        "the whole chain is sent"
    );
    assert_eq!(roundtrip(&mut rsa, &get("rsa.test", "/")).status, 200);
    if converted {
        let mut t = tls_connect(addr, "ec.test", pki.client()).unwrap();
        assert_eq!(peer_leaf(&t), ec.der);
        assert_eq!(roundtrip(&mut t, &get("ec.test", "/")).status, 200);
    }
}

/// `wss://`: an Upgrade through the TLS listener becomes a tunnel that
/// carries bytes both ways (the backend echoes them upper-cased).
#[test]
fn upgrade_tunnel_through_tls() {
    let pki = Pki::new("wss");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(&json, "");
    let mut tls = tls_connect(gw.tls_addr().unwrap(), "a.test", pki.client()).unwrap();
    let r = roundtrip(
        &mut tls,
        b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(r.status, 101);
    for msg in [&b"hello"[..], b"through tls"] {
        tls.get_mut().write_all(msg).unwrap();
        tls.get_mut().flush().unwrap();
        let mut got = vec![0u8; msg.len()];
        tls.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.to_ascii_uppercase());
    }
}

/// A graceful shutdown does not wait for connections still in their
/// handshake (nothing is in flight on them): it ends well inside the grace
/// period, and they are closed.
#[test]
fn shutdown_closes_connections_still_handshaking() {
    let pki = Pki::new("shutdown");
    let (json, _) = three(&pki);
    let (gw, _b) = gateway(
        &json,
        r#", "timeouts": {"handshake_ms": 60000, "header_read_ms": 60000, "shutdown_grace_ms": 30000}"#,
    );
    let mut silent = TcpStream::connect(gw.tls_addr().unwrap()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The gateway has accepted it: a full handshake on another connection
    // goes through the same loop after it.
    let mut other = tls_connect(gw.tls_addr().unwrap(), "a.test", pki.client()).unwrap();
    assert_eq!(roundtrip(&mut other, &get("a.test", "/")).status, 200);
    drop(other);
    let t0 = Instant::now();
    gw.shutdown();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t0.elapsed()
    );
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0, "closed");
}
