//! A scripted world that drives ONE [`Session`] exactly as the worker does
//! (`worker/drive.rs`), with in-memory peers instead of sockets.
//!
//! It is `pub` because the cargo-fuzz target `session` (`fuzz/`) feeds it
//! random event sequences; the unit tests of the session's transitions
//! (`conn/tests.rs`) script it by hand. Nothing here is used in production.
//!
//! What is real and what is fake:
//! - Real: the [`Session`], its [`Buffer`](super::buffer::Buffer)s from a real [`BufferPool`], the
//!   [`Outbox`] views it writes through, the [`Shared`] state, the
//!   [`Snapshot`] (its pool with the backend table, breakers and in-flight
//!   leases, and the rate limiter) and an [`IdleConns`] list as a worker
//!   keeps it, all built from a [`Config`].
//! - Fake: the peers. A [`Remote`] is one end of a TCP connection as the
//!   gateway sees it: the bytes it will send (queued), how its sending half
//!   ends ([`Ending`]: open, FIN, reset), everything it received, our FIN,
//!   and a send window ([`Remote::window`]) that makes writes partial or
//!   block (a peer that stopped reading). A backend connection
//!   ([`UpConn`]) is created on [`Step::Connect`]; [`World::connects`]
//!   scripts whether it is accepted, refused, left pending or fails at once.
//!   Time is [`World::now`], moved only by [`World::advance_to`].
//!
//! The loop shape follows the worker: every event (bytes arrive, a peer
//! closes, a write window opens, time passes) is followed by
//! [`World::drive`], which pumps the client in, advances, pumps the backend,
//! advances, pumps the client out, until nothing moves; time passing runs
//! parked requests and due timers first (`worker/timers.rs`). Readiness is
//! idealised: a side is readable exactly while its peer has something to
//! deliver (bytes or an end), which is what edge-triggered epoll drained to
//! `WouldBlock` amounts to.
//!
//! After every event [`World::check`] asserts the accounting invariants
//! (in-flight leases and the request gauge match the exchange, the phase and
//! its deadline agree); [`World::check_quiet`] adds, once nothing is in
//! flight, that every breaker permit was handed back. Deterministic: no
//! clock, no randomness, no threads.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::algo::breaker::CircuitState;
use crate::algo::{BackendId, Nanos};
use crate::backend::BackendDef;
use crate::config::{AccessLogTarget, Config};
use crate::http::request::{RequestFraming, RequestHead, RequestLimits};
use crate::http::response::{ResponseFraming, ResponseHead};
use crate::pipeline::access_log::AccessLog;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::transport::{Fill, Link, Outbound, Outbox, Seen};
use crate::upstream::IdleConns;

use super::buffer::BufferPool;
use super::exchange::Ledger;
use super::phase::{BodyScan, Phase};
use super::session::UpstreamView;
use super::session::{Attach, Ctx, IoView, Peer, RequestIds, Resting, Session, Step, Timeouts};

/// Bound on drive rounds per event, as in the worker; hitting it is a bug
/// (a livelock), so the sim panics instead of closing.
const MAX_DRIVE_STEPS: usize = 10_000;

/// How a remote end's sending half ends once its queued bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// Still open: more bytes may come.
    #[default]
    Open,
    /// A FIN after the queued bytes.
    Fin,
    /// A reset: queued bytes are lost, reads and writes fail.
    Reset,
}

/// One peer of the gateway, as its socket would show it.
#[derive(Debug)]
pub struct Remote {
    /// Bytes it will send, in order, not yet read by the gateway.
    pub outgoing: VecDeque<u8>,
    /// How its sending half ends once `outgoing` is drained.
    pub ending: Ending,
    /// Every byte the gateway read from it and kept (what a closing
    /// connection reads and discards is not here: it is no request).
    pub sent: Vec<u8>,
    /// Every byte the gateway wrote to it.
    pub received: Vec<u8>,
    /// How many more bytes a write may hand it (its receive window):
    /// `usize::MAX` reads everything, 0 is a peer that stopped reading
    /// (writes block), a small number makes writes partial.
    pub window: usize,
    /// What the gateway's side has seen (as a `transport::Side` records it).
    pub seen: Seen,
}

impl Default for Remote {
    fn default() -> Self {
        Remote {
            outgoing: VecDeque::new(),
            ending: Ending::Open,
            sent: Vec::new(),
            received: Vec::new(),
            window: usize::MAX,
            seen: Seen::default(),
        }
    }
}

