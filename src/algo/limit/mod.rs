//! Rate limiters: one file per algorithm, one small trait.
//!
//! A limiter answers `check(key, now)` with one atomic decision for that key;
//! never check-then-act. Per-key state lives in a bounded table, so a flood of
//! distinct keys cannot grow memory.

use std::sync::Arc;

use api_gateway_admin::LimitSpec;

use super::Nanos;

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward now.
    Allow,
    /// Forward after this long (leaky bucket: the request is queued).
    Delay(Nanos),
    /// Reject with 429.
    Deny,
}

/// A decision plus what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Admit, queue, or reject.
    pub verdict: Verdict,
    /// The configured limit (requests per window, or bucket capacity).
    pub limit: u64,
    /// Requests left before the next rejection (after this one).
    pub remaining: u64,
    /// Time until the limit fully resets (window end, bucket full).
    pub reset_after: Nanos,
    /// On `Deny`: how long until a request would be admitted (never zero).
    pub retry_after: Nanos,
}

/// One rate-limiting algorithm over a bounded table of client keys.
pub trait RateLimiter: Send + Sync {
    /// Decides for the request of `key` (a hash of the client identity) at `now`.
    fn check(&self, key: u64, now: Nanos) -> Decision;
    /// The spec this limiter was built from (name and parameters).
    fn spec(&self) -> &LimitSpec;
}

/// Builds the limiter for `spec`, tracking at most `max_keys` clients.
pub fn build(spec: &LimitSpec, max_keys: usize) -> Arc<dyn RateLimiter> {
    let _ = max_keys;
    Arc::new(Unlimited(spec.clone()))
}

/// Placeholder until the algorithms land: admits everything.
struct Unlimited(LimitSpec);

impl RateLimiter for Unlimited {
    fn check(&self, _key: u64, _now: Nanos) -> Decision {
        Decision {
            verdict: Verdict::Allow,
            limit: u64::MAX,
            remaining: u64::MAX,
            reset_after: Nanos::ZERO,
            retry_after: Nanos::ZERO,
        }
    }
    fn spec(&self) -> &LimitSpec {
        &self.0
    }
}
