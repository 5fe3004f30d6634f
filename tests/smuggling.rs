//! Request framing and rejection rules (RFC 9112 §6.3 and friends), over
//! real sockets: each ambiguous or malformed shape gets its status, a JSON
//! error with the request id, and a closed connection — and never reaches
//! the backend.

mod support;

use std::io::{Read, Write};

use support::*;

fn rejected(raw: &[u8], status: u16) {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(raw);
    assert_eq!(
        r.status,
        status,
        "for {:?}: {}",
        String::from_utf8_lossy(raw),
        r.text()
    );
    let v = r.json();
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(v["request_id"].as_str(), r.header("x-request-id"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed(), "connection must close after {status}");
    assert_eq!(
        backend.requests.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "must not reach the backend"
    );
    gw.shutdown();
}

#[test]
fn content_length_with_transfer_encoding_is_400() {
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn differing_content_lengths_are_400() {
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    );
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
        400,
    );
}

#[test]
fn malformed_content_length_is_400() {
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
        400,
    );
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc",
        400,
    );
}

#[test]
fn non_final_or_unknown_transfer_coding_is_400() {
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        400,
    );
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400,
    );
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        400,
    );
    rejected(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    );
}

#[test]
fn whitespace_before_colon_is_400() {
    rejected(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
        400,
    );
}

#[test]
fn obs_fold_is_400() {
    rejected(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: a\r\n  continued\r\n\r\n",
        400,
    );
}

#[test]
fn bare_cr_is_400() {
    rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\rX-B: 2\r\n\r\n", 400);
}

#[test]
fn nul_in_header_is_400() {
    rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", 400);
}

#[test]
fn host_rules() {
    rejected(b"GET / HTTP/1.1\r\n\r\n", 400);
    rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

#[test]
fn host_outside_the_uri_host_grammar_is_400() {
    // RFC 9112 §3.2: a Host value that is not `uri-host[:port]` MUST get
    // 400; the authority of an absolute-form target (which replaces Host)
    // obeys the same grammar.
    for host in ["a b", "a/b", "user@a", "[::1", "a:b:c", "a:80x"] {
        rejected(
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            400,
        );
    }
    rejected(b"GET http://user@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn valid_host_forms_are_forwarded() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    for host in [
        "A.Example.test:8080",
        "127.0.0.1:1",
        "[::1]:80",
        "a-b_c~d",
        "a:",
        "",
    ] {
        let raw = format!("GET /echo HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let r = request(gw.listen_addr(), raw.as_bytes());
        assert_eq!(r.status, 200, "Host {host:?}: {}", r.text());
        assert_eq!(backend.last_seen().header("host"), Some(host));
    }
    gw.shutdown();
}

#[test]
fn unsupported_version_is_505() {
    rejected(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    rejected(b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505);
}

#[test]
fn oversize_head_is_431() {
    let mut raw = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..400 {
        raw.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    rejected(&raw, 431);
}

#[test]
fn long_uri_is_414() {
    let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(9000));
    rejected(raw.as_bytes(), 414);
}

#[test]
fn declared_body_over_limit_is_413() {
    rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n",
        413,
    );
}

#[test]
fn connect_is_405() {
    rejected(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        405,
    );
}

#[test]
fn garbage_is_400() {
    rejected(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400);
}

#[test]
fn invalid_chunk_size_is_400_and_backend_connection_dropped() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("chunked"));
    assert!(c.is_closed());
    assert_eq!(
        backend.requests.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    gw.shutdown();
}

#[test]
fn chunked_body_over_limit_is_413() {
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.limits.max_body_bytes = 1000;
    let gw = start(cfg);
    let mut c = Client::connect(gw.listen_addr());
    let r =
        c.roundtrip(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n");
    assert_eq!(r.status, 413);
    assert!(c.is_closed());
    gw.shutdown();
}

#[test]
fn pipelined_request_after_a_body_is_not_smuggled() {
    // The body of the first request contains what looks like a request; the
    // backend must see it as body bytes, and exactly two requests in total.
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let inner = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{inner}GET /second HTTP/1.1\r\nHost: a\r\n\r\n",
        inner.len()
    );
    c.send(raw.as_bytes());
    let r1 = c.read(false);
    assert_eq!(r1.status, 200);
    assert_eq!(r1.text(), inner);
    let r2 = c.read(false);
    assert_eq!(r2.text(), "GET /second");
    let paths = backend.paths();
    assert_eq!(paths, vec!["/echo", "/second"]);
    gw.shutdown();
}

#[test]
fn connection_cannot_strip_framing_headers() {
    // `Connection: content-length` must not make the gateway forward a body
    // without its length (the backend would read it as a second request).
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let inner = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let raw = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: {}\r\n\r\n{inner}",
        inner.len()
    );
    let r = c.roundtrip(raw.as_bytes());
    assert_eq!(r.text(), inner);
    let paths = backend.paths();
    assert_eq!(paths, vec!["/echo"]);
    let r = c.roundtrip(b"POST /echo HTTP/1.1\r\nHost: a\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    assert_eq!(r.text(), "abc");
    gw.shutdown();
}

#[test]
fn bytes_a_backend_sends_past_its_response_never_answer_the_next_request() {
    // Connection 1 answers, then appends a second, forged response in the
    // same write (a backend bug, or one that pipelines); every later connection answers honestly. The forged bytes
    // belong to connection 1: the client's next request must get its own
    // answer from a fresh connection, never the forged one.
    let backend = RawBackend::start(|mut s, n| {
        while let Some(head) = read_head(&mut s) {
            let path = String::from_utf8_lossy(&head)
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_string();
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                path.len()
            );
            if n == 1 {
                out.push_str("HTTP/1.1 299 Forged\r\nContent-Length: 6\r\n\r\nforged");
            }
            if s.write_all(out.as_bytes()).is_err() {
                return;
            }
        }
    });
    let gw = start(config(&[backend.addr]));
    // Pipelined, so the session goes straight from one exchange to the
    // next without parking its buffers.
    let mut c = Client::connect(gw.listen_addr());
    c.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\n");
    let r1 = c.read(false);
    assert_eq!((r1.status, r1.text().as_str()), (200, "/one"));
    let r2 = c.read(false);
    assert_eq!((r2.status, r2.text().as_str()), (200, "/two"));
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        2,
        "the connection that sent stray bytes is not reused"
    );
    gw.shutdown();
}

#[test]
fn identical_content_lengths_reach_the_backend_as_one_line() {
    // `5` twice, or `5, 5`, may be accepted (RFC 9110 §8.6), but a hop
    // behind us must never be left to pick among several values: the
    // backend sees exactly one `Content-Length: 5`. The backend echoes the
    // head it read and the body.
    let backend = RawBackend::start(|mut s, _| {
        while let Some(head) = read_head(&mut s) {
            let mut body = [0u8; 5];
            if s.read_exact(&mut body).is_err() {
                return;
            }
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                head.len() + body.len()
            )
            .into_bytes();
            out.extend_from_slice(&head);
            out.extend_from_slice(&body);
            if s.write_all(&out).is_err() {
                return;
            }
        }
    });
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    for raw in [
        &b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /c HTTP/1.1\r\nHost: a\r\ncontent-length: 5,5\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let r = c.roundtrip(raw);
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = r.text();
        let lines: Vec<&str> = seen
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-length:"))
            .collect();
        assert_eq!(lines, ["Content-Length: 5"], "backend saw:\n{seen}");
        assert!(seen.ends_with("\r\n\r\nhello"), "backend saw:\n{seen}");
    }
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the framing stayed in step: one backend connection served all three"
    );
    gw.shutdown();
}
