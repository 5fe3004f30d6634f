//! Paths the gateway refuses to forward because a backend could read them as
//! a different path than the `routes` check did.
//!
//! The `routes` prefixes are compared with the raw path, so anything a
//! backend (or a framework behind it) normalizes before routing can climb out
//! of a prefix: `/public/../admin`, `/public/%2e%2e/admin`, `/public/..;/admin`
//! (Tomcat drops `;` path parameters before resolving dot segments),
//! `/public/..%2fadmin` (a decoded `%2F` is a separator to some servers),
//! `/public\..\admin` (a separator on Windows and to some frameworks).
//!
//! `http::normalize` resolves most of these shapes for routing (the path
//! matched is then the path forwarded); this check stays for the requests
//! it does not cover, such as a config without routes, whose targets are
//! forwarded byte for byte. The whole class is refused with 400, for every
//! request, whatever `routes` says:
//! - a dot segment (`.` or `..`, any of its dots percent-encoded in either
//!   case, and with or without `;` parameters after it);
//! - an encoded slash or backslash (`%2F`, `%5C`, either case);
//! - a raw backslash.
//!
//! Only the path is judged (the part before `?`): a query may carry `%2F`
//! and `..` as data. Names that merely contain dots (`/a..b`, `/...`,
//! `/.well-known/x`) are not dot segments and pass untouched. Nothing here
//! allocates: it runs on every request.

use super::normalize::hex_val;

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathViolation {
    /// A `.` or `..` segment, raw or percent-encoded, possibly with `;` params.
    DotSegment,
    /// `%2F` or `%5C`: a separator hidden from prefix matching.
    EncodedSeparator,
    /// A raw `\`, a separator to some backends.
    Backslash,
}

impl PathViolation {
    /// The `error` text of the 400 (plain ASCII, no quotes).
    pub fn reason(self) -> &'static str {
        match self {
            PathViolation::DotSegment => "path contains a dot segment",
            PathViolation::EncodedSeparator => "path contains an encoded slash or backslash",
            PathViolation::Backslash => "path contains a backslash",
        }
    }
}

/// Judges the path of a request-target: `path` is the origin-form target
/// (or the part of an absolute-form target after the authority), query
/// included; `*` and an empty path have no segments and pass.
pub fn check(path: &[u8]) -> Result<(), PathViolation> {
    let path = match path.iter().position(|&b| b == b'?') {
        Some(q) => &path[..q],
        None => path,
    };
    if path.contains(&b'\\') {
        return Err(PathViolation::Backslash);
    }
    if path
        .windows(3)
        .any(|w| w[0] == b'%' && (eq_hex(w, b"2f") || eq_hex(w, b"5c")))
    {
        return Err(PathViolation::EncodedSeparator);
    }
    if path.split(|&b| b == b'/').any(is_dot_segment) {
        return Err(PathViolation::DotSegment);
    }
    Ok(())
}

/// `%XY` (w[0] is `%`) spells `hex`, case-insensitively.
fn eq_hex(w: &[u8], hex: &[u8; 2]) -> bool {
    w[1..3].eq_ignore_ascii_case(hex)
}

/// Whether a raw segment reads as `.` or `..` once percent-decoded and cut
/// at its first `;` (path parameters, RFC 2396 §3.3, which Tomcat and
/// others still strip before resolving dot segments). `%3B` counts as `;`
/// too: a server that decodes before splitting parameters would see one.
fn is_dot_segment(seg: &[u8]) -> bool {
    let mut dots = 0usize;
    for b in Decoded(seg) {
        match b {
            b'.' => dots += 1,
            b';' => break,
            _ => return false,
        }
        if dots > 2 {
            return false;
        }
    }
    dots == 1 || dots == 2
}

/// The bytes of a segment with `%XY` escapes decoded (a `%` not followed by
/// two hex digits stands for itself, as lenient decoders read it).
struct Decoded<'a>(&'a [u8]);

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        if first == b'%' {
            if let [h, l, tail @ ..] = rest {
                if let (Some(h), Some(l)) = (hex_val(*h), hex_val(*l)) {
                    self.0 = tail;
                    return Some(h << 4 | l);
                }
            }
        }
        self.0 = rest;
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PathViolation::*;

    #[test]
    fn refuses_every_spelling_of_a_dot_segment() {
        for p in [
            "/public/../echo/internal",
            "/public/..",
            "/..",
            "..",
            "/a/./b",
            "/a/.",
            "/./a",
            "/public/%2e%2e/echo",
            "/public/%2E%2E/echo",
            "/public/.%2e/echo",
            "/public/%2e./echo",
            "/public/.%2E/x",
            "/public/%2e/x",
            "/public/..;/echo",
            "/public/..;jsessionid=1/echo",
            "/public/.;/echo",
            "/public/%2e%2e;x/echo",
            "/public/..%3b/echo",
            "/public/..%3B/echo",
            "/public//../echo",
            "/public/../",
            "/x/..?q=1",
        ] {
            assert_eq!(check(p.as_bytes()), Err(DotSegment), "{p}");
        }
    }

    #[test]
    fn refuses_encoded_separators_and_backslashes() {
        for p in [
            "/public/..%2fecho",
            "/public/..%2Fecho",
            "/a%2fb",
            "/a%5c..%5cb",
            "/a%5Cb",
            "/%2F",
        ] {
            assert_eq!(check(p.as_bytes()), Err(EncodedSeparator), "{p}");
        }
        for p in ["/a\\b", "/public\\..\\echo", "\\"] {
            assert_eq!(check(p.as_bytes()), Err(Backslash), "{p}");
        }
    }

    #[test]
    fn passes_names_that_only_look_close() {
        for p in [
            "/",
            "",
            "*",
            "/a..b",
            "/...",
            "/..../x",
            "/.well-known/x",
            "/a.b/c",
            "/a/b.",
            "/.a",
            "/..a",
            "/a/%2e%2e%2e",
            "/a/.%2e.",
            "/a/%2ex",
            "/a/%2",
            "/a/%",
            "/a/%zz",
            "/a/%25%32%65",
            "/a;b/..c",
            "/a/;/b",
            "/search?q=../../etc&r=%2F%5C\\",
            "/x?..",
        ] {
            assert_eq!(check(p.as_bytes()), Ok(()), "{p}");
        }
    }

    #[test]
    fn decoding_is_lenient_and_bounded() {
        assert_eq!(Decoded(b"%41%4a%zz%").collect::<Vec<_>>(), b"AJ%zz%");
        assert_eq!(Decoded(b"").count(), 0);
        // Arbitrary bytes never panic.
        for b in 0..=255u8 {
            let _ = check(&[b'/', b, b'%', b]);
        }
    }
}
