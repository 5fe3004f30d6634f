//! What a session does when its deadline passes or its upload meter is due.

use crate::algo::breaker::Outcome;
use crate::algo::Nanos;
use crate::config::resilience::RetryOn;
use crate::http::HttpError;

use super::phase::{Phase, ReqSide, RespSide};
use super::session::{Ctx, IoView, Session, Step};
use super::upload::UploadVerdict;
use super::After;

impl Session {
    /// Called by the worker's timer sweep for a session that
    /// [`Session::is_due`]: judges the request body's rate, then handles a
    /// passed deadline. Returns the step to execute.
    pub fn on_timer(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        if self.upload.is_due(now) {
            let step = self.check_upload_rate(ctx, now);
            if step != Step::Wait {
                return step;
            }
        }
        let d = self.deadline();
        if d != Nanos::ZERO && d <= now {
            return self.on_timeout(io, ctx, now);
        }
        Step::Wait
    }

    /// A deadline passed.
    fn on_timeout(&mut self, _io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        self.rearm(Nanos::ZERO);
        match self.phase() {
            // A PROXY header not complete in time gets no HTTP answer, and
            // an idle keep-alive connection just ends.
            Phase::Handshaking | Phase::Preface | Phase::Idle => self.close(ctx, now),
            Phase::ReadingHead if self.req.as_ref().is_none_or(|b| b.is_empty()) => {
                self.close(ctx, now)
            }
            Phase::ReadingHead => {
                self.begin_error(ctx, now);
                self.reject(HttpError::HeaderTimeout, ctx, now)
            }
            Phase::Proxying {
                req: ReqSide::Sending(scan),
                resp: RespSide::AwaitingHead,
            } if !scan.is_complete() && self.req_fwd == 0 && self.to_backend.is_flushed() => {
                // Everything the client sent is with the backend and the rest
                // of its body never came: the client is slow, not the backend.
                self.client_too_slow(ctx, now)
            }
            Phase::Connecting(_) => {
                let why = RetryOn::ConnectFailure;
                match self.retry(why, Outcome::Failure, ctx, now) {
                    Some(step) => step,
                    None => self.backend_failed(HttpError::GatewayTimeout, ctx, now),
                }
            }
            // A try that outlived `per_try_timeout_ms` counts as a 504.
            Phase::Proxying {
                resp: RespSide::AwaitingHead,
                ..
            } => match self.retry(RetryOn::Status(504), Outcome::Failure, ctx, now) {
                Some(step) => step,
                None => self.backend_failed(HttpError::GatewayTimeout, ctx, now),
            },
            Phase::Routing { .. } | Phase::Parked { .. } | Phase::Queued { .. } | Phase::Closed => {
                Step::Wait
            }
            Phase::Proxying {
                resp: RespSide::Streaming(_),
                ..
            } => {
                // Nothing buffered for the client means the backend went
                // silent mid-body (a backend fault); otherwise the client is
                // not reading, which must not count against the backend.
                let backend_stalled =
                    self.resp.as_ref().is_none_or(|b| b.is_empty()) && self.to_client.is_flushed();
                if backend_stalled {
                    self.count_backend_failure(ctx, now);
                }
                self.close(ctx, now)
            }
            Phase::Proxying { .. }
            | Phase::Tunnelling
            | Phase::Replying(_)
            | Phase::Closing
            | Phase::Lingering => self.close(ctx, now),
        }
    }

    /// A metering window of the request body ended: below
    /// `limits.min_body_bytes_per_sec`, the client is cut off.
    fn check_upload_rate(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let uploading = matches!(
            self.phase(),
            Phase::Connecting(scan)
            | Phase::Proxying { req: ReqSide::Sending(scan), .. } if !scan.is_complete()
        );
        if !uploading {
            self.upload.stop();
            return Step::Wait;
        }
        if self.head.expect_continue && !self.ex.answer.started() {
            // The client rightly waits for `100 Continue` from the backend.
            self.upload.pause();
        }
        let t = ctx.timeouts();
        if self.upload.judge(now, t.body_rate_window, t.min_body_rate) == UploadVerdict::TooSlow {
            log::debug!("request body below limits.min_body_bytes_per_sec; 408");
            return self.client_too_slow(ctx, now);
        }
        Step::Wait
    }

    /// The client, not the backend, is holding the exchange up (its body
    /// stalled or trickles below the minimum rate): 408 if no response has
    /// started, else the connection is cut. The backend connection is
    /// closed, never pooled (it holds part of a request), and its breaker is
    /// not charged.
    fn client_too_slow(&mut self, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        self.release_permit();
        self.upload.stop();
        if self.ex.answer.status().is_some() {
            return self.close(ctx, now);
        }
        self.ex.client_wants = After::Close;
        self.reject(HttpError::BodyTimeout, ctx, now)
    }
}
