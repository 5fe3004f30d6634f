//! One event-loop worker: a `mio::Poll`, its listener, a slab of client
//! connections, a slab of backend sockets, the upstream pools and the
//! timers. The worker does the I/O and executes what each connection's
//! sans-IO [`Session`] asks for; it holds no protocol logic.
//!
//! Files: `accept.rs` (the listener), `drive.rs` (pumping bytes, advancing
//! sessions, executing steps), `upstream.rs` (backend sockets and idle
//! pools), `timers.rs` (parked requests, the deadline sweep), `spares.rs`
//! (buffers and per-request vectors kept between requests).
//!
//! Invariants:
//! - Readiness is edge-triggered and drained until `WouldBlock`; a full
//!   buffer pauses reading without dropping the edge (see
//!   [`crate::transport::Side`]).
//! - Every socket is registered once for read and write; what a connection
//!   waits on is decided in software by its phase, so a slow peer costs no
//!   wake-ups (edges only fire on change).
//! - A closed connection stays in its slab slot (phase `Closed`) until the
//!   end of the loop iteration (`reap`), so no caller holds a stale index.
//! - The clock is read once per loop iteration; timeouts are swept every
//!   [`SWEEP_EVERY`] (coarse, O(connections) per sweep, nothing per request).
//! - Control messages are drained before socket events each iteration, so a
//!   switch acknowledged to the admin applies to every later request.

mod accept;
mod drive;
mod spares;
mod timers;
mod upstream;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::{Events, Poll, Waker};
use slab::Slab;

use crate::algo::balance::Balancer;
use crate::algo::limit::RateLimiter;
use crate::algo::Nanos;
use crate::conn::{RequestIds, Session, Timeouts};
use crate::pipeline::access_log::AccessLog;
use crate::route::RouteSet;
use crate::shared::Shared;
use crate::token;
use crate::transport::Side;
use crate::upstream::{Pool, PoolId};
pub use upstream::{UpState, Upstream};

use accept::Acceptor;
use spares::Spares;
use timers::Timers;

/// How often deadlines are checked.
pub const SWEEP_EVERY: Nanos = Nanos::from_millis(50);

/// After our write side is shut, how long we keep reading (and discarding)
/// so the kernel does not answer unread input with a reset that would
/// destroy the response we just sent (the "lingering close").
pub const LINGER: Nanos = Nanos::from_millis(2000);

/// Sent to a worker by the control loop (then the worker's waker is woken).
pub enum WorkerMsg {
    /// Use this rate limiter in this slot (0: the top-level limiter;
    /// `r + 1`: route `r`'s) for the next requests.
    SetLimiter(usize, Arc<dyn RateLimiter>),
    /// Use this balancer for the next requests to this upstream.
    SetBalancer(PoolId, Arc<dyn Balancer>),
    /// Stop accepting, finish in-flight requests within `grace`, then exit.
    Shutdown {
        /// How long in-flight requests may take.
        grace: Nanos,
    },
}

impl std::fmt::Debug for WorkerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerMsg::SetLimiter(slot, l) => write!(f, "SetLimiter({slot}, {})", l.spec().name()),
            WorkerMsg::SetBalancer(id, b) => {
                write!(f, "SetBalancer({}, {})", id.0, b.spec().name())
            }
            WorkerMsg::Shutdown { grace } => write!(f, "Shutdown({grace:?})"),
        }
    }
}

/// One accepted client connection: its socket side and its session.
#[derive(Debug)]
struct Client {
    /// Unique per worker, so stale timer entries can be told apart after
    /// the slab slot is reused.
    serial: u64,
    /// The client socket.
    side: Side,
    /// The protocol state.
    session: Session,
    /// The backend socket attached (upstream slab index).
    upstream: Option<usize>,
}

/// What a worker lends a session while it advances (see [`crate::conn::Ctx`]).
struct Sinks {
    timeouts: Timeouts,
    log: AccessLog,
    /// The logger stage is configured and the access log is open.
    log_requests: bool,
    ids: RequestIds,
    /// Reused for reply bodies.
    scratch: Vec<u8>,
}

/// A worker, built on the spawning thread and run on its own.
pub struct Worker {
    id: usize,
    poll: Poll,
    /// The plain listener, then the HTTPS one when `tls` is configured.
    acceptors: Vec<Acceptor>,
    clients: Slab<Client>,
    ups: Slab<Upstream>,
    pools: Vec<Pool>,
    shared: Arc<Shared>,
    routes: Arc<RouteSet>,
    limiters: Vec<Arc<dyn RateLimiter>>,
    rx: Receiver<WorkerMsg>,
    now: Nanos,
    timers: Timers,
    spares: Spares,
    sinks: Sinks,
    shutdown_at: Option<Nanos>,
    /// Closed connections whose slots are released at the end of the
    /// loop iteration.
    to_remove: Vec<usize>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("clients", &self.clients.len())
            .field("upstreams", &self.ups.len())
            .finish()
    }
}

/// What a worker needs to start.
pub struct WorkerParts {
    /// Worker number (for ids and logs).
    pub id: usize,
    /// Its bound, non-blocking listener.
    pub listener: std::net::TcpListener,
    /// Its HTTPS listener and the TLS state, when `tls` is configured.
    pub tls_listener: Option<(std::net::TcpListener, Arc<crate::tls::TlsServer>)>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// The routes (shared by all workers).
    pub routes: Arc<RouteSet>,
    /// Initial rate limiters by slot (see [`crate::conn::Ctx::limiters`];
    /// shared by all workers).
    pub limiters: Vec<Arc<dyn RateLimiter>>,
    /// Initial balancers, one per upstream in [`Shared::upstreams`] order
    /// (shared by all workers).
    pub balancers: Vec<Arc<dyn Balancer>>,
    /// Control messages.
    pub rx: Receiver<WorkerMsg>,
}

