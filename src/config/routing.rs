//! `upstreams` and `routes`: several services behind one gateway.
//!
//! An upstream is a named pool of backends with its own balancer and
//! breaker settings; a route picks an upstream by host, path and method and
//! carries per-route policy (prefix rewriting, header rules, its own rate
//! limiter, timeouts). The top-level `backends` are the upstream named
//! `default`; the old `routes: ["/a", "/b"]` form is prefix routes to it.
//!
//! Invariants of a loaded config: upstream names are unique, backend names
//! are unique across every upstream, every route names an upstream that
//! exists (resolved to its index), route names are unique, and no header
//! rule touches a hop-by-hop or framing field. Matching itself is
//! `crate::route`; this module only reads and checks the JSON.

use std::collections::HashSet;

use api_gateway_protocol::{BalanceSpec, BreakerSpec};
use serde_json::{Map, Value};

use super::auth::{route_auth, ConsumerConfig, RouteAuthConfig};
use super::{as_object, check_keys, err, field, from_value, ConfigError, RateLimitConfig};
use crate::backend::BackendDef;
pub use crate::route::PathRule;

/// The name of the upstream made of the top-level `backends`.
pub const DEFAULT_UPSTREAM: &str = "default";

/// One upstream pool.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Unique name (`default` for the top-level backends).
    pub name: String,
    /// Its backends (names unique across all upstreams).
    pub backends: Vec<BackendDef>,
    /// Its initial balancer (default: the top-level `load_balancer`).
    pub load_balancer: BalanceSpec,
    /// Its breaker thresholds (default: the top-level `circuit_breaker`).
    pub circuit_breaker: BreakerSpec,
    /// Health checks, retries, slow start, cap and queue (default: the
    /// top-level keys).
    pub resilience: super::Resilience,
}

/// `request_headers` / `response_headers`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Fields set (replacing any the message has), in config order.
    pub set: Vec<(String, String)>,
    /// Field names removed (lower-cased).
    pub remove: Vec<String>,
}

impl HeaderRules {
    /// Whether the rules change nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// Per-route `timeouts`: each overrides the top-level one for the route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteTimeouts {
    /// `connect_ms`.
    pub connect_ms: Option<u64>,
    /// `backend_response_ms`.
    pub backend_response_ms: Option<u64>,
}

/// One route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Unique name (default `route-N`, N its index).
    pub name: String,
    /// Host names (lower-case; `*.example.test` wildcards); empty: any host.
    pub hosts: Vec<String>,
    /// The path rule.
    pub path: PathRule,
    /// Methods allowed; empty: any.
    pub methods: Vec<String>,
    /// The upstream's name.
    pub upstream: String,
    /// Remove the matched prefix before forwarding.
    pub strip_prefix: bool,
    /// Put in front of the forwarded path (after stripping); empty: nothing.
    pub add_prefix: String,
    /// Its own limiter and key space; `None`: the top-level `rate_limit`.
    pub rate_limit: Option<RateLimitConfig>,
    /// Rules for the request sent to the backend.
    pub request_headers: HeaderRules,
    /// Rules for the response sent to the client.
    pub response_headers: HeaderRules,
    /// Timeout overrides.
    pub timeouts: RouteTimeouts,
    /// Who may call it (`None`: anyone).
    pub auth: Option<RouteAuthConfig>,
}

impl RouteConfig {
    /// A prefix route to `default` with no policy (the old string form).
    pub fn prefix(index: usize, prefix: &str) -> RouteConfig {
        RouteConfig {
            name: format!("route-{index}"),
            hosts: Vec::new(),
            path: PathRule::Prefix(prefix.to_string()),
            methods: Vec::new(),
            upstream: DEFAULT_UPSTREAM.into(),
            strip_prefix: false,
            add_prefix: String::new(),
            rate_limit: None,
            request_headers: HeaderRules::default(),
            response_headers: HeaderRules::default(),
            timeouts: RouteTimeouts::default(),
            auth: None,
        }
    }
}

