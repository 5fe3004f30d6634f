//! The middleware pipeline: which stages run for each request, in which
//! order. The order is configuration (`"pipeline": [...]`), so reordering is
//! one line; the worker runs the stages inline from the event loop and any
//! stage may short-circuit with a response.
//!
//! Stages: `logger` (access log, rejections included), `cors` (headers and
//! preflight at the gateway), `rate-limit`, `circuit-breaker` (balancer pick
//! among backends whose circuit grants a permit), `proxy` (always last).

pub mod access_log;
pub mod cors;
pub mod rate_limit;

/// One middleware stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// One access-log line per request.
    Logger,
    /// CORS headers; preflight answered at the gateway.
    Cors,
    /// The rate limiter (429 with Retry-After, or a leaky-bucket delay).
    RateLimit,
    /// Backend selection among closed circuits (503 when none).
    CircuitBreaker,
    /// Forward to the chosen backend.
    Proxy,
}

impl Stage {
    /// Every stage, in the default order.
    pub const ALL: [Stage; 5] = [
        Stage::Logger,
        Stage::Cors,
        Stage::RateLimit,
        Stage::CircuitBreaker,
        Stage::Proxy,
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Logger => "logger",
            Stage::Cors => "cors",
            Stage::RateLimit => "rate-limit",
            Stage::CircuitBreaker => "circuit-breaker",
            Stage::Proxy => "proxy",
        }
    }

    /// Parses a config name.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}
