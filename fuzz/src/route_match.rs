//! The `route_match` fuzz target's logic, shared with the corpus replay test
//! (`tests/route_match_corpus.rs`), which includes this file with `#[path]`
//! so a seed and a fuzz run check exactly the same thing. Never depends on
//! libFuzzer (stable `cargo test`).
//!
//! An input is a small route set, then one request:
//! - byte 0: number of routes (`% 9`, so 0–8); then 3 bytes per route:
//!   - hosts: `& 3` is how many entries (0, 1, 2, 1), picked from
//!     [`HOST_PATTERNS`] by bits 2–4 and 5–7 (exact names, wildcards, an
//!     upper-case one with a trailing dot, an IPv6 literal);
//!   - path: [`PATHS`]`[& 15]`, an exact `path` if `& 0x80` else a
//!     `path_prefix` (prefixes with and without a trailing '/');
//!   - methods: bits 0–3 pick from [`DEF_METHODS`] (none = any method);
//! - the request's method: [`REQ_METHODS`]`[% 6]`;
//! - its Host: `& 0x80` → [`REQ_HOSTS`]`[& 15]`, else the next `& 31` raw
//!   bytes;
//! - the rest: the raw request target (what `RequestHead::path` spans).
//!
//! Missing bytes read as 0, so every input means something.
//!
//! The pipeline is the worker's (`conn/h1.rs`, `route`):
//! `http::normalize::normalize_target`, then `http::host::route_name` when
//! `http::host::is_valid` (else the gateway answers 400 before routing),
//! then `route::RouteTable::find` on the path part (`*` is routed as `/`).
//!
//! Checked (asserted, not just "no panic"):
//! - normalization agrees with an independent segment-stack reading of the
//!   rules ([`reference_normalize`]), error kind included; an accepted
//!   output starts with '/' (or is `*`, only for `*`), has no `//`, no `.`
//!   or `..` segment, no `\`, only upper-case escapes of bytes that are
//!   neither unreserved nor `/`, `\`, NUL; the query is byte-identical to the
//!   input's; normalizing the output again gives the same bytes; a path
//!   already in normal form is left alone.
//! - host: the name routes see ignores case and the port.
//! - matching agrees with a scan-and-sort reference ([`reference_find`]) on
//!   the outcome, the route, `prefix_len` and the `Allow` bytes. A `Found`
//!   route's rule matches the normalized path (equal, or a prefix on a
//!   segment boundary), its hosts match, it takes the method, and
//!   `prefix_len` leaves a rest that is empty or starts with '/'. `Allow`
//!   (on `MethodNotAllowed`) is non-empty, has no duplicates, does not list
//!   the method, and lists only methods of routes whose host and path match.
//! - security: the path forwarded with `strip_prefix` off
//!   (`RoutePolicy::forward_path`) is the normalized path itself, so what is
//!   matched is what is forwarded, and the matched prefix is a prefix of it
//!   (whatever `..` the raw target held); with `strip_prefix` on (and
//!   `add_prefix`) the result starts with '/' (the add prefix) and ends with
//!   the rest. And a backend that percent-decodes the forwarded path once
//!   and drops `;` parameters (Tomcat) still finds no dot segment in it, so
//!   it cannot climb out of the matched prefix either.

use api_gateway::http::host;
use api_gateway::http::normalize::{normalize_target, PathError};
use api_gateway::route::{PathRule, RouteDef, RouteMatch, RoutePolicy, RouteTable};
use api_gateway::upstream::PoolId;

/// Route `hosts` entries: exact, wildcards of two depths, an entry that
/// compiles to `a.test` (case, trailing dot), an unrelated name, an IPv6
/// literal, a name with `_` and `-`.
pub const HOST_PATTERNS: [&str; 8] = [
    "a.test",
    "*.a.test",
    "*.test",
    "b.a.test",
    "A.Test.",
    "*.b.a.test",
    "[::1]",
    "x_y-z.test",
];

