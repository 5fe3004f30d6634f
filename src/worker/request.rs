//! Requests at the gateway: reading the head, running the pipeline stages,
//! gateway-made replies, closing, timeouts, and the per-request accounting
//! (access log, metrics) that happens exactly once per request.

use std::io::Write;
use std::net::Shutdown;

use super::{Worker, LINGER};
use crate::algo::balance::PickKey;
use crate::algo::breaker::Permit;
use crate::algo::limit::Verdict;
use crate::algo::BackendId;
use crate::algo::Nanos;
use crate::backend::Selection;
use crate::conn::upload::UploadVerdict;
use crate::conn::{After, Phase, Preface, ReqSide, RespSide};
use crate::http::head::named_in_connection;
use crate::http::request::{request_line_too_long, Method, RequestFraming, RequestLimits};
use crate::http::rewrite::{error_body, write_local, LocalReply};
use crate::http::HttpError;
use crate::http::{rules, upgrade};
use crate::metrics::Metrics;
use crate::pipeline::access_log::Entry;
use crate::pipeline::cors::{self, CorsKind};
use crate::pipeline::{rate_limit, Stage};
use crate::shared::client_hash;
use std::cmp::Reverse;

/// The event-log line for a change of selection mode.
fn panic_event(sel: Selection) -> String {
    match sel {
        Selection::Panic { available, floor } => format!(
            "upstream panic: {available} backend(s) available, fewer than {floor}; spreading over every switched-on backend"
        ),
        Selection::Normal => "upstream panic over: open circuits are skipped again".to_string(),
    }
}

/// What the access log shows for a request whose client went away first.
const CLIENT_CLOSED: u16 = 499;

/// Spare per-request vector sets kept per worker (as many as the buffer
/// pool keeps spare buffers).
pub(super) const MAX_SPARE: usize = 1024;

impl Worker {
    /// Moves the connection's state machine on from what the I/O steps saw.
    pub(super) fn advance(&mut self, ci: usize) -> bool {
        let c = &self.conns[ci];
        if c.client_failed {
            // The client reset or vanished: nothing can be delivered.
            self.close(ci);
            return true;
        }
        match c.phase {
            Phase::ReadingHead => self.on_reading_head(ci),
            Phase::Parked { .. } => false,
            Phase::Connecting(_) => self.on_connecting(ci),
            Phase::Proxying { .. } => self.on_proxying(ci),
            Phase::Tunnelling => self.on_tunnelling(ci),
            Phase::Replying(after) => self.on_replying(ci, after),
            Phase::Closing => self.on_closing(ci),
        }
    }

