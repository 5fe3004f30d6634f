//! The `Host` grammar (RFC 9112 §3.2: `Host = uri-host [ ":" port ]`, with
//! `uri-host` from RFC 3986 §3.2.2), and the name routes match on.
//!
//! A server MUST answer 400 to a Host value outside that grammar: a value
//! with a space, `/` or `@` in it is read differently by different hops
//! (one takes `a/b` as a host, the next as a host and a path; `user@a` hides
//! the host after a userinfo), which is how cache poisoning and routing
//! confusion start. The same check judges the authority of an absolute-form
//! target, which replaces Host (RFC 9112 §3.2.2).
//!
//! Accepted: a reg-name (`*( unreserved / pct-encoded / sub-delims )`,
//! which also covers IPv4 dotted quads), or an IP-literal in brackets
//! (IPv6, or `vX.…` IPvFuture), then an optional `:` and `*DIGIT` port
//! (`a:` is allowed by the grammar). A port without a host (`:80`) is
//! refused: RFC 9110 §4.2.1 makes an empty host in an `http` URI invalid.
//! A wholly empty value is accepted (RFC 9112 §3.2 allows an empty Host for
//! a target without authority). Nothing here allocates beyond `out`.

/// Whether `value` (a Host field value without surrounding whitespace, or
/// an absolute-form authority) is a valid `uri-host[:port]`, or empty.
pub fn is_valid(value: &[u8]) -> bool {
    if value.is_empty() {
        return true;
    }
    if value[0] != b'[' {
        return is_reg_name_and_port(value);
    }
    let (host, port) = split_port(value);
    let host_ok = match host {
        [b'[', inner @ .., b']'] => is_ip_literal(inner),
        _ => false,
    };
    host_ok && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// `reg-name [ ":" port ]` with a non-empty reg-name, in one pass (it runs
/// on every request's Host): the first `:` ends the name, as in
/// [`split_port`], and only digits may follow it.
fn is_reg_name_and_port(value: &[u8]) -> bool {
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        if REG_NAME_BYTE[usize::from(b)] {
            i += 1;
            continue;
        }
        let hex = |j: usize| value.get(j).is_some_and(u8::is_ascii_hexdigit);
        match b {
            b'%' if hex(i + 1) && hex(i + 2) => i += 3,
            b':' => return i > 0 && value[i + 1..].iter().all(u8::is_ascii_digit),
            _ => return false,
        }
    }
    true
}

/// The name routes match on: lower-cased into `out` (cleared), port
/// removed, one trailing dot removed (`a.test.` is the fully qualified
/// spelling of `a.test`); IP-literals keep their brackets. Meant for values
/// `is_valid` accepted.
pub fn route_name(value: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (host, _) = split_port(value);
    if host.starts_with(b"[") {
        out.extend(host.iter().map(u8::to_ascii_lowercase));
        return;
    }
    // A reg-name may spell any byte as `%XX` (RFC 3986 §3.2.2): decoded, so
    // `%61dmin.test` is the host `admin.test` and cannot slip past a route
    // that lists `admin.test` onto one that lists no hosts.
    let mut rest = host;
    while let Some((&b, tail)) = rest.split_first() {
        let decoded = match tail {
            [h, l, more @ ..] if b == b'%' => {
                match (super::normalize::hex_val(*h), super::normalize::hex_val(*l)) {
                    (Some(h), Some(l)) => {
                        rest = more;
                        h << 4 | l
                    }
                    _ => {
                        rest = tail;
                        b
                    }
                }
            }
            _ => {
                rest = tail;
                b
            }
        };
        out.push(decoded.to_ascii_lowercase());
    }
    if out.last() == Some(&b'.') {
        out.pop();
    }
}

/// Splits `host[:port]`. An IP-literal's colons are inside its brackets,
/// so the port starts after the `]`; a reg-name has no colon, so it starts
/// at the first one (`a:b:c` then has the port `b:c`, which is refused).
pub fn split_port(value: &[u8]) -> (&[u8], Option<&[u8]>) {
    let colon = if value.starts_with(b"[") {
        match value.iter().position(|&b| b == b']') {
            Some(end) => value[end + 1..]
                .first()
                .filter(|&&b| b == b':')
                .map(|_| end + 1),
            None => None,
        }
    } else {
        value.iter().position(|&b| b == b':')
    };
    match colon {
        Some(c) => (&value[..c], Some(&value[c + 1..])),
        None => (value, None),
    }
}

/// The bytes a reg-name holds as themselves: unreserved and sub-delims.
const REG_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

