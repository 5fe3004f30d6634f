//! Replays every seed and crash file under `fuzz/corpus/<target>/` through
//! the same invariant checks as the fuzz targets (`fuzz/src/checks.rs`), and
//! asserts what the file name promises: `ok-*` accepted (with the framing in
//! the name), `bad-*`/`smuggle-*` rejected, `partial-*` incomplete.
//! `crash-*` files are inputs that once found a bug in src/ (all fixed): the
//! `regression_*` tests below replay each and assert the fixed behaviour.
//! The `session` target's seeds are replayed by `tests/session_corpus.rs`,
//! the `route_match` target's by `tests/route_match_corpus.rs`.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::fs;
use std::path::PathBuf;

use api_gateway::http::chunked::ChunkedDecoder;
use api_gateway::http::request::{RequestFraming, RequestHead};
use api_gateway::http::response::{ResponseFraming, ResponseHead};
use api_gateway::http::rewrite::{write_request, ForwardInfo};
use checks::{Chunked, Message, Outcome, LIMITS};

/// (name, bytes) of every file in `fuzz/corpus/<target>`, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5, "corpus {target} is (nearly) empty");
    files
}

fn rejected_name(name: &str) -> bool {
    name.starts_with("bad-") || name.starts_with("smuggle-")
}

/// Every way of cutting `len` bytes once, plus byte by byte.
fn cut_sets(len: usize) -> Vec<Vec<usize>> {
    let mut sets: Vec<Vec<usize>> = (1..len).map(|c| vec![c]).collect();
    sets.push((1..len).collect());
    sets
}

#[test]
fn request_head_corpus() {
    for (name, data) in corpus("request_head") {
        if name.starts_with("crash-") {
            continue;
        }
        let got = checks::check_request_head(&data);
        let want = name
            .strip_prefix("ok-")
            .map(|rest| match rest.split('-').next() {
                Some("empty") => RequestFraming::Empty,
                Some("length") => RequestFraming::Length(0),
                Some("chunked") => RequestFraming::Chunked,
                _ => panic!("{name}: ok-<empty|length|chunked>-..."),
            });
        match (want, got) {
            (Some(RequestFraming::Length(_)), Outcome::Accepted { framing, .. }) => {
                assert!(
                    matches!(framing, RequestFraming::Length(_)),
                    "{name}: {framing:?}"
                )
            }
            (Some(w), Outcome::Accepted { framing, .. }) => assert_eq!(w, framing, "{name}"),
            (None, Outcome::Rejected(_)) if rejected_name(&name) => {}
            (None, Outcome::Incomplete) if name.starts_with("partial-") => {}
            _ => panic!("{name}: unexpected {got:?}"),
        }
    }
}

#[test]
fn response_head_corpus() {
    for (name, data) in corpus("response_head") {
        if name.starts_with("crash-") {
            continue;
        }
        let get = checks::check_response_head(&data, false);
        let head = checks::check_response_head(&data, true);
        if let Some(rest) = name.strip_prefix("ok-") {
            let Outcome::Accepted { framing, .. } = get else {
                panic!("{name}: {get:?}");
            };
            let kind = match framing {
                ResponseFraming::Empty => "empty",
                ResponseFraming::Length(_) => "length",
                ResponseFraming::Chunked => "chunked",
                ResponseFraming::UntilClose => "close",
            };
            assert!(rest.starts_with(kind), "{name}: {framing:?}");
            assert!(
                matches!(
                    head,
                    Outcome::Accepted {
                        framing: ResponseFraming::Empty,
                        ..
                    }
                ),
                "{name} to HEAD: {head:?}"
            );
        } else if rejected_name(&name) {
            assert!(matches!(get, Outcome::Rejected(_)), "{name}: {get:?}");
        } else {
            panic!("{name}: unknown prefix");
        }
    }
}

#[test]
fn chunked_split_corpus() {
    for (name, input) in corpus("chunked_split") {
        if name.starts_with("crash-") {
            continue;
        }
        let (cuts, data) = checks::split_input(&input);
        let got = checks::check_chunked(data, &cuts);
        for cuts in cut_sets(data.len()) {
            assert_eq!(
                checks::check_chunked(data, &cuts),
                got,
                "{name} cut at {cuts:?}"
            );
        }
        let ok = match got {
            Chunked::Done { .. } => name.starts_with("ok-"),
            Chunked::Partial { .. } => name.starts_with("partial-"),
            Chunked::Error(_) => rejected_name(&name),
        };
        assert!(ok, "{name}: {got:?}");
    }
}

#[test]
fn differential_split_corpus() {
    for (name, input) in corpus("differential_split") {
        if name.starts_with("crash-") {
            continue;
        }
        let (cuts, data) = checks::split_input(&input);
        let got = checks::check_differential(data, &cuts);
        for cuts in cut_sets(data.len()) {
            assert_eq!(
                checks::check_differential(data, &cuts),
                got,
                "{name} at {cuts:?}"
            );
        }
        let ok = match got {
            Message::Complete { .. } => name.starts_with("ok-"),
            Message::HeadIncomplete | Message::BodyIncomplete { .. } => {
                name.starts_with("partial-")
            }
            Message::HeadRejected | Message::BodyRejected { .. } => rejected_name(&name),
        };
        assert!(ok, "{name}: {got:?}");
    }
}