    fn on_reading_head(&mut self, ci: usize) -> bool {
        let limits = RequestLimits {
            max_uri: self.shared.config.limits.max_uri_bytes,
            max_body: self.shared.config.limits.max_body_bytes,
        };
        let c = &mut self.conns[ci];
        let Some(buf) = c.req.as_ref().filter(|b| !b.is_empty()) else {
            if c.client_eof || c.draining {
                self.close(ci);
                return true;
            }
            // Idle between requests: give the buffers (and the per-request
            // vectors) back so an idle keep-alive connection holds neither.
            if let Some(b) = c.req.take() {
                self.pool.put(b);
                if self.spare.len() < MAX_SPARE {
                    self.spare.push(c.stash_scratch());
                }
            }
            if let Some(b) = c.resp.take() {
                self.pool.put(b);
            }
            return false;
        };
        if c.preface == Preface::ProxyHeader {
            return self.on_proxy_header(ci);
        }
        // Re-parse only when a blank line may have arrived: a client
        // dribbling a head byte by byte must not cost a full parse per byte.
        let data = buf.data();
        let from = c.head_scanned.saturating_sub(3).min(data.len());
        let complete_hint = data[from..].windows(2).any(|w| w == b"\n\n")
            || data[from..].windows(3).any(|w| w == b"\n\r\n");
        c.head_scanned = data.len();
        // The buffer is at least 16 KiB, so a smaller configured
        // `max_header_bytes` is enforced here, not by the buffer filling up.
        let max_head = self.shared.config.limits.max_header_bytes;
        let over = data.len() >= max_head;
        let parsed = if complete_hint || buf.is_full() || over || c.client_eof {
            c.head.parse(data, &limits)
        } else if request_line_too_long(data, limits.max_uri) {
            Err(HttpError::UriTooLong)
        } else {
            Ok(false)
        };
        match parsed {
            Ok(true) if c.head.len > max_head => {
                c.head_scanned = 0;
                self.begin_error(ci);
                self.reject(ci, HttpError::HeadTooLarge);
                true
            }
            Ok(true) => {
                c.head_scanned = 0;
                self.begin_request(ci);
                true
            }
            Ok(false) => {
                if buf.is_full() || over {
                    self.begin_error(ci);
                    self.reject(ci, HttpError::HeadTooLarge);
                    return true;
                }
                if c.client_eof {
                    // The client gave up half-way through a head (possibly
                    // after pipelined requests that were all answered): no
                    // request to answer, so close without a 400, as nginx
                    // does for a head cut short by the client.
                    self.close(ci);
                    return true;
                }
                if c.timer_is_idle {
                    // First bytes of a new head: the header timeout starts.
                    c.timer_is_idle = false;
                    c.deadline = self.now.saturating_add(self.deadlines.header);
                }
                false
            }
            Err(e) => {
                c.head_scanned = 0;
                self.begin_error(ci);
                self.reject(ci, e);
                true
            }
        }
    }

    /// Starts the accounting of a request whose head could not be parsed.
    fn begin_error(&mut self, ci: usize) {
        self.start_exchange(ci);
        let c = &mut self.conns[ci];
        c.ex.client_keep_alive = false;
        c.ex.log_target.clear();
        c.ex.log_target.extend_from_slice(b"- -");
    }

    fn start_exchange(&mut self, ci: usize) {
        Metrics::inc(&self.shared.metrics.requests);
        Metrics::inc(&self.shared.metrics.inflight);
        self.serial_rid += 1;
        let rid = self.serial_rid;
        let prefix = self.rid_prefix;
        let c = &mut self.conns[ci];
        let ex = &mut c.ex;
        ex.active = true;
        ex.start = self.now;
        ex.method = None;
        ex.minor_version = 1;
        ex.client_keep_alive = true;
        ex.upgrade = false;
        ex.has_body = false;
        ex.extra.clear();
        ex.next_stage = 0;
        // The logger "always runs, rejections included": its place in the
        // pipeline does not matter, only whether it is configured.
        ex.log = self.log_requests;
        ex.backend = None;
        ex.backend_inflight = None;
        ex.permit = None;
        ex.retried = false;
        ex.response_started = false;
        ex.close_after = false;
        ex.sent_at = self.now;
        ex.status = 0;
        ex.bytes_out = 0;
        ex.response_time_ms = 0;
        ex.client_ip = None;
        ex.request_id.clear();
        let _ = write!(ex.request_id, "{prefix:08x}{rid:08x}");
        c.head_pending = false;
        c.upload.stop();
    }

