//! `max_connections`: the connection beyond the limit gets a 503 and is
//! closed, the ones within keep working, and a gateway at its limit does not
//! spin. Alone in its own test binary because it measures this process's CPU
//! time (the gateway runs in-process), which other tests would disturb.

mod support;

use std::io::Read;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// utime + stime of this process, in clock ticks (USER_HZ, 100 on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name: state is field 3, so
    // utime (14) and stime (15) are at indices 11 and 12.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn connection_beyond_max_gets_503_and_the_gateway_stays_idle() {
    let backend = TestBackend::start();
    let mut cfg = config(&[backend.addr]);
    cfg.limits.max_connections = 5;
    let gw = start(cfg);
    let mut five: Vec<Client> = (0..5)
        .map(|i| {
            let mut c = Client::connect(gw.listen_addr());
            let r = c.roundtrip(format!("GET /c{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
            assert_eq!(r.status, 200);
            c
        })
        .collect();
    assert_eq!(
        gw.shared().metrics.connections_open.load(Ordering::SeqCst),
        5
    );

    // The sixth (and seventh) are told why and closed, without a request.
    for _ in 0..2 {
        let mut sixth = Client::connect(gw.listen_addr());
        let r = sixth.read(false);
        assert_eq!(r.status, 503);
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.json()["error"], "gateway overloaded");
        assert!(sixth.is_closed());
    }

    // At the limit, with five idle connections open, the gateway sleeps.
    // Measured over 0.5 s; a spinning loop would burn ~50 ticks.
    thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    let before = cpu_ticks();
    thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks() - before;
    eprintln!(
        "CPU while at max_connections: {used} ticks (10 ms each) over {:?}",
        t0.elapsed()
    );
    assert!(
        used <= 10,
        "gateway busy at its connection limit: {used} ticks in 0.5 s"
    );

    // The first five still work.
    for (i, c) in five.iter_mut().enumerate() {
        let r = c.roundtrip(format!("GET /again{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200);
    }
    // Freeing one slot admits a new client.
    drop(five.pop());
    assert!(eventually(Duration::from_secs(5), || gw
        .shared()
        .metrics
        .connections_open
        .load(Ordering::SeqCst)
        == 4));
    assert_eq!(get(gw.listen_addr(), "/after").status, 200);

    // And a burst of refused connections while full does not spin either.
    let mut extra = Client::connect(gw.listen_addr());
    assert_eq!(
        extra
            .roundtrip(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
            .status,
        200
    );
    let before = cpu_ticks();
    for _ in 0..50 {
        let mut s = connect(gw.listen_addr());
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all);
        assert!(all.starts_with(b"HTTP/1.1 503 "));
    }
    thread::sleep(Duration::from_millis(300));
    let used = cpu_ticks() - before;
    eprintln!("CPU for 50 refused connections + 0.3 s idle: {used} ticks");
    assert!(used <= 30, "{used} ticks");
    drop(extra);
    gw.shutdown();
}