/// What one pump did (as `transport::Pumped`).
#[derive(Debug, Clone, Copy, Default)]
struct Pumped {
    bytes: usize,
    progress: bool,
    full: bool,
}

impl Remote {
    /// Queues bytes it sends (ignored after its end).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.ending == Ending::Open {
            self.outgoing.extend(bytes);
        }
    }

    /// It shuts its sending half (a FIN after what is queued).
    pub fn fin(&mut self) {
        if self.ending == Ending::Open {
            self.ending = Ending::Fin;
        }
    }

    /// It resets the connection: what it queued is lost.
    pub fn reset(&mut self) {
        self.ending = Ending::Reset;
        self.outgoing.clear();
    }

    /// Whether it got our FIN.
    pub fn got_fin(&self) -> bool {
        self.seen.outbound == Outbound::Shut
    }

    /// Whether a read would find something (bytes or the end): idealised
    /// edge-triggered readiness.
    fn may_read(&self) -> bool {
        self.seen.link == Link::Open && (!self.outgoing.is_empty() || self.ending != Ending::Open)
    }

    /// `transport::Side::pump_in` over the queued bytes.
    fn pump_in(&mut self, buf: &mut super::buffer::Buffer, fill: Fill) -> Pumped {
        let mut out = Pumped::default();
        if self.seen.link != Link::Open {
            return out;
        }
        loop {
            if buf.is_full() {
                match fill {
                    Fill::Discard => buf.consume(buf.len()),
                    Fill::Keep => {
                        out.full = true;
                        return out;
                    }
                }
            }
            if self.ending == Ending::Reset {
                self.seen.link = Link::Failed;
                out.progress = true;
                return out;
            }
            if self.outgoing.is_empty() {
                if self.ending == Ending::Fin {
                    self.seen.link = Link::Eof;
                    out.progress = true;
                }
                return out;
            }
            let space = buf.space();
            let n = space.len().min(self.outgoing.len());
            for (d, s) in space[..n].iter_mut().zip(self.outgoing.drain(..n)) {
                *d = s;
            }
            if fill == Fill::Keep {
                self.sent.extend_from_slice(&space[..n]);
            }
            buf.fill(n);
            if fill == Fill::Discard {
                buf.consume(n);
            }
            out.bytes += n;
            out.progress = true;
        }
    }

    /// `transport::Side::pump_out`: writes what `out` queued while the
    /// window takes it.
    fn pump_out(&mut self, out: &mut impl Outbox) -> bool {
        let mut progress = false;
        while self.seen.outbound == Outbound::Open {
            let (head, body) = out.pending();
            if head.is_empty() && body.is_empty() {
                break;
            }
            if self.ending == Ending::Reset {
                // EPIPE / ECONNRESET.
                self.seen.outbound = Outbound::Failed;
                return true;
            }
            if self.window == 0 {
                // WouldBlock.
                break;
            }
            let a = head.len().min(self.window);
            let b = body.len().min(self.window - a);
            self.received.extend_from_slice(&head[..a]);
            self.received.extend_from_slice(&body[..b]);
            if self.window != usize::MAX {
                self.window -= a + b;
            }
            out.sent(a + b);
            progress = true;
        }
        progress
    }

    /// `transport::Side::shut_write`.
    fn shut(&mut self) {
        if self.seen.outbound == Outbound::Open {
            self.seen.outbound = Outbound::Shut;
        }
    }
}

/// What the next connect to a backend does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectPlan {
    /// Established at once.
    #[default]
    Accept,
    /// In progress until [`World::connect_done`].
    Pending,
    /// Refused (the session sees `Attach::Refused`).
    Refuse,
    /// `connect()` itself fails: nothing is attached.
    FailAtOnce,
}

/// Where a fake backend connection is in its life (as `worker::UpState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Attached: connecting, refused or established.
    Attached(Attach),
    /// In the idle pool.
    Idle,
    /// Closed by the gateway.
    Closed,
}

/// One fake backend connection.
#[derive(Debug)]
pub struct UpConn {
    /// The backend it goes to.
    pub backend: BackendId,
    /// Its life-cycle.
    pub life: Life,
    /// The backend end.
    pub remote: Remote,
}

/// One attachment of a backend connection to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    /// The connection (index in [`World::ups`]).
    pub up: usize,
    /// How many bytes the backend had received before.
    pub received_at: usize,
    /// How many bytes the backend had sent (and the gateway read) before.
    pub sent_at: usize,
}

