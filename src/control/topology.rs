//! The routes and upstreams as the control plane reports them: the JSON of
//! `/gateway/routes`, `/gateway/upstreams`, and the per-backend entry that
//! `/gateway/health` shares with them.
//!
//! Credentials never appear here: a route's `auth` shows where it reads a
//! key and which algorithms and claims it checks, never a secret; a
//! consumer shows how many keys it has, never a key or a digest.
//!
//! Rendering only, from the config (what a route matches and does), the
//! shared atomics (live counters, breakers) and the algorithms the controller
//! last sent (which limiter and balancer are in force). Names are the
//! config's: a config without routes reports its one catch-all route, named
//! `default` like the upstream it goes to, matching every path (`/`).

use api_gateway_protocol::BreakerSpec;
use serde_json::{json, Map, Value};

use crate::algo::Nanos;
use crate::auth::AuthFailure;
use crate::backend::{Backend, SelectionMode};
use crate::config::{
    algorithm_name, ApiKeyConfig, Config, HeaderRules, PathRule, RouteAuthConfig, RouteConfig,
    DEFAULT_UPSTREAM,
};
use crate::metrics::{get, ConsumerStats, RouteStats};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::upstream::Pool;

use super::{class_json, quantiles};

/// One backend of `upstream` as every report shows it (the health report's
/// historical fields, plus the upstream's name).
pub fn backend_json(upstream: &Pool, b: &Backend, now: Nanos) -> Value {
    json!({
        "name": b.name,
        "upstream": upstream.name,
        "address": b.addr.to_string(),
        "weight": b.weight,
        "up": b.is_up(),
        "circuitState": b.breaker.state(now).as_str(),
        "health": b.health.state().as_str(),
        "inflight": b.inflight(),
        "requests": get(&b.stats.requests),
        "failures": get(&b.stats.failures),
        "status": class_json(&b.stats.status),
        "latency_ms": quantiles(&b.stats.latency),
    })
}

/// The breaker settings `upstream` was built with.
fn breaker_of(config: &Config, upstream: &str) -> BreakerSpec {
    config
        .upstreams
        .iter()
        .find(|u| u.name == upstream)
        .map_or(config.circuit_breaker, |u| u.circuit_breaker)
}

/// One entry of `/gateway/upstreams`.
pub fn upstream_json(s: &Snapshot, u: &Pool, now: Nanos) -> Value {
    let balancer = serde_json::to_value(u.balancer.spec()).unwrap_or(Value::Null);
    let table = &u.table;
    let routes: Vec<&str> = if s.config.routes.is_empty() {
        // The catch-all goes to `default`.
        (u.name == DEFAULT_UPSTREAM)
            .then_some(DEFAULT_UPSTREAM)
            .into_iter()
            .collect()
    } else {
        s.config
            .routes
            .iter()
            .filter(|r| r.upstream == u.name)
            .map(|r| r.name.as_str())
            .collect()
    };
    json!({
        "name": u.name,
        "loadBalancer": balancer,
        "circuitBreaker": serde_json::to_value(breaker_of(&s.config, &u.name)).unwrap_or(Value::Null),
        "panic": matches!(table.selection(now), SelectionMode::Panic { .. }),
        "openCircuits": table.open_budget().open(),
        "maxOpenCircuits": table.open_budget().max_open(),
        "routes": routes,
        "max_inflight_per_backend": u.cap,
        "queue": u.queue.map(|q| json!({
            "max": q.max,
            "timeout_ms": q.timeout_ms,
            "depth": u.waiting.depth(),
            "full": get(&u.waiting.full),
            "timed_out": get(&u.waiting.timed_out),
            "wait_ms": quantiles(&u.waiting.waited),
        })),
        "retry": u.retry.as_ref().map(|r| {
            let (requests, retries) = u.budget.totals(now);
            json!({
                "attempts": r.attempts,
                "on": r.on.iter().map(|w| w.describe()).collect::<Vec<_>>(),
                "per_try_timeout_ms": r.per_try_timeout_ms,
                "budget_ratio": r.budget_ratio,
                "budget_min_per_sec": r.budget_min_per_sec,
                "last_10s": {"requests": requests, "retries": retries},
            })
        }),
        "backends": table.iter().map(|b| backend_json(u, b, now)).collect::<Vec<_>>(),
    })
}

/// One entry of `/gateway/routes`. `route` is `None` for the catch-all of a
/// config without routes; `limiter` is the JSON of the limiter counting it.
pub fn route_json(
    s: &Snapshot,
    name: &str,
    route: Option<&RouteConfig>,
    limiter: Value,
    stats: &RouteStats,
) -> Value {
    let t = &s.config.timeouts;
    let mut matcher = Map::new();
    let (hosts, methods, upstream) = match route {
        Some(r) => (&r.hosts[..], &r.methods[..], r.upstream.as_str()),
        None => (&[][..], &[][..], DEFAULT_UPSTREAM),
    };
    // Empty lists mean "any", as in the config.
    matcher.insert("hosts".into(), json!(hosts));
    match route.map(|r| &r.path) {
        Some(PathRule::Exact(p)) => matcher.insert("path".into(), json!(p)),
        Some(PathRule::Prefix(p)) => matcher.insert("path_prefix".into(), json!(p)),
        None => matcher.insert("path_prefix".into(), json!("/")),
    };
    matcher.insert("methods".into(), json!(methods));
    let none = HeaderRules::default();
    let own = route.map(|r| r.timeouts).unwrap_or_default();
    json!({
        "name": name,
        "match": matcher,
        "upstream": upstream,
        "policies": {
            "strip_prefix": route.is_some_and(|r| r.strip_prefix),
            "add_prefix": route.map_or("", |r| r.add_prefix.as_str()),
            "rateLimiter": limiter,
            "request_headers": headers_json(route.map_or(&none, |r| &r.request_headers)),
            "response_headers": headers_json(route.map_or(&none, |r| &r.response_headers)),
            // What applies: the route's override, else the top-level value.
            "auth": route.and_then(|r| r.auth.as_ref()).map_or(Value::Null, auth_json),
            "timeouts": {
                "connect_ms": own.connect_ms.unwrap_or(t.connect_ms),
                "backend_response_ms": own.backend_response_ms.unwrap_or(t.backend_response_ms),
                "overridden": own.connect_ms.map(|_| "connect_ms").into_iter()
                    .chain(own.backend_response_ms.map(|_| "backend_response_ms"))
                    .collect::<Vec<_>>(),
            },
        },
        "counters": counters_json(stats),
    })
}

