//! One client must not be able to trip the breaker for everyone (issue 10).
//!
//! Over real sockets: which statuses count as failures
//! (`circuit_breaker.failure_statuses`), the cap on open circuits
//! (`max_open_ratio`), and panic mode (too few backends available: spread
//! over every switched-on backend rather than answer 503 to everyone).

mod support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use api_gateway::algo::breaker::CircuitState;
use api_gateway::backend::Selection;
use api_gateway::{Config, Gateway};
use api_gateway_admin::{BreakerSpec, StatusSet};
use support::*;

/// The path whose answer is the application's own 500.
const BOOM: &str = "/status?code=500";

fn circuits(gw: &Gateway) -> Vec<CircuitState> {
    let s = gw.shared();
    let now = s.clock_now();
    s.current()
        .backends
        .iter()
        .map(|b| b.breaker.state(now))
        .collect()
}

fn count(states: &[CircuitState], want: CircuitState) -> usize {
    states.iter().filter(|&&s| s == want).count()
}

/// `n` test backends behind a gateway with this breaker (round robin).
fn rig(n: usize, breaker: BreakerSpec) -> (Vec<TestBackend>, Gateway) {
    let backends: Vec<TestBackend> = (0..n).map(|_| TestBackend::start()).collect();
    let addrs: Vec<SocketAddr> = backends.iter().map(|b| b.addr).collect();
    let mut c: Config = config(&addrs);
    c.circuit_breaker = breaker;
    (backends, start(c))
}

/// 500 counts as a failure, threshold 3, circuits stay open for the test.
fn counting_500(max_open_ratio: f64, failure_threshold: u32) -> BreakerSpec {
    BreakerSpec {
        failure_threshold,
        open_ms: 60_000,
        failure_statuses: StatusSet::from_statuses(&[500]).unwrap(),
        max_open_ratio,
        ..BreakerSpec::default()
    }
}

fn statuses(addr: SocketAddr, path: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| get(addr, path).status).collect()
}

#[test]
fn six_500s_with_the_defaults_open_no_circuit_and_nobody_gets_503() {
    let (_b, gw) = rig(2, BreakerSpec::default());
    let addr = gw.listen_addr();
    // The application's own 500 is passed through and is not a failure.
    assert_eq!(statuses(addr, BOOM, 6), [500; 6]);
    assert_eq!(circuits(&gw), [CircuitState::Closed; 2]);
    assert_eq!(statuses(addr, "/", 10), [200; 10]);
    let s = gw.shared();
    assert_eq!(s.metrics.circuit_broken.load(Ordering::Relaxed), 0);
    assert!(s
        .current()
        .backends
        .iter()
        .all(|b| b.breaker.failures() == 0));
}

#[test]
fn the_demo_semantics_still_open_every_circuit_on_500s() {
    // What the issue saw (500 counts, no cap): both circuits open and every
    // user gets 503. The demo keeps this on purpose (its crashed backends
    // answer 500; "all three crashed" must fail fast).
    let (_b, gw) = rig(2, api_gateway::config::demo_breaker());
    let addr = gw.listen_addr();
    assert_eq!(statuses(addr, BOOM, 6), [500; 6]);
    assert_eq!(circuits(&gw), [CircuitState::Open; 2]);
    assert_eq!(statuses(addr, "/", 3), [503; 3]);
}

#[test]
fn the_ratio_caps_open_circuits_and_other_users_still_succeed() {
    let (_b, gw) = rig(2, counting_500(0.5, 3));
    let addr = gw.listen_addr();
    assert_eq!(statuses(addr, BOOM, 12), [500; 12]);
    let states = circuits(&gw);
    assert_eq!(count(&states, CircuitState::Open), 1, "{states:?}");
    assert_eq!(count(&states, CircuitState::Closed), 1, "{states:?}");
    let s = gw.shared();
    assert!(s.metrics.circuit_trips_suppressed.load(Ordering::Relaxed) >= 1);
    assert!(s
        .events
        .snapshot()
        .iter()
        .any(|e| e.message.contains("trip suppressed")));
    // Everyone else is served by the backend whose trip was suppressed.
    assert_eq!(statuses(addr, "/", 10), [200; 10]);
    assert_eq!(s.metrics.circuit_broken.load(Ordering::Relaxed), 0);
    assert_eq!(
        s.current().backends.selection(s.clock_now()),
        Selection::Normal
    );
}