    fn begin_request(&mut self, ci: usize) {
        self.start_exchange(ci);
        let c = &mut self.conns[ci];
        let buf = c.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        // Only an allowed protocol may turn this connection into a tunnel
        // (which no later stage sees); any other offer is dropped and the
        // request forwarded as a plain one (see `http::upgrade`).
        let allowed = &self.shared.config.allowed_upgrades;
        if c.head
            .upgrade
            .is_some_and(|u| !upgrade::offers_allowed(u.get(buf), allowed))
        {
            c.head.upgrade = None;
        }
        let head = &c.head;
        let client_ip = super::preface::resolve_client_ip(
            c.peer_ip(),
            &self.shared.config.trusted_proxies,
            buf,
            head,
        );
        let ex = &mut c.ex;
        c.head_pending = true;
        ex.client_ip = Some(client_ip);
        ex.method = head.method;
        ex.minor_version = head.minor_version;
        ex.client_keep_alive = head.wants_keep_alive() && !c.draining;
        ex.upgrade = head.upgrade.is_some();
        ex.has_body = head.framing() != RequestFraming::Empty;
        // A client id the client itself marked hop-by-hop is not kept.
        if let Some(id) = head
            .request_id
            .filter(|_| !named_in_connection(buf, &head.connection, b"x-request-id"))
        {
            ex.request_id.clear();
            ex.request_id.extend_from_slice(id.get(buf));
        }
        ex.log_target.clear();
        ex.log_target.extend_from_slice(head.method_span.get(buf));
        ex.log_target.push(b' ');
        let target = head.target.get(buf);
        ex.log_target
            .extend_from_slice(&target[..target.len().min(512)]);
        if let Err(e) = rules::check(buf, head) {
            self.reject(ci, e);
            return;
        }
        let path = head.path.get(buf);
        let routed = self
            .shared
            .config
            .routes
            .iter()
            .any(|r| path.starts_with(r.as_bytes()))
            || (path == b"*" && head.method() == Method::Options);
        if !routed {
            self.reject(ci, HttpError::NoRoute);
            return;
        }
        self.run_pipeline(ci);
    }

    /// Runs the pipeline stages from `ex.next_stage` until one answers,
    /// parks the request, or the proxy stage starts forwarding.
    pub(super) fn run_pipeline(&mut self, ci: usize) {
        let stages = self.shared.config.pipeline.len();
        while self.conns[ci].ex.next_stage < stages {
            let stage = self.shared.config.pipeline[self.conns[ci].ex.next_stage];
            self.conns[ci].ex.next_stage += 1;
            match stage {
                // Decided once per request in `start_exchange`.
                Stage::Logger => {}
                Stage::Cors => {
                    let c = &mut self.conns[ci];
                    let buf = c.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
                    let kind = cors::classify(buf, &c.head);
                    cors::write_headers(
                        &mut c.ex.extra,
                        &self.shared.config.cors,
                        buf,
                        &c.head,
                        kind,
                    );
                    if kind == CorsKind::Preflight {
                        self.local_reply(ci, 204, b"", "");
                        return;
                    }
                }
                Stage::RateLimit => {
                    let c = &mut self.conns[ci];
                    let buf = c.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
                    let key = rate_limit::client_key(
                        &self.shared.key_hasher,
                        &self.shared.config.rate_limit.key,
                        buf,
                        &c.head,
                        c.client_ip(),
                    );
                    let d = self.limiter.check(key, self.now);
                    rate_limit::write_headers(&mut c.ex.extra, &d);
                    let m = &self.shared.metrics;
                    match d.verdict {
                        Verdict::Allow => Metrics::inc(&m.limit_allowed),
                        Verdict::Delay(delay) => {
                            Metrics::inc(&m.limit_delayed);
                            let until = self.now.saturating_add(delay);
                            c.phase = Phase::Parked { until };
                            c.deadline = Nanos::ZERO;
                            self.parked.push(Reverse((until, ci, c.serial)));
                            return;
                        }
                        Verdict::Deny => {
                            Metrics::inc(&m.limit_denied);
                            let secs = rate_limit::retry_after_secs(&d);
                            let _ = write!(c.ex.extra, "Retry-After: {secs}\r\n");
                            self.reject(
                                ci,
                                HttpError::RateLimited {
                                    retry_after_secs: secs,
                                },
                            );
                            return;
                        }
                    }
                }
                Stage::CircuitBreaker => {
                    if !self.choose_backend(ci, true) {
                        self.reject(ci, HttpError::NoBackend);
                        return;
                    }
                }
                Stage::Proxy => {
                    if self.conns[ci].ex.backend.is_none() && !self.choose_backend(ci, false) {
                        self.reject(ci, HttpError::NoBackend);
                        return;
                    }
                    self.start_forwarding(ci);
                    return;
                }
            }
        }
    }

    /// A parked (leaky-bucket) request's time has come.
    pub(super) fn resume_parked(&mut self, ci: usize) {
        self.conns[ci].phase = Phase::ReadingHead;
        self.run_pipeline(ci);
    }

