//! Normalization of a request path before routing: the path routes match on
//! is the path the backend receives, so no spelling of a path can reach a
//! route its normalized form does not (`/public/../admin`, `//admin`,
//! `/%61dmin`, `/public/%2e%2e/admin` all become `/admin`, and are routed
//! and forwarded as `/admin`).
//!
//! Rules (RFC 3986 §6.2.2 syntax-based normalization, plus refusals):
//! - `%XY` for an unreserved character (ALPHA DIGIT `-` `.` `_` `~`) is
//!   decoded; every other escape is kept, its hex upper-cased. An escape
//!   without two hex digits is refused: what it means depends on the reader.
//! - `%2F`, `%5C` (a separator hidden from matching), `%00` and a raw `\`
//!   (a separator to some backends) are refused.
//! - Dot segments are removed (§5.2.4), decoded dots included; a `..` that
//!   would climb above `/` is refused rather than clamped, since a client
//!   sending one is probing, not browsing.
//! - Empty segments are dropped (`//a` → `/a`), keeping a trailing slash.
//! - A dot segment with `;` parameters (`..;`, `.;x`, `%2e%2e%3B`) is
//!   refused: Tomcat and others drop the parameters and then resolve the dot
//!   segment, which would climb out of the matched prefix.
//! - The query, from the first `?`, is copied byte for byte.
//!
//! Invariants of an accepted output: it starts with `/` (or is `*`), has no
//! `.` or `..` segment and no `//` in its path part, and normalizing it again
//! gives the same bytes. Nothing here allocates beyond `out`, which the
//! caller reuses.

/// Why a request path is refused (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// `%2F` or `%5C`: a separator hidden from prefix matching.
    EncodedSeparator,
    /// `%00`.
    EncodedNul,
    /// A raw `\`.
    Backslash,
    /// A `..` segment with nothing left to remove.
    AboveRoot,
    /// A `.` or `..` segment followed by `;` parameters.
    DotSegmentParams,
    /// Neither `/...`, empty nor `*`.
    NotOriginForm,
}

impl PathError {
    /// The `error` text of the 400 (plain ASCII, no quotes).
    pub fn reason(self) -> &'static str {
        match self {
            PathError::MalformedEscape => "path contains a malformed percent escape",
            PathError::EncodedSeparator => "path contains an encoded slash or backslash",
            PathError::EncodedNul => "path contains an encoded NUL",
            PathError::Backslash => "path contains a backslash",
            PathError::AboveRoot => "path climbs above the root",
            PathError::DotSegmentParams => "path contains a dot segment with parameters",
            PathError::NotOriginForm => "path does not start with a slash",
        }
    }
}

/// Normalizes an origin-form path-and-query (what `RequestHead::path`
/// spans: starts with '/', or is empty for `http://host` absolute-form, or
/// `*`) into `out` (cleared first). Returns the length of the path part in
/// `out` (the query, from '?', is appended untouched after it).
pub fn normalize_target(target: &[u8], out: &mut Vec<u8>) -> Result<usize, PathError> {
    out.clear();
    if target == b"*" {
        out.push(b'*');
        return Ok(1);
    }
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => target.split_at(q),
        None => (target, &b""[..]),
    };
    let rest = match path {
        [] => &b""[..],
        [b'/', rest @ ..] => rest,
        _ => return Err(PathError::NotOriginForm),
    };
    // `out` holds the resolved segments as "/s1/s2" (no trailing slash)
    // while they are processed; `trailing` says whether the last input
    // segment asks for one (`/a/`, `/a/.`, `/a/b/..` all end in "/").
    let mut trailing = false;
    for seg in rest.split(|&b| b == b'/') {
        let start = out.len();
        out.push(b'/');
        let semicolon = decode_segment(seg, out)?;
        let name_end = semicolon.map_or(out.len(), |s| start + 1 + s);
        match &out[start + 1..name_end] {
            b"." | b".." if semicolon.is_some() => return Err(PathError::DotSegmentParams),
            b"" if semicolon.is_none() => {
                out.truncate(start);
                trailing = true;
            }
            b"." => {
                out.truncate(start);
                trailing = true;
            }
            b".." => {
                out.truncate(start);
                // The segments are "/"-prefixed, so the last '/' starts the
                // one to remove; none left means climbing above the root.
                let parent = out
                    .iter()
                    .rposition(|&b| b == b'/')
                    .ok_or(PathError::AboveRoot)?;
                out.truncate(parent);
                trailing = true;
            }
            _ => trailing = false,
        }
    }
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    let path_len = out.len();
    out.extend_from_slice(query);
    Ok(path_len)
}