/// The world around one session.
pub struct World {
    /// Metrics, events.
    pub shared: Arc<Shared>,
    /// The configuration, compiled (the sim has the `default` pool only).
    pub snap: Arc<Snapshot>,
    /// Idle pooled connections (indices into [`World::ups`]), as a
    /// worker keeps them.
    idle: IdleConns,
    /// Timeouts, as the snapshot converts them.
    pub timeouts: Timeouts,
    log: AccessLog,
    ids: RequestIds,
    scratch: Vec<u8>,
    /// The worker is shutting down.
    pub draining: bool,
    /// The clock.
    pub now: Nanos,
    buffers: BufferPool,
    /// The session under test.
    pub session: Session,
    /// Set while the session rests (`worker::client::Held::Resting`): the
    /// next time it is needed it is resumed from this, as the worker
    /// resumes a spare one. Until then it stays readable for tests.
    resting: Option<Resting>,
    /// The client.
    pub client: Remote,
    /// Every backend connection ever made, in order.
    pub ups: Vec<UpConn>,
    /// The backend connection attached to the session (index in `ups`).
    pub attached: Option<usize>,
    /// How the next connects go (front first; `Accept` when empty).
    pub connects: VecDeque<ConnectPlan>,
    /// When a parked request wakes.
    pub parked_until: Option<Nanos>,
    /// Every step the session returned (but `Wait`), in order.
    pub steps: Vec<Step>,
    /// Where a tunnel began: the backend connection and how many bytes it
    /// had received by then (what follows is raw tunnel data, not HTTP).
    pub tunnel_at: Option<(usize, usize)>,
    /// Every attachment of a backend connection, in time order. What an
    /// exchange sent and received on it is the slice up to its connection's
    /// next attachment (pooled connections serve several requests,
    /// interleaved with other connections).
    pub attachments: Vec<Attachment>,
    /// The client's TLS handshake is still going on (see `World::over_tls`).
    pub handshaking: bool,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("now", &self.now)
            .field("phase", &self.session.phase().name())
            .field("attached", &self.attached)
            .field("ups", &self.ups.len())
            .finish()
    }
}

/// A config for the sim: `backends` fake backends (weight 1, never
/// connected to), access log off, a limiter that never limits, the default
/// timeouts, no minimum body rate (tests that want it set it).
pub fn config(backends: usize) -> Config {
    let mut c = Config::demo();
    c.admin = None;
    c.access_log = AccessLogTarget::Off;
    c.workers = 1;
    c.backends = (0..backends)
        .map(|i| BackendDef {
            name: format!("B{i}"),
            addr: SocketAddr::from(([192, 0, 2, 1], 8000 + i as u16)),
            weight: 1,
            tls: None,
        })
        .collect();
    c.rate_limit.spec = api_gateway_admin::LimitSpec::TokenBucket {
        capacity: 1_000_000,
        refill_per_sec: 1_000_000.0,
    };
    c.limits.min_body_bytes_per_sec = 0;
    c
}

/// Makes `c`'s rate limiter a leaky bucket (a shaper that parks requests),
/// so callers outside the crate need not name the spec type.
pub fn shape(c: &mut Config, capacity: u32, leak_per_sec: f64) {
    c.rate_limit.spec = api_gateway_admin::LimitSpec::LeakyBucket {
        capacity,
        leak_per_sec,
    };
}

/// The client's address in the sim.
pub const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7)),
    40000,
);

impl World {
    /// A world whose client has just connected over TLS, at time 1 s: the
    /// session starts in `Handshaking` (with the handshake deadline) until
    /// [`World::handshake_done`].
    pub fn over_tls(config: Config) -> World {
        let mut w = World::new(config);
        let deadline = w.now.saturating_add(w.timeouts.handshake);
        w.session = Session::new(CLIENT, Phase::Handshaking, deadline);
        w.session.scheme = crate::http::rewrite::Scheme::Https;
        w.handshaking = true;
        w
    }

    /// The client's TLS handshake completes (the transport's doing).
    pub fn handshake_done(&mut self) {
        self.handshaking = false;
        self.event();
    }

