//! HTTP/1.1 at the gateway: reading the request head, running the pipeline
//! stages, gateway-made replies, keep-alive and closing, and the
//! per-request accounting that happens exactly once. Forwarding is in
//! `forward.rs`, timers in `timer.rs`.

use std::io::Write;

use crate::algo::balance::PickKey;
use crate::algo::limit::Verdict;
use crate::algo::Nanos;
use crate::auth::route::KeyPlace;
use crate::auth::AuthFailure;
use crate::config::KeySource;
use crate::http::head::named_in_connection;
use crate::http::normalize::normalize_target;
use crate::http::request::{request_line_too_long, Method, RequestFraming, RequestLimits};
use crate::http::rewrite::Scheme;
use crate::http::rewrite::{error_body, write_local, LocalReply};
use crate::http::HttpError;
use crate::http::{host, query, rules, upgrade};
use crate::metrics::Metrics;
use crate::pipeline::access_log::Entry;
use crate::pipeline::cors::{self, CorsKind};
use crate::pipeline::{rate_limit, Stage};
use crate::route::RouteMatch;
use crate::shared::client_hash;
use crate::trace::record::{text, QueueOutcome};
use crate::trace::Stage as TraceStage;
use crate::upstream::{Gate, PoolEvent, PoolId, Refusal};

use super::exchange::{Answer, Ledger};
use super::phase::{After, Phase};
use super::session::{Ctx, IoView, Session, Step};

/// How often a queued request re-checks for room freed on other workers
/// (room freed on its own worker wakes it at once).
pub const QUEUE_RECHECK: Nanos = Nanos::from_millis(5);

impl Session {
    /// Moves the state machine on from what the sockets saw and the bytes
    /// in the buffers; returns what the worker must do next. Call again
    /// (after pumping) until it returns [`Step::Wait`].
    pub fn advance(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        if io.client.failed() && !self.is_closed() {
            // The client reset or vanished: nothing can be delivered.
            return self.close(ctx, now);
        }
        match self.phase() {
            Phase::Handshaking => self.on_handshaking(io, ctx, now),
            Phase::Preface => self.on_preface(io, ctx, now),
            Phase::Idle | Phase::ReadingHead => self.on_reading_head(io, ctx, now),
            Phase::Routing { .. } => self.run_pipeline(ctx, now),
            &Phase::Parked { until, next } => {
                if now < until {
                    return Step::Wait;
                }
                self.enter(Phase::Routing { next }, Nanos::ZERO);
                self.run_pipeline(ctx, now)
            }
            // Woken by its re-check timer, its deadline, or a freed slot.
            &Phase::Queued { recheck, next, .. } => {
                if now < recheck {
                    return Step::Wait;
                }
                self.enter(Phase::Routing { next }, Nanos::ZERO);
                self.run_pipeline(ctx, now)
            }
            Phase::Connecting(_) => self.on_connecting(io, ctx, now),
            Phase::Proxying { .. } => self.on_proxying(io, ctx, now),
            Phase::Tunnelling => self.on_tunnelling(io, ctx, now),
            &Phase::Replying(after) => self.on_replying(after, ctx, now),
            Phase::Closing => self.on_closing(io, ctx, now),
            Phase::Lingering if io.client.eof() => self.close(ctx, now),
            Phase::Lingering | Phase::Closed => Step::Wait,
        }
    }

    /// The TLS handshake (done by the transport) is complete: the first
    /// request's head is awaited with the header timer, as on a new plain
    /// connection. A client that leaves mid-handshake is closed.
    fn on_handshaking(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        if io.client.eof() {
            return self.close(ctx, now);
        }
        if io.client_handshaking {
            return Step::Wait;
        }
        self.enter(
            Phase::ReadingHead,
            now.saturating_add(ctx.timeouts().header),
        );
        self.on_reading_head(io, ctx, now)
    }

    /// Nothing buffered while a head (or PROXY header) is awaited: close on
    /// EOF or shutdown; else give the buffers back so an idle keep-alive
    /// connection holds neither them nor the per-request vectors.
    pub(super) fn on_empty_inbox(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        if io.client.eof() || ctx.draining {
            return self.close(ctx, now);
        }
        if self.req.is_some() || self.resp.is_some() {
            return Step::Idle;
        }
        Step::Wait
    }