/// Appends one raw segment to `out` with unreserved escapes decoded and the
/// others upper-cased. Returns the offset (in the written segment) of its
/// first `;` or `%3B`, which starts its parameters.
fn decode_segment(seg: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, PathError> {
    let start = out.len();
    let mut semicolon = None;
    let mut rest = seg;
    // Copy the runs between the bytes that need a look (`%`, `\`, `;`) in
    // one extend each: most segments are a single run.
    while let Some(i) = rest.iter().position(|&b| matches!(b, b'%' | b'\\' | b';')) {
        out.extend_from_slice(&rest[..i]);
        match rest[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    rest.get(i + 1).copied().and_then(hex_val),
                    rest.get(i + 2).copied().and_then(hex_val),
                ) else {
                    return Err(PathError::MalformedEscape);
                };
                let v = h << 4 | l;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::EncodedNul),
                    _ if is_unreserved(v) => out.push(v),
                    _ => {
                        if v == b';' && semicolon.is_none() {
                            semicolon = Some(out.len() - start);
                        }
                        out.extend_from_slice(&[b'%', HEX[usize::from(h)], HEX[usize::from(l)]]);
                    }
                }
                rest = &rest[i + 3..];
            }
            b'\\' => return Err(PathError::Backslash),
            _ => {
                if semicolon.is_none() {
                    semicolon = Some(out.len() - start);
                }
                out.push(b';');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
    Ok(semicolon)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 3986 §2.3.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The value of one hex digit (either case).
pub(super) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use PathError::*;

    fn norm(s: &str) -> Result<String, PathError> {
        let mut out = Vec::new();
        let n = normalize_target(s.as_bytes(), &mut out)?;
        let s = String::from_utf8(out).unwrap();
        let q = s.find('?').unwrap_or(s.len());
        assert_eq!(n, q, "path length of {s}");
        Ok(s)
    }

    #[test]
    fn table() {
        let ok: &[(&str, &str)] = &[
            // The route-bypass shapes.
            ("/public/../admin", "/admin"),
            ("//admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/./admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/public//../admin", "/admin"),
            // Dot segments (RFC 3986 §5.2.4).
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/..", "/"),
            ("/.", "/"),
            ("/a/b/c/./../../g", "/a/g"),
            // Slashes.
            ("/", "/"),
            ("", "/"),
            ("//", "/"),
            ("///", "/"),
            ("/a//b", "/a/b"),
            ("/a/", "/a/"),
            ("/a//", "/a/"),
            ("/a///b//", "/a/b/"),
            // Escapes.
            ("/%7euser", "/~user"),
            ("/%41%2D%5F%7E%30", "/A-_~0"),
            ("/a%3ab", "/a%3Ab"),
            ("/a%20b", "/a%20b"),
            ("/%25", "/%25"),
            ("/%2561", "/%2561"),
            ("/a%2eb", "/a.b"),
            ("/%c3%a9", "/%C3%A9"),
            // Names that only contain dots are names.
            ("/a..b", "/a..b"),
            ("/...", "/..."),
            ("/.well-known/x", "/.well-known/x"),
            ("/..a/.b", "/..a/.b"),
            ("/a/%2e%2e%2e", "/a/..."),
            // Parameters on ordinary segments stay.
            ("/a;b/c", "/a;b/c"),
            ("/a/;/b", "/a/;/b"),
            ("/a;x/..", "/"),
            // The query is never touched.
            ("/a/../b?x=/../%2f%zz\\", "/b?x=/../%2f%zz\\"),
            ("?q", "/?q"),
            ("/?", "/?"),
            ("//a?//b", "/a?//b"),
            ("*", "*"),
        ];
        for (input, want) in ok {
            assert_eq!(norm(input).as_deref(), Ok(*want), "{input}");
        }
        let bad: &[(&str, PathError)] = &[
            ("/%2e%2e/x", AboveRoot),
            ("/..", AboveRoot),
            ("/../a", AboveRoot),
            ("/a/../..", AboveRoot),
            ("/a/../../b", AboveRoot),
            ("//..", AboveRoot),
            ("/a%2fb", EncodedSeparator),
            ("/a%2Fb", EncodedSeparator),
            ("/a%5cb", EncodedSeparator),
            ("/a%5Cb", EncodedSeparator),
            ("/..%2fadmin", EncodedSeparator),
            ("/a%00", EncodedNul),
            ("/a\\b", Backslash),
            ("/public\\..\\admin", Backslash),
            ("/%", MalformedEscape),
            ("/%4", MalformedEscape),
            ("/%zz", MalformedEscape),
            ("/a%4g", MalformedEscape),
            ("/public/..;/admin", DotSegmentParams),
            ("/public/.;x/admin", DotSegmentParams),
            ("/public/%2e%2e;/admin", DotSegmentParams),
            ("/public/..;jsessionid=1", DotSegmentParams),
            ("/public/..%3b/admin", DotSegmentParams),
            ("/public/.%3B", DotSegmentParams),
            ("a/b", NotOriginForm),
            ("**", NotOriginForm),
            ("*/a", NotOriginForm),
        ];
        for (input, want) in bad {
            assert_eq!(norm(input), Err(*want), "{input}");
        }
    }

    #[test]
    fn reasons_are_plain_ascii() {
        for e in [
            MalformedEscape,
            EncodedSeparator,
            EncodedNul,
            Backslash,
            AboveRoot,
            DotSegmentParams,
            NotOriginForm,
        ] {
            let r = e.reason();
            assert!(!r.is_empty() && r.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'"'));
        }
    }

    #[test]
    fn out_is_reused_without_growing() {
        let mut out = Vec::with_capacity(64);
        let cap = out.capacity();
        for p in ["/a/b/../c?x", "//x", "/%61", "/..", "*"] {
            let _ = normalize_target(p.as_bytes(), &mut out);
        }
        assert_eq!(out.capacity(), cap);
    }

    /// The independent reference resolution: split on '/', decode the
    /// unreserved escapes of each segment, resolve with a stack. Written
    /// with owned strings and no shared code, so a bug in the in-place
    /// version does not hide in both.
    fn reference(path: &str) -> Option<String> {
        let rest = path.strip_prefix('/')?;
        let segs: Vec<&str> = rest.split('/').collect();
        let mut stack: Vec<String> = Vec::new();
        for (i, raw) in segs.iter().enumerate() {
            let mut seg = String::new();
            let bytes = raw.as_bytes();
            let mut j = 0;
            while j < bytes.len() {
                if bytes[j] == b'%' {
                    let hex = std::str::from_utf8(bytes.get(j + 1..j + 3)?).ok()?;
                    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return None;
                    }
                    let v = u8::from_str_radix(hex, 16).ok()?;
                    if v == b'/' || v == b'\\' || v == 0 {
                        return None;
                    }
                    if v.is_ascii_alphanumeric() || "-._~".contains(v as char) {
                        seg.push(v as char);
                    } else {
                        seg.push_str(&format!("%{v:02X}"));
                    }
                    j += 3;
                } else if bytes[j] == b'\\' {
                    return None;
                } else {
                    seg.push(bytes[j] as char);
                    j += 1;
                }
            }
            let name = seg
                .split([';'])
                .next()
                .unwrap()
                .split("%3B")
                .next()
                .unwrap();
            let has_params = name.len() != seg.len();
            let last = i + 1 == segs.len();
            let dir = matches!(seg.as_str(), "" | "." | "..");
            match name {
                "." | ".." if has_params => return None,
                ".." => {
                    stack.pop()?;
                }
                "" | "." if !has_params => {}
                _ => stack.push(seg),
            }
            if last {
                let mut s = String::new();
                for p in &stack {
                    s.push('/');
                    s.push_str(p);
                }
                if dir || stack.is_empty() {
                    s.push('/');
                }
                return Some(s);
            }
        }
        unreachable!("split yields at least one segment")
    }

    fn segment() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("a"),
            Just("admin"),
            Just("public"),
            Just("."),
            Just(".."),
            Just("%2e"),
            Just("%2E%2e"),
            Just(".%2e"),
            Just("%61"),
            Just("%61dmin"),
            Just(""),
            Just(";x"),
            Just("..;x"),
            Just("a;x"),
            Just("%3a"),
            Just("%2f"),
            Just("%"),
            Just("..."),
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 0..8).prop_map(|s| format!("/{}", s.join("/")))
    }

    const PREFIXES: [&str; 4] = ["/admin", "/public", "/a", "/"];

    /// Segment-boundary prefix match, as routes use it.
    fn reaches(path: &str, prefix: &str) -> bool {
        prefix == "/"
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    }

    proptest! {
        /// Normalizing an accepted output again changes nothing.
        #[test]
        fn idempotent(p in path(), q in prop_oneof![Just(""), Just("?x=/../%2f")]) {
            let mut out = Vec::new();
            let mut again = Vec::new();
            let input = format!("{p}{q}");
            if let Ok(n) = normalize_target(input.as_bytes(), &mut out) {
                let m = normalize_target(&out, &mut again);
                prop_assert_eq!(m, Ok(n));
                prop_assert_eq!(&again, &out);
            }
        }

        /// Whatever the bytes: no panic, and an accepted output starts with
        /// '/', has no dot segment, no "//", is a fixed point, and keeps the
        /// query byte for byte.
        #[test]
        fn output_shape(bytes in prop::collection::vec(
            prop_oneof![Just(b'/'), Just(b'.'), Just(b'%'), Just(b'2'), Just(b'e'),
                        Just(b'f'), Just(b';'), Just(b'?'), Just(b'a'), any::<u8>()],
            0..40,
        )) {
            let mut input = vec![b'/'];
            input.extend_from_slice(&bytes);
            let mut out = Vec::new();
            if let Ok(n) = normalize_target(&input, &mut out) {
                let (path, query) = out.split_at(n);
                prop_assert!(path.starts_with(b"/"));
                prop_assert!(!path.windows(2).any(|w| w == b"//"));
                prop_assert!(!path[1..].split(|&b| b == b'/').any(|s| s == b"." || s == b".."));
                let q = input.iter().position(|&b| b == b'?').map_or(&b""[..], |i| &input[i..]);
                prop_assert_eq!(query, q);
                let mut again = Vec::new();
                prop_assert_eq!(normalize_target(&out, &mut again), Ok(n));
                prop_assert_eq!(again, out);
            }
        }

        /// No route bypass. For paths built from segments that spell the
        /// known tricks (`..`, `%2e`, `%61`, empty, `;x`...), the normalizer
        /// accepts exactly the paths the independent `reference` resolution
        /// accepts, and then gives the same bytes: the path a backend that
        /// decodes unreserved escapes and resolves dot segments would serve.
        /// So an accepted raw path reaches a route prefix (segment boundary)
        /// only if that resolution does — and the normalized path is what is
        /// matched and forwarded, so the backend sees exactly the matched
        /// path.
        #[test]
        fn agrees_with_the_reference_resolution(p in path()) {
            let got = norm(&p).ok();
            let want = reference(&p);
            prop_assert_eq!(&got, &want, "{}", p);
            if let Some(n) = got {
                for prefix in PREFIXES {
                    prop_assert_eq!(reaches(&n, prefix), reaches(want.as_deref().unwrap(), prefix));
                }
            }
        }
    }
}
