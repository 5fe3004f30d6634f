//! One admin connection, one exchange: the request read by us under hard
//! limits, one response, then a graceful close.
//!
//! Why not tiny_http any more: it reads the head without a size or time
//! limit (a 200 MiB header line was buffered whole), spends a thread and two
//! descriptors per connection without a cap, and its accept loop ends for
//! good (or panics on a `try_clone` unwrap) on EMFILE. It cannot be handed a
//! request we have already read and checked (its `Request` constructor is
//! private), so the thin HTTP/1.1 reading and writing it did is done here:
//! - the head is read into a buffer that never grows past `max_head_bytes`
//!   (431 beyond it), by the `header_timeout` deadline counted from accept
//!   (408), and parsed with httparse;
//! - a body needs `Content-Length` (411 for `Transfer-Encoding`), at most
//!   `max_body_bytes` (413, decided from the header, before reading it), by
//!   the `body_timeout` deadline counted from the end of the head;
//! - every response says `Connection: close`: one request per connection
//!   keeps each deadline a plain deadline (no keep-alive idle state to
//!   police), and the dashboard's polling costs one short connection per
//!   call;
//! - after the response the write side is shut and late input is discarded
//!   for at most `linger`, so an error answer reaches a client that is still
//!   sending instead of being destroyed by a reset.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use crate::limits::AdminLimits;
use crate::slots::{Phase, Slot};

/// Header fields accepted in one head (as the data plane); more is a 431.
const MAX_HEADERS: usize = 100;
/// Read granularity; the buffers themselves are bounded by the limits.
const CHUNK: usize = 4096;

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    /// As sent (the server upper-cases it for routing).
    pub method: String,
    /// The request target, query included.
    pub target: String,
    headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of the header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why no request head was read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The peer closed, reset, or the connection was evicted: nobody to answer.
    Gone,
    /// The header deadline passed first (→ 408).
    TimedOut,
    /// Longer than `max_head_bytes`, or too many fields (→ 431).
    TooLarge,
    /// Not an HTTP/1.x request head (→ 400).
    Malformed,
}

/// Why no request body was read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// The peer closed or the connection was evicted.
    Gone,
    /// The body deadline passed first (→ 408).
    TimedOut,
    /// `Content-Length` above `max_body_bytes` (→ 413).
    TooLarge,
    /// `Transfer-Encoding` instead of `Content-Length` (→ 411).
    Unframed,
    /// A malformed or conflicting `Content-Length` (→ 400).
    BadLength,
}

/// Why a read stopped.
enum Stop {
    Gone,
    TimedOut,
}

/// One accepted admin connection.
pub(crate) struct Conn {
    stream: Arc<TcpStream>,
    slot: Slot,
    limits: AdminLimits,
    accepted: Instant,
    /// Bytes that arrived after the head: the start of the body.
    pending: Vec<u8>,
}