    fn on_reading_head(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let limits_cfg = &ctx.snap.config.limits;
        let limits = RequestLimits {
            max_uri: limits_cfg.max_uri_bytes,
            max_body: limits_cfg.max_body_bytes,
        };
        let max_head = limits_cfg.max_header_bytes;
        let Some(buf) = self.req.as_ref().filter(|b| !b.is_empty()) else {
            return self.on_empty_inbox(io, ctx, now);
        };
        // Re-parse only when a blank line may have arrived: a client
        // dribbling a head byte by byte must not cost a full parse per byte.
        let data = buf.data();
        let from = self.head_scanned.saturating_sub(3).min(data.len());
        let complete_hint = data[from..].windows(2).any(|w| w == b"\n\n")
            || data[from..].windows(3).any(|w| w == b"\n\r\n");
        self.head_scanned = data.len();
        // The buffer is at least 16 KiB, so a smaller configured
        // `max_header_bytes` is enforced here, not by the buffer filling up.
        let over = data.len() >= max_head;
        let full = buf.is_full();
        let eof = io.client.eof();
        let parsed = if complete_hint || full || over || eof {
            self.head.parse(data, &limits)
        } else if request_line_too_long(data, limits.max_uri) {
            Err(HttpError::UriTooLong)
        } else {
            Ok(false)
        };
        match parsed {
            Ok(true) if self.head.len > max_head => {
                self.head_scanned = 0;
                self.begin_error(ctx, now);
                self.reject(HttpError::HeadTooLarge, ctx, now)
            }
            Ok(true) => {
                self.head_scanned = 0;
                self.begin_request(ctx, now)
            }
            Ok(false) if full || over => {
                self.begin_error(ctx, now);
                self.reject(HttpError::HeadTooLarge, ctx, now)
            }
            // The client gave up half-way through a head (possibly after
            // pipelined requests that were all answered): no request to
            // answer, so close without a 400, as nginx does.
            Ok(false) if eof => self.close(ctx, now),
            Ok(false) => {
                if matches!(self.phase(), Phase::Idle) {
                    // First bytes of a new head: the header timer starts.
                    let at = now.saturating_add(ctx.timeouts().header);
                    self.enter(Phase::ReadingHead, at);
                }
                Step::Wait
            }
            Err(e) => {
                self.head_scanned = 0;
                self.begin_error(ctx, now);
                self.reject(e, ctx, now)
            }
        }
    }

    /// Starts the accounting of a request whose head could not be parsed.
    pub(super) fn begin_error(&mut self, ctx: &mut Ctx<'_>, now: Nanos) {
        self.start_exchange(ctx, now);
        self.ex.client_wants = After::Close;
        self.ex.log_target.clear();
        self.ex.log_target.extend_from_slice(b"- -");
    }

    fn start_exchange(&mut self, ctx: &mut Ctx<'_>, now: Nanos) {
        // The request runs on the snapshot current now, to its end; the
        // worker keeps that snapshot while the request is owed.
        ctx.snap = ctx.current;
        self.ex.snapshot = ctx.current.serial;
        Metrics::inc(&ctx.shared.metrics.requests);
        Metrics::inc(&ctx.shared.metrics.inflight);
        ctx.ids.serial += 1;
        let (prefix, rid) = (ctx.ids.prefix, ctx.ids.serial);
        let ex = &mut self.ex;
        ex.ledger = Ledger::Owed;
        ex.start = now;
        ex.method = None;
        ex.minor_version = 1;
        ex.client_wants = After::KeepAlive;
        ex.client_said = After::KeepAlive;
        ex.after = After::KeepAlive;
        ex.extra.clear();
        ex.route = None;
        ex.pool = PoolId::DEFAULT;
        ex.response_timeout = ctx.timeouts().response;
        ex.selection = None;
        ex.ticket = None;
        ex.queue_deadline = Nanos::ZERO;
        ex.attempts = 0;
        ex.retries = 0;
        ex.tried = 0;
        ex.overall_deadline = Nanos::ZERO;
        ex.answer = Answer::Nothing;
        ex.sent_at = now;
        ex.bytes_out = 0;
        ex.response_time_ms = 0;
        ex.client_ip = None;
        ex.consumer = None;
        ex.consumer_name.clear();
        ex.trace = None;
        ex.request_id.clear();
        let _ = write!(ex.request_id, "{prefix:08x}{rid:08x}");
        self.upload.stop();
    }