/// A route's live counters: requests, answers by class, 429s, latency.
fn counters_json(st: &RouteStats) -> Value {
    json!({
        "requests": get(&st.requests),
        "1xx": get(&st.status[0]),
        "2xx": get(&st.status[1]),
        "3xx": get(&st.status[2]),
        "4xx": get(&st.status[3]),
        "429": get(&st.limited),
        "5xx": get(&st.status[4]),
        "latency_ms": quantiles(&st.latency),
    })
}

fn headers_json(h: &HeaderRules) -> Value {
    let set: Map<String, Value> = h
        .set
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({"set": set, "remove": h.remove})
}

/// A route's `auth` without its secrets: where the key is read, which
/// algorithms and claims a token must satisfy, who is allowed.
fn auth_json(a: &RouteAuthConfig) -> Value {
    let api_key = a.api_key.as_ref().map(|k| match k {
        ApiKeyConfig::Header(h) => json!({"header": h}),
        ApiKeyConfig::Query(q) => json!({"query": q}),
    });
    let jwt = a.jwt.as_ref().map(|j| {
        json!({
            "algorithms": j.algorithms.iter().map(|a| algorithm_name(*a)).collect::<Vec<_>>(),
            // Which kind of key, never the key.
            "secret": j.secret.is_some(),
            "public_key_pem_file": j.public_key.as_ref().map(|(file, _)| file),
            "issuer": j.issuer,
            "audience": j.audience,
            "leeway_secs": j.leeway_secs,
            "consumer_claim": j.consumer_claim,
        })
    });
    json!({"api_key": api_key, "jwt": jwt, "allow": a.allow})
}

/// The `/gateway/consumers` report: each consumer with how many keys it
/// has (never which), its own limit, the authenticated routes it may call,
/// and its live counters; then the authentication failures by reason.
pub fn consumers_json(s: &Shared, snap: &Snapshot) -> Value {
    let config = &snap.config;
    let consumers: Vec<Value> = config
        .consumers
        .iter()
        .zip(snap.consumer_stats.iter())
        .map(|(c, st)| {
            let routes: Vec<&str> = config
                .routes
                .iter()
                .filter(|r| {
                    r.auth.as_ref().is_some_and(|a| {
                        a.allow
                            .as_ref()
                            .is_none_or(|allow| allow.contains(&c.name))
                    })
                })
                .map(|r| r.name.as_str())
                .collect();
            json!({
                "name": c.name,
                "api_keys": c.key_digests.len(),
                "rate_limit": c.rate_limit.as_ref().map(|rl| serde_json::to_value(&rl.spec).unwrap_or(Value::Null)),
                "routes": routes,
                "counters": consumer_counters_json(st),
            })
        })
        .collect();
    let failures: Map<String, Value> = AuthFailure::REASONS
        .iter()
        .zip(&s.metrics.auth_failures)
        .map(|(r, n)| (r.to_string(), json!(get(n))))
        .collect();
    json!({"consumers": consumers, "authFailures": failures})
}

fn consumer_counters_json(st: &ConsumerStats) -> Value {
    json!({
        "requests": get(&st.requests),
        "401": get(&st.unauthorized),
        "403": get(&st.forbidden),
        "429": get(&st.limited),
    })
}

/// The HTTPS listener as reports show it (`null` without `tls`): its
/// address, floor, each certificate (file, hosts, days to expiry; never a
/// key) and the handshake counters.
pub fn tls_json(s: &Shared, snap: &Snapshot) -> Value {
    let (Some(server), Some(cfg)) = (&s.tls, &snap.config.tls) else {
        return Value::Null;
    };
    let now = crate::algo::clock::unix_secs() as i64;
    let snapshot = server.current();
    let certs: Vec<Value> = snapshot
        .store
        .certs
        .iter()
        .map(|(c, loaded)| {
            json!({
                "cert": c.cert,
                "hosts": c.hosts,
                "default": c.hosts.is_empty(),
                "not_after": loaded.not_after,
                "expires_in_days": loaded.not_after.map(|t| (t - now).div_euclid(86_400)),
            })
        })
        .collect();
    let st = &server.stats;
    let failed: Map<String, Value> = crate::tls::HandshakeFailure::ALL
        .iter()
        .zip(&st.failed)
        .map(|(w, n)| (w.label().to_string(), json!(get(n))))
        .collect();
    json!({
        "listen": cfg.listen.to_string(),
        "min_version": cfg.min_version.as_str(),
        "redirect_http": cfg.redirect_http,
        "certificates": certs,
        "handshakes": {"ok": get(&st.ok), "failed": failed},
    })
}
