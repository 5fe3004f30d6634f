//! Forwarding: the request to the backend, the response back, keep-alive
//! reuse of the backend connection, upgrades to a byte tunnel, and backend
//! faults.
//!
//! Framing is decided by the scanners (`BodyScan`); only bytes a scanner has
//! cleared are forwarded, so whatever follows a message in a buffer (a
//! pipelined request, stray backend bytes) never leaks across it.

use crate::algo::breaker::{Change, CircuitState, Outcome};
use crate::algo::Nanos;
use crate::config::resilience::RetryOn;
use crate::http::chunked::{ChunkError, ChunkedDecoder};
use crate::http::request::{Method, RequestFraming};
use crate::http::response::ResponseFraming;
use crate::http::rewrite::{
    write_interim, write_request, write_response, ForwardInfo, ResponseInfo,
};
use crate::http::HttpError;
use crate::metrics::{status_class, Metrics};
use crate::trace::Stage;

use super::exchange::Answer;
use super::phase::{After, BodyScan, Phase, ReqSide, RespSide};
use super::session::{Attach, Ctx, IoView, Peer, Session, Step};

/// Folds a sub-step into a handler's progress: `None` to go on (with
/// `progress` updated), `Some(step)` to return it at once.
fn fold(step: Step, progress: &mut bool) -> Option<Step> {
    match step {
        Step::Wait => None,
        Step::Continue => {
            *progress = true;
            None
        }
        other => Some(other),
    }
}

impl Session {
    /// The pipeline chose a backend: write the outgoing head and ask the
    /// worker for a connection (pooled, else a fresh connect).
    pub(super) fn start_forwarding(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let config = &ctx.snap.config;
        let Some(backend) = self.ex.selection.as_ref().map(|s| s.backend) else {
            return self.reject(HttpError::NoBackend, ctx, now);
        };
        // The address we saw (TCP or PROXY source), not the resolved
        // client: each hop appends its own peer.
        let peer_ip = self.peer_ip();
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let routing = ctx.snap.routes.is_routing();
        self.to_backend.clear();
        write_request(
            &mut self.to_backend.bytes,
            buf,
            &self.head,
            &ForwardInfo {
                client_ip: peer_ip,
                request_id: &self.ex.request_id,
                allowed_upgrades: &config.allowed_upgrades,
                path: routing.then_some(&self.ex.target[..]),
                edits: &ctx
                    .snap
                    .routes
                    .policy(self.ex.route.unwrap_or(0))
                    .request_headers,
                consumer: &self.ex.consumer_name,
                scheme: self.scheme,
            },
        );
        let scan = match self.head.framing() {
            RequestFraming::Empty => BodyScan::Complete,
            RequestFraming::Length(n) => BodyScan::Length(n),
            RequestFraming::Chunked => BodyScan::Chunked(ChunkedDecoder::new(
                config.limits.max_body_bytes,
                config.limits.max_header_bytes as u32,
            )),
        };
        let n = self.head.len;
        if let Some(b) = self.req.as_mut() {
            b.consume(n);
        }
        self.req_fwd = 0;
        self.ex.sent_at = now;
        let t = ctx.timeouts();
        if self.has_body() && t.min_body_rate > 0 {
            self.upload.start(now, t.body_rate_window);
        }
        if let Some(s) = &self.ex.selection {
            Metrics::inc(&s.entry().stats.requests);
        }
        Metrics::inc(&ctx.shared.metrics.proxied);
        let pool = ctx.pool(self.ex.pool);
        if pool.retry.is_some() {
            // What the retry budget is a share of.
            pool.budget.note_request(now);
        }
        self.ex.attempts = 1;
        let connect = self.connect_timeout(ctx);
        self.enter(Phase::Connecting(scan), now.saturating_add(connect));
        Step::Connect {
            pool: self.ex.pool,
            backend,
            fresh: false,
        }
    }

