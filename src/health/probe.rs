//! One health-check probe as bytes, without a socket: the request it sends,
//! what it has read so far, and the verdict those bytes allow.
//!
//! Invariants: the reply buffer never holds more than [`MAX_REPLY`] bytes;
//! a verdict is decided from the response head alone (the status line and
//! header fields, RFC 9112 §4 and §5); the body is never read. Nothing
//! here touches a socket or a clock: the checker does the I/O and reports
//! connects, reads, closes and deadlines as calls.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::config::resilience::{ExpectStatus, HealthCheck};

/// The most reply bytes one probe reads: a health endpoint's head fits in
/// far less, and a probe must never buffer a backend's arbitrary output.
pub const MAX_REPLY: usize = 8 * 1024;

/// Header fields parsed in a reply head at most (more is a failure).
const MAX_HEADERS: usize = 64;

/// The `User-Agent` probes send, so a backend's logs can tell them apart.
pub const USER_AGENT: &str = "api-gateway-health-check";

/// The `Host` a probe sends: the check's `host`, else the backend's address
/// (`127.0.0.1:9001`, `[::1]:9001`: the authority form of RFC 9112 §3.2).
pub fn host_for(check: &HealthCheck, addr: SocketAddr) -> String {
    check.host.clone().unwrap_or_else(|| addr.to_string())
}

/// The probe request. `Connection: close` because a probe is one exchange:
/// the backend may close once it has answered and the checker closes as
/// soon as it has a verdict, so no connection is ever reused or pooled.
/// `path` and `host` come from a validated config (no spaces or control
/// bytes), so neither can split the request line or add a header.
pub fn request(path: &str, host: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The TCP connect failed (refused, unreachable, ...).
    ConnectFailed(io::ErrorKind),
    /// No verdict before the check's `timeout_ms`.
    TimedOut,
    /// Sending the request or reading the reply failed (a reset, mostly).
    Io(io::ErrorKind),
    /// The backend closed the connection before a whole status line.
    ClosedBeforeStatus,
    /// The backend closed the connection inside the reply head.
    ClosedInHead,
    /// The first line is not an HTTP/1.x status line.
    BadStatusLine,
    /// A header field of the reply head is malformed.
    BadHead,
    /// The reply head did not fit in [`MAX_REPLY`] bytes or
    /// `MAX_HEADERS` fields.
    HeadTooLarge,
    /// A well-formed status the check does not accept.
    UnexpectedStatus(u16),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `ErrorKind`'s text ("connection refused") is the clearest
            // cause an operator can get; other kinds say what step failed.
            Reason::ConnectFailed(io::ErrorKind::ConnectionRefused) => {
                f.write_str("connection refused")
            }
            Reason::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            Reason::TimedOut => f.write_str("timed out"),
            Reason::Io(kind) => write!(f, "connection error: {kind}"),
            Reason::ClosedBeforeStatus => f.write_str("closed before a status"),
            Reason::ClosedInHead => f.write_str("closed inside the reply head"),
            Reason::BadStatusLine => f.write_str("bad status line"),
            Reason::BadHead => f.write_str("bad reply head"),
            Reason::HeadTooLarge => f.write_str("reply head too large"),
            Reason::UnexpectedStatus(s) => write!(f, "unexpected status {s}"),
        }
    }
}

/// What the bytes so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not decided yet: keep reading.
    Pending,
    /// The check passed with this status (`None`: a connect-only probe,
    /// which passes once the TCP handshake completes).
    Pass(Option<u16>),
    /// The check failed.
    Fail(Reason),
}

impl Verdict {
    /// Whether the probe is over.
    pub fn is_decided(self) -> bool {
        self != Verdict::Pending
    }
}

/// Judges the reply read so far: `closed` once the backend closed its side
/// (no more bytes will come).
///
/// A complete head decides by its status. A head still partial waits for
/// more bytes, unless the buffer is full ([`MAX_REPLY`]) or the backend
/// closed. A 1xx interim status decides too (a probe never sends
/// `Expect`, so a backend has no reason to send one; a check that wants
/// one may say `"1xx"`).
pub fn judge(reply: &[u8], closed: bool, expect: ExpectStatus) -> Verdict {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut fields);
    match head.parse(reply) {
        Ok(httparse::Status::Complete(_)) => {
            // httparse sets `code` on every complete head.
            let status = head.code.unwrap_or(0);
            if expect.accepts(status) {
                Verdict::Pass(Some(status))
            } else {
                Verdict::Fail(Reason::UnexpectedStatus(status))
            }
        }
        Ok(httparse::Status::Partial) if closed => {
            // httparse sets `reason` only once the status line's CRLF was
            // read: past it, the close cut the header section.
            Verdict::Fail(match head.reason {
                Some(_) => Reason::ClosedInHead,
                None => Reason::ClosedBeforeStatus,
            })
        }
        Ok(httparse::Status::Partial) if reply.len() >= MAX_REPLY => {
            Verdict::Fail(Reason::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => Verdict::Pending,
        Err(httparse::Error::Version | httparse::Error::Status) => {
            Verdict::Fail(Reason::BadStatusLine)
        }
        Err(httparse::Error::TooManyHeaders) => Verdict::Fail(Reason::HeadTooLarge),
        Err(_) => Verdict::Fail(Reason::BadHead),
    }
}

/// Where a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The non-blocking connect is under way.
    Connecting,
    /// Connected; request bytes remain to be sent.
    Sending,
    /// The whole request is sent; reading the reply head.
    Reading,
}