    /// Asks the balancer for a backend that is switched on and, when
    /// `with_breaker`, whose circuit grants a permit, unless selection is in
    /// panic (too few such backends, see [`Selection`]): then any switched-on
    /// backend will do, with a permit if its circuit grants one.
    fn choose_backend(&mut self, ci: usize, with_breaker: bool) -> bool {
        let key = PickKey {
            client_hash: client_hash(self.conns[ci].client_ip()),
        };
        let table = &self.shared.backends;
        let now = self.now;
        let selection = if with_breaker {
            let sel = table.selection(now);
            if table.note_selection(sel) {
                self.shared.events.push(now, panic_event(sel));
            }
            sel
        } else {
            Selection::Normal
        };
        let panic = matches!(selection, Selection::Panic { .. });
        let mut permit: Option<Permit> = None;
        let picked: Option<BackendId> = self.balancer.pick(&key, table, &mut |id| {
            let b = table.get(id);
            if !b.is_up() {
                return false;
            }
            if !with_breaker {
                return true;
            }
            match b.breaker.try_acquire(now) {
                Some(p) => {
                    permit = Some(p);
                    true
                }
                // Panic: an open circuit is no reason to skip it; without a
                // permit its outcome does not touch the breaker.
                None => panic,
            }
        });
        if let (Some(id), Some(p)) = (picked, permit.as_ref()) {
            if p.is_probe() {
                let name = &self.shared.backends.get(id).name;
                self.shared.events.push(
                    now,
                    format!("circuit {name} OPEN -> HALF_OPEN (probe request)"),
                );
            }
        }
        let c = &mut self.conns[ci];
        c.ex.backend = picked;
        c.ex.permit = permit;
        picked.is_some()
    }

    /// Answers with a gateway-made error.
    pub(super) fn reject(&mut self, ci: usize, err: HttpError) {
        let m = &self.shared.metrics;
        match err {
            HttpError::RateLimited { .. } => Metrics::inc(&m.rate_limited),
            HttpError::NoBackend => Metrics::inc(&m.circuit_broken),
            _ => Metrics::inc(&m.errors),
        }
        let c = &mut self.conns[ci];
        if let Some(allow) = err.allow() {
            c.ex.extra.extend_from_slice(b"Allow: ");
            c.ex.extra.extend_from_slice(allow.as_bytes());
            c.ex.extra.extend_from_slice(b"\r\n");
        }
        error_body(&mut self.scratch, err, &c.ex.request_id);
        let close = err.closes_connection();
        let body = std::mem::take(&mut self.scratch);
        self.reply(ci, err.status(), &body, "application/json", close);
        self.scratch = body;
    }

    /// Answers with a successful gateway-made response (CORS preflight).
    fn local_reply(&mut self, ci: usize, status: u16, body: &[u8], content_type: &str) {
        self.reply(ci, status, body, content_type, false);
    }

    fn reply(
        &mut self,
        ci: usize,
        status: u16,
        body: &[u8],
        content_type: &str,
        force_close: bool,
    ) {
        self.drop_upstream(ci);
        let c = &mut self.conns[ci];
        // The rest of the stream can be read as the next request only if
        // this request has no body still in flight.
        let close = force_close || c.ex.has_body || !c.ex.client_keep_alive || c.draining;
        if c.head_pending {
            c.head_pending = false;
            let n = c.head.len;
            if let Some(b) = c.req.as_mut() {
                b.consume(n);
            }
        }
        c.ex.status = status;
        c.ex.close_after = close;
        c.to_client.clear();
        write_local(
            &mut c.to_client.bytes,
            &LocalReply {
                status,
                body,
                content_type,
                request_id: &c.ex.request_id,
                extra: &c.ex.extra,
                close,
                head_only: c.ex.method == Some(Method::Head),
            },
        );
        c.phase = Phase::Replying(if close {
            After::Close
        } else {
            After::KeepAlive
        });
        c.deadline = self.now.saturating_add(self.deadlines.idle);
    }