impl Worker {
    /// Creates the poll, registers the listener and the waker. Returns the
    /// worker and the waker the control loop uses after sending a message.
    pub fn new(parts: WorkerParts) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), token::WAKER)?);
        let mut acceptors = vec![Acceptor::new(&poll, parts.listener, None)?];
        if let Some((l, tls)) = parts.tls_listener {
            acceptors.push(Acceptor::new(&poll, l, Some(tls))?);
        }
        let cfg = &parts.shared.config;
        let ms = Nanos::from_millis;
        let timeouts = Timeouts::from_config(cfg, LINGER);
        let log = AccessLog::open(&cfg.access_log)?;
        let log_requests = log.enabled() && cfg.pipeline.contains(&crate::pipeline::Stage::Logger);
        let buffer_size = cfg.limits.max_header_bytes.max(16 * 1024);
        let rid_prefix = {
            use std::hash::BuildHasher;
            parts.shared.key_hasher.hash_one(parts.id) as u32
        };
        let pools = parts
            .shared
            .upstreams
            .iter()
            .zip(parts.balancers)
            .map(|(u, b)| Pool::new(u.id, u.table.clone(), b))
            .collect();
        let worker = Worker {
            id: parts.id,
            poll,
            acceptors,
            clients: Slab::with_capacity(1024),
            ups: Slab::with_capacity(256),
            pools,
            now: parts.shared.clock_now(),
            spares: Spares::new(buffer_size, ms(cfg.tuning.pool_trim_ms)),
            shared: parts.shared,
            routes: parts.routes,
            limiters: parts.limiters,
            rx: parts.rx,
            timers: Timers::default(),
            sinks: Sinks {
                timeouts,
                log,
                log_requests,
                ids: RequestIds {
                    prefix: rid_prefix,
                    serial: 0,
                },
                scratch: Vec::with_capacity(256),
            },
            shutdown_at: None,
            to_remove: Vec::new(),
        };
        Ok((worker, waker))
    }

    /// Runs until shut down and drained.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.now = self.shared.clock_now();
            self.drain_messages();
            for ev in events.iter() {
                match ev.token() {
                    token::WAKER => {}
                    t if t == token::LISTENER || t == token::TLS_LISTENER => {
                        for a in self.acceptors.iter_mut().filter(|a| a.token == t) {
                            a.pending = true;
                        }
                    }
                    t => self.dispatch(t, ev),
                }
            }
            self.reap();
            for a in 0..self.acceptors.len() {
                if self.acceptors[a].pending {
                    self.accept(a);
                }
            }
            self.run_timers();
            self.reap();
            if let Some(at) = self.shutdown_at {
                if self.clients.is_empty() || self.now >= at {
                    break;
                }
            }
        }
        let open: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for ci in open {
            self.abort(ci);
        }
        self.reap();
        let ups: Vec<usize> = self.ups.iter().map(|(i, _)| i).collect();
        for u in ups {
            self.close_upstream(u);
        }
        self.sinks.log.flush();
        // This worker's buffers leave with it.
        self.spares.publish(&self.shared.metrics, (0, 0));
        debug_assert!(self.clients.is_empty() && self.ups.is_empty());
        Ok(())
    }

    /// Releases the slots of connections closed during this iteration.
    fn reap(&mut self) {
        for ci in self.to_remove.drain(..) {
            if self.clients.get(ci).is_some_and(|c| c.session.is_closed()) {
                let mut c = self.clients.remove(ci);
                forget(self.poll.registry(), c.side.transport.tcp());
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let mut next = self.timers.next_wake();
        for a in self.acceptors.iter().filter(|a| a.pending) {
            next = next.min(a.paused_until);
        }
        // Wake at least once a second even when idle, to re-read the clock.
        let now = self.shared.clock_now();
        next.saturating_sub(now)
            .to_duration()
            .min(Duration::from_secs(1))
    }

    fn drain_messages(&mut self) {
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                WorkerMsg::SetLimiter(slot, l) => {
                    if let Some(old) = self.limiters.get_mut(slot) {
                        *old = l;
                    }
                }
                WorkerMsg::SetBalancer(id, b) => {
                    if let Some(pool) = self.pools.get_mut(id.index()) {
                        pool.balancer = b;
                    }
                }
                WorkerMsg::Shutdown { grace } => self.begin_shutdown(grace),
            }
        }
    }

    fn draining(&self) -> bool {
        self.shutdown_at.is_some()
    }

    fn begin_shutdown(&mut self, grace: Nanos) {
        if self.shutdown_at.is_some() {
            return;
        }
        self.shutdown_at = Some(self.now.saturating_add(grace));
        for a in &mut self.acceptors {
            a.stop(&self.poll);
        }
        let all: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for ci in all {
            let s = &self.clients[ci].session;
            // Idle keep-alive connections, ones still in their TLS
            // handshake, and ones only lingering after their last response
            // have nothing left to deliver.
            use crate::conn::Phase;
            if s.is_idle() || matches!(s.phase(), Phase::Lingering | Phase::Handshaking) {
                self.abort(ci);
            }
        }
    }
}

/// Drops a socket's registration just before the socket itself is dropped.
/// Closing an fd that was never duplicated removes it from the epoll set,
/// so on Linux the `epoll_ctl(DEL)` would be one wasted syscall per
/// connection; elsewhere we deregister explicitly.
pub(super) fn forget(registry: &mio::Registry, source: &mut impl mio::event::Source) {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        let _ = registry.deregister(source);
    }
}

impl Shared {
    /// `now` on the shared epoch.
    pub fn clock_now(&self) -> Nanos {
        use crate::algo::Clock;
        self.clock.now()
    }
}