    fn begin_request(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        self.start_exchange(ctx, now);
        // From here the head is pending in the request buffer.
        self.enter(Phase::Routing { next: 0 }, Nanos::ZERO);
        let config = &ctx.snap.config;
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        // Only an allowed protocol may turn this connection into a tunnel
        // (which no later stage sees); any other offer is dropped and the
        // request forwarded as a plain one (see `http::upgrade`).
        if self
            .head
            .upgrade
            .is_some_and(|u| !upgrade::offers_allowed(u.get(buf), &config.allowed_upgrades))
        {
            self.head.upgrade = None;
        }
        let head = &self.head;
        let peer = self.peer.ip().to_canonical();
        let client_ip = super::preface::resolve_client_ip(peer, &config.trusted_proxies, buf, head);
        let ex = &mut self.ex;
        ex.client_ip = Some(client_ip);
        ex.method = head.method;
        ex.minor_version = head.minor_version;
        if !head.wants_keep_alive() {
            ex.client_said = After::Close;
        }
        if !head.wants_keep_alive() || ctx.draining {
            ex.client_wants = After::Close;
        }
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
        self.begin_trace(ctx, now);
        // With routes, normalization judges the path (and resolves what
        // the raw check refuses); without, the raw check stands.
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let routing = ctx.snap.routes.is_routing();
        if let Err(e) = rules::check(buf, &self.head, routing) {
            return self.reject(e, ctx, now);
        }
        let routed = self.route(ctx);
        if self.redirects_to_https(ctx, routed.is_ok()) {
            return self.redirect_to_https(ctx, now);
        }
        if let Err(e) = routed {
            return self.reject(e, ctx, now);
        }
        self.run_pipeline(ctx, now)
    }

    /// `tls.redirect_http`: a request on the plain listener is sent to the
    /// HTTPS one, except health checks (the path `/health`, or a route
    /// named `health`), which load balancers make over plain HTTP.
    fn redirects_to_https(&self, ctx: &Ctx<'_>, routed: bool) -> bool {
        let on = ctx
            .snap
            .config
            .tls
            .as_ref()
            .is_some_and(|t| t.redirect_http);
        if !on || self.scheme == Scheme::Https {
            return false;
        }
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let path = query::path_of(self.head.path.get(buf));
        let health_route = routed
            && self
                .ex
                .route
                .is_some_and(|r| ctx.snap.routes.policy(r).name == "health");
        path != b"/health" && !health_route
    }

    /// Answers 308 to `https://host[:port]/path?query` (the target as sent).
    fn redirect_to_https(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let head = &self.head;
        // The raw host (checked by `rules::check`: no byte that could end the
        // header line), without its port.
        let host = head.authority.or(head.host).map_or(&[][..], |s| s.get(buf));
        let (host, _) = host::split_port(host);
        let port = ctx
            .snap
            .config
            .tls
            .as_ref()
            .map_or(443, |t| t.listen.port());
        let extra = &mut self.ex.extra;
        extra.clear();
        extra.extend_from_slice(b"Location: https://");
        extra.extend_from_slice(host);
        if port != 443 {
            let _ = write!(extra, ":{port}");
        }
        let path = head.path.get(buf);
        if !path.starts_with(b"/") {
            extra.push(b'/');
        }
        extra.extend_from_slice(path);
        extra.extend_from_slice(b"\r\n");
        if let Some(t) = self.ex.trace.as_deref_mut() {
            t.reply(308, None, "redirected");
        }
        self.reply(308, b"", "text/plain", false, ctx, now)
    }

