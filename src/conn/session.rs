//! The sans-IO session of one client connection: its buffers, its phase and
//! deadline, the request in progress, and what it asks the worker to do.
//!
//! The session never touches a socket, the slab or the poll. The worker
//! pumps bytes between sockets and the session's buffers (through
//! [`Session::client_inbox`] and the [`Outbox`] views), tells it what the
//! sockets saw ([`IoView`]), and executes the [`Step`]s that
//! [`Session::advance`] and [`Session::on_timer`] return. So every
//! transition can be driven in a unit test or a fuzzer with a fake view.
//!
//! Invariants:
//! - The phase and its deadline change together, in `Session::enter`.
//! - Whatever choosing a backend took (breaker permit, in-flight count) is a
//!   guard in the exchange ([`crate::upstream::Selection`]): dropping it
//!   releases both, so no path leaks either.
//! - Only bytes a body scanner cleared (`req_fwd`, `resp_fwd`) are offered
//!   to the peer, so a message is never forwarded past its framing.

use crate::http::rewrite::Scheme;
use std::net::{IpAddr, SocketAddr};

use crate::algo::{BackendId, Nanos};
use crate::http::head::{HeaderSpan, Span};
use crate::http::request::RequestHead;
use crate::http::response::ResponseHead;
use crate::pipeline::access_log::AccessLog;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::transport::{Fill, Outbox, Seen};
use crate::upstream::{Pool, PoolId};

use super::buffer::Buffer;
use super::exchange::Exchange;
use super::phase::Phase;
use super::upload::UploadMeter;

/// Bytes queued for one peer that are not part of a buffered body: a
/// rewritten head or a gateway-made reply. Kept after sending until the
/// exchange moves on, so a request can be replayed on a fresh connection.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// How many have been written.
    pub pos: usize,
}

impl Outgoing {
    /// Bytes still to write.
    pub fn pending(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    /// Whether everything has been written.
    pub fn is_flushed(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Drops the bytes already written, keeping the rest at the front.
    pub fn discard_sent(&mut self) {
        self.bytes.drain(..self.pos.min(self.bytes.len()));
        self.pos = 0;
    }

    /// Forgets the content (keeps the allocation).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.pos = 0;
    }
}

/// The growable vectors of a session's per-request state (outgoing heads,
/// pipeline headers, header indices), emptied but with their capacity:
/// what [`Session::blank`] keeps while it forgets everything else.
#[derive(Debug, Default)]
struct Scratch {
    bytes: [Vec<u8>; 7],
    headers: [Vec<HeaderSpan>; 2],
    spans: [Vec<Span>; 2],
}

/// What a session keeps while it rests between requests (an idle
/// keep-alive connection, or a new one before its first byte): its peer,
/// its scheme, what it awaits and until when. See [`Session::resting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resting {
    peer: SocketAddr,
    scheme: Scheme,
    awaiting: Awaiting,
    deadline: Nanos,
}

/// The phases a session may rest in: a new connection's first (the
/// handshake included: the transport runs it once bytes come), and those
/// that wait for the first byte of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaiting {
    /// `Phase::Handshaking` (a new TLS connection).
    Handshake,
    /// `Phase::Preface`.
    Preface,
    /// `Phase::ReadingHead`.
    Head,
    /// `Phase::Idle`.
    Next,
}

impl Resting {
    /// A new connection from `peer`, reached over `scheme`, that awaits
    /// `awaiting` until `deadline`.
    pub fn new(peer: SocketAddr, scheme: Scheme, awaiting: Awaiting, deadline: Nanos) -> Resting {
        Resting {
            peer,
            scheme,
            awaiting,
            deadline,
        }
    }

    /// When it times out.
    #[inline]
    pub fn deadline(&self) -> Nanos {
        self.deadline
    }

    /// The name of the phase it rests in (for logs).
    pub fn phase_name(&self) -> &'static str {
        self.awaiting.phase().name()
    }
}

impl Awaiting {
    /// The phase a session resting this way resumes in.
    fn phase(self) -> Phase {
        match self {
            Awaiting::Handshake => Phase::Handshaking,
            Awaiting::Preface => Phase::Preface,
            Awaiting::Head => Phase::ReadingHead,
            Awaiting::Next => Phase::Idle,
        }
    }
}

