//! Invariant checks shared by the fuzz targets (`fuzz/fuzz_targets/*.rs`) and
//! the corpus replay test (`tests/fuzz_corpus.rs`); both include this file
//! with `#[path]`, so a corpus file and a fuzz run test exactly the same thing.
//! Every check panics on a broken invariant and returns a summary the replay
//! test asserts on. It must never depend on libFuzzer (stable `cargo test`).

use std::net::{IpAddr, Ipv4Addr};

use api_gateway::conn::BodyScan;
use api_gateway::http::chunked::{ChunkError, ChunkedDecoder};
use api_gateway::http::head::{Span, MAX_HEADERS};
use api_gateway::http::request::{RequestFraming, RequestHead, RequestLimits};
use api_gateway::http::response::{ResponseError, ResponseFraming, ResponseHead};
use api_gateway::http::rewrite::{
    write_interim, write_request, write_response, ForwardInfo, ResponseInfo,
};
use api_gateway::http::{rules, HttpError};

/// Limits used by every check: small, so the fuzzer reaches them quickly.
pub const LIMITS: RequestLimits = RequestLimits {
    max_uri: 256,
    max_body: 1 << 16,
};

/// The upgrade protocols the rewrite may forward (the default config).
pub const ALLOWED_UPGRADE: &str = "websocket";

/// Trailer limit for the chunked scanners.
pub const MAX_TRAILER: u32 = 256;

/// What a head parse decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<F, E> {
    /// `Ok(false)`: more bytes needed.
    Incomplete,
    /// `Err(_)`.
    Rejected(E),
    /// `Ok(true)`.
    Accepted {
        /// Head length.
        len: usize,
        /// Body framing.
        framing: F,
    },
}

// ---------------------------------------------------------------- helpers

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Non-empty, trimmed elements of a list value (RFC 9110 §5.6.1).
fn items(v: &[u8]) -> Vec<&[u8]> {
    v.split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// An independent Content-Length reading: `1*DIGIT` or an identical list.
fn content_length(v: &[u8]) -> Option<u64> {
    let mut n = None;
    for part in v.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let m: u64 = std::str::from_utf8(part).ok()?.parse().ok()?;
        if n.is_some_and(|p| p != m) {
            return None;
        }
        n = Some(m);
    }
    n
}

/// Splits a fuzz input into cut points and data: the first byte modulo 8 is
/// the number of control bytes that follow; each adds its value to the
/// previous cut. Seeds that start with `0` (0x30 % 8 == 0) have no cuts, so
/// they stay readable.
pub fn split_input(input: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = input.split_first() else {
        return (Vec::new(), input);
    };
    let n = usize::from(first % 8).min(rest.len());
    let (ctl, data) = rest.split_at(n);
    let mut at = 0usize;
    let cuts = ctl
        .iter()
        .map(|&d| {
            at += usize::from(d);
            at
        })
        .collect();
    (cuts, data)
}

/// Sorted, deduplicated piece ends for `len` bytes cut at `cuts`; the last is `len`.
fn bounds(len: usize, cuts: &[usize]) -> Vec<usize> {
    let mut b: Vec<usize> = cuts.iter().copied().filter(|&c| c > 0 && c < len).collect();
    b.push(len);
    b.sort_unstable();
    b.dedup();
    b
}

fn assert_span(s: Span, limit: usize, what: &str) {
    assert!(
        s.start <= s.end && s.end as usize <= limit,
        "{what} span {s:?} outside the head ({limit} bytes)"
    );
}

fn assert_head_end(head: &[u8]) {
    assert!(
        head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
        "head does not end with an empty line: {:?}",
        lossy(head)
    );
}

/// Header fields of a head we wrote (CRLF lines, no folding): (name, value).
fn fields(out: &[u8]) -> Vec<(&[u8], &[u8])> {
    out.split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            Some((&l[..colon], trim(&l[colon + 1..])))
        })
        .collect()
}

/// The Connection values of a head name `name` as a connection option.
fn named_in(values: &[&[u8]], name: &[u8]) -> bool {
    values
        .iter()
        .any(|v| items(v).iter().any(|i| eq_ci(i, name)))
}

/// Fields that frame or route a message: never dropped even when a peer's
/// `Connection` names them (dropping them was a smuggling bug).
fn is_protected(name: &[u8]) -> bool {
    [&b"content-length"[..], b"transfer-encoding", b"host"]
        .iter()
        .any(|n| eq_ci(n, name))
}