/// Route paths, already in normal form (else the table refuses them).
pub const PATHS: [&str; 16] = [
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/admin",
    "/admin/",
    "/public",
    "/public/",
    "/api",
    "/api/v1",
    "/ab",
    "/a%20b",
    "/%3B",
    "/a;b",
    "/admin/x/",
    "/p%C3%A9",
];

pub const DEF_METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
pub const REQ_METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "HEAD", "get"];

/// Request Host values: absent, exact, case and port, deeper labels, a
/// trailing dot, a bare suffix, IPv6 with and without port, an empty port,
/// a near miss, and values `is_valid` refuses.
pub const REQ_HOSTS: [&str; 16] = [
    "",
    "a.test",
    "A.TEST:8080",
    "b.a.test",
    "c.b.a.test",
    "x.a.test.",
    "test",
    "x_Y-z.test",
    "[::1]:80",
    "[::1]",
    "a.test:",
    "xa.test",
    "a b",
    "a/b",
    "user@a.test",
    "x.A.Test",
];

/// What one input did, for the corpus test's per-seed expectations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The route defs (names `r0`, `r1`, …).
    pub routes: usize,
    /// The normalized target (path + query), or why it was refused.
    pub normalized: Result<Vec<u8>, PathError>,
    /// `host::is_valid` accepted the Host.
    pub host_valid: bool,
    /// `find`'s outcome (when the target and the host passed).
    pub outcome: Option<RouteMatch>,
    /// The `Allow` value on a 405.
    pub allow: Vec<u8>,
    /// On `Found`, the path forwarded with `strip_prefix` off.
    pub forwarded: Option<Vec<u8>>,
}

/// Reads bytes, 0 past the end.
struct Cursor<'a> {
    data: &'a [u8],
}

impl Cursor<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

/// The route set, the method, the Host value and the raw target of `input`.
pub fn decode(input: &[u8]) -> (Vec<RouteDef>, &'static str, Vec<u8>, Vec<u8>) {
    let mut c = Cursor { data: input };
    let n = usize::from(c.byte() % 9);
    let mut defs = Vec::with_capacity(n);
    for i in 0..n {
        let (h, p, m) = (c.byte(), c.byte(), c.byte());
        let count = [0, 1, 2, 1][usize::from(h & 3)];
        let picks = [usize::from((h >> 2) & 7), usize::from(h >> 5)];
        let hosts = picks[..count]
            .iter()
            .map(|&k| HOST_PATTERNS[k].to_string())
            .collect();
        let path = PATHS[usize::from(p & 15)].to_string();
        let methods = (0..4)
            .filter(|k| m & (1 << k) != 0)
            .map(|k| DEF_METHODS[k].to_string())
            .collect();
        defs.push(RouteDef {
            name: format!("r{i}"),
            hosts,
            path: if p & 0x80 != 0 {
                PathRule::Exact(path)
            } else {
                PathRule::Prefix(path)
            },
            methods,
        });
    }
    let method = REQ_METHODS[usize::from(c.byte() % 6)];
    let h = c.byte();
    let host = if h & 0x80 != 0 {
        REQ_HOSTS[usize::from(h & 15)].as_bytes().to_vec()
    } else {
        c.take(usize::from(h & 31)).to_vec()
    };
    (defs, method, host, c.data.to_vec())
}

