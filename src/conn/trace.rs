//! The session's trace points: starting a request's decision trace (when it
//! asked and is trusted, or is sampled), the entries that need the session's
//! state to build (route, selection, rate-limit key), and handing the
//! finished trace to the shared ring at settle.
//!
//! Cost rule: every function here starts from `self.ex.trace`, which is
//! `None` unless the request is traced, and returns at once when it is; the
//! one exception, [`Session::begin_trace`], costs a bool test and one
//! branch on an unsampled gateway. Nothing here allocates, formats or reads
//! a clock for an untraced request.

use std::sync::Arc;

use api_gateway_protocol::{BalanceSpec, CircuitState};

use crate::algo::limit::{Decision, RateLimiter};
use crate::algo::Nanos;
use crate::backend::SelectionMode;
use crate::config::KeySource;
use crate::metrics::Metrics;
use crate::pipeline::rate_limit::Keyed;
use crate::trace::admit::{self, Ask};
use crate::trace::record::{
    text, Candidate, Exclusion, LimitKey, RateLimitEntry, SelectionEntry, Stage,
};
use crate::trace::{Origin, Trace};
use crate::upstream::{Gate, Refusal};

use super::exchange::Exchange;
use super::session::{Ctx, Session};

impl Session {
    /// Starts the request's trace if it asked for one and is trusted
    /// ([`admit::honoured`]), or if sampling picks it. Call once the client
    /// IP, the request id and the log target are known.
    pub(super) fn begin_trace(&mut self, ctx: &mut Ctx<'_>, now: Nanos) {
        let cfg = &ctx.snap.config.trace;
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let head = &self.head;
        let client = self.client_ip();
        let asked = head.trace_asked && {
            let ask = Ask {
                trace: true,
                token: head.trace_token.map(|s| s.get(buf)),
            };
            let token = ctx.snap.config.admin_token.as_deref();
            let honoured = admit::honoured(ask, cfg.enabled, client, token);
            if !honoured && cfg.enabled && ask.token.is_some() && !admit::is_loopback(client) {
                Metrics::inc(&ctx.shared.metrics.trace_token_refused);
            }
            honoured
        };
        let origin = if asked {
            Origin::Asked
        } else if ctx.ids.sampler.hit(cfg.sample_per_million) {
            Origin::Sampled
        } else {
            return;
        };
        // The gateway's own id, whatever the client sent as X-Request-Id:
        // unique in this process, so a client cannot collide with another's.
        let id = format!("{:08x}{:08x}", ctx.ids.prefix, ctx.ids.serial);
        let mut t = Trace::new(id, origin, client, now);
        t.request_id = text(&self.ex.request_id);
        t.method = text(head.method_span.get(buf));
        let target = head.target.get(buf);
        t.target = text(target);
        self.ex.trace = Some(Box::new(t));
    }

    /// Hands the finished trace (if any) to the shared ring, bounded by
    /// the request's config (`trace.max_traces`).
    pub(super) fn finish_trace(&mut self, status: u16, ctx: &Ctx<'_>, now: Nanos) {
        if let Some(mut t) = self.ex.trace.take() {
            t.finish(status, now);
            // An API key sent as a query parameter is redacted, as in the
            // access log: a trace holds no credential.
            let mut target = std::mem::take(&mut t.target).into_bytes();
            ctx.snap.routes.redact_keys(&mut target);
            t.target = String::from_utf8_lossy(&target).into_owned();
            let cap = ctx.snap.config.trace.max_traces;
            ctx.shared.traces.push(Arc::from(t), cap);
        }
    }