// ----------------------------------------------------------- request head

/// Parses `data` as a request head and checks every invariant of an
/// accepted head, including the rewrite/re-parse round trip.
pub fn check_request_head(data: &[u8]) -> Outcome<RequestFraming, HttpError> {
    let mut head = RequestHead::default();
    let res = head.parse(data, &LIMITS);

    // A head object reused across requests must not leak state.
    let mut reused = RequestHead::default();
    let warm = b"POST http://w/x HTTP/1.1\r\nHost: w\r\nConnection: upgrade, x\r\nUpgrade: y\r\nX-Request-Id: abc\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    assert_eq!(reused.parse(warm, &LIMITS), Ok(true));
    assert_eq!(
        reused.parse(data, &LIMITS),
        res,
        "reused head parses differently"
    );

    match res {
        Err(e) => {
            assert!(
                matches!(e.status(), 400 | 405 | 413 | 414 | 431 | 505),
                "unexpected parse error {e:?}"
            );
            Outcome::Rejected(e)
        }
        Ok(false) => {
            assert!(
                data.contains(&b'\n') || data.len() <= LIMITS.max_uri + 32,
                "a line-less prefix beyond the URI limit was kept waiting"
            );
            Outcome::Incomplete
        }
        Ok(true) => {
            assert_eq!(format!("{head:?}"), format!("{reused:?}"), "stale state");
            check_accepted_request(data, &head);
            // What the gateway then refuses to forward at all (405, 400).
            if let Err(e) = check_request_rules(data, &head) {
                return Outcome::Rejected(e);
            }
            Outcome::Accepted {
                len: head.len,
                framing: head.framing(),
            }
        }
    }
}

/// The request-level rules (`http::rules`) against an independent reading:
/// TRACE is refused; a path (before `?`) with a backslash, `%2F`/`%5C`, or
/// a segment that decodes to `.`/`..` (before any `;`) is refused; nothing
/// else is.
fn check_request_rules(data: &[u8], head: &RequestHead) -> Result<(), HttpError> {
    let got = rules::check(data, head, false);
    let path = head.path.get(data);
    let path = path.split(|&b| b == b'?').next().unwrap_or(path);
    let lower = path.to_ascii_lowercase();
    let bad_path = path.contains(&b'\\')
        || lower.windows(3).any(|w| w == b"%2f" || w == b"%5c")
        || path.split(|&b| b == b'/').any(|seg| {
            let decoded = percent_decode(seg);
            let name = decoded.split(|&b| b == b';').next().unwrap_or(&[]);
            name == b"." || name == b".."
        });
    let want_405 = eq_ci(head.method_span.get(data), b"TRACE");
    match got {
        Err(HttpError::MethodNotAllowed) => assert!(want_405, "405 for {:?}", lossy(data)),
        Err(HttpError::BadRequest(_)) => {
            assert!(!want_405 && bad_path, "path refused: {:?}", lossy(path))
        }
        Err(e) => panic!("unexpected rule verdict {e:?}"),
        Ok(()) => assert!(
            !want_405 && !bad_path,
            "forwarded {:?} {:?}",
            lossy(head.method_span.get(data)),
            lossy(path)
        ),
    }
    got
}