/// Runs one input through normalization and matching, asserting every
/// invariant in the module doc.
pub fn run(input: &[u8]) -> Summary {
    let (defs, method, raw_host, target) = decode(input);
    let table = RouteTable::new(&defs).expect("every generated def is valid");
    assert_eq!(table.len(), defs.len());

    let mut out = Vec::new();
    let normalized = normalize_target(&target, &mut out);
    check_normalized(&target, normalized, &out);
    let mut summary = Summary {
        routes: defs.len(),
        normalized: normalized.map(|_| out.clone()),
        host_valid: host::is_valid(&raw_host),
        outcome: None,
        allow: Vec::new(),
        forwarded: None,
    };
    let Ok(path_len) = normalized else {
        return summary;
    };
    if !summary.host_valid {
        return summary;
    }
    let mut name = Vec::new();
    host::route_name(&raw_host, &mut name);
    check_host_name(&raw_host, &name);

    let path = match &out[..path_len] {
        b"*" => &b"/"[..],
        p => p,
    };
    let mut allow = Vec::new();
    let got = table.find(&name, path, method.as_bytes(), &mut allow);
    let mut want_allow = Vec::new();
    let want = reference_find(&defs, &name, path, method, &mut want_allow);
    assert_eq!(
        got,
        want,
        "find vs reference: host {:?} path {:?} {method}",
        String::from_utf8_lossy(&name),
        String::from_utf8_lossy(path)
    );
    assert_eq!(allow, want_allow, "Allow vs reference");

    match got {
        RouteMatch::Found { id, prefix_len } => {
            assert!(allow.is_empty(), "Allow left over on Found");
            let def = &defs[id];
            assert!(host_rank(&def.hosts, &name).is_some(), "hosts of {id}");
            let (_, strip) = path_rank(&def.path, path).expect("rule matches the path");
            assert_eq!(prefix_len, strip);
            assert!(def.methods.is_empty() || def.methods.iter().any(|m| m == method));
            let rest = &path[prefix_len..];
            assert!(rest.is_empty() || rest[0] == b'/', "rest {rest:?}");
            summary.forwarded = Some(check_forwarding(def, path, prefix_len));
        }
        RouteMatch::MethodNotAllowed => check_allow(&defs, &name, path, method, &allow),
        RouteMatch::NoRoute => {
            assert!(allow.is_empty());
            assert!(defs.iter().all(
                |d| host_rank(&d.hosts, &name).is_none() || path_rank(&d.path, path).is_none()
            ));
        }
    }
    summary.outcome = Some(got);
    summary.allow = allow;
    summary
}

/// The normalization invariants for `target` → `out` (`res` the result).
fn check_normalized(target: &[u8], res: Result<usize, PathError>, out: &[u8]) {
    let q = target.iter().position(|&b| b == b'?');
    // `*` has no query part: it is the whole target or not special at all.
    let want = reference_normalize(target);
    match (&res, &want) {
        (Ok(n), Ok(w)) => assert_eq!(
            &out[..*n],
            &w[..],
            "normalized path vs reference for {:?}",
            String::from_utf8_lossy(target)
        ),
        (Err(a), Err(b)) => assert_eq!(a, b, "error for {:?}", String::from_utf8_lossy(target)),
        _ => panic!(
            "normalize {res:?} vs reference {want:?} for {:?}",
            String::from_utf8_lossy(target)
        ),
    }
    let Ok(n) = res else {
        return;
    };
    let (path, query) = out.split_at(n);
    if target == b"*" {
        assert_eq!(out, b"*");
        return;
    }
    assert_eq!(
        query,
        &target[q.unwrap_or(target.len())..],
        "query not byte-identical"
    );
    check_normal_path(path);
    // Idempotent.
    let mut again = Vec::new();
    assert_eq!(normalize_target(out, &mut again), Ok(n), "second pass");
    assert_eq!(again, out, "not idempotent");
    // A path already in normal form is not rewritten.
    let raw_path = &target[..q.unwrap_or(target.len())];
    if !raw_path.is_empty() && raw_path[0] == b'/' && is_plain_normal(raw_path) {
        assert_eq!(path, raw_path, "a normal path was rewritten");
    }
}