    /// Picks the request's route (404/405 when none takes it) and, with
    /// routes configured, writes the path to forward into `ex.target`: the
    /// normalized path, rewritten by the route, then the query as sent.
    fn route(&mut self, ctx: &mut Ctx<'_>) -> Result<(), HttpError> {
        let snap = ctx.snap;
        let routes = &*snap.routes;
        if !routes.is_routing() {
            let policy = routes.policy(0);
            self.ex.route = Some(0);
            self.ex.pool = policy.pool;
            self.ex.response_timeout = policy.response.unwrap_or(ctx.timeouts().response);
            if let Some(t) = self.ex.trace.as_deref_mut() {
                // No routes: the target goes as sent, to `default`.
                let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
                let head = &self.head;
                let path = query::path_of(head.path.get(buf));
                let host = head.authority.or(head.host).map_or(&[][..], |s| s.get(buf));
                t.push(TraceStage::Route {
                    route: None,
                    path: text(path),
                    host: text(host),
                    upstream: Some(snap.pool_at(policy.pool).name.clone()),
                    miss: None,
                });
            }
            return Ok(());
        }
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let head = &self.head;
        let normalized = &mut *ctx.scratch;
        let path_len = normalize_target(head.path.get(buf), normalized)
            .map_err(|e| HttpError::BadRequest(e.reason()))?;
        // The host (RFC 9112 §3.2.2: an absolute-form target's authority
        // wins over Host), as routes match it: lower case, no port.
        let host = head.authority.or(head.host).map_or(&[][..], |s| s.get(buf));
        let ex = &mut self.ex;
        host::route_name(host, &mut ex.target);
        let path = match &normalized[..path_len] {
            // `OPTIONS *` asks about the server: routed as its root.
            b"*" => &b"/"[..],
            p => p,
        };
        // A CORS preflight is routed as the request it announces, so a
        // route that takes PUT also answers the preflight for PUT.
        let preflight = ctx.snap.config.pipeline.contains(&Stage::Cors)
            && cors::classify(buf, head) == CorsKind::Preflight;
        let method = match preflight {
            true => head
                .header(buf, b"access-control-request-method")
                .unwrap_or(b""),
            false => head.method_span.get(buf),
        };
        let mut allow = std::mem::take(&mut ex.extra);
        let found = routes.find(&ex.target, path, method, &mut allow);
        ex.extra = allow;
        if let Some(t) = ex.trace.as_deref_mut() {
            let (route, upstream, miss) = match found {
                RouteMatch::NoRoute => (None, None, Some("no-route")),
                RouteMatch::MethodNotAllowed => (None, None, Some("method-not-allowed")),
                RouteMatch::Found { id, .. } => {
                    let policy = routes.policy(id);
                    let upstream = snap.pool_at(policy.pool).name.clone();
                    (Some(policy.name.clone()), Some(upstream), None)
                }
            };
            t.push(TraceStage::Route {
                route,
                path: text(path),
                // `ex.target` holds the host as routes match it until the
                // forwarded path replaces it below.
                host: text(&ex.target),
                upstream,
                miss,
            });
        }
        match found {
            RouteMatch::NoRoute => {
                ex.extra.clear();
                Err(HttpError::NoRoute)
            }
            RouteMatch::MethodNotAllowed => {
                ex.extra.splice(0..0, b"Allow: ".iter().copied());
                ex.extra.extend_from_slice(b"\r\n");
                Err(HttpError::RouteMethodNotAllowed)
            }
            RouteMatch::Found { id, prefix_len } => {
                ex.extra.clear();
                let policy = routes.policy(id);
                ex.route = Some(id);
                ex.pool = policy.pool;
                ex.response_timeout = policy.response.unwrap_or(snap.timeouts.response);
                if &normalized[..path_len] == b"*" {
                    ex.target.clear();
                    ex.target.push(b'*');
                } else {
                    policy.forward_path(&normalized[..path_len], prefix_len, &mut ex.target);
                }
                ex.target.extend_from_slice(&normalized[path_len..]);
                Ok(())
            }
        }
    }

    /// Whether the request has a body (that the client may not have sent
    /// in full yet).
    pub(super) fn has_body(&self) -> bool {
        self.head.framing() != RequestFraming::Empty
    }

