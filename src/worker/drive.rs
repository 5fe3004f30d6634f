//! Driving one connection: pump bytes between its sockets and its session's
//! buffers, advance the session, execute the steps it returns — until
//! nothing moves.

use mio::event::Event;
use mio::Token;

use super::Worker;
use crate::conn::{Ctx, IoView, Peer, Session, Step};
use crate::metrics::Metrics;
use crate::token::{self, Target};
use crate::transport::{Fill, Nothing};

/// Bound on state-machine steps per event for one connection; hitting it
/// means a bug, and the connection is closed rather than spinning a core.
const MAX_DRIVE_STEPS: usize = 10_000;

impl Worker {
    pub(super) fn dispatch(&mut self, t: Token, ev: &Event) {
        match token::decode(t) {
            Target::Client(ci) => {
                if let Some(c) = self.clients.get_mut(ci) {
                    c.side.ready.update(ev);
                    self.drive(ci);
                }
            }
            Target::Upstream(u) => {
                let Some(up) = self.ups.get_mut(u) else {
                    return;
                };
                up.side.ready.update(ev);
                match up.owner {
                    Some(ci) => self.drive(ci),
                    None => self.on_idle_upstream_event(u),
                }
            }
        }
    }

    /// Runs the connection until it makes no progress.
    pub(super) fn drive(&mut self, ci: usize) {
        for _ in 0..MAX_DRIVE_STEPS {
            if self.clients[ci].held.is_closed() {
                return;
            }
            let mut progress = self.pump_client_in(ci);
            // A request whose bytes were read after a reload was
            // acknowledged must run on the new snapshot, even when they
            // arrived while this connection was still being driven (the
            // messages are otherwise drained once per loop iteration).
            if !self.rx.is_empty() {
                self.drain_messages();
                if self.clients[ci].held.is_closed() {
                    return;
                }
            }
            progress |= self.advance(ci);
            progress |= self.pump_upstream(ci);
            progress |= self.advance(ci);
            progress |= self.pump_client_out(ci);
            if !progress {
                return;
            }
            if let Some(session) = self.clients[ci].held.get_mut() {
                let timeouts = &self.snaps.for_pin(session.pinned()).timeouts;
                session.touch(timeouts, self.now);
            }
        }
        log::error!(
            "worker {}: connection {ci} exceeded {MAX_DRIVE_STEPS} steps in phase {}; closing",
            self.id,
            self.clients[ci].held.phase_name()
        );
        Metrics::inc(&self.shared.metrics.errors);
        self.abort(ci);
    }

    /// Advances the session and executes its steps until it waits; returns
    /// whether anything changed. A resting session has nothing to do until
    /// bytes come (`pump_client_in` wakes it), unless its socket ended.
    fn advance(&mut self, ci: usize) -> bool {
        let mut progress = false;
        for _ in 0..MAX_DRIVE_STEPS {
            let c = &self.clients[ci];
            let ended = c.side.seen.eof() || c.side.seen.failed();
            if c.held.is_closed() || (c.held.get().is_none() && !ended) {
                return progress;
            }
            let io = self.io_view(ci);
            let step = self.with_session(ci, |s, ctx, now| s.advance(&io, ctx, now));
            if step == Step::Wait {
                return progress;
            }
            progress = true;
            self.execute(ci, step);
        }
        progress
    }

    /// A due timer of connection `ci` (see `Session::on_timer`).
    pub(super) fn on_timer(&mut self, ci: usize) {
        if self.clients[ci].held.is_closed() || self.close_resting(ci) {
            return;
        }
        let io = self.io_view(ci);
        let step = self.with_session(ci, |s, ctx, now| s.on_timer(&io, ctx, now));
        self.execute(ci, step);
    }

    /// Closes connection `ci` from outside its protocol (shutdown, a bug).
    pub(super) fn abort(&mut self, ci: usize) {
        if self.clients[ci].held.is_closed() || self.close_resting(ci) {
            return;
        }
        let step = self.with_session(ci, |s, ctx, now| s.close(ctx, now));
        self.execute(ci, step);
    }

    /// Ends connection `ci` if it rests, without waking its session (a
    /// sweep expiring thousands of idle connections takes no session for
    /// each); returns whether it did. Every timeout of a resting phase
    /// closes, and a shutdown closes what rests.
    fn close_resting(&mut self, ci: usize) -> bool {
        if !self.clients[ci].held.close_resting() {
            return false;
        }
        Metrics::dec(&self.shared.metrics.connections_open);
        self.to_remove.push(ci);
        true
    }