/// Starts with '/', no `//`, no dot segment, no `\`, escapes upper-case and
/// only of bytes that stay encoded.
fn check_normal_path(path: &[u8]) {
    assert_eq!(path.first(), Some(&b'/'), "{path:?}");
    assert!(!path.windows(2).any(|w| w == b"//"), "// in {path:?}");
    assert!(
        !path[1..]
            .split(|&b| b == b'/')
            .any(|s| s == b"." || s == b".."),
        "dot segment in {path:?}"
    );
    assert!(!path.contains(&b'\\') && !path.contains(&b'?'));
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let (h, l) = (path[i + 1], path[i + 2]);
            assert!(is_upper_hex(h) && is_upper_hex(l), "escape in {path:?}");
            let v = hex(h) << 4 | hex(l);
            assert!(!is_unreserved(v) && !matches!(v, b'/' | b'\\' | 0));
            i += 3;
        } else {
            i += 1;
        }
    }
}

/// A path with nothing for the normalizer to do: no escape, `\`, `;`, `//`
/// or dot segment.
fn is_plain_normal(path: &[u8]) -> bool {
    !path.iter().any(|b| matches!(b, b'%' | b'\\' | b';'))
        && !path.windows(2).any(|w| w == b"//")
        && !path[1..]
            .split(|&b| b == b'/')
            .any(|s| s == b"." || s == b"..")
}

/// Case and port do not change the name routes see.
fn check_host_name(raw: &[u8], name: &[u8]) {
    assert!(!name.iter().any(u8::is_ascii_uppercase), "{name:?}");
    let mut other = Vec::new();
    host::route_name(&raw.to_ascii_uppercase(), &mut other);
    assert_eq!(other, name, "case changed the route name");
    let has_port = if raw.starts_with(b"[") {
        !raw.ends_with(b"]")
    } else {
        raw.contains(&b':')
    };
    if !raw.is_empty() && !has_port {
        let mut with_port = raw.to_vec();
        with_port.extend_from_slice(b":8080");
        if host::is_valid(&with_port) {
            host::route_name(&with_port, &mut other);
            assert_eq!(other, name, "a port changed the route name");
        }
    }
}

/// The forwarding (security) properties of a `Found` on `path`; returns the
/// path forwarded with `strip_prefix` off.
fn check_forwarding(def: &RouteDef, path: &[u8], prefix_len: usize) -> Vec<u8> {
    let mut policy = RoutePolicy::catch_all(&def.name, PoolId::DEFAULT);
    assert!(!policy.rewrites_path());
    let mut forwarded = Vec::new();
    policy.forward_path(path, prefix_len, &mut forwarded);
    // What is matched is exactly what is forwarded.
    assert_eq!(
        forwarded, path,
        "forwarded path differs from the matched one"
    );
    if let PathRule::Prefix(p) = &def.path {
        let p = p.as_bytes();
        let covered = &p[..p.len() - usize::from(p.ends_with(b"/"))];
        assert!(
            forwarded.starts_with(covered),
            "matched prefix {p:?} is not a prefix of the forwarded {forwarded:?}"
        );
    }
    check_backend_view(&forwarded);

    // strip_prefix (with and without add_prefix): still one leading '/',
    // no "//" where the parts meet, and the rest kept.
    let rest = &path[prefix_len..];
    for add in [&b""[..], b"/v2"] {
        policy.strip_prefix = true;
        policy.add_prefix = add.into();
        let mut out = Vec::new();
        policy.forward_path(path, prefix_len, &mut out);
        assert!(
            out.starts_with(add) && out.first() == Some(&b'/'),
            "{out:?}"
        );
        assert!(!out.windows(2).any(|w| w == b"//"), "// in {out:?}");
        assert!(out.ends_with(rest), "{out:?} lost the rest {rest:?}");
        if rest.is_empty() && add.is_empty() {
            assert_eq!(out, b"/");
        }
    }
    forwarded
}

