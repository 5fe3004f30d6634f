//! Graceful shutdown of the real binary: SIGTERM lets an in-flight response
//! finish intact, refuses new connections, and exits 0 within the grace
//! period; with only idle keep-alive connections it exits at once.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// A free loopback port: bind :0, read the port, release it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The gateway binary as a child process; killed if a test fails midway.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    config: PathBuf,
}

impl Gateway {
    fn spawn(backend: SocketAddr, grace_ms: u64) -> Gateway {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let config = std::env::temp_dir().join(format!(
            "api-gateway-shutdown-{}-{}.json",
            std::process::id(),
            addr.port()
        ));
        let json = serde_json::json!({
            "listen": addr.to_string(),
            "admin": null,
            "access_log": "off",
            "backends": [{"name": "slow", "addr": backend.to_string()}],
            "rate_limit": {"algorithm": "token-bucket", "capacity": 1000, "refill_per_sec": 1000},
            "timeouts": {"shutdown_grace_ms": grace_ms},
        });
        std::fs::write(&config, json.to_string()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_api-gateway"))
            .arg("--config")
            .arg(&config)
            .env("API_GATEWAY_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn gateway");
        assert!(
            eventually(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
            "gateway did not start listening"
        );
        Gateway {
            child,
            addr,
            config,
        }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if start.elapsed() > limit {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

const PARTS: usize = 10;
const PART: usize = 1000;

/// A backend streaming a 10,000-byte response in ten parts, 100 ms apart.
fn slow_backend() -> RawBackend {
    RawBackend::start(|mut s, _| {
        s.set_nodelay(true).ok();
        while read_head(&mut s).is_some() {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                PARTS * PART
            );
            if s.write_all(head.as_bytes()).is_err() {
                return;
            }
            for i in 0..PARTS {
                thread::sleep(Duration::from_millis(100));
                if s.write_all(&[b'a' + i as u8; PART]).is_err() {
                    return;
                }
            }
        }
    })
}

#[test]
fn sigterm_finishes_in_flight_response_refuses_new_and_exits_0() {
    let backend = slow_backend();
    let mut gw = Gateway::spawn(backend.addr, 5000);
    let mut c = Client::connect(gw.addr);
    c.send(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n");
    // Wait for the response to be under way (its first body part).
    let mut first = [0u8; 1];
    let reader = &mut c.reader;
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        reader.read_exact(&mut first).unwrap();
        head.push(first[0] as char);
    }
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first[0], b'a');
    let t0 = Instant::now();
    gw.sigterm();
    // New connections are refused once the signal is handled.
    assert!(
        eventually(Duration::from_secs(2), || TcpStream::connect(gw.addr)
            .is_err()),
        "still accepting after SIGTERM"
    );
    let refused_after = t0.elapsed();
    // The in-flight response completes intact.
    let mut body = vec![b'a'];
    let mut rest = vec![0u8; PARTS * PART - 1];
    reader
        .read_exact(&mut rest)
        .expect("in-flight response completed");
    body.extend_from_slice(&rest);
    for (i, part) in body.chunks(PART).enumerate() {
        assert!(
            part.iter().all(|&b| b == b'a' + i as u8),
            "part {i} corrupt"
        );
    }
    assert!(
        head.to_ascii_lowercase().contains("connection: close") || c.is_closed(),
        "connection kept open during shutdown"
    );
    let status = gw
        .wait_exit(Duration::from_secs(5))
        .expect("no exit within the 5 s grace period");
    eprintln!(
        "new connections refused {refused_after:?} after SIGTERM; exit {status} after {:?}",
        t0.elapsed()
    );
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigterm_with_only_idle_keep_alive_connections_exits_promptly() {
    let backend = TestBackend::start();
    let mut gw = Gateway::spawn(backend.addr, 10_000);
    let mut idle: Vec<Client> = (0..5)
        .map(|i| {
            let mut c = Client::connect(gw.addr);
            let r = c.roundtrip(format!("GET /i{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            assert_eq!(r.status, 200);
            c
        })
        .collect();
    let t0 = Instant::now();
    gw.sigterm();
    let status = gw
        .wait_exit(Duration::from_secs(1))
        .expect("idle keep-alive connections held the gateway past 1 s");
    eprintln!("idle shutdown: exit {status} after {:?}", t0.elapsed());
    assert_eq!(status.code(), Some(0));
    for c in &mut idle {
        assert!(c.is_closed());
    }
}
