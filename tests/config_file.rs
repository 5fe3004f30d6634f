//! The example config in the repo loads, runs, and routes as written; the
//! binary rejects bad files with a message naming the field.

mod support;

use std::process::Command;

use api_gateway::Config;
use support::*;

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/example-config.json"
);

#[test]
fn example_config_loads_with_every_documented_key() {
    let c = Config::load(std::path::Path::new(EXAMPLE)).expect("example config is valid");
    assert_eq!(c.backends.len(), 3);
    assert_eq!(c.backends[0].weight, 3);
    assert_eq!(c.workers, 2);
    assert_eq!(c.rate_limit.spec.name(), "token-bucket");
    assert_eq!(c.pipeline.len(), 5);
}

#[test]
fn binary_checks_config_files() {
    let bin = env!("CARGO_BIN_EXE_api-gateway");
    let ok = Command::new(bin)
        .args(["--check", EXAMPLE])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("OK"));

    let bad = std::env::temp_dir().join(format!("gw-bad-{}.json", std::process::id()));
    let text = std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .replace("\"connect_ms\": 1000", "\"connect_ms\": \"soon\"");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bad);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("timeouts.connect_ms"),
        "message must name the field: {err}"
    );
}

#[test]
fn unrouted_paths_get_404() {
    let backend = TestBackend::start();
    let mut c = config(&[backend.addr]);
    c.routes = vec!["/api/".into()];
    let gw = start(c);
    let r = get(gw.listen_addr(), "/admin/secret");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["request_id"].as_str(), r.header("x-request-id"));
    let mut client = Client::connect(gw.listen_addr());
    // A 404 keeps the connection (the request had no body).
    assert_eq!(
        client
            .roundtrip(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
            .status,
        404
    );
    assert_eq!(
        client
            .roundtrip(b"GET /api/ok HTTP/1.1\r\nHost: a\r\n\r\n")
            .status,
        200
    );
    assert_eq!(
        backend.requests.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    gw.shutdown();
}
