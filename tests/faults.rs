//! Hardening: backend faults, scripted on raw sockets. Whatever a backend
//! does, the client gets a well-formed gateway error (before the response
//! head) or a connection cut short (after it), never a response that looks
//! complete but is not; and every fault counts against the backend's breaker.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use api_gateway::algo::breaker::CircuitState;
use api_gateway::Gateway;
use api_gateway_admin::BreakerSpec;
use socket2::{Domain, Socket, Type};
use support::*;

/// A config whose breaker opens after two failures.
fn fault_config(backend: SocketAddr) -> api_gateway::Config {
    let mut c = config(&[backend]);
    c.circuit_breaker = BreakerSpec {
        failure_threshold: 2,
        window_ms: 60_000,
        open_ms: 60_000,
        ..c.circuit_breaker
    };
    c
}

fn circuit(gw: &Gateway) -> CircuitState {
    let now = gw.shared().clock_now();
    gw.snapshot().backends.get(0).breaker.state(now)
}

/// Reads until EOF, a reset, or `limit`; returns the bytes and whether the
/// connection ended (rather than the limit passing).
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Splits raw response bytes into (status, Content-Length, body bytes).
fn split_response(raw: &[u8]) -> Option<(u16, Option<usize>, usize)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let cl = head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    });
    Some((status, cl, raw.len() - end - 4))
}

/// Two GETs, each answered by the gateway with `status` and a JSON error,
/// then the circuit is open and a third request fails fast with 503.
fn assert_fault(gw: &Gateway, status: u16) {
    for i in 0..2 {
        let r = get(gw.listen_addr(), &format!("/fault{i}"));
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }
    assert_eq!(circuit(gw), CircuitState::Open);
    let t0 = Instant::now();
    let r = get(gw.listen_addr(), "/while-open");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(t0.elapsed() < Duration::from_millis(500));
}

#[test]
fn connection_refused_is_502_and_opens_the_circuit() {
    let gw = start(fault_config(dead_addr()));
    assert_fault(&gw, 502);
    gw.shutdown();
}

/// A listener whose accept queue is full and never drained: further SYNs
/// are dropped, so a connect neither succeeds nor fails.
fn black_hole() -> (Socket, Vec<TcpStream>) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    // Fill the queue; the connects that do not complete are the proof it is full.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(c);
        }
    }
    (s, fillers)
}

#[test]
fn connect_timeout_is_504_and_opens_the_circuit() {
    let (hole, _fillers) = black_hole();
    let addr = hole.local_addr().unwrap().as_socket().unwrap();
    // Reliability check: a fresh connect must hang, not complete.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err(),
        "the backlog did not fill; cannot simulate a connect timeout here"
    );
    let mut cfg = fault_config(addr);
    cfg.timeouts.connect_ms = 300;
    let gw = start(cfg);
    let t0 = Instant::now();
    let r = get(gw.listen_addr(), "/t");
    let elapsed = t0.elapsed();
    eprintln!("connect timeout (300 ms) answered after {elapsed:?}");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(2));
    let r = get(gw.listen_addr(), "/t2");
    assert_eq!(r.status, 504);
    assert_eq!(circuit(&gw), CircuitState::Open);
    gw.shutdown();
}

#[test]
fn reset_mid_response_is_never_presented_as_complete() {
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let mut out = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        out.extend_from_slice(&[b'r'; 5000]);
        let _ = s.write_all(&out);
        thread::sleep(Duration::from_millis(50));
        // SO_LINGER 0: close sends a RST, not a FIN.
        let sock = Socket::from(s);
        let _ = sock.set_linger(Some(Duration::ZERO));
        drop(sock);
    });
    let gw = start(fault_config(backend.addr));
    for i in 0..2 {
        let mut s = connect(gw.listen_addr());
        s.write_all(format!("GET /r{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let (raw, closed) = read_until_closed(&mut s, Duration::from_secs(10));
        assert!(closed, "connection left open after the backend reset");
        let (status, cl, body) = split_response(&raw).expect("a response head");
        // Either the reset beat the head (502), or the head went out and
        // the body is cut short, never padded or declared complete.
        match status {
            502 => {}
            200 => {
                assert_eq!(cl, Some(100_000));
                assert!(body < 100_000, "body complete? {body}");
            }
            s => panic!("unexpected status {s}"),
        }
    }
    assert_eq!(circuit(&gw), CircuitState::Open);
    assert!(eventually(Duration::from_secs(5), || gw
        .shared()
        .metrics
        .connections_open
        .load(Ordering::SeqCst)
        == 0));
    gw.shutdown();
}

#[test]
fn garbage_status_line_is_502() {
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 abc Nonsense\r\nContent-Length: 0\r\n\r\n");
        let _ = read_head(&mut s);
    });
    let gw = start(fault_config(backend.addr));
    assert_fault(&gw, 502);
    gw.shutdown();
}

