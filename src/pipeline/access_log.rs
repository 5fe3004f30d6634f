//! The access log: one line per request, buffered in the worker and written
//! in batches (every ~100 ms or 32 KiB), so logging costs no syscall and no
//! lock per request.
//!
//! Line: `time client "METHOD path" status backend duration_ms bytes request_id`.
//!
//! Fields that come from the request (method, target, request id) and the
//! backend name are written escaped the way nginx's `escape=default` does:
//! `"`, `\` and every byte outside 0x20..=0x7E become `\xHH`. So a target
//! cannot close the quoted field and forge the fields after it, a line is
//! always one line, and the escaping is reversible (a literal `\x22` in a
//! path is logged as `\x5Cx22`).

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::AccessLogTarget;
use crate::http::rewrite::{push_decimal, push_ip};

const FLUSH_AT: usize = 32 * 1024;

/// One worker's access-log buffer.
pub struct AccessLog {
    buf: Vec<u8>,
    out: Option<Box<dyn Write + Send>>,
    stamp: [u8; 24],
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

/// One request's log fields.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Client address.
    pub client: IpAddr,
    /// `METHOD path`.
    pub target: &'a [u8],
    /// Status sent.
    pub status: u16,
    /// Backend name or `-`.
    pub backend: &'a str,
    /// Whole-request duration, microseconds.
    pub duration_us: u64,
    /// Response bytes sent.
    pub bytes: u64,
    /// Request id.
    pub request_id: &'a [u8],
}

impl AccessLog {
    /// Opens the target (a file is appended to).
    pub fn open(target: &AccessLogTarget) -> io::Result<AccessLog> {
        let out: Option<Box<dyn Write + Send>> = match target {
            AccessLogTarget::Off => None,
            AccessLogTarget::Stdout => Some(Box::new(io::stdout())),
            AccessLogTarget::File(path) => Some(Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    // Config loading checks the directory; this still names
                    // the file when opening fails for another reason.
                    .map_err(|e| io::Error::new(e.kind(), format!("access_log: '{path}': {e}")))?,
            )),
        };
        let mut log = AccessLog {
            buf: Vec::with_capacity(if out.is_some() { FLUSH_AT + 1024 } else { 0 }),
            out,
            stamp: [b' '; 24],
        };
        log.tick();
        Ok(log)
    }

    /// Whether lines are recorded at all.
    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Refreshes the cached timestamp (called once per loop sweep, not per line).
    pub fn tick(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.stamp = format_utc(now.as_secs(), now.subsec_millis());
    }

    /// Records one request.
    pub fn record(&mut self, e: &Entry) {
        if self.out.is_none() {
            return;
        }
        // Runs for every request: appended piecewise, not through `write!`.
        let b = &mut self.buf;
        b.extend_from_slice(&self.stamp);
        b.push(b' ');
        push_ip(b, e.client);
        b.extend_from_slice(b" \"");
        push_escaped(b, e.target);
        b.extend_from_slice(b"\" ");
        push_decimal(b, u64::from(e.status));
        b.push(b' ');
        push_escaped(b, e.backend.as_bytes());
        b.push(b' ');
        push_millis(b, e.duration_us);
        b.extend_from_slice(b"ms ");
        push_decimal(b, e.bytes);
        b.push(b' ');
        push_escaped(b, e.request_id);
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Writes buffered lines out.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if let Some(out) = self.out.as_mut() {
            let _ = out.write_all(&self.buf);
            let _ = out.flush();
        }
        self.buf.clear();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Appends `field` with `"`, `\` and every byte outside 0x20..=0x7E
/// written as `\xHH`, as nginx's `escape=default` does. (A space is kept:
/// it separates method and target, and httparse lets none into a target.)
pub fn push_escaped(out: &mut Vec<u8>, field: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let plain = |b: &u8| *b != b'"' && *b != b'\\' && (0x20..0x7f).contains(b);
    // Fields are almost always plain: copied in one piece.
    if field.iter().all(plain) {
        out.extend_from_slice(field);
        return;
    }
    for &b in field {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// Appends `us` microseconds as milliseconds with three decimals
/// (`1.500`), as `{:.3}` would print `us / 1000.0`.
fn push_millis(out: &mut Vec<u8>, us: u64) {
    push_decimal(out, us / 1000);
    let frac = us % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn format_utc(secs: u64, millis: u32) -> [u8; 24] {
    let (y, m, d) = crate::algo::clock::civil_date((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut out = [b' '; 24];
    // Formatted straight into the array: the stamp is refreshed every sweep
    // even with logging off, and must not allocate.
    let _ = write!(
        &mut out[..],
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_non_printable_bytes() {
        let mut out = Vec::new();
        push_escaped(&mut out, b"GET /a\"b\\c\x00\x1f\x7f\xff /ok-_.~%20");
        assert_eq!(
            out,
            b"GET /a\\x22b\\x5Cc\\x00\\x1F\\x7F\\xFF /ok-_.~%20".to_vec()
        );
        // Every byte: the result is printable ASCII without `"`, and the
        // only backslashes start escapes.
        let all: Vec<u8> = (0..=255).collect();
        out.clear();
        push_escaped(&mut out, &all);
        assert!(out.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'"'));
        assert_eq!(out.len(), 95 - 2 + (256 - 95 + 2) * 4);
    }

    /// A log writing nowhere, with a fixed time stamp.
    fn sink_log() -> AccessLog {
        AccessLog {
            buf: Vec::new(),
            out: Some(Box::new(io::sink())),
            stamp: [b'T'; 24],
        }
    }

    #[test]
    fn a_line_is_one_line_whatever_the_request_held() {
        let mut log = sink_log();
        log.record(&Entry {
            client: "192.0.2.1".parse().unwrap(),
            target: b"GET /x\" 200 B0 1ms 0 spoofed\n\"",
            status: 404,
            backend: "-",
            duration_us: 1500,
            bytes: 7,
            request_id: b"rid\r\nX",
        });
        let line = String::from_utf8(log.buf.clone()).unwrap();
        assert_eq!(
            line,
            "TTTTTTTTTTTTTTTTTTTTTTTT 192.0.2.1 \"GET /x\\x22 200 B0 1ms 0 spoofed\\x0A\\x22\" 404 - 1.500ms 7 rid\\x0D\\x0AX\n"
        );
    }

    #[test]
    fn millis_match_float_formatting() {
        for us in [
            0,
            1,
            9,
            10,
            999,
            1000,
            1500,
            12_345,
            999_999,
            86_400_000_123,
        ] {
            let mut out = Vec::new();
            push_millis(&mut out, us);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("{:.3}", us as f64 / 1000.0)
            );
        }
    }

    #[test]
    fn ipv6_clients_are_written_as_display_does() {
        let mut log = sink_log();
        log.record(&Entry {
            client: "2001:db8::1".parse().unwrap(),
            target: b"GET /",
            status: 200,
            backend: "b1",
            duration_us: 42,
            bytes: 0,
            request_id: b"r",
        });
        let line = String::from_utf8(log.buf.clone()).unwrap();
        assert_eq!(
            line,
            "TTTTTTTTTTTTTTTTTTTTTTTT 2001:db8::1 \"GET /\" 200 b1 0.042ms 0 r\n"
        );
    }

    #[test]
    fn formats_utc() {
        assert_eq!(&format_utc(0, 0), b"1970-01-01T00:00:00.000Z");
        assert_eq!(&format_utc(1_796_000_000, 42), b"2026-11-30T00:53:20.042Z");
    }
}
