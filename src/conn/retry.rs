//! Retries: a try that failed before any response byte reached the client
//! is sent again on another backend, when the upstream's `retry` policy
//! covers the failure, the request can be sent again, and the upstream's
//! retry budget allows it.
//!
//! Which requests: the idempotent methods GET, HEAD, OPTIONS, PUT and
//! DELETE (the retry contract's list; TRACE is left out), without a body
//! and without an upgrade. A request body is
//! streamed to the backend, not kept, so a request with one cannot be sent
//! again; the stale-pooled-connection replay (one fresh connection, same
//! backend, `forward.rs`) is separate and never counts against the budget.
//!
//! Every try feeds its backend's breaker. The next try goes to a backend
//! not tried yet when there is one (else any), with a breaker permit as
//! the first one was chosen. Each try's wait for a response head is bounded
//! by `per_try_timeout_ms` (a try that times out counts as a 504), the
//! whole by the route's backend timeout.

use std::io::Write;

use crate::algo::breaker::Outcome;
use crate::algo::Nanos;
use crate::config::resilience::RetryOn;
use crate::http::request::Method;
use crate::metrics::Metrics;

use super::session::{Ctx, Session, Step};

impl Session {
    /// Sends the request again on another backend if it may be; `None`:
    /// answer the failure (`why`) as usual. `outcome` is the failed try's
    /// verdict for its breaker (fed here when a retry goes ahead; the
    /// caller feeds it otherwise).
    pub(super) fn retry(
        &mut self,
        why: RetryOn,
        outcome: Outcome,
        ctx: &mut Ctx<'_>,
        now: Nanos,
    ) -> Option<Step> {
        let pool = ctx.pool(self.ex.pool);
        let policy = pool.retry.as_ref()?;
        let resendable = !self.ex.answer.started()
            && !self.has_body()
            && self.head.upgrade.is_none()
            && self.ex.method.is_some_and(retryable);
        if !resendable || !policy.covers(why) || u32::from(self.ex.retries) >= policy.attempts {
            return None;
        }
        if self.ex.overall_deadline != Nanos::ZERO && now >= self.ex.overall_deadline {
            return None;
        }
        if !pool
            .budget
            .try_retry(now, policy.budget_ratio, policy.budget_min_per_sec)
        {
            Metrics::inc(&ctx.shared.metrics.retry_budget_exhausted);
            return None;
        }
        // A try that timed out tells a latency-aware balancer how slow
        // the backend is (a try that failed fast tells it nothing).
        if why == RetryOn::Status(504) {
            if let Some(s) = &self.ex.selection {
                let waited = now.saturating_sub(self.ex.sent_at);
                pool.balancer.observe(s.entry(), waited, now);
            }
        }
        // The failed try counts, whatever comes next.
        match outcome {
            Outcome::Failure => self.count_backend_failure(ctx, now),
            Outcome::Success => self.record_outcome(Outcome::Success, ctx, now),
        }
        let failed = self.ex.selection.take()?;
        let failed_name = self.ex.trace.is_some().then(|| failed.entry().name.clone());
        if failed.backend < 64 {
            self.ex.tried |= 1 << failed.backend;
        }
        // Its lease and any unused permit go back before the next pick.
        drop(failed);
        let gate = self.ex.gate;
        let tried = self.ex.tried;
        if self.select_avoiding(gate, tried, ctx, now).is_err()
            && self.select_avoiding(gate, 0, ctx, now).is_err()
        {
            return None;
        }
        let backend = self.ex.selection.as_ref()?;
        Metrics::inc(&backend.entry().stats.requests);
        Metrics::inc(&ctx.shared.metrics.retries);
        if let (Some(t), Some(failed)) = (self.ex.trace.as_deref_mut(), failed_name) {
            let next = backend.entry().name.clone();
            t.retried(self.ex.retries.saturating_add(1), failed, why, next);
        }
        let backend = backend.backend;
        self.ex.retries += 1;
        // A fresh count for the stale-connection replay of this try.
        self.ex.attempts = 1;
        self.ex.sent_at = now;
        self.forget_response();
        Some(self.resend(backend, false, ctx, now))
    }

    /// The deadline of the response head of the try just sent in full:
    /// the route's backend timeout from the first try, and the policy's
    /// `per_try_timeout_ms` from this one, whichever comes first.
    pub(super) fn head_deadline(&mut self, ctx: &Ctx<'_>, now: Nanos) -> Nanos {
        if self.ex.overall_deadline == Nanos::ZERO {
            self.ex.overall_deadline = now.saturating_add(self.response_timeout());
        }
        let per_try = ctx
            .pool(self.ex.pool)
            .retry
            .as_ref()
            .and_then(|p| p.per_try_timeout_ms);
        match per_try {
            Some(ms) => now
                .saturating_add(Nanos::from_millis(ms))
                .min(self.ex.overall_deadline),
            None => self.ex.overall_deadline,
        }
    }

    /// Adds `x-retry-count` to the response's extra header lines when the
    /// request was retried.
    pub(super) fn note_retries(&mut self) {
        if self.ex.retries > 0 {
            let _ = write!(self.ex.extra, "x-retry-count: {}\r\n", self.ex.retries);
        }
    }
}

/// The methods a retry policy may send again.
fn retryable(m: Method) -> bool {
    matches!(
        m,
        Method::Get | Method::Head | Method::Options | Method::Put | Method::Delete
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_contracts_methods_are_retried() {
        for m in [
            Method::Get,
            Method::Head,
            Method::Options,
            Method::Put,
            Method::Delete,
        ] {
            assert!(retryable(m), "{m:?}");
        }
        for m in [Method::Post, Method::Trace] {
            assert!(!retryable(m), "{m:?}");
        }
    }
}
