//! Paths in route defs and the segment-boundary rule for prefixes.
//!
//! A prefix `p` matches a path when `p` ends in `/` and the path starts with
//! `p`, or when `p` does not and the path is `p` or starts with `p` + `/`.
//! [`prefix_candidates`] lists, longest first, every string that could be
//! such a `p` for a given path, so the table finds matching prefixes by
//! probing a map instead of scanning its routes.

/// Checks that a def's path is in the normalized form the caller matches
/// with (see the normalization rules); anything else could never
/// match, which is a config mistake worth reporting.
pub(crate) fn check(p: &str) -> Result<(), &'static str> {
    let b = p.as_bytes();
    if b.first() != Some(&b'/') {
        return Err("must start with '/'");
    }
    if p.contains("//") {
        return Err("must not contain \"//\" (requests are matched with repeated slashes merged)");
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return Err("must not contain a dot segment (requests are matched with them removed)");
    }
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'?' | b'#' => return Err("must not contain '?' or '#' (the query is not matched)"),
            b'\\' => return Err("must not contain a backslash"),
            b'%' => {
                let hex = |j: usize| b.get(j).copied().filter(|c| c.is_ascii_hexdigit());
                let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2)) else {
                    return Err("'%' must be followed by two hex digits");
                };
                if h.is_ascii_lowercase() || l.is_ascii_lowercase() {
                    return Err(
                        "percent escapes must use upper-case hex (requests are matched so)",
                    );
                }
                let byte = (hex_val(h) << 4) | hex_val(l);
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    return Err("an unreserved character must not be percent-encoded (requests are matched decoded)");
                }
                if matches!(byte, b'/' | b'\\' | 0) {
                    return Err("must not contain %2F, %5C or %00 (such requests are refused)");
                }
                i += 3;
                continue;
            }
            c if !c.is_ascii_graphic() => {
                return Err("must hold only visible ASCII (percent-encode the rest)")
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => (c | 0x20) - b'a' + 10,
    }
}

/// What a matched prefix leaves for `strip_prefix` to cut: all of it, except
/// the trailing slash of a prefix that ends in one (so the rest starts with
/// `/`). Only meaningful for a prefix that matched.
pub(crate) fn strip_len(prefix: &[u8]) -> usize {
    if prefix.last() == Some(&b'/') {
        prefix.len() - 1
    } else {
        prefix.len()
    }
}

/// Lengths `n` such that `&path[..n]` is a prefix matching `path` under the
/// segment rule, longest first, each once: the whole path, then for each `/`
/// at `i` from the right, `i + 1` (the prefix with that slash) and `i` (the
/// one without). Every matching prefix is among them and every one of them
/// matches, read as a prefix of its own kind (it ends in `/` or it does not).
pub(crate) fn prefix_candidates(path: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let whole = (!path.is_empty()).then_some(path.len());
    let mut last = path.len();
    let cuts = path
        .iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'/')
        .flat_map(|(i, _)| [i + 1, i])
        .filter(move |&n| {
            // Skip the empty cut and repeats (`i + 1` of the last byte is
            // the whole path; `//` makes `i` of one slash `i + 1` of the next).
            let fresh = n > 0 && n < last;
            if fresh {
                last = n;
            }
            fresh
        });
    whole.into_iter().chain(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(p: &str) -> Vec<&str> {
        prefix_candidates(p.as_bytes()).map(|n| &p[..n]).collect()
    }

    #[test]
    fn candidates_longest_first_on_segment_boundaries() {
        assert_eq!(cands("/api/x"), ["/api/x", "/api/", "/api", "/"]);
        assert_eq!(cands("/api/"), ["/api/", "/api", "/"]);
        assert_eq!(cands("/api"), ["/api", "/"]);
        assert_eq!(cands("/"), ["/"]);
        assert_eq!(
            cands("/a/b/c"),
            ["/a/b/c", "/a/b/", "/a/b", "/a/", "/a", "/"]
        );
        // Never a cut inside a segment: "/apiary" offers no "/api".
        assert_eq!(cands("/apiary"), ["/apiary", "/"]);
        // Unnormalized input still yields each length once.
        assert_eq!(cands("/a//b"), ["/a//b", "/a//", "/a/", "/a", "/"]);
        assert!(cands("").is_empty());
        assert_eq!(cands("*"), ["*"]);
    }

    #[test]
    fn strip_leaves_a_leading_slash() {
        assert_eq!(strip_len(b"/api"), 4);
        assert_eq!(strip_len(b"/api/"), 4);
        assert_eq!(strip_len(b"/"), 0);
    }

    #[test]
    fn accepts_normalized_paths() {
        for ok in [
            "/",
            "/api",
            "/api/",
            "/a/b-c_d~e.f/",
            "/caf%C3%A9",
            "/a%20b",
            "/.well-known",
            "/a..b",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_paths_no_request_could_match() {
        for bad in [
            "", "api", "//", "/a//b", "/./a", "/a/..", "/a/../b", "/a?x", "/a#x", "/a\\b", "/%",
            "/%4", "/%zz", "/%c3", "/%61", "/%7E", "/%2F", "/%5C", "/%00", "/a b", "/é",
        ] {
            assert!(check(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