    /// Sends the request (a head without body, still in `to_backend`) again
    /// from its first byte, on a connection to `backend` (a new one if
    /// `fresh`).
    pub(super) fn resend(
        &mut self,
        backend: crate::algo::BackendId,
        fresh: bool,
        ctx: &Ctx<'_>,
        now: Nanos,
    ) -> Step {
        self.to_backend.pos = 0;
        let at = now.saturating_add(self.connect_timeout(ctx));
        self.enter(Phase::Connecting(BodyScan::Complete), at);
        Step::Connect {
            pool: self.ex.pool,
            backend,
            fresh,
        }
    }

    /// `timeouts.connect_ms`, or the route's own.
    #[inline]
    pub(super) fn connect_timeout(&self, ctx: &Ctx<'_>) -> Nanos {
        let route = ctx.snap.routes.policy(self.ex.route.unwrap_or(0));
        route.connect.unwrap_or(ctx.timeouts().connect)
    }

    /// `timeouts.backend_response_ms`, or the route's own (decided when
    /// the request was routed).
    #[inline]
    pub(super) fn response_timeout(&self) -> Nanos {
        self.ex.response_timeout
    }

    pub(super) fn on_connecting(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let mut progress = false;
        if let Some(step) = fold(self.scan_request(ctx, now), &mut progress) {
            return step;
        }
        let attach = io.upstream.map(|u| u.attach);
        match attach {
            Some(Attach::Connecting) => {}
            Some(Attach::Ready { reused }) => {
                if let Some(t) = self.ex.trace.as_deref_mut() {
                    t.timings.connect = Some(now);
                    t.connection_reused = reused;
                }
                let scan = match self.phase_mut() {
                    Phase::Connecting(scan) => std::mem::replace(scan, BodyScan::Complete),
                    _ => return Step::Continue,
                };
                let at = now.saturating_add(self.response_timeout());
                self.enter(
                    Phase::Proxying {
                        req: ReqSide::Sending(scan),
                        resp: RespSide::AwaitingHead,
                    },
                    at,
                );
                return Step::Continue;
            }
            Some(Attach::Refused) => {
                if let Some(step) = self.retry(RetryOn::ConnectFailure, Outcome::Failure, ctx, now)
                {
                    return step;
                }
                let err = HttpError::BadGateway("backend connection refused");
                return self.backend_failed(err, ctx, now);
            }
            // The worker could not even start a connect.
            None => {
                if let Some(step) = self.retry(RetryOn::ConnectFailure, Outcome::Failure, ctx, now)
                {
                    return step;
                }
                let err = HttpError::BadGateway("backend connection failed");
                return self.backend_failed(err, ctx, now);
            }
        }
        if progress {
            Step::Continue
        } else {
            Step::Wait
        }
    }

    /// Clears newly arrived request body bytes for forwarding.
    fn scan_request(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let scan = match &mut self.phase {
            Phase::Connecting(s)
            | Phase::Proxying {
                req: ReqSide::Sending(s),
                ..
            } => s,
            _ => return Step::Wait,
        };
        let data = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        match scan.clear(data, &mut self.req_fwd) {
            Ok(false) => Step::Wait,
            Ok(true) => Step::Continue,
            Err(e) => {
                log::debug!("bad chunked request body: {e:?}");
                let err = match e {
                    ChunkError::BodyTooLarge => HttpError::PayloadTooLarge,
                    _ => HttpError::BadRequest("invalid chunked body"),
                };
                self.abort_request(err, ctx, now)
            }
        }
    }

    /// The request turned out invalid mid-body: the backend has seen part of
    /// it, so its connection is dropped; the client gets the error if no
    /// response has started, else the connection is cut.
    fn abort_request(&mut self, err: HttpError, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        self.release_permit();
        if self.ex.answer.started() {
            return self.close(ctx, now);
        }
        self.ex.client_wants = After::Close;
        self.reject(err, ctx, now)
    }

