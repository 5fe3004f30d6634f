//! Issue 10, defect 2: a request head of 64 MiB sent to the admin port
//! before authentication must cost the process no more than the head limit.
//! Alone in its test binary, so no other test moves the peak RSS it reads
//! from /proc/self/status.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use api_gateway_admin::{spawn_with, AdminConfig, AdminLimits, AdminOptions, Envelope};
use crossbeam_channel::unbounded;

/// A `/proc/self/status` field in KiB (0 where unavailable).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_64_mib_header_line_costs_no_memory_and_gets_431() {
    let (tx, _rx) = unbounded::<Envelope>();
    let admin = spawn_with(
        AdminConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            token: Some("s3cret-token".into()),
            gateway_addr: "127.0.0.1:9".parse().unwrap(),
        },
        tx,
        AdminOptions {
            limits: AdminLimits {
                linger: Duration::from_millis(300),
                ..AdminLimits::default()
            },
            ..AdminOptions::default()
        },
    )
    .unwrap();
    // Reset the peak to the current RSS where the kernel allows it, so the
    // high-water mark measures this test only.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = status_kib("VmRSS:");

    let mut s = TcpStream::connect(admin.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = s.try_clone().unwrap();
    let answer = thread::spawn(move || {
        let mut got = Vec::new();
        let _ = reader.read_to_end(&mut got);
        got
    });
    s.write_all(b"GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut written = 0usize;
    // Stop when the server has closed (write error) or at 64 MiB.
    while written < 64 << 20 && s.write_all(&chunk).is_ok() {
        written += chunk.len();
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let got = answer.join().unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");

    let peak = status_kib("VmHWM:");
    let grew_kib = peak.saturating_sub(rss_before);
    eprintln!("sent {written} bytes; peak RSS grew by {grew_kib} KiB");
    // The head buffer is 16 KiB; allow thread stacks and allocator slack,
    // far below the 64 MiB a whole-head reader would need.
    assert!(grew_kib < 8 * 1024, "peak RSS grew by {grew_kib} KiB");
    admin.shutdown();
}