/// The request-head seeds double as differential inputs (no cuts), so every
/// smuggling shape is also checked for split-independence.
#[test]
fn proxy_header_corpus() {
    use api_gateway::http::proxy_protocol::Parsed;
    for (name, data) in corpus("proxy_header") {
        let got = checks::check_proxy_header(&data);
        if name.starts_with("ok-") {
            assert!(
                matches!(got, Ok(Parsed::Complete { .. })),
                "{name}: {got:?}"
            );
        } else if name.starts_with("partial-") {
            assert_eq!(got, Ok(Parsed::Incomplete), "{name}");
        } else {
            assert!(rejected_name(&name), "{name}: unexpected seed name");
            assert!(got.is_err(), "{name}: {got:?}");
        }
    }
}

#[test]
fn request_seeds_are_split_independent() {
    for (name, data) in corpus("request_head") {
        if name.starts_with("crash-") || data.len() > 600 {
            continue;
        }
        let whole = checks::check_differential(&data, &[]);
        for cuts in cut_sets(data.len()) {
            assert_eq!(checks::check_differential(&data, &cuts), whole, "{name}");
        }
    }
}

// ------------------------------------------------------------------------
// Bugs found by fuzzing, fixed in src/; these replay their crash inputs.
// (`checks::SKIP_KNOWN_BUGS` is false: the fuzzers check them again too.)

fn crash(target: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a request, rewrites it for the backend and re-parses the result.
fn forward(raw: &[u8]) -> (RequestHead, Vec<u8>, RequestHead) {
    let mut head = RequestHead::default();
    assert_eq!(head.parse(raw, &LIMITS), Ok(true));
    let mut out = Vec::new();
    let info = ForwardInfo {
        client_ip: "192.0.2.1".parse().unwrap(),
        request_id: b"rid",
        allowed_upgrades: &[],
        path: None,
        edits: &api_gateway::http::edits::NONE,
        consumer: b"",
        scheme: api_gateway::http::rewrite::Scheme::Http,
    };
    write_request(&mut out, raw, &head, &info);
    let mut again = RequestHead::default();
    let res = again.parse(&out, &LIMITS);
    assert_eq!(res, Ok(true), "{}", String::from_utf8_lossy(&out));
    (head, out, again)
}

#[test]
fn regression_connection_option_strips_content_length() {
    let raw = crash("request_head", "crash-connection-names-content-length");
    let (head, out, again) = forward(&raw);
    assert_eq!(head.framing(), RequestFraming::Length(32));
    assert_eq!(
        again.framing(),
        head.framing(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn regression_connection_option_strips_transfer_encoding() {
    let raw = crash("request_head", "crash-connection-names-transfer-encoding");
    let (head, out, again) = forward(&raw);
    assert_eq!(head.framing(), RequestFraming::Chunked);
    assert_eq!(
        again.framing(),
        head.framing(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn regression_absolute_form_without_path() {
    let raw = crash("request_head", "crash-absolute-form-without-path");
    let (_, out, again) = forward(&raw);
    assert_eq!(again.target.get(&out), b"/");
}

#[test]
fn regression_response_reason_span_outside_buffer() {
    for name in [
        "crash-status-line-without-reason",
        "crash-reason-with-obs-text",
    ] {
        let raw = crash("response_head", name);
        let mut head = ResponseHead::default();
        assert_eq!(head.parse(&raw, false), Ok(true), "{name}");
        assert!(
            head.reason.end as usize <= head.len,
            "{name}: {:?}",
            head.reason
        );
    }
}

#[test]
fn regression_long_request_line_depends_on_split() {
    let input = crash("differential_split", "crash-long-method-split");
    let (cuts, data) = checks::split_input(&input);
    assert_eq!(
        checks::process_message(data, &cuts),
        checks::process_message(data, &[])
    );
}

#[test]
fn regression_chunked_feed_after_done_consumes() {
    let mut d = ChunkedDecoder::new(100, 100);
    assert!(d.feed(b"0\r\n\r\n").unwrap().done);
    assert_eq!(d.feed(b"GET").unwrap().consumed, 0);
}

#[test]
fn regression_response_connection_option_strips_content_length() {
    use api_gateway::http::rewrite::{write_response, ResponseInfo};
    let raw = crash("response_head", "crash-connection-names-content-length");
    let mut head = ResponseHead::default();
    assert_eq!(head.parse(&raw, false), Ok(true));
    let mut out = Vec::new();
    let info = ResponseInfo {
        backend: "b",
        algorithm: "rr",
        circuit: "closed",
        response_time_ms: 1,
        request_id: b"rid",
        extra: b"",
        close: false,
        keep_alive_1_0: false,
        edits: &api_gateway::http::edits::NONE,
    };
    write_response(&mut out, &raw, &head, &info);
    let mut again = ResponseHead::default();
    assert_eq!(again.parse(&out, false), Ok(true));
    assert_eq!(again.framing(), ResponseFraming::Length(5));
}