/// Timeouts and body-rate settings, converted once to `Nanos`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// `timeouts.connect_ms`.
    pub connect: Nanos,
    /// `timeouts.header_read_ms`.
    pub header: Nanos,
    /// `timeouts.handshake_ms` (default `header_read_ms`).
    pub handshake: Nanos,
    /// `timeouts.backend_response_ms`.
    pub response: Nanos,
    /// `timeouts.idle_ms`.
    pub idle: Nanos,
    /// How long we read and discard after our FIN.
    pub linger: Nanos,
    /// `limits.min_body_bytes_per_sec` (0: off).
    pub min_body_rate: u64,
    /// Its averaging window (`tuning.body_rate_window_ms`).
    pub body_rate_window: Nanos,
}

impl Timeouts {
    /// The timeouts `cfg` sets, converted; `linger` is the lingering-close
    /// period after our FIN.
    pub fn from_config(cfg: &crate::config::Config, linger: Nanos) -> Timeouts {
        let ms = Nanos::from_millis;
        Timeouts {
            connect: ms(cfg.timeouts.connect_ms),
            header: ms(cfg.timeouts.header_read_ms),
            handshake: ms(cfg
                .timeouts
                .handshake_ms
                .unwrap_or(cfg.timeouts.header_read_ms)),
            response: ms(cfg.timeouts.backend_response_ms),
            idle: ms(cfg.timeouts.idle_ms),
            linger,
            min_body_rate: cfg.limits.min_body_bytes_per_sec,
            body_rate_window: ms(cfg.tuning.body_rate_window_ms),
        }
    }
}

/// Request ids: a per-worker prefix and a counter.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIds {
    /// Distinguishes workers (hash of the worker number).
    pub prefix: u32,
    /// Requests started so far.
    pub serial: u64,
    /// Draws which requests `trace.sample_per_million` traces.
    pub sampler: crate::trace::Sampler,
}

/// Everything a session may consult or feed while it advances: shared
/// state, the algorithms this worker uses, and per-worker sinks.
pub struct Ctx<'a> {
    /// Metrics, events, the key hasher: what outlives configurations.
    pub shared: &'a Shared,
    /// The snapshot this session's request runs on: the one current when
    /// its head was parsed (the current one between requests).
    pub snap: &'a Snapshot,
    /// The snapshot a request starting now runs on.
    pub current: &'a Snapshot,
    /// The access log (used only when the logger stage is configured).
    pub log: &'a mut AccessLog,
    /// Whether the access log is open (the snapshot's pipeline decides
    /// whether a request is logged).
    pub log_open: bool,
    /// Request-id source.
    pub ids: &'a mut RequestIds,
    /// A reusable buffer for reply bodies.
    pub scratch: &'a mut Vec<u8>,
    /// The worker is shutting down: no new request may start.
    pub draining: bool,
}

impl Ctx<'_> {
    /// Upstream pool `id` of the request's snapshot.
    #[inline]
    pub fn pool(&self, id: PoolId) -> &Pool {
        self.snap.pool_at(id)
    }

    /// The timeouts of the request's snapshot.
    #[inline]
    pub fn timeouts(&self) -> &Timeouts {
        &self.snap.timeouts
    }

    /// Whether this request is written to the access log.
    #[inline]
    pub fn log_requests(&self) -> bool {
        self.log_open && self.snap.logs_requests()
    }
}

/// Where the backend connection is in its life, as the session sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// A non-blocking connect is in progress.
    Connecting,
    /// The connect failed.
    Refused,
    /// Established; `reused` if it served a request before (so it may be
    /// a stale pooled connection).
    Ready {
        /// Taken from the idle pool.
        reused: bool,
    },
}

/// What the session sees of the backend connection attached to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamView {
    /// Its life-cycle.
    pub attach: Attach,
    /// What its reads and writes saw.
    pub seen: Seen,
}