/// Decodes every valid `%XY` once; anything else stays as it is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = s.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (s[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn check_accepted_request(data: &[u8], head: &RequestHead) {
    let len = head.len;
    assert!(len > 0 && len <= data.len(), "len {len} of {}", data.len());
    assert_head_end(&data[..len]);
    let framing = head.framing.expect("accepted head with no framing decided");

    for (s, what) in [
        (head.method_span, "method"),
        (head.target, "target"),
        (head.path, "path"),
    ] {
        assert_span(s, len, what);
    }
    assert!(!head.method_span.is_empty() && !head.target.is_empty());
    assert!(head.path.start >= head.target.start && head.path.end <= head.target.end);
    assert!(head.target.len() <= LIMITS.max_uri, "URI above the limit");
    for s in head
        .authority
        .iter()
        .chain(&head.upgrade)
        .chain(&head.request_id)
        .chain(&head.connection)
    {
        assert_span(*s, len, "option");
    }
    assert!(head.headers.len() <= MAX_HEADERS);
    assert!(head.minor_version <= 1);
    assert!(head.method_span.get(data) != b"CONNECT");

    let mut te = Vec::new();
    let mut cl = Vec::new();
    let mut hosts = 0;
    for h in &head.headers {
        assert_span(h.name, len, "header name");
        assert_span(h.value, len, "header value");
        let (name, value) = (h.name.get(data), h.value.get(data));
        assert!(!name.is_empty(), "empty header name");
        assert!(
            !name.iter().any(|&b| b <= b' ' || b == b':' || b >= 0x7f),
            "bad name byte in {:?}",
            lossy(name)
        );
        assert!(
            !value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'),
            "NUL/CR/LF kept in the value of {:?}",
            lossy(name)
        );
        if eq_ci(name, b"transfer-encoding") {
            te.push(value);
        } else if eq_ci(name, b"content-length") {
            cl.push(value);
        } else if eq_ci(name, b"host") {
            hosts += 1;
        }
    }
    // The framing decision, re-derived independently (RFC 9112 §6.1, §6.3).
    assert!(
        te.is_empty() || cl.is_empty(),
        "accepted a head with both Transfer-Encoding and Content-Length"
    );
    assert!(hosts <= 1 && (head.minor_version == 0 || hosts == 1));
    match framing {
        RequestFraming::Chunked => {
            assert_eq!(head.minor_version, 1, "chunked in HTTP/1.0");
            let all: Vec<&[u8]> = te.iter().flat_map(|v| items(v)).collect();
            assert!(
                all.len() == 1 && eq_ci(all[0], b"chunked"),
                "chunked framing from TE {:?}",
                te.iter().map(|v| lossy(v)).collect::<Vec<_>>()
            );
        }
        RequestFraming::Length(n) => {
            assert!(te.is_empty() && !cl.is_empty());
            assert!(n > 0 && n <= LIMITS.max_body, "Length({n}) beyond max_body");
            assert!(cl.iter().all(|v| content_length(v) == Some(n)));
        }
        RequestFraming::Empty => {
            assert!(te.is_empty());
            assert!(cl.iter().all(|v| content_length(v) == Some(0)));
        }
    }

    // Round trip: what we send the backend must frame the same way.
    let conn_values: Vec<&[u8]> = head.connection.iter().map(|s| s.get(data)).collect();
    let mut out = Vec::new();
    let allowed = [ALLOWED_UPGRADE.to_string()];
    let info = ForwardInfo {
        client_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        request_id: b"fuzz-rid",
        allowed_upgrades: &allowed,
        path: None,
        edits: &api_gateway::http::edits::NONE,
        consumer: b"",
        scheme: api_gateway::http::rewrite::Scheme::Http,
    };
    write_request(&mut out, data, head, &info);
    check_forwarded_request(data, head, &conn_values, &out);
}

