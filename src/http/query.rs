//! Query strings as the gateway touches them: finding a parameter by name,
//! removing it from what is forwarded, and masking its value in what is
//! logged. Parameters are `&`-separated `name=value` pairs compared on the
//! raw (still percent-encoded) name, as sent; nothing else in the query is
//! changed, so a backend sees every other parameter byte for byte.

use std::ops::Range;

/// Where the query starts in a request target (after '?'), if it has one.
#[inline]
pub fn query_start(target: &[u8]) -> Option<usize> {
    target.iter().position(|&b| b == b'?').map(|i| i + 1)
}

/// A request target without its query (and without the '?').
#[inline]
pub fn path_of(target: &[u8]) -> &[u8] {
    query_start(target).map_or(target, |q| &target[..q - 1])
}

/// The parameters of `query` (without the '?'): for each, the range of the
/// whole `name=value` item and of its value (empty without '=').
pub fn params(query: &[u8]) -> impl Iterator<Item = (Range<usize>, &[u8], Range<usize>)> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        while pos <= query.len() {
            let start = pos;
            let end = query[start..]
                .iter()
                .position(|&b| b == b'&')
                .map_or(query.len(), |i| start + i);
            pos = end + 1;
            if end == start {
                continue;
            }
            let item = &query[start..end];
            let (name, value) = match item.iter().position(|&b| b == b'=') {
                Some(eq) => (&item[..eq], start + eq + 1..end),
                None => (item, end..end),
            };
            return Some((start..end, name, value));
        }
        None
    })
}

/// How many parameters of `query` are named `name`, and the value of the
/// first.
pub fn find(query: &[u8], name: &[u8]) -> (usize, Option<Range<usize>>) {
    let mut count = 0;
    let mut first = None;
    for (_, n, v) in params(query) {
        if n == name {
            count += 1;
            first.get_or_insert(v);
        }
    }
    (count, first)
}

/// Removes every parameter named `name` from the query of `target` (a
/// path with an optional `?query`), with its separator; drops the '?' when
/// nothing is left. In place, no allocation.
pub fn remove(target: &mut Vec<u8>, name: &[u8]) {
    let Some(q) = query_start(target) else {
        return;
    };
    let mut write = q;
    let mut read = q;
    let len = target.len();
    while read <= len {
        let end = target[read..]
            .iter()
            .position(|&b| b == b'&')
            .map_or(len, |i| read + i);
        let item_name_end = target[read..end]
            .iter()
            .position(|&b| b == b'=')
            .map_or(end, |i| read + i);
        let keep = end > read && &target[read..item_name_end] != name;
        if keep {
            if write > q {
                target[write] = b'&';
                write += 1;
            }
            target.copy_within(read..end, write);
            write += end - read;
        }
        read = end + 1;
    }
    // Nothing kept: no '?' either.
    target.truncate(if write == q { q - 1 } else { write });
}

/// Replaces the value of every parameter named `name` in the query of
/// `target` with `***` (what a log may show). A value cut off by
/// truncation is masked to the end.
pub fn redact(target: &mut Vec<u8>, name: &[u8]) {
    let Some(q) = query_start(target) else {
        return;
    };
    // One value per pass; masked ones are skipped, so the loop ends.
    loop {
        let query = &target[q..];
        let Some((_, _, v)) =
            params(query).find(|(_, n, v)| *n == name && query[v.clone()] != *b"***")
        else {
            return;
        };
        target.splice(q + v.start..q + v.end, b"***".iter().copied());
    }
}

/// Feeds `value` percent-decoded to `out` (a `%` not followed by two hex
/// digits is kept as is, as most servers do; `+` stays `+`).
pub fn percent_decode(value: &[u8], mut out: impl FnMut(&[u8])) {
    let mut i = 0;
    let mut run = 0;
    while i < value.len() {
        if value[i] == b'%' && i + 2 < value.len() {
            if let (Some(h), Some(l)) = (hex(value[i + 1]), hex(value[i + 2])) {
                out(&value[run..i]);
                out(&[h * 16 + l]);
                i += 3;
                run = i;
                continue;
            }
        }
        i += 1;
    }
    out(&value[run..]);
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(t: &str, name: &str) -> String {
        let mut v = t.as_bytes().to_vec();
        remove(&mut v, name.as_bytes());
        String::from_utf8(v).unwrap()
    }

    fn redacted(t: &str, name: &str) -> String {
        let mut v = t.as_bytes().to_vec();
        redact(&mut v, name.as_bytes());
        String::from_utf8(v).unwrap()
    }

    fn decoded(v: &str) -> Vec<u8> {
        let mut out = Vec::new();
        percent_decode(v.as_bytes(), |b| out.extend_from_slice(b));
        out
    }

    #[test]
    fn the_path_is_the_target_up_to_its_query() {
        assert_eq!(path_of(b"/a/b?x=1?y"), b"/a/b");
        assert_eq!(path_of(b"/a/b"), b"/a/b");
        assert_eq!(path_of(b"?x"), b"");
    }

    #[test]
    fn remove_keeps_every_other_parameter_in_order() {
        let cases = [
            ("/q/x?a=1&apikey=k&b=2", "/q/x?a=1&b=2"),
            ("/q/x?apikey=k", "/q/x"),
            ("/q/x?apikey=k&b=2", "/q/x?b=2"),
            ("/q/x?a=1&apikey=k", "/q/x?a=1"),
            ("/q/x?apikey", "/q/x"),
            ("/q/x?apikey=1&apikey=2", "/q/x"),
            ("/q/x?a=1&&apikey=k&", "/q/x?a=1"),
            ("/q/x?apikeyx=1&xapikey=2", "/q/x?apikeyx=1&xapikey=2"),
            ("/q/x", "/q/x"),
            ("/q/x?", "/q/x"),
            ("/q/x?a=b=c&apikey=k", "/q/x?a=b=c"),
        ];
        for (t, want) in cases {
            assert_eq!(removed(t, "apikey"), want, "{t}");
        }
    }

    #[test]
    fn find_counts_and_returns_the_first_value() {
        let q = b"a=1&apikey=k1&apikey=k2";
        let (n, v) = find(q, b"apikey");
        assert_eq!(n, 2);
        assert_eq!(&q[v.unwrap()], b"k1");
        assert_eq!(find(q, b"nope"), (0, None));
        let (n, v) = find(b"apikey", b"apikey");
        assert_eq!((n, v), (1, Some(6..6)));
    }

    #[test]
    fn redact_masks_values_even_when_cut_off() {
        assert_eq!(
            redacted("GET /q?a=1&apikey=secret&b=2", "apikey"),
            "GET /q?a=1&apikey=***&b=2"
        );
        assert_eq!(redacted("GET /q?apikey=sec", "apikey"), "GET /q?apikey=***");
        assert_eq!(
            redacted("GET /q?apikey=1&apikey=2", "apikey"),
            "GET /q?apikey=***&apikey=***"
        );
        assert_eq!(redacted("GET /q?a=apikey", "apikey"), "GET /q?a=apikey");
        assert_eq!(redacted("GET /q", "apikey"), "GET /q");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(decoded("k%2Dalice"), b"k-alice");
        assert_eq!(decoded("a+b"), b"a+b");
        assert_eq!(decoded("100%"), b"100%");
        assert_eq!(decoded("%4"), b"%4");
        assert_eq!(decoded("%zz%41"), b"%zzA");
        assert_eq!(decoded(""), b"");
    }
}