/// What the session sees of its sockets: no socket, only what they saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoView {
    /// The client side.
    pub client: Seen,
    /// The client's TLS handshake is still going on.
    pub client_handshaking: bool,
    /// The backend side, while one is attached.
    pub upstream: Option<UpstreamView>,
}

/// Which side a step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The client socket.
    Client,
    /// The attached backend socket.
    Upstream,
}

/// What the worker must do after the session advanced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed: wait for I/O or a timer.
    Wait,
    /// The state moved: pump and advance again.
    Continue,
    /// Attach a connection to `backend` of `pool` (a pooled one unless
    /// `fresh`), discarding any attached one. An immediate failure is
    /// reported by attaching none: the session then sees `Connecting`
    /// without an upstream.
    Connect {
        /// The pool.
        pool: PoolId,
        /// The backend in it.
        backend: BackendId,
        /// Never reuse a pooled connection (a replay after a stale one).
        fresh: bool,
    },
    /// Detach the backend connection: back to its pool if `reusable`,
    /// else closed.
    Release {
        /// It finished a response cleanly and may serve another.
        reusable: bool,
    },
    /// Wake this session at `until` (a request held by the leaky bucket).
    Park {
        /// When.
        until: Nanos,
    },
    /// The request starts waiting for a backend with room: wake it at
    /// `until` (its deadline, or its first re-check; later re-checks are
    /// `Park`s) or as soon as this worker frees an in-flight slot, in
    /// arrival order.
    Queue {
        /// The latest wake-up.
        until: Nanos,
    },
    /// Send our FIN to this peer.
    Shut(Peer),
    /// Take the request buffers and per-request vectors back: the
    /// connection is idle with nothing buffered.
    Idle,
    /// Close the connection; its accounting is done. The slot is released
    /// at the end of the worker's loop iteration.
    Close,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct Session {
    /// The connection's peer: the TCP peer, or the source its PROXY
    /// protocol header named.
    pub peer: SocketAddr,
    /// How the client reached us (`X-Forwarded-Proto`).
    pub scheme: Scheme,
    /// State. Entered only through `Session::enter` (with its deadline);
    /// the conn module mutates sub-states in place through it.
    pub(super) phase: Phase,
    /// When the current phase times out (`Nanos::ZERO`: never).
    deadline: Nanos,
    /// Client → backend bytes (request heads and bodies).
    pub(super) req: Option<Buffer>,
    /// Backend → client bytes (response bodies).
    pub(super) resp: Option<Buffer>,
    /// Bytes at the front of `req` cleared for the backend.
    pub(super) req_fwd: usize,
    /// Bytes at the front of `resp` cleared for the client.
    pub(super) resp_fwd: usize,
    /// Heads and replies for the client.
    pub(super) to_client: Outgoing,
    /// The rewritten request head for the backend.
    pub(super) to_backend: Outgoing,
    /// The current request.
    pub(super) ex: Exchange,
    /// Parsed request head (spans into `req`).
    pub(super) head: RequestHead,
    /// Parsed response head (spans into `resp`).
    pub(super) resp_head: ResponseHead,
    /// How far `req` has been searched for the end of a head.
    pub(super) head_scanned: usize,
    /// The request body's delivery rate (`limits.min_body_bytes_per_sec`).
    pub(super) upload: UploadMeter,
}

impl Session {
    /// A new connection from `peer`, in `first` (`ReadingHead`, or
    /// `Preface` when a PROXY header must come first) until `deadline`.
    pub fn new(peer: SocketAddr, first: Phase, deadline: Nanos) -> Session {
        Session {
            peer,
            scheme: Scheme::Http,
            phase: first,
            deadline,
            req: None,
            resp: None,
            req_fwd: 0,
            resp_fwd: 0,
            to_client: Outgoing::default(),
            to_backend: Outgoing::default(),
            ex: Exchange::default(),
            head: RequestHead::default(),
            resp_head: ResponseHead::default(),
            head_scanned: 0,
            upload: UploadMeter::default(),
        }
    }