    /// A world whose client has just connected, at time 1 s.
    pub fn new(mut config: Config) -> World {
        config.access_log = AccessLogTarget::Off;
        let shared = Arc::new(Shared::new(&config));
        let snap = Arc::new(
            Snapshot::build(config, &shared, None, 0, 0).expect("the sim's routes go to default"),
        );
        let cfg = &snap.config;
        let timeouts = snap.timeouts;
        let log = AccessLog::open(&AccessLogTarget::Off).expect("an access log that is off opens");
        let now = Nanos::from_millis(1000);
        let first = if cfg.proxy_protocol {
            Phase::Preface
        } else {
            Phase::ReadingHead
        };
        let buffers = BufferPool::new(
            cfg.limits
                .max_header_bytes
                .max(crate::worker::MIN_BUFFER_BYTES),
            8,
        );
        let session = Session::new(CLIENT, first, now.saturating_add(timeouts.header));
        crate::metrics::Metrics::inc(&shared.metrics.connections_open);
        World {
            shared,
            snap,
            idle: IdleConns::default(),
            timeouts,
            log,
            ids: RequestIds::default(),
            scratch: Vec::with_capacity(256),
            draining: false,
            now,
            buffers,
            session,
            resting: None,
            client: Remote::default(),
            ups: Vec::new(),
            attached: None,
            connects: VecDeque::new(),
            parked_until: None,
            steps: Vec::new(),
            tunnel_at: None,
            attachments: Vec::new(),
            handshaking: false,
        }
    }

    // ------------------------------------------------------------ events

    /// The client sends `bytes`.
    pub fn client_sends(&mut self, bytes: &[u8]) {
        self.client.push(bytes);
        self.event();
    }

    /// The client shuts its sending half.
    pub fn client_fin(&mut self) {
        self.client.fin();
        self.event();
    }

    /// The client resets the connection.
    pub fn client_reset(&mut self) {
        self.client.reset();
        self.event();
    }

    /// The client's receive window opens by `n` bytes (`usize::MAX`: it
    /// reads everything from now on; 0 stops it reading).
    pub fn client_window(&mut self, n: usize) {
        self.client.window = if n == 0 {
            0
        } else {
            self.client.window.saturating_add(n)
        };
        self.event();
    }

    /// The backend connection that backend events reach: the attached one,
    /// else the most recently pooled idle one.
    fn backend_target(&mut self) -> Option<usize> {
        self.attached
            .or_else(|| self.ups.iter().rposition(|u| u.life == Life::Idle))
    }

    /// The backend sends `bytes` on the attached (or last pooled) connection.
    pub fn backend_sends(&mut self, bytes: &[u8]) {
        if let Some(u) = self.backend_target() {
            self.ups[u].remote.push(bytes);
            self.backend_event(u);
        }
    }

    /// The backend shuts its sending half.
    pub fn backend_fin(&mut self) {
        if let Some(u) = self.backend_target() {
            self.ups[u].remote.fin();
            self.backend_event(u);
        }
    }

    /// The backend resets its connection.
    pub fn backend_reset(&mut self) {
        if let Some(u) = self.backend_target() {
            self.ups[u].remote.reset();
            self.backend_event(u);
        }
    }

    /// The backend's receive window opens by `n` bytes (see `client_window`).
    pub fn backend_window(&mut self, n: usize) {
        if let Some(u) = self.attached {
            let r = &mut self.ups[u].remote;
            r.window = if n == 0 {
                0
            } else {
                r.window.saturating_add(n)
            };
            self.backend_event(u);
        }
    }

    /// A pending connect completes: established if `accept`, else refused.
    pub fn connect_done(&mut self, accept: bool) {
        if let Some(u) = self.attached {
            if self.ups[u].life == Life::Attached(Attach::Connecting) {
                self.ups[u].life = Life::Attached(if accept {
                    Attach::Ready { reused: false }
                } else {
                    Attach::Refused
                });
            }
            self.event();
        }
    }

    /// Puts an established idle connection to backend `backend` in the pool,
    /// as if an earlier request had left it there; `None` if the pool is full.
    pub fn pool_idle(&mut self, backend: BackendId) -> Option<usize> {
        let u = self.ups.len();
        let max = self.snap.config.limits.max_idle_per_backend;
        if !self.idle.push(self.slot(backend), u, max) {
            return None;
        }
        self.ups.push(UpConn {
            backend,
            life: Life::Idle,
            remote: Remote::default(),
        });
        Some(u)
    }

    /// Time passes until `to`: parked requests wake, then due timers fire
    /// (`worker/timers.rs`: the heap, then the deadline sweep).
    pub fn advance_to(&mut self, to: Nanos) {
        if to > self.now {
            self.now = to;
        }
        if self.parked_until.is_some_and(|at| at <= self.now) {
            self.parked_until = None;
            if matches!(self.session.phase(), Phase::Parked { .. }) {
                self.drive();
            }
        }
        if !self.session.is_closed() && self.session.is_due(self.now) {
            let io = self.io_view();
            let partly = self.partly_written();
            let step = self.with_ctx(|s, ctx, now| s.on_timer(&io, ctx, now));
            self.check_not_torn(partly);
            self.note(step);
            self.execute(step);
            self.drive();
        }
        self.check();
    }