fn check_forwarded_request(data: &[u8], head: &RequestHead, conn_values: &[&[u8]], out: &[u8]) {
    let mut again = RequestHead::default();
    match again.parse(out, &LIMITS) {
        Ok(true) => {}
        // We may add up to five fields to a head that already had 100.
        Err(HttpError::HeadTooLarge) if fields(out).len() > MAX_HEADERS => return,
        other => panic!(
            "rewritten head does not re-parse ({other:?}):\n{}\nfrom:\n{}",
            lossy(out),
            lossy(&data[..head.len])
        ),
    }
    assert_eq!(again.len, out.len(), "rewrite left bytes after the head");
    assert_eq!(
        again.framing(),
        head.framing(),
        "rewrite changed the framing"
    );
    assert_eq!(again.minor_version, head.minor_version);
    assert_eq!(again.method_span.get(out), head.method_span.get(data));
    // Origin-form needs a leading "/": an absolute-form target without a
    // path (`http://a`, `http://a?q`) is forwarded with one added.
    let path = head.path.get(data);
    let expected: Vec<u8> = if path.starts_with(b"/") || path == b"*" {
        path.to_vec()
    } else {
        [&b"/"[..], path].concat()
    };
    assert_eq!(again.target.get(out), &expected[..]);

    let mut rids = 0;
    let mut protos = 0;
    let mut upgrades = 0;
    let mut lengths = 0;
    let sent_lengths = head
        .headers
        .iter()
        .any(|h| eq_ci(h.name.get(data), b"content-length"));
    // Whether the client offered an allowed protocol (independent reading).
    let offered = head.upgrade.is_some_and(|u| {
        items(u.get(data)).iter().any(|i| {
            let name = i.split(|&b| b == b'/').next().unwrap_or(i);
            eq_ci(name, ALLOWED_UPGRADE.as_bytes())
        })
    });
    for (name, value) in fields(out) {
        if eq_ci(name, b"connection") {
            let ok = (eq_ci(value, b"upgrade") && offered)
                || (head.minor_version == 0 && eq_ci(value, b"keep-alive"));
            assert!(ok, "forwarded Connection: {:?}", lossy(value));
            continue;
        }
        for hop in [&b"keep-alive"[..], b"proxy-connection", b"te", b"trailer"] {
            assert!(!eq_ci(name, hop), "forwarded hop-by-hop {:?}", lossy(name));
        }
        if eq_ci(name, b"upgrade") {
            upgrades += 1;
            assert!(offered, "forwarded Upgrade without an allowed offer");
            for item in items(value) {
                let proto = item.split(|&b| b == b'/').next().unwrap_or(item);
                assert!(
                    eq_ci(proto, ALLOWED_UPGRADE.as_bytes()),
                    "forwarded upgrade to {:?}",
                    lossy(item)
                );
            }
            continue;
        }
        // Only an identity the gateway proved is sent (none here).
        assert!(
            !eq_ci(name, b"x-consumer"),
            "forwarded the client's X-Consumer"
        );
        if eq_ci(name, b"x-forwarded-proto") {
            protos += 1;
            assert_eq!(value, b"http", "X-Forwarded-Proto is the gateway's");
        }
        // The gateway's own forwarding fields are added by this hop, whatever
        // the client's Connection said about its copies.
        let added_here = [
            &b"x-request-id"[..],
            b"x-forwarded-for",
            b"x-forwarded-proto",
        ]
        .iter()
        .any(|n| eq_ci(n, name));
        assert!(
            is_protected(name) || added_here || !named_in(conn_values, name),
            "forwarded {:?}, which Connection names",
            lossy(name)
        );
        if eq_ci(name, b"x-request-id") {
            rids += 1;
            assert_eq!(value, b"fuzz-rid");
        }
        if eq_ci(name, b"content-length") {
            lengths += 1;
            assert!(
                !value.is_empty() && value.iter().all(u8::is_ascii_digit),
                "forwarded Content-Length {:?} is not one number",
                lossy(value)
            );
        }
    }
    // Identical repeated lengths (`5` twice, `5, 5`) are accepted, and
    // forwarded as exactly one line with one value.
    assert_eq!(
        lengths,
        usize::from(sent_lengths),
        "forwarded Content-Length lines"
    );
    assert_eq!(rids, 1, "exactly one X-Request-Id");
    assert_eq!(protos, 1, "exactly one X-Forwarded-Proto");
    assert_eq!(upgrades, usize::from(offered), "allowed upgrade dropped");
}

// ---------------------------------------------------------- response head

/// Parses `data` as a response head (to a HEAD request when `head_request`)
/// and checks the framing rules and the rewrite round trip.
pub fn check_response_head(
    data: &[u8],
    head_request: bool,
) -> Outcome<ResponseFraming, ResponseError> {
    let mut head = ResponseHead::default();
    let res = head.parse(data, head_request);
    let mut reused = ResponseHead::default();
    let warm = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n";
    assert_eq!(reused.parse(warm, false), Ok(true));
    assert_eq!(reused.parse(data, head_request), res, "reused head differs");
    match res {
        Err(e) => Outcome::Rejected(e),
        Ok(false) => Outcome::Incomplete,
        Ok(true) => {
            assert_eq!(format!("{head:?}"), format!("{reused:?}"), "stale state");
            check_accepted_response(data, &head, head_request);
            Outcome::Accepted {
                len: head.len,
                framing: head.framing(),
            }
        }
    }
}

