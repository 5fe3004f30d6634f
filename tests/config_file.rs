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
    assert_eq!(c.trusted_proxies.blocks().len(), 2);
    assert!(!c.proxy_protocol);
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

/// Config traps: `--check` used to pass these and the gateway then ran with
/// something else than the file says (a duplicate key: the last one won) or
/// failed at start without naming the path (a missing log directory).
#[test]
fn check_rejects_config_traps_naming_the_field() {
    let bin = env!("CARGO_BIN_EXE_api-gateway");
    let example = std::fs::read_to_string(EXAMPLE).unwrap();
    let cases = [
        (
            example.replacen(
                "\"connect_ms\": 1000",
                "\"connect_ms\": 1000, \"connect_ms\": 5",
                1,
            ),
            "timeouts.connect_ms: duplicate key",
        ),
        (
            example.replacen(
                "\"access_log\": \"stdout\"",
                "\"access_log\": \"/nonexistent-gw-dir/access.log\"",
                1,
            ),
            "access_log: directory '/nonexistent-gw-dir' does not exist",
        ),
        (
            example.replacen("127.0.0.1:3001", "127.0.0.1:0", 1),
            "backends[0].addr: port 0",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        assert_ne!(text, &example, "case {i} must change the file");
        let path = std::env::temp_dir().join(format!("gw-trap-{}-{i}.json", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(bin)
            .arg("--check")
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(out.status.code(), Some(1), "{want}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "expected {want:?} in: {err}");
    }
}

#[test]
fn unrouted_paths_get_404() {
    let backend = TestBackend::start();
    let mut c = config(&[backend.addr]);
    c.routes = vec![api_gateway::config::RouteConfig::prefix(0, "/api/")];
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