/// Reads `upstreams` (the entries after `default`); `taken` holds the
/// backend names already used (the top-level ones) and gains these.
pub(super) fn upstreams(
    v: &Value,
    top_lb: &BalanceSpec,
    top_breaker: &BreakerSpec,
    top_resilience: &super::Resilience,
    has_default: bool,
    taken: &mut HashSet<String>,
) -> Result<Vec<UpstreamConfig>, ConfigError> {
    let Value::Array(list) = v else {
        return err("upstreams", "must be a list");
    };
    let mut names = HashSet::new();
    if has_default {
        names.insert(DEFAULT_UPSTREAM.to_string());
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, u) in list.iter().enumerate() {
        let path = format!("upstreams[{i}]");
        let o = as_object(u, &path)?;
        check_keys(
            o,
            &format!("{path}."),
            &[
                "name",
                "backends",
                "load_balancer",
                "circuit_breaker",
                "health_check",
                "retry",
                "slow_start_ms",
                "max_inflight_per_backend",
                "queue",
            ],
        )?;
        let name: String = field(o, "name", &format!("{path}.name"))?
            .ok_or_else(|| ConfigError(format!("{path}.name: required")))?;
        if !is_name(&name) {
            return err(
                &format!("{path}.name"),
                "must be 1-64 characters of letters, digits, '-', '_' and '.'",
            );
        }
        if !names.insert(name.clone()) {
            let why = if name == DEFAULT_UPSTREAM {
                "\"default\" is the upstream made of the top-level backends".to_string()
            } else {
                format!("duplicate upstream name \"{name}\"")
            };
            return err(&format!("{path}.name"), why);
        }
        let backends = super::backend_list(o.get("backends"), &format!("{path}.backends"), taken)?;
        let load_balancer = match o.get("load_balancer") {
            None => top_lb.clone(),
            Some(v) => super::balancer(v, &format!("{path}.load_balancer"))?,
        };
        let circuit_breaker = match o.get("circuit_breaker") {
            None => *top_breaker,
            Some(v) => super::breaker(v, &format!("{path}.circuit_breaker"))?,
        };
        let resilience = super::resilience::parse(o, &format!("{path}."), top_resilience)?;
        out.push(UpstreamConfig {
            name,
            backends,
            load_balancer,
            circuit_breaker,
            resilience,
        });
    }
    Ok(out)
}

/// Reads `routes` (strings, objects, or both); `upstreams` are every
/// upstream name, `default` first when it exists.
pub(super) fn routes(
    v: &Value,
    upstreams: &[&str],
    consumers: &[ConsumerConfig],
) -> Result<Vec<RouteConfig>, ConfigError> {
    let Value::Array(list) = v else {
        return err("routes", "must be a list of routes");
    };
    if list.is_empty() {
        return err(
            "routes",
            "must not be empty (leave it out for one catch-all route)",
        );
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let path = format!("routes[{i}]");
        let route = match r {
            Value::String(prefix) => {
                check_path(prefix, &path)?;
                RouteConfig::prefix(i, prefix)
            }
            Value::Object(o) => route(o, i, &path, consumers)?,
            _ => return err(&path, "must be a path prefix or a route object"),
        };
        if !upstreams.contains(&route.upstream.as_str()) {
            return err(
                &format!("{path}.upstream"),
                format!("no upstream named \"{}\"", route.upstream),
            );
        }
        if !names.insert(route.name.clone()) {
            return err(
                &format!("{path}.name"),
                format!("duplicate route name \"{}\"", route.name),
            );
        }
        out.push(route);
    }
    Ok(out)
}