/// The inside of `[...]`: an IPv6 address (no zone id) or IPvFuture
/// (`"v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`).
fn is_ip_literal(inner: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = inner {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    std::str::from_utf8(inner).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// RFC 3986 §2.3.
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// RFC 3986 §2.2.
const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_every_form_of_uri_host_and_port() {
        for v in [
            "",
            "a",
            "A.Example.test:8080",
            "127.0.0.1:1",
            "127.0.0.1",
            "[::1]:80",
            "[::1]",
            "[2001:db8::7]:",
            "[::ffff:10.0.0.1]",
            "[v1.fe80::a+b]",
            "[V7a.x:y]:1",
            "a-b_c~d",
            "xn--e1a",
            "a:",
            "a.test.",
            "a%20b",
            "!$&'()*+,;=",
            "a:65535",
            "999.1.1.1",
        ] {
            assert!(is_valid(v.as_bytes()), "refused {v:?}");
        }
    }

    #[test]
    fn refuses_what_hops_would_read_differently() {
        for v in [
            "a b",
            "a/b",
            "user@a",
            "[::1",
            "::1]",
            "a:b:c",
            "a:80x",
            ":80",
            ":",
            "[::1]x",
            "[::1]:8a",
            "[]",
            "[zz]",
            "[::1%25eth0]",
            "[v.x]",
            "[v1.]",
            "[vg.x]",
            "a[b]",
            "a]b",
            "a%2",
            "a%zz",
            "a\tb",
            "a?b",
            "a#b",
            "a\\b",
            "a\"b",
            "é",
            "a:-1",
            "a: 80",
        ] {
            assert!(!is_valid(v.as_bytes()), "accepted {v:?}");
        }
    }

    /// The two-step definition `is_valid` shortens for reg-names: split
    /// at the port, then check `*( unreserved / pct-encoded / sub-delims )`.
    fn reference(value: &[u8]) -> bool {
        let is_reg_name = |host: &[u8]| {
            let mut i = 0;
            while i < host.len() {
                let b = host[i];
                if b == b'%' {
                    let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
                    if !(hex(i + 1) && hex(i + 2)) {
                        return false;
                    }
                    i += 3;
                } else if is_unreserved(b) || is_sub_delim(b) {
                    i += 1;
                } else {
                    return false;
                }
            }
            true
        };
        if value.is_empty() {
            return true;
        }
        let (host, port) = split_port(value);
        let host_ok = match host {
            [] => false,
            [b'[', inner @ .., b']'] => is_ip_literal(inner),
            _ => host.iter().all(|&b| b != b'[') && is_reg_name(host),
        };
        host_ok && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
    }

    proptest! {
        #[test]
        fn one_pass_check_agrees_with_the_definition(
            v in proptest::collection::vec(
                prop::sample::select(&b"aZ09.-_~!$%:[]@/ 8fF:%"[..]), 0..12)
        ) {
            prop_assert_eq!(is_valid(&v), reference(&v), "{:?}", String::from_utf8_lossy(&v));
        }
    }

    #[test]
    fn route_names() {
        let mut out = Vec::new();
        for (v, want) in [
            ("A.Example.TEST:8080", "a.example.test"),
            ("a.test.", "a.test"),
            ("a.test.:80", "a.test"),
            ("a..", "a."),
            ("a:", "a"),
            ("", ""),
            ("[::1]:80", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("127.0.0.1:9", "127.0.0.1"),
            ("%61dmin.test", "admin.test"),
            ("%41DMIN.Test%2E:80", "admin.test"),
            ("a%2eb", "a.b"),
        ] {
            route_name(v.as_bytes(), &mut out);
            assert_eq!(out, want.as_bytes(), "{v:?}");
        }
    }

    proptest! {
        /// No panic on any bytes; an accepted value has no byte a hop could
        /// read as a separator, and its route name keeps no port.
        #[test]
        fn arbitrary_bytes(v in prop::collection::vec(any::<u8>(), 0..24)) {
            if is_valid(&v) {
                let separator = |b: u8| {
                    matches!(b, b'/' | b'@' | b'?' | b'#' | b'\\') || !(0x21..0x7f).contains(&b)
                };
                prop_assert!(!v.iter().any(|&b| separator(b)));
                let mut out = Vec::new();
                route_name(&v, &mut out);
                prop_assert!(out.len() <= v.len());
                prop_assert!(out.starts_with(b"[") || !out.contains(&b':'));
            }
        }
    }
}