    /// Runs the pipeline stages from the phase's `next` until one answers,
    /// parks the request, or the proxy stage starts forwarding.
    fn run_pipeline(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let pipeline = &ctx.snap.config.pipeline;
        loop {
            let Phase::Routing { next } = self.phase_mut() else {
                return Step::Continue;
            };
            // The configuration guarantees the pipeline ends with `proxy`.
            let Some(&stage) = pipeline.get(*next) else {
                return self.reject(HttpError::NoBackend, ctx, now);
            };
            *next += 1;
            match stage {
                // Decided once per request (`Ctx::log_requests`).
                Stage::Logger => {}
                Stage::Cors => {
                    let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
                    let kind = cors::classify(buf, &self.head);
                    let cfg = &ctx.snap.config.cors;
                    cors::write_headers(&mut self.ex.extra, cfg, buf, &self.head, kind);
                    if kind == CorsKind::Preflight {
                        if let Some(t) = self.ex.trace.as_deref_mut() {
                            t.reply(204, None, "preflight");
                        }
                        return self.reply(204, b"", "", false, ctx, now);
                    }
                }
                Stage::Auth => {
                    if let Err(failure) = self.authenticate(ctx) {
                        return self.reject(HttpError::Auth(failure), ctx, now);
                    }
                }
                Stage::RateLimit => {
                    let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
                    let route = self.ex.route.unwrap_or(0);
                    let policy = ctx.snap.routes.policy(route);
                    let source = policy
                        .limit_key
                        .as_ref()
                        .unwrap_or(&ctx.snap.config.rate_limit.key);
                    let caller = rate_limit::Caller {
                        ip: self.client_ip(),
                        consumer: &self.ex.consumer_name,
                    };
                    let (key, keyed) = rate_limit::client_key(
                        &ctx.shared.key_hasher,
                        source,
                        buf,
                        &self.head,
                        &caller,
                    );
                    // A consumer with a limit of their own has it on routes
                    // whose limiter is keyed by consumer.
                    let own = match (source, self.ex.consumer) {
                        (KeySource::Consumer, Some(id)) => {
                            ctx.snap.routes.consumer_limiter(route, id)
                        }
                        _ => None,
                    };
                    let limiter = own.unwrap_or_else(|| ctx.snap.limiter(route));
                    let d = limiter.check(key, now);
                    if self.ex.trace.is_some() {
                        self.trace_rate_limit(source, (key, keyed), limiter, own.is_some(), &d);
                    }
                    // Shadows see what the route's limiter sees (a consumer's
                    // own limit is another limiter) and only count: `d` is
                    // not theirs to change.
                    if let Some(shadows) = ctx.snap.shadows(route).filter(|_| own.is_none()) {
                        let verdicts = shadows.observe(key, now, &d);
                        if let Some(t) = self.ex.trace.as_deref_mut() {
                            t.shadows(&verdicts);
                        }
                    }
                    rate_limit::write_headers(&mut self.ex.extra, &d);
                    let m = &ctx.shared.metrics;
                    match d.verdict {
                        Verdict::Allow => Metrics::inc(&m.limit_allowed),
                        Verdict::Delay(delay) => {
                            Metrics::inc(&m.limit_delayed);
                            let until = now.saturating_add(delay);
                            let next = match self.phase() {
                                Phase::Routing { next } => *next,
                                _ => pipeline.len(),
                            };
                            self.enter(Phase::Parked { until, next }, Nanos::ZERO);
                            return Step::Park { until };
                        }
                        Verdict::Deny => {
                            Metrics::inc(&m.limit_denied);
                            let secs = rate_limit::retry_after_secs(&d);
                            let _ = write!(self.ex.extra, "Retry-After: {secs}\r\n");
                            let err = HttpError::RateLimited {
                                retry_after_secs: secs,
                            };
                            return self.reject(err, ctx, now);
                        }
                    }
                }
                Stage::CircuitBreaker => {
                    if let Err(why) = self.select_backend(Gate::Breaker, ctx, now) {
                        return self.no_backend(why, ctx, now);
                    }
                }
                Stage::Proxy => {
                    if self.ex.selection.is_none() {
                        if let Err(why) = self.select_backend(Gate::Any, ctx, now) {
                            return self.no_backend(why, ctx, now);
                        }
                    }
                    return self.start_forwarding(ctx, now);
                }
            }
        }
    }

    /// Runs the route's `auth`, if it has one: on success the consumer is
    /// known (`ex.consumer`, `ex.consumer_name`) and an API key sent as a
    /// query parameter is dropped from the target to forward; on failure
    /// the `WWW-Authenticate` lines are queued and the reason counted.
    fn authenticate(&mut self, ctx: &mut Ctx<'_>) -> Result<(), AuthFailure> {
        let routes = &*ctx.snap.routes;
        let Some(auth) = self.ex.route.and_then(|r| routes.policy(r).auth.as_ref()) else {
            return Ok(());
        };
        let buf = self.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        let ex = &mut self.ex;
        let result = auth.authenticate(
            buf,
            &self.head,
            &ex.target,
            routes.consumers(),
            crate::algo::clock::unix_secs,
            &mut ex.consumer_name,
        );
        match result {
            Ok(consumer) => {
                ex.consumer = consumer;
                if let Some(KeyPlace::Query(q)) = auth.key_place() {
                    query::remove(&mut ex.target, q);
                }
                if let Some(t) = ex.trace.as_deref_mut() {
                    let name = &ex.consumer_name;
                    t.push(TraceStage::AuthOk {
                        consumer: (!name.is_empty())
                            .then(|| String::from_utf8_lossy(name).into_owned()),
                    });
                }
                Ok(())
            }
            Err((failure, consumer)) => {
                ex.consumer = consumer;
                ex.consumer_name.clear();
                if let Some(t) = ex.trace.as_deref_mut() {
                    t.push(TraceStage::AuthFailed {
                        reason: AuthFailure::REASONS[failure.index()],
                        message: failure.message(),
                        status: failure.status(),
                    });
                }
                Metrics::inc(&ctx.shared.metrics.auth_failures[failure.index()]);
                ex.extra.extend_from_slice(auth.challenge(failure));
                Err(failure)
            }
        }
    }