fn check_accepted_response(data: &[u8], head: &ResponseHead, head_request: bool) {
    let len = head.len;
    assert!(len > 0 && len <= data.len(), "len {len} of {}", data.len());
    assert_head_end(&data[..len]);
    let framing = head.framing.expect("accepted head with no framing decided");
    assert!((100..=599).contains(&head.status));
    assert!(head.minor_version <= 1);
    assert_span(head.reason, len, "reason");
    for s in &head.connection {
        assert_span(*s, len, "connection");
    }
    let mut te = false;
    for h in &head.headers {
        assert_span(h.name, len, "header name");
        assert_span(h.value, len, "header value");
        let value = h.value.get(data);
        assert!(!value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'));
        te |= eq_ci(h.name.get(data), b"transfer-encoding");
    }
    let bodiless =
        head_request || (100..200).contains(&head.status) || matches!(head.status, 204 | 304);
    match framing {
        ResponseFraming::Empty => {}
        _ if bodiless => panic!(
            "status {} (HEAD: {head_request}) has {framing:?}",
            head.status
        ),
        ResponseFraming::Length(n) => assert!(n > 0 && !te),
        ResponseFraming::Chunked => assert!(te && head.minor_version == 1),
        ResponseFraming::UntilClose => assert!(!te || head.minor_version == 1),
    }

    let mut out = Vec::new();
    let info = ResponseInfo {
        backend: "b1",
        algorithm: "round-robin",
        circuit: "closed",
        response_time_ms: 7,
        request_id: b"fuzz-rid",
        extra: b"",
        close: false,
        keep_alive_1_0: false,
        edits: &api_gateway::http::edits::NONE,
    };
    write_response(&mut out, data, head, &info);
    let mut again = ResponseHead::default();
    match again.parse(&out, head_request) {
        Ok(true) => {}
        Err(ResponseError::TooManyHeaders) if fields(&out).len() > MAX_HEADERS => return,
        other => panic!(
            "rewritten response does not re-parse ({other:?}):\n{}",
            lossy(&out)
        ),
    }
    assert_eq!(again.len, out.len());
    assert_eq!(again.status, head.status, "rewrite changed the status");
    assert_eq!(again.framing(), framing, "rewrite changed the framing");
    for (name, value) in fields(&out) {
        if eq_ci(name, b"connection") {
            assert!(eq_ci(value, b"upgrade") && head.status == 101);
            continue;
        }
        for hop in [&b"keep-alive"[..], b"proxy-connection", b"te", b"trailer"] {
            assert!(!eq_ci(name, hop), "forwarded hop-by-hop {:?}", lossy(name));
        }
        if eq_ci(name, b"upgrade") {
            assert_eq!(head.status, 101, "Upgrade outside a 101");
        }
    }
    if head.is_interim() && head.status != 101 {
        let mut out = Vec::new();
        write_interim(&mut out, data, head);
        let mut again = ResponseHead::default();
        assert!(
            matches!(again.parse(&out, head_request), Ok(true)),
            "interim head does not re-parse:\n{}",
            lossy(&out)
        );
        assert_eq!((again.status, again.len), (head.status, out.len()));
    }
}

// ------------------------------------------------------------ chunked body

/// How a chunked body scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// The scanner refused the body.
    Error(ChunkError),
    /// Everything was consumed and more is needed.
    Partial {
        /// Bytes consumed (the whole input).
        consumed: usize,
    },
    /// The message ended.
    Done {
        /// Bytes of the message.
        consumed: usize,
        /// Payload bytes.
        body: u64,
    },
}

fn feed_pieces(data: &[u8], cuts: &[usize], max_body: u64) -> Chunked {
    let mut d = ChunkedDecoder::new(max_body, MAX_TRAILER);
    let mut consumed = 0usize;
    let mut from = 0;
    for end in bounds(data.len(), cuts) {
        let piece = &data[from..end];
        from = end;
        let p = match d.feed(piece) {
            Ok(p) => p,
            Err(e) => return Chunked::Error(e),
        };
        assert!(p.consumed <= piece.len(), "consumed more than given");
        assert_eq!(p.done, d.is_done());
        assert!(d.body_bytes() <= max_body, "body_bytes beyond the limit");
        consumed += p.consumed;
        if p.done {
            // Payload is counted when a size line is read, so it can run
            // ahead of the bytes consumed, but never once the message ended.
            assert!(d.body_bytes() <= consumed as u64);
            return Chunked::Done {
                consumed,
                body: d.body_bytes(),
            };
        }
        assert_eq!(p.consumed, piece.len(), "stopped early without finishing");
    }
    Chunked::Partial { consumed }
}