    /// The current phase.
    #[inline]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The serial of the snapshot the request in flight runs on; `None`
    /// between requests (the next one takes the current snapshot).
    #[inline]
    pub fn pinned(&self) -> Option<u64> {
        (self.ex.ledger == super::Ledger::Owed).then_some(self.ex.snapshot)
    }

    /// The backend the request in flight was given (its address, TLS and
    /// long-lived state), for the worker's connect.
    #[inline]
    pub fn selected_backend(&self) -> Option<&crate::backend::Backend> {
        self.ex.selection.as_ref().map(|s| s.entry())
    }

    /// When the current phase times out (`Nanos::ZERO`: never).
    #[inline]
    pub fn deadline(&self) -> Nanos {
        self.deadline
    }

    /// Enters `phase` with its `deadline`: the only place either changes
    /// with a phase (inactivity timers are pushed by [`Session::touch`]).
    #[inline]
    pub(super) fn enter(&mut self, phase: Phase, deadline: Nanos) {
        self.phase = phase;
        self.deadline = deadline;
    }

    /// Re-arms the current phase's timer (a sub-state moved on).
    #[inline]
    pub(super) fn rearm(&mut self, deadline: Nanos) {
        self.deadline = deadline;
    }

    /// The phase, for transitions that move a sub-state in place.
    #[inline]
    pub(super) fn phase_mut(&mut self) -> &mut Phase {
        &mut self.phase
    }

    /// Whether the session is over (its slot is about to be released).
    #[inline]
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the session's timer or upload meter is due at `now`.
    #[inline]
    pub fn is_due(&self, now: Nanos) -> bool {
        (self.deadline != Nanos::ZERO && self.deadline <= now) || self.upload.is_due(now)
    }

    /// The connection's peer address (canonical: IPv4-mapped IPv6 as IPv4):
    /// what the gateway appends to `X-Forwarded-For`.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }

    /// The client IP of the current request: the peer, or what a trusted
    /// proxy's `X-Forwarded-For` says (`crate::http::client_ip`).
    pub fn client_ip(&self) -> IpAddr {
        self.ex.client_ip.unwrap_or_else(|| self.peer_ip())
    }