    /// Chooses the request's backend (see [`crate::upstream::Pool::select`]);
    /// `false` when there is none.
    fn select_backend(&mut self, gate: Gate, ctx: &mut Ctx<'_>, now: Nanos) -> Result<(), Refusal> {
        let seen = self.selection_seen(gate, 0, ctx, now);
        let picked = self.select_avoiding(gate, 0, ctx, now);
        let queued = self.ex.ticket.is_some();
        if picked.is_ok() {
            if let Some(t) = self.ex.ticket.take() {
                t.served(now);
                if let Some(t) = self.ex.trace.as_deref_mut() {
                    t.queue_left(QueueOutcome::Served, now);
                }
            }
        }
        // A queued request's re-checks that fail again are not traced:
        // the queue stage tells how its wait ended.
        if picked.is_ok() || !queued {
            self.trace_selection(seen, picked);
        }
        picked
    }

    /// No backend was chosen (`why`): 503 with the reason, or, when every
    /// backend is at its cap and the upstream has a queue, wait in it
    /// (until a slot frees or `queue.timeout_ms` passes).
    fn no_backend(&mut self, why: Refusal, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let err = match why {
            Refusal::NoBackend => HttpError::NoBackend,
            Refusal::Unhealthy => HttpError::NoHealthyBackend,
            Refusal::AtCap => {
                // The stage that chose the backend runs again on wake-up.
                let stage = match self.phase() {
                    Phase::Routing { next } => next.saturating_sub(1),
                    _ => 0,
                };
                let pool = ctx.pool(self.ex.pool);
                let deadline = self.ex.queue_deadline;
                match (pool.queue, self.ex.ticket.is_some()) {
                    (Some(q), false) => match pool.waiting.enter(q.max, now) {
                        Some(t) => {
                            self.ex.ticket = Some(t);
                            if let Some(t) = self.ex.trace.as_deref_mut() {
                                t.queue_entered(now);
                            }
                            let deadline = now.saturating_add(Nanos::from_millis(q.timeout_ms));
                            self.ex.queue_deadline = deadline;
                            self.wait_in_queue(deadline, stage, now);
                            // The worker puts it in its wake-up order once.
                            return Step::Queue {
                                until: self.queue_recheck(),
                            };
                        }
                        None => {
                            Metrics::inc(&pool.waiting.full);
                            if let Some(t) = self.ex.trace.as_deref_mut() {
                                t.queue_left(QueueOutcome::Full, now);
                            }
                            HttpError::AtCapacity
                        }
                    },
                    (Some(_), true) if now < deadline => {
                        // Still waiting: only its re-check timer is renewed.
                        self.wait_in_queue(deadline, stage, now);
                        return Step::Park {
                            until: self.queue_recheck(),
                        };
                    }
                    (Some(_), true) => {
                        if let Some(t) = self.ex.ticket.take() {
                            t.timed_out();
                        }
                        if let Some(t) = self.ex.trace.as_deref_mut() {
                            t.queue_left(QueueOutcome::TimedOut, now);
                        }
                        HttpError::QueueTimeout
                    }
                    (None, _) => HttpError::AtCapacity,
                }
            }
        };
        if matches!(err, HttpError::AtCapacity | HttpError::QueueTimeout) {
            // Capacity frees up as requests finish: a second is a fair
            // guess, and keeps well-behaved clients from hammering.
            self.ex.extra.extend_from_slice(b"Retry-After: 1\r\n");
        }
        self.ex.ticket = None;
        self.reject(err, ctx, now)
    }

