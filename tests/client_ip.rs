//! The client IP behind another proxy, over real sockets: `trusted_proxies`
//! decides whose `X-Forwarded-For` is believed, PROXY protocol v1/v2 on the
//! listener replaces the TCP peer, and the rate-limit key, the IP-hash
//! balancer, `X-Forwarded-For` and the access log all follow.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api_gateway::config::AccessLogTarget;
use api_gateway::net::cidr::CidrSet;
use api_gateway::Config;
use api_gateway_admin::{BalanceSpec, LimitSpec};

use support::*;

/// One request per client per 10 minutes: the second from the same key is 429.
const ONE: LimitSpec = LimitSpec::FixedWindow {
    limit: 1,
    window_ms: 600_000,
};

fn trusting(backends: &[SocketAddr], trusted: &[&str]) -> Config {
    let mut c = config(backends);
    c.trusted_proxies = CidrSet::parse(trusted).expect("valid blocks");
    c
}

fn with_xff(path: &str, xff: &[&str]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: t\r\n");
    for line in xff {
        r.push_str(&format!("X-Forwarded-For: {line}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A gateway-side close with no HTTP bytes: EOF or a reset, not a timeout.
fn assert_closed_silently(mut s: TcpStream, within: Duration) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!(
            "expected a silent close, got {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ) => {}
        Err(e) => panic!("connection not closed within {within:?}: {e}"),
    }
}

fn temp_log(tag: &str) -> std::path::PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "gw-client-ip-{tag}-{}-{nanos}.log",
        std::process::id()
    ))
}

/// The client field of the access-log line for `path`, once it is written.
fn logged_client(log: &std::path::Path, path: &str) -> String {
    let needle = format!(" {path}\"");
    let mut found = None;
    let ok = eventually(Duration::from_secs(3), || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        found = text
            .lines()
            .find(|l| l.contains(&needle))
            .and_then(|l| l.split(' ').nth(1))
            .map(str::to_string);
        found.is_some()
    });
    assert!(ok, "no access-log line for {path}");
    found.unwrap()
}

// ---------------------------------------------------------------- XFF

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let backend = TestBackend::start();
    let mut c = trusting(&[backend.addr], &["127.0.0.1/32", "10.0.0.0/8"]);
    c.rate_limit.spec = ONE;
    let gw = start(c);
    // One keep-alive connection from the proxy (127.0.0.1) carries many clients.
    let mut proxy = Client::connect(gw.listen_addr());
    let status = |proxy: &mut Client, xff: &[&str]| proxy.roundtrip(&with_xff("/x", xff)).status;
    assert_eq!(status(&mut proxy, &["203.0.113.1"]), 200);
    assert_eq!(status(&mut proxy, &["203.0.113.2"]), 200);
    assert_eq!(status(&mut proxy, &["203.0.113.1"]), 429);
    // A prefix the client wrote itself changes nothing.
    assert_eq!(status(&mut proxy, &["198.51.100.77, 203.0.113.2"]), 429);
    // Trusted hops to the right are skipped, over several lines.
    assert_eq!(
        status(&mut proxy, &["203.0.113.3", "10.0.0.1, 127.0.0.1"]),
        200
    );
    assert_eq!(status(&mut proxy, &["203.0.113.3:4444"]), 429);
    // The proxy's own requests (no XFF) are the proxy's budget.
    assert_eq!(status(&mut proxy, &[]), 200);
    assert_eq!(status(&mut proxy, &[]), 429);
    gw.shutdown();
}

#[test]
fn an_untrusted_peer_cannot_pick_its_budget_with_x_forwarded_for() {
    let backend = TestBackend::start();
    for trusted in [&[][..], &["10.0.0.0/8", "::1"][..]] {
        let mut c = trusting(&[backend.addr], trusted);
        c.rate_limit.spec = ONE;
        let gw = start(c);
        let mut client = Client::connect(gw.listen_addr());
        assert_eq!(
            client.roundtrip(&with_xff("/x", &["203.0.113.1"])).status,
            200
        );
        assert_eq!(
            client.roundtrip(&with_xff("/x", &["203.0.113.2"])).status,
            429,
            "trusted {trusted:?}"
        );
        assert_eq!(client.roundtrip(&with_xff("/x", &[])).status, 429);
        gw.shutdown();
    }
}

