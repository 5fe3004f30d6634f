//! The active health checker on real loopback sockets, used directly (no
//! gateway): backends whose `/health` status flips, a refused port, a
//! server that never answers, target-set replacement, retirement, stop.
//!
//! Checks run every 50 ms with a 100 ms timeout and 2-in-a-row thresholds,
//! so a status failure is detected within interval × unhealthy_after + one
//! interval = 150 ms; the tests assert a 2 s hard bound (CI machines stall)
//! and print what they measured. Every wait polls a condition against a
//! deadline; nothing sleeps to synchronise.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use api_gateway::algo::breaker::Breaker;
use api_gateway::algo::Nanos;
use api_gateway::backend::BackendState;
use api_gateway::config::resilience::{ExpectStatus, HealthCheck};
use api_gateway::demo::DemoBackend;
use api_gateway::events::EventKind;
use api_gateway::health::{HealthChecker, HealthState, Target};
use api_gateway::metrics;
use api_gateway::shared::Shared;
use api_gateway::Config;
use api_gateway_protocol::BreakerSpec;

/// The hard bound on any single wait.
const HARD: Duration = Duration::from_secs(2);

/// Polls `cond` every 2 ms until it holds (returns how long that took) or
/// `limit` passes (`None`).
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// A loopback HTTP server answering every request with the status in
/// `status` (0: read the request, never answer) and closing. One thread
/// per connection; every blocking read has a short timeout and checks the
/// stop flag, so dropping it ends every thread.
struct StatusServer {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    /// Request heads received, in order.
    heads: Arc<Mutex<Vec<String>>>,
    /// Connections accepted.
    accepted: Arc<AtomicU64>,
    /// Connections not yet closed by the client.
    open: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl StatusServer {
    fn start(status: u16) -> StatusServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut s = StatusServer {
            addr,
            status: Arc::new(AtomicU16::new(status)),
            heads: Arc::default(),
            accepted: Arc::default(),
            open: Arc::default(),
            stop: Arc::default(),
            acceptor: None,
        };
        let (st, heads, accepted, open, stop) = (
            s.status.clone(),
            s.heads.clone(),
            s.accepted.clone(),
            s.open.clone(),
            s.stop.clone(),
        );
        s.acceptor = Some(thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                open.fetch_add(1, Ordering::SeqCst);
                let (st, heads, open, stop) =
                    (st.clone(), heads.clone(), open.clone(), stop.clone());
                thread::spawn(move || {
                    serve(conn, &st, &heads, &stop);
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }));
        s
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    fn last_head(&self) -> String {
        self.heads
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request head, answers it (or not), and waits for the client
/// to close.
fn serve(mut conn: TcpStream, status: &AtomicU16, heads: &Mutex<Vec<String>>, stop: &AtomicBool) {
    conn.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut answered = false;
    while !stop.load(Ordering::SeqCst) && buf.len() < 64 * 1024 {
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue, // the read timeout: check `stop` again
        }
        if !answered && buf.windows(4).any(|w| w == b"\r\n\r\n") {
            heads
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            answered = true;
            let code = status.load(Ordering::SeqCst);
            if code != 0 {
                let reply = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let _ = conn.write_all(reply.as_bytes());
                let _ = conn.shutdown(Shutdown::Write);
            }
        }
    }
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared::new(&Config::demo()))
}

fn backend_state(slot: u32) -> Arc<BackendState> {
    Arc::new(BackendState::new(
        slot,
        Breaker::new(BreakerSpec::default()),
    ))
}

fn check() -> HealthCheck {
    HealthCheck {
        path: "/health".into(),
        interval_ms: 50,
        timeout_ms: 100,
        unhealthy_after: 2,
        healthy_after: 2,
        expect_status: ExpectStatus::Class(2),
        host: None,
    }
}

fn target(state: &Arc<BackendState>, name: &str, addr: SocketAddr) -> Target {
    Target {
        state: state.clone(),
        backend: name.into(),
        upstream: "users".into(),
        addr,
        tls: false,
        check: check(),
    }
}

/// An address nothing listens on (a port just released).
fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The health events recorded, as (healthy, reason, message).
fn health_events(shared: &Shared) -> Vec<(bool, String, String)> {
    shared
        .events
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::HealthChanged {
                healthy, reason, ..
            } => Some((healthy, reason, e.message)),
            _ => None,
        })
        .collect()
}

