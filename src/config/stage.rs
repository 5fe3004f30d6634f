//! The `pipeline` key: the middleware stages and their config names.
//!
//! The order is configuration, so the stage type belongs to the config side;
//! the pipeline module runs the stages and re-exports this type. Plain data,
//! no behaviour.

/// One middleware stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// One access-log line per request.
    Logger,
    /// CORS headers; preflight answered at the gateway.
    Cors,
    /// Authentication on routes with `auth` (401/403); names the consumer.
    Auth,
    /// The rate limiter (429 with Retry-After, or a leaky-bucket delay).
    RateLimit,
    /// Backend selection among closed circuits (503 when none).
    CircuitBreaker,
    /// Forward to the chosen backend.
    Proxy,
}

impl Stage {
    /// Every stage, in the default order.
    pub const ALL: [Stage; 6] = [
        Stage::Logger,
        Stage::Cors,
        Stage::Auth,
        Stage::RateLimit,
        Stage::CircuitBreaker,
        Stage::Proxy,
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Logger => "logger",
            Stage::Cors => "cors",
            Stage::Auth => "auth",
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
