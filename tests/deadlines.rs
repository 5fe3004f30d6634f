//! Deadlines versus inactivity timers: a peer that trickles a head makes
//! progress all the time, so the head timeouts must be deadlines counted
//! from a fixed start, never pushed by progress.
//!
//! - `timeouts.header_read_ms`: from the first byte of a request head to
//!   the complete head (408).
//! - `timeouts.backend_response_ms`: from the whole request being with the
//!   backend to the complete (final) response head (504).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// The timeouts the tests configure, and the slack allowed past them: one
/// 50 ms sweep plus scheduling on a shared 2-core machine.
const DEADLINE: Duration = Duration::from_millis(300);
const SLACK: Duration = Duration::from_millis(700);

/// Reads until EOF, a reset, or `limit`; returns the bytes, whether the peer
/// closed, and when the first byte arrived.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool, Option<Instant>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 16 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return (out, true, first),
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                out.extend_from_slice(&buf[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return (out, true, first),
        }
    }
    (out, false, first)
}

/// Reads until `needle` has arrived (returns when), EOF, or `limit`.
fn read_until_seen(
    s: &mut TcpStream,
    needle: &[u8],
    limit: Duration,
) -> (Vec<u8>, Option<Instant>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(needle.len()).any(|w| w == needle) {
                    return (out, Some(Instant::now()));
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    (out, None)
}

/// Writes `bytes` one at a time, `gap` apart, until done or `stop`.
fn dribble(mut w: TcpStream, bytes: Vec<u8>, gap: Duration, stop: Arc<AtomicBool>) {
    for b in bytes {
        if stop.load(Ordering::SeqCst) || w.write_all(&[b]).is_err() {
            return;
        }
        thread::sleep(gap);
    }
}

/// A backend that reads the request head, sends a status line, then one
/// header line every 50 ms for up to 10 s: the head is never complete.
fn trickling_backend(stop: Arc<AtomicBool>) -> RawBackend {
    RawBackend::start(move |mut s, _| {
        if read_head(&mut s).is_none() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        for i in 0..200 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
            if s.write_all(format!("X-Line-{i}: x\r\n").as_bytes())
                .is_err()
            {
                return;
            }
        }
    })
}

