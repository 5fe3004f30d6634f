//! Several workers behave as one gateway: the rate limit is global, so a
//! client limited to N requests gets N in total however the kernel spreads
//! its connections over the workers' `SO_REUSEPORT` listeners, not N per
//! worker.
//!
//! Which worker served a response is visible in it: generated request ids
//! start with a per-worker prefix (8 hex digits), so the test can check that
//! both workers really took part instead of trusting the kernel's hash.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;

use api_gateway_admin::LimitSpec;
use support::*;

const LIMIT: u32 = 25;
const CONNECTIONS: usize = 64;
const THREADS: usize = 8;

#[test]
fn rate_limit_is_global_across_workers() {
    let backend = TestBackend::start();
    let mut c = config(&[backend.addr]);
    c.workers = 2;
    // A window far longer than the test: every request falls in one window.
    c.rate_limit.spec = LimitSpec::FixedWindow {
        limit: LIMIT,
        window_ms: 600_000,
    };
    let gw = start(c);
    let addr = gw.listen_addr();

    // Open every connection first, so the accepts spread over both
    // listeners, then fire one request per connection from several threads
    // at once so the workers race on the shared limiter cells.
    let mut conns: Vec<Client> = (0..CONNECTIONS).map(|_| Client::connect(addr)).collect();
    let barrier = Arc::new(Barrier::new(THREADS));
    let per_thread = CONNECTIONS / THREADS;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let mut mine: Vec<Client> = conns.drain(..per_thread).collect();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                mine.iter_mut()
                    .map(|c| {
                        let r = c.roundtrip(b"GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n");
                        let id = r.header("x-request-id").unwrap_or("").to_string();
                        (r.status, id)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();

    let ok = results
        .iter()
        .filter(|(s, _)| (200..300).contains(s))
        .count();
    let limited = results.iter().filter(|(s, _)| *s == 429).count();
    let workers: HashSet<&str> = results.iter().filter_map(|(_, id)| id.get(..8)).collect();
    assert_eq!(
        workers.len(),
        2,
        "both workers should have served (request-id prefixes: {workers:?})"
    );
    assert_eq!(ok, LIMIT as usize, "2xx total across workers: {results:?}");
    assert_eq!(limited, CONNECTIONS - LIMIT as usize);
    gw.shutdown();
}

#[test]
fn default_worker_count_is_the_core_count() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(api_gateway::Config::demo().workers, cores);
    let json = r#"{"listen": "127.0.0.1:0", "backends": [{"addr": "127.0.0.1:9"}]}"#;
    let c = api_gateway::Config::from_json(json).expect("valid config");
    assert_eq!(c.workers, cores);
}
