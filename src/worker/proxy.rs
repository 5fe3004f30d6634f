//! Forwarding: the request to the backend, the response back, keep-alive
//! reuse of both connections, upgrades to a byte tunnel, and backend faults.
//!
//! Framing is decided by the scanners (`BodyScan`); only bytes a scanner has
//! cleared are forwarded, so whatever follows a message in a buffer (a
//! pipelined request, stray backend bytes) never leaks across it.

use std::net::Shutdown;

use super::Worker;
use crate::algo::breaker::{Change, Outcome};
use crate::conn::{BodyScan, Phase, ReqSide, RespSide};
use crate::http::chunked::ChunkedDecoder;
use crate::http::request::{Method, RequestFraming};
use crate::http::response::ResponseFraming;
use crate::http::rewrite::{
    write_interim, write_request, write_response, ForwardInfo, ResponseInfo,
};
use crate::http::HttpError;
use crate::metrics::{status_class, Metrics};

impl Worker {
    /// The pipeline chose a backend: write the outgoing head, then reuse a
    /// pooled connection or start connecting.
    pub(super) fn start_forwarding(&mut self, ci: usize) {
        let max_body = self.shared.config.limits.max_body_bytes;
        let max_trailer = self.shared.config.limits.max_header_bytes as u32;
        let c = &mut self.conns[ci];
        let Some(backend) = c.ex.backend else {
            return;
        };
        // The address we saw (TCP or PROXY source), not the resolved
        // client: each hop appends its own peer.
        let peer_ip = c.peer_ip();
        let buf = c.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        c.to_backend.clear();
        write_request(
            &mut c.to_backend.bytes,
            buf,
            &c.head,
            &ForwardInfo {
                client_ip: peer_ip,
                request_id: &c.ex.request_id,
                allowed_upgrades: &self.shared.config.allowed_upgrades,
            },
        );
        let scan = match c.head.framing() {
            RequestFraming::Empty => BodyScan::Complete,
            RequestFraming::Length(n) => BodyScan::Length(n),
            RequestFraming::Chunked => {
                BodyScan::Chunked(ChunkedDecoder::new(max_body, max_trailer))
            }
        };
        let n = c.head.len;
        if let Some(b) = c.req.as_mut() {
            b.consume(n);
        }
        c.head_pending = false;
        c.req_fwd = 0;
        c.ex.sent_at = self.now;
        if c.ex.has_body && self.deadlines.min_body_rate > 0 {
            c.upload.start(self.now, self.deadlines.body_rate_window);
        }
        let b = self.shared.backends.get(backend);
        b.begin_inflight();
        c.ex.backend_inflight = Some(backend);
        Metrics::inc(&b.stats.requests);
        Metrics::inc(&self.shared.metrics.proxied);
        self.attach(ci, scan, false);
    }

    /// Gives connection `ci` a backend socket: pooled unless `fresh`.
    fn attach(&mut self, ci: usize, scan: BodyScan, fresh: bool) {
        let backend = self.conns[ci].ex.backend.unwrap_or(0);
        if !fresh {
            if let Some(u) = self.checkout_idle(backend, ci) {
                let c = &mut self.conns[ci];
                c.upstream = Some(u);
                c.phase = Phase::Proxying {
                    req: ReqSide::Sending(scan),
                    resp: RespSide::AwaitingHead,
                };
                c.deadline = self.now.saturating_add(self.deadlines.response);
                return;
            }
        }
        match self.connect(backend, ci) {
            Ok(u) => {
                let c = &mut self.conns[ci];
                c.upstream = Some(u);
                c.phase = Phase::Connecting(scan);
                c.deadline = self.now.saturating_add(self.deadlines.connect);
            }
            Err(e) => {
                log::debug!("connect to backend {backend} failed at once: {e}");
                self.backend_failed(ci, HttpError::BadGateway("backend connection failed"));
            }
        }
    }