    /// Time passes by `d`.
    pub fn advance_by(&mut self, d: Nanos) {
        self.advance_to(self.now.saturating_add(d));
    }

    /// The worker starts shutting down (draining).
    pub fn begin_shutdown(&mut self) {
        self.draining = true;
        if self.session.is_idle() || matches!(self.session.phase(), Phase::Lingering) {
            self.abort();
        }
        self.check();
    }

    fn event(&mut self) {
        self.drive();
        self.check();
    }

    /// An event on backend connection `u`; on a pooled one, anything
    /// readable means it is no longer usable (`on_idle_upstream_event`).
    fn backend_event(&mut self, u: usize) {
        if self.ups[u].life == Life::Idle {
            if self.ups[u].remote.may_read() {
                self.close_up(u);
            }
            self.check();
            return;
        }
        self.event();
    }

    // --------------------------------------------- the worker's drive loop

    /// Runs the connection until it makes no progress (`Worker::drive`).
    pub fn drive(&mut self) {
        for _ in 0..MAX_DRIVE_STEPS {
            if self.session.is_closed() {
                return;
            }
            let mut progress = self.pump_client_in();
            progress |= self.advance();
            progress |= self.pump_upstream();
            progress |= self.advance();
            progress |= self.pump_client_out();
            if !progress {
                return;
            }
            self.session.touch(&self.timeouts, self.now);
        }
        panic!(
            "session exceeded {MAX_DRIVE_STEPS} drive rounds in phase {}",
            self.session.phase().name()
        );
    }

    /// Closes the session from outside its protocol (`Worker::abort`).
    pub fn abort(&mut self) {
        if self.session.is_closed() {
            return;
        }
        let step = self.with_ctx(|s, ctx, now| s.close(ctx, now));
        self.note(step);
        self.execute(step);
    }

    fn advance(&mut self) -> bool {
        let mut progress = false;
        for _ in 0..MAX_DRIVE_STEPS {
            let ended = self.client.seen.eof() || self.client.seen.failed();
            if self.session.is_closed() || (self.resting.is_some() && !ended) {
                return progress;
            }
            let io = self.io_view();
            let partly = self.partly_written();
            let step = self.with_ctx(|s, ctx, now| s.advance(&io, ctx, now));
            self.check_not_torn(partly);
            if step == Step::Wait {
                return progress;
            }
            progress = true;
            self.note(step);
            self.execute(step);
            self.note_tunnel();
        }
        progress
    }

    /// What the client still lacks of a queued head or reply it has part
    /// of (`None` when nothing is partly written).
    fn partly_written(&self) -> Option<Vec<u8>> {
        let o = &self.session.to_client;
        (o.pos > 0 && !o.is_flushed()).then(|| o.pending().to_vec())
    }

    /// A step must never drop the rest of a head the client has part of
    /// (it would read a torn message); closing the connection is fine, the
    /// client sees the cut.
    fn check_not_torn(&self, before: Option<Vec<u8>>) {
        let Some(rest) = before else { return };
        let s = &self.session;
        if s.is_closed() || matches!(s.phase(), Phase::Closing | Phase::Lingering) {
            return;
        }
        assert!(
            s.to_client.pending().starts_with(&rest),
            "a step dropped the rest of a partly written head ({:?})",
            String::from_utf8_lossy(&rest)
        );
    }

    /// Records where the tunnel began, before any tunnel byte is pumped.
    fn note_tunnel(&mut self) {
        if self.tunnel_at.is_none() && matches!(self.session.phase(), Phase::Tunnelling) {
            if let Some(u) = self.attached {
                self.tunnel_at = Some((u, self.ups[u].remote.received.len()));
            }
        }
    }

    fn note(&mut self, step: Step) {
        if step != Step::Wait {
            self.steps.push(step);
        }
    }

    /// How many connections are pooled.
    pub fn idle_count(&self) -> usize {
        self.idle.iter().count()
    }

    /// The long-lived slot of backend `id` (what idle lists are keyed by).
    fn slot(&self, id: BackendId) -> u32 {
        self.snap.backends.get(id).slot
    }

    /// While the session rests, the connection it will serve next is
    /// another one, from `peer` (plain HTTP, between requests): what the
    /// worker does when a spare session that rested serves the next
    /// connection that reads. Nothing is blanked in between.
    pub fn hand_to(&mut self, peer: SocketAddr) {
        let r = self.resting.expect("hand_to: the session rests");
        self.resting = Some(Resting::new(
            peer,
            crate::http::rewrite::Scheme::Http,
            super::session::Awaiting::Next,
            r.deadline(),
        ));
    }

