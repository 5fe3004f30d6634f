//! Limiter parameters whose derived times would overflow are refused, by the
//! config and by the admin API, naming the field; at the bound the limiter
//! behaves exactly.
//!
//! Issue 10: `leaky-bucket` with `capacity: 2, leak_per_sec: 1e-15` was
//! accepted; its interval `1/rate` and `capacity x interval` saturated at
//! u64::MAX, so of 20 concurrent requests one passed and 19 were parked
//! forever. Now every rate's interval is capped at one day, as `window_ms`
//! is, and a leaky bucket's longest queue wait too.

mod admin_rig;
mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use admin_rig::Rig;
use api_gateway::Config;
use api_gateway_admin::LimitSpec;

use support::*;

fn config_error(rate_limit: &str) -> String {
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "backends": [{{"addr": "127.0.0.1:9"}}],
            "rate_limit": {rate_limit}}}"#
    );
    match Config::from_json(&text) {
        Ok(_) => panic!("accepted: {rate_limit}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn config_refuses_rates_slower_than_one_per_day_naming_the_field() {
    for (rl, field) in [
        (
            r#"{"algorithm": "leaky-bucket", "capacity": 2, "leak_per_sec": 1e-15}"#,
            "rate_limit: leak_per_sec: ",
        ),
        (
            r#"{"algorithm": "leaky-bucket", "capacity": 1, "leak_per_sec": 0.0000115}"#,
            "rate_limit: leak_per_sec: ",
        ),
        (
            r#"{"algorithm": "token-bucket", "capacity": 2, "refill_per_sec": 1e-15}"#,
            "rate_limit: refill_per_sec: ",
        ),
        (
            r#"{"algorithm": "token-bucket", "capacity": 2, "refill_per_sec": 1e300}"#,
            "rate_limit: refill_per_sec: ",
        ),
        (
            r#"{"algorithm": "leaky-bucket", "capacity": 86401, "leak_per_sec": 1}"#,
            "rate_limit: capacity: ",
        ),
        (
            r#"{"algorithm": "token-bucket", "capacity": -1, "refill_per_sec": 1}"#,
            "rate_limit: capacity: ",
        ),
        (
            r#"{"algorithm": "fixed-window", "limit": 5, "window_ms": 18446744073709551615}"#,
            "rate_limit: window_ms: ",
        ),
        (
            r#"{"algorithm": "sliding-counter", "limit": 4294967295, "window_ms": 1000}"#,
            "rate_limit: limit: ",
        ),
    ] {
        let err = config_error(rl);
        assert!(err.contains(field), "{rl}: {err}");
    }
    // Exactly one per day is the bound, and accepted.
    let ok = r#"{"listen": "127.0.0.1:0", "backends": [{"addr": "127.0.0.1:9"}],
        "rate_limit": {"algorithm": "leaky-bucket", "capacity": 1, "leak_per_sec": 0.000011574074074074073}}"#;
    Config::from_json(ok).expect("one per day is accepted");
}

#[test]
fn admin_refuses_a_leak_rate_beyond_one_day_with_400_naming_it() {
    let rig = Rig::start();
    for (path, body, field) in [
        (
            "/gateway/rate-limiter/leaky-bucket",
            r#"{"capacity": 2, "leak_per_sec": 1e-15}"#,
            "leak_per_sec",
        ),
        (
            "/gateway/rate-limiter/token-bucket",
            r#"{"capacity": 2, "refill_per_sec": 1e-15}"#,
            "refill_per_sec",
        ),
        (
            "/gateway/rate-limiter/leaky-bucket",
            r#"{"capacity": 100000, "leak_per_sec": 1}"#,
            "capacity",
        ),
    ] {
        let r = rig.post(path, body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.starts_with(&format!("{field}: ")), "{body}: {msg}");
    }
    assert_eq!(
        rig.health()["rateLimiter"]["algorithm"],
        "token-bucket",
        "nothing was switched"
    );
    let r = rig.post(
        "/gateway/rate-limiter/leaky-bucket",
        r#"{"capacity": 1, "leak_per_sec": 0.000011574074074074073}"#,
    );
    assert_eq!(r.status, 200, "one per day is accepted: {}", r.text());
}

/// At the bound (one release per day, a queue of one), 20 concurrent
/// requests: one passes, one is queued (for a day), 18 are denied at once
/// with a `Retry-After` of one day. Before the fix a too-slow rate parked
/// all 19.
#[test]
fn leaky_bucket_at_one_per_day_queues_one_and_denies_the_rest_at_once() {
    let backend = TestBackend::start();
    let mut c = config(&[backend.addr]);
    c.rate_limit.spec = LimitSpec::LeakyBucket {
        capacity: 1,
        leak_per_sec: 1.0 / 86_400.0,
    };
    c.rate_limit.spec.validate().expect("at the bound");
    c.timeouts.shutdown_grace_ms = 100; // the queued request waits a day
    let gw = start(c);
    let addr = gw.listen_addr();
    let n = 20;
    let gate = Arc::new(Barrier::new(n + 1));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let gate = gate.clone();
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.stream()
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                gate.wait();
                c.send(format!("GET /day/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                read_response(&mut c.reader, false).ok()
            })
        })
        .collect();
    gate.wait();
    let t0 = Instant::now();
    let got: Vec<Option<Response>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let status = |s: u16| {
        got.iter()
            .filter(|r| r.as_ref().is_some_and(|r| r.status == s))
            .count()
    };
    let waiting = got.iter().filter(|r| r.is_none()).count();
    assert_eq!((status(200), waiting, status(429)), (1, 1, 18), "{got:?}");
    for r in got.iter().flatten().filter(|r| r.status == 429) {
        assert_eq!(r.header("Retry-After"), Some("86400"), "{r:?}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10));
    gw.shutdown();
}
