//! Forwarding behaviour over real sockets: keep-alive and connection reuse,
//! pipelining, chunked bodies with trailers, large bodies intact, bodiless
//! responses, upgrades, header rewriting, interim responses.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;

use support::*;

#[test]
fn keep_alive_reuses_one_backend_connection() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    for i in 0..20 {
        let r = c.roundtrip(format!("GET /n/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("GET /n/{i}"));
        assert_eq!(
            r.header("connection"),
            None,
            "keep-alive is the HTTP/1.1 default"
        );
    }
    assert_eq!(
        backend.connections(),
        1,
        "one client connection, one backend connection"
    );
    assert_eq!(
        backend.requests.load(std::sync::atomic::Ordering::SeqCst),
        20
    );
    drop(c);
    gw.shutdown();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let mut batch = Vec::new();
    for i in 0..10 {
        batch.extend_from_slice(
            format!(
                "GET /slow?ms={} HTTP/1.1\r\nHost: a\r\nX-I: {i}\r\n\r\n",
                (10 - i) * 3
            )
            .as_bytes(),
        );
    }
    batch.extend_from_slice(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
    batch.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    c.send(&batch);
    for _ in 0..10 {
        assert_eq!(c.read(false).text(), "slow");
    }
    assert_eq!(c.read(false).text(), "hello");
    let last = c.read(false);
    assert_eq!(last.text(), "GET /last");
    assert_eq!(last.header("connection"), Some("close"));
    assert!(c.is_closed());
    gw.shutdown();
}

#[test]
fn chunked_request_and_response_with_trailers() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(
        b"POST /headers HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["body_len"], 11);
    assert_eq!(v["trailers"][0], serde_json::json!(["X-Trailer", "t1"]));
    let seen = backend.last_seen();
    assert_eq!(seen.body, b"hello world");
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));

    let r = c.roundtrip(b"GET /chunked?parts=5 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(r.chunked, "chunked response passes through chunked");
    assert_eq!(r.text(), "part-0;part-1;part-2;part-3;part-4;");
    assert_eq!(
        r.trailers,
        vec![("X-Checksum".to_string(), hash(&r.body).to_string())]
    );
    assert_eq!(r.header("trailer"), None, "Trailer is hop-by-hop");
    // Still usable afterwards.
    assert_eq!(
        c.roundtrip(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
            .text(),
        "GET /after"
    );
    gw.shutdown();
}

#[test]
fn eight_mebibytes_intact_both_ways() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let body = pattern(8 << 20, 42);
    let mut c = Client::connect(gw.listen_addr());
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut w = c.stream().try_clone().unwrap();
    let to_send = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(&to_send).unwrap();
    });
    let r = c.read(false);
    writer.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert_eq!(hash(&r.body), hash(&body));
    assert_eq!(hash(&backend.last_seen().body), hash(&body));

    // The same bytes as a chunked upload in uneven chunks.
    let mut w = c.stream().try_clone().unwrap();
    let to_send = body.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        for piece in to_send.chunks(100_003) {
            w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .unwrap();
            w.write_all(piece).unwrap();
            w.write_all(b"\r\n").unwrap();
        }
        w.write_all(b"0\r\n\r\n").unwrap();
    });
    let r = c.read(false);
    writer.join().unwrap();
    assert_eq!(hash(&r.body), hash(&body));
    gw.shutdown();
}

#[test]
fn head_204_304_have_no_body_and_keep_the_connection() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(b"HEAD /big?n=5000 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5000"));
    let r = c.roundtrip(b"GET /status?code=204 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = c.roundtrip(b"GET /status?code=304 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (304, 0));
    // If any body bytes had leaked, this response would be misread.
    assert_eq!(
        c.roundtrip(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n").text(),
        "GET /next"
    );
    assert_eq!(backend.connections(), 1);
    gw.shutdown();
}

#[test]
fn upgrade_switches_to_a_tunnel() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade"), Some("websocket"));
    assert!(r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    let seen = backend.last_seen();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    for msg in ["hello", "tunnel works", "third"] {
        c.send(msg.as_bytes());
        let mut got = vec![0u8; msg.len()];
        c.reader.read_exact(&mut got).unwrap();
        assert_eq!(got, msg.to_uppercase().as_bytes());
    }
    c.stream().shutdown(Shutdown::Write).unwrap();
    assert!(c.is_closed(), "half-close propagates both ways");
    gw.shutdown();
}

#[test]
fn hop_by_hop_headers_are_stripped_and_forwarding_headers_added() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let r = request(
        gw.listen_addr(),
        b"GET /headers HTTP/1.1\r\nHost: api.example\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-End-To-End: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let seen = backend.last_seen();
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} must not be forwarded");
    }
    assert_eq!(seen.header("host"), Some("api.example"));
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.7, 127.0.0.1")
    );
    // The gateway's own value replaces the client's (it has a plain listener).
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let rid = seen.header("x-request-id").expect("request id added");
    assert_eq!(r.header("x-request-id"), Some(rid));
    for h in [
        "x-gateway",
        "x-backend",
        "x-response-time",
        "x-lb-algorithm",
        "x-circuit-state",
    ] {
        assert!(r.header(h).is_some(), "response header {h} missing");
    }
    assert_eq!(r.header("x-backend"), Some("B0"));
    assert_eq!(r.header("x-circuit-state"), Some("CLOSED"));
    assert!(r.header("x-response-time").unwrap().ends_with("ms"));
    gw.shutdown();
}

#[test]
fn request_id_is_kept_when_valid_and_replaced_when_not() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let r = request(
        gw.listen_addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: client-id-42\r\n\r\n",
    );
    assert_eq!(r.header("x-request-id"), Some("client-id-42"));
    assert_eq!(
        backend.last_seen().header("x-request-id"),
        Some("client-id-42")
    );
    let r = request(
        gw.listen_addr(),
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: bad id\"<script>\r\n\r\n",
    );
    let rid = r.header("x-request-id").unwrap();
    assert!(
        rid.len() == 16 && rid.bytes().all(|b| b.is_ascii_hexdigit()),
        "{rid}"
    );
    gw.shutdown();
}

#[test]
fn expect_100_continue_is_relayed() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.read(false);
    assert_eq!(interim.status, 100);
    c.send(b"data");
    let r = c.read(false);
    assert_eq!((r.status, r.text().as_str()), (200, "data"));
    gw.shutdown();
}

#[test]
fn read_until_close_response_passes_through_and_closes_the_client() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(b"GET /close-delimited HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "until-close body");
    assert_eq!(r.header("connection"), Some("close"));
    gw.shutdown();
}

#[test]
fn http10_client_gets_a_length_delimited_answer() {
    let backend = TestBackend::start();
    let gw = start(config(&[backend.addr]));
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(b"GET /chunked?parts=2 HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(backend.last_seen().version, 0, "a 1.0 request stays 1.0");
    assert_eq!(r.header("connection"), Some("close"));
    gw.shutdown();
}