/// Feeds `data` whole and cut at `cuts`; both must agree with each other and
/// with a plain, non-incremental reading of the grammar.
pub fn check_chunked(data: &[u8], cuts: &[usize]) -> Chunked {
    for max_body in [LIMITS.max_body, 16] {
        let whole = feed_pieces(data, &[], max_body);
        let split = feed_pieces(data, cuts, max_body);
        assert_eq!(whole, split, "split at {cuts:?} changes the result");
        let want = reference_chunked(data, max_body, MAX_TRAILER);
        match (whole, want) {
            (Chunked::Error(_), None) => {}
            (Chunked::Partial { consumed }, Some(None)) => assert_eq!(consumed, data.len()),
            (Chunked::Done { consumed, body }, Some(Some((end, b)))) => {
                assert_eq!((consumed, body), (end, b), "end or payload size differs")
            }
            (got, want) => panic!("decoder says {got:?}, the grammar says {want:?}"),
        }
    }
    feed_pieces(data, cuts, LIMITS.max_body)
}

/// The same grammar and limits as `ChunkedDecoder`, read the obvious way from
/// a complete buffer: `None` invalid, `Some(None)` needs more,
/// `Some(Some((end, payload)))` complete.
fn reference_chunked(d: &[u8], max_body: u64, max_trailer: u32) -> Option<Option<(usize, u64)>> {
    // Expects CRLF at `i`: Ok(i + 2), or the verdict to return.
    fn crlf(d: &[u8], i: usize) -> Result<usize, Option<Option<(usize, u64)>>> {
        match (d.get(i), d.get(i + 1)) {
            (None, _) | (Some(b'\r'), None) => Err(Some(None)),
            (Some(b'\r'), Some(b'\n')) => Ok(i + 2),
            _ => Err(None),
        }
    }
    let mut i = 0;
    let mut body = 0u64;
    loop {
        let start = i;
        while d.get(i).is_some_and(u8::is_ascii_hexdigit) {
            i += 1;
            if i - start > 15 {
                return None;
            }
        }
        let Some(&b) = d.get(i) else {
            return Some(None);
        };
        if i == start {
            return None;
        }
        let size = u64::from_str_radix(std::str::from_utf8(&d[start..i]).ok()?, 16).ok()?;
        if b == b';' {
            i += 1;
            let ext = i;
            loop {
                let Some(&c) = d.get(i) else {
                    return Some(None);
                };
                if c == b'\r' {
                    break;
                }
                if !(c == b'\t' || (c >= 0x20 && c != 0x7f)) {
                    return None;
                }
                i += 1;
                if i - ext > 1024 {
                    return None;
                }
            }
        }
        i = match crlf(d, i) {
            Ok(i) => i,
            Err(v) => return v,
        };
        if size == 0 {
            break;
        }
        body += size;
        if body > max_body {
            return None;
        }
        if ((d.len() - i) as u64) < size {
            return Some(None);
        }
        i = match crlf(d, i + size as usize) {
            Ok(i) => i,
            Err(v) => return v,
        };
    }
    let mut trailer = 0u32;
    loop {
        match d.get(i) {
            None => return Some(None),
            Some(b'\r') => {
                return match crlf(d, i) {
                    Ok(end) => Some(Some((end, body))),
                    Err(v) => v,
                }
            }
            // No obs-fold, no empty field name.
            Some(b' ' | b'\t' | b':') => return None,
            Some(_) => {}
        }
        loop {
            let Some(&c) = d.get(i) else {
                return Some(None);
            };
            if c == b'\r' {
                break;
            }
            if (c < 0x20 && c != b'\t') || c == 0x7f {
                return None;
            }
            trailer += 1;
            if trailer > max_trailer {
                return None;
            }
            i += 1;
        }
        i = match crlf(d, i) {
            Ok(i) => i,
            Err(v) => return v,
        };
    }
}

// ------------------------------------------------- whole-message differential

/// Where a request message (head and body) ends, as the proxy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// The head never completed.
    HeadIncomplete,
    /// The head was refused.
    HeadRejected,
    /// The body framing was refused.
    BodyRejected {
        /// Head length.
        head_len: usize,
    },
    /// The body has not ended.
    BodyIncomplete {
        /// Head length.
        head_len: usize,
        /// Body framing.
        framing: RequestFraming,
    },
    /// The message ended at `end`; the bytes after it are the next request.
    Complete {
        /// Head length.
        head_len: usize,
        /// Body framing.
        framing: RequestFraming,
        /// End of the message.
        end: usize,
    },
}