    fn on_replying(&mut self, ci: usize, after: After) -> bool {
        if !self.conns[ci].to_client.is_flushed() {
            return false;
        }
        self.end_request(ci);
        match after {
            After::KeepAlive => self.enter_reading_head(ci),
            After::Close => self.enter_closing(ci),
        }
        true
    }

    /// Back to waiting for the next request on a kept-alive connection.
    pub(super) fn enter_reading_head(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        c.to_client.clear();
        c.to_backend.clear();
        c.phase = Phase::ReadingHead;
        c.timer_is_idle = true;
        c.deadline = self.now.saturating_add(self.deadlines.idle);
    }

    /// Flush what is queued, shut our write side, then linger.
    pub(super) fn enter_closing(&mut self, ci: usize) {
        self.drop_upstream(ci);
        let c = &mut self.conns[ci];
        c.phase = Phase::Closing;
        c.deadline = self.now.saturating_add(self.deadlines.idle);
    }

    fn on_closing(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        if !c.to_client.is_flushed() {
            return false;
        }
        if !c.client_shut {
            let _ = c.client.shutdown(Shutdown::Write);
            c.client_shut = true;
            c.deadline = self.now.saturating_add(LINGER);
            return true;
        }
        if c.client_eof {
            self.close(ci);
            return true;
        }
        false
    }

    /// Detaches and closes the connection's backend socket, if any (its
    /// state is unknown, so it is never pooled from here).
    pub(super) fn drop_upstream(&mut self, ci: usize) {
        if let Some(u) = self.conns[ci].upstream.take() {
            self.close_upstream(u);
        }
        let c = &mut self.conns[ci];
        c.upstream_eof = false;
        c.upstream_failed = false;
        if let Some(b) = c.resp.as_mut() {
            b.consume(b.len());
        }
        c.resp_fwd = 0;
    }

    /// Finishes a request's accounting: access log, metrics, in-flight
    /// counts, an unused breaker permit. Idempotent.
    pub(super) fn end_request(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let client = c.client_ip();
        let ex = &mut c.ex;
        if !ex.active {
            return;
        }
        ex.active = false;
        let shared = &self.shared;
        let m = &shared.metrics;
        Metrics::dec(&m.inflight);
        let status = if ex.status == 0 {
            CLIENT_CLOSED
        } else {
            ex.status
        };
        m.count_status(status);
        let duration_us = self.now.saturating_sub(ex.start).0 / 1000;
        m.latency.observe_us(duration_us);
        if let Some(id) = ex.backend_inflight.take() {
            shared.backends.get(id).end_inflight();
        }
        if let (Some(p), Some(id)) = (ex.permit.take(), ex.backend) {
            shared.backends.get(id).breaker.release(p);
        }
        if ex.log {
            let backend = ex
                .backend
                .map(|id| shared.backends.get(id).name.as_str())
                .unwrap_or("-");
            self.log.record(&Entry {
                client,
                target: &ex.log_target,
                status,
                backend,
                duration_us,
                bytes: ex.bytes_out,
                request_id: &ex.request_id,
            });
        }
    }

    /// Closes the connection now: accounting, sockets, buffers.
    pub(super) fn close(&mut self, ci: usize) {
        if !self.conns.contains(ci) {
            return;
        }
        self.end_request(ci);
        self.drop_upstream(ci);
        let mut c = self.conns.remove(ci);
        super::forget(self.poll.registry(), &mut c.client);
        if let Some(b) = c.req.take() {
            self.pool.put(b);
        }
        if let Some(b) = c.resp.take() {
            self.pool.put(b);
        }
        Metrics::dec(&self.shared.metrics.connections_open);
    }

