//! The admin port under hostile clients (issue 10, defects 1 and 2): a flood
//! of partial heads, a head that never ends, a trickled head, an oversize
//! head and body. A real admin server on 127.0.0.1:0, a fake gateway thread,
//! raw bytes over std sockets, short configured deadlines so each test takes
//! well under 3 s. Every wait is bounded by a socket timeout or a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use api_gateway_admin::{
    spawn_with, AdminConfig, AdminHandle, AdminLimits, AdminOptions, Command, Envelope, Reply,
};
use crossbeam_channel::unbounded;
use serde_json::json;

struct Admin {
    handle: Option<AdminHandle>,
    addr: SocketAddr,
    fake: Option<JoinHandle<()>>,
}

impl Admin {
    fn start(limits: AdminLimits) -> Admin {
        let (tx, rx) = unbounded::<Envelope>();
        // A fake gateway: health and metrics-reset answered at once.
        let fake = thread::spawn(move || {
            for env in rx {
                let reply = match env.cmd {
                    Command::Health => Reply::Json(json!({"status": "ok", "backends": []})),
                    _ => Reply::Json(json!({"ok": true})),
                };
                let _ = env.reply.try_send(reply);
            }
        });
        let handle = spawn_with(
            AdminConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                token: None,
                gateway_addr: "127.0.0.1:9".parse().unwrap(),
            },
            tx,
            AdminOptions {
                limits,
                ..AdminOptions::default()
            },
        )
        .expect("admin binds");
        let addr = handle.local_addr();
        Admin {
            handle: Some(handle),
            addr,
            fake: Some(fake),
        }
    }

    fn held(&self) -> usize {
        self.handle.as_ref().unwrap().open_connections()
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        if let Some(f) = self.fake.take() {
            let _ = f.join();
        }
    }
}