/// One probe's bytes: the request left to send and the reply read so far.
/// The checker owns one per target while a probe is in flight.
#[derive(Debug)]
pub struct Probe {
    phase: Phase,
    /// The request; empty for a connect-only probe.
    request: Vec<u8>,
    sent: usize,
    /// The reply's first bytes (`[..read]`); [`MAX_REPLY`] long.
    reply: Box<[u8]>,
    read: usize,
    expect: ExpectStatus,
}

impl Probe {
    /// An HTTP probe sending `request` and passing on `expect`.
    pub fn http(request: Vec<u8>, expect: ExpectStatus) -> Probe {
        Probe {
            phase: Phase::Connecting,
            request,
            sent: 0,
            reply: vec![0; MAX_REPLY].into_boxed_slice(),
            read: 0,
            expect,
        }
    }

    /// A probe that passes once connected (backends spoken to over TLS:
    /// the checker has no TLS client, and a handshake per probe would cost
    /// the backend more than the check is worth).
    pub fn connect_only() -> Probe {
        Probe {
            phase: Phase::Connecting,
            request: Vec::new(),
            sent: 0,
            reply: Box::default(),
            read: 0,
            // Never consulted: no reply is read.
            expect: ExpectStatus::Class(2),
        }
    }

    /// Where it is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The connect completed: a connect-only probe has passed, an HTTP
    /// probe starts sending.
    pub fn connected(&mut self) -> Verdict {
        debug_assert_eq!(self.phase, Phase::Connecting);
        if self.request.is_empty() {
            return Verdict::Pass(None);
        }
        self.phase = Phase::Sending;
        Verdict::Pending
    }

    /// The request bytes not sent yet.
    pub fn unsent(&self) -> &[u8] {
        &self.request[self.sent..]
    }

    /// `n` more request bytes were sent; once all are, it reads.
    pub fn wrote(&mut self, n: usize) {
        debug_assert_eq!(self.phase, Phase::Sending);
        self.sent = (self.sent + n).min(self.request.len());
        if self.sent == self.request.len() {
            self.phase = Phase::Reading;
        }
    }

