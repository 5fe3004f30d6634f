//! Host names in route defs: validation and the compiled form, and the one
//! rule for which wildcard suffixes a request host can match.
//!
//! Compiled form: lower-cased, one trailing dot removed, the same form the
//! caller gives the request's host in, so matching is a byte comparison.

/// A `hosts` entry, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostPattern {
    /// Matches exactly this name.
    Exact(String),
    /// `*.suffix`: matches names ending in `.suffix` with at least one label
    /// before it. Holds the suffix without `*.`.
    Wildcard(String),
}

/// Longest host name (RFC 1035 §2.3.4), and longest label.
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Compiles one `hosts` entry, or says what is wrong with it.
pub(crate) fn compile(raw: &str) -> Result<HostPattern, &'static str> {
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if let Some(suffix) = name.strip_prefix("*.") {
        check_name(suffix)?;
        return Ok(HostPattern::Wildcard(suffix.to_string()));
    }
    if name.contains('*') {
        return Err("a wildcard must be a whole leading label: \"*.\" + name");
    }
    if name.starts_with('[') {
        check_ip_literal(name)?;
    } else {
        check_name(name)?;
    }
    Ok(HostPattern::Exact(name.to_string()))
}

/// A reg-name as DNS writes it: dot-separated labels of letters, digits, `-`
/// and `_` (service names use `_`), none empty. Dotted IPv4 passes as such.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty host name");
    }
    if name.len() > MAX_NAME {
        return Err("host name longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label in host name");
        }
        if label.len() > MAX_LABEL {
            return Err("label longer than 63 bytes in host name");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("host name may hold only letters, digits, '-', '_' and '.'");
        }
    }
    Ok(())
}

/// `[v6]` (RFC 3986 IP-literal without the IPvFuture form). Matched as
/// written (lower-cased): the caller does not canonicalise addresses either.
fn check_ip_literal(name: &str) -> Result<(), &'static str> {
    let inner = name
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or("unterminated IP literal")?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .map(|_| ())
        .map_err(|_| "not an IPv6 address inside brackets")
}

/// The suffixes of `host` a wildcard could be written for, longest first:
/// for `a.b.example.test`, `b.example.test`, `example.test`, `test`. A suffix
/// is only offered with a non-empty part before its dot, which is what keeps
/// `*.example.test` off `example.test` itself (and `xexample.test`, which has
/// no dot before `example.test`).
pub(crate) fn wildcard_suffixes(host: &[u8]) -> impl Iterator<Item = &[u8]> {
    host.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'.' && i > 0)
        .map(move |(i, _)| &host[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_names_lowercased_without_trailing_dot() {
        assert_eq!(
            compile("API.Example.Test."),
            Ok(HostPattern::Exact("api.example.test".into()))
        );
        assert_eq!(
            compile("*.Example.test"),
            Ok(HostPattern::Wildcard("example.test".into()))
        );
        assert_eq!(
            compile("127.0.0.1"),
            Ok(HostPattern::Exact("127.0.0.1".into()))
        );
        assert_eq!(compile("[::1]"), Ok(HostPattern::Exact("[::1]".into())));
        assert_eq!(
            compile("_svc.local"),
            Ok(HostPattern::Exact("_svc.local".into()))
        );
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "",
            ".",
            "*",
            "*.",
            "**.example.test",
            "a.*.test",
            "*example.test",
            "a..b",
            ".a",
            "a b",
            "a/b",
            "user@host",
            "host:80",
            "[::1",
            "[nope]",
            "*.[::1]",
        ] {
            assert!(compile(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(compile(&"a".repeat(64)).is_err());
        assert!(compile(&["a"; 128].join(".")).is_err());
    }

    #[test]
    fn suffixes_longest_first_with_a_label_before() {
        let s: Vec<&[u8]> = wildcard_suffixes(b"a.b.example.test").collect();
        assert_eq!(
            s,
            [&b"b.example.test"[..], b"example.test", b"test"].to_vec()
        );
        assert_eq!(wildcard_suffixes(b"example").count(), 0);
        // A leading dot has no label before it.
        let s: Vec<&[u8]> = wildcard_suffixes(b".example.test").collect();
        assert_eq!(s, [&b"test"[..]].to_vec());
    }
}
