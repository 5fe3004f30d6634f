//! Backpressure: a client that does not read must not make the gateway
//! buffer the response. Alone in its own test binary, so the process's
//! resident memory reflects only this test.

mod support;

use std::io::Write;

use support::*;

#[test]
fn slow_reader_does_not_grow_gateway_memory() {
    // A 100 MiB response to a client that does not read: the gateway must
    // stop reading from the backend once its fixed buffers and the socket
    // buffers are full, instead of buffering the response.
    const TOTAL: usize = 100 << 20;
    let backend = RawBackend::start(|mut s, _| {
        let _ = read_head(&mut s);
        let _ =
            s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {TOTAL}\r\n\r\n").as_bytes());
        let block = vec![b'x'; 64 * 1024];
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut sent = 0;
        while sent < TOTAL {
            match s.write(&block[..block.len().min(TOTAL - sent)]) {
                Ok(n) => {
                    sent += n;
                    written.store(sent, std::sync::atomic::Ordering::SeqCst);
                    WRITTEN.store(sent, std::sync::atomic::Ordering::SeqCst);
                }
                Err(_) => return,
            }
        }
    });
    let gw = start(config(&[backend.addr]));
    let rss_before = rss_bytes();
    let mut c = Client::connect(gw.listen_addr());
    c.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n");
    // Wait until the backend's writes stall (its progress stops changing).
    let mut last = 0;
    let mut stable = 0;
    assert!(eventually(std::time::Duration::from_secs(20), || {
        let now = WRITTEN.load(std::sync::atomic::Ordering::SeqCst);
        if now == last && now > 0 {
            stable += 1;
        } else {
            stable = 0;
            last = now;
        }
        stable >= 40
    }));
    let stalled_at = WRITTEN.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        stalled_at < 40 << 20,
        "backend wrote {stalled_at} bytes to a client that reads nothing: the gateway is buffering"
    );
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(grown < 32 << 20, "gateway memory grew by {grown} bytes");
    // Now read everything: the response is complete and intact.
    let r = c.read(false);
    assert_eq!(r.body.len(), TOTAL);
    assert!(r.body.iter().all(|&b| b == b'x'));
    gw.shutdown();
}

static WRITTEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}