#[test]
fn trickled_response_head_is_504_at_the_response_deadline() {
    let stop = Arc::new(AtomicBool::new(false));
    let backend = trickling_backend(stop.clone());
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.backend_response_ms = DEADLINE.as_millis() as u64;
    let gw = start(cfg);
    let mut s = connect(gw.listen_addr());
    let t0 = Instant::now();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (got, at) = read_until_seen(&mut s, b"\r\n\r\n", Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let to_504 = at.map(|f| f - t0);
    eprintln!("time to 504 on a trickled response head: {to_504:?}");
    assert!(
        got.starts_with(b"HTTP/1.1 504 "),
        "no 504 within 5 s: {:?}",
        String::from_utf8_lossy(&got)
    );
    let to_504 = to_504.unwrap();
    assert!(to_504 >= DEADLINE - Duration::from_millis(50), "{to_504:?}");
    assert!(to_504 < DEADLINE + SLACK, "504 late: {to_504:?}");
    // The backend is at fault: its breaker hears about it.
    assert_eq!(gw.snapshot().backends.get(0).breaker.failures(), 1);
    gw.shutdown();
}

#[test]
fn interim_heads_do_not_extend_the_response_deadline() {
    // `102 Processing` every 50 ms is progress too, but not the final head.
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let backend = RawBackend::start(move |mut s, _| {
        if read_head(&mut s).is_none() {
            return;
        }
        for _ in 0..200 {
            if stop2.load(Ordering::SeqCst)
                || s.write_all(b"HTTP/1.1 102 Processing\r\n\r\n").is_err()
            {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.backend_response_ms = DEADLINE.as_millis() as u64;
    let gw = start(cfg);
    let mut s = connect(gw.listen_addr());
    let t0 = Instant::now();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let (got, at) = read_until_seen(&mut s, b"HTTP/1.1 504 ", Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 102 "), "{text:?}");
    let at = at.unwrap_or_else(|| panic!("no 504 within 5 s: {text:?}")) - t0;
    assert!(at < DEADLINE + SLACK, "504 late: {at:?}");
    gw.shutdown();
}

#[test]
fn slow_but_complete_response_head_within_the_deadline_is_served() {
    // Six header lines 30 ms apart (180 ms) fit the 300 ms deadline.
    let backend = RawBackend::start(|mut s, _| {
        if read_head(&mut s).is_none() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        for i in 0..6 {
            thread::sleep(Duration::from_millis(30));
            let _ = s.write_all(format!("X-Line-{i}: x\r\n").as_bytes());
        }
        let _ = s.write_all(b"Content-Length: 2\r\n\r\nok");
    });
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.backend_response_ms = DEADLINE.as_millis() as u64;
    let gw = start(cfg);
    let r = get(gw.listen_addr(), "/slow-head");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"ok");
    gw.shutdown();
}

#[test]
fn response_body_still_times_out_on_silence_only() {
    // Body bytes every 100 ms for 600 ms: twice the 300 ms timeout in
    // total, but never 300 ms of silence, so the stream is not cut.
    let backend = RawBackend::start(|mut s, _| {
        if read_head(&mut s).is_none() {
            return;
        }
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n");
        for _ in 0..6 {
            thread::sleep(Duration::from_millis(100));
            let _ = s.write_all(b"x");
        }
    });
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.backend_response_ms = DEADLINE.as_millis() as u64;
    let gw = start(cfg);
    let r = get(gw.listen_addr(), "/slow-body");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"xxxxxx");
    gw.shutdown();
}

/// Trickles `head` one byte every 20 ms on `s` (after `prefix` sent at
/// once) and returns what came back and how long after the first trickled
/// byte the connection closed.
fn trickle_request_head(s: &mut TcpStream, head: &[u8]) -> (Vec<u8>, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let w = s.try_clone().unwrap();
    let stop2 = stop.clone();
    let bytes = head.to_vec();
    let t0 = Instant::now();
    let dribbler = thread::spawn(move || dribble(w, bytes, Duration::from_millis(20), stop2));
    let (got, closed, _) = read_until_closed(s, Duration::from_secs(5));
    let elapsed = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    dribbler.join().unwrap();
    assert!(closed, "a trickled head kept its connection for 5 s");
    (got, elapsed)
}

#[test]
fn trickled_request_head_is_408_at_the_header_deadline() {
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.header_read_ms = DEADLINE.as_millis() as u64;
    let gw = start(cfg);
    let mut s = connect(gw.listen_addr());
    // 50 bytes/s is steady progress; the head is 200+ bytes (4 s).
    let head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: {}\r\n\r\n",
        "z".repeat(200)
    );
    let (got, elapsed) = trickle_request_head(&mut s, head.as_bytes());
    eprintln!("trickled request head: 408 after {elapsed:?}");
    assert!(
        got.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        elapsed >= DEADLINE - Duration::from_millis(50),
        "{elapsed:?}"
    );
    assert!(elapsed < DEADLINE + SLACK, "408 late: {elapsed:?}");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 0);
    gw.shutdown();
}

#[test]
fn trickled_second_head_on_a_keep_alive_connection_is_408_at_the_header_deadline() {
    // The idle timer between requests is long; the header deadline starts
    // with the first byte of the next head and is not pushed after that.
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.header_read_ms = DEADLINE.as_millis() as u64;
    cfg.timeouts.idle_ms = 10_000;
    let gw = start(cfg);
    let mut c = Client::connect(gw.listen_addr());
    let r = c.roundtrip(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(r.status, 200);
    let head = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: {}\r\n\r\n",
        "z".repeat(200)
    );
    let (got, elapsed) = trickle_request_head(c.stream(), head.as_bytes());
    assert!(
        got.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(elapsed < DEADLINE + SLACK, "408 late: {elapsed:?}");
    assert_eq!(backend.requests.load(Ordering::SeqCst), 1);
    gw.shutdown();
}

/// A backend that reads one request with a `Content-Length` body and
/// answers 200 with the number of body bytes; `closed_early` records that
/// the gateway closed the connection before the body was complete.
fn body_backend(closed_early: Arc<AtomicBool>) -> RawBackend {
    RawBackend::start(move |mut s, _| {
        let Some(head) = read_head(&mut s) else {
            return;
        };
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut got = 0;
        let mut buf = [0u8; 4096];
        while got < len {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {
                    closed_early.store(true, Ordering::SeqCst);
                    return;
                }
                Ok(n) => got += n,
            }
        }
        let body = got.to_string();
        let _ = s.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    })
}

/// Body-rate window for the tests (the default is 10 s).
const RATE_WINDOW_MS: u64 = 300;

fn rate_config(backend: std::net::SocketAddr, min_rate: u64) -> api_gateway::Config {
    let mut cfg = config(&[backend]);
    cfg.limits.min_body_bytes_per_sec = min_rate;
    cfg.tuning.body_rate_window_ms = RATE_WINDOW_MS;
    // The inactivity timer must not be what cuts anyone here.
    cfg.timeouts.backend_response_ms = 10_000;
    cfg.circuit_breaker.failure_threshold = 1;
    cfg
}

/// Sends `head`, then `body` in `chunk`-byte pieces `gap` apart (stopping
/// early if the gateway closes); returns the response read afterwards.
fn upload(
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
    chunk: usize,
    gap: Duration,
) -> (Response, Duration) {
    let mut c = Client::connect(addr);
    let t0 = Instant::now();
    c.send(head.as_bytes());
    let mut w = c.stream().try_clone().unwrap();
    let body = body.to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = thread::spawn(move || {
        for piece in body.chunks(chunk) {
            thread::sleep(gap);
            if stop2.load(Ordering::SeqCst) || w.write_all(piece).is_err() {
                return;
            }
        }
    });
    let r = c.read(false);
    let at = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    if r.status != 200 {
        assert!(
            c.is_closed(),
            "the connection stayed open after {}",
            r.status
        );
    }
    drop(c);
    writer.join().unwrap();
    (r, at)
}

#[test]
fn upload_below_the_minimum_rate_is_408_and_the_backend_connection_is_closed() {
    let closed_early = Arc::new(AtomicBool::new(false));
    let backend = body_backend(closed_early.clone());
    let gw = start(rate_config(backend.addr, 1024));
    // 10 bytes/s: progress every 100 ms, so no inactivity timer fires.
    let (r, at) = upload(
        gw.listen_addr(),
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n",
        &[b'x'; 1000],
        1,
        Duration::from_millis(100),
    );
    eprintln!("10 B/s upload cut with {} after {at:?}", r.status);
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.json()["error"].is_string());
    // Grace window + one judged window, then the next sweep.
    let window = Duration::from_millis(RATE_WINDOW_MS);
    assert!(at >= 2 * window - Duration::from_millis(50), "{at:?}");
    assert!(at < 2 * window + SLACK, "cut late: {at:?}");
    assert!(
        eventually(Duration::from_secs(3), || closed_early
            .load(Ordering::SeqCst)),
        "the backend connection was not closed"
    );
    // The client was slow, not the backend: its breaker (threshold 1) is
    // untouched and the next request is served.
    assert_eq!(gw.snapshot().backends.get(0).breaker.failures(), 0);
    let r = request(
        gw.listen_addr(),
        b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!((r.status, r.text()), (200, "3".into()));
    gw.shutdown();
}

#[test]
fn healthy_upload_with_pauses_shorter_than_the_window_is_not_cut() {
    let closed_early = Arc::new(AtomicBool::new(false));
    let backend = body_backend(closed_early.clone());
    let gw = start(rate_config(backend.addr, 1024));
    // 1,000-byte bursts with 150 ms pauses (window 300 ms): about 6.6 KB/s
    // on average for 1.8 s, six windows.
    let (r, _) = upload(
        gw.listen_addr(),
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 12000\r\n\r\n",
        &[b'x'; 12_000],
        1000,
        Duration::from_millis(150),
    );
    assert_eq!((r.status, r.text()), (200, "12000".into()));
    assert!(!closed_early.load(Ordering::SeqCst));
    gw.shutdown();
}

#[test]
fn zero_min_body_rate_disables_the_check() {
    let closed_early = Arc::new(AtomicBool::new(false));
    let backend = body_backend(closed_early.clone());
    let gw = start(rate_config(backend.addr, 0));
    // 10 bytes/s for a second: over three windows at a rate that 1024
    // would cut.
    let (r, _) = upload(
        gw.listen_addr(),
        "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
        &[b'x'; 10],
        1,
        Duration::from_millis(100),
    );
    assert_eq!((r.status, r.text()), (200, "10".into()));
    gw.shutdown();
}
