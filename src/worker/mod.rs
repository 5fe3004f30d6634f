//! One event-loop worker: a `mio::Poll`, its listener, a slab of client
//! connections and a slab of backend sockets.
//!
//! Invariants:
//! - Readiness is edge-triggered and drained until `WouldBlock`; a full
//!   buffer pauses reading without dropping the edge (see [`crate::conn::Ready`]).
//! - Every socket is registered once for read and write; what a connection
//!   waits on is decided in software by its phase, so a slow peer costs no
//!   wake-ups (edges only fire on change).
//! - The clock is read once per loop iteration; timeouts are swept every
//!   [`SWEEP_EVERY`] (coarse, O(connections) per sweep, nothing per request).
//! - Control messages are drained before socket events each iteration, so a
//!   switch acknowledged to the admin applies to every later request.

mod io_steps;
mod preface;
mod proxy;
mod request;
mod upstream;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::algo::balance::Balancer;
use crate::algo::limit::RateLimiter;
use crate::algo::Nanos;
use crate::conn::buffer::{BufferPool, Spares};
use crate::conn::{Conn, Phase};
use crate::metrics::Metrics;
use crate::pipeline::access_log::AccessLog;
use crate::shared::Shared;
use crate::token::{self, Target};
pub use upstream::{UpState, Upstream};

/// How often deadlines are checked.
pub const SWEEP_EVERY: Nanos = Nanos::from_millis(50);

/// After our write side is shut, how long we keep reading (and discarding)
/// so the kernel does not answer unread input with a reset that would
/// destroy the response we just sent (the "lingering close").
pub const LINGER: Nanos = Nanos::from_millis(2000);

/// Bound on state-machine steps per event for one connection; hitting it
/// means a bug, and the connection is closed rather than spinning a core.
const MAX_DRIVE_STEPS: usize = 10_000;

/// Sent to a worker by the control loop (then the worker's waker is woken).
pub enum WorkerMsg {
    /// Use this rate limiter for the next requests.
    SetLimiter(Arc<dyn RateLimiter>),
    /// Use this balancer for the next requests.
    SetBalancer(Arc<dyn Balancer>),
    /// Stop accepting, finish in-flight requests within `grace`, then exit.
    Shutdown {
        /// How long in-flight requests may take.
        grace: Nanos,
    },
}

impl std::fmt::Debug for WorkerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerMsg::SetLimiter(l) => write!(f, "SetLimiter({})", l.spec().name()),
            WorkerMsg::SetBalancer(b) => write!(f, "SetBalancer({})", b.spec().name()),
            WorkerMsg::Shutdown { grace } => write!(f, "Shutdown({grace:?})"),
        }
    }
}

/// Timeouts converted once to `Nanos`.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    connect: Nanos,
    header: Nanos,
    response: Nanos,
    idle: Nanos,
    /// `limits.min_body_bytes_per_sec` (0: off) and its averaging window.
    min_body_rate: u64,
    body_rate_window: Nanos,
    /// How often unused spare buffers are trimmed (`tuning.pool_trim_ms`).
    pool_trim: Nanos,
}