    pub(super) fn on_proxying(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let mut progress = false;
        if let Some(step) = fold(self.scan_request(ctx, now), &mut progress) {
            return step;
        }
        // Request half: Sending → Sent once every byte is out.
        let sent = matches!(
            self.phase(),
            Phase::Proxying { req: ReqSide::Sending(scan), .. }
                if scan.is_complete() && self.to_backend.is_flushed() && self.req_fwd == 0
        );
        if sent {
            if let Phase::Proxying { req, .. } = self.phase_mut() {
                *req = ReqSide::Sent;
            }
            self.upload.stop();
            progress = true;
            if let Some(t) = self.ex.trace.as_deref_mut() {
                t.timings.send = Some(now);
            }
            // The response-head deadline starts now and is not pushed by
            // progress (see `touch`).
            let at = self.head_deadline(ctx, now);
            self.rearm(at);
        }
        let body_incomplete = matches!(
            self.phase(),
            Phase::Proxying { req: ReqSide::Sending(scan), .. } if !scan.is_complete()
        );
        if io.client.eof() && body_incomplete {
            // The client went away in the middle of its request body.
            return self.close(ctx, now);
        }
        if let Some(step) = fold(self.read_response_heads(io, ctx, now), &mut progress) {
            return step;
        }
        if !matches!(self.phase(), Phase::Proxying { .. }) {
            return Step::Continue;
        }
        if let Some(step) = fold(self.scan_response(ctx, now), &mut progress) {
            return step;
        }
        if let Some(step) = self.backend_gone(io, ctx, now) {
            return step;
        }
        let flushed = self.to_client.is_flushed() && self.resp_fwd == 0;
        let (done, req_sent) = match self.phase_mut() {
            Phase::Proxying { resp, req } => {
                if matches!(resp, RespSide::Streaming(scan) if scan.is_complete()) && flushed {
                    *resp = RespSide::Complete;
                }
                (
                    matches!(resp, RespSide::Complete),
                    matches!(req, ReqSide::Sent),
                )
            }
            _ => (false, false),
        };
        if done {
            return self.finish_exchange(io, req_sent, ctx, now);
        }
        if progress {
            Step::Continue
        } else {
            Step::Wait
        }
    }

    /// Parses response heads while one is awaited: forwards interim 1xx
    /// heads, switches to a tunnel on 101, and starts streaming on a final one.
    fn read_response_heads(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let mut progress = Step::Wait;
        loop {
            if !matches!(
                self.phase(),
                Phase::Proxying {
                    resp: RespSide::AwaitingHead,
                    ..
                }
            ) {
                return progress;
            }
            let Some(buf) = self.resp.as_ref().filter(|b| !b.is_empty()) else {
                return progress;
            };
            let is_head = self.ex.method == Some(Method::Head);
            match self.resp_head.parse(buf.data(), is_head) {
                Ok(false) if buf.is_full() => {
                    let err = HttpError::BadGateway("backend response head too large");
                    return self.backend_failed(err, ctx, now);
                }
                Ok(false) => return progress,
                Err(e) => {
                    log::debug!("bad response head from backend: {e:?}");
                    let err = HttpError::BadGateway("invalid response from backend");
                    return self.backend_failed(err, ctx, now);
                }
                Ok(true) => {}
            }
            let status = self.resp_head.status;
            let is_final = status != 101 && !self.resp_head.is_interim();
            if is_final && self.ex.answer == Answer::Nothing {
                // Nothing reached the client yet: the policy may send the
                // request to another backend instead.
                let outcome = ctx.pool(self.ex.pool).table.outcome_of(status);
                if let Some(step) = self.retry(RetryOn::Status(status), outcome, ctx, now) {
                    return step;
                }
            }
            if self.ex.answer == Answer::Nothing {
                self.ex.answer = Answer::Interim;
            }
            progress = Step::Continue;
            if status == 101 {
                if self.head.upgrade.is_none() {
                    let err = HttpError::BadGateway("unexpected 101 from backend");
                    return self.backend_failed(err, ctx, now);
                }
                self.forward_final_head(Outcome::Success, io, ctx, now);
                self.enter(Phase::Tunnelling, now.saturating_add(ctx.timeouts().idle));
                return Step::Continue;
            }
            if self.resp_head.is_interim() {
                // 1xx (100 Continue, 103 Early Hints): relay to 1.1 clients,
                // then keep waiting for the final head.
                if self.ex.minor_version >= 1 {
                    let data = self.resp.as_ref().map(|b| b.data()).unwrap_or(&[]);
                    if self.to_client.is_flushed() {
                        self.to_client.clear();
                    }
                    write_interim(&mut self.to_client.bytes, data, &self.resp_head);
                }
                let n = self.resp_head.len;
                if let Some(b) = self.resp.as_mut() {
                    b.consume(n);
                }
                continue;
            }
            // Only `failure_statuses` (default 502/503/504) say the backend
            // is down; a plain 500 is the application's own answer.
            let outcome = ctx.pool(self.ex.pool).table.outcome_of(status);
            self.forward_final_head(outcome, io, ctx, now);
            return Step::Continue;
        }
    }