    /// `Held::wake`: a resting session is resumed.
    fn wake(&mut self) {
        if let Some(r) = self.resting.take() {
            self.session.resume(r);
        }
    }

    fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Session, &mut Ctx<'_>, Nanos) -> R) -> R {
        self.wake();
        let mut ctx = Ctx {
            shared: &self.shared,
            snap: &self.snap,
            current: &self.snap,
            log: &mut self.log,
            log_open: false,
            ids: &mut self.ids,
            scratch: &mut self.scratch,
            draining: self.draining,
        };
        f(&mut self.session, &mut ctx, self.now)
    }

    /// What the session's sockets saw.
    pub fn io_view(&self) -> IoView {
        IoView {
            client: self.client.seen,
            client_handshaking: self.handshaking,
            upstream: self.attached.map(|u| {
                let up = &self.ups[u];
                let attach = match up.life {
                    Life::Attached(a) => a,
                    // Not reachable: only attached connections are viewed.
                    Life::Idle | Life::Closed => Attach::Ready { reused: true },
                };
                UpstreamView {
                    attach,
                    seen: up.remote.seen,
                }
            }),
        }
    }

    fn execute(&mut self, step: Step) {
        match step {
            Step::Wait | Step::Continue => {}
            Step::Connect { backend, fresh, .. } => self.attach(backend, fresh),
            Step::Release { reusable } => self.detach(reusable),
            Step::Park { until } | Step::Queue { until } => self.parked_until = Some(until),
            Step::Shut(Peer::Client) => self.client.shut(),
            Step::Shut(Peer::Upstream) => {
                if let Some(u) = self.attached {
                    self.ups[u].remote.shut();
                }
            }
            Step::Idle => {
                self.reclaim();
                self.resting = self.session.resting();
            }
            Step::Close => {
                self.detach(false);
                self.reclaim();
                crate::metrics::Metrics::dec(&self.shared.metrics.connections_open);
            }
        }
    }

    /// `Worker::attach`: a pooled connection unless `fresh`, else a connect
    /// scripted by [`World::connects`].
    fn attach(&mut self, backend: BackendId, fresh: bool) {
        self.detach(false);
        if !fresh {
            while let Some(u) = self.idle.pop(self.slot(backend)) {
                if self.ups[u].remote.may_read() {
                    // The backend closed it (or sent stray bytes) meanwhile.
                    self.ups[u].life = Life::Closed;
                    continue;
                }
                self.ups[u].life = Life::Attached(Attach::Ready { reused: true });
                self.attached = Some(u);
                let r = &self.ups[u].remote;
                self.attachments.push(Attachment {
                    up: u,
                    received_at: r.received.len(),
                    sent_at: r.sent.len(),
                });
                return;
            }
        }
        let attach = match self.connects.pop_front().unwrap_or_default() {
            ConnectPlan::FailAtOnce => return,
            ConnectPlan::Accept => Attach::Ready { reused: false },
            ConnectPlan::Pending => Attach::Connecting,
            ConnectPlan::Refuse => Attach::Refused,
        };
        self.attached = Some(self.ups.len());
        self.attachments.push(Attachment {
            up: self.ups.len(),
            received_at: 0,
            sent_at: 0,
        });
        self.ups.push(UpConn {
            backend,
            life: Life::Attached(attach),
            remote: Remote::default(),
        });
    }

    /// `Worker::detach`: back to the pool if `reusable` (and there is room,
    /// and the worker is not draining), else closed.
    fn detach(&mut self, reusable: bool) {
        let Some(u) = self.attached.take() else {
            return;
        };
        let max = self.snap.config.limits.max_idle_per_backend;
        let backend = self.ups[u].backend;
        if reusable && !self.draining && self.idle.push(self.slot(backend), u, max) {
            self.ups[u].life = Life::Idle;
        } else {
            self.ups[u].life = Life::Closed;
        }
    }

    fn close_up(&mut self, u: usize) {
        if self.ups[u].life == Life::Idle {
            self.idle.remove(self.slot(self.ups[u].backend), u);
        }
        self.ups[u].life = Life::Closed;
    }

    /// `Spares::reclaim`.
    fn reclaim(&mut self) {
        let (req, resp) = self.session.take_buffers();
        for b in [req, resp].into_iter().flatten() {
            self.buffers.put(b);
        }
    }

    fn pump_client_in(&mut self) -> bool {
        if !self.client.may_read() || self.session.client_fill().is_none() {
            return false;
        }
        self.wake();
        if self.session.needs_buffers() {
            let b = self.buffers.get();
            self.session.give_buffers(b);
        }
        let Some((buf, fill)) = self.session.client_inbox() else {
            return false;
        };
        let p = self.client.pump_in(buf, fill);
        self.session.client_read(p.bytes, p.full);
        p.progress
    }

    fn pump_upstream(&mut self) -> bool {
        let Some(u) = self.attached else {
            return false;
        };
        let up = &mut self.ups[u];
        if !matches!(up.life, Life::Attached(Attach::Ready { .. })) {
            return false;
        }
        let mut progress = up.remote.pump_out(&mut self.session.to_backend());
        if self.session.wants_upstream_read() && up.remote.may_read() {
            if self.session.needs_resp_buffer() {
                self.session.give_resp_buffer(self.buffers.get());
            }
            if let Some(buf) = self.session.upstream_inbox() {
                progress |= up.remote.pump_in(buf, Fill::Keep).progress;
            }
        }
        progress
    }

    fn pump_client_out(&mut self) -> bool {
        self.client.pump_out(&mut self.session.to_client())
    }

    // ---------------------------------------------------------- checks

    /// The attached backend connection.
    pub fn upstream(&self) -> Option<&UpConn> {
        self.attached.map(|u| &self.ups[u])
    }

    /// The sum of the backends' in-flight counts.
    pub fn inflight(&self) -> u32 {
        self.snap.backends.iter().map(|b| b.inflight()).sum()
    }

    /// Asserts the invariants that hold after every event:
    /// - the backends' in-flight counts add up to the one lease the
    ///   exchange may hold, and the request gauge to the one request whose
    ///   accounting may be owed (so nothing leaked, nothing was released twice);
    /// - the phase and its deadline agree: zero exactly in the untimed
    ///   phases, otherwise set and not in the past;
    /// - a closed session holds no backend connection and no buffer.
    pub fn check(&self) {
        let s = &self.session;
        let leases = u32::from(s.ex.selection.is_some());
        assert_eq!(
            self.inflight(),
            leases,
            "in-flight leases (phase {})",
            s.phase().name()
        );
        let owed = u64::from(s.ex.ledger == Ledger::Owed);
        let m = &self.shared.metrics;
        assert_eq!(m.inflight.load(Relaxed), owed, "request gauge");
        let settled: u64 = m.status.iter().map(|c| c.load(Relaxed)).sum();
        assert_eq!(
            m.requests.load(Relaxed),
            settled + owed,
            "requests started vs settled"
        );
        let phase = s.phase();
        if phase.untimed() {
            assert_eq!(s.deadline(), Nanos::ZERO, "{} has a deadline", phase.name());
        } else {
            assert_ne!(
                s.deadline(),
                Nanos::ZERO,
                "{} has no deadline",
                phase.name()
            );
            assert!(
                s.deadline() >= self.now,
                "{} deadline {:?} is in the past (now {:?})",
                phase.name(),
                s.deadline(),
                self.now
            );
        }
        if s.is_closed() {
            assert!(self.attached.is_none(), "closed with a backend connection");
            assert!(s.req.is_none() && s.resp.is_none(), "closed with buffers");
            assert_eq!(self.buffers.in_use(), 0, "buffers not returned");
        }
    }

    /// [`World::check`], plus what holds once no request is in flight: no
    /// half-open circuit has its probe permit out (every permit was handed
    /// back). Probing takes and returns a permit, so call it at the end.
    pub fn check_quiet(&self) {
        self.check();
        if self.session.ex.selection.is_some() {
            return;
        }
        for b in self.snap.backends.iter() {
            if b.breaker.state(self.now) == CircuitState::HalfOpen {
                let p = b
                    .breaker
                    .try_acquire(self.now)
                    .unwrap_or_else(|| panic!("{}: the half-open probe permit is stuck", b.name));
                b.breaker.release(p);
            }
        }
    }
}