/// A worker, built on the spawning thread and run on its own.
pub struct Worker {
    id: usize,
    poll: Poll,
    listener: Option<TcpListener>,
    conns: Slab<Conn>,
    ups: Slab<Upstream>,
    idle: Vec<Vec<usize>>,
    shared: Arc<Shared>,
    limiter: Arc<dyn RateLimiter>,
    balancer: Arc<dyn Balancer>,
    rx: Receiver<WorkerMsg>,
    now: Nanos,
    serial: u64,
    parked: BinaryHeap<Reverse<(Nanos, usize, u64)>>,
    next_sweep: Nanos,
    accept_pending: bool,
    accept_paused_until: Nanos,
    pool: BufferPool,
    /// Per-request vectors of idle connections, for the next busy one.
    spare: Spares<crate::conn::Scratch>,
    /// When the pool and `spare` are next trimmed of unused spares.
    next_trim: Nanos,
    /// `pool.spare()` and `pool.in_use()` as last added to the shared gauges.
    published_pool: (u64, u64),
    log: AccessLog,
    shutdown_at: Option<Nanos>,
    deadlines: Deadlines,
    scratch: Vec<u8>,
    rid_prefix: u32,
    serial_rid: u64,
    /// The logger stage is configured and the access log is open.
    log_requests: bool,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("conns", &self.conns.len())
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
    /// Shared state.
    pub shared: Arc<Shared>,
    /// Initial rate limiter (shared by all workers).
    pub limiter: Arc<dyn RateLimiter>,
    /// Initial balancer (shared by all workers).
    pub balancer: Arc<dyn Balancer>,
    /// Control messages.
    pub rx: Receiver<WorkerMsg>,
}