/// The health events once there are at least `n` (the checker sets the
/// health cell first, then records the event: a test that saw the cell
/// change waits for the event).
fn events_when(shared: &Shared, n: usize) -> Vec<(bool, String, String)> {
    let mut events = Vec::new();
    wait_for(HARD, || {
        events = health_events(shared);
        events.len() >= n
    })
    .unwrap_or_else(|| panic!("fewer than {n} health events: {events:?}"));
    events
}

fn is(state: &BackendState, h: HealthState) -> bool {
    state.health.state() == h
}

#[test]
fn a_failing_backend_leaves_the_rotation_and_comes_back_ramping() {
    let server = StatusServer::start(200);
    let shared = shared();
    let state = backend_state(0);
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    checker.set_targets(vec![target(&state, "A", server.addr)]);

    let first = wait_for(HARD, || is(&state, HealthState::Healthy))
        .expect("two passed checks make an unchecked backend healthy");
    assert!(
        health_events(&shared).is_empty(),
        "unchecked -> healthy is not news"
    );
    let head = server.last_head();
    for line in [
        "GET /health HTTP/1.1\r\n",
        &format!("Host: {}\r\n", server.addr),
        "User-Agent: api-gateway-health-check\r\n",
        "Connection: close\r\n",
    ] {
        assert!(head.contains(line), "{line:?} missing from {head:?}");
    }

    server.set(503);
    let down = wait_for(HARD, || is(&state, HealthState::Unhealthy))
        .expect("two failed checks take it out of rotation");
    assert!(!state.health.in_rotation());
    let events = events_when(&shared, 1);
    assert_eq!(
        events,
        [(
            false,
            "2 failed checks: unexpected status 503".to_string(),
            "health A unhealthy (2 failed checks: unexpected status 503)".to_string()
        )]
    );

    server.set(200);
    let up = wait_for(HARD, || is(&state, HealthState::Healthy))
        .expect("two passed checks bring it back");
    let events = events_when(&shared, 2);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[1],
        (
            true,
            "2 passed checks".to_string(),
            "health A healthy again".to_string()
        )
    );
    // Slow start began when it came back.
    let ramp = state.ramp(shared.clock_now(), Nanos::from_secs(60));
    assert!(ramp < 0.5, "ramp {ramp}");

    let passed = metrics::get(&shared.metrics.health_checks_passed);
    let failed = metrics::get(&shared.metrics.health_checks_failed);
    assert!(
        passed >= 4 && failed >= 2,
        "passed {passed} failed {failed}"
    );
    eprintln!(
        "status checks (interval 50 ms, 2 in a row): first healthy after {first:?}, \
         unhealthy {down:?} after the flip to 503 (bound 150 ms), healthy again {up:?} after \
         the flip back"
    );
    checker.stop();
}

#[test]
fn a_refused_port_goes_unhealthy() {
    let shared = shared();
    let state = backend_state(0);
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    let t0 = Instant::now();
    checker.set_targets(vec![target(&state, "gone", dead_addr())]);
    wait_for(HARD, || is(&state, HealthState::Unhealthy)).expect("refused twice: unhealthy");
    let took = t0.elapsed();
    assert_eq!(
        events_when(&shared, 1)[0].1,
        "2 failed checks: connection refused"
    );
    eprintln!("refused port: unhealthy {took:?} after its target was set (2 probes 50 ms apart; bound 150 ms)");
    checker.stop();
}

