//! A one-shot HTTP/1.1 client over a plain std `TcpStream`, used by the load
//! tester and the demo crash switch.
//!
//! One request per connection with `Connection: close`, read to EOF, so no
//! framing beyond the status line and headers is needed. Every step has a
//! timeout and the body read is capped: a misbehaving peer can cost at most
//! the timeouts, never unbounded memory or a stuck admin thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response we keep; the rest is read and discarded so the peer
/// still sees an orderly close.
const MAX_KEEP: usize = 256 * 1024;

/// Timeouts for one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
}

/// What came back.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub status: u16,
    /// Header names lower-cased, values trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of the header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method path` (plus the `extra` header lines) to `addr` and reads
/// the whole response.
///
/// `path` and `extra` must already be validated (no whitespace or control
/// bytes in `path`, no line breaks in `extra`), since they are written into
/// the head verbatim.
pub(crate) fn one_shot(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    t: Timeouts,
) -> io::Result<RawResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, t.connect)?;
    stream.set_read_timeout(Some(t.io))?;
    stream.set_write_timeout(Some(t.io))?;
    // Small requests: don't let Nagle hold the last segment back.
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: api-gateway-admin\r\n\
         Accept: */*\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;

    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let room = MAX_KEEP.saturating_sub(buf.len());
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A reset after a complete response (peer closed with unread
            // input) still leaves a usable answer.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !buf.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse_response(&buf)
}

/// Parses `HTTP/1.x NNN reason\r\n headers \r\n\r\n body`.
fn parse_response(buf: &[u8]) -> io::Result<RawResponse> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let end = find(buf, b"\r\n\r\n").ok_or_else(|| bad("incomplete response head"))?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("non-UTF-8 response head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(bad("not an HTTP/1.x response"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| bad("bad status code"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(RawResponse {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_headers_body() {
        let r = parse_response(b"HTTP/1.1 429 Too Many\r\nX-Backend: Backend-B\r\nA: b\r\n\r\nhi")
            .unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.header("x-backend"), Some("Backend-B"));
        assert_eq!(r.body, b"hi");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 abc x\r\n\r\n").is_err());
    }
}