    /// Runs `f` on connection `ci`'s session (woken if it rests) with a
    /// context lent by the worker.
    #[inline]
    fn with_session<R>(
        &mut self,
        ci: usize,
        f: impl FnOnce(&mut Session, &mut Ctx<'_>, crate::algo::Nanos) -> R,
    ) -> R {
        let Worker {
            clients,
            snaps,
            shared,
            sinks,
            shutdown_at,
            now,
            spares,
            ..
        } = self;
        let session = clients[ci].held.wake(|| spares.session());
        let mut ctx = Ctx {
            shared,
            snap: snaps.for_pin(session.pinned()),
            current: &snaps.current,
            log: &mut sinks.log,
            log_open: sinks.log_open,
            ids: &mut sinks.ids,
            scratch: &mut sinks.scratch,
            draining: shutdown_at.is_some(),
        };
        f(session, &mut ctx, *now)
    }

    /// What connection `ci`'s sockets saw.
    #[inline]
    fn io_view(&mut self, ci: usize) -> IoView {
        let c = &self.clients[ci];
        let client = c.side.seen;
        let client_handshaking = c.side.transport.is_handshaking();
        let upstream = c.upstream.map(|u| self.upstream_view(u));
        IoView {
            client,
            client_handshaking,
            upstream,
        }
    }

    /// Does what the session asked.
    fn execute(&mut self, ci: usize, step: Step) {
        match step {
            Step::Wait | Step::Continue => {}
            Step::Connect { fresh, .. } => self.attach(ci, fresh),
            Step::Release { reusable } => {
                self.detach(ci, reusable);
                self.queue.slot_freed();
            }
            Step::Park { until } => {
                let serial = self.clients[ci].serial;
                self.timers.park(until, ci, serial);
            }
            Step::Queue { until } => {
                let serial = self.clients[ci].serial;
                self.timers.park(until, ci, serial);
                self.queue.join(ci, serial);
            }
            Step::Shut(Peer::Client) => self.clients[ci].side.shut_write(),
            Step::Shut(Peer::Upstream) => {
                if let Some(u) = self.clients[ci].upstream {
                    self.ups[u].side.shut_write();
                }
            }
            Step::Idle => {
                let held = &mut self.clients[ci].held;
                if let Some(s) = held.get_mut() {
                    self.spares.reclaim(s);
                }
                if let Some(s) = held.rest() {
                    self.spares.keep_session(s);
                }
            }
            Step::Close => {
                self.queue.slot_freed();
                self.detach(ci, false);
                if let Some(s) = self.clients[ci].held.get_mut() {
                    self.spares.reclaim(s);
                }
                Metrics::dec(&self.shared.metrics.connections_open);
                self.to_remove.push(ci);
            }
        }
    }

    /// Reads client bytes into the session while its phase wants them.
    fn pump_client_in(&mut self, ci: usize) -> bool {
        let Worker {
            clients, spares, ..
        } = self;
        let c = &mut clients[ci];
        if !c.side.may_read() || c.held.client_fill().is_none() {
            return false;
        }
        // Leaving rest: a session, then a buffer, come from the spares.
        let session = c.held.wake(|| spares.session());
        if session.needs_buffers() {
            spares.lend(session);
        }
        let Some((buf, fill)) = session.client_inbox() else {
            return false;
        };
        let p = c.side.pump_in(buf, fill);
        session.client_read(p.bytes, p.full);
        p.progress
    }

    /// Writes what the session queued for the backend, then reads what the
    /// backend sent while a response (or tunnel) is open.
    fn pump_upstream(&mut self, ci: usize) -> bool {
        let c = &mut self.clients[ci];
        let (Some(u), Some(session)) = (c.upstream, c.held.get_mut()) else {
            return false;
        };
        let side = &mut self.ups[u].side;
        let mut progress = side.pump_out(&mut session.to_backend()).progress;
        if session.wants_upstream_read() && side.may_read() {
            if session.needs_resp_buffer() {
                session.give_resp_buffer(self.spares.buffer());
            }
            if let Some(buf) = session.upstream_inbox() {
                progress |= side.pump_in(buf, Fill::Keep).progress;
            }
        }
        progress
    }

    /// Writes what the session queued for the client.
    fn pump_client_out(&mut self, ci: usize) -> bool {
        let c = &mut self.clients[ci];
        match c.held.get_mut() {
            Some(session) => c.side.pump_out(&mut session.to_client()).progress,
            // What the transport still holds (TLS records) goes out.
            None => c.side.pump_out(&mut Nothing).progress,
        }
    }
}