/// A backend that percent-decodes the path once and drops `;` parameters
/// from each segment (Tomcat) sees no dot segment, so it cannot resolve the
/// forwarded path to somewhere outside the matched prefix.
fn check_backend_view(path: &[u8]) {
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            decoded.push(hex(path[i + 1]) << 4 | hex(path[i + 2]));
            i += 3;
        } else {
            decoded.push(path[i]);
            i += 1;
        }
    }
    for seg in decoded.split(|&b| b == b'/') {
        let name = seg.split(|&b| b == b';').next().unwrap_or(seg);
        assert!(
            name != b"." && name != b"..",
            "a backend would see a dot segment in {:?}",
            String::from_utf8_lossy(path)
        );
    }
}

/// `Allow` on a 405: non-empty, no duplicates, not the method, and only
/// methods of routes whose host and path match (which all refuse it).
fn check_allow(defs: &[RouteDef], host: &[u8], path: &[u8], method: &str, allow: &[u8]) {
    assert!(!allow.is_empty(), "empty Allow");
    let items: Vec<&[u8]> = allow
        .split(|&b| b == b',')
        .map(|s| s.strip_prefix(b" ").unwrap_or(s))
        .collect();
    let matching: Vec<&RouteDef> = defs
        .iter()
        .filter(|d| host_rank(&d.hosts, host).is_some() && path_rank(&d.path, path).is_some())
        .collect();
    assert!(!matching.is_empty(), "405 without a matching route");
    // Only the most specific tier decides (a less specific matching route
    // may take the method); the reference comparison checks which tier.
    assert!(
        matching
            .iter()
            .any(|d| !d.methods.is_empty() && !d.methods.iter().any(|m| m == method)),
        "405 but no matching route refuses the method"
    );
    for (k, item) in items.iter().enumerate() {
        assert!(!items[..k].contains(item), "duplicate in Allow {allow:?}");
        assert!(*item != method.as_bytes(), "Allow lists the refused method");
        assert!(
            matching
                .iter()
                .any(|d| d.methods.iter().any(|m| m.as_bytes() == *item)),
            "Allow lists {item:?}, which no matching route takes"
        );
    }
}

