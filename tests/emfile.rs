//! File-descriptor exhaustion: the real binary, started with a tiny
//! `RLIMIT_NOFILE`, is flooded with connections until `accept` fails with
//! EMFILE. It must neither crash nor spin a core on the still-readable
//! listener, and it must serve again once descriptors are free.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

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
    let config =
        std::env::temp_dir().join(format!("api-gateway-emfile-{}.json", std::process::id()));
    let json = serde_json::json!({
        "listen": addr.to_string(),
        "admin": null,
        "workers": 1,
        "access_log": "off",
        "backends": [{"name": "b", "addr": backend.addr.to_string()}],
        "rate_limit": {"algorithm": "token-bucket", "capacity": 100000, "refill_per_sec": 100000},
    });
    std::fs::write(&config, json.to_string()).unwrap();
    // `ulimit -n 48` in a shell that then becomes the gateway (exec).
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -n 48 && exec {} --config {}",
            env!("CARGO_BIN_EXE_api-gateway"),
            config.display()
        ))
        .env("API_GATEWAY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let pid = child.id();
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
    assert!(
        child.try_wait().unwrap().is_none(),
        "gateway died at EMFILE"
    );

    // Free the descriptors: the gateway serves again.
    drop(flood);
    assert!(
        eventually(Duration::from_secs(10), || {
            try_status(addr) == Some(200)
        }),
        "gateway did not recover after EMFILE"
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_file(&config);
    assert!(out.status.success(), "exit status {}", out.status);
    // The flood really hit EMFILE, and it was logged once per episode, not
    // once per 100 ms retry.
    let log = String::from_utf8_lossy(&out.stderr);
    let failed = log.matches("accept failed").count();
    let again = log.matches("accepting again").count();
    assert!(failed >= 1 && again >= 1, "{log}");
    assert!(
        failed <= again + 1,
        "one warning per episode, not per retry:\n{log}"
    );
}
