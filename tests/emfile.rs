//! File-descriptor exhaustion: the real binary, started with a tiny
//! `RLIMIT_NOFILE`, is flooded with connections until `accept` fails with
//! EMFILE. It must neither crash nor spin a core on the still-readable
//! listener, and it must serve again once descriptors are free.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::binary::*;
use support::*;

/// One GET on a fresh connection; `None` on any failure (no panic).
fn try_status(addr: SocketAddr) -> Option<u16> {
    use std::io::{BufReader, Write};
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .ok()?;
    read_response(&mut BufReader::new(s), false)
        .ok()
        .map(|r| r.status)
}

#[test]
fn emfile_neither_crashes_nor_spins_and_recovers() {
    let backend = TestBackend::start();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let json = serde_json::json!({
        "listen": addr.to_string(),
        "admin": null,
        "workers": 1,
        "access_log": "off",
        "backends": [{"name": "b", "addr": backend.addr.to_string()}],
        "rate_limit": {"algorithm": "token-bucket", "capacity": 100000, "refill_per_sec": 100000},
    });
    // `ulimit -n 48` in a shell that then becomes the gateway (exec).
    let mut gw = GatewayProcess::spawn("api-gateway-emfile", &json, 48);
    let pid = gw.pid();
    assert!(
        eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
        "gateway did not start"
    );
    assert_eq!(get(addr, "/before").status, 200);

    // Far more connections than descriptors: the kernel completes them into
    // the backlog, the gateway accepts until EMFILE.
    let flood: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(
        flood.len() > 48,
        "the backlog took the flood ({} connections)",
        flood.len()
    );
    // Let it hit EMFILE, then measure CPU over one second of pending accepts.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 20,
        "gateway burned {used} ticks in 1 s at EMFILE: it is spinning on the listener"
    );
    assert!(gw.is_running(), "gateway died at EMFILE");

    // Free the descriptors: the gateway serves again.
    drop(flood);
    assert!(
        eventually(Duration::from_secs(10), || {
            try_status(addr) == Some(200)
        }),
        "gateway did not recover after EMFILE"
    );
    // The flood really hit EMFILE, and it was logged once per episode, not
    // once per 100 ms retry.
    let log = gw.stop();
    assert_logged_once_per_episode(&log, "accept failed", "accepting again");
}
