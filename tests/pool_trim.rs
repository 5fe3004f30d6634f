//! Peak memory is given back: after a slowloris flood (thousands of
//! connections each holding a partial 15 KB head, so each holds a 16 KiB
//! buffer) goes away, the buffer pool frees the spares that stay unused for
//! a trim period, down to its floor (64 with nothing in use). Alone in its
//! own test binary, so the process's resident memory reflects this test.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use api_gateway::conn::buffer::MIN_SPARE;
use support::*;

/// VmRSS of this process (gateway and test client), bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// The soft `RLIMIT_NOFILE`, from /proc (no unsafe `getrlimit`).
fn fd_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

#[test]
fn spare_buffers_are_trimmed_after_a_slowloris_flood() {
    // Each connection costs two descriptors here (client and gateway side),
    // so on a low `ulimit -n` the flood shrinks instead of failing.
    let n = 2000.min(fd_limit().saturating_sub(200) / 2);
    assert!(n >= 200, "ulimit -n too low for this test");
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.timeouts.header_read_ms = 60_000;
    cfg.tuning.pool_trim_ms = 500;
    let gw = start(cfg);
    let m = &gw.shared().metrics;
    let spare = || m.buffer_pool_spare.load(Ordering::SeqCst);
    let in_use = || m.buffer_pool_in_use.load(Ordering::SeqCst);
    let rss_before = rss_bytes();

    let partial = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}",
        "p".repeat(15 * 1024)
    );
    let mut flood: Vec<TcpStream> = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect(gw.listen_addr());
        s.write_all(partial.as_bytes()).unwrap();
        flood.push(s);
    }
    assert!(
        eventually(Duration::from_secs(20), || in_use() >= n as u64),
        "the gateway holds {} buffers for {n} partial heads",
        in_use()
    );
    let rss_peak = rss_bytes();
    drop(flood);
    // The pool keeps the returned buffers (up to 1,024 per worker) for at
    // least one whole trim period (hysteresis), then frees the ones that
    // period left unused. Track the most it held meanwhile.
    let mut kept = 0;
    // Wait for the pool's own gauges to show every buffer back (they are
    // published on the worker's sweep, which can come after the last close
    // is counted): judging the trim on a not-yet-published gauge would see
    // the stale 0 spares of the flood.
    assert!(eventually(Duration::from_secs(10), || {
        kept = kept.max(spare());
        m.connections_open.load(Ordering::SeqCst) == 0 && in_use() == 0
    }));
    let closed_at = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || {
            kept = kept.max(spare());
            spare() <= MIN_SPARE as u64
        }),
        "spare buffers stuck at {}",
        spare()
    );
    assert!(kept > MIN_SPARE as u64, "spares after the flood: {kept}");
    let trimmed_after = closed_at.elapsed();
    // Give the allocator a moment; then see what the process gave back.
    std::thread::sleep(Duration::from_millis(200));
    let rss_after = rss_bytes();
    eprintln!(
        "{n} partial 15 KB heads: pool spares {kept} -> {} in {trimmed_after:?}; \
         VmRSS before {} MB, peak {} MB, after trim {} MB",
        spare(),
        rss_before >> 20,
        rss_peak >> 20,
        rss_after >> 20
    );
    // Traffic afterwards is served as before.
    assert_eq!(get(gw.listen_addr(), "/after").status, 200);
    gw.shutdown();
}
