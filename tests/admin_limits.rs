//! The admin port of a whole gateway under hostile clients (issue 10,
//! defect 1), and the demo backends' crash switch (issue 10, smaller ones):
//! - a flood of partial admin heads leaves the admin answering and the data
//!   plane serving;
//! - the real binary under a tiny `RLIMIT_NOFILE`: the admin's accept loop
//!   survives EMFILE (no crash, no spin, one warning per episode) and
//!   answers again once descriptors are free;
//! - `POST /admin/crash` on a demo backend needs `X-Demo-Admin: 1` and its
//!   own port, so neither a page nor a request through the gateway flips it.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use api_gateway::demo::DemoBackend;
use support::binary::*;
use support::*;

/// One admin GET on a fresh connection; `None` on any failure (no panic).
fn admin_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// Whether the peer has closed `s` (EOF or reset) within `wait`.
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

#[test]
fn an_admin_flood_leaves_the_admin_and_the_data_plane_serving() {
    let backend = TestBackend::start();
    let mut c = config(&[backend.addr]);
    c.admin = Some("127.0.0.1:0".parse().unwrap());
    let gw = start(c);
    let admin = gw.admin_addr().unwrap();
    // 2,000 partial heads made 2,008 threads before; now the cap holds.
    let flood: Vec<TcpStream> = (0..400)
        .filter_map(|_| {
            let mut s = TcpStream::connect(admin).ok()?;
            s.write_all(b"GET /gateway/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .ok()?;
            Some(s)
        })
        .collect();
    assert_eq!(flood.len(), 400);
    let t0 = Instant::now();
    let mut shed = 0;
    while shed < 400 - 64 && t0.elapsed() < Duration::from_secs(3) {
        shed = flood
            .iter()
            .filter(|s| closed_within(s, Duration::from_millis(1)))
            .count();
    }
    assert!(
        shed >= 400 - 64,
        "only {shed} of 400 partial heads were shed"
    );
    // The operator still gets in, and the data plane is untouched.
    assert_eq!(admin_status(admin, "/gateway/health"), Some(200));
    for i in 0..20 {
        assert_eq!(get(gw.listen_addr(), &format!("/during/{i}")).status, 200);
    }
    assert_eq!(admin_status(admin, "/metrics"), Some(200));
    // At most the cap is held, and the held ones are still open: the flood
    // did not make the admin close everything.
    let held = flood
        .iter()
        .filter(|s| !closed_within(s, Duration::from_millis(1)))
        .count();
    assert!((60..=64).contains(&held), "{held} flood connections held");
}

#[test]
fn the_admin_survives_emfile_and_answers_again() {
    let backend = TestBackend::start();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let json = serde_json::json!({
        "listen": addr.to_string(),
        "admin": admin.to_string(),
        "workers": 1,
        "access_log": "off",
        "backends": [{"name": "b", "addr": backend.addr.to_string()}],
        "rate_limit": {"algorithm": "token-bucket", "capacity": 100000, "refill_per_sec": 100000},
    });
    // Fewer descriptors than the admin's cap of 64, so the flood reaches EMFILE.
    let mut gw = GatewayProcess::spawn("api-gateway-admin-emfile", &json, 48);
    let pid = gw.pid();
    assert!(
        eventually(Duration::from_secs(10), || admin_status(
            admin,
            "/gateway/health"
        ) == Some(200)),
        "admin did not start"
    );

    // Idle connections (no bytes, so none is answered): the admin accepts
    // until EMFILE, the rest wait in the backlog.
    let flood: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(admin).ok())
        .collect();
    assert!(
        flood.len() > 48,
        "the backlog took the flood ({})",
        flood.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 20,
        "gateway burned {used} ticks in 1 s at EMFILE: the admin is spinning"
    );
    assert!(gw.is_running(), "gateway died at EMFILE");

    // Descriptors free again: the admin answers (its accept loop is alive).
    drop(flood);
    assert!(
        eventually(Duration::from_secs(10), || admin_status(
            admin,
            "/gateway/health"
        ) == Some(200)),
        "admin did not recover after EMFILE"
    );
    assert_eq!(get(addr, "/after").status, 200);
    let log = gw.stop();
    assert_logged_once_per_episode(&log, "admin: accept failed", "admin: accepting again");
    assert!(!log.contains("panicked"), "{log}");
}

/// `POST /admin/crash` to `addr` with these extra header lines.
fn crash(addr: SocketAddr, extra: &str) -> Response {
    request(
        addr,
        format!(
            "POST /admin/crash HTTP/1.1\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn the_demo_crash_switch_refuses_pages_and_the_gateway_port() {
    let demo = DemoBackend::spawn("Backend-A", "127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = start(config(&[demo.addr()]));
    let own = format!("Host: {}\r\n", demo.addr());
    // A simple (CORS-safe) request, as a page could send: refused.
    let r = crash(demo.addr(), &own);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("X-Demo-Admin"), "{}", r.text());
    // The header, but a Host naming another port: refused.
    let r = crash(demo.addr(), "Host: 127.0.0.1:4000\r\nX-Demo-Admin: 1\r\n");
    assert_eq!(r.status, 403);
    // Through the gateway's port (Host is forwarded unchanged): refused.
    let via = format!("Host: {}\r\nX-Demo-Admin: 1\r\n", gw.listen_addr());
    let r = crash(gw.listen_addr(), &via);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!demo.is_crashed());
    // The operator's curl line: accepted, and toggles back.
    let ok = format!("{own}X-Demo-Admin: 1\r\n");
    let r = crash(demo.addr(), &ok);
    assert_eq!((r.status, r.json()["crashed"].as_bool()), (200, Some(true)));
    assert!(demo.is_crashed());
    let r = crash(demo.addr(), &ok);
    assert_eq!(r.json()["crashed"], false);
    // Reading the flag stays open (it changes nothing).
    assert_eq!(get(demo.addr(), "/admin/crash").status, 200);
}
