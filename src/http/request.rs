//! Request heads: parse in place with `httparse`, then apply the framing and
//! validity rules of RFC 9112 that decide where the message ends.
//!
//! Every rule that could let a backend see a different message boundary than
//! we do is a hard rejection here (400 and close): this is the smuggling
//! boundary. The parsed head holds spans into the caller's buffer.

use super::head::{
    eq_ci, list_items, parse_content_length, ConnectionOpts, HeaderSpan, Span, MAX_HEADERS,
};
use super::host;
use super::HttpError;
use std::mem::MaybeUninit;

/// Request methods the gateway treats specially; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (its response never has a body)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS (CORS preflight)
    Options,
    /// TRACE
    Trace,
    /// CONNECT (refused: we are a gateway, not a forward proxy)
    Connect,
    /// Any other token.
    Other,
}

impl Method {
    fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }

    /// RFC 9110 §9.2.2: safe to send twice, so a request lost on a stale
    /// pooled connection may be retried.
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get
                | Method::Head
                | Method::Put
                | Method::Delete
                | Method::Options
                | Method::Trace
        )
    }
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Longest request-target (414 beyond).
    pub max_uri: usize,
    /// Largest body (413 beyond, for a declared length).
    pub max_body: u64,
}

/// The field asking for a decision trace (`X-Gateway-Trace: 1`).
pub const TRACE: &[u8] = b"x-gateway-trace";
/// The field carrying the admin token with it, off loopback.
pub const TRACE_TOKEN: &[u8] = b"x-gateway-trace-token";

/// Whether `name` is one of the trace fields, which are the gateway's own
/// and never forwarded (the token is an admin secret).
#[inline]
pub fn is_trace_field(name: &[u8]) -> bool {
    eq_ci(name, TRACE) || eq_ci(name, TRACE_TOKEN)
}

/// A parsed request head: spans into the buffer it came from.
#[derive(Debug, Default)]
pub struct RequestHead {
    /// Bytes of the head, final empty line included.
    pub len: usize,
    /// The method as an enum.
    pub method: Option<Method>,
    /// The method token.
    pub method_span: Span,
    /// The request-target as sent.
    pub target: Span,
    /// Path (and query) to forward: `target`, or its path part in absolute-form.
    pub path: Span,
    /// Authority from an absolute-form target; replaces `Host` when forwarding.
    /// Always a valid `uri-host[:port]` (`host::is_valid`).
    pub authority: Option<Span>,
    /// The `Host` field's value (trimmed), validated by `host::is_valid`;
    /// `None` only for an HTTP/1.0 request without one.
    pub host: Option<Span>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Every header field, in order.
    pub headers: Vec<HeaderSpan>,
    /// Values of every `Connection` field (to strip the fields they name).
    pub connection: Vec<Span>,
    /// Options from `Connection`.
    pub conn: ConnectionOpts,
    /// The `Upgrade` value, when `Connection: upgrade` asks for one.
    pub upgrade: Option<Span>,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// A valid client `X-Request-Id`, kept as is.
    pub request_id: Option<Span>,
    /// `X-Gateway-Trace: 1` was sent (whether it is honoured is the trace
    /// stage's call: `crate::trace::admit`).
    pub trace_asked: bool,
    /// The value of `X-Gateway-Trace-Token` (an admin secret).
    pub trace_token: Option<Span>,
    /// Some `X-Gateway-Trace*` field was sent: the rewrite drops them
    /// (and looks for them only then).
    pub trace_fields: bool,
    /// Where the body ends.
    pub framing: Option<RequestFraming>,
}