    /// Room left for reply bytes (empty once [`MAX_REPLY`] were read, when
    /// [`judge`] has decided anyway).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.reply[self.read..]
    }

    /// `n` more reply bytes are in [`Probe::spare`]'s former start;
    /// `n == 0` means the backend closed its side.
    pub fn filled(&mut self, n: usize) -> Verdict {
        debug_assert_eq!(self.phase, Phase::Reading);
        self.read = (self.read + n).min(self.reply.len());
        judge(&self.reply[..self.read], n == 0, self.expect)
    }

    /// The reply read so far.
    pub fn reply(&self) -> &[u8] {
        &self.reply[..self.read]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_XX: ExpectStatus = ExpectStatus::Class(2);

    fn j(bytes: &[u8]) -> Verdict {
        judge(bytes, false, TWO_XX)
    }

    #[test]
    fn the_request_names_host_agent_and_close() {
        let check = HealthCheck::default();
        let addr: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        assert_eq!(
            request(&check.path, &host_for(&check, addr)),
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\
              User-Agent: api-gateway-health-check\r\nConnection: close\r\n\r\n"
        );
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(host_for(&check, v6), "[::1]:80");
        let named = HealthCheck {
            host: Some("users.internal".into()),
            ..HealthCheck::default()
        };
        assert_eq!(host_for(&named, addr), "users.internal");
    }

    #[test]
    fn a_complete_head_decides_by_status() {
        assert_eq!(
            j(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Verdict::Pass(Some(200))
        );
        assert_eq!(j(b"HTTP/1.0 204 \r\n\r\n"), Verdict::Pass(Some(204)));
        assert_eq!(
            j(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"),
            Verdict::Fail(Reason::UnexpectedStatus(503))
        );
        assert_eq!(
            judge(
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                ExpectStatus::Exact(200)
            ),
            Verdict::Fail(Reason::UnexpectedStatus(204))
        );
        // The body is never needed: the head alone decides.
        assert_eq!(
            j(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
            Verdict::Pass(Some(200))
        );
    }

    #[test]
    fn a_partial_head_waits_until_closed_or_full() {
        for partial in [
            &b""[..],
            b"HTTP/1.",
            b"HTTP/1.1 200",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.1 200 OK\r\nServer: x\r\n",
        ] {
            assert_eq!(j(partial), Verdict::Pending, "{partial:?}");
        }
        assert_eq!(
            judge(b"", true, TWO_XX),
            Verdict::Fail(Reason::ClosedBeforeStatus)
        );
        assert_eq!(
            judge(b"HTTP/1.1 20", true, TWO_XX),
            Verdict::Fail(Reason::ClosedBeforeStatus)
        );
        assert_eq!(
            judge(b"HTTP/1.1 200 OK\r\nServer: x\r\n", true, TWO_XX),
            Verdict::Fail(Reason::ClosedInHead)
        );
        let mut big = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        big.resize(MAX_REPLY, b'a');
        assert_eq!(j(&big), Verdict::Fail(Reason::HeadTooLarge));
    }

    #[test]
    fn garbage_fails_with_its_cause() {
        assert_eq!(
            j(b"SSH-2.0-OpenSSH_9.6\r\n"),
            Verdict::Fail(Reason::BadStatusLine)
        );
        assert_eq!(
            j(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Verdict::Fail(Reason::BadStatusLine)
        );
        assert_eq!(
            j(b"HTTP/1.1 200 OK\r\nBad Name: v\r\n\r\n"),
            Verdict::Fail(Reason::BadHead)
        );
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"a: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(j(&many), Verdict::Fail(Reason::HeadTooLarge));
    }

    #[test]
    fn reasons_read_as_operators_expect() {
        let text = |r: Reason| r.to_string();
        assert_eq!(
            text(Reason::ConnectFailed(io::ErrorKind::ConnectionRefused)),
            "connection refused"
        );
        assert_eq!(
            text(Reason::ConnectFailed(io::ErrorKind::HostUnreachable)),
            "connect failed: host unreachable"
        );
        assert_eq!(text(Reason::TimedOut), "timed out");
        assert_eq!(
            text(Reason::Io(io::ErrorKind::ConnectionReset)),
            "connection error: connection reset"
        );
        assert_eq!(text(Reason::ClosedBeforeStatus), "closed before a status");
        assert_eq!(text(Reason::BadStatusLine), "bad status line");
        assert_eq!(text(Reason::UnexpectedStatus(500)), "unexpected status 500");
    }

    #[test]
    fn a_probe_sends_then_reads_in_any_chunking() {
        let req = request("/health", "b:1");
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for split in 1..reply.len() {
            let mut p = Probe::http(req.clone(), TWO_XX);
            assert_eq!(p.phase(), Phase::Connecting);
            assert_eq!(p.connected(), Verdict::Pending);
            // A short write leaves the rest to send.
            p.wrote(3);
            assert_eq!(p.phase(), Phase::Sending);
            assert_eq!(p.unsent(), &req[3..]);
            p.wrote(req.len() - 3);
            assert_eq!(p.phase(), Phase::Reading);
            let mut verdict = Verdict::Pending;
            for chunk in [&reply[..split], &reply[split..]] {
                p.spare()[..chunk.len()].copy_from_slice(chunk);
                verdict = p.filled(chunk.len());
                if verdict.is_decided() {
                    break;
                }
            }
            assert_eq!(verdict, Verdict::Pass(Some(200)), "split at {split}");
        }
    }

    #[test]
    fn a_probe_fails_on_close_and_never_reads_past_its_bound() {
        let mut p = Probe::http(request("/", "h"), TWO_XX);
        p.connected();
        p.wrote(p.unsent().len());
        assert_eq!(p.filled(0), Verdict::Fail(Reason::ClosedBeforeStatus));

        let mut p = Probe::http(request("/", "h"), TWO_XX);
        p.connected();
        p.wrote(p.unsent().len());
        let head = b"HTTP/1.1 200 OK\r\nX-Pad: ";
        p.spare()[..head.len()].copy_from_slice(head);
        let mut verdict = p.filled(head.len());
        while !verdict.is_decided() {
            let room = p.spare();
            assert!(!room.is_empty(), "a full buffer decides");
            room.fill(b'a');
            let n = room.len();
            verdict = p.filled(n);
        }
        assert_eq!(verdict, Verdict::Fail(Reason::HeadTooLarge));
        assert_eq!(p.reply().len(), MAX_REPLY);
    }

    #[test]
    fn a_connect_only_probe_passes_once_connected() {
        let mut p = Probe::connect_only();
        assert_eq!(p.connected(), Verdict::Pass(None));
        assert!(p.unsent().is_empty());
    }
}