// ------------------------------------------------------ reading the wire

/// One HTTP message found in a byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request method bytes, or the response status as text.
    pub start: Vec<u8>,
    /// Response status (0 for requests).
    pub status: u16,
    /// How its body was framed (requests: `Empty` is `Length(0)`).
    pub framing: Framing,
    /// The body bytes as on the wire (chunked bodies with their framing).
    pub body: Vec<u8>,
    /// The whole message arrived.
    pub complete: bool,
    /// A response whose head carries the gateway's `x-backend` (forwarded
    /// from a backend, not made by the gateway).
    pub forwarded: bool,
}

/// A body's framing, for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body, or a `Content-Length`.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes (responses).
    UntilClose,
}

/// What followed the parsed messages in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rest {
    /// Nothing.
    Empty,
    /// The start of a head, incomplete.
    Partial,
    /// Bytes that are not a valid head.
    Garbage,
}

fn scan_of(f: Framing) -> BodyScan {
    match f {
        Framing::Length(0) => BodyScan::Complete,
        Framing::Length(n) => BodyScan::Length(n),
        Framing::Chunked => {
            BodyScan::Chunked(crate::http::chunked::ChunkedDecoder::new(u64::MAX, 1 << 20))
        }
        Framing::UntilClose => BodyScan::UntilClose,
    }
}