impl RequestHead {
    /// The method (GET when unparsed, which never happens after `Ok(true)`).
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Get)
    }

    /// The body framing (Empty when unparsed).
    pub fn framing(&self) -> RequestFraming {
        self.framing.unwrap_or(RequestFraming::Empty)
    }

    /// Whether the client allows the connection to stay open after this
    /// exchange (RFC 9112 §9.3).
    pub fn wants_keep_alive(&self) -> bool {
        if self.minor_version >= 1 {
            !self.conn.close
        } else {
            self.conn.keep_alive && !self.conn.close
        }
    }

    /// The first value of header `name`, if any.
    pub fn header<'b>(&self, buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
        self.headers
            .iter()
            .find(|h| eq_ci(h.name.get(buf), name))
            .map(|h| h.value.get(buf))
    }

    fn clear(&mut self) {
        self.len = 0;
        self.method = None;
        self.method_span = Span::default();
        self.target = Span::default();
        self.path = Span::default();
        self.authority = None;
        self.host = None;
        self.minor_version = 1;
        self.headers.clear();
        self.connection.clear();
        self.conn = ConnectionOpts::default();
        self.upgrade = None;
        self.expect_continue = false;
        self.request_id = None;
        self.trace_asked = false;
        self.trace_token = None;
        self.trace_fields = false;
        self.framing = None;
    }

    /// Parses `buf` as the start of a request. `Ok(false)`: incomplete, read
    /// more. `Ok(true)`: `self` describes a valid head of `self.len` bytes.
    pub fn parse(&mut self, buf: &[u8], limits: &RequestLimits) -> Result<bool, HttpError> {
        self.clear();
        // Uninitialised slots: zeroing 100 headers (3.2 KB) cost more than
        // parsing a typical head.
        let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let status = match req.parse_with_uninit_headers(buf, &mut raw) {
            Ok(s) => s,
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
            Err(httparse::Error::Version) => return Err(version_error(buf)),
            Err(e) => return Err(HttpError::BadRequest(parse_error_reason(e))),
        };
        let len = match status {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => {
                // A request line longer than the URI limit will never fit.
                if request_line_too_long(buf, limits.max_uri) {
                    return Err(HttpError::UriTooLong);
                }
                return Ok(false);
            }
        };
        let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
        else {
            return Err(HttpError::BadRequest("malformed request line"));
        };
        self.len = len;
        self.minor_version = version;
        self.method_span = Span::of(buf, method.as_bytes());
        let method = Method::from_bytes(method.as_bytes());
        self.method = Some(method);
        // Judge the whole request line, as the partial-head shortcut above
        // must (it cannot see where the target starts): otherwise the verdict
        // on one head would depend on how TCP split it (found by fuzzing).
        if target.len() > limits.max_uri || request_line_too_long(buf, limits.max_uri) {
            return Err(HttpError::UriTooLong);
        }
        self.target = Span::of(buf, target.as_bytes());
        self.path = self.target;
        self.classify_target(buf, method)?;

        let mut hosts = 0usize;
        let mut content_length: Option<u64> = None;
        let mut te_items = 0usize;
        let mut te_chunked = false;
        let mut upgrade_value = None;
        let mut request_ids = 0usize;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            let value = h.value;
            // A NUL, CR or LF in a value reaching a backend would be a parsing
            // differential (RFC 9110 §5.5). httparse's default request config
            // (no obs-fold) already refuses them: values hold only HTAB,
            // SP..0x7E and obs-text (its HEADER_VALUE_MAP), pinned by the
            // `rejections` test. Re-scanning every value cost a third of
            // `parse`, so it is only asserted here.
            debug_assert!(!value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'));
            let span = HeaderSpan {
                name: Span::of(buf, name),
                value: Span::of(buf, value),
            };
            self.headers.push(span);
            if eq_ci(name, b"host") {
                hosts += 1;
                self.host = Some(span.value);
            } else if eq_ci(name, b"content-length") {
                let n = parse_content_length(value)
                    .ok_or(HttpError::BadRequest("invalid Content-Length"))?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(HttpError::BadRequest("conflicting Content-Length"));
                }
                content_length = Some(n);
            } else if eq_ci(name, b"transfer-encoding") {
                let mut empty = true;
                for item in list_items(value) {
                    empty = false;
                    te_items += 1;
                    te_chunked = eq_ci(item, b"chunked");
                }
                if empty {
                    return Err(HttpError::BadRequest("empty Transfer-Encoding"));
                }
            } else if eq_ci(name, b"connection") {
                self.conn.add(value);
                self.connection.push(span.value);
            } else if eq_ci(name, b"upgrade") {
                upgrade_value = Some(span.value);
            } else if eq_ci(name, b"expect") {
                self.expect_continue |= eq_ci(super::head::trim(value), b"100-continue");
            } else if eq_ci(name, b"x-request-id") {
                request_ids += 1;
                if request_ids == 1 && is_valid_request_id(value) {
                    self.request_id = Some(span.value);
                } else {
                    self.request_id = None;
                }
            } else if is_trace_field(name) {
                self.trace_fields = true;
                if name.len() == TRACE.len() {
                    self.trace_asked = super::head::trim(value) == b"1";
                } else {
                    self.trace_token = Some(span.value);
                }
            }
        }

        // RFC 9112 §3.2: a 1.1 request must carry exactly one Host.
        if version == 1 && hosts != 1 {
            return Err(HttpError::BadRequest(if hosts == 0 {
                "missing Host header"
            } else {
                "duplicate Host header"
            }));
        }
        if hosts > 1 {
            return Err(HttpError::BadRequest("duplicate Host header"));
        }
        // RFC 9112 §3.2: a Host value outside `uri-host[:port]` MUST get 400
        // (hops disagree on what `a/b` or `user@a` names).
        if self.host.is_some_and(|h| !host::is_valid(h.get(buf))) {
            return Err(HttpError::BadRequest("invalid Host header"));
        }
        if self.conn.upgrade && version == 1 {
            self.upgrade = upgrade_value;
        }

        // RFC 9112 §6.3 and §6.1: decide the body length or refuse.
        self.framing = Some(if te_items > 0 {
            if version == 0 {
                // §6.1: TE in an HTTP/1.0 message means faulty framing.
                return Err(HttpError::BadRequest(
                    "Transfer-Encoding in HTTP/1.0 request",
                ));
            }
            if content_length.is_some() {
                // §6.3 item 3: a request with both is a smuggling attempt.
                return Err(HttpError::BadRequest(
                    "both Transfer-Encoding and Content-Length",
                ));
            }
            // Only a lone `chunked` is accepted: anything else means we could
            // not find the end of the body the way the backend would.
            if te_items != 1 || !te_chunked {
                return Err(HttpError::BadRequest("unsupported Transfer-Encoding"));
            }
            RequestFraming::Chunked
        } else if let Some(n) = content_length {
            if n > limits.max_body {
                return Err(HttpError::PayloadTooLarge);
            }
            if n == 0 {
                RequestFraming::Empty
            } else {
                RequestFraming::Length(n)
            }
        } else {
            RequestFraming::Empty
        });
        Ok(true)
    }

    /// Accepts origin-form, `*` for OPTIONS, and absolute-form (whose
    /// authority then replaces Host, RFC 9112 §3.2.2).
    fn classify_target(&mut self, buf: &[u8], method: Method) -> Result<(), HttpError> {
        let target = self.target.get(buf);
        if method == Method::Connect {
            return Err(HttpError::MethodNotAllowed);
        }
        match target.first() {
            Some(b'/') => Ok(()),
            Some(b'*') if target.len() == 1 && method == Method::Options => Ok(()),
            _ => {
                let lower_starts =
                    |p: &[u8]| target.len() >= p.len() && eq_ci(&target[..p.len()], p);
                let scheme_len = if lower_starts(b"http://") {
                    7
                } else if lower_starts(b"https://") {
                    8
                } else {
                    return Err(HttpError::BadRequest("invalid request target"));
                };
                let rest = &target[scheme_len..];
                let auth_len = rest
                    .iter()
                    .position(|&b| b == b'/' || b == b'?')
                    .unwrap_or(rest.len());
                // The authority replaces Host, so it obeys the same grammar
                // (an empty one, RFC 9110 §4.2.1, and userinfo, §4.2.4,
                // included).
                if auth_len == 0 || !host::is_valid(&rest[..auth_len]) {
                    return Err(HttpError::BadRequest("invalid request target authority"));
                }
                let start = self.target.start + scheme_len as u32;
                self.authority = Some(Span {
                    start,
                    end: start + auth_len as u32,
                });
                self.path = Span {
                    start: start + auth_len as u32,
                    end: self.target.end,
                };
                Ok(())
            }
        }
    }
}

