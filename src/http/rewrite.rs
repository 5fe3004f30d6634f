//! Writes outgoing heads: the request as the backend sees it, the response
//! as the client sees it, and the gateway's own replies.
//!
//! Heads are re-emitted field by field with CRLF endings, so whatever line
//! endings the peer used, the other side gets one canonical form. Hop-by-hop
//! fields never cross (RFC 9110 §7.6.1). Writing goes into a reused `Vec`, so
//! it allocates only while that vector warms up.

use std::io::Write;
use std::net::IpAddr;

use super::edits::HeaderEdits;
use super::error::{reason_phrase, HttpError};
use super::head::{eq_ci, is_hop_by_hop, list_items, named_in_connection, HeaderSpan};
use super::request::{is_trace_field, RequestHead};
use super::response::ResponseHead;
use super::upgrade::allowed_offers;

/// Value of the `x-gateway` response header.
pub const GATEWAY_NAME: &str = "api-gateway";

/// The scheme a client used to reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    /// The plain listener.
    #[default]
    Http,
    /// The TLS listener.
    Https,
}

impl Scheme {
    /// As written in `X-Forwarded-Proto` and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// What the request rewrite adds.
#[derive(Debug, Clone, Copy)]
pub struct ForwardInfo<'a> {
    /// Peer address of the client (appended to X-Forwarded-For).
    pub client_ip: IpAddr,
    /// The request id to send (client's valid one, or ours).
    pub request_id: &'a [u8],
    /// Upgrade protocols that may be forwarded (`allowed_upgrades`); any
    /// other protocol the client offers is dropped.
    pub allowed_upgrades: &'a [String],
    /// The path and query to send instead of the client's (a routed
    /// request's normalized, rewritten path); `None`: as the client sent it.
    pub path: Option<&'a [u8]>,
    /// The route's request header edits.
    pub edits: &'a HeaderEdits,
    /// The consumer the route's `auth` proved, sent as `X-Consumer`
    /// (empty: none, and no `X-Consumer` is sent).
    pub consumer: &'a [u8],
    /// How the client reached us (`X-Forwarded-Proto`).
    pub scheme: Scheme,
}