impl Worker {
    /// Creates the poll, registers the listener and the waker. Returns the
    /// worker and the waker the control loop uses after sending a message.
    pub fn new(parts: WorkerParts) -> io::Result<(Worker, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), token::WAKER)?);
        parts.listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(parts.listener);
        poll.registry()
            .register(&mut listener, token::LISTENER, Interest::READABLE)?;
        let cfg = &parts.shared.config;
        let ms = Nanos::from_millis;
        let deadlines = Deadlines {
            connect: ms(cfg.timeouts.connect_ms),
            header: ms(cfg.timeouts.header_read_ms),
            response: ms(cfg.timeouts.backend_response_ms),
            idle: ms(cfg.timeouts.idle_ms),
            min_body_rate: cfg.limits.min_body_bytes_per_sec,
            body_rate_window: ms(cfg.tuning.body_rate_window_ms),
            pool_trim: ms(cfg.tuning.pool_trim_ms),
        };
        let log = AccessLog::open(&cfg.access_log)?;
        let log_requests = log.enabled() && cfg.pipeline.contains(&crate::pipeline::Stage::Logger);
        let buffer_size = cfg.limits.max_header_bytes.max(16 * 1024);
        let rid_prefix = {
            use std::hash::BuildHasher;
            parts.shared.key_hasher.hash_one(parts.id) as u32
        };
        let worker = Worker {
            id: parts.id,
            poll,

            listener: Some(listener),
            conns: Slab::with_capacity(1024),
            ups: Slab::with_capacity(256),
            idle: vec![Vec::new(); parts.shared.backends.len()],
            now: parts.shared.clock_now(),
            shared: parts.shared,
            limiter: parts.limiter,
            balancer: parts.balancer,
            rx: parts.rx,
            serial: 0,
            parked: BinaryHeap::new(),
            next_sweep: Nanos::ZERO,
            accept_pending: false,
            accept_paused_until: Nanos::ZERO,
            pool: BufferPool::new(buffer_size, 1024),
            spare: Spares::new(request::MAX_SPARE),
            next_trim: Nanos::ZERO,
            published_pool: (0, 0),
            log,
            shutdown_at: None,
            deadlines,
            scratch: Vec::with_capacity(256),
            rid_prefix,
            serial_rid: 0,
            log_requests,
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
                    token::LISTENER => self.accept_pending = true,
                    token::WAKER => {}
                    t => self.dispatch(t, ev),
                }
            }
            if self.accept_pending {
                self.accept();
            }
            self.run_timers();
            if let Some(at) = self.shutdown_at {
                if self.conns.is_empty() || self.now >= at {
                    break;
                }
            }
        }
        let open: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for ci in open {
            self.close(ci);
        }
        let ups: Vec<usize> = self.ups.iter().map(|(i, _)| i).collect();
        for u in ups {
            self.close_upstream(u);
        }
        self.log.flush();
        // This worker's buffers leave with it.
        self.publish_pool((0, 0));
        debug_assert!(self.conns.is_empty() && self.ups.is_empty());
        Ok(())
    }

    /// Every `tuning.pool_trim_ms`, frees spare buffers and per-request
    /// vectors that a whole period left unused (down to a floor), so memory
    /// taken by a one-off peak is given back; and publishes the pool's
    /// spare count (`gateway_buffer_pool_spare`).
    fn trim_spares(&mut self) {
        if self.now >= self.next_trim {
            self.next_trim = self.now.saturating_add(self.deadlines.pool_trim);
            let freed = self.pool.trim();
            self.spare.trim(self.pool.floor());
            if freed > 0 {
                log::debug!("worker {}: freed {freed} unused spare buffers", self.id);
            }
        }
        self.publish_pool((self.pool.spare() as u64, self.pool.in_use() as u64));
    }

    /// Moves the shared pool gauges by this worker's change since the last
    /// call (each worker adds only its own share, so the sum is exact).
    fn publish_pool(&mut self, now: (u64, u64)) {
        let m = &self.shared.metrics;
        let was = self.published_pool;
        for (gauge, new, old) in [
            (&m.buffer_pool_spare, now.0, was.0),
            (&m.buffer_pool_in_use, now.1, was.1),
        ] {
            if new >= old {
                gauge.fetch_add(new - old, Relaxed);
            } else {
                gauge.fetch_sub(old - new, Relaxed);
            }
        }
        self.published_pool = now;
    }

    fn dispatch(&mut self, t: Token, ev: &mio::event::Event) {
        match token::decode(t) {
            Target::Client(ci) => {
                if let Some(c) = self.conns.get_mut(ci) {
                    c.ready.update(ev);
                    self.drive(ci);
                }
            }
            Target::Upstream(u) => {
                let Some(up) = self.ups.get_mut(u) else {
                    return;
                };
                up.ready.update(ev);
                match up.owner {
                    Some(ci) => self.drive(ci),
                    None => self.on_idle_upstream_event(u),
                }
            }
        }
    }

    fn poll_timeout(&self) -> Duration {
        let mut next = self.next_sweep;
        if let Some(Reverse((at, _, _))) = self.parked.peek() {
            next = next.min(*at);
        }
        if self.accept_pending {
            next = next.min(self.accept_paused_until);
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
                WorkerMsg::SetLimiter(l) => self.limiter = l,
                WorkerMsg::SetBalancer(b) => self.balancer = b,
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
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.accept_pending = false;
        let all: Vec<usize> = self.conns.iter().map(|(i, _)| i).collect();
        for ci in all {
            let c = &mut self.conns[ci];
            c.draining = true;
            // Idle keep-alive connections and ones only lingering after
            // their last response have nothing left to deliver.
            if c.is_idle() || (matches!(c.phase, Phase::Closing) && c.client_shut) {
                self.close(ci);
            }
        }
    }

    fn accept(&mut self) {
        if self.now < self.accept_paused_until {
            return;
        }
        let max = self.shared.config.limits.max_connections;
        loop {
            let Some(listener) = self.listener.as_ref() else {
                self.accept_pending = false;
                return;
            };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    if self.accept_paused_until != Nanos::ZERO {
                        log::warn!("worker {}: accepting again", self.id);
                        self.accept_paused_until = Nanos::ZERO;
                    }
                    Metrics::inc(&self.shared.metrics.connections_accepted);
                    if self.conns.len() >= max {
                        // Over the limit: answer and close right away, so the
                        // client learns why instead of hanging in the backlog.
                        let _ = sock.write(OVERLOADED);
                        Metrics::inc(&self.shared.metrics.errors);
                        continue;
                    }
                    if !NODELAY_INHERITED {
                        let _ = sock.set_nodelay(true);
                    }
                    let entry = self.conns.vacant_entry();
                    let ci = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        token::client(ci),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("worker {}: register client failed: {e}", self.id);
                        continue;
                    }
                    self.serial += 1;
                    // The first request gets the header timeout, not the
                    // longer idle one: a silent new connection is a slowloris.
                    let deadline = self.now.saturating_add(self.deadlines.header);
                    let mut conn = Conn::new(self.serial, sock, peer, deadline);
                    if self.shared.config.proxy_protocol {
                        conn.preface = crate::conn::Preface::ProxyHeader;
                    }
                    entry.insert(conn);
                    Metrics::inc(&self.shared.metrics.connections_open);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.accept_pending = false;
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: back off instead of spinning on a
                    // listener that stays readable; retry every 100 ms. Logged
                    // once per episode, not once per retry.
                    if self.accept_paused_until == Nanos::ZERO {
                        log::warn!(
                            "worker {}: accept failed ({e}); retrying every 100 ms until it succeeds",
                            self.id
                        );
                    }
                    Metrics::inc(&self.shared.metrics.accept_errors);
                    self.accept_paused_until = self.now.saturating_add(Nanos::from_millis(100));
                    return;
                }
            }
        }
    }

    fn run_timers(&mut self) {
        while let Some(&Reverse((at, ci, serial))) = self.parked.peek() {
            if at > self.now {
                break;
            }
            self.parked.pop();
            let live = self
                .conns
                .get(ci)
                .is_some_and(|c| c.serial == serial && matches!(c.phase, Phase::Parked { .. }));
            if live {
                self.resume_parked(ci);
                if self.conns.contains(ci) {
                    self.drive(ci);
                }
            }
        }
        if self.now < self.next_sweep {
            return;
        }
        self.next_sweep = self.now.saturating_add(SWEEP_EVERY);
        let now = self.now;
        let expired = |c: &Conn| c.deadline != Nanos::ZERO && c.deadline <= now;
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| expired(c) || c.upload.is_due(now))
            .map(|(i, _)| i)
            .collect();
        for ci in due {
            if self.conns[ci].upload.is_due(now) {
                self.check_upload_rate(ci);
            }
            if self.conns.get(ci).is_some_and(expired) {
                self.on_timeout(ci);
            }
            if self.conns.contains(ci) {
                self.drive(ci);
            }
        }
        self.expire_idle_upstreams(self.deadlines.idle);
        self.trim_spares();
        self.log.tick();
        self.log.flush();
    }

    /// Runs the connection's state machine until it makes no progress.
    fn drive(&mut self, ci: usize) {
        for _ in 0..MAX_DRIVE_STEPS {
            let mut progress = self.client_read(ci);
            progress |= self.advance(ci);
            if !self.conns.contains(ci) {
                return;
            }
            progress |= self.upstream_write(ci);
            progress |= self.upstream_read(ci);
            progress |= self.advance(ci);
            if !self.conns.contains(ci) {
                return;
            }
            progress |= self.client_write(ci);
            if !progress {
                return;
            }
            self.touch(ci);
        }
        log::error!(
            "worker {}: connection {ci} exceeded {MAX_DRIVE_STEPS} steps in phase {}; closing",
            self.id,
            self.conns[ci].phase.name()
        );
        Metrics::inc(&self.shared.metrics.errors);
        self.close(ci);
    }
}

/// Linux copies `TCP_NODELAY` from the listener (set in `gateway::bind_one`)
/// to accepted sockets, saving a `setsockopt` per connection.
const NODELAY_INHERITED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// Drops a socket's registration just before the socket itself is dropped.
/// Closing an fd that was never duplicated removes it from the epoll set,
/// so on Linux the `epoll_ctl(DEL)` would be one wasted syscall per
/// connection; elsewhere we deregister explicitly.
pub(super) fn forget(registry: &mio::Registry, source: &mut impl mio::event::Source) {
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        let _ = registry.deregister(source);
    }
}

/// The answer to a client beyond `max_connections`.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 46\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\":\"gateway overloaded\",\"request_id\":\"\"}";

impl Shared {
    /// `now` on the shared epoch.
    pub fn clock_now(&self) -> Nanos {
        use crate::algo::Clock;
        self.clock.now()
    }
}