    pub(super) fn on_connecting(&mut self, ci: usize) -> bool {
        let mut progress = self.scan_request(ci);
        let Some(u) = self.conns[ci].upstream else {
            return progress;
        };
        match self.connect_result(u) {
            None => {}
            Some(true) => {
                let c = &mut self.conns[ci];
                let Phase::Connecting(scan) = std::mem::replace(&mut c.phase, Phase::Closing)
                else {
                    return progress;
                };
                c.phase = Phase::Proxying {
                    req: ReqSide::Sending(scan),
                    resp: RespSide::AwaitingHead,
                };
                c.deadline = self.now.saturating_add(self.deadlines.response);
                progress = true;
            }
            Some(false) => {
                self.backend_failed(ci, HttpError::BadGateway("backend connection refused"));
                progress = true;
            }
        }
        progress
    }

    /// Clears newly arrived request body bytes for forwarding.
    fn scan_request(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let scan = match &mut c.phase {
            Phase::Connecting(s) => s,
            Phase::Proxying {
                req: ReqSide::Sending(s),
                ..
            } => s,
            _ => return false,
        };
        let Some(buf) = c.req.as_ref() else {
            return false;
        };
        if scan.is_complete() || c.req_fwd >= buf.len() {
            return false;
        }
        match scan.scan(&buf.data()[c.req_fwd..]) {
            Ok(n) => {
                c.req_fwd += n;
                n > 0
            }
            Err(e) => {
                log::debug!("bad chunked request body: {e:?}");
                let err = match e {
                    crate::http::chunked::ChunkError::BodyTooLarge => HttpError::PayloadTooLarge,
                    _ => HttpError::BadRequest("invalid chunked body"),
                };
                self.abort_request(ci, err);
                true
            }
        }
    }

    /// The request turned out invalid mid-body: the backend has seen part of
    /// it, so its connection is dropped; the client gets the error if no
    /// response has started, else the connection is cut.
    fn abort_request(&mut self, ci: usize, err: HttpError) {
        self.release_permit(ci);
        if self.conns[ci].ex.response_started {
            self.close(ci);
        } else {
            self.conns[ci].ex.client_keep_alive = false;
            self.reject(ci, err);
        }
    }

    pub(super) fn on_proxying(&mut self, ci: usize) -> bool {
        let mut progress = self.scan_request(ci);
        if !self.conns.contains(ci) || !matches!(self.conns[ci].phase, Phase::Proxying { .. }) {
            return true;
        }
        // Request half: Sending → Sent once every byte is out.
        {
            let c = &mut self.conns[ci];
            if let Phase::Proxying { req, .. } = &mut c.phase {
                if let ReqSide::Sending(scan) = req {
                    if scan.is_complete() && c.to_backend.is_flushed() && c.req_fwd == 0 {
                        *req = ReqSide::Sent;
                        c.upload.stop();
                        progress = true;
                        // The response-head deadline starts now and is not
                        // pushed by progress (see `touch`).
                        c.deadline = self.now.saturating_add(self.deadlines.response);
                    }
                }
            }
            let body_incomplete = matches!(
                &c.phase,
                Phase::Proxying { req: ReqSide::Sending(scan), .. } if !scan.is_complete()
            );
            if c.client_eof && body_incomplete {
                // The client went away in the middle of its request body.
                self.close(ci);
                return true;
            }
        }
        progress |= self.read_response_heads(ci);
        if !self.conns.contains(ci) || !matches!(self.conns[ci].phase, Phase::Proxying { .. }) {
            return true;
        }
        progress |= self.scan_response(ci);
        if !self.conns.contains(ci) || !matches!(self.conns[ci].phase, Phase::Proxying { .. }) {
            return true;
        }
        if self.backend_gone(ci) {
            return true;
        }
        let c = &mut self.conns[ci];
        if let Phase::Proxying { resp, req } = &mut c.phase {
            if let RespSide::Streaming(scan) = resp {
                if scan.is_complete() && c.to_client.is_flushed() && c.resp_fwd == 0 {
                    *resp = RespSide::Complete;
                }
            }
            if matches!(resp, RespSide::Complete) {
                let req_sent = matches!(req, ReqSide::Sent);
                self.finish_exchange(ci, req_sent);
                return true;
            }
        }
        progress
    }