/// The normalization rules read independently: split the path into raw
/// segments, decode each, and keep a stack of resolved segments. Returns
/// the normalized path (without the query).
pub fn reference_normalize(target: &[u8]) -> Result<Vec<u8>, PathError> {
    if target == b"*" {
        return Ok(b"*".to_vec());
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    let rest = match path {
        [] => return Ok(b"/".to_vec()),
        [b'/', rest @ ..] => rest,
        _ => return Err(PathError::NotOriginForm),
    };
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut trailing = false;
    for seg in rest.split(|&b| b == b'/') {
        let mut dec = Vec::new();
        let mut params_at = None;
        let mut i = 0;
        while i < seg.len() {
            match seg[i] {
                b'%' => {
                    let (Some(&h), Some(&l)) = (seg.get(i + 1), seg.get(i + 2)) else {
                        return Err(PathError::MalformedEscape);
                    };
                    if !h.is_ascii_hexdigit() || !l.is_ascii_hexdigit() {
                        return Err(PathError::MalformedEscape);
                    }
                    let v = hex(h) << 4 | hex(l);
                    if v == b'/' || v == b'\\' {
                        return Err(PathError::EncodedSeparator);
                    }
                    if v == 0 {
                        return Err(PathError::EncodedNul);
                    }
                    if is_unreserved(v) {
                        dec.push(v);
                    } else {
                        if v == b';' && params_at.is_none() {
                            params_at = Some(dec.len());
                        }
                        dec.extend_from_slice(format!("%{v:02X}").as_bytes());
                    }
                    i += 3;
                }
                b'\\' => return Err(PathError::Backslash),
                b => {
                    if b == b';' && params_at.is_none() {
                        params_at = Some(dec.len());
                    }
                    dec.push(b);
                    i += 1;
                }
            }
        }
        let name = &dec[..params_at.unwrap_or(dec.len())];
        match (name, params_at.is_some()) {
            (b"." | b"..", true) => return Err(PathError::DotSegmentParams),
            (b"", false) | (b".", false) => trailing = true,
            (b"..", false) => {
                stack.pop().ok_or(PathError::AboveRoot)?;
                trailing = true;
            }
            _ => {
                stack.push(dec);
                trailing = false;
            }
        }
    }
    let mut out = Vec::new();
    for s in &stack {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    Ok(out)
}

/// Rank of a def's hosts for `host`: exact (0), wildcard by longer suffix
/// (1, shorter key first), no hosts (2); `None` if no entry matches. Reads
/// the entries as the contract states them (case-insensitive, one trailing
/// dot ignored, `*.` needs one or more labels before the suffix).
fn host_rank(hosts: &[String], host: &[u8]) -> Option<(u8, usize)> {
    if hosts.is_empty() {
        return Some((2, 0));
    }
    hosts
        .iter()
        .filter_map(|h| {
            let lower = h.to_ascii_lowercase();
            let name = lower.strip_suffix('.').unwrap_or(&lower).as_bytes();
            match name.strip_prefix(b"*.") {
                Some(suffix) => {
                    let cut = host.len().checked_sub(suffix.len() + 1)?;
                    (cut > 0 && host.ends_with(suffix) && host[cut] == b'.')
                        .then_some((1, usize::MAX - suffix.len()))
                }
                None => (host == name).then_some((0, 0)),
            }
        })
        .min()
}

/// Rank of a def's path rule for `path` (exact 0, prefix 1 by longer
/// prefix), and the `prefix_len` it reports.
fn path_rank(rule: &PathRule, path: &[u8]) -> Option<((u8, usize), usize)> {
    match rule {
        PathRule::Exact(p) => (path == p.as_bytes()).then_some(((0, 0), path.len())),
        PathRule::Prefix(p) => {
            let p = p.as_bytes();
            let hit = if p.ends_with(b"/") {
                path.starts_with(p)
            } else {
                path == p || (path.starts_with(p) && path[p.len()] == b'/')
            };
            let strip = p.len() - usize::from(p.ends_with(b"/"));
            hit.then_some(((1, usize::MAX - p.len()), strip))
        }
    }
}

/// The naive matcher: every def whose host and path match, sorted by (host
/// rank, path rank, config order); of the most specific tier (those with the
/// first's ranks), the first that takes the method wins; else the union of
/// their methods is `Allow`.
pub fn reference_find(
    defs: &[RouteDef],
    host: &[u8],
    path: &[u8],
    method: &str,
    allow: &mut Vec<u8>,
) -> RouteMatch {
    allow.clear();
    let mut candidates: Vec<_> = defs
        .iter()
        .enumerate()
        .filter_map(|(id, d)| {
            let h = host_rank(&d.hosts, host)?;
            let (p, prefix_len) = path_rank(&d.path, path)?;
            Some(((h, p, id), prefix_len))
        })
        .collect();
    candidates.sort();
    // Only the most specific tier (the first's host rank and path rank)
    // decides the method.
    let best = candidates.first().map(|&((h, p, _), _)| (h, p));
    candidates.retain(|&((h, p, _), _)| Some((h, p)) == best);
    let mut union: Vec<&str> = Vec::new();
    for &((_, _, id), prefix_len) in &candidates {
        let methods = &defs[id].methods;
        if methods.is_empty() || methods.iter().any(|m| m == method) {
            return RouteMatch::Found { id, prefix_len };
        }
        for m in methods {
            if !union.contains(&m.as_str()) {
                union.push(m);
            }
        }
    }
    if candidates.is_empty() {
        return RouteMatch::NoRoute;
    }
    allow.extend_from_slice(union.join(", ").as_bytes());
    RouteMatch::MethodNotAllowed
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        _ => (b | 0x20) - b'a' + 10,
    }
}