    /// Records the outcome, writes the final response head for the client
    /// and sets up the body scan.
    fn forward_final_head(&mut self, outcome: Outcome, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) {
        let status = self.resp_head.status;
        self.note_retries();
        let Some(selection) = self.ex.selection.as_ref() else {
            return;
        };
        let backend = selection.entry();
        let latency = now.saturating_sub(self.ex.sent_at);
        self.ex.response_time_ms = latency.as_millis();
        backend.stats.latency.observe_us(latency.0 / 1000);
        // What latency-aware balancers (p2c-ewma) learn from.
        ctx.pool(self.ex.pool)
            .balancer
            .observe(backend, latency, now);
        if let Some(i) = status_class(status) {
            Metrics::inc(&backend.stats.status[i]);
        }
        if outcome == Outcome::Failure {
            Metrics::inc(&backend.stats.failures);
        }
        // A good head is not yet a good response: the body may still be cut
        // short (reset, stall), which must count against the breaker. So a
        // success is recorded when the response completes (`finish_exchange`);
        // failures and 101 tunnels (no body to wait for) are recorded now.
        if outcome == Outcome::Failure || status == 101 {
            self.record_outcome(outcome, ctx, now);
        }
        self.ex.note_trace_id();
        let Some(selection) = self.ex.selection.as_ref() else {
            return;
        };
        let backend = selection.entry();
        let circuit = backend.breaker.state(now);
        if let Some(t) = self.ex.trace.as_deref_mut() {
            t.timings.first_byte = Some(now);
            let reused = t.connection_reused;
            t.push(Stage::Backend {
                name: backend.name.clone(),
                status,
                reused,
            });
        }
        let framing = self.resp_head.framing();
        let req_sent = matches!(
            self.phase(),
            Phase::Proxying {
                req: ReqSide::Sent,
                ..
            }
        );
        // A client that half-closed after pipelining still gets an answer
        // to every request it sent in full before its FIN (RFC 9112 §9.6):
        // only when nothing more is buffered is this the last response.
        let client_done = io.client.eof() && self.req.as_ref().is_none_or(|b| b.is_empty());
        let close = self.ex.client_wants == After::Close
            || framing == ResponseFraming::UntilClose
            || client_done
            || ctx.draining
            || !req_sent;
        self.ex.after = if close {
            After::Close
        } else {
            After::KeepAlive
        };
        self.ex.answer = Answer::Final(status);
        let data = self.resp.as_ref().map(|b| b.data()).unwrap_or(&[]);
        if self.to_client.is_flushed() {
            self.to_client.clear();
        }
        write_response(
            &mut self.to_client.bytes,
            data,
            &self.resp_head,
            &ResponseInfo {
                backend: &backend.name,
                algorithm: ctx.pool(self.ex.pool).balancer.spec().name(),
                circuit: circuit.as_str(),
                response_time_ms: self.ex.response_time_ms,
                request_id: &self.ex.request_id,
                extra: &self.ex.extra,
                close,
                keep_alive_1_0: self.ex.minor_version == 0 && !close,
                edits: &ctx
                    .snap
                    .routes
                    .policy(self.ex.route.unwrap_or(0))
                    .response_headers,
            },
        );
        let n = self.resp_head.len;
        if let Some(b) = self.resp.as_mut() {
            b.consume(n);
        }
        self.resp_fwd = 0;
        let scan = match framing {
            ResponseFraming::Empty => BodyScan::Complete,
            ResponseFraming::Length(n) => BodyScan::Length(n),
            ResponseFraming::Chunked => BodyScan::Chunked(ChunkedDecoder::new(u64::MAX, 64 * 1024)),
            ResponseFraming::UntilClose => BodyScan::UntilClose,
        };
        if let Phase::Proxying { resp, .. } = self.phase_mut() {
            *resp = RespSide::Streaming(scan);
        }
    }