    /// Parses response heads while one is awaited: forwards interim 1xx
    /// heads, switches to a tunnel on 101, and starts streaming on a final one.
    fn read_response_heads(&mut self, ci: usize) -> bool {
        let mut progress = false;
        loop {
            let c = &mut self.conns[ci];
            if !matches!(
                c.phase,
                Phase::Proxying {
                    resp: RespSide::AwaitingHead,
                    ..
                }
            ) {
                return progress;
            }
            let Some(buf) = c.resp.as_ref().filter(|b| !b.is_empty()) else {
                return progress;
            };
            let is_head = c.ex.method == Some(Method::Head);
            match c.resp_head.parse(buf.data(), is_head) {
                Ok(false) => {
                    if buf.is_full() {
                        self.backend_failed(
                            ci,
                            HttpError::BadGateway("backend response head too large"),
                        );
                        return true;
                    }
                    return progress;
                }
                Err(e) => {
                    log::debug!("bad response head from backend: {e:?}");
                    self.backend_failed(ci, HttpError::BadGateway("invalid response from backend"));
                    return true;
                }
                Ok(true) => {}
            }
            c.ex.response_started = true;
            progress = true;
            let status = c.resp_head.status;
            if status == 101 {
                if !c.ex.upgrade {
                    self.backend_failed(ci, HttpError::BadGateway("unexpected 101 from backend"));
                    return true;
                }
                self.forward_final_head(ci, Outcome::Success);
                let c = &mut self.conns[ci];
                c.phase = Phase::Tunnelling;
                c.deadline = self.now.saturating_add(self.deadlines.idle);
                return true;
            }
            if c.resp_head.is_interim() {
                // 1xx (100 Continue, 103 Early Hints): relay to 1.1 clients,
                // then keep waiting for the final head.
                if c.ex.minor_version >= 1 {
                    let data = c.resp.as_ref().map(|b| b.data()).unwrap_or(&[]);
                    if c.to_client.is_flushed() {
                        c.to_client.clear();
                    }
                    write_interim(&mut c.to_client.bytes, data, &c.resp_head);
                }
                let n = c.resp_head.len;
                if let Some(b) = c.resp.as_mut() {
                    b.consume(n);
                }
                continue;
            }
            // Only `failure_statuses` (default 502/503/504) say the backend
            // is down; a plain 500 is the application's own answer.
            let outcome = self.shared.backends.outcome_of(status);
            self.forward_final_head(ci, outcome);
            return true;
        }
    }