fn route(
    o: &Map<String, Value>,
    i: usize,
    path: &str,
    consumers: &[ConsumerConfig],
) -> Result<RouteConfig, ConfigError> {
    check_keys(
        o,
        &format!("{path}."),
        &[
            "name",
            "hosts",
            "path",
            "path_prefix",
            "methods",
            "upstream",
            "strip_prefix",
            "add_prefix",
            "rate_limit",
            "request_headers",
            "response_headers",
            "timeouts",
            "auth",
        ],
    )?;
    let sub = |k: &str| format!("{path}.{k}");
    let mut r = RouteConfig::prefix(i, "/");
    if let Some(name) = field::<String>(o, "name", &sub("name"))? {
        if !is_name(&name) {
            return err(
                &sub("name"),
                "must be 1-64 characters of letters, digits, '-', '_' and '.'",
            );
        }
        r.name = name;
    }
    r.path = match (
        field::<String>(o, "path", &sub("path"))?,
        field::<String>(o, "path_prefix", &sub("path_prefix"))?,
    ) {
        (Some(_), Some(_)) => return err(path, "has both path and path_prefix (choose one)"),
        (None, None) => return err(path, "needs path or path_prefix"),
        (Some(p), None) => {
            check_path(&p, &sub("path"))?;
            PathRule::Exact(p)
        }
        (None, Some(p)) => {
            check_path(&p, &sub("path_prefix"))?;
            PathRule::Prefix(p)
        }
    };
    if let Some(hosts) = field::<Vec<String>>(o, "hosts", &sub("hosts"))? {
        if hosts.is_empty() {
            return err(
                &sub("hosts"),
                "must not be empty (leave it out for any host)",
            );
        }
        for (j, h) in hosts.iter().enumerate() {
            if !is_host_pattern(h) {
                return err(
                    &format!("{path}.hosts[{j}]"),
                    format!("\"{h}\" is not a host name or a \"*.\" wildcard"),
                );
            }
        }
        r.hosts = hosts
            .iter()
            .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
            .collect();
    }
    if let Some(methods) = field::<Vec<String>>(o, "methods", &sub("methods"))? {
        if methods.is_empty() {
            return err(
                &sub("methods"),
                "must not be empty (leave it out for any method)",
            );
        }
        for (j, m) in methods.iter().enumerate() {
            if !crate::http::upgrade::is_token(m) {
                return err(&format!("{path}.methods[{j}]"), "must be a method token");
            }
        }
        r.methods = methods;
    }
    r.upstream = field::<String>(o, "upstream", &sub("upstream"))?
        .ok_or_else(|| ConfigError(format!("{path}.upstream: required")))?;
    r.strip_prefix = field(o, "strip_prefix", &sub("strip_prefix"))?.unwrap_or(false);
    if let Some(p) = field::<String>(o, "add_prefix", &sub("add_prefix"))? {
        check_path(&p, &sub("add_prefix"))?;
        r.add_prefix = p;
    }
    if let Some(v) = o.get("rate_limit") {
        r.rate_limit = Some(super::rate_limit_at(v, &sub("rate_limit"))?);
    }
    if let Some(v) = o.get("request_headers") {
        r.request_headers = header_rules(v, &sub("request_headers"))?;
    }
    if let Some(v) = o.get("response_headers") {
        r.response_headers = header_rules(v, &sub("response_headers"))?;
    }
    if let Some(v) = o.get("timeouts") {
        r.timeouts = route_timeouts(v, &sub("timeouts"))?;
    }
    if let Some(v) = o.get("auth") {
        r.auth = Some(route_auth(v, &sub("auth"), consumers)?);
    }
    Ok(r)
}

/// A route path, prefix or `add_prefix`: starts with '/', visible ASCII,
/// no query, fragment or dot segment (it is matched against normalized
/// paths, so it must be normalized itself to ever match).
fn check_path(p: &str, path: &str) -> Result<(), ConfigError> {
    if !p.starts_with('/') {
        return err(path, format!("\"{p}\" must start with '/'"));
    }
    if !p.bytes().all(|b| b.is_ascii_graphic()) || p.contains(['?', '#', '\\']) {
        return err(
            path,
            format!("\"{p}\" must be visible ASCII without '?', '#' or '\\'"),
        );
    }
    if p.contains("//") || p.split('/').any(|s| s == "." || s == "..") {
        return err(
            path,
            format!("\"{p}\" must be a normalized path (no '//', '.' or '..' segments)"),
        );
    }
    Ok(())
}