impl Conn {
    pub(crate) fn new(stream: Arc<TcpStream>, slot: Slot, limits: AdminLimits) -> Conn {
        // Small answers: don't let Nagle hold the last segment back.
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            slot,
            limits,
            accepted: Instant::now(),
            pending: Vec::new(),
        }
    }

    /// The limits this connection is held to.
    pub(crate) fn limits(&self) -> &AdminLimits {
        &self.limits
    }

    /// Reads one read's worth into `buf`, giving up at `deadline`.
    fn read_by(&self, buf: &mut [u8], deadline: Instant) -> Result<usize, Stop> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Stop::TimedOut);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|_| Stop::Gone)?;
            match (&*self.stream).read(buf) {
                Ok(0) => return Err(Stop::Gone),
                Ok(n) => return Ok(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return Err(Stop::Gone),
            }
        }
    }

    /// Reads and parses the request head (see the module docs for limits).
    pub(crate) fn read_head(&mut self) -> Result<Head, HeadError> {
        let deadline = self.accepted + self.limits.header_timeout;
        let max = self.limits.max_head_bytes;
        let mut buf: Vec<u8> = Vec::with_capacity(max.min(CHUNK));
        let mut chunk = [0u8; CHUNK];
        loop {
            if buf.len() >= max {
                return Err(HeadError::TooLarge);
            }
            let want = CHUNK.min(max - buf.len());
            let n = self
                .read_by(&mut chunk[..want], deadline)
                .map_err(|s| match s {
                    Stop::Gone => HeadError::Gone,
                    Stop::TimedOut => HeadError::TimedOut,
                })?;
            // Only parse once a blank line may have arrived (it may straddle
            // two reads), so a byte-at-a-time client costs no re-parsing.
            let from = buf.len().saturating_sub(2);
            buf.extend_from_slice(&chunk[..n]);
            if !ends_a_head(&buf[from..]) {
                continue;
            }
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut fields);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = Head {
                        method: req.method.unwrap_or_default().to_string(),
                        target: req.path.unwrap_or_default().to_string(),
                        headers: req
                            .headers
                            .iter()
                            .map(|h| {
                                let v = String::from_utf8_lossy(h.value).trim().to_string();
                                (h.name.to_string(), v)
                            })
                            .collect(),
                    };
                    self.pending = buf.split_off(len);
                    return Ok(head);
                }
                // Blank lines before the request line; keep reading.
                Ok(httparse::Status::Partial) => continue,
                Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
                Err(_) => return Err(HeadError::Malformed),
            }
        }
    }

    /// Reads the body `head` announces (empty without `Content-Length`),
    /// refusing one longer than `max` bytes.
    pub(crate) fn read_body_up_to(
        &mut self,
        head: &Head,
        max: usize,
    ) -> Result<Vec<u8>, BodyError> {
        if head.header("transfer-encoding").is_some() {
            return Err(BodyError::Unframed);
        }
        let len = content_length(head)?;
        if len > max as u64 {
            return Err(BodyError::TooLarge);
        }
        let len = len as usize;
        let expects = head
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if len > self.pending.len() && expects {
            // curl waits for this before sending a larger body.
            let _ = self.send(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let deadline = Instant::now() + self.limits.body_timeout;
        let mut body = std::mem::take(&mut self.pending);
        body.truncate(len);
        body.reserve_exact(len - body.len());
        let mut chunk = [0u8; CHUNK];
        while body.len() < len {
            let want = CHUNK.min(len - body.len());
            let n = self
                .read_by(&mut chunk[..want], deadline)
                .map_err(|s| match s {
                    Stop::Gone => BodyError::Gone,
                    Stop::TimedOut => BodyError::TimedOut,
                })?;
            body.extend_from_slice(&chunk[..n]);
        }
        Ok(body)
    }

    /// The request is complete: from now on this connection is never
    /// evicted to make room for a new one.
    pub(crate) fn answering(&self) {
        self.slot.set(Phase::Answering);
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.stream
            .set_write_timeout(Some(self.limits.send_timeout))?;
        (&*self.stream).write_all(bytes)
    }

    /// Writes the response (`Connection: close`), then closes gracefully.
    /// `head_only` leaves the body out (an answer to `HEAD`).
    pub(crate) fn respond(
        self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        head_only: bool,
    ) {
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in headers {
            // Values are the admin's own; a stray line break would split
            // the head, so drop such a header rather than send it.
            if !v.contains(['\r', '\n']) {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        let mut bytes = out.into_bytes();
        if !head_only {
            bytes.extend_from_slice(body);
        }
        if let Err(e) = self.send(&bytes) {
            log::debug!("admin: client went away before the response: {e}");
            return;
        }
        self.close();
    }

    /// FIN after the response, then discard whatever the client still sends
    /// for at most `linger` (bounded time, no buffering), then close.
    fn close(self) {
        self.slot.set(Phase::Closing);
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + self.limits.linger;
        let mut sink = [0u8; CHUNK];
        while self.read_by(&mut sink, deadline).is_ok() {}
    }
}

/// Whether `tail` holds the blank line ending a head (CRLF or bare LF).
fn ends_a_head(tail: &[u8]) -> bool {
    tail.windows(2).any(|w| w == b"\n\n") || tail.windows(3).any(|w| w == b"\n\r\n")
}

/// The body length: every `Content-Length` must be the same plain number.
fn content_length(head: &Head) -> Result<u64, BodyError> {
    let mut len = None;
    for v in head.all("content-length") {
        for item in v.split(',') {
            let item = item.trim();
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BodyError::BadLength);
            }
            let n: u64 = item.parse().map_err(|_| BodyError::BadLength)?;
            if len.is_some_and(|l| l != n) {
                return Err(BodyError::BadLength);
            }
            len = Some(n);
        }
    }
    Ok(len.unwrap_or(0))
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> Head {
        Head {
            method: "POST".into(),
            target: "/".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(&head(&[])), Ok(0));
        assert_eq!(content_length(&head(&[("Content-Length", "12")])), Ok(12));
        assert_eq!(
            content_length(&head(&[
                ("content-length", "5, 5"),
                ("Content-Length", "5")
            ])),
            Ok(5)
        );
        for bad in ["", "-1", "+5", "5, 6", "0x10", "99999999999999999999999"] {
            assert_eq!(
                content_length(&head(&[("Content-Length", bad)])),
                Err(BodyError::BadLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn head_terminators() {
        assert!(ends_a_head(b"x\r\n\r\n"));
        assert!(ends_a_head(b"x\n\n"));
        assert!(!ends_a_head(b"x\r\nHost: a\r\n"));
    }
}