    /// Enters (or stays in) the queue until `deadline`; the worker also
    /// wakes it when a slot frees on this worker, and it re-checks at least
    /// every [`QUEUE_RECHECK`] for slots freed on other workers.
    fn wait_in_queue(&mut self, deadline: Nanos, next: usize, now: Nanos) {
        let recheck = deadline.min(now.saturating_add(QUEUE_RECHECK));
        self.enter(Phase::Queued { recheck, next }, Nanos::ZERO);
    }

    /// When a queued request looks again by itself.
    fn queue_recheck(&self) -> Nanos {
        match self.phase() {
            Phase::Queued { recheck, .. } => *recheck,
            _ => Nanos::ZERO,
        }
    }

    /// A slot may have freed: a queued request looks again at its next
    /// advance instead of at its re-check time.
    pub fn wake(&mut self) {
        if let Phase::Queued { recheck, .. } = self.phase_mut() {
            *recheck = Nanos::ZERO;
        }
    }

    /// [`Session::select_backend`] never choosing a backend in the `avoid`
    /// mask (a retry's earlier tries).
    pub(super) fn select_avoiding(
        &mut self,
        gate: Gate,
        avoid: u64,
        ctx: &mut Ctx<'_>,
        now: Nanos,
    ) -> Result<(), Refusal> {
        let key = PickKey {
            client_hash: client_hash(self.client_ip()),
            now,
        };
        let shared = ctx.shared;
        let pool = ctx.pool(self.ex.pool);
        let selection = pool.select_avoiding(&key, now, gate, avoid, &mut |e| match e {
            PoolEvent::Mode(mode) => shared.selection_event(now, mode),
            PoolEvent::Probe(id) => shared.probe_event(pool.table.get(id), now),
        });
        self.ex.gate = gate;
        self.ex.selection = Some(selection?);
        Ok(())
    }

    /// Answers with a gateway-made error.
    pub(super) fn reject(&mut self, err: HttpError, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let m = &ctx.shared.metrics;
        match err {
            HttpError::RateLimited { .. } => Metrics::inc(&m.rate_limited),
            HttpError::NoBackend => Metrics::inc(&m.circuit_broken),
            _ => Metrics::inc(&m.errors),
        }
        if let Some(allow) = err.allow() {
            self.ex.extra.extend_from_slice(b"Allow: ");
            self.ex.extra.extend_from_slice(allow.as_bytes());
            self.ex.extra.extend_from_slice(b"\r\n");
        }
        if let Some(t) = self.ex.trace.as_deref_mut() {
            t.reply(err.status(), Some(err.message()), err.verdict());
        }
        let mut body = std::mem::take(ctx.scratch);
        error_body(&mut body, err, &self.ex.request_id);
        let close = err.closes_connection();
        let step = self.reply(err.status(), &body, "application/json", close, ctx, now);
        *ctx.scratch = body;
        step
    }

    /// Queues a gateway-made response and enters `Replying`; any backend
    /// connection is dropped (its state is unknown, so never pooled).
    fn reply(
        &mut self,
        status: u16,
        body: &[u8],
        content_type: &str,
        force_close: bool,
        ctx: &mut Ctx<'_>,
        now: Nanos,
    ) -> Step {
        self.forget_response();
        self.note_retries();
        // The rest of the stream can be read as the next request only if
        // this request has no body still in flight.
        let close =
            force_close || self.has_body() || self.ex.client_wants == After::Close || ctx.draining;
        if self.phase().head_pending() {
            let n = self.head.len;
            if let Some(b) = self.req.as_mut() {
                b.consume(n);
            }
        }
        let after = if close {
            After::Close
        } else {
            After::KeepAlive
        };
        self.ex.answer = Answer::Final(status);
        self.ex.after = after;
        self.ex.note_trace_id();
        // Anything still queued for the client is whole interim heads
        // (a reply comes only before a final head is forwarded); once the
        // first of their bytes is on the wire the rest must follow, or the
        // client reads a torn head. Unstarted ones are dropped.
        if self.to_client.pos == 0 {
            self.to_client.clear();
        } else {
            self.to_client.discard_sent();
        }
        write_local(
            &mut self.to_client.bytes,
            &LocalReply {
                status,
                body,
                content_type,
                request_id: &self.ex.request_id,
                extra: &self.ex.extra,
                close,
                head_only: self.ex.method == Some(Method::Head),
            },
        );
        self.enter(
            Phase::Replying(after),
            now.saturating_add(ctx.timeouts().idle),
        );
        Step::Release { reusable: false }
    }