    /// Records the outcome, writes the final response head for the client
    /// and sets up the body scan.
    fn forward_final_head(&mut self, ci: usize, outcome: Outcome) {
        let now = self.now;
        let c = &mut self.conns[ci];
        let Some(backend_id) = c.ex.backend else {
            return;
        };
        let backend = self.shared.backends.get(backend_id);
        let latency = now.saturating_sub(c.ex.sent_at);
        c.ex.response_time_ms = latency.as_millis();
        backend.stats.latency.observe_us(latency.0 / 1000);
        let status = c.resp_head.status;
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
            self.record_outcome(ci, outcome);
        }
        let c = &mut self.conns[ci];
        let backend = self.shared.backends.get(backend_id);
        let circuit = backend.breaker.state(now);
        let framing = c.resp_head.framing();
        let req_sent = matches!(
            c.phase,
            Phase::Proxying {
                req: ReqSide::Sent,
                ..
            }
        );
        // A client that half-closed after pipelining still gets an answer
        // to every request it sent in full before its FIN (RFC 9112 §9.6):
        // only when nothing more is buffered is this the last response.
        let client_done = c.client_eof && c.req.as_ref().is_none_or(|b| b.is_empty());
        c.ex.close_after = !c.ex.client_keep_alive
            || framing == ResponseFraming::UntilClose
            || client_done
            || c.draining
            || !req_sent;
        c.ex.status = status;
        let data = c.resp.as_ref().map(|b| b.data()).unwrap_or(&[]);
        if c.to_client.is_flushed() {
            c.to_client.clear();
        }
        write_response(
            &mut c.to_client.bytes,
            data,
            &c.resp_head,
            &ResponseInfo {
                backend: &backend.name,
                algorithm: self.balancer.spec().name(),
                circuit: circuit.as_str(),
                response_time_ms: c.ex.response_time_ms,
                request_id: &c.ex.request_id,
                extra: &c.ex.extra,
                close: c.ex.close_after,
                keep_alive_1_0: c.ex.minor_version == 0 && !c.ex.close_after,
            },
        );
        let n = c.resp_head.len;
        if let Some(b) = c.resp.as_mut() {
            b.consume(n);
        }
        c.resp_fwd = 0;
        let scan = match framing {
            ResponseFraming::Empty => BodyScan::Complete,
            ResponseFraming::Length(n) => BodyScan::Length(n),
            ResponseFraming::Chunked => BodyScan::Chunked(ChunkedDecoder::new(u64::MAX, 64 * 1024)),
            ResponseFraming::UntilClose => BodyScan::UntilClose,
        };
        if let Phase::Proxying { resp, .. } = &mut c.phase {
            *resp = RespSide::Streaming(scan);
        }
    }

    /// Clears newly arrived response body bytes for the client.
    fn scan_response(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let Phase::Proxying {
            resp: RespSide::Streaming(scan),
            ..
        } = &mut c.phase
        else {
            return false;
        };
        let Some(buf) = c.resp.as_ref() else {
            return false;
        };
        if scan.is_complete() || c.resp_fwd >= buf.len() {
            return false;
        }
        match scan.scan(&buf.data()[c.resp_fwd..]) {
            Ok(n) => {
                c.resp_fwd += n;
                n > 0
            }
            Err(e) => {
                log::debug!("bad chunked response body from backend: {e:?}");
                self.count_backend_failure(ci);
                // The head is out: cutting the connection is the only
                // honest way to tell the client the body is incomplete.
                self.close(ci);
                true
            }
        }
    }

    /// Handles a backend that closed or failed; returns whether the
    /// connection changed phase (or closed).
    fn backend_gone(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        if !(c.upstream_eof || c.upstream_failed) {
            return false;
        }
        let Phase::Proxying { resp, .. } = &mut c.phase else {
            return false;
        };
        match resp {
            RespSide::Complete => false,
            // Everything arrived before the close: only reuse is lost.
            RespSide::Streaming(scan) if scan.is_complete() => false,
            RespSide::Streaming(BodyScan::UntilClose) => {
                // Read-until-close body: the close is its end (RFC 9112 §6.3 item 8).
                *resp = RespSide::Streaming(BodyScan::Complete);
                let u = c.upstream.take();
                if let Some(u) = u {
                    self.close_upstream(u);
                }
                true
            }
            RespSide::Streaming(_) => {
                // Only drop the client once everything received is flushed
                // would be nicer, but the body is incomplete: never present
                // it as complete. Cut the connection.
                log::debug!("backend closed mid-response");
                self.count_backend_failure(ci);
                self.close(ci);
                true
            }
            RespSide::AwaitingHead => {
                let nothing_received =
                    c.resp.as_ref().is_none_or(|b| b.is_empty()) && !c.ex.response_started;
                let reused = c.upstream.is_some_and(|u| self.ups[u].reused);
                let retryable = nothing_received
                    && reused
                    && !c.ex.retried
                    && !c.ex.has_body
                    && c.ex.method.is_some_and(Method::is_idempotent);
                if retryable {
                    // A pooled connection the backend had already closed:
                    // replay once on a fresh one (the request had no body).
                    log::debug!("stale pooled connection; retrying on a fresh one");
                    c.ex.retried = true;
                    c.to_backend.pos = 0;
                    c.upstream_eof = false;
                    c.upstream_failed = false;
                    if let Some(u) = c.upstream.take() {
                        self.close_upstream(u);
                    }
                    self.attach(ci, BodyScan::Complete, true);
                } else {
                    self.backend_failed(ci, HttpError::BadGateway("backend closed the connection"));
                }
                true
            }
        }
    }

    /// Both halves are done: account, reuse or close each connection.
    fn finish_exchange(&mut self, ci: usize, req_sent: bool) {
        // The whole response arrived: the deferred success verdict.
        self.record_outcome(ci, Outcome::Success);
        let c = &mut self.conns[ci];
        let stray = c.resp.as_ref().is_some_and(|b| !b.is_empty());
        let backend_reusable = req_sent
            && !stray
            && !c.upstream_eof
            && !c.upstream_failed
            && c.resp_head.backend_keeps_alive();
        if let Some(u) = c.upstream.take() {
            self.release_upstream(u, backend_reusable);
        }
        self.end_request(ci);
        let c = &mut self.conns[ci];
        c.upstream_eof = false;
        c.upstream_failed = false;
        if c.ex.close_after || !req_sent {
            self.enter_closing(ci);
        } else {
            self.enter_reading_head(ci);
        }
    }

    pub(super) fn on_tunnelling(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let Some(u) = c.upstream else {
            self.close(ci);
            return true;
        };
        if c.upstream_failed {
            self.close(ci);
            return true;
        }
        let mut progress = false;
        let up = &mut self.ups[u];
        // Propagate each half-close once the bytes before it are through.
        if c.client_eof && c.req.as_ref().is_none_or(|b| b.is_empty()) && !up.write_shut {
            let _ = up.sock.shutdown(Shutdown::Write);
            up.write_shut = true;
            progress = true;
        }
        if c.upstream_eof
            && c.resp.as_ref().is_none_or(|b| b.is_empty())
            && c.to_client.is_flushed()
            && !c.client_shut
        {
            let _ = c.client.shutdown(Shutdown::Write);
            c.client_shut = true;
            progress = true;
        }
        if c.client_shut && up.write_shut {
            self.end_request(ci);
            self.close(ci);
            return true;
        }
        progress
    }

    /// The backend failed before a response reached the client: count it
    /// against the breaker and answer `err`; after the head went out, cut
    /// the connection instead.
    pub(super) fn backend_failed(&mut self, ci: usize, err: HttpError) {
        self.count_backend_failure(ci);
        let c = &mut self.conns[ci];
        if c.ex.status != 0 {
            self.close(ci);
            return;
        }
        c.ex.client_keep_alive = c.ex.client_keep_alive && !c.ex.has_body;
        self.reject(ci, err);
    }

    /// Feeds a failure to the backend's breaker and counters (once).
    pub(super) fn count_backend_failure(&mut self, ci: usize) {
        let c = &self.conns[ci];
        let Some(id) = c.ex.backend else {
            return;
        };
        // Counted once: while the permit is held, or (no breaker stage)
        // before any response reached the client.
        if c.ex.permit.is_some() || c.ex.status == 0 {
            Metrics::inc(&self.shared.backends.get(id).stats.failures);
        }
        self.record_outcome(ci, Outcome::Failure);
    }

    /// Hands the request's breaker permit (if any) back with a verdict,
    /// logging any state change.
    fn record_outcome(&mut self, ci: usize, outcome: Outcome) {
        let now = self.now;
        let c = &mut self.conns[ci];
        let (Some(p), Some(id)) = (c.ex.permit.take(), c.ex.backend) else {
            return;
        };
        match self.shared.backends.get(id).breaker.record(p, outcome, now) {
            Some(Change::Moved(t)) => self.shared.circuit_event(id, t, now),
            Some(Change::TripSuppressed) => self.shared.trip_suppressed(id, now),
            None => {}
        }
    }

    /// Gives back an unused breaker permit.
    pub(super) fn release_permit(&mut self, ci: usize) {
        let c = &mut self.conns[ci];
        if let (Some(p), Some(id)) = (c.ex.permit.take(), c.ex.backend) {
            self.shared.backends.get(id).breaker.release(p);
        }
    }
}