    /// Whether the connection sits between requests with nothing buffered
    /// and nothing left to send.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle | Phase::ReadingHead)
            && self.req.as_ref().is_none_or(Buffer::is_empty)
            && self.to_client.is_flushed()
    }

    /// Whether the session holds no request buffer (it was idle), so the
    /// worker must hand it one before reading.
    #[inline]
    pub fn needs_buffers(&self) -> bool {
        self.req.is_none()
    }

    /// Takes a request buffer (leaving idle).
    pub fn give_buffers(&mut self, req: Buffer) {
        self.req = Some(req);
    }

    /// Hands back both buffers (either may be absent): idle, or closing.
    pub fn take_buffers(&mut self) -> (Option<Buffer>, Option<Buffer>) {
        (self.req.take(), self.resp.take())
    }

    /// What survives of this session while it rests between requests, if
    /// it may rest now: it awaits a head (or a PROXY header) with no
    /// buffer, nothing to send, no request owed and nothing chosen for one.
    /// Everything else a session holds is per request (see
    /// `h1::start_exchange`), so [`Session::resume`] from this value is the
    /// same connection.
    pub fn resting(&self) -> Option<Resting> {
        let awaiting = match self.phase {
            Phase::Preface => Awaiting::Preface,
            Phase::ReadingHead => Awaiting::Head,
            Phase::Idle => Awaiting::Next,
            _ => return None,
        };
        let settled = self.ex.ledger == super::Ledger::Settled
            && self.ex.selection.is_none()
            && self.ex.ticket.is_none();
        let empty = self.req.is_none()
            && self.resp.is_none()
            && self.to_client.is_flushed()
            && self.to_backend.is_flushed()
            && !self.upload.is_on();
        (settled && empty).then_some(Resting {
            peer: self.peer,
            scheme: self.scheme,
            awaiting,
            deadline: self.deadline,
        })
    }

    /// Forgets everything but the capacity of the per-request vectors, so
    /// the allocation can serve another connection: guards (a breaker
    /// permit, an in-flight lease, a queue ticket) are released here.
    /// Buffers must have been taken back first.
    pub fn blank(&mut self) {
        debug_assert!(self.req.is_none() && self.resp.is_none());
        let s = self.stash_scratch();
        *self = Session::new(self.peer, Phase::Closed, Nanos::ZERO);
        self.restore_scratch(s);
    }

    /// A blank session (no vector capacity yet), for [`Session::resume`].
    pub fn blank_session() -> Session {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Session::new(nowhere, Phase::Closed, Nanos::ZERO)
    }

    /// Becomes the connection `r` describes: on a blank session, or on one
    /// that rested (of this connection or another; what a request leaves
    /// behind is reset when the next one starts, see `h1::start_exchange`).
    pub fn resume(&mut self, r: Resting) {
        self.head_scanned = 0;
        self.req_fwd = 0;
        self.resp_fwd = 0;
        self.peer = r.peer;
        self.scheme = r.scheme;
        self.enter(r.awaiting.phase(), r.deadline);
    }

    /// Whether the backend response needs a buffer before a read.
    #[inline]
    pub fn needs_resp_buffer(&self) -> bool {
        self.resp.is_none()
    }

    /// Takes a response buffer.
    pub fn give_resp_buffer(&mut self, b: Buffer) {
        self.resp = Some(b);
    }

    /// Whether the phase wants client bytes: kept in the request buffer, or
    /// read and discarded (closing). `None` while a closing reply is being
    /// written (the rest of the stream is not ours to read) and once closed.
    #[inline]
    pub fn client_fill(&self) -> Option<Fill> {
        match self.phase {
            Phase::Closing | Phase::Lingering => Some(Fill::Discard),
            Phase::Replying(super::After::Close) | Phase::Closed => None,
            _ => Some(Fill::Keep),
        }
    }

    /// Where client bytes go now (see [`Session::client_fill`]); `None`
    /// also when the session holds no buffer (see [`Session::needs_buffers`]).
    #[inline]
    pub fn client_inbox(&mut self) -> Option<(&mut Buffer, Fill)> {
        let fill = self.client_fill()?;
        self.req.as_mut().map(|b| (b, fill))
    }

    /// `n` client bytes arrived; `full` says reading stopped on a full
    /// buffer (backpressure, not the client's slowness).
    #[inline]
    pub fn client_read(&mut self, n: usize, full: bool) {
        self.upload.count(n);
        if full {
            self.upload.pause();
        }
    }

    /// Where backend bytes go now, if a response (or tunnel) is open.
    #[inline]
    pub fn upstream_inbox(&mut self) -> Option<&mut Buffer> {
        match self.phase {
            Phase::Proxying {
                resp: super::RespSide::AwaitingHead | super::RespSide::Streaming(_),
                ..
            }
            | Phase::Tunnelling => self.resp.as_mut(),
            _ => None,
        }
    }

    /// Whether a backend read is wanted (see [`Session::upstream_inbox`]).
    #[inline]
    pub fn wants_upstream_read(&self) -> bool {
        matches!(
            self.phase,
            Phase::Proxying {
                resp: super::RespSide::AwaitingHead | super::RespSide::Streaming(_),
                ..
            } | Phase::Tunnelling
        )
    }

    /// What is queued for the client.
    #[inline]
    pub fn to_client(&mut self) -> ToClient<'_> {
        ToClient(self)
    }

    /// What is queued for the backend.
    #[inline]
    pub fn to_backend(&mut self) -> ToBackend<'_> {
        ToBackend(self)
    }

    /// Takes the per-request vectors out (cleared).
    fn stash_scratch(&mut self) -> Scratch {
        use std::mem::take;
        self.to_client.clear();
        self.to_backend.clear();
        let mut s = Scratch {
            bytes: [
                take(&mut self.to_client.bytes),
                take(&mut self.to_backend.bytes),
                take(&mut self.ex.extra),
                take(&mut self.ex.log_target),
                take(&mut self.ex.request_id),
                take(&mut self.ex.target),
                take(&mut self.ex.consumer_name),
            ],
            headers: [
                take(&mut self.head.headers),
                take(&mut self.resp_head.headers),
            ],
            spans: [
                take(&mut self.head.connection),
                take(&mut self.resp_head.connection),
            ],
        };
        s.bytes.iter_mut().for_each(Vec::clear);
        s.headers.iter_mut().for_each(Vec::clear);
        s.spans.iter_mut().for_each(Vec::clear);
        s
    }

    /// Puts a set of (empty) per-request vectors back in place of the
    /// current ones, which must be empty (a new session's).
    fn restore_scratch(&mut self, s: Scratch) {
        let Scratch {
            bytes: [to_client, to_backend, extra, log_target, request_id, target, consumer_name],
            headers: [head_headers, resp_headers],
            spans: [head_conn, resp_conn],
        } = s;
        debug_assert!(self.to_client.bytes.is_empty() && self.ex.extra.is_empty());
        self.to_client.bytes = to_client;
        self.to_client.pos = 0;
        self.to_backend.bytes = to_backend;
        self.to_backend.pos = 0;
        self.ex.extra = extra;
        self.ex.log_target = log_target;
        self.ex.request_id = request_id;
        self.ex.target = target;
        self.ex.consumer_name = consumer_name;
        self.head.headers = head_headers;
        self.resp_head.headers = resp_headers;
        self.head.connection = head_conn;
        self.resp_head.connection = resp_conn;
    }
}