#[test]
fn non_http_response_is_502() {
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
        let _ = read_head(&mut s);
    });
    let gw = start(fault_config(backend.addr));
    assert_fault(&gw, 502);
    gw.shutdown();
}

#[test]
fn oversize_response_head_is_502() {
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let mut out = b"HTTP/1.1 200 OK\r\n".to_vec();
        // 64 KiB of headers in few lines: the head outgrows the buffer.
        for i in 0..16 {
            out.extend_from_slice(format!("X-Big-{i}: {}\r\n", "h".repeat(4096)).as_bytes());
        }
        out.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
        let _ = s.write_all(&out);
        let _ = read_head(&mut s);
    });
    let gw = start(fault_config(backend.addr));
    assert_fault(&gw, 502);
    gw.shutdown();
}

#[test]
fn response_that_never_ends_is_cut_off() {
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
        // Silence, holding the socket open until the gateway gives up.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    });
    let mut cfg = fault_config(backend.addr);
    cfg.timeouts.backend_response_ms = 300;
    let gw = start(cfg);
    for i in 0..2 {
        let mut s = connect(gw.listen_addr());
        s.write_all(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .unwrap();
        let t0 = Instant::now();
        let (raw, closed) = read_until_closed(&mut s, Duration::from_secs(10));
        let elapsed = t0.elapsed();
        eprintln!("stalled response cut after {elapsed:?}");
        assert!(closed, "client left hanging");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        let (status, cl, body) = split_response(&raw).expect("head");
        assert_eq!((status, cl), (200, Some(1000)));
        assert!(body < 1000);
    }
    // A stalled body is a backend failure too.
    assert_eq!(circuit(&gw), CircuitState::Open);
    gw.shutdown();
}

#[test]
fn silent_backend_is_504() {
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
    });
    let mut cfg = fault_config(backend.addr);
    cfg.timeouts.backend_response_ms = 300;
    let gw = start(cfg);
    assert_fault(&gw, 504);
    gw.shutdown();
}

/// A backend that answers the first request on each connection with
/// keep-alive, then reads the next request head and closes without
/// answering: the stale-pooled-connection race, made deterministic.
/// Records every request line it reads.
fn closes_after_one(seen: Arc<Mutex<Vec<String>>>) -> RawBackend {
    RawBackend::start(move |mut s, _| {
        let Some(h) = read_head(&mut s) else { return };
        seen.lock().unwrap().push(first_line(&h));
        let body = body_len(&h);
        let mut b = vec![0u8; body];
        let _ = s.read_exact(&mut b);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        if let Some(h) = read_head(&mut s) {
            seen.lock().unwrap().push(first_line(&h));
        }
        // Dropped: FIN (or RST if a body is still unread).
    })
}

fn first_line(head: &[u8]) -> String {
    String::from_utf8_lossy(head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn body_len(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

#[test]
fn stale_pooled_connection_get_is_retried_post_is_not() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let backend = closes_after_one(seen.clone());
    let gw = start(config(&[backend.addr]));
    // 1st GET opens connection 1; the 2nd reuses it, the backend drops it
    // unanswered, and the gateway replays the GET once on connection 2.
    assert_eq!(get(gw.listen_addr(), "/one").status, 200);
    let r = get(gw.listen_addr(), "/two");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "GET /one HTTP/1.1",
            "GET /two HTTP/1.1",
            "GET /two HTTP/1.1"
        ]
    );
    // Connection 2 is now pooled; a POST on it meets the same fate, and is
    // not resent: the backend may have acted on it.
    let r = request(
        gw.listen_addr(),
        b"POST /pay HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"].is_string());
    // A later request is a barrier: had the POST been resent, it would have
    // been before this.
    assert_eq!(get(gw.listen_addr(), "/three").status, 200);
    let posts = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("POST"))
        .count();
    assert_eq!(posts, 1, "{:?}", seen.lock().unwrap());
    gw.shutdown();
}

#[test]
fn backend_closing_idle_keep_alive_connection_is_harmless() {
    // The literal case: answer one request keep-alive, then close at once.
    // Whether the gateway notices the FIN in its pool or only on reuse,
    // every GET succeeds.
    let backend = RawBackend::start(|mut s, _| {
        if read_head(&mut s).is_some() {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let gw = start(config(&[backend.addr]));
    for i in 0..20 {
        let r = get(gw.listen_addr(), &format!("/k{i}"));
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    gw.shutdown();
}