    /// Drops whatever the backend sent for this exchange (its connection
    /// is being released).
    pub(super) fn forget_response(&mut self) {
        if let Some(b) = self.resp.as_mut() {
            b.consume(b.len());
        }
        self.resp_fwd = 0;
    }

    fn on_replying(&mut self, after: After, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        if !self.to_client.is_flushed() {
            return Step::Wait;
        }
        self.settle(ctx, now);
        match after {
            After::KeepAlive => self.enter_idle(ctx, now),
            After::Close => self.enter_closing(ctx, now),
        }
        Step::Continue
    }

    /// Back to waiting for the next request on a kept-alive connection.
    pub(super) fn enter_idle(&mut self, ctx: &Ctx<'_>, now: Nanos) {
        self.to_client.clear();
        self.to_backend.clear();
        self.enter(Phase::Idle, now.saturating_add(ctx.timeouts().idle));
    }

    /// Flush what is queued, then send our FIN and linger.
    pub(super) fn enter_closing(&mut self, ctx: &Ctx<'_>, now: Nanos) {
        self.enter(Phase::Closing, now.saturating_add(ctx.timeouts().idle));
    }

    fn on_closing(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        if !self.to_client.is_flushed() {
            return Step::Wait;
        }
        if io.client.eof() || self.client_is_done() {
            // Nothing unread can be left behind, so closing sends a FIN,
            // never a reset that could destroy the response: no need to
            // shut down, wait for the client's FIN and read it (a
            // syscall and a wake-up fewer per connection, as nginx does).
            return self.close(ctx, now);
        }
        self.enter(Phase::Lingering, now.saturating_add(ctx.timeouts().linger));
        Step::Shut(super::session::Peer::Client)
    }

    /// The client said this request was its last (`Connection: close`, or
    /// HTTP/1.0 without keep-alive), sent no body and nothing after it: it
    /// will send nothing more. Plain HTTP only; TLS owes its close_notify.
    fn client_is_done(&self) -> bool {
        self.ex.client_said == After::Close
            && self.scheme == Scheme::Http
            && !self.has_body()
            && self.req.as_ref().is_none_or(|b| b.is_empty())
    }

    /// Finishes a request's accounting: access log, metrics, and the
    /// selection (its in-flight lease and any unused breaker permit are
    /// released by dropping it). Idempotent.
    pub(super) fn settle(&mut self, ctx: &mut Ctx<'_>, now: Nanos) {
        if self.ex.ledger != Ledger::Owed {
            return;
        }
        self.ex.ledger = Ledger::Settled;
        let client = self.client_ip();
        let ex = &mut self.ex;
        let m = &ctx.shared.metrics;
        Metrics::dec(&m.inflight);
        let status = ex.logged_status();
        m.count_status(status);
        let duration_us = now.saturating_sub(ex.start).0 / 1000;
        m.latency.observe_us(duration_us);
        if let Some(stats) = ex.route.and_then(|r| ctx.snap.route_stats.get(r)) {
            stats.record(status, duration_us);
        }
        if let Some(stats) = ex
            .consumer
            .and_then(|c| ctx.snap.consumer_stats.get(c.index()))
        {
            stats.record(status);
        }
        let selection = ex.selection.take();
        ex.ticket = None;
        if ex.trace.is_some() {
            self.finish_trace(status, ctx, now);
        }
        let ex = &mut self.ex;
        if ctx.log_requests() {
            ctx.snap.routes.redact_keys(&mut ex.log_target);
            let backend = selection
                .as_ref()
                .map(|s| s.entry().name.as_str())
                .unwrap_or("-");
            ctx.log.record(&Entry {
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

    /// Ends the connection: accounting now, the slot at the end of the
    /// worker's loop iteration.
    pub fn close(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        self.settle(ctx, now);
        self.forget_response();
        self.enter(Phase::Closed, Nanos::ZERO);
        Step::Close
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
    pub fn touch(&mut self, timeouts: &super::Timeouts, now: Nanos) {
        let d = match self.phase() {
            // The head deadline was set when the request was sent.
            Phase::Proxying {
                req: super::ReqSide::Sent,
                resp: super::RespSide::AwaitingHead,
            } => return,
            // The route's `backend_response_ms` (the default's without one).
            Phase::Proxying { .. } => self.ex.response_timeout,
            Phase::Tunnelling => timeouts.idle,
            _ => return,
        };
        self.rearm(now.saturating_add(d));
    }
}