/// The client's outbox: queued heads/replies, then the response bytes the
/// scanner cleared (in a tunnel, every buffered byte).
pub struct ToClient<'a>(&'a mut Session);

impl Outbox for ToClient<'_> {
    #[inline]
    fn pending(&self) -> (&[u8], &[u8]) {
        let s = &*self.0;
        let body = match (&s.phase, s.resp.as_ref()) {
            (Phase::Tunnelling, Some(b)) => b.data(),
            (Phase::Proxying { .. }, Some(b)) => &b.data()[..s.resp_fwd],
            _ => &[],
        };
        let head = match s.phase {
            Phase::Parked { .. } | Phase::Queued { .. } | Phase::Connecting(_) => &[][..],
            _ => s.to_client.pending(),
        };
        (head, body)
    }

    #[inline]
    fn sent(&mut self, n: usize) {
        let s = &mut *self.0;
        let cleared = matches!(s.phase, Phase::Proxying { .. }).then_some(&mut s.resp_fwd);
        consume_sent(&mut s.to_client, s.resp.as_mut(), cleared, n);
        s.ex.bytes_out += n as u64;
    }
}

/// The backend's outbox: the rewritten head, then the request body bytes
/// the scanner cleared (in a tunnel, every buffered byte).
pub struct ToBackend<'a>(&'a mut Session);

impl Outbox for ToBackend<'_> {
    #[inline]
    fn pending(&self) -> (&[u8], &[u8]) {
        let s = &*self.0;
        match (&s.phase, s.req.as_ref()) {
            (
                Phase::Proxying {
                    req: super::ReqSide::Sending(_),
                    ..
                },
                b,
            ) => (
                s.to_backend.pending(),
                b.map(|b| &b.data()[..s.req_fwd]).unwrap_or(&[]),
            ),
            (Phase::Tunnelling, b) => (s.to_backend.pending(), b.map(Buffer::data).unwrap_or(&[])),
            _ => (&[], &[]),
        }
    }

    #[inline]
    fn sent(&mut self, n: usize) {
        let s = &mut *self.0;
        let cleared = (!matches!(s.phase, Phase::Tunnelling)).then_some(&mut s.req_fwd);
        consume_sent(&mut s.to_backend, s.req.as_mut(), cleared, n);
    }
}

/// Takes `n` written bytes off an outbox: the head first, then the body
/// (and, outside a tunnel, the body's count of cleared bytes).
fn consume_sent(
    head: &mut Outgoing,
    body: Option<&mut Buffer>,
    cleared: Option<&mut usize>,
    n: usize,
) {
    let from_head = n.min(head.pending().len());
    head.pos += from_head;
    let from_body = n - from_head;
    if let Some(b) = body {
        b.consume(from_body);
    }
    if let Some(c) = cleared {
        *c -= from_body;
    }
}