    /// Clears newly arrived response body bytes for the client.
    fn scan_response(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let Phase::Proxying {
            resp: RespSide::Streaming(scan),
            ..
        } = &mut self.phase
        else {
            return Step::Wait;
        };
        let data = self.resp.as_ref().map(|b| b.data()).unwrap_or(&[]);
        match scan.clear(data, &mut self.resp_fwd) {
            Ok(false) => Step::Wait,
            Ok(true) => Step::Continue,
            Err(e) => {
                log::debug!("bad chunked response body from backend: {e:?}");
                self.count_backend_failure(ctx, now);
                // The head is out: cutting the connection is the only
                // honest way to tell the client the body is incomplete.
                self.close(ctx, now)
            }
        }
    }

    /// Handles a backend that closed or failed; `Some` when that changed
    /// the exchange.
    fn backend_gone(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Option<Step> {
        let up = io.upstream?;
        if !(up.seen.eof() || up.seen.failed()) {
            return None;
        }
        let Phase::Proxying { resp, .. } = self.phase_mut() else {
            return None;
        };
        match resp {
            RespSide::Complete => None,
            // Everything arrived before the close: only reuse is lost.
            RespSide::Streaming(scan) if scan.is_complete() => None,
            RespSide::Streaming(BodyScan::UntilClose) => {
                // Read-until-close body: the close is its end (RFC 9112 §6.3 item 8).
                *resp = RespSide::Streaming(BodyScan::Complete);
                Some(Step::Release { reusable: false })
            }
            RespSide::Streaming(_) => {
                // The body is incomplete: never present it as complete.
                log::debug!("backend closed mid-response");
                self.count_backend_failure(ctx, now);
                Some(self.close(ctx, now))
            }
            RespSide::AwaitingHead => {
                let nothing_received =
                    self.resp.as_ref().is_none_or(|b| b.is_empty()) && !self.ex.answer.started();
                let reused = up.attach == Attach::Ready { reused: true };
                let retryable = nothing_received
                    && reused
                    && self.ex.attempts < 2
                    && !self.has_body()
                    && self.ex.method.is_some_and(Method::is_idempotent);
                let backend = self.ex.selection.as_ref().map(|s| s.backend);
                match backend {
                    Some(backend) if retryable => {
                        // A pooled connection the backend had already closed:
                        // replay once on a fresh one (the request had no body).
                        log::debug!("stale pooled connection; retrying on a fresh one");
                        self.ex.attempts += 1;
                        Some(self.resend(backend, true, ctx, now))
                    }
                    _ => {
                        let why = RetryOn::ResetBeforeResponse;
                        if let Some(step) = self.retry(why, Outcome::Failure, ctx, now) {
                            return Some(step);
                        }
                        let err = HttpError::BadGateway("backend closed the connection");
                        Some(self.backend_failed(err, ctx, now))
                    }
                }
            }
        }
    }

    /// Both halves are done: account, reuse or close each connection.
    fn finish_exchange(
        &mut self,
        io: &IoView,
        req_sent: bool,
        ctx: &mut Ctx<'_>,
        now: Nanos,
    ) -> Step {
        // The whole response arrived: the deferred success verdict.
        self.record_outcome(Outcome::Success, ctx, now);
        if let Some(t) = self.ex.trace.as_deref_mut() {
            t.timings.last_byte = Some(now);
        }
        let stray = self.resp.as_ref().is_some_and(|b| !b.is_empty());
        let healthy = io
            .upstream
            .is_some_and(|u| !u.seen.eof() && !u.seen.failed());
        let reusable = req_sent && !stray && healthy && self.resp_head.backend_keeps_alive();
        if stray {
            // Bytes past the response belong to the connection being let
            // go; kept, they would be read as the next request's response.
            log::debug!("backend sent bytes past its response; connection not reused");
            self.forget_response();
        }
        self.settle(ctx, now);
        if self.ex.after == After::Close || !req_sent {
            self.enter_closing(ctx, now);
        } else {
            self.enter_idle(ctx, now);
        }
        Step::Release { reusable }
    }

    pub(super) fn on_tunnelling(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let Some(up) = io.upstream.filter(|u| !u.seen.failed()) else {
            return self.close(ctx, now);
        };
        // Propagate each half-close once the bytes before it are through.
        let req_empty = self.req.as_ref().is_none_or(|b| b.is_empty());
        if io.client.eof() && req_empty && !up.seen.shut() {
            return Step::Shut(Peer::Upstream);
        }
        let resp_empty = self.resp.as_ref().is_none_or(|b| b.is_empty());
        if up.seen.eof() && resp_empty && self.to_client.is_flushed() && !io.client.shut() {
            return Step::Shut(Peer::Client);
        }
        if io.client.shut() && up.seen.shut() {
            return self.close(ctx, now);
        }
        Step::Wait
    }

    /// The backend failed before a response reached the client: count it
    /// against the breaker and answer `err`; after the head went out, cut
    /// the connection instead.
    pub(super) fn backend_failed(&mut self, err: HttpError, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        self.count_backend_failure(ctx, now);
        if self.ex.answer.status().is_some() {
            return self.close(ctx, now);
        }
        if self.has_body() {
            self.ex.client_wants = After::Close;
        }
        self.reject(err, ctx, now)
    }

    /// Feeds a failure to the backend's breaker and counters (once).
    pub(super) fn count_backend_failure(&mut self, ctx: &mut Ctx<'_>, now: Nanos) {
        let Some(selection) = self.ex.selection.as_ref() else {
            return;
        };
        // Counted once: while the permit is held, or (no breaker stage)
        // before any response reached the client.
        if selection.permit.is_held() || self.ex.answer.status().is_none() {
            Metrics::inc(&selection.entry().stats.failures);
        }
        self.record_outcome(Outcome::Failure, ctx, now);
    }

    /// Hands the request's breaker permit (if any) back with a verdict,
    /// logging any state change.
    pub(super) fn record_outcome(&mut self, outcome: Outcome, ctx: &mut Ctx<'_>, now: Nanos) {
        let Some(selection) = self.ex.selection.as_mut() else {
            return;
        };
        let change = selection.permit.record(outcome, now);
        let (table, backend) = (selection.table(), selection.entry());
        match change {
            Some(Change::Moved(t)) => {
                if t.to == CircuitState::Closed {
                    // Recovered: eased back in over `slow_start_ms`.
                    backend.begin_ramp(now);
                }
                ctx.shared.circuit_event(backend, t, now)
            }
            Some(Change::TripSuppressed) => ctx.shared.trip_suppressed(table, backend, now),
            None => {}
        }
    }

    /// Gives back an unused breaker permit.
    pub(super) fn release_permit(&mut self) {
        if let Some(s) = self.ex.selection.as_mut() {
            s.permit.release();
        }
    }
}