    /// A connection's deadline passed.
    pub(super) fn on_timeout(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        c.deadline = Nanos::ZERO;
        match &c.phase {
            Phase::ReadingHead => {
                // A PROXY header not complete in time gets no HTTP answer.
                if c.timer_is_idle
                    || c.preface != Preface::None
                    || c.req.as_ref().is_none_or(|b| b.is_empty())
                {
                    self.close(ci);
                } else {
                    self.begin_error(ci);
                    self.reject(ci, HttpError::HeaderTimeout);
                }
            }
            Phase::Proxying {
                req: ReqSide::Sending(scan),
                resp: RespSide::AwaitingHead,
            } if !scan.is_complete() && c.req_fwd == 0 && c.to_backend.is_flushed() => {
                // Everything the client sent is with the backend and the rest
                // of its body never came: the client is slow, not the backend.
                self.client_too_slow(ci);
            }
            Phase::Connecting(_)
            | Phase::Proxying {
                resp: RespSide::AwaitingHead,
                ..
            } => self.backend_failed(ci, HttpError::GatewayTimeout),
            Phase::Parked { .. } => {}
            Phase::Proxying {
                resp: RespSide::Streaming(_),
                ..
            } => {
                // Nothing buffered for the client means the backend went
                // silent mid-body (a backend fault); otherwise the client is
                // not reading, which must not count against the backend.
                let backend_stalled =
                    c.resp.as_ref().is_none_or(|b| b.is_empty()) && c.to_client.is_flushed();
                if backend_stalled {
                    self.count_backend_failure(ci);
                }
                self.close(ci)
            }
            Phase::Proxying { .. } | Phase::Tunnelling | Phase::Replying(_) | Phase::Closing => {
                self.close(ci)
            }
        }
    }

    /// A metering window of the request body ended: below
    /// `limits.min_body_bytes_per_sec`, the client is cut off.
    pub(super) fn check_upload_rate(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        let uploading = matches!(
            &c.phase,
            Phase::Connecting(scan)
            | Phase::Proxying { req: ReqSide::Sending(scan), .. } if !scan.is_complete()
        );
        if !uploading {
            c.upload.stop();
            return;
        }
        if c.head.expect_continue && !c.ex.response_started {
            // The client rightly waits for `100 Continue` from the backend.
            c.upload.pause();
        }
        let d = &self.deadlines;
        if c.upload
            .judge(self.now, d.body_rate_window, d.min_body_rate)
            == UploadVerdict::TooSlow
        {
            log::debug!("request body below limits.min_body_bytes_per_sec; 408");
            self.client_too_slow(ci);
        }
    }

    /// The client, not the backend, is holding the exchange up (its body
    /// stalled or trickles below the minimum rate): 408 if no response has
    /// started, else the connection is cut. The backend connection is
    /// closed, never pooled (it holds part of a request), and its breaker is
    /// not charged.
    fn client_too_slow(&mut self, ci: usize) {
        self.release_permit(ci);
        let c = &mut self.conns[ci];
        c.upload.stop();
        if c.ex.status != 0 {
            self.close(ci);
            return;
        }
        c.ex.client_keep_alive = false;
        self.reject(ci, HttpError::BodyTimeout);
    }

    /// Pushes an activity deadline forward after progress, in the phases
    /// that time out on silence rather than on total duration.
    ///
    /// Two kinds of timer, never mixed:
    /// - deadlines, set once on entering a phase and never pushed: the
    ///   request head (`header_read_ms`, from its first byte), the connect
    ///   (`connect_ms`), and the response head (`backend_response_ms`, from
    ///   the moment the whole request is with the backend). A peer that
    ///   trickles a head a line at a time still makes progress, so progress
    ///   must not buy it time.
    /// - inactivity timers, pushed here: while a request body is being
    ///   uploaded, while a response body streams (`backend_response_ms` of
    ///   silence), and in a tunnel (`idle_ms`).
    pub(super) fn touch(&mut self, ci: usize) {
        let Some(c) = self.conns.get_mut(ci) else {
            return;
        };
        let d = match c.phase {
            // The head deadline was set when the request was sent.
            Phase::Proxying {
                req: ReqSide::Sent,
                resp: RespSide::AwaitingHead,
            } => return,
            Phase::Proxying { .. } => self.deadlines.response,
            Phase::Tunnelling => self.deadlines.idle,
            _ => return,
        };
        c.deadline = self.now.saturating_add(d);
    }
}
