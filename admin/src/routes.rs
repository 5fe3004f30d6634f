//! Method + path → what to do, and request validation.
//!
//! Everything here is pure (no sockets, no channel), so the whole routing
//! table and every validation message is unit-tested. Validation lives here,
//! in the admin thread, so the gateway loop only ever receives typed, valid
//! [`Command`]s it can apply in O(1) (STYLE §1.5).

use serde_json::{json, Value};

use crate::dashboard::{self, Asset};
use crate::protocol::{BalanceSpec, Command, LimitSpec};

/// A resolved admin request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    /// `GET /gateway/health`
    Health,
    /// `GET /metrics`
    Metrics,
    /// `GET /gateway/events`
    Events,
    /// `POST /gateway/rate-limiter/:name`
    SetLimiter(String),
    /// `POST /gateway/load-balancer/:name`
    SetBalancer(String),
    /// `GET /gateway/routes`
    Routes,
    /// `GET /gateway/rate-limiter/shadow`
    Shadow,
    /// `GET /gateway/upstreams`
    Upstreams,
    /// `GET /gateway/consumers`
    Consumers,
    /// `POST /gateway/tls/reload`
    ReloadTls,
    /// `GET /gateway/config`
    Config,
    /// `POST /gateway/config` (the body is the config)
    ApplyConfig,
    /// `POST /gateway/config/reload`
    ReloadConfig,
    /// `POST /gateway/upstreams/:upstream/load-balancer/:algo`
    SetUpstreamBalancer {
        /// The upstream's name.
        upstream: String,
        /// The balancer's API name.
        algo: String,
    },
    /// `POST /gateway/routes/:route/rate-limiter/:algo`
    SetRouteLimiter {
        /// The route's name.
        route: String,
        /// The limiter's API name.
        algo: String,
    },
    /// `POST /gateway/backend/:name/toggle`
    Toggle(String),
    /// `POST /gateway/circuit/:name/reset`
    ResetCircuit(String),
    /// `POST /gateway/metrics/reset`
    ResetMetrics,
    /// `POST /gateway/loadtest`
    LoadTest,
    /// `POST /gateway/demo/:name/crash` (toggle)
    DemoCrash(String),
    /// `GET /gateway/demo/:name/crash` (read the flag)
    DemoCrashState(String),
    /// `GET /gateway/demo`: every backend's crash flag
    DemoStates,
    /// `GET` of a dashboard file.
    Asset(&'static Asset),
    /// `GET /gateway/trace/:id`
    Trace(String),
    /// `GET /gateway/trace`
    Traces,
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RouteError {
    /// No such path (→ 404).
    NotFound,
    /// The path exists for another method (→ 405 with `Allow`).
    MethodNotAllowed(&'static str),
}

/// Maps a method and request target (query string ignored) to a [`Route`].
pub(crate) fn resolve(method: &str, target: &str) -> Result<Route, RouteError> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    if let Some(asset) = dashboard::asset(path) {
        return want(method, "GET", Route::Asset(asset));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = |s: &str| percent_decode(s);
    let (allowed, route) = match segs.as_slice() {
        ["metrics"] => ("GET", Route::Metrics),
        ["gateway", "health"] => ("GET", Route::Health),
        ["gateway", "events"] => ("GET", Route::Events),
        ["gateway", "metrics", "reset"] => ("POST", Route::ResetMetrics),
        ["gateway", "loadtest"] => ("POST", Route::LoadTest),
        // Not an algorithm: no limiter is named `shadow`.
        ["gateway", "rate-limiter", "shadow"] => ("GET", Route::Shadow),
        ["gateway", "rate-limiter", n] if !n.is_empty() => ("POST", Route::SetLimiter(name(n))),
        ["gateway", "load-balancer", n] if !n.is_empty() => ("POST", Route::SetBalancer(name(n))),
        ["gateway", "routes"] => ("GET", Route::Routes),
        ["gateway", "upstreams"] => ("GET", Route::Upstreams),
        ["gateway", "consumers"] => ("GET", Route::Consumers),
        ["gateway", "tls", "reload"] => ("POST", Route::ReloadTls),
        ["gateway", "config", "reload"] => ("POST", Route::ReloadConfig),
        ["gateway", "config"] => {
            // GET reads the active config, POST applies a new one.
            return match method {
                "GET" => Ok(Route::Config),
                "POST" => Ok(Route::ApplyConfig),
                _ => Err(RouteError::MethodNotAllowed("GET, POST")),
            };
        }
        ["gateway", "upstreams", u, "load-balancer", a] if !u.is_empty() && !a.is_empty() => (
            "POST",
            Route::SetUpstreamBalancer {
                upstream: name(u),
                algo: name(a),
            },
        ),
        ["gateway", "routes", r, "rate-limiter", a] if !r.is_empty() && !a.is_empty() => (
            "POST",
            Route::SetRouteLimiter {
                route: name(r),
                algo: name(a),
            },
        ),
        ["gateway", "backend", n, "toggle"] if !n.is_empty() => ("POST", Route::Toggle(name(n))),
        ["gateway", "circuit", n, "reset"] if !n.is_empty() => {
            ("POST", Route::ResetCircuit(name(n)))
        }
        ["gateway", "demo"] => ("GET", Route::DemoStates),
        ["gateway", "trace"] => ("GET", Route::Traces),
        ["gateway", "trace", id] if !id.is_empty() => ("GET", Route::Trace(name(id))),
        ["gateway", "demo", n, "crash"] if !n.is_empty() => {
            // Two methods on one path: GET reads the flag, POST flips it.
            return match method {
                "GET" => Ok(Route::DemoCrashState(name(n))),
                "POST" => Ok(Route::DemoCrash(name(n))),
                _ => Err(RouteError::MethodNotAllowed("GET, POST")),
            };
        }
        _ => return Err(RouteError::NotFound),
    };
    want(method, allowed, route)
}

fn want(method: &str, allowed: &'static str, route: Route) -> Result<Route, RouteError> {
    if method == allowed {
        Ok(route)
    } else {
        Err(RouteError::MethodNotAllowed(allowed))
    }
}

/// Builds the gateway [`Command`] for routes that map to one, validating the
/// optional JSON body. `Ok(None)` means the route is served by the admin
/// itself (events, load test, demo crash, assets).
pub(crate) fn command_for(route: &Route, body: Option<&Value>) -> Result<Option<Command>, String> {
    Ok(Some(match route {
        Route::Health => Command::Health,
        Route::Metrics => Command::Metrics,
        Route::ResetMetrics => Command::ResetMetrics,
        Route::Toggle(n) => Command::ToggleBackend(n.clone()),
        Route::ResetCircuit(n) => Command::ResetCircuit(n.clone()),
        Route::SetLimiter(n) => {
            Command::SetRateLimiter(build_named(n, body, LimitSpec::from_name)?)
        }
        Route::SetBalancer(n) => {
            Command::SetLoadBalancer(build_named(n, body, BalanceSpec::from_name)?)
        }
        Route::Routes => Command::Routes,
        Route::Trace(id) => Command::Trace(id.clone()),
        Route::Traces => Command::Traces,
        Route::Shadow => Command::ShadowReport,
        Route::Upstreams => Command::Upstreams,
        Route::Consumers => Command::Consumers,
        Route::ReloadTls => Command::ReloadTls,
        Route::Config => Command::Config,
        Route::ReloadConfig => Command::ReloadConfig,
        // The server hands the raw text over as a JSON string (see
        // `server::read_config_body`): the gateway parses it itself, so
        // its duplicate-key check sees what was sent.
        Route::ApplyConfig => match body {
            Some(Value::String(text)) => Command::ApplyConfig(text.clone()),
            _ => return Err("send the config as the JSON request body".into()),
        },
        // Same parameters and validation as the seed's endpoints; whether
        // the upstream or route exists is the gateway's answer (404).
        Route::SetUpstreamBalancer { upstream, algo } => Command::SetUpstreamBalancer {
            upstream: upstream.clone(),
            spec: build_named(algo, body, BalanceSpec::from_name)?,
        },
        Route::SetRouteLimiter { route, algo } => Command::SetRouteLimiter {
            route: route.clone(),
            spec: build_named(algo, body, LimitSpec::from_name)?,
        },
        Route::Events
        | Route::LoadTest
        | Route::DemoCrash(_)
        | Route::DemoCrashState(_)
        | Route::DemoStates
        | Route::Asset(_) => return Ok(None),
    }))
}

/// Runs a `from_name` builder and makes sure a failure names the offending
/// field: serde's type errors ("invalid type: string, expected u32") do not,
/// so on such an error each parameter is retried alone to find the culprit.
fn build_named<T>(
    name: &str,
    params: Option<&Value>,
    build: fn(&str, Option<&Value>) -> Result<T, String>,
) -> Result<T, String> {
    let err = match build(name, params) {
        Ok(spec) => return Ok(spec),
        Err(e) => e,
    };
    let Some(Value::Object(map)) = params else {
        return Err(err);
    };
    if build(name, None).is_err() || map.keys().any(|k| err.contains(k.as_str())) {
        // Unknown algorithm, or the message already names the field.
        return Err(err);
    }
    for (k, v) in map {
        if let Err(e) = build(name, Some(&json!({ k: v }))) {
            return Err(format!("{k}: {e}"));
        }
    }
    Err(err)
}

/// Decodes `%XX` escapes in a path segment (backend names may be URL-encoded
/// by the browser); malformed escapes are kept literally.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BALANCER_NAMES, LIMITER_NAMES};

    #[test]
    fn routing_table() {
        assert_eq!(resolve("GET", "/gateway/health"), Ok(Route::Health));
        assert_eq!(resolve("GET", "/gateway/health?x=1"), Ok(Route::Health));
        assert_eq!(resolve("GET", "/metrics"), Ok(Route::Metrics));
        assert_eq!(
            resolve("POST", "/gateway/rate-limiter/token-bucket"),
            Ok(Route::SetLimiter("token-bucket".into()))
        );
        assert_eq!(
            resolve("POST", "/gateway/backend/Backend%20A/toggle"),
            Ok(Route::Toggle("Backend A".into()))
        );
        assert_eq!(
            resolve("POST", "/gateway/demo/Backend-A/crash"),
            Ok(Route::DemoCrash("Backend-A".into()))
        );
        assert_eq!(
            resolve("GET", "/gateway/demo/Backend-A/crash"),
            Ok(Route::DemoCrashState("Backend-A".into()))
        );
        assert_eq!(resolve("GET", "/gateway/demo"), Ok(Route::DemoStates));
        assert_eq!(
            resolve("PUT", "/gateway/demo/Backend-A/crash"),
            Err(RouteError::MethodNotAllowed("GET, POST"))
        );
        assert!(matches!(resolve("GET", "/"), Ok(Route::Asset(_))));
        assert_eq!(
            resolve("GET", "/gateway/rate-limiter/x"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
        assert_eq!(
            resolve("POST", "/gateway/health"),
            Err(RouteError::MethodNotAllowed("GET"))
        );
        assert_eq!(resolve("GET", "/gateway/routes"), Ok(Route::Routes));
        assert_eq!(resolve("GET", "/gateway/trace"), Ok(Route::Traces));
        assert_eq!(resolve("GET", "/gateway/trace?x=1"), Ok(Route::Traces));
        assert_eq!(
            resolve("GET", "/gateway/trace/0000000a00000001"),
            Ok(Route::Trace("0000000a00000001".into()))
        );
        assert_eq!(
            resolve("POST", "/gateway/trace/0000000a00000001"),
            Err(RouteError::MethodNotAllowed("GET"))
        );
        assert_eq!(
            resolve("DELETE", "/gateway/trace"),
            Err(RouteError::MethodNotAllowed("GET"))
        );
        assert_eq!(
            resolve("GET", "/gateway/trace/a/b"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            command_for(&Route::Trace("ab".into()), None),
            Ok(Some(Command::Trace("ab".into())))
        );
        assert_eq!(command_for(&Route::Traces, None), Ok(Some(Command::Traces)));
        assert_eq!(
            resolve("GET", "/gateway/rate-limiter/shadow"),
            Ok(Route::Shadow)
        );
        assert_eq!(
            resolve("POST", "/gateway/rate-limiter/shadow"),
            Err(RouteError::MethodNotAllowed("GET"))
        );
        assert_eq!(resolve("GET", "/gateway/upstreams"), Ok(Route::Upstreams));
        assert_eq!(resolve("GET", "/gateway/consumers"), Ok(Route::Consumers));
        assert_eq!(resolve("POST", "/gateway/tls/reload"), Ok(Route::ReloadTls));
        assert_eq!(resolve("GET", "/gateway/config"), Ok(Route::Config));
        assert_eq!(resolve("POST", "/gateway/config"), Ok(Route::ApplyConfig));
        assert_eq!(
            resolve("DELETE", "/gateway/config"),
            Err(RouteError::MethodNotAllowed("GET, POST"))
        );
        assert_eq!(
            resolve("POST", "/gateway/config/reload"),
            Ok(Route::ReloadConfig)
        );
        assert_eq!(
            resolve("POST", "/gateway/upstreams/us%20ers/load-balancer/ip-hash"),
            Ok(Route::SetUpstreamBalancer {
                upstream: "us ers".into(),
                algo: "ip-hash".into()
            })
        );
        assert_eq!(
            resolve(
                "POST",
                "/gateway/routes/users-api/rate-limiter/fixed-window?x"
            ),
            Ok(Route::SetRouteLimiter {
                route: "users-api".into(),
                algo: "fixed-window".into()
            })
        );
        assert_eq!(
            resolve("GET", "/gateway/upstreams/users/load-balancer/ip-hash"),
            Err(RouteError::MethodNotAllowed("POST"))
        );
        assert_eq!(
            resolve("POST", "/gateway/routes"),
            Err(RouteError::MethodNotAllowed("GET"))
        );
        assert_eq!(
            resolve("POST", "/gateway/upstreams//load-balancer/ip-hash"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            resolve("POST", "/gateway/routes/r/rate-limiter/"),
            Err(RouteError::NotFound)
        );
        assert_eq!(resolve("GET", "/nope"), Err(RouteError::NotFound));
        assert_eq!(
            resolve("POST", "/gateway/rate-limiter/"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            resolve("POST", "/gateway/backend/x/y"),
            Err(RouteError::NotFound)
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Db"), "a-b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("x%41"), "xA");
    }

    #[test]
    fn commands_validate_and_name_fields() {
        for n in LIMITER_NAMES {
            let cmd = command_for(&Route::SetLimiter(n.into()), None).unwrap();
            assert!(matches!(cmd, Some(Command::SetRateLimiter(s)) if s.name() == n));
        }
        for n in BALANCER_NAMES {
            let cmd = command_for(&Route::SetBalancer(n.into()), None).unwrap();
            assert!(matches!(cmd, Some(Command::SetLoadBalancer(s)) if s.name() == n));
        }
        let err = command_for(&Route::SetLimiter("nope".into()), None).unwrap_err();
        assert!(LIMITER_NAMES.iter().all(|n| err.contains(n)), "{err}");
        let err = command_for(&Route::SetBalancer("nope".into()), None).unwrap_err();
        assert!(BALANCER_NAMES.iter().all(|n| err.contains(n)), "{err}");
        let body = json!({"capacity": "lots", "refill_per_sec": 3});
        let err = command_for(&Route::SetLimiter("token-bucket".into()), Some(&body)).unwrap_err();
        assert!(err.starts_with("capacity"), "{err}");
        let body = json!({"virtual_nodes": 0});
        let err =
            command_for(&Route::SetBalancer("consistent-hash".into()), Some(&body)).unwrap_err();
        assert!(err.contains("virtual_nodes"), "{err}");
        let body = json!({"decay_ms": 50});
        let err = command_for(&Route::SetBalancer("p2c-ewma".into()), Some(&body)).unwrap_err();
        assert!(err.contains("decay_ms"), "{err}");
        let body = json!({"decay_ms": 2000});
        assert_eq!(
            command_for(&Route::SetBalancer("p2c-ewma".into()), Some(&body)),
            Ok(Some(Command::SetLoadBalancer(BalanceSpec::P2cEwma {
                decay_ms: 2000
            })))
        );
        assert_eq!(command_for(&Route::LoadTest, None), Ok(None));
    }

    #[test]
    fn scoped_switches_validate_like_the_seed_ones() {
        let r = Route::SetUpstreamBalancer {
            upstream: "users".into(),
            algo: "consistent-hash".into(),
        };
        assert_eq!(
            command_for(&r, Some(&json!({"virtual_nodes": 50}))),
            Ok(Some(Command::SetUpstreamBalancer {
                upstream: "users".into(),
                spec: BalanceSpec::ConsistentHash { virtual_nodes: 50 },
            }))
        );
        let err = command_for(&r, Some(&json!({"virtual_nodes": 0}))).unwrap_err();
        assert!(err.contains("virtual_nodes"), "{err}");
        let r = Route::SetRouteLimiter {
            route: "users-api".into(),
            algo: "token-bucket".into(),
        };
        let body = json!({"capacity": "lots", "refill_per_sec": 3});
        let err = command_for(&r, Some(&body)).unwrap_err();
        assert!(err.starts_with("capacity"), "{err}");
        let r = Route::SetRouteLimiter {
            route: "users-api".into(),
            algo: "nope".into(),
        };
        let err = command_for(&r, None).unwrap_err();
        assert!(LIMITER_NAMES.iter().all(|n| err.contains(n)), "{err}");
    }
}