/// Whether the request line (complete or not) is already longer than a
/// target of `max_uri` bytes plus a method and version could make it. The
/// same test on any prefix and on the whole head, so the 414 verdict never
/// depends on how TCP split the bytes.
pub fn request_line_too_long(buf: &[u8], max_uri: usize) -> bool {
    let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    line_len > max_uri + 32
}

/// `X-Request-Id` we keep: 1..=128 visible characters from a safe set, so it
/// can go in logs and JSON without escaping.
pub fn is_valid_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// httparse reports a version it cannot parse; distinguish a real but
/// unsupported HTTP version (505) from garbage (400).
fn version_error(buf: &[u8]) -> HttpError {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = &buf[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.rsplit(|&b| b == b' ').next() {
        Some(v) if v.len() >= 6 && v.starts_with(b"HTTP/") && v[5].is_ascii_digit() => {
            HttpError::VersionNotSupported
        }
        _ => HttpError::BadRequest("invalid HTTP version"),
    }
}

fn parse_error_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in request line",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "invalid HTTP version",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RequestLimits = RequestLimits {
        max_uri: 8192,
        max_body: 1 << 20,
    };

    fn parse(raw: &[u8]) -> Result<RequestHead, HttpError> {
        let mut h = RequestHead::default();
        match h.parse(raw, &LIMITS)? {
            true => Ok(h),
            false => Err(HttpError::BadRequest("incomplete")),
        }
    }

    #[test]
    fn framing_rules() {
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.framing(), RequestFraming::Length(5));
        let h = parse(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing(), RequestFraming::Chunked);
        let h = parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(h.framing(), RequestFraming::Empty);
        assert!(h.wants_keep_alive());
        let h = parse(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.wants_keep_alive());
    }

    #[test]
    fn rejections() {
        let cases: &[(&[u8], HttpError)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
             HttpError::BadRequest("both Transfer-Encoding and Content-Length")),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
             HttpError::BadRequest("conflicting Content-Length")),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
             HttpError::BadRequest("invalid Content-Length")),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
             HttpError::BadRequest("unsupported Transfer-Encoding")),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
             HttpError::BadRequest("unsupported Transfer-Encoding")),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
             HttpError::BadRequest("unsupported Transfer-Encoding")),
            (b"GET / HTTP/1.1\r\n\r\n", HttpError::BadRequest("missing Host header")),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", HttpError::BadRequest("duplicate Host header")),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", HttpError::VersionNotSupported),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", HttpError::PayloadTooLarge),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::MethodNotAllowed),
            (b"GET nope HTTP/1.1\r\nHost: a\r\n\r\n", HttpError::BadRequest("invalid request target")),
        ];
        for (raw, want) in cases {
            assert_eq!(
                parse(raw).err(),
                Some(*want),
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        for raw in [
            &b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(HttpError::BadRequest(_))),
                "accepted {}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn absolute_form_moves_authority_out_of_the_path() {
        let raw = b"GET http://example.com/x?y HTTP/1.1\r\nHost: other\r\n\r\n";
        let h = parse(raw).unwrap();
        assert_eq!(h.path.get(raw), b"/x?y");
        assert_eq!(h.authority.unwrap().get(raw), b"example.com");
    }

    #[test]
    fn host_value_must_be_uri_host_and_port() {
        for v in [
            "a",
            "A.Example.test:8080",
            "127.0.0.1:1",
            "[::1]:80",
            "a-b_c~d",
            "xn--e1a",
            "a:",
            "",
            "  a  ",
        ] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {v}\r\n\r\n");
            let h = parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{v:?}: {e:?}"));
            assert_eq!(h.host.unwrap().get(raw.as_bytes()), v.trim().as_bytes());
        }
        for v in ["a b", "a/b", "user@a", "[::1", "a:b:c", "a:80x", ":80"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: {v}\r\n\r\n");
            assert_eq!(
                parse(raw.as_bytes()).err(),
                Some(HttpError::BadRequest("invalid Host header")),
                "{v:?}"
            );
        }
        // HTTP/1.0 may omit it.
        assert!(parse(b"GET / HTTP/1.0\r\n\r\n").unwrap().host.is_none());
        let raw = b"GET / HTTP/1.0\r\nHost: a@b\r\n\r\n";
        assert_eq!(
            parse(raw).err(),
            Some(HttpError::BadRequest("invalid Host header"))
        );
    }

    #[test]
    fn absolute_form_authority_obeys_the_host_grammar() {
        for t in [
            "http://[::1]:8080/x",
            "http://a:/",
            "HTTP://A.test?q",
            "http://a",
        ] {
            let raw = format!("GET {t} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(parse(raw.as_bytes()).is_ok(), "{t}");
        }
        for t in [
            "http://user@a/x",
            "http://user:pw@a/x",
            "http://:80/x",
            "http://a:b/x",
            "http://[::1/x",
            "http:///x",
            "http://a%zz/",
        ] {
            let raw = format!("GET {t} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert!(
                matches!(parse(raw.as_bytes()), Err(HttpError::BadRequest(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn request_id_kept_only_when_valid() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n";
        assert_eq!(parse(raw).unwrap().request_id.unwrap().get(raw), b"abc-123");
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: a b\"\r\n\r\n";
        assert!(parse(raw).unwrap().request_id.is_none());
    }

    #[test]
    fn long_uri_is_414_even_before_the_head_ends() {
        let mut raw = b"GET /".to_vec();
        raw.extend(std::iter::repeat_n(b'a', 9000));
        let mut h = RequestHead::default();
        assert_eq!(h.parse(&raw, &LIMITS), Err(HttpError::UriTooLong));
    }
}
