//! The compiled route table: [`RouteTable::new`] turns defs into maps once,
//! [`RouteTable::find`] walks them per request without allocating.
//!
//! Layout: a *group* per host key (each exact host, each wildcard suffix, and
//! one for routes without `hosts`); a route listing several hosts sits in
//! several groups. A group maps a path string to the routes whose exact path
//! is that string and the routes whose prefix is that string, in config
//! order. `find` visits groups in host precedence (exact host: one probe;
//! wildcards: one probe per label suffix, longest first; then the any-host
//! group) and, in each, probes the exact path and then every segment-boundary
//! prefix of the path, longest first ([`path::prefix_candidates`]). That
//! visiting order *is* the precedence order, so the first route that takes
//! the method wins, and the routes passed over are what `Allow` is made of.
//!
//! Why hashed prefixes and not a segment trie: a probe is one hash of a short
//! key and one compare, and a per-group table of which key lengths exist skips
//! every probe that cannot hit, so a typical lookup makes 2–4 probes whatever
//! the path depth. A trie would chase one node (and one small map) per
//! segment, and needs extra nodes to tell `/api` from `/api/`.

use std::collections::{HashMap, HashSet};

use super::error::RouteError;
use super::hash::FastState;
use super::host::{self, HostPattern};
use super::path;
use super::{PathRule, RouteDef, RouteId, RouteMatch};

type Map<V> = HashMap<Box<[u8]>, V, FastState>;

/// Key-length bits in [`Group::kinds`].
const EXACT: u8 = 1;
const PREFIX: u8 = 2;

/// A compiled route table; immutable, `Send + Sync`, shared through an `Arc`.
#[derive(Debug)]
pub struct RouteTable {
    /// Per route (indexed by [`RouteId`]).
    routes: Box<[Route]>,
    /// Exact host → its group.
    exact_hosts: Map<Group>,
    /// Wildcard suffix (`example.test` for `*.example.test`) → its group.
    wildcards: Map<Group>,
    /// `wildcard_lens[n]`: some wildcard suffix is `n` bytes long.
    wildcard_lens: Box<[bool]>,
    /// Routes without `hosts`.
    any_host: Group,
}

/// What `find` needs of a route besides where it sits in the maps.
#[derive(Debug)]
struct Route {
    name: Box<str>,
    /// Empty = every method. Each once, in config order.
    methods: Box<[Box<[u8]>]>,
}

/// The routes of one host key, by path.
#[derive(Debug, Default)]
struct Group {
    paths: Map<PathEntry>,
    /// `kinds[n]`: [`EXACT`] and/or [`PREFIX`] if some key of that kind is
    /// `n` bytes long; lengths past the end have none.
    kinds: Vec<u8>,
}

/// Routes keyed by one path string, each list in config order.
#[derive(Debug, Default)]
struct PathEntry {
    exact: Vec<RouteId>,
    prefix: Vec<RouteId>,
}

impl Group {
    fn add(&mut self, id: RouteId, rule: &PathRule) {
        let (p, kind) = match rule {
            PathRule::Exact(p) => (p, EXACT),
            PathRule::Prefix(p) => (p, PREFIX),
        };
        let entry = self.paths.entry(p.as_bytes().into()).or_default();
        let list = if kind == EXACT {
            &mut entry.exact
        } else {
            &mut entry.prefix
        };
        list.push(id);
        if self.kinds.len() <= p.len() {
            self.kinds.resize(p.len() + 1, 0);
        }
        self.kinds[p.len()] |= kind;
    }

    fn kinds(&self, len: usize) -> u8 {
        self.kinds.get(len).copied().unwrap_or(0)
    }

    /// Offers this group's matching routes to `scan` in precedence order
    /// (exact path, then prefixes longest first, config order within each)
    /// and returns the first one that takes the method.
    #[inline]
    fn scan(&self, path: &[u8], scan: &mut Scan<'_>) -> Option<RouteMatch> {
        if self.paths.is_empty() {
            return None;
        }
        let mut candidates = path::prefix_candidates(path);
        // The first candidate is the whole path: one probe serves both the
        // exact routes and the prefixes equal to the path.
        let whole = candidates.next()?;
        if self.kinds(whole) != 0 {
            if let Some(e) = self.paths.get(path) {
                if let Some(m) = scan.tier(&e.exact, whole) {
                    return Some(m);
                }
                if let Some(m) = scan.tier(&e.prefix, path::strip_len(path)) {
                    return Some(m);
                }
            }
        }
        for n in candidates {
            if self.kinds(n) & PREFIX == 0 {
                continue;
            }
            let Some(e) = self.paths.get(&path[..n]) else {
                continue;
            };
            if let Some(m) = scan.tier(&e.prefix, path::strip_len(&path[..n])) {
                return Some(m);
            }
        }
        None
    }
}