#[test]
fn a_server_that_never_answers_fails_by_timeout() {
    let server = StatusServer::start(0);
    let shared = shared();
    let state = backend_state(0);
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    let t0 = Instant::now();
    checker.set_targets(vec![target(&state, "mute", server.addr)]);
    wait_for(HARD, || is(&state, HealthState::Unhealthy)).expect("timed out twice: unhealthy");
    let took = t0.elapsed();
    assert_eq!(events_when(&shared, 1)[0].1, "2 failed checks: timed out");
    // Each probe ran to its own 100 ms deadline.
    assert!(took >= Duration::from_millis(190), "{took:?}");
    wait_for(HARD, || server.requests() >= 2).expect("the request was sent each time");
    eprintln!(
        "silent server: unhealthy {took:?} after its target was set (2 probes × 100 ms timeout)"
    );
    // Its sockets are closed at each timeout, not kept.
    checker.stop();
    wait_for(HARD, || server.open.load(Ordering::SeqCst) == 0).expect("probe sockets closed");
}

#[test]
fn the_probe_sends_the_checks_path_and_host_and_judges_its_status() {
    let server = StatusServer::start(200);
    let shared = shared();
    let state = backend_state(0);
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    let mut t = target(&state, "A", server.addr);
    t.check.path = "/ready?deep=1".into();
    t.check.host = Some("users.internal".into());
    t.check.expect_status = ExpectStatus::Exact(204);
    checker.set_targets(vec![t]);
    wait_for(HARD, || is(&state, HealthState::Unhealthy)).expect("200 is not the 204 expected");
    let head = server.last_head();
    assert!(
        head.starts_with("GET /ready?deep=1 HTTP/1.1\r\n"),
        "{head:?}"
    );
    assert!(head.contains("Host: users.internal\r\n"), "{head:?}");
    assert_eq!(
        events_when(&shared, 1)[0].1,
        "2 failed checks: unexpected status 200"
    );
    checker.stop();
}

#[test]
fn tls_backends_get_a_connect_check_only() {
    // A server that never answers passes: only the TCP connect is checked.
    let server = StatusServer::start(0);
    let shared = shared();
    let (up, down) = (backend_state(0), backend_state(1));
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    let mut a = target(&up, "tls-up", server.addr);
    a.tls = true;
    let mut b = target(&down, "tls-down", dead_addr());
    b.tls = true;
    checker.set_targets(vec![a, b]);
    wait_for(HARD, || {
        is(&up, HealthState::Healthy) && is(&down, HealthState::Unhealthy)
    })
    .expect("connects decide");
    // The kernel completes a connect before the server thread accepts it.
    wait_for(HARD, || server.accepted.load(Ordering::SeqCst) >= 2).expect("accepted");
    assert_eq!(
        server.requests(),
        0,
        "no HTTP request is sent over TLS's port"
    );
    checker.stop();
}

#[test]
fn a_target_kept_by_identity_keeps_its_streak_and_schedule() {
    // Slow checks, so the replacement lands between two probes.
    let shared = shared();
    let state = backend_state(0);
    let addr = dead_addr();
    let slow = |t: Target| Target {
        check: HealthCheck {
            interval_ms: 400,
            unhealthy_after: 3,
            ..t.check
        },
        ..t
    };
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    checker.set_targets(vec![slow(target(&state, "A", addr))]);
    let failed = || metrics::get(&shared.metrics.health_checks_failed);
    wait_for(HARD, || failed() >= 2).expect("two failed probes");
    // The same Arc in a fresh Target value (as a reload builds it).
    checker.set_targets(vec![slow(target(&state, "A", addr))]);
    assert!(
        !is(&state, HealthState::Unhealthy),
        "the third probe is 400 ms away"
    );
    wait_for(HARD, || is(&state, HealthState::Unhealthy)).expect("the third failure decides");
    // Had the streak restarted, it would take three more failures (5 in
    // all); kept, the third one decides. Observing 2 intervals late would
    // be needed to see 5 either way.
    let at = failed();
    assert!(
        at < 5,
        "{at} failed probes before unhealthy: the streak restarted"
    );
    assert_eq!(
        events_when(&shared, 1)[0].1,
        "3 failed checks: connection refused"
    );

    // A new state for the same backend is a new target: it starts over.
    let fresh = backend_state(1);
    checker.set_targets(vec![slow(target(&fresh, "A", addr))]);
    assert!(is(&fresh, HealthState::Unchecked));
    wait_for(HARD, || is(&fresh, HealthState::Unhealthy)).expect("three failures");
    assert_eq!(
        events_when(&shared, 2)[1].1,
        "3 failed checks: connection refused"
    );
    // The old one kept its last health: resetting it is the caller's.
    assert!(is(&state, HealthState::Unhealthy));
    checker.stop();
}

