//! Replays every seed under `fuzz/corpus/route_match/` through the
//! `route_match` fuzz target's logic (`fuzz/src/route_match.rs`, included
//! with `#[path]`), so `cargo test` checks the seeds with the target's own
//! invariants (normalization properties and its reference, matching against
//! the scan-and-sort reference, matched = forwarded). Each seed's name says
//! what the gateway does with it: `bad-*` is a 400 from normalization,
//! `badhost-*` a 400 for the Host, `404-*`, `405-*` and `found-*` the route
//! table's answer; the bypass shapes also pin the route and forwarded path.

#[allow(dead_code)]
#[path = "../fuzz/src/route_match.rs"]
mod route_match;

use std::fs;
use std::path::PathBuf;

use api_gateway::route::RouteMatch;

/// (seed, route id, forwarded path, `Allow` on a 405 or "").
const PINNED: &[(&str, usize, &str, &str)] = &[
    ("found-dotdot-public-admin", 1, "/admin", ""),
    ("found-double-slash-admin", 1, "/admin", ""),
    ("found-encoded-admin", 1, "/admin", ""),
    ("found-dot-admin", 1, "/admin", ""),
    ("found-encoded-dotdot", 1, "/admin", ""),
    ("found-encoded-dotdot-query", 1, "/admin", ""),
    ("found-mixed-dots", 1, "/admin/", ""),
    ("found-wildcard-host", 4, "/a/x", ""),
    ("found-wildcard-trailing-dot", 2, "/api/x", ""),
    ("found-exact-host-case-port", 5, "/api/v1/x", ""),
    ("found-raw-host-wildcard", 2, "/api/v1", ""),
    ("found-exact-path-host", 3, "/a", ""),
    ("found-prefix-slash-exact", 4, "/a/", ""),
    ("found-any-host-prefix", 6, "/a/b", ""),
    ("found-ipv6-host", 0, "/x", ""),
    ("found-catch-all-asterisk", 1, "/", ""),
    ("found-exact-over-prefix", 3, "/admin/x/", ""),
    ("found-prefix-trailing-slash", 2, "/admin/x/z", ""),
    ("found-escape-kept", 4, "/p%C3%A9/x", ""),
    ("found-encoded-semicolon", 5, "/%3B", ""),
    ("found-semicolon-segment", 6, "/a;b/c", ""),
    ("found-encoded-space", 7, "/a%20b", ""),
    ("405-wildcard", 0, "", "GET"),
    ("405-admin", 0, "", "GET, POST"),
    ("405-union", 0, "", "PUT, DELETE"),
    ("405-method-case", 0, "", "GET, POST"),
    ("405-head-is-not-get", 0, "", "GET"),
];

#[test]
fn route_match_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/route_match");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 40, "corpus route_match is (nearly) empty");
    let mut pinned_seen = 0;
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let sum = route_match::run(&fs::read(&path).unwrap());
        let kind = name.split('-').next().unwrap();
        match kind {
            "bad" => assert!(sum.normalized.is_err(), "{name}: {sum:?}"),
            "badhost" => {
                assert!(sum.normalized.is_ok() && !sum.host_valid, "{name}: {sum:?}")
            }
            "404" => assert_eq!(sum.outcome, Some(RouteMatch::NoRoute), "{name}: {sum:?}"),
            "405" => assert_eq!(
                sum.outcome,
                Some(RouteMatch::MethodNotAllowed),
                "{name}: {sum:?}"
            ),
            "found" => assert!(
                matches!(sum.outcome, Some(RouteMatch::Found { .. })),
                "{name}: {sum:?}"
            ),
            // Inputs the fuzzer found are kept as `crash-*` with their own test.
            "crash" => {}
            _ => panic!("{name}: name it bad-, badhost-, 404-, 405- or found-"),
        }
        let Some(&(_, id, forwarded, allow)) = PINNED.iter().find(|p| p.0 == name) else {
            continue;
        };
        pinned_seen += 1;
        match sum.outcome {
            Some(RouteMatch::Found { id: got, .. }) => {
                assert_eq!(got, id, "{name}: route");
                assert_eq!(
                    sum.forwarded.as_deref(),
                    Some(forwarded.as_bytes()),
                    "{name}: forwarded"
                );
            }
            _ => assert_eq!(sum.allow, allow.as_bytes(), "{name}: Allow"),
        }
    }
    assert_eq!(pinned_seen, PINNED.len(), "a pinned seed is missing");
}

/// The query is forwarded as sent, `%2e%2e` and `%2f` in it included.
#[test]
fn query_is_kept_byte_for_byte() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/route_match");
    let sum = route_match::run(&fs::read(dir.join("found-encoded-dotdot-query")).unwrap());
    assert_eq!(
        sum.normalized.as_deref(),
        Ok(&b"/admin?next=/../x%2f%2e%2e"[..])
    );
}