/// Reads a body of framing `f` from `data`: (bytes it takes, complete).
fn body_len(f: Framing, data: &[u8]) -> Option<(usize, bool)> {
    let mut scan = scan_of(f);
    let n = if scan.is_complete() {
        0
    } else {
        scan.scan(data).ok()?
    };
    Some((n, scan.is_complete()))
}

/// Parses `data` as a sequence of requests (with generous limits), as a
/// backend would read them.
pub fn requests(data: &[u8]) -> (Vec<Message>, Rest) {
    let limits = RequestLimits {
        max_uri: 1 << 20,
        max_body: u64::MAX,
    };
    let mut out = Vec::new();
    let mut at = 0;
    let mut head = RequestHead::default();
    while at < data.len() {
        let rest = &data[at..];
        match head.parse(rest, &limits) {
            Ok(true) => {}
            Ok(false) => return (out, Rest::Partial),
            Err(_) => return (out, Rest::Garbage),
        }
        let framing = match head.framing() {
            RequestFraming::Empty => Framing::Length(0),
            RequestFraming::Length(n) => Framing::Length(n),
            RequestFraming::Chunked => Framing::Chunked,
        };
        let body = &rest[head.len..];
        let Some((n, complete)) = body_len(framing, body) else {
            // An invalid body: kept whole and incomplete, so what was
            // forwarded of it before the error can be compared.
            out.push(Message {
                start: head.method_span.get(rest).to_vec(),
                status: 0,
                framing,
                body: body.to_vec(),
                complete: false,
                forwarded: false,
            });
            return (out, Rest::Garbage);
        };
        out.push(Message {
            start: head.method_span.get(rest).to_vec(),
            status: 0,
            framing,
            body: body[..n].to_vec(),
            complete,
            forwarded: false,
        });
        if !complete {
            return (out, Rest::Empty);
        }
        at += head.len + n;
    }
    (out, Rest::Empty)
}

/// Parses `data` as a sequence of responses to requests (`head_requests[i]`:
/// the i-th was a HEAD), as a client would read them.
pub fn responses(data: &[u8], head_requests: &[bool]) -> (Vec<Message>, Rest) {
    let mut out = Vec::new();
    let mut at = 0;
    let mut head = ResponseHead::default();
    let mut finals = 0;
    while at < data.len() {
        let rest = &data[at..];
        let is_head = head_requests.get(finals).copied().unwrap_or(false);
        match head.parse(rest, is_head) {
            Ok(true) => {}
            Ok(false) => return (out, Rest::Partial),
            Err(_) => return (out, Rest::Garbage),
        }
        let framing = match head.framing() {
            ResponseFraming::Empty => Framing::Length(0),
            ResponseFraming::Length(n) => Framing::Length(n),
            ResponseFraming::Chunked => Framing::Chunked,
            ResponseFraming::UntilClose => Framing::UntilClose,
        };
        let body = &rest[head.len..];
        let Some((n, complete)) = body_len(framing, body) else {
            return (out, Rest::Garbage);
        };
        out.push(Message {
            start: head.status.to_string().into_bytes(),
            status: head.status,
            framing,
            body: body[..n].to_vec(),
            complete,
            forwarded: rest[..head.len]
                .windows(12)
                .any(|w| w.eq_ignore_ascii_case(b"\r\nx-backend:")),
        });
        if !head.is_interim() {
            finals += 1;
        }
        if !complete || head.status == 101 {
            return (out, Rest::Empty);
        }
        at += head.len + n;
    }
    (out, Rest::Empty)
}

/// The statuses of the responses in `data` (interim ones included).
pub fn statuses(data: &[u8]) -> Vec<u16> {
    responses(data, &[]).0.iter().map(|m| m.status).collect()
}
