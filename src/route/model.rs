//! The reference model of routing, for the proptest only: scan every def,
//! keep those whose host and path match, sort them by the precedence key
//! (host rank, path rank, config order), keep the most specific tier (the
//! same host rank and path rank as the first), and take the first of those
//! that allows the method (405 with their methods if none does). It shares no code with the table (not even host compilation), so
//! the two agreeing on random small route sets checks the maps, the prefix
//! candidates and the visiting order against the rules as written.

use proptest::prelude::*;

use super::{PathRule, RouteDef, RouteMatch, RouteTable};

/// Rank of a def's hosts for `host`: exact (0), wildcard by longer suffix
/// (1, shorter key first), no hosts (2); `None` if no entry matches.
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
                    // One or more labels before: a non-empty part, then '.'.
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

fn reference(
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
    // Only the most specific tier (same host rank and path rank) decides.
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

/// A host name of 1–3 labels from a tiny alphabet, so defs and requests
/// collide often.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "ex"]), 1..=3).prop_map(|l| l.join("."))
}

/// A def's `hosts` entry: exact or wildcard, sometimes upper-cased or with
/// a trailing dot (both compile away).
fn host_entry() -> impl Strategy<Value = String> {
    (any::<bool>(), name(), any::<bool>(), any::<bool>()).prop_map(|(wild, n, upper, dot)| {
        let mut s = if wild { format!("*.{n}") } else { n };
        if upper {
            s = s.to_ascii_uppercase();
        }
        if dot {
            s.push('.');
        }
        s
    })
}

/// A normalized path of 0–3 segments, maybe with a trailing slash.
fn def_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab"]), 0..=3),
        any::<bool>(),
    )
        .prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && !segs.is_empty() {
                p.push('/');
            }
            p
        })
}

fn methods() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec!["GET", "POST", "PUT"]).prop_map(String::from),
        0..=3,
    )
}

fn defs() -> impl Strategy<Value = Vec<RouteDef>> {
    prop::collection::vec(
        (
            prop::collection::vec(host_entry(), 0..=2),
            any::<bool>(),
            def_path(),
            methods(),
        ),
        0..=8,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (hosts, exact, p, methods))| RouteDef {
                name: format!("r{i}"),
                hosts,
                path: if exact {
                    PathRule::Exact(p)
                } else {
                    PathRule::Prefix(p)
                },
                methods,
            })
            .collect()
    })
}

/// A request host as the caller passes it: lower-case, maybe empty, maybe
/// with odd (empty) labels the caller would have refused.
fn req_host() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "ex", "x", ""]), 0..=4)
        .prop_map(|l| l.join("."))
}

/// A request path: 0–4 segments, trailing slash or not; an empty segment
/// makes the `//` a normalizer would have merged (find must agree anyway).
fn req_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "ab", "c", ""]), 0..=4),
        any::<bool>(),
    )
        .prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash && !segs.is_empty() {
                p.push('/');
            }
            p
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `find` and the scan-and-sort reference agree on the outcome, the
    /// route, its `prefix_len` and the `Allow` value.
    #[test]
    fn find_agrees_with_reference(
        defs in defs(),
        requests in prop::collection::vec(
            (req_host(), req_path(), prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"])),
            1..=8,
        ),
    ) {
        let table = RouteTable::new(&defs).unwrap();
        let (mut got_allow, mut want_allow) = (Vec::new(), Vec::new());
        for (host, path, method) in &requests {
            let got = table.find(host.as_bytes(), path.as_bytes(), method.as_bytes(), &mut got_allow);
            let want = reference(&defs, host.as_bytes(), path.as_bytes(), method, &mut want_allow);
            prop_assert_eq!(got, want, "{} {} {}", method, host, path);
            prop_assert_eq!(&got_allow, &want_allow, "{} {} {}", method, host, path);
        }
    }
}
