//! What the admin asks of the gateway core, and what the core answers.
//!
//! The envelope that carries a command and its reply channel stays in the
//! admin crate (it needs a channel type); these two enums are plain data.

use serde_json::Value;

use crate::{BalanceSpec, LimitSpec};

/// What the admin thread asks of the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Full status report (`GET /gateway/health`).
    Health,
    /// Prometheus text exposition (`GET /metrics`).
    Metrics,
    /// Switch the rate limiter (state starts fresh).
    SetRateLimiter(LimitSpec),
    /// What the shadow limiters would have done, and every algorithm's
    /// accuracy (`GET /gateway/rate-limiter/shadow`).
    ShadowReport,
    /// Switch the load balancer of the `default` upstream.
    SetLoadBalancer(BalanceSpec),
    /// Every route: its match, upstream, policies and live counters
    /// (`GET /gateway/routes`).
    Routes,
    /// Every upstream: balancer, breaker figures and backends
    /// (`GET /gateway/upstreams`).
    Upstreams,
    /// Every consumer and their live counters, never their keys
    /// (`GET /gateway/consumers`).
    Consumers,
    /// Re-read the TLS certificate files; new handshakes use them, open
    /// connections carry on (`POST /gateway/tls/reload`, SIGHUP).
    ReloadTls,
    /// Re-read the config file the gateway was started with and apply it
    /// live (`POST /gateway/config/reload`, SIGHUP).
    ReloadConfig,
    /// Apply this JSON config text live; it is not written to disk
    /// (`POST /gateway/config`).
    ApplyConfig(String),
    /// The active config, secrets redacted (`GET /gateway/config`).
    Config,
    /// Switch one upstream's load balancer
    /// (`POST /gateway/upstreams/:name/load-balancer/:algo`).
    SetUpstreamBalancer {
        /// The upstream's name (`default` for the top-level backends).
        upstream: String,
        /// The new balancer.
        spec: BalanceSpec,
    },
    /// Give one route a limiter of its own, with fresh state
    /// (`POST /gateway/routes/:name/rate-limiter/:algo`).
    SetRouteLimiter {
        /// The route's name.
        route: String,
        /// The new limiter.
        spec: LimitSpec,
    },
    /// Flip a backend between operator-up and operator-down.
    ToggleBackend(String),
    /// Force a backend's circuit back to CLOSED.
    ResetCircuit(String),
    /// Zero every counter and histogram.
    ResetMetrics,
    /// One decision trace, by id (`GET /gateway/trace/:id`).
    Trace(String),
    /// The trace settings and the last traces' summaries, newest first
    /// (`GET /gateway/trace`).
    Traces,
}

/// The gateway's answer to a [`Command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Success, with a JSON body.
    Json(Value),
    /// Success, with a text body (Prometheus).
    Text(String),
    /// The named thing does not exist (→ 404).
    NotFound(String),
    /// The command is invalid (→ 400).
    Invalid(String),
}