    /// Reads every candidate backend's state before a selection (traced
    /// requests only): circuits, loads, weights, and why one is excluded.
    pub(super) fn selection_seen(
        &self,
        gate: Gate,
        avoid: u64,
        ctx: &Ctx<'_>,
        now: Nanos,
    ) -> Option<SelectionEntry> {
        self.ex.trace.as_ref()?;
        let pool = ctx.pool(self.ex.pool);
        let table = &*pool.table;
        let panic =
            gate == Gate::Breaker && matches!(table.selection(now), SelectionMode::Panic { .. });
        let decay = match pool.balancer.spec() {
            BalanceSpec::P2cEwma { decay_ms } => Some(Nanos::from_millis(*decay_ms)),
            _ => None,
        };
        let candidates = table
            .iter()
            .map(|b| {
                let circuit = b.breaker.state(now);
                let inflight = b.inflight();
                let avoided = b.id < 64 && avoid & (1 << b.id) != 0;
                let excluded = if !b.is_up() {
                    Some(Exclusion::SwitchedOff)
                } else if !b.health.in_rotation() {
                    Some(Exclusion::Unhealthy)
                } else if avoided {
                    Some(Exclusion::Tried)
                } else if pool.cap.is_some_and(|c| inflight >= c) {
                    Some(Exclusion::AtCap)
                } else if gate == Gate::Breaker && !panic && circuit == CircuitState::Open {
                    Some(Exclusion::CircuitOpen)
                } else {
                    None
                };
                Candidate {
                    name: b.name.clone(),
                    circuit,
                    weight: b.weight,
                    effective_weight: table.effective_weight(b.id, now),
                    inflight,
                    ewma_ms: decay.map(|d| b.latency.estimate(now, d) / 1e6),
                    excluded,
                }
            })
            .collect();
        Some(SelectionEntry {
            upstream: pool.name.clone(),
            breaker_gate: gate == Gate::Breaker,
            panic,
            algorithm: pool.balancer.spec().name(),
            candidates,
            pick: None,
            refusal: None,
        })
    }

    /// Records a selection whose candidates `seen` read, with its outcome.
    pub(super) fn trace_selection(
        &mut self,
        seen: Option<SelectionEntry>,
        picked: Result<(), Refusal>,
    ) {
        let (Some(mut entry), Some(t)) = (seen, self.ex.trace.as_deref_mut()) else {
            return;
        };
        match picked {
            Ok(()) => entry.pick = self.ex.selection.as_ref().map(|s| s.entry().name.clone()),
            Err(why) => {
                entry.refusal = Some(match why {
                    Refusal::NoBackend => "no-backend",
                    Refusal::Unhealthy => "unhealthy",
                    Refusal::AtCap => "at-cap",
                })
            }
        }
        t.push(Stage::Selection(entry));
    }

    /// Records the rate limiter's decision `d` for `key` (from `source`,
    /// made of what `keyed` says), made by `limiter` (`own`: a consumer's
    /// own limit).
    pub(super) fn trace_rate_limit(
        &mut self,
        source: &KeySource,
        (key, keyed): (u64, Keyed),
        limiter: &dyn RateLimiter,
        own: bool,
        d: &Decision,
    ) {
        if self.ex.trace.is_none() {
            return;
        }
        let who = match (keyed, source) {
            (Keyed::Header, KeySource::Header(name)) => LimitKey::Header(name.clone()),
            (Keyed::Consumer, _) => LimitKey::Consumer(text(&self.ex.consumer_name)),
            _ => LimitKey::Ip(self.client_ip()),
        };
        let Some(t) = self.ex.trace.as_deref_mut() else {
            return;
        };
        t.push(Stage::RateLimit(RateLimitEntry {
            key_source: source.describe(),
            key: who,
            key_hash: key,
            algorithm: limiter.spec().name(),
            decision: *d,
            consumer_limit: own,
        }));
    }
}

impl Exchange {
    /// Adds `X-Gateway-Trace-Id` to the response's extra lines when the
    /// request is traced (right before a response head is written, so no
    /// stage that rewrites `extra` can lose it).
    pub(super) fn note_trace_id(&mut self) {
        if let Some(t) = self.trace.as_deref() {
            self.extra.extend_from_slice(b"X-Gateway-Trace-Id: ");
            self.extra.extend_from_slice(t.id.as_bytes());
            self.extra.extend_from_slice(b"\r\n");
        }
    }
}