/// Short deadlines for tests.
fn quick() -> AdminLimits {
    AdminLimits {
        header_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        linger: Duration::from_millis(200),
        ..AdminLimits::default()
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until EOF (or a reset, or the read timeout); returns the bytes.
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

fn roundtrip(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let got = read_all(&mut s);
    (status_of(&got), String::from_utf8_lossy(&got).into_owned())
}

/// Whether the server has closed `s` (EOF or reset) within `wait`.
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

const PARTIAL: &[u8] = b"GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

#[test]
fn a_flood_beyond_the_cap_is_shed_and_the_operator_still_gets_in() {
    // The default cap (64), and the default 5 s header deadline: nothing in
    // this test may wait for a deadline to make room.
    let limits = AdminLimits::default();
    let admin = Admin::start(limits);
    let flood_size = limits.max_connections + 40;
    let mut flood: Vec<TcpStream> = (0..flood_size)
        .map(|_| {
            let mut s = connect(admin.addr);
            s.write_all(PARTIAL).unwrap();
            s
        })
        .collect();
    // Exactly `flood_size - cap` of them are closed, promptly; the admin
    // never holds more than the cap.
    let extra = flood_size - limits.max_connections;
    let started = Instant::now();
    let mut closed = vec![false; flood.len()];
    while closed.iter().filter(|c| **c).count() < extra
        && started.elapsed() < Duration::from_secs(3)
    {
        for (s, c) in flood.iter_mut().zip(closed.iter_mut()) {
            if !*c {
                *c = closed_within(s, Duration::from_millis(1));
            }
        }
        assert!(admin.held() <= limits.max_connections);
    }
    let shed = closed.iter().filter(|c| **c).count();
    // Well before the 5 s header deadline: the cap did this, not a timeout.
    assert_eq!(shed, extra, "connections shed by the cap");
    assert_eq!(admin.held(), limits.max_connections);

    // While the rest of the flood is held, a real request is answered at once
    // (it takes the slot of the oldest partial head).
    let asked = Instant::now();
    let (status, text) = roundtrip(
        admin.addr,
        b"GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert!(admin.held() <= limits.max_connections);
    // The flood that remains is still held (not all closed to make room).
    let still_open = flood
        .iter_mut()
        .zip(&closed)
        .filter(|(_, c)| !**c)
        .filter(|(s, _)| !closed_within(s, Duration::from_millis(1)))
        .count();
    assert_eq!(still_open, limits.max_connections - 1);
}

#[test]
fn answering_connections_are_never_evicted_and_a_full_house_sheds_new_ones() {
    // Cap 2, both slots answering slow requests: a third connection is
    // closed at once, and neither slow request is cut off.
    let limits = AdminLimits {
        max_connections: 2,
        ..quick()
    };
    let (tx, rx) = unbounded::<Envelope>();
    let (held_tx, held_rx) = unbounded::<Envelope>();
    // A gateway that holds every command until released.
    let fake = thread::spawn(move || {
        for env in rx {
            held_tx.send(env).unwrap();
        }
    });
    let handle = spawn_with(
        AdminConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            token: None,
            gateway_addr: "127.0.0.1:9".parse().unwrap(),
        },
        tx,
        AdminOptions {
            limits,
            reply_timeout: Duration::from_secs(5),
            ..AdminOptions::default()
        },
    )
    .unwrap();
    let addr = handle.local_addr();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                roundtrip(
                    addr,
                    b"GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                )
            })
        })
        .collect();
    let held: Vec<Envelope> = (0..2)
        .map(|_| held_rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    let mut third = connect(addr);
    let _ = third.write_all(b"GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(closed_within(&third, Duration::from_secs(1)));
    assert_eq!(read_all(&mut third), b"", "shed without an answer");
    for env in held {
        env.reply
            .send(Reply::Json(json!({"status": "ok"})))
            .unwrap();
    }
    for t in slow {
        assert_eq!(t.join().unwrap().0, 200);
    }
    handle.shutdown();
    fake.join().unwrap();
}

#[test]
fn a_partial_head_is_closed_at_the_header_deadline() {
    let limits = quick();
    let admin = Admin::start(limits);
    let mut s = connect(admin.addr);
    let t0 = Instant::now();
    s.write_all(PARTIAL).unwrap();
    let got = read_all(&mut s);
    let took = t0.elapsed();
    assert_eq!(status_of(&got), 408, "{}", String::from_utf8_lossy(&got));
    assert!(took >= limits.header_timeout, "{took:?}");
    assert!(took < limits.header_timeout * 3, "{took:?}");
}

#[test]
fn a_trickled_head_does_not_push_the_deadline() {
    // One byte every 50 ms forever: progress must not extend the deadline.
    let limits = quick();
    let admin = Admin::start(limits);
    let mut s = connect(admin.addr);
    let t0 = Instant::now();
    let mut sent = 0;
    let closed = loop {
        if s.write_all(&PARTIAL[sent % PARTIAL.len()..][..1]).is_err() {
            break true;
        }
        sent += 1;
        if closed_within(&s, Duration::from_millis(50)) {
            break true;
        }
        if t0.elapsed() > limits.header_timeout * 4 {
            break false;
        }
    };
    assert!(
        closed,
        "a trickled head was still open after {:?}",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < limits.header_timeout * 3,
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn an_oversize_head_is_431_after_max_head_bytes() {
    let limits = AdminLimits {
        max_head_bytes: 4096,
        ..quick()
    };
    let admin = Admin::start(limits);
    let mut s = connect(admin.addr);
    let mut reader = s.try_clone().unwrap();
    let answer = thread::spawn(move || read_all(&mut reader));
    s.write_all(PARTIAL).unwrap();
    // Keep writing one long header line until the server closes (or 16 MiB).
    let line = [b'a'; 16 * 1024];
    let mut written = 0usize;
    while written < 16 << 20 && s.write_all(&line).is_ok() {
        written += line.len();
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let got = answer.join().unwrap();
    let text = String::from_utf8_lossy(&got);
    assert_eq!(status_of(&got), 431, "{text}");
    assert!(text.contains("4096"), "{text}");
    // Many fields are the same as one long one.
    let mut many = String::from("GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(roundtrip(admin.addr, many.as_bytes()).0, 431);
}

#[test]
fn bodies_are_capped_framed_and_timed() {
    let limits = quick();
    let admin = Admin::start(limits);
    let max = limits.max_body_bytes;
    // Declared over the cap: 413 before a byte of it is read.
    let head = format!(
        "POST /gateway/metrics/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        max + 1
    );
    let (status, text) = roundtrip(admin.addr, head.as_bytes());
    assert_eq!(status, 413, "{text}");
    // Exactly at the cap is fine (whitespace counts as no body).
    let body = " ".repeat(max);
    let req = format!(
        "POST /gateway/metrics/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {max}\r\n\r\n{body}"
    );
    let (status, text) = roundtrip(admin.addr, req.as_bytes());
    assert_eq!(status, 200, "{text}");
    // Expect: 100-continue gets its interim answer before the body is sent.
    let mut s = connect(admin.addr);
    s.write_all(
        b"POST /gateway/metrics/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"{}").unwrap();
    assert_eq!(status_of(&read_all(&mut s)), 200);
    // Chunked bodies are refused: 411.
    let (status, _) = roundtrip(
        admin.addr,
        b"POST /gateway/metrics/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(status, 411);
    // Conflicting lengths: 400.
    let (status, _) = roundtrip(
        admin.addr,
        b"POST /gateway/metrics/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    );
    assert_eq!(status, 400);
    // Half a body: 408 at the body deadline.
    let mut s = connect(admin.addr);
    let t0 = Instant::now();
    s.write_all(
        b"POST /gateway/metrics/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n{\"a\"",
    )
    .unwrap();
    assert_eq!(status_of(&read_all(&mut s)), 408);
    let took = t0.elapsed();
    assert!(
        took >= limits.body_timeout && took < limits.body_timeout * 3,
        "{took:?}"
    );
}

#[test]
fn garbage_is_400_and_head_requests_get_no_body() {
    let admin = Admin::start(quick());
    let (status, _) = roundtrip(admin.addr, b"\x16\x03\x01 hello\r\n\r\n");
    assert_eq!(status, 400);
    let (status, text) = roundtrip(admin.addr, b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(status, 405);
    assert!(text.ends_with("\r\n\r\n"), "{text}");
}