#[test]
fn ip_hash_follows_the_forwarded_client() {
    let backends: Vec<TestBackend> = (0..4).map(|_| TestBackend::start()).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let pick = |trusted: &[&str]| -> Vec<String> {
        let mut c = trusting(&addrs, trusted);
        c.load_balancer = BalanceSpec::IpHash;
        let gw = start(c);
        let mut proxy = Client::connect(gw.listen_addr());
        let mut seen = Vec::new();
        for round in 0..2 {
            for i in 1..=16 {
                let r = proxy.roundtrip(&with_xff("/h", &[&format!("203.0.113.{i}")]));
                assert_eq!(r.status, 200);
                let b = r.header("x-backend").expect("x-backend").to_string();
                if round == 0 {
                    seen.push(b);
                } else {
                    assert_eq!(seen[i - 1], b, "client {i} must stick to its backend");
                }
            }
        }
        gw.shutdown();
        seen
    };
    let distinct = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v.len()
    };
    let trusted = pick(&["127.0.0.1"]);
    assert!(distinct(&trusted) >= 2, "clients spread: {trusted:?}");
    let untrusted = pick(&[]);
    assert_eq!(
        distinct(&untrusted),
        1,
        "one peer, one backend: {untrusted:?}"
    );
}

#[test]
fn the_backend_sees_the_peer_appended_to_x_forwarded_for() {
    let backend = TestBackend::start();
    for trusted in [&["127.0.0.1"][..], &[][..]] {
        let gw = start(trusting(&[backend.addr], trusted));
        let mut c = Client::connect(gw.listen_addr());
        assert_eq!(c.roundtrip(&with_xff("/a", &["203.0.113.7"])).status, 200);
        assert_eq!(
            backend.last_seen().header("x-forwarded-for"),
            Some("203.0.113.7, 127.0.0.1")
        );
        assert_eq!(c.roundtrip(&with_xff("/b", &["a", "b, c"])).status, 200);
        assert_eq!(
            backend.last_seen().header("x-forwarded-for"),
            Some("a, b, c, 127.0.0.1")
        );
        assert_eq!(c.roundtrip(&with_xff("/c", &[])).status, 200);
        assert_eq!(
            backend.last_seen().header("x-forwarded-for"),
            Some("127.0.0.1")
        );
        gw.shutdown();
    }
}

#[test]
fn the_access_log_shows_the_forwarded_client() {
    let backend = TestBackend::start();
    let log = temp_log("xff");
    let mut c = trusting(&[backend.addr], &["127.0.0.1"]);
    c.access_log = AccessLogTarget::File(log.to_string_lossy().into_owned());
    let gw = start(c);
    let mut proxy = Client::connect(gw.listen_addr());
    assert_eq!(
        proxy
            .roundtrip(&with_xff("/logged", &["[2001:db8::42]:5000"]))
            .status,
        200
    );
    assert_eq!(logged_client(&log, "/logged"), "2001:db8::42");
    gw.shutdown();
    let _ = std::fs::remove_file(&log);
}

// ---------------------------------------------------------------- PROXY protocol

fn proxied(backends: &[SocketAddr], trusted: &[&str]) -> Config {
    let mut c = trusting(backends, trusted);
    c.proxy_protocol = true;
    c
}

/// A v2 PROXY header for a TCP connection from `src`.
fn v2(src: SocketAddr) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    let mut block = Vec::new();
    match src {
        SocketAddr::V4(a) => {
            h.push(0x11);
            block.extend_from_slice(&a.ip().octets());
            block.extend_from_slice(&[127, 0, 0, 1]);
        }
        SocketAddr::V6(a) => {
            h.push(0x21);
            block.extend_from_slice(&a.ip().octets());
            block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        }
    }
    block.extend_from_slice(&src.port().to_be_bytes());
    block.extend_from_slice(&80u16.to_be_bytes());
    // A TLV the gateway skips (PP2_TYPE_AUTHORITY "t").
    block.extend_from_slice(&[0x02, 0x00, 0x01, b't']);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(&block);
    h
}

/// Sends `header` then a GET for `path` on a fresh connection; returns the
/// status and what the backend saw in X-Forwarded-For.
fn through_proxy(gw: SocketAddr, backend: &TestBackend, header: &[u8], path: &str) -> String {
    let mut c = Client::connect(gw);
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&with_xff(path, &[]));
    let r = c.roundtrip(&bytes);
    assert_eq!(r.status, 200, "{path}");
    let seen = backend.last_seen();
    assert_eq!(seen.path, path);
    seen.header("x-forwarded-for").unwrap_or("").to_string()
}