/// The state of one `find`: the method asked for, whether any route matched
/// host and path, and the `Allow` value built from those that refused.
struct Scan<'a> {
    routes: &'a [Route],
    method: &'a [u8],
    allow: &'a mut Vec<u8>,
}

impl Scan<'_> {
    /// The most specific routes that match host and path, all with the
    /// same host key and path rule (config order): the first that takes
    /// the method wins; if none does, the answer is 405 with their methods
    /// in `Allow` (a less specific route is never tried for the method, as
    /// a less specific nginx `location` is not). `None`: no such routes.
    #[inline]
    fn tier(&mut self, ids: &[RouteId], prefix_len: usize) -> Option<RouteMatch> {
        if ids.is_empty() {
            return None;
        }
        match ids.iter().copied().find(|&id| self.offer(id)) {
            Some(id) => Some(RouteMatch::Found { id, prefix_len }),
            None => Some(RouteMatch::MethodNotAllowed),
        }
    }

    /// A route matched host and path: does it take the method? If not, its
    /// methods join `Allow` (each once; `Allow` only grows while no route
    /// has taken the request, so it holds exactly the refusals so far).
    #[inline]
    fn offer(&mut self, id: RouteId) -> bool {
        let methods = &self.routes[id].methods;
        if methods.is_empty() || methods.iter().any(|m| **m == *self.method) {
            return true;
        }
        for m in methods.iter() {
            let seen = self
                .allow
                .split(|&b| b == b',')
                .any(|item| item.strip_prefix(b" ").unwrap_or(item) == &**m);
            if !seen {
                if !self.allow.is_empty() {
                    self.allow.extend_from_slice(b", ");
                }
                self.allow.extend_from_slice(m);
            }
        }
        false
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl RouteTable {
    /// Compiles `defs` (route ids are their indices). Errors name the route
    /// and field: `routes[3].name: duplicate name "x"`,
    /// `routes[2].hosts[0]: ...`, `routes[0].path_prefix: must start with '/'`.
    pub fn new(defs: &[RouteDef]) -> Result<RouteTable, RouteError> {
        let mut names = HashSet::with_capacity(defs.len());
        let mut routes = Vec::with_capacity(defs.len());
        let mut exact_hosts: Map<Group> = Map::default();
        let mut wildcards: Map<Group> = Map::default();
        let mut any_host = Group::default();

        for (id, def) in defs.iter().enumerate() {
            if def.name.is_empty() {
                return Err(RouteError::EmptyName { route: id });
            }
            if !names.insert(def.name.as_str()) {
                return Err(RouteError::DuplicateName {
                    route: id,
                    name: def.name.clone(),
                });
            }
            let (field, p) = match &def.path {
                PathRule::Exact(p) => ("path", p),
                PathRule::Prefix(p) => ("path_prefix", p),
            };
            path::check(p).map_err(|reason| RouteError::BadPath {
                route: id,
                field,
                value: p.clone(),
                reason,
            })?;

            let mut patterns: Vec<HostPattern> = Vec::with_capacity(def.hosts.len());
            for (j, raw) in def.hosts.iter().enumerate() {
                let pat = host::compile(raw).map_err(|reason| RouteError::BadHost {
                    route: id,
                    host: j,
                    value: raw.clone(),
                    reason,
                })?;
                // `A.test` and `a.test.` are one host: enter the route once.
                if !patterns.contains(&pat) {
                    patterns.push(pat);
                }
            }

            let mut methods: Vec<Box<[u8]>> = Vec::with_capacity(def.methods.len());
            for (j, m) in def.methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(is_tchar) {
                    return Err(RouteError::BadMethod {
                        route: id,
                        method: j,
                        value: m.clone(),
                    });
                }
                if !methods.iter().any(|x| **x == *m.as_bytes()) {
                    methods.push(m.as_bytes().into());
                }
            }
            routes.push(Route {
                name: def.name.as_str().into(),
                methods: methods.into(),
            });

            if patterns.is_empty() {
                any_host.add(id, &def.path);
            }
            for pat in patterns {
                let (map, key) = match pat {
                    HostPattern::Exact(h) => (&mut exact_hosts, h),
                    HostPattern::Wildcard(s) => (&mut wildcards, s),
                };
                map.entry(key.into_bytes().into())
                    .or_default()
                    .add(id, &def.path);
            }
        }

        let mut wildcard_lens =
            vec![false; wildcards.keys().map(|k| k.len() + 1).max().unwrap_or(0)];
        for k in wildcards.keys() {
            wildcard_lens[k.len()] = true;
        }
        Ok(RouteTable {
            routes: routes.into(),
            exact_hosts,
            wildcards,
            wildcard_lens: wildcard_lens.into(),
            any_host,
        })
    }

    /// Finds the route for a request.
    ///
    /// `host`: already lower-cased, port and trailing dot removed (empty if
    /// none). `path`: the normalized path WITHOUT query. `allow` is cleared
    /// and, on [`RouteMatch::MethodNotAllowed`], holds e.g. `GET, POST`. No
    /// allocation when `allow` has the capacity (the longest `Allow` value is
    /// bounded by the config).
    pub fn find(&self, host: &[u8], path: &[u8], method: &[u8], allow: &mut Vec<u8>) -> RouteMatch {
        allow.clear();
        let mut scan = Scan {
            routes: &self.routes,
            method,
            allow,
        };
        if let Some(found) = self.scan_hosts(host, path, &mut scan) {
            if found != RouteMatch::MethodNotAllowed {
                scan.allow.clear();
            }
            return found;
        }
        RouteMatch::NoRoute
    }

    /// Visits the host groups in host precedence.
    #[inline]
    fn scan_hosts(&self, host: &[u8], path: &[u8], scan: &mut Scan<'_>) -> Option<RouteMatch> {
        if !self.exact_hosts.is_empty() {
            if let Some(g) = self.exact_hosts.get(host) {
                if let Some(found) = g.scan(path, scan) {
                    return Some(found);
                }
            }
        }
        if !self.wildcards.is_empty() {
            for suffix in host::wildcard_suffixes(host) {
                if !self
                    .wildcard_lens
                    .get(suffix.len())
                    .copied()
                    .unwrap_or(false)
                {
                    continue;
                }
                if let Some(g) = self.wildcards.get(suffix) {
                    if let Some(found) = g.scan(path, scan) {
                        return Some(found);
                    }
                }
            }
        }
        self.any_host.scan(path, scan)
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no routes (every request is [`RouteMatch::NoRoute`]).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// A route's name. Panics if `id` is not from this table.
    pub fn name(&self, id: RouteId) -> &str {
        &self.routes[id].name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `spec`: (name, hosts, path, methods); a path ending in `*` is a
    /// prefix (`/api*` → `Prefix("/api")`, `/*` → `Prefix("/")`).
    fn defs(spec: &[(&str, &[&str], &str, &[&str])]) -> Vec<RouteDef> {
        spec.iter()
            .map(|&(name, hosts, p, methods)| RouteDef {
                name: name.into(),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                path: match p.strip_suffix('*') {
                    Some(pre) => PathRule::Prefix(pre.into()),
                    None => PathRule::Exact(p.into()),
                },
                methods: methods.iter().map(|m| m.to_string()).collect(),
            })
            .collect()
    }

    fn table(spec: &[(&str, &[&str], &str, &[&str])]) -> RouteTable {
        RouteTable::new(&defs(spec)).unwrap()
    }

    /// The name of the route found, `"404"`, or `"405 <Allow>"`.
    fn route(t: &RouteTable, host: &str, path: &str, method: &str) -> String {
        let mut allow = b"stale".to_vec();
        match t.find(
            host.as_bytes(),
            path.as_bytes(),
            method.as_bytes(),
            &mut allow,
        ) {
            RouteMatch::Found { id, .. } => {
                assert!(allow.is_empty());
                t.name(id).to_string()
            }
            RouteMatch::NoRoute => {
                assert!(allow.is_empty());
                "404".into()
            }
            RouteMatch::MethodNotAllowed => {
                format!("405 {}", String::from_utf8(allow).unwrap())
            }
        }
    }

    fn prefix_len(t: &RouteTable, path: &str) -> usize {
        match t.find(b"", path.as_bytes(), b"GET", &mut Vec::new()) {
            RouteMatch::Found { prefix_len, .. } => prefix_len,
            other => panic!("{path}: {other:?}"),
        }
    }

    fn error(spec: &[(&str, &[&str], &str, &[&str])]) -> String {
        RouteTable::new(&defs(spec)).unwrap_err().to_string()
    }

    const ANY: &[&str] = &[];

    #[test]
    fn table_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<RouteTable>();
    }

    #[test]
    fn exact_path_matches_only_itself() {
        let t = table(&[("e", ANY, "/api", ANY)]);
        assert_eq!(route(&t, "", "/api", "GET"), "e");
        for p in ["/api/", "/api/x", "/apiary", "/ap", "/", ""] {
            assert_eq!(route(&t, "", p, "GET"), "404", "{p}");
        }
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let t = table(&[("p", ANY, "/api*", ANY)]);
        for p in ["/api", "/api/", "/api/x", "/api/x/y"] {
            assert_eq!(route(&t, "", p, "GET"), "p", "{p}");
        }
        for p in ["/apiary", "/ap", "/", "/x/api", ""] {
            assert_eq!(route(&t, "", p, "GET"), "404", "{p}");
        }
    }

    #[test]
    fn prefix_with_trailing_slash_requires_it() {
        let t = table(&[("p", ANY, "/api/*", ANY)]);
        for p in ["/api/", "/api/x", "/api/x/"] {
            assert_eq!(route(&t, "", p, "GET"), "p", "{p}");
        }
        for p in ["/api", "/apiary", "/apix/"] {
            assert_eq!(route(&t, "", p, "GET"), "404", "{p}");
        }
    }

    #[test]
    fn root_prefix_catches_every_path() {
        let t = table(&[("all", ANY, "/*", ANY)]);
        for p in ["/", "/x", "/a/b/c/", "/%2E"] {
            assert_eq!(route(&t, "any.host", p, "GET"), "all", "{p}");
        }
        // Not a path: what the caller must never pass, but still no match.
        assert_eq!(route(&t, "", "", "GET"), "404");
        assert_eq!(route(&t, "", "*", "OPTIONS"), "404");
    }

    #[test]
    fn prefix_len_leaves_a_leading_slash_or_nothing() {
        let t = table(&[
            ("api", ANY, "/api*", ANY),
            ("v2", ANY, "/v2/*", ANY),
            ("exact", ANY, "/e/x", ANY),
            ("root", ANY, "/*", ANY),
        ]);
        assert_eq!(prefix_len(&t, "/api"), 4); // "" → the caller forwards "/"
        assert_eq!(prefix_len(&t, "/api/"), 4); // "/"
        assert_eq!(prefix_len(&t, "/api/x"), 4); // "/x"
        assert_eq!(prefix_len(&t, "/v2/"), 3); // "/"
        assert_eq!(prefix_len(&t, "/v2/x/y"), 3); // "/x/y"
        assert_eq!(prefix_len(&t, "/e/x"), 4); // ""
        assert_eq!(prefix_len(&t, "/other/x"), 0); // "/other/x"
    }

    #[test]
    fn hosts_match_exactly_after_compiling_case_and_trailing_dot() {
        let t = table(&[("h", &["API.Example.Test."], "/*", ANY)]);
        assert_eq!(route(&t, "api.example.test", "/", "GET"), "h");
        for h in ["example.test", "x.api.example.test", "api.example.tes", ""] {
            assert_eq!(route(&t, h, "/", "GET"), "404", "{h}");
        }
    }

    #[test]
    fn wildcard_needs_one_or_more_labels_before_the_suffix() {
        let t = table(&[("w", &["*.example.test"], "/*", ANY)]);
        for h in ["a.example.test", "a.b.example.test", "x-1.example.test"] {
            assert_eq!(route(&t, h, "/", "GET"), "w", "{h}");
        }
        for h in [
            "example.test",
            "xexample.test",
            ".example.test",
            "example.test.evil",
            "a.example.testx",
            "test",
            "",
        ] {
            assert_eq!(route(&t, h, "/", "GET"), "404", "{h}");
        }
    }

    #[test]
    fn empty_hosts_match_any_host_including_none() {
        let t = table(&[("any", ANY, "/*", ANY)]);
        for h in ["", "a.example.test", "127.0.0.1", "[::1]"] {
            assert_eq!(route(&t, h, "/x", "GET"), "any", "{h}");
        }
    }

    #[test]
    fn exact_host_beats_wildcard_beats_no_hosts_whatever_the_path() {
        // Each less specific host tier has a *more* specific path, and comes
        // first in config order: host precedence still decides.
        let t = table(&[
            ("none", ANY, "/a/b", ANY),
            ("wild", &["*.example.test"], "/a*", ANY),
            ("exact", &["api.example.test"], "/*", ANY),
        ]);
        assert_eq!(route(&t, "api.example.test", "/a/b", "GET"), "exact");
        assert_eq!(route(&t, "www.example.test", "/a/b", "GET"), "wild");
        assert_eq!(route(&t, "other.test", "/a/b", "GET"), "none");
        // Outside a tier's path, the next tier takes it.
        assert_eq!(route(&t, "www.example.test", "/z", "GET"), "404");
    }

    #[test]
    fn longer_wildcard_suffix_first() {
        let t = table(&[
            ("short", &["*.test"], "/*", ANY),
            ("mid", &["*.example.test"], "/*", ANY),
            ("long", &["*.b.example.test"], "/*", ANY),
        ]);
        assert_eq!(route(&t, "a.b.example.test", "/", "GET"), "long");
        assert_eq!(route(&t, "b.example.test", "/", "GET"), "mid");
        assert_eq!(route(&t, "example.test", "/", "GET"), "short");
    }

    #[test]
    fn a_route_ranks_by_its_best_matching_host() {
        let t = table(&[
            ("wild", &["*.example.test"], "/*", ANY),
            ("both", &["*.example.test", "api.example.test"], "/*", ANY),
        ]);
        assert_eq!(route(&t, "api.example.test", "/", "GET"), "both");
        assert_eq!(route(&t, "www.example.test", "/", "GET"), "wild");
    }

    #[test]
    fn exact_path_beats_prefix() {
        let t = table(&[("prefix", ANY, "/api*", ANY), ("exact", ANY, "/api", ANY)]);
        assert_eq!(route(&t, "", "/api", "GET"), "exact");
        assert_eq!(route(&t, "", "/api/", "GET"), "prefix");
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[
            ("root", ANY, "/*", ANY),
            ("a", ANY, "/a*", ANY),
            ("a-slash", ANY, "/a/*", ANY),
            ("ab", ANY, "/a/b*", ANY),
        ]);
        assert_eq!(route(&t, "", "/a/b/c", "GET"), "ab");
        assert_eq!(route(&t, "", "/a/bc", "GET"), "a-slash");
        assert_eq!(route(&t, "", "/a/", "GET"), "a-slash");
        assert_eq!(route(&t, "", "/a", "GET"), "a");
        assert_eq!(route(&t, "", "/ab", "GET"), "root");
    }

    #[test]
    fn config_order_breaks_ties() {
        let t = table(&[
            ("first", ANY, "/a*", ANY),
            ("second", ANY, "/a*", ANY),
            ("x1", &["h.test"], "/x", ANY),
            ("x2", &["H.test."], "/x", ANY),
        ]);
        assert_eq!(route(&t, "", "/a/b", "GET"), "first");
        assert_eq!(route(&t, "h.test", "/x", "GET"), "x1");
    }

    #[test]
    fn the_most_specific_match_decides_the_method() {
        let t = table(&[
            ("read", &["api.example.test"], "/users", &["GET"]),
            ("write", ANY, "/users*", &["POST"]),
            ("rest", ANY, "/*", ANY),
        ]);
        assert_eq!(route(&t, "api.example.test", "/users", "GET"), "read");
        // A less specific route is not tried for a refused method: 405, as a
        // less specific nginx `location` is not.
        assert_eq!(route(&t, "api.example.test", "/users", "POST"), "405 GET");
        assert_eq!(route(&t, "other.test", "/users", "POST"), "write");
        assert_eq!(route(&t, "other.test", "/users/1", "PUT"), "405 POST");
        assert_eq!(route(&t, "other.test", "/elsewhere", "PUT"), "rest");
    }

    #[test]
    fn routes_tied_on_host_and_path_share_the_methods() {
        let t = table(&[
            ("reads", ANY, "/api*", &["GET", "HEAD"]),
            ("writes", ANY, "/api*", &["POST", "PUT", "POST"]),
            ("root", ANY, "/*", &["DELETE"]),
        ]);
        assert_eq!(route(&t, "", "/api/x", "GET"), "reads");
        assert_eq!(route(&t, "", "/api/x", "PUT"), "writes");
        assert_eq!(route(&t, "", "/api/x", "PATCH"), "405 GET, HEAD, POST, PUT");
        assert_eq!(route(&t, "", "/x", "DELETE"), "root");
    }

    #[test]
    fn exact_path_routes_decide_before_prefixes_of_the_same_path() {
        let t = table(&[
            ("prefix", ANY, "/api/x*", &["GET"]),
            ("exact", ANY, "/api/x", &["POST"]),
        ]);
        assert_eq!(route(&t, "", "/api/x", "POST"), "exact");
        assert_eq!(route(&t, "", "/api/x", "GET"), "405 POST");
        assert_eq!(route(&t, "", "/api/x/1", "GET"), "prefix");
    }

    #[test]
    fn methods_are_case_sensitive_tokens() {
        let t = table(&[("r", ANY, "/*", &["GET"])]);
        assert_eq!(route(&t, "", "/", "get"), "405 GET");
        assert_eq!(route(&t, "", "/", "GETX"), "405 GET");
        assert_eq!(route(&t, "", "/", "GE"), "405 GET");
        let t = table(&[("r", ANY, "/*", &["M-SEARCH", "Custom_1"])]);
        assert_eq!(route(&t, "", "/", "M-SEARCH"), "r");
    }

    #[test]
    fn allow_is_deduplicated_by_whole_token() {
        // "GET" must not count as seen because "GETX" is in the list.
        let t = table(&[
            ("a", ANY, "/x", &["GETX"]),
            ("b", ANY, "/x", &["GET", "GETX"]),
        ]);
        assert_eq!(route(&t, "", "/x", "PUT"), "405 GETX, GET");
    }

    #[test]
    fn no_route_when_neither_host_nor_path_match() {
        let t = table(&[("r", &["h.test"], "/a", &["GET"])]);
        assert_eq!(route(&t, "h.test", "/b", "GET"), "404");
        assert_eq!(route(&t, "other.test", "/a", "GET"), "404");
        assert_eq!(route(&table(&[]), "", "/", "GET"), "404");
    }

    #[test]
    fn find_reuses_the_allow_buffer() {
        let t = table(&[("r", ANY, "/*", &["GET", "POST"])]);
        let mut allow = Vec::with_capacity(64);
        let ptr = allow.as_ptr();
        for _ in 0..3 {
            assert_eq!(
                t.find(b"", b"/x", b"PUT", &mut allow),
                RouteMatch::MethodNotAllowed
            );
            assert_eq!(allow, b"GET, POST");
        }
        assert_eq!((allow.as_ptr(), allow.capacity()), (ptr, 64));
    }

    #[test]
    fn errors_name_the_route_and_field() {
        assert_eq!(
            error(&[("", ANY, "/", ANY)]),
            "routes[0].name: must not be empty"
        );
        assert_eq!(
            error(&[
                ("a", ANY, "/a", ANY),
                ("x", ANY, "/x", ANY),
                ("b", ANY, "/b", ANY),
                ("x", ANY, "/y", ANY)
            ]),
            "routes[3].name: duplicate name \"x\""
        );
        assert_eq!(
            error(&[("a", ANY, "/a", ANY), ("b", ANY, "api*", ANY)]),
            "routes[1].path_prefix: must start with '/' (got \"api\")"
        );
        assert!(error(&[("a", ANY, "api", ANY)]).starts_with("routes[0].path: must start with '/'"));
        assert!(error(&[("a", ANY, "/a/../b", ANY)])
            .starts_with("routes[0].path: must not contain a dot segment"));
        assert_eq!(
            error(&[
                ("a", ANY, "/", ANY),
                ("b", ANY, "/", ANY),
                ("c", &["ok.test", "bad host"], "/", ANY)
            ]),
            "routes[2].hosts[1]: host name may hold only letters, digits, '-', '_' and '.' (got \"bad host\")"
        );
        assert!(error(&[("a", &["*"], "/", ANY)]).starts_with("routes[0].hosts[0]: "));
        assert!(error(&[("a", &["a.*.test"], "/", ANY)]).starts_with("routes[0].hosts[0]: "));
        assert_eq!(
            error(&[("a", ANY, "/", &["GET", "GE T"])]),
            "routes[0].methods[1]: not a method token (got \"GE T\")"
        );
        assert!(error(&[("a", ANY, "/", &[""])]).starts_with("routes[0].methods[0]: "));
    }
}
