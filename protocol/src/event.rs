//! Typed gateway events: the state changes an operator wants to see (circuit
//! transitions, upstream panic, algorithm switches), as data.
//!
//! The core logs them, the admin serves them in the health report and the
//! dashboard reads their fields; nobody parses the text back. `Display` is the
//! human-readable line (the log line and the report's `message`), and must
//! stay word for word what it was when events were plain strings: tests and
//! operators' log searches match on it.

use std::fmt;

use serde::Serialize;

use crate::CircuitState;

/// One gateway event. The JSON form is flat, tagged by `kind`:
/// `{"kind":"circuit","backend":"Backend-A","from":"CLOSED","to":"OPEN"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EventKind {
    /// A backend's circuit changed state (failures, cooldown, probe outcome,
    /// operator reset).
    #[serde(rename = "circuit")]
    CircuitTransition {
        /// Backend name.
        backend: String,
        /// State before.
        from: CircuitState,
        /// State after.
        to: CircuitState,
    },
    /// An open circuit's cooldown is over and this request is its probe
    /// (OPEN -> HALF_OPEN, seen by the request that takes the probe permit).
    #[serde(rename = "probe")]
    HalfOpenProbe {
        /// Backend name.
        backend: String,
    },
    /// A trip refused by `max_open_ratio`: the circuit stays CLOSED.
    TripSuppressed {
        /// Backend name.
        backend: String,
        /// Circuits open when the trip was refused.
        open: u32,
        /// Most circuits allowed open at once.
        max_open: u32,
    },
    /// Too few backends are available: traffic is spread over every
    /// switched-on backend, open circuits included.
    #[serde(rename = "panic")]
    PanicStarted {
        /// Switched-on backends with a CLOSED circuit.
        available: u32,
        /// The fewest the ratio promises.
        floor: u32,
    },
    /// Enough backends are available again: open circuits are skipped.
    #[serde(rename = "panic-over")]
    PanicEnded,
    /// The operator switched a backend on or off.
    #[serde(rename = "toggle")]
    BackendToggled {
        /// Backend name.
        backend: String,
        /// Switched on (`true`) or off.
        up: bool,
    },
    /// A new rate limiter is in force (state starts fresh).
    #[serde(rename = "rate-limiter")]
    LimiterSwitched {
        /// Its API name (one of `LIMITER_NAMES`).
        algorithm: String,
        /// Configuration generation after the switch.
        generation: u64,
        /// The route that got it as its own; `None`: the top-level limiter
        /// (and every route that follows it).
        #[serde(skip_serializing_if = "Option::is_none")]
        route: Option<String>,
    },
    /// A new load balancer is in force.
    #[serde(rename = "load-balancer")]
    BalancerSwitched {
        /// Its API name (one of `BALANCER_NAMES`).
        algorithm: String,
        /// Configuration generation after the switch.
        generation: u64,
        /// The upstream switched through the per-upstream endpoint; `None`:
        /// the seed's endpoint, which acts on `default`.
        #[serde(skip_serializing_if = "Option::is_none")]
        upstream: Option<String>,
    },
    /// Every counter and histogram was zeroed.
    MetricsReset,
    /// A new configuration is live (reload or `POST /gateway/config`).
    #[serde(rename = "config-reload")]
    ConfigReloaded {
        /// The config generation now running.
        generation: u64,
        /// What changed, one line: routes added/removed/changed, backends
        /// added/removed, live overrides replaced, fields not applied.
        changes: String,
    },
    /// A reload was refused; the old configuration keeps serving.
    #[serde(rename = "config-reload-failed")]
    ConfigReloadFailed {
        /// Why, naming the field.
        error: String,
    },
    /// Active health checks took a backend out of rotation, or brought it
    /// back after it had been taken out. A backend's first checks passing
    /// (unchecked -> healthy) is not news and is not logged.
    #[serde(rename = "health")]
    HealthChanged {
        /// Backend name.
        backend: String,
        /// The upstream whose checks these are.
        upstream: String,
        /// In rotation again (`true`) or out of it.
        healthy: bool,
        /// The streak that decided it, with the last failure's cause:
        /// `2 failed checks: connection refused`, `2 passed checks`.
        reason: String,
    },
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::CircuitTransition { backend, from, to } => {
                write!(f, "circuit {backend} {from} -> {to}")
            }
            EventKind::HalfOpenProbe { backend } => {
                write!(f, "circuit {backend} OPEN -> HALF_OPEN (probe request)")
            }
            EventKind::TripSuppressed {
                backend,
                open,
                max_open,
            } => write!(
                f,
                "circuit {backend} trip suppressed: {open} of {max_open} allowed circuits \
                 already open (max_open_ratio)"
            ),
            EventKind::PanicStarted { available, floor } => write!(
                f,
                "upstream panic: {available} backend(s) available, fewer than {floor}; \
                 spreading over every switched-on backend"
            ),
            EventKind::PanicEnded => {
                f.write_str("upstream panic over: open circuits are skipped again")
            }
            EventKind::BackendToggled { backend, up } => {
                let to = if *up { "up" } else { "down" };
                write!(f, "backend {backend} switched {to}")
            }
            // The scoped forms are new; the unscoped ones keep their text.
            EventKind::LimiterSwitched {
                algorithm,
                generation,
                route,
            } => match route {
                None => write!(
                    f,
                    "rate limiter switched to {algorithm} (generation {generation})"
                ),
                Some(r) => write!(
                    f,
                    "rate limiter of route {r} switched to {algorithm} (generation {generation})"
                ),
            },
            EventKind::BalancerSwitched {
                algorithm,
                generation,
                upstream,
            } => match upstream {
                None => write!(
                    f,
                    "load balancer switched to {algorithm} (generation {generation})"
                ),
                Some(u) => write!(
                    f,
                    "load balancer of upstream {u} switched to {algorithm} (generation {generation})"
                ),
            },
            EventKind::MetricsReset => f.write_str("metrics reset"),
            EventKind::ConfigReloaded {
                generation,
                changes,
            } => write!(f, "config generation {generation} live: {changes}"),
            EventKind::ConfigReloadFailed { error } => {
                write!(f, "config reload refused, old config kept: {error}")
            }
            EventKind::HealthChanged {
                backend,
                healthy: true,
                ..
            } => write!(f, "health {backend} healthy again"),
            EventKind::HealthChanged {
                backend,
                healthy: false,
                reason,
                ..
            } => write!(f, "health {backend} unhealthy ({reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn backend() -> String {
        "Backend-A".to_string()
    }

    /// The texts events had when they were strings, byte for byte.
    #[test]
    fn display_is_the_historical_text() {
        let cases = [
            (
                EventKind::CircuitTransition {
                    backend: backend(),
                    from: CircuitState::HalfOpen,
                    to: CircuitState::Closed,
                },
                "circuit Backend-A HALF_OPEN -> CLOSED",
            ),
            (
                EventKind::HalfOpenProbe { backend: backend() },
                "circuit Backend-A OPEN -> HALF_OPEN (probe request)",
            ),
            (
                EventKind::TripSuppressed {
                    backend: backend(),
                    open: 1,
                    max_open: 1,
                },
                "circuit Backend-A trip suppressed: 1 of 1 allowed circuits already open (max_open_ratio)",
            ),
            (
                EventKind::PanicStarted {
                    available: 0,
                    floor: 1,
                },
                "upstream panic: 0 backend(s) available, fewer than 1; spreading over every switched-on backend",
            ),
            (
                EventKind::PanicEnded,
                "upstream panic over: open circuits are skipped again",
            ),
            (
                EventKind::BackendToggled {
                    backend: backend(),
                    up: false,
                },
                "backend Backend-A switched down",
            ),
            (
                EventKind::LimiterSwitched {
                    algorithm: "token-bucket".into(),
                    generation: 3,
                    route: None,
                },
                "rate limiter switched to token-bucket (generation 3)",
            ),
            (
                EventKind::BalancerSwitched {
                    algorithm: "ip-hash".into(),
                    generation: 4,
                    upstream: None,
                },
                "load balancer switched to ip-hash (generation 4)",
            ),
            (
                EventKind::LimiterSwitched {
                    algorithm: "fixed-window".into(),
                    generation: 5,
                    route: Some("users-api".into()),
                },
                "rate limiter of route users-api switched to fixed-window (generation 5)",
            ),
            (
                EventKind::BalancerSwitched {
                    algorithm: "ip-hash".into(),
                    generation: 6,
                    upstream: Some("users".into()),
                },
                "load balancer of upstream users switched to ip-hash (generation 6)",
            ),
            (EventKind::MetricsReset, "metrics reset"),
            (
                EventKind::ConfigReloaded {
                    generation: 3,
                    changes: "routes +b".into(),
                },
                "config generation 3 live: routes +b",
            ),
            (
                EventKind::ConfigReloadFailed {
                    error: "routes[0].upstream: no upstream named \"x\"".into(),
                },
                "config reload refused, old config kept: routes[0].upstream: no upstream named \"x\"",
            ),
            (
                EventKind::HealthChanged {
                    backend: backend(),
                    upstream: "default".into(),
                    healthy: false,
                    reason: "2 failed checks: connection refused".into(),
                },
                "health Backend-A unhealthy (2 failed checks: connection refused)",
            ),
            (
                EventKind::HealthChanged {
                    backend: backend(),
                    upstream: "default".into(),
                    healthy: true,
                    reason: "2 passed checks".into(),
                },
                "health Backend-A healthy again",
            ),
        ];
        for (event, text) in cases {
            assert_eq!(event.to_string(), text);
        }
    }

    #[test]
    fn json_is_flat_and_tagged() {
        let e = EventKind::CircuitTransition {
            backend: backend(),
            from: CircuitState::Closed,
            to: CircuitState::Open,
        };
        assert_eq!(
            serde_json::to_value(e).unwrap(),
            json!({"kind": "circuit", "backend": "Backend-A", "from": "CLOSED", "to": "OPEN"})
        );
        assert_eq!(
            serde_json::to_value(EventKind::TripSuppressed {
                backend: backend(),
                open: 2,
                max_open: 2
            })
            .unwrap(),
            json!({"kind": "trip-suppressed", "backend": "Backend-A", "open": 2, "max_open": 2})
        );
        assert_eq!(
            serde_json::to_value(EventKind::PanicEnded).unwrap(),
            json!({"kind": "panic-over"})
        );
        assert_eq!(
            serde_json::to_value(EventKind::MetricsReset).unwrap(),
            json!({"kind": "metrics-reset"})
        );
        // The scope appears only when there is one.
        assert_eq!(
            serde_json::to_value(EventKind::BalancerSwitched {
                algorithm: "ip-hash".into(),
                generation: 2,
                upstream: None,
            })
            .unwrap(),
            json!({"kind": "load-balancer", "algorithm": "ip-hash", "generation": 2})
        );
        assert_eq!(
            serde_json::to_value(EventKind::LimiterSwitched {
                algorithm: "fixed-window".into(),
                generation: 3,
                route: Some("users-api".into()),
            })
            .unwrap(),
            json!({"kind": "rate-limiter", "algorithm": "fixed-window", "generation": 3, "route": "users-api"})
        );
        assert_eq!(
            serde_json::to_value(EventKind::HealthChanged {
                backend: backend(),
                upstream: "users".into(),
                healthy: false,
                reason: "2 failed checks: timed out".into(),
            })
            .unwrap(),
            json!({"kind": "health", "backend": "Backend-A", "upstream": "users", "healthy": false,
                   "reason": "2 failed checks: timed out"})
        );
    }
}