/// Writes the request head for the backend into `out`.
pub fn write_request(out: &mut Vec<u8>, buf: &[u8], head: &RequestHead, info: &ForwardInfo) {
    out.extend_from_slice(head.method_span.get(buf));
    out.push(b' ');
    let path = info.path.unwrap_or_else(|| head.path.get(buf));
    // `GET http://host HTTP/1.1` (or `http://host?q`) has an empty path:
    // origin-form needs at least "/" (RFC 9112 §3.2.1).
    if !path.starts_with(b"/") && path != b"*" {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    // An HTTP/1.0 client's request stays 1.0, so the backend will not answer
    // with a chunked body the client cannot read.
    out.extend_from_slice(if head.minor_version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    let mut has_xff = false;
    let mut content_length_sent = false;
    let mut run = Run::default();
    for h in &head.headers {
        let name = h.name.get(buf);
        // The trace fields are ours (the token is an admin secret): looked
        // for only when the parse saw one, so other requests pay nothing.
        if head.trace_fields && is_trace_field(name) {
            continue;
        }
        if is_hop_by_hop(name)
            || (head.conn.names_fields && named_in_connection(buf, &head.connection, name))
        {
            continue;
        }
        if info.edits.drops(name) {
            continue;
        }
        if eq_ci(name, b"x-forwarded-for") {
            // Merged into one line below, with the client appended.
            has_xff = true;
            continue;
        }
        // Ours replace the client's: a backend must be able to trust them
        // (a client's `X-Consumer` would be an identity it never proved).
        if eq_ci(name, b"x-request-id")
            || eq_ci(name, b"x-forwarded-proto")
            || eq_ci(name, b"x-consumer")
        {
            continue;
        }
        if eq_ci(name, b"content-length") {
            // Parsing accepted `5` twice, or `5, 5` (RFC 9110 §8.6), only
            // when every value agrees; the backend gets one line with one
            // value, so no hop after us is left a list to read its own way.
            if content_length_sent {
                continue;
            }
            content_length_sent = true;
            let value = h.value.get(buf);
            if value.contains(&b',') {
                run.flush(out, buf);
                let first = list_items(value).next().unwrap_or(b"0");
                push_field(out, b"Content-Length", first);
                continue;
            }
        }
        if eq_ci(name, b"host") {
            if let Some(authority) = head.authority {
                run.flush(out, buf);
                push_field(out, b"Host", authority.get(buf));
                continue;
            }
        }
        run.push(out, buf, h);
    }
    run.flush(out, buf);
    out.extend_from_slice(info.edits.lines());
    out.extend_from_slice(b"X-Forwarded-For: ");
    if has_xff {
        for h in head
            .headers
            .iter()
            .filter(|h| eq_ci(h.name.get(buf), b"x-forwarded-for"))
        {
            out.extend_from_slice(h.value.get(buf));
            out.extend_from_slice(b", ");
        }
    }
    push_ip(out, info.client_ip);
    out.extend_from_slice(b"\r\n");
    // The scheme the client used to reach us (a client's value is never
    // passed on).
    out.extend_from_slice(b"X-Forwarded-Proto: ");
    out.extend_from_slice(info.scheme.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    push_field(out, b"X-Request-Id", info.request_id);
    if !info.consumer.is_empty() {
        push_field(out, b"X-Consumer", info.consumer);
    }
    let mut offers = head
        .upgrade
        .map(|u| allowed_offers(u.get(buf), info.allowed_upgrades))
        .into_iter()
        .flatten()
        .peekable();
    if offers.peek().is_some() {
        out.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        for (i, offer) in offers.enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(offer);
        }
        out.extend_from_slice(b"\r\n");
    } else if head.minor_version == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What the response rewrite adds.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInfo<'a> {
    /// `x-backend`.
    pub backend: &'a str,
    /// `x-lb-algorithm`.
    pub algorithm: &'a str,
    /// `x-circuit-state`.
    pub circuit: &'a str,
    /// `x-response-time`, milliseconds.
    pub response_time_ms: u64,
    /// `x-request-id`.
    pub request_id: &'a [u8],
    /// Extra complete header lines from the pipeline (CORS, RateLimit-*).
    pub extra: &'a [u8],
    /// Add `Connection: close` (the client connection ends after this).
    pub close: bool,
    /// The client spoke HTTP/1.0 and keeps the connection: say so.
    pub keep_alive_1_0: bool,
    /// The route's response header edits.
    pub edits: &'a HeaderEdits,
}

/// The response field naming a request's decision trace: only the gateway
/// sets it (a backend's is dropped, so a client never follows a forged id).
pub const TRACE_ID: &[u8] = b"x-gateway-trace-id";

/// Writes the final response head for the client into `out`.
pub fn write_response(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead, info: &ResponseInfo) {
    write_status_line(out, buf, head);
    let upgrading = head.status == 101;
    let mut run = Run::default();
    for h in &head.headers {
        let name = h.name.get(buf);
        // A 101 names `Upgrade` in its `Connection`; that one field must
        // reach the client: it is the switch itself.
        let keep_upgrade = upgrading && eq_ci(name, b"upgrade");
        if !keep_upgrade
            && (is_hop_by_hop(name)
                || (head.conn.names_fields && named_in_connection(buf, &head.connection, name)))
        {
            continue;
        }
        if head.drop_content_length && eq_ci(name, b"content-length") {
            continue;
        }
        if info.edits.drops(name) {
            continue;
        }
        // The trace id is the gateway's to give (a length test first: this
        // runs for every response field).
        if name.len() == TRACE_ID.len() && eq_ci(name, TRACE_ID) {
            continue;
        }
        run.push(out, buf, h);
    }
    run.flush(out, buf);
    out.extend_from_slice(info.edits.lines());
    // Appended piecewise rather than with `write!`: the formatting
    // machinery was a visible share of the per-request user time.
    out.extend_from_slice(b"x-gateway: ");
    out.extend_from_slice(GATEWAY_NAME.as_bytes());
    out.extend_from_slice(b"\r\nx-backend: ");
    out.extend_from_slice(info.backend.as_bytes());
    out.extend_from_slice(b"\r\nx-response-time: ");
    push_decimal(out, info.response_time_ms);
    out.extend_from_slice(b"ms\r\nx-lb-algorithm: ");
    out.extend_from_slice(info.algorithm.as_bytes());
    out.extend_from_slice(b"\r\nx-circuit-state: ");
    out.extend_from_slice(info.circuit.as_bytes());
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(info.request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(info.extra);
    if upgrading {
        out.extend_from_slice(b"Connection: upgrade\r\n");
    } else if info.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if info.keep_alive_1_0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Writes an interim (1xx other than 101) response head for the client.
pub fn write_interim(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead) {
    write_status_line(out, buf, head);
    let mut run = Run::default();
    for h in &head.headers {
        let name = h.name.get(buf);
        let named = head.conn.names_fields && named_in_connection(buf, &head.connection, name);
        if !is_hop_by_hop(name) && !named {
            run.push(out, buf, h);
        }
    }
    run.flush(out, buf);
    out.extend_from_slice(b"\r\n");
}

fn write_status_line(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(head.status));
    out.push(b' ');
    out.extend_from_slice(head.reason.get(buf));
    out.extend_from_slice(b"\r\n");
}

/// A response the gateway writes itself.
#[derive(Debug, Clone, Copy)]
pub struct LocalReply<'a> {
    /// Status code.
    pub status: u16,
    /// Body bytes.
    pub body: &'a [u8],
    /// Content type of the body (ignored when the body is empty).
    pub content_type: &'a str,
    /// `x-request-id`.
    pub request_id: &'a [u8],
    /// Extra complete header lines (CORS, RateLimit-*, Retry-After).
    pub extra: &'a [u8],
    /// Add `Connection: close`.
    pub close: bool,
    /// The request was HEAD: send the head only.
    pub head_only: bool,
}

/// Writes a whole gateway-made response (head and body) into `out`.
pub fn write_local(out: &mut Vec<u8>, r: &LocalReply) {
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", r.status, reason_phrase(r.status));
    if !r.body.is_empty() {
        let _ = write!(out, "Content-Type: {}\r\n", r.content_type);
    }
    if r.status != 204 && r.status >= 200 {
        let _ = write!(out, "Content-Length: {}\r\n", r.body.len());
    }
    let _ = write!(
        out,
        "Cache-Control: no-store\r\nx-gateway: {GATEWAY_NAME}\r\nx-request-id: "
    );
    out.extend_from_slice(r.request_id);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(r.extra);
    if r.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !r.head_only {
        out.extend_from_slice(r.body);
    }
}

/// Writes the JSON error body `{"error": "...", "request_id": "..."}` into
/// `body` (cleared first). Messages and ids are from safe character sets,
/// so no escaping is needed.
pub fn error_body(body: &mut Vec<u8>, err: HttpError, request_id: &[u8]) {
    body.clear();
    body.extend_from_slice(b"{\"error\":\"");
    body.extend_from_slice(err.message().as_bytes());
    body.extend_from_slice(b"\",\"status\":");
    let _ = write!(body, "{}", err.status());
    body.extend_from_slice(b",\"request_id\":\"");
    body.extend_from_slice(request_id);
    body.extend_from_slice(b"\"}");
}

/// Forwarded header lines that are already canonical (`name: value\r\n`)
/// and adjacent in the source buffer, copied with one `extend` instead of
/// four per field. Whatever is written between fields must `flush` first.
#[derive(Debug, Default)]
struct Run {
    start: usize,
    end: usize,
}

impl Run {
    fn push(&mut self, out: &mut Vec<u8>, buf: &[u8], h: &HeaderSpan) {
        let (name, value) = (h.name, h.value);
        let (name_end, value_end) = (name.end as usize, value.end as usize);
        let canonical = value.start == name.end + 2
            && buf.get(name_end..name_end + 2) == Some(b": ")
            && buf.get(value_end..value_end + 2) == Some(b"\r\n");
        if !canonical {
            self.flush(out, buf);
            push_field(out, name.get(buf), value.get(buf));
        } else if self.end != self.start && name.start as usize == self.end {
            self.end = value_end + 2;
        } else {
            self.flush(out, buf);
            self.start = name.start as usize;
            self.end = value_end + 2;
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>, buf: &[u8]) {
        if self.start != self.end {
            out.extend_from_slice(&buf[self.start..self.end]);
        }
        *self = Run::default();
    }
}

/// Appends `n` in decimal (no formatting machinery, no allocation).
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends an address as `Display` would (IPv4 without `fmt`).
pub fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Runs for every request (X-Forwarded-For, the access log).
            let mut text = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            out.extend_from_slice(&text[..len]);
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::RequestLimits;

    fn rewrite(raw: &[u8]) -> String {
        rewrite_allowing(raw, &["websocket".to_string()])
    }

    fn rewrite_allowing(raw: &[u8], allowed_upgrades: &[String]) -> String {
        let mut head = RequestHead::default();
        let limits = RequestLimits {
            max_uri: 8192,
            max_body: 1 << 20,
        };
        assert!(head.parse(raw, &limits).unwrap());
        let mut out = Vec::new();
        let info = ForwardInfo {
            client_ip: "10.0.0.9".parse().unwrap(),
            request_id: b"rid-1",
            allowed_upgrades,
            path: None,
            edits: &crate::http::edits::NONE,
            consumer: b"",
            scheme: Scheme::Http,
        };
        write_request(&mut out, raw, &head, &info);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_trace_fields_never_reach_the_backend() {
        let raw = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Gateway-Trace: 1\r\nA: 1\r\n\
x-gateway-trace-token: s3cret-admin-token\r\nX-Gateway-Traced: kept\r\n\r\n";
        let out = rewrite(raw);
        assert!(
            !out.to_ascii_lowercase().contains("x-gateway-trace:"),
            "{out}"
        );
        assert!(!out.contains("s3cret"), "{out}");
        assert!(out.contains("\r\nA: 1\r\n") && out.contains("X-Gateway-Traced: kept"));
        let mut head = RequestHead::default();
        let limits = crate::http::request::RequestLimits {
            max_uri: 8192,
            max_body: 1 << 20,
        };
        assert!(head.parse(raw, &limits).unwrap());
        assert!(head.trace_asked && head.trace_fields);
        assert_eq!(head.trace_token.unwrap().get(raw), b"s3cret-admin-token");
        let plain = b"GET /a HTTP/1.1\r\nHost: h\r\nX-Gateway-Trace: yes\r\n\r\n";
        assert!(head.parse(plain, &limits).unwrap());
        assert!(!head.trace_asked && head.trace_fields && head.trace_token.is_none());
    }

    #[test]
    fn strips_hop_by_hop_and_appends_forwarding_fields() {
        let out = rewrite(
            b"GET /a?b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nProxy-Connection: x\r\nUpgrade: websocket\r\nX-Forwarded-For: 1.1.1.1\r\nAccept: */*\r\nX-Forwarded-For: 2.2.2.2\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Request-Id: rid-1\r\n\r\n"
        );
    }

    #[test]
    fn adds_xff_when_absent_and_keeps_upgrade_when_asked() {
        let out = rewrite(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET /ws HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Request-Id: rid-1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
    }

    #[test]
    fn forwards_only_allowed_upgrade_protocols() {
        let plain = "GET /ws HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Request-Id: rid-1\r\n\r\n";
        let h2c = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        assert_eq!(rewrite(h2c), plain);
        let ws =
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(rewrite_allowing(ws, &[]), plain);
        let both = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c, WebSocket/13, TLS/1.2\r\n\r\n";
        assert!(rewrite(both).ends_with("Connection: upgrade\r\nUpgrade: WebSocket/13\r\n\r\n"));
        let allowed = ["tls".to_string(), "h2c".to_string()];
        assert!(rewrite_allowing(both, &allowed)
            .ends_with("Connection: upgrade\r\nUpgrade: h2c, TLS/1.2\r\n\r\n"));
    }

    #[test]
    fn x_forwarded_proto_is_ours_whatever_the_client_sent() {
        let out = rewrite(
            b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: x\r\nx-forwarded-proto: wss\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Request-Id: rid-1\r\n\r\n"
        );
    }

    #[test]
    fn copies_canonical_runs_and_normalises_the_rest() {
        // Bare LF endings, no space after the colon, trailing spaces, an
        // empty value: each is re-emitted canonically between copied runs.
        let out = rewrite(
            b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB:2\nC: 3  \r\nD: 4\r\nE:\r\nF: 6\r\n\r\n",
        );
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: \r\nF: 6\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Request-Id: rid-1\r\n\r\n"
        );
    }

    #[test]
    fn identical_content_lengths_are_forwarded_as_one_line() {
        let tail =
            "X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Request-Id: rid-1\r\n\r\n";
        for (raw, fields) in [
            (
                &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nA: 1\r\ncontent-length: 5\r\n\r\n"[..],
                "Host: x\r\nContent-Length: 5\r\nA: 1\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\nA: 1\r\n\r\n",
                "Host: x\r\nContent-Length: 5\r\nA: 1\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 ,5\r\nContent-Length: 5\r\n\r\n",
                "Host: x\r\nContent-Length: 5\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0,0\r\nHost: x\r\n\r\n",
                "Content-Length: 0\r\nHost: x\r\n",
            ),
            (
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n",
                "Host: x\r\nContent-Length: 7\r\n",
            ),
        ] {
            assert_eq!(
                rewrite(raw),
                format!("POST / HTTP/1.1\r\n{fields}{tail}"),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn decimal_and_addresses() {
        let mut out = Vec::new();
        for n in [0u64, 7, 10, 65_535, u64::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
        for ip in [
            "0.0.0.0",
            "255.255.255.255",
            "10.20.3.4",
            "::1",
            "2001:db8::7",
        ] {
            out.clear();
            push_ip(&mut out, ip.parse().unwrap());
            assert_eq!(out, ip.as_bytes());
        }
    }

    #[test]
    fn error_body_is_json() {
        let mut body = Vec::new();
        error_body(&mut body, HttpError::NoBackend, b"abc");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["request_id"], "abc");
        assert_eq!(v["status"], 503);
        assert!(v["error"].as_str().unwrap().contains("circuits open"));
    }
}