#[test]
fn panic_mode_serves_rather_than_503_when_too_few_backends_are_available() {
    // Two backends at 0.5: one circuit may open, one backend must remain.
    let (_b, gw) = rig(2, counting_500(0.5, 1));
    let addr = gw.listen_addr();
    let tripped = get(addr, BOOM);
    assert_eq!(tripped.status, 500);
    let tripped = tripped.header("x-backend").unwrap().to_string();
    let s = gw.shared();
    let snap = s.current();
    let other = snap.backends.iter().find(|b| b.name != tripped).unwrap();
    // The operator switches the healthy one off: nothing is available.
    assert!(!other.toggle());
    let now = s.clock_now();
    assert_eq!(
        s.current().backends.selection(now),
        Selection::Panic {
            available: 0,
            floor: 1
        }
    );
    // Without panic mode every request would be 503 now.
    for _ in 0..5 {
        let r = get(addr, "/");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-backend"), Some(tripped.as_str()));
        assert_eq!(r.header("x-circuit-state"), Some("OPEN"));
    }
    assert_eq!(s.metrics.circuit_broken.load(Ordering::Relaxed), 0);
    // Switched back on: open circuits are skipped again.
    assert!(other.toggle());
    assert_eq!(
        s.current().backends.selection(s.clock_now()),
        Selection::Normal
    );
    for _ in 0..5 {
        assert_eq!(
            get(addr, "/").header("x-backend"),
            Some(other.name.as_str())
        );
    }
    let events: Vec<String> = s.events.snapshot().into_iter().map(|e| e.message).collect();
    assert!(
        events.iter().any(|m| m.starts_with("upstream panic:")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|m| m.starts_with("upstream panic over")),
        "{events:?}"
    );
}

#[test]
fn panic_mode_spreads_over_every_switched_on_backend() {
    // Three backends at 0.5: one circuit may open, two must be available.
    let (_b, gw) = rig(3, counting_500(0.5, 1));
    let addr = gw.listen_addr();
    let tripped = get(addr, BOOM).header("x-backend").unwrap().to_string();
    let s = gw.shared();
    let snap = s.current();
    let off = snap.backends.iter().find(|b| b.name != tripped).unwrap();
    assert!(!off.toggle());
    assert!(matches!(
        s.current().backends.selection(s.clock_now()),
        Selection::Panic {
            available: 1,
            floor: 2
        }
    ));
    let served: HashSet<String> = (0..12)
        .map(|_| {
            let r = get(addr, "/");
            assert_eq!(r.status, 200);
            r.header("x-backend").unwrap().to_string()
        })
        .collect();
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(served.contains(&tripped) && !served.contains(&off.name));
}

#[test]
fn connect_failures_still_count_with_the_default_statuses() {
    let live = TestBackend::start();
    let mut c = config(&[live.addr, dead_addr()]);
    c.circuit_breaker = BreakerSpec {
        failure_threshold: 2,
        open_ms: 60_000,
        ..BreakerSpec::default()
    };
    let gw = start(c);
    let addr = gw.listen_addr();
    let mut saw_502 = 0;
    for _ in 0..8 {
        match get(addr, "/").status {
            200 => {}
            502 => saw_502 += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(saw_502, 2, "the dead backend fails twice, then is skipped");
    assert_eq!(circuits(&gw), [CircuitState::Closed, CircuitState::Open]);
    // A 502 *answer* from a live backend counts too (default statuses).
    assert_eq!(get(addr, "/status?code=502").status, 502);
    assert_eq!(gw.snapshot().backends.get(0).breaker.failures(), 1);
}

#[test]
fn a_lone_backend_that_is_down_still_fails_fast_at_the_default_ratio() {
    // floor(0.5 × 1) = 0, but at least one circuit may open, and the panic
    // floor (1 − 1 = 0 backends) is never undercut: 503 at once.
    let mut c = config(&[dead_addr()]);
    c.circuit_breaker = BreakerSpec {
        failure_threshold: 2,
        open_ms: 60_000,
        ..BreakerSpec::default()
    };
    let gw = start(c);
    let addr = gw.listen_addr();
    assert_eq!(statuses(addr, "/", 2), [502, 502]);
    assert_eq!(circuits(&gw), [CircuitState::Open]);
    let s = gw.shared();
    assert_eq!(
        s.current().backends.selection(s.clock_now()),
        Selection::Normal
    );
    assert_eq!(statuses(addr, "/", 3), [503; 3]);
}