/// Processes `data` as the proxy does when it arrives in pieces ending at
/// `cuts`: re-parse the growing prefix until the head is complete, then run
/// the body scanner over the following pieces.
pub fn process_message(data: &[u8], cuts: &[usize]) -> Message {
    let ends = bounds(data.len(), cuts);
    let mut head = RequestHead::default();
    let mut have = None;
    for (k, &end) in ends.iter().enumerate() {
        match head.parse(&data[..end], &LIMITS) {
            Err(_) => return Message::HeadRejected,
            Ok(false) => {}
            Ok(true) => {
                have = Some(k);
                break;
            }
        }
    }
    let Some(k) = have else {
        return Message::HeadIncomplete;
    };
    let head_len = head.len;
    let framing = head.framing();
    let mut scan = match framing {
        RequestFraming::Empty => BodyScan::Complete,
        RequestFraming::Length(n) => BodyScan::Length(n),
        RequestFraming::Chunked => {
            BodyScan::Chunked(ChunkedDecoder::new(LIMITS.max_body, MAX_TRAILER))
        }
    };
    let mut pos = head_len;
    // The rest of the piece that completed the head, then the later pieces.
    for &end in &ends[k..] {
        if scan.is_complete() {
            break;
        }
        let piece = &data[pos..end];
        let n = match scan.scan(piece) {
            Ok(n) => n,
            Err(_) => return Message::BodyRejected { head_len },
        };
        assert!(n <= piece.len(), "scanned more than given");
        if !scan.is_complete() {
            assert_eq!(n, piece.len(), "body stopped early without ending");
        }
        pos += n;
    }
    if scan.is_complete() {
        Message::Complete {
            head_len,
            framing,
            end: pos,
        }
    } else {
        Message::BodyIncomplete { head_len, framing }
    }
}

/// The whole message and the message cut at `cuts` must be processed alike.
pub fn check_differential(data: &[u8], cuts: &[usize]) -> Message {
    let whole = process_message(data, &[]);
    let split = process_message(data, cuts);
    assert!(
        whole == split,
        "whole: {whole:?}, cut at {cuts:?}: {split:?}\n{}",
        lossy(data)
    );
    if let Message::Complete { head_len, end, .. } = whole {
        assert!(head_len <= end && end <= data.len());
    }
    whole
}

// ---------------------------------------------------------------- PROXY protocol

/// Raw bytes as the start of a connection with `proxy_protocol` on. The
/// answer never depends on how the bytes were split: every prefix shorter
/// than the first decisive one is `Incomplete`, and once a prefix decides,
/// longer inputs decide the same (the worker re-parses a growing buffer).
/// A complete header is within the input and the bounds. The same bytes as
/// `X-Forwarded-For` from a trusted peer resolve to the peer or to an
/// address written in them.
pub fn check_proxy_header(
    data: &[u8],
) -> Result<
    api_gateway::http::proxy_protocol::Parsed,
    api_gateway::http::proxy_protocol::ProxyHeaderError,
> {
    use api_gateway::http::client_ip;
    use api_gateway::http::proxy_protocol::{parse, Parsed, MAX_HEADER, V1_MAX};
    use api_gateway::net::cidr::CidrSet;

    let whole = parse(data);
    let decisive = (0..=data.len()).find(|&n| parse(&data[..n]) != Ok(Parsed::Incomplete));
    match decisive {
        None => assert_eq!(whole, Ok(Parsed::Incomplete)),
        Some(n) => assert_eq!(
            parse(&data[..n]),
            whole,
            "decided at {n} differently than whole: {}",
            lossy(data)
        ),
    }
    if let Ok(Parsed::Complete { len, .. }) = whole {
        assert!(len <= data.len() && len <= MAX_HEADER);
        if data.starts_with(b"PROXY ") {
            assert!(len <= V1_MAX);
        }
        assert_eq!(
            decisive,
            Some(len),
            "complete exactly when its last byte arrives"
        );
    }

    let trusted = CidrSet::parse(&["10.0.0.0/8", "127.0.0.1", "::1"]).unwrap();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let got = client_ip::resolve(peer, &trusted, data.split(|&b| b == b'\n').rev());
    let written = data
        .split(|&b| b == b'\n' || b == b',')
        .filter_map(|e| client_ip::parse_entry(trim(e)))
        .any(|a| a == got);
    assert!(got == peer || written, "{got} from {}", lossy(data));
    whole
}