#[test]
fn proxy_protocol_v1_and_v2_set_the_client_ip() {
    let backend = TestBackend::start();
    let log = temp_log("pp");
    let mut c = proxied(&[backend.addr], &[]);
    c.access_log = AccessLogTarget::File(log.to_string_lossy().into_owned());
    let gw = start(c);
    let addr = gw.listen_addr();
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "/v1-tcp4",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\n".to_vec(),
            "198.51.100.9",
        ),
        (
            "/v1-tcp6",
            b"PROXY TCP6 2001:db8::9 ::1 5555 80\r\n".to_vec(),
            "2001:db8::9",
        ),
        (
            "/v2-tcp4",
            v2("198.51.100.10:6000".parse().unwrap()),
            "198.51.100.10",
        ),
        (
            "/v2-tcp6",
            v2("[2001:db8::10]:6000".parse().unwrap()),
            "2001:db8::10",
        ),
        // UNKNOWN (v1) and LOCAL (v2): the real peer.
        ("/v1-unknown", b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
        (
            "/v2-local",
            b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec(),
            "127.0.0.1",
        ),
    ];
    for (path, header, client) in &cases {
        assert_eq!(
            &through_proxy(addr, &backend, header, path),
            client,
            "{path}"
        );
    }
    for (path, _, client) in &cases {
        assert_eq!(&logged_client(&log, path), client, "{path}");
    }
    // The header comes once per connection; later requests keep its source.
    let mut conn = Client::connect(addr);
    conn.send(b"PROXY TCP4 198.51.100.11 127.0.0.1 5555 80\r\n");
    for path in ["/ka-1", "/ka-2"] {
        assert_eq!(conn.roundtrip(&with_xff(path, &[])).status, 200);
        assert_eq!(
            backend.last_seen().header("x-forwarded-for"),
            Some("198.51.100.11")
        );
    }
    gw.shutdown();
    let _ = std::fs::remove_file(&log);
}

#[test]
fn proxy_source_is_the_peer_that_trusted_proxies_judges() {
    let backend = TestBackend::start();
    let mut c = proxied(&[backend.addr], &["10.0.0.0/8"]);
    c.rate_limit.spec = ONE;
    let gw = start(c);
    let addr = gw.listen_addr();
    let send = |src: &str, xff: &[&str]| {
        let mut conn = Client::connect(addr);
        conn.send(format!("PROXY TCP4 {src} 127.0.0.1 5555 80\r\n").as_bytes());
        conn.roundtrip(&with_xff("/p", xff)).status
    };
    // A trusted balancer (10.1.2.3) forwarding two clients: two budgets.
    assert_eq!(send("10.1.2.3", &["203.0.113.5"]), 200);
    assert_eq!(
        backend.last_seen().header("x-forwarded-for"),
        Some("203.0.113.5, 10.1.2.3")
    );
    assert_eq!(send("10.1.2.3", &["203.0.113.6"]), 200);
    assert_eq!(send("10.9.9.9", &["203.0.113.5"]), 429);
    // An untrusted PROXY source is the client, whatever its XFF says.
    assert_eq!(send("198.51.100.1", &["203.0.113.7"]), 200);
    assert_eq!(send("198.51.100.1", &["203.0.113.8"]), 429);
    gw.shutdown();
}

#[test]
fn a_connection_without_a_valid_proxy_header_is_closed_without_a_response() {
    let backend = TestBackend::start();
    let gw = start(proxied(&[backend.addr], &[]));
    let addr = gw.listen_addr();
    for first in [
        &b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"[..],
        b"PROXY TCP4 198.51.100.9 ::1 5555 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
    ] {
        let mut s = connect(addr);
        s.write_all(first).unwrap();
        assert_closed_silently(s, Duration::from_secs(5));
    }
    assert_eq!(
        backend.requests.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // A valid one still works afterwards.
    let xff = through_proxy(
        addr,
        &backend,
        b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\n",
        "/ok",
    );
    assert_eq!(xff, "198.51.100.9");
    gw.shutdown();
}

#[test]
fn a_proxy_header_split_across_reads_is_reassembled() {
    let backend = TestBackend::start();
    let gw = start(proxied(&[backend.addr], &[]));
    let addr = gw.listen_addr();
    let v1 = b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\n".to_vec();
    let v2h = v2("[2001:db8::77]:1234".parse().unwrap());
    for (header, cuts, want) in [
        (v1, vec![3, 20, 42], "198.51.100.9"),
        (v2h, vec![5, 13, 15, 30], "2001:db8::77"),
    ] {
        let mut bytes = header.clone();
        bytes.extend_from_slice(&with_xff("/split", &[]));
        let mut s = connect(addr);
        let mut from = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            s.write_all(&bytes[from..cut]).unwrap();
            from = cut;
            // A slow balancer: each piece lands in its own read.
            thread::sleep(Duration::from_millis(20));
        }
        let r = read_response(&mut std::io::BufReader::new(s), false).expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(backend.last_seen().header("x-forwarded-for"), Some(want));
    }
    gw.shutdown();
}

#[test]
fn an_incomplete_proxy_header_is_closed_within_header_read_ms() {
    let backend = TestBackend::start();
    let mut c = proxied(&[backend.addr], &[]);
    c.timeouts.header_read_ms = 300;
    let gw = start(c);
    for partial in [
        &b""[..],
        b"PROXY TCP4 198.51",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x01",
    ] {
        let mut s = connect(gw.listen_addr());
        s.write_all(partial).unwrap();
        let t = Instant::now();
        assert_closed_silently(s, Duration::from_secs(5));
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{partial:?} closed after {waited:?}"
        );
    }
    gw.shutdown();
}
