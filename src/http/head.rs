//! Shared pieces of head parsing: byte spans into the read buffer, header
//! indices, and the token-list helpers RFC 9110 §5.6.1 asks for.
//!
//! Heads are parsed in place: a parsed head holds offsets, never owned
//! strings, so parsing allocates nothing once the index vectors are warm.

/// A byte range `[start, end)` into the buffer the head was parsed from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// The span of `part`, which must be a sub-slice of `base`.
    /// A `part` that does not lie inside `base` (httparse hands out a static
    /// `""` for an empty reason phrase) gives the empty span.
    #[inline]
    pub fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        if part.is_empty() || start > base.len() || base.len() - start < part.len() {
            return Span::default();
        }
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    /// The bytes of this span in `buf`.
    #[inline]
    pub fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or(&[])
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    /// Whether the span is empty.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// One header line: name and (trimmed) value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    /// Field name.
    pub name: Span,
    /// Field value, without surrounding whitespace.
    pub value: Span,
}

/// Most header fields we accept in one head (hyper and nginx use about 100).
pub const MAX_HEADERS: usize = 100;

/// Iterates the comma-separated, OWS-trimmed, non-empty elements of a list
/// field value (RFC 9110 §5.6.1).
pub fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty())
}

/// Trims spaces and tabs on both ends.
#[inline]
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// ASCII case-insensitive equality.
#[inline]
pub fn eq_ci(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Options carried in `Connection` (RFC 9110 §7.6.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOpts {
    /// `close` was listed.
    pub close: bool,
    /// `keep-alive` was listed.
    pub keep_alive: bool,
    /// `upgrade` was listed.
    pub upgrade: bool,
    /// Some other option was listed: a field name that must not be
    /// forwarded. When false (the common case) rewriting can skip scanning
    /// the `Connection` values for every header.
    pub names_fields: bool,
}

impl ConnectionOpts {
    /// Folds one `Connection` field value into the options.
    pub fn add(&mut self, value: &[u8]) {
        for item in list_items(value) {
            if eq_ci(item, b"close") {
                self.close = true;
            } else if eq_ci(item, b"keep-alive") {
                self.keep_alive = true;
            } else if eq_ci(item, b"upgrade") {
                self.upgrade = true;
            } else {
                self.names_fields = true;
            }
        }
    }
}

/// Hop-by-hop fields that are never forwarded (RFC 9110 §7.6.1), besides
/// those named in `Connection`. `Upgrade` is re-added only when upgrading.
#[inline]
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    // Runs for every forwarded field: dispatch on the length so a typical
    // name is compared against at most one candidate.
    let candidate: &[u8] = match name.len() {
        2 => b"te",
        7 if eq_ci(&name[..1], b"u") => b"upgrade",
        7 => b"trailer",
        10 if eq_ci(&name[..1], b"c") => b"connection",
        10 => b"keep-alive",
        16 => b"proxy-connection",
        _ => return false,
    };
    eq_ci(name, candidate)
}

/// Whether `name` is listed as an option in any of the `Connection` values
/// and may therefore be dropped as hop-by-hop.
///
/// The fields that frame or route the message (`Content-Length`,
/// `Transfer-Encoding`, `Host`) are never dropped this way: a peer that
/// writes `Connection: content-length` would otherwise make us forward a
/// body without its length, which the next hop reads as another message
/// (request smuggling, found by fuzzing).
pub fn named_in_connection(buf: &[u8], connection_values: &[Span], name: &[u8]) -> bool {
    const PROTECTED: [&[u8]; 3] = [b"content-length", b"transfer-encoding", b"host"];
    if PROTECTED.iter().any(|p| eq_ci(p, name)) {
        return false;
    }
    connection_values
        .iter()
        .any(|v| list_items(v.get(buf)).any(|item| eq_ci(item, name)))
}

/// Parses a `Content-Length` value: `1*DIGIT`, possibly repeated as an
/// identical list (`5, 5`), which RFC 9110 §8.6 lets a recipient accept.
/// Anything else (sign, spaces inside, differing values, overflow) is `None`.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut result: Option<u64> = None;
    let mut any = false;
    for part in value.split(|&b| b == b',') {
        let part = trim(part);
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = part
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        match result {
            Some(prev) if prev != n => return None,
            _ => result = Some(n),
        }
        any = true;
    }
    if any {
        result
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_strict() {
        assert_eq!(parse_content_length(b"42"), Some(42));
        assert_eq!(parse_content_length(b"0"), Some(0));
        assert_eq!(parse_content_length(b"5, 5"), Some(5));
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b"5 5",
            b"5,6",
            b"0x10",
            b"99999999999999999999",
            b",",
            b"5,",
        ] {
            assert_eq!(parse_content_length(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn hop_by_hop_names() {
        for n in [
            &b"Connection"[..],
            b"keep-alive",
            b"Proxy-Connection",
            b"TE",
            b"trailer",
            b"UPGRADE",
        ] {
            assert!(is_hop_by_hop(n), "{n:?}");
        }
        for n in [
            &b"Host"[..],
            b"tf",
            b"content",
            b"keep-alivf",
            b"x-upgrade",
            b"",
        ] {
            assert!(!is_hop_by_hop(n), "{n:?}");
        }
    }

    #[test]
    fn connection_tokens() {
        let mut c = ConnectionOpts::default();
        c.add(b"Keep-Alive, Upgrade");
        assert!(c.keep_alive && c.upgrade && !c.close && !c.names_fields);
        c.add(b"X-Secret");
        assert!(c.names_fields);
        let buf = b"close, X-Secret";
        let spans = [Span {
            start: 0,
            end: buf.len() as u32,
        }];
        assert!(named_in_connection(buf, &spans, b"x-secret"));
        assert!(!named_in_connection(buf, &spans, b"x-other"));
    }
}
