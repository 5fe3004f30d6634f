//! Response heads from backends: parse in place and decide the body length
//! (RFC 9112 §6.3), which depends on the request method and the status.
//!
//! A response whose length cannot be determined safely is a 502, never a
//! guess: a wrong guess would desynchronise the pooled backend connection.

use super::head::{
    eq_ci, list_items, parse_content_length, ConnectionOpts, HeaderSpan, Span, MAX_HEADERS,
};
use std::mem::MaybeUninit;

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding (final coding).
    Chunked,
    /// Read until the backend closes (RFC 9112 §6.3 item 8).
    UntilClose,
}

/// Why a response head is unusable (all become 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseError {
    /// Not HTTP/1.x, bad status line or header syntax.
    Malformed,
    /// More fields than we index.
    TooManyHeaders,
    /// Conflicting or malformed Content-Length, or TE in HTTP/1.0.
    BadFraming,
}

/// A parsed response head: spans into the buffer it came from.
#[derive(Debug, Default)]
pub struct ResponseHead {
    /// Bytes of the head.
    pub len: usize,
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Every header field, in order.
    pub headers: Vec<HeaderSpan>,
    /// Values of every `Connection` field.
    pub connection: Vec<Span>,
    /// Options from `Connection`.
    pub conn: ConnectionOpts,
    /// Both Transfer-Encoding and Content-Length were present: the length is
    /// dropped when forwarding (RFC 9112 §6.3 item 3).
    pub drop_content_length: bool,
    /// Where the body ends.
    pub framing: Option<ResponseFraming>,
}

impl ResponseHead {
    /// The body framing (Empty when unparsed).
    pub fn framing(&self) -> ResponseFraming {
        self.framing.unwrap_or(ResponseFraming::Empty)
    }

    /// Whether the backend connection may carry another request afterwards.
    pub fn backend_keeps_alive(&self) -> bool {
        let by_version = if self.minor_version >= 1 {
            !self.conn.close
        } else {
            self.conn.keep_alive && !self.conn.close
        };
        by_version && self.framing() != ResponseFraming::UntilClose
    }

    /// Whether this is an interim (1xx) response, another head follows.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Parses `buf` as a response to a request (`head_request` when the
    /// method was HEAD). `Ok(false)` means incomplete.
    pub fn parse(&mut self, buf: &[u8], head_request: bool) -> Result<bool, ResponseError> {
        self.headers.clear();
        self.connection.clear();
        self.conn = ConnectionOpts::default();
        self.drop_content_length = false;
        self.framing = None;
        // Uninitialised slots: zeroing them cost more than a typical parse.
        let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        // The default config: no obs-fold, no lenient header names.
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut raw)
        {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooManyHeaders),
            Err(_) => return Err(ResponseError::Malformed),
        };
        let (Some(version), Some(status)) = (resp.version, resp.code) else {
            return Err(ResponseError::Malformed);
        };
        if !(100..=599).contains(&status) {
            return Err(ResponseError::Malformed);
        }
        self.len = len;
        self.status = status;
        self.minor_version = version;
        self.reason = reason_span(buf);

        let mut content_length: Option<u64> = None;
        let mut cl_invalid = false;
        let mut te_present = false;
        let mut te_final_chunked = false;
        for h in resp.headers.iter() {
            let name = h.name.as_bytes();
            let value = h.value;
            // httparse's default config (no obs-fold) refuses NUL, CR and LF
            // in values already (see `RequestHead::parse`); asserted only.
            debug_assert!(!value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n'));
            let span = HeaderSpan {
                name: Span::of(buf, name),
                value: Span::of(buf, value),
            };
            self.headers.push(span);
            if eq_ci(name, b"content-length") {
                match parse_content_length(value) {
                    Some(n) if content_length.is_none_or(|p| p == n) => content_length = Some(n),
                    _ => cl_invalid = true,
                }
            } else if eq_ci(name, b"transfer-encoding") {
                te_present = true;
                if let Some(last) = list_items(value).last() {
                    te_final_chunked = eq_ci(last, b"chunked");
                }
            } else if eq_ci(name, b"connection") {
                self.conn.add(value);
                self.connection.push(span.value);
            }
        }

        let bodiless = head_request || self.is_interim() || status == 204 || status == 304;
        self.framing = Some(if bodiless {
            ResponseFraming::Empty
        } else if te_present {
            if version == 0 {
                return Err(ResponseError::BadFraming);
            }
            self.drop_content_length = content_length.is_some() || cl_invalid;
            if te_final_chunked {
                ResponseFraming::Chunked
            } else {
                ResponseFraming::UntilClose
            }
        } else if cl_invalid {
            return Err(ResponseError::BadFraming);
        } else {
            match content_length {
                Some(0) => ResponseFraming::Empty,
                Some(n) => ResponseFraming::Length(n),
                None => ResponseFraming::UntilClose,
            }
        });
        Ok(true)
    }
}

/// The reason phrase of the status line `HTTP/1.x NNN reason`, taken from
/// the bytes themselves: httparse does not return it when it holds obs-text
/// (bytes >= 0x80), which RFC 9112 §4 allows and we pass through. Control
/// characters other than HTAB end it (httparse already rejected those).
fn reason_span(buf: &[u8]) -> Span {
    const PREFIX: usize = "HTTP/1.1 200 ".len();
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len());
    if line_end <= PREFIX {
        return Span::default();
    }
    let reason = &buf[PREFIX..line_end];
    let len = reason
        .iter()
        .position(|&b| b < 0x20 && b != b'\t' || b == 0x7f)
        .unwrap_or(reason.len());
    Span {
        start: PREFIX as u32,
        end: (PREFIX + len) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(raw: &[u8], head: bool) -> Result<ResponseFraming, ResponseError> {
        let mut h = ResponseHead::default();
        assert!(h.parse(raw, head)?);
        Ok(h.framing())
    }

    #[test]
    fn body_length_rules() {
        use ResponseFraming::*;
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false),
            Ok(Length(3))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true),
            Ok(Empty)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n",
                false
            ),
            Ok(Empty)
        );
        assert_eq!(
            framing(b"HTTP/1.1 304 Not Modified\r\n\r\n", false),
            Ok(Empty)
        );
        assert_eq!(framing(b"HTTP/1.1 100 Continue\r\n\r\n", false), Ok(Empty));
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            ),
            Ok(Chunked)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
            Ok(UntilClose)
        );
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n", false), Ok(UntilClose));
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                false
            ),
            Err(ResponseError::BadFraming)
        );
        assert_eq!(
            framing(b"HTTP/1.1 2000 OK\r\n\r\n", false),
            Err(ResponseError::Malformed)
        );
        assert_eq!(
            framing(b"garbage\r\n\r\n", false),
            Err(ResponseError::Malformed)
        );
    }

    #[test]
    fn te_with_cl_drops_the_length() {
        let mut h = ResponseHead::default();
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(h.parse(raw, false).unwrap());
        assert!(h.drop_content_length);
        assert_eq!(h.framing(), ResponseFraming::Chunked);
    }
}