/// Route, upstream and backend names: safe in URLs and metric labels.
pub(super) fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A host name (letters, digits, '-', '.', '_'), an IPv4 address, an
/// IP-literal in brackets, or `*.` followed by a host name.
pub(super) fn is_host_pattern(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    if name.starts_with('[') {
        return !h.starts_with("*.")
            && name.ends_with(']')
            && name[1..name.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok();
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Fields a header rule may not touch: hop-by-hop fields (RFC 9110 §7.6.1)
/// and those that frame or address the message. Changing them would
/// desynchronise the gateway from its peers.
const PROTECTED_HEADERS: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "host",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Fields the gateway writes itself on each side: a rule on them would
/// duplicate or contradict what the gateway asserts.
const GATEWAY_REQUEST_HEADERS: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-request-id",
    "x-consumer",
];

/// Whether `name` (any case) is a hop-by-hop or framing field.
pub(super) fn is_protected_header(name: &str) -> bool {
    PROTECTED_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}
const GATEWAY_RESPONSE_HEADERS: [&str; 6] = [
    "x-gateway",
    "x-backend",
    "x-response-time",
    "x-lb-algorithm",
    "x-circuit-state",
    "x-request-id",
];

fn header_rules(v: &Value, path: &str) -> Result<HeaderRules, ConfigError> {
    let owned: &[&str] = if path.ends_with("request_headers") {
        &GATEWAY_REQUEST_HEADERS
    } else {
        &GATEWAY_RESPONSE_HEADERS
    };
    let o = as_object(v, path)?;
    check_keys(o, &format!("{path}."), &["set", "remove"])?;
    let mut rules = HeaderRules::default();
    let check_name = |name: &str, at: &str| -> Result<(), ConfigError> {
        if !crate::http::upgrade::is_token(name) {
            return err(at, format!("\"{name}\" is not a header name"));
        }
        let lower = name.to_ascii_lowercase();
        if PROTECTED_HEADERS.contains(&lower.as_str()) {
            return err(
                at,
                format!("\"{name}\" is a hop-by-hop or framing header and cannot be changed"),
            );
        }
        if owned.contains(&lower.as_str()) {
            return err(
                at,
                format!("\"{name}\" is written by the gateway itself and cannot be changed"),
            );
        }
        Ok(())
    };
    if let Some(set) = o.get("set") {
        let set = as_object(set, &format!("{path}.set"))?;
        for (name, value) in set {
            let at = format!("{path}.set.{name}");
            check_name(name, &at)?;
            let Some(value) = value.as_str() else {
                return err(&at, "must be a string");
            };
            if !value
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
            {
                return err(&at, "must be printable ASCII");
            }
            rules.set.push((name.clone(), value.trim().to_string()));
        }
    }
    if let Some(remove) = o.get("remove") {
        let names: Vec<String> = from_value(remove, &format!("{path}.remove"))?;
        for (i, name) in names.iter().enumerate() {
            check_name(name, &format!("{path}.remove[{i}]"))?;
            rules.remove.push(name.to_ascii_lowercase());
        }
    }
    Ok(rules)
}

fn route_timeouts(v: &Value, path: &str) -> Result<RouteTimeouts, ConfigError> {
    let o = as_object(v, path)?;
    check_keys(
        o,
        &format!("{path}."),
        &["connect_ms", "backend_response_ms"],
    )?;
    let ms = |key: &str| -> Result<Option<u64>, ConfigError> {
        let at = format!("{path}.{key}");
        let v: Option<u64> = field(o, key, &at)?;
        match v {
            Some(v) if !(1..=86_400_000).contains(&v) => err(&at, "must be between 1 and 86400000"),
            v => Ok(v),
        }
    };
    Ok(RouteTimeouts {
        connect_ms: ms("connect_ms")?,
        backend_response_ms: ms("backend_response_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        let text = format!(
            r#"{{"listen": "127.0.0.1:0", "admin": null,
                "backends": [{{"name": "d1", "addr": "127.0.0.1:3001"}}],
                "upstreams": [
                  {{"name": "users", "backends": [{{"name": "u1", "addr": "127.0.0.1:3011"}}],
                    "load_balancer": "least-connections"}},
                  {{"name": "orders", "backends": [{{"name": "o1", "addr": "127.0.0.1:3021"}}]}}
                ]{extra}}}"#
        );
        Config::from_json(&text).map_err(|e| e.0)
    }

    #[test]
    fn the_issue_example_loads() {
        let c = load(
            r#", "routes": [
              {"name": "users-api", "hosts": ["api.example.test", "*.Example.test."], "path_prefix": "/api/users",
               "methods": ["GET", "POST"], "upstream": "users", "strip_prefix": true, "add_prefix": "/v2",
               "rate_limit": {"algorithm": "fixed-window", "limit": 100, "window_ms": 60000, "key": "ip"},
               "request_headers": {"set": {"X-Route": "users-api"}, "remove": ["X-Debug"]},
               "response_headers": {"set": {"X-Frame-Options": "DENY"}, "remove": ["Server"]},
               "timeouts": {"backend_response_ms": 5000}}
            ]"#,
        )
        .unwrap();
        assert!(c.routing());
        assert_eq!(c.upstream_names(), ["default", "users", "orders"]);
        let r = &c.routes[0];
        assert_eq!(r.name, "users-api");
        assert_eq!(r.hosts, ["api.example.test", "*.example.test"]);
        assert_eq!(r.path, PathRule::Prefix("/api/users".into()));
        assert_eq!(r.methods, ["GET", "POST"]);
        assert!(r.strip_prefix);
        assert_eq!(r.add_prefix, "/v2");
        assert!(r.rate_limit.is_some());
        assert_eq!(
            r.request_headers.set,
            [("X-Route".into(), "users-api".into())]
        );
        assert_eq!(r.request_headers.remove, ["x-debug"]);
        assert_eq!(r.response_headers.remove, ["server"]);
        assert_eq!(r.timeouts.backend_response_ms, Some(5000));
        assert_eq!(r.timeouts.connect_ms, None);
        // Upstreams inherit what they do not say from the top level.
        let all = c.all_upstreams();
        assert_eq!(all[1].load_balancer.name(), "least-connections");
        assert_eq!(all[2].load_balancer.name(), c.load_balancer.name());
    }

    #[test]
    fn the_old_string_form_is_prefix_routes_to_default() {
        let c = load(r#", "routes": ["/a", "/b"]"#).unwrap();
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.routes[1].name, "route-1");
        assert_eq!(c.routes[1].path, PathRule::Prefix("/b".into()));
        assert_eq!(c.routes[1].upstream, "default");
        let c = load("").unwrap();
        assert!(
            !c.routing(),
            "no routes: one catch-all, target forwarded as sent"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#", "routes": ["/a", "/b", {"path": "/x", "upstream": "userz"}]"#,
                r#"routes[2].upstream: no upstream named "userz""#,
            ),
            (
                r#", "routes": [{"upstream": "users"}]"#,
                "routes[0]: needs path or path_prefix",
            ),
            (
                r#", "routes": [{"path": "/a", "path_prefix": "/a", "upstream": "users"}]"#,
                "routes[0]: has both path and path_prefix",
            ),
            (r#", "routes": [{"path": "/a"}]"#, "routes[0].upstream: required"),
            (r#", "routes": ["a"]"#, "routes[0]: \"a\" must start with '/'"),
            (r#", "routes": []"#, "routes: must not be empty"),
            (
                r#", "routes": [{"path": "/a/../b", "upstream": "users"}]"#,
                "routes[0].path: \"/a/../b\" must be a normalized path",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "hosts": ["a b"]}]"#,
                "routes[0].hosts[0]:",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "request_headers": {"set": {"Content-Length": "1"}}}]"#,
                "routes[0].request_headers.set.Content-Length: \"Content-Length\" is a hop-by-hop or framing header",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "response_headers": {"remove": ["connection"]}}]"#,
                "routes[0].response_headers.remove[0]:",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "request_headers": {"remove": ["Host"]}}]"#,
                "routes[0].request_headers.remove[0]:",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "request_headers": {"set": {"X-Request-Id": "1"}}}]"#,
                "routes[0].request_headers.set.X-Request-Id: \"X-Request-Id\" is written by the gateway itself",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "response_headers": {"remove": ["x-backend"]}}]"#,
                "routes[0].response_headers.remove[0]: \"x-backend\" is written by the gateway",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "timeouts": {"idle_ms": 5}}]"#,
                "routes[0].timeouts.idle_ms: unknown field",
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "rate_limit": {"algorithm": "nope"}}]"#,
                "routes[0].rate_limit:",
            ),
            (
                r#", "routes": [{"name": "x", "path": "/a", "upstream": "users"}, {"name": "x", "path": "/b", "upstream": "users"}]"#,
                r#"routes[1].name: duplicate route name "x""#,
            ),
            (
                r#", "routes": [{"path": "/a", "upstream": "users", "colour": 1}]"#,
                "routes[0].colour: unknown field",
            ),
        ];
        for (extra, want) in cases {
            let e = load(extra).expect_err(want);
            assert!(e.starts_with(want), "{e}\n  wanted: {want}");
        }
    }

    #[test]
    fn upstream_errors_name_the_field() {
        let text = |ups: &str| {
            format!(
                r#"{{"listen": "127.0.0.1:0", "admin": null,
                    "backends": [{{"name": "d1", "addr": "127.0.0.1:3001"}}],
                    "upstreams": {ups}}}"#
            )
        };
        let cases = [
            (
                r#"[{"name": "a", "backends": [{"name": "d1", "addr": "127.0.0.1:1"}]}]"#,
                "upstreams[0].backends[0].name: duplicate backend name 'd1'",
            ),
            (
                r#"[{"name": "default", "backends": [{"addr": "127.0.0.1:1"}]}]"#,
                "upstreams[0].name: \"default\" is the upstream made of the top-level backends",
            ),
            (
                r#"[{"name": "a", "backends": [{"addr": "127.0.0.1:1"}]}, {"name": "a", "backends": [{"addr": "127.0.0.1:2"}]}]"#,
                r#"upstreams[1].name: duplicate upstream name "a""#,
            ),
            (
                r#"[{"name": "a"}]"#,
                "upstreams[0].backends: at least one backend",
            ),
            (
                r#"[{"name": "a", "backends": [{"addr": "127.0.0.1:1"}], "load_balancer": "nope"}]"#,
                "upstreams[0].load_balancer:",
            ),
            (
                r#"[{"name": "a", "backends": [{"addr": "127.0.0.1:1"}], "circuit_breaker": {"failure_threshold": 0}}]"#,
                "upstreams[0].circuit_breaker.",
            ),
        ];
        for (ups, want) in cases {
            let e = Config::from_json(&text(ups))
                .map_err(|e| e.0)
                .expect_err(want);
            assert!(e.starts_with(want), "{e}\n  wanted: {want}");
        }
    }

    #[test]
    fn upstreams_without_top_level_backends_need_routes() {
        let base = r#""listen": "127.0.0.1:0", "admin": null,
            "upstreams": [{"name": "users", "backends": [{"addr": "127.0.0.1:3011"}]}]"#;
        let e = Config::from_json(&format!("{{{base}}}")).unwrap_err().0;
        assert!(e.starts_with("routes: required"), "{e}");
        let c = Config::from_json(&format!(
            r#"{{{base}, "routes": [{{"path_prefix": "/", "upstream": "users"}}]}}"#
        ))
        .unwrap();
        assert!(c.backends.is_empty());
        assert_eq!(c.upstream_names(), ["users"]);
    }
}
