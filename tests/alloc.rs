//! The proxy hot path allocates nothing per request in steady state.
//!
//! Method: this test binary's global allocator is `dhat::Alloc`, which
//! counts every allocation in the process (all threads). A gateway (1
//! worker, the full default pipeline: logger, cors, rate-limit,
//! circuit-breaker, proxy) runs in-process in front of a backend, and one
//! keep-alive client drives it. The backend and the client are written to be
//! allocation-free in their loops (raw std sockets, fixed stack buffers,
//! static replies), and the gateway's other threads (control, signal-free)
//! sit blocked in channel receives, so every allocation counted in the
//! measured window is the worker's. After a warm-up that lets reusable
//! vectors reach their steady capacity, the next requests must allocate 0
//! blocks.
//!
//! Kept to one test: only one dhat profiler may run per process.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const WARMUP: usize = 1000;
const MEASURED: usize = 1000;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";
const BODY_LEN: usize = 11;

/// A browser-like request, with an `Origin` so the CORS stage adds headers.
const REQUEST: &[u8] = b"GET /api/items?page=2 HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Origin: https://app.example.com\r\n\
Referer: https://app.example.com/items\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef; theme=dark\r\n\
\r\n";

/// Position just past the first `\r\n\r\n` in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Serves `RESPONSE` to every request head on every connection, with no
/// allocation per request (connections are accepted on a thread each,
/// which allocates only while the gateway opens them: during warm-up).
fn start_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let mut len = 0;
                loop {
                    match s.read(&mut buf[len..]) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => len += n,
                    }
                    // Requests here are bodiless GETs; answer each full head.
                    while let Some(end) = head_end(&buf[..len]) {
                        if s.write_all(RESPONSE).is_err() {
                            return;
                        }
                        buf.copy_within(end..len, 0);
                        len -= end;
                    }
                }
            });
        }
    });
    addr
}

/// One request/response on the keep-alive connection; returns the status.
fn roundtrip(s: &mut TcpStream, buf: &mut [u8]) -> u16 {
    s.write_all(REQUEST).unwrap();
    let mut len = 0;
    loop {
        let n = s.read(&mut buf[len..]).unwrap();
        assert!(n > 0, "gateway closed the connection");
        len += n;
        if let Some(end) = head_end(&buf[..len]) {
            // The gateway keeps the backend's Content-Length framing.
            if len >= end + BODY_LEN {
                assert_eq!(len, end + BODY_LEN, "one response at a time");
                let status = &buf[9..12];
                return status
                    .iter()
                    .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
            }
        }
    }
}

#[test]
fn keep_alive_proxying_allocates_nothing_per_request() {
    let backend = start_backend();
    let mut c = support::config(&[backend]);
    c.workers = 1;
    // The logger stage really writes (escaping every target) into a sink.
    c.access_log = api_gateway::config::AccessLogTarget::File("/dev/null".into());
    let gw = support::start(c);
    let mut client = support::connect(gw.listen_addr());
    let mut buf = [0u8; 16 * 1024];

    // The profile dhat writes on drop goes to the target dir, not the repo.
    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(concat!(env!("CARGO_TARGET_TMPDIR"), "/dhat-heap.json"))
        .build();
    for _ in 0..WARMUP {
        assert_eq!(roundtrip(&mut client, &mut buf), 200);
    }
    let before = dhat::HeapStats::get();
    for _ in 0..MEASURED {
        assert_eq!(roundtrip(&mut client, &mut buf), 200);
    }
    let after = dhat::HeapStats::get();
    assert!(
        before.total_blocks > 0,
        "dhat is counting (warm-up allocates)"
    );
    let blocks = after.total_blocks - before.total_blocks;
    let bytes = after.total_bytes - before.total_bytes;
    eprintln!(
        "{MEASURED} keep-alive requests after {WARMUP} warm-up: {blocks} allocations, {bytes} bytes"
    );
    dhat::assert_eq!(blocks, 0);
    drop(client);
    gw.shutdown();
}