#[test]
fn removed_and_retired_backends_are_no_longer_probed() {
    let (a, b, c) = (
        StatusServer::start(503),
        StatusServer::start(200),
        StatusServer::start(200),
    );
    let shared = shared();
    let (sa, sb, sc) = (backend_state(0), backend_state(1), backend_state(2));
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    checker.set_targets(vec![target(&sa, "A", a.addr), target(&sc, "C", c.addr)]);
    wait_for(HARD, || {
        is(&sa, HealthState::Unhealthy) && is(&sc, HealthState::Healthy)
    })
    .expect("A fails, C passes");

    // A leaves the set; B joins. B's first probe proves the set applied.
    checker.set_targets(vec![target(&sb, "B", b.addr), target(&sc, "C", c.addr)]);
    wait_for(HARD, || b.requests() >= 1).expect("B probed");
    let a_seen = a.requests();
    // C is retired by a reload: skipped from now on.
    sc.retire(shared.clock_now());
    let c_seen = c.requests();
    let b_seen = b.requests();
    wait_for(HARD, || b.requests() >= b_seen + 3).expect("B probed three more times");
    // One probe may have been in flight when the set or the flag changed.
    assert!(a.requests() <= a_seen + 1, "A still probed");
    assert!(c.requests() <= c_seen + 1, "retired C still probed");
    assert!(is(&sa, HealthState::Unhealthy), "A keeps its last health");
    assert!(is(&sc, HealthState::Healthy), "C keeps its last health");
    checker.stop();
}

#[test]
fn stop_closes_probes_in_flight_and_joins_promptly() {
    let server = StatusServer::start(0);
    let shared = shared();
    let state = backend_state(0);
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    let mut t = target(&state, "mute", server.addr);
    t.check.timeout_ms = 60_000;
    t.check.interval_ms = 60_000;
    checker.set_targets(vec![t]);
    wait_for(HARD, || server.requests() == 1).expect("a probe in flight");
    let t0 = Instant::now();
    checker.stop();
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(500), "stop took {took:?}");
    wait_for(HARD, || server.open.load(Ordering::SeqCst) == 0).expect("its socket closed");
    eprintln!("stop with a probe in flight joined in {took:?}");

    // Dropping stops it too.
    let checker = HealthChecker::spawn(shared).unwrap();
    checker.set_targets(vec![target(&backend_state(1), "A", dead_addr())]);
    let t0 = Instant::now();
    drop(checker);
    assert!(t0.elapsed() < Duration::from_millis(500));
}

/// `GET path` to `addr`; (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn a_crashed_demo_backend_fails_its_checks() {
    let demo = DemoBackend::spawn("Demo-A", "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(
        get(demo.addr(), "/health"),
        (200, serde_json::json!({"status": "ok", "server": "Demo-A"}))
    );
    let shared = shared();
    let state = backend_state(0);
    let checker = HealthChecker::spawn(shared.clone()).unwrap();
    checker.set_targets(vec![target(&state, "Demo-A", demo.addr())]);
    wait_for(HARD, || is(&state, HealthState::Healthy)).expect("a running demo passes");

    demo.set_crashed(true);
    let down = wait_for(HARD, || is(&state, HealthState::Unhealthy)).expect("a crashed one fails");
    assert_eq!(
        events_when(&shared, 1)[0].1,
        "2 failed checks: unexpected status 500"
    );
    demo.set_crashed(false);
    wait_for(HARD, || is(&state, HealthState::Healthy)).expect("recovered");
    checker.stop();
    assert_eq!(demo.served(), 0, "health checks are not counted as traffic");
    assert_eq!(get(demo.addr(), "/health").0, 200);
    demo.set_crashed(true);
    assert_eq!(
        get(demo.addr(), "/health"),
        (
            500,
            serde_json::json!({"status": "crashed", "server": "Demo-A"})
        )
    );
    eprintln!("crashed demo backend: unhealthy {down:?} after the crash");
}
