//! One event-loop worker: a `mio::Poll`, its listener, a slab of client
//! connections, a slab of backend sockets, the upstream pools and the
//! timers. The worker does the I/O and executes what each connection's
//! sans-IO [`Session`](crate::conn::Session) asks for; it holds no protocol logic.
//!
//! Files: `accept.rs` (the listener), `drive.rs` (pumping bytes, advancing
//! sessions, executing steps), `upstream.rs` (backend sockets and idle
//! pools), `timers.rs` (parked requests, the deadline sweep), `spares.rs`
//! (buffers and sessions kept between requests), `client.rs` (a
//! connection's slab entry: its session whole, or resting), `snaps.rs`
//! (the configuration snapshots in use).
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
//!   switch or reload acknowledged to the admin applies to every request
//!   that starts later; requests already started finish on their snapshot.

mod accept;
mod client;
mod drive;
mod queue;
mod snaps;
mod spares;
mod timers;
mod upstream;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::{Events, Poll, Waker};
use slab::Slab;

use crate::algo::Nanos;
use crate::conn::RequestIds;
use crate::pipeline::access_log::AccessLog;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
pub use crate::snapshot::LINGER;
use crate::token;
use crate::upstream::IdleConns;
pub use upstream::{UpState, Upstream};

use accept::Acceptor;
use client::{Client, Held};
use queue::LocalQueue;
use snaps::Snaps;
use spares::Spares;
use timers::Timers;

/// The smallest connection buffer: a head up to `max_header_bytes`, and
/// never less than 16 KiB (so a smaller limit is enforced by the parser,
/// not by a full buffer).
pub const MIN_BUFFER_BYTES: usize = 16 * 1024;

/// How often deadlines are checked.
pub const SWEEP_EVERY: Nanos = Nanos::from_millis(50);

/// Sent to a worker by the control loop (then the worker's waker is woken).
pub enum WorkerMsg {
    /// Run requests that start from now on on this snapshot (a reload or
    /// a live switch); requests in flight finish on theirs.
    Install(Arc<Snapshot>),
    /// Stop accepting, finish in-flight requests within `grace`, then exit.
    Shutdown {
        /// How long in-flight requests may take.
        grace: Nanos,
    },
}

impl std::fmt::Debug for WorkerMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerMsg::Install(s) => write!(
                f,
                "Install(serial {}, generation {})",
                s.serial, s.generation
            ),
            WorkerMsg::Shutdown { grace } => write!(f, "Shutdown({grace:?})"),
        }
    }
}

/// What a worker lends a session while it advances (see [`crate::conn::Ctx`]).
struct Sinks {
    log: AccessLog,
    /// The access log is open (the snapshot says whether requests go to it).
    log_open: bool,
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
    /// Idle keep-alive connections to backends.
    idle: IdleConns,
    shared: Arc<Shared>,
    snaps: Snaps,
    rx: Receiver<WorkerMsg>,
    now: Nanos,
    timers: Timers,
    /// Requests waiting for a backend with room.
    queue: LocalQueue,
    spares: Spares,
    sinks: Sinks,
    shutdown_at: Option<Nanos>,
    /// Closed connections whose slots are released at the end of the
    /// loop iteration.
    to_remove: Vec<usize>,
    /// Connections accepted so far, on every listener (each one's serial).
    accepted: u64,
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
    /// The snapshot to start with (shared by all workers).
    pub snapshot: Arc<Snapshot>,
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
        let cfg = &parts.snapshot.config;
        let ms = Nanos::from_millis;
        let log = AccessLog::open(&cfg.access_log)?;
        let log_open = log.enabled();
        let buffer_size = cfg.limits.max_header_bytes.max(MIN_BUFFER_BYTES);
        let trim_every = ms(cfg.tuning.pool_trim_ms);
        let rid_prefix = {
            use std::hash::BuildHasher;
            parts.shared.key_hasher.hash_one(parts.id) as u32
        };
        let worker = Worker {
            id: parts.id,
            poll,
            acceptors,
            clients: Slab::with_capacity(1024),
            ups: Slab::with_capacity(256),
            idle: IdleConns::default(),
            now: parts.shared.clock_now(),
            spares: Spares::new(buffer_size, trim_every),
            shared: parts.shared,
            snaps: Snaps::new(parts.snapshot),
            rx: parts.rx,
            timers: Timers::default(),
            queue: LocalQueue::default(),
            sinks: Sinks {
                log,
                log_open,
                ids: RequestIds {
                    prefix: rid_prefix,
                    serial: 0,
                    // Seeded per worker (its prefix) and per process (the
                    // clock), so workers and restarts do not sample alike.
                    sampler: crate::trace::Sampler::new(
                        u64::from(rid_prefix) << 32 ^ wall_clock_nanos(),
                    ),
                },
                scratch: Vec::with_capacity(256),
            },
            shutdown_at: None,
            to_remove: Vec::new(),
            accepted: 0,
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
            self.wake_queued();
            self.reap();
            for a in 0..self.acceptors.len() {
                if self.acceptors[a].pending {
                    self.accept(a);
                }
            }
            self.run_timers();
            self.wake_queued();
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
            if self.clients.get(ci).is_some_and(|c| c.held.is_closed()) {
                let mut c = self.clients.remove(ci);
                forget(self.poll.registry(), c.side.transport.tcp());
                if let Some(s) = c.held.retire() {
                    self.spares.keep_session(s);
                }
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
                WorkerMsg::Install(next) => self.install(next),
                WorkerMsg::Shutdown { grace } => self.begin_shutdown(grace),
            }
        }
    }

    /// Makes `next` the snapshot new requests run on: the access log
    /// follows its settings, and pooled connections to backends it
    /// removed are closed.
    fn install(&mut self, next: Arc<Snapshot>) {
        if next.config.access_log != self.snaps.current.config.access_log {
            self.sinks.log.flush();
            match AccessLog::open(&next.config.access_log) {
                Ok(log) => {
                    self.sinks.log_open = log.enabled();
                    self.sinks.log = log;
                }
                // Checked by the reload before it was applied; keep the
                // old log rather than lose lines.
                Err(e) => log::error!("worker {}: access log not reopened: {e}", self.id),
            }
        }
        self.snaps.install(next);
        self.close_retired_idle();
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
            let held = &self.clients[ci].held;
            // Idle keep-alive connections, ones still in their TLS
            // handshake, and ones only lingering after their last response
            // have nothing left to deliver.
            use crate::conn::Phase;
            let quiet = held
                .get()
                .is_some_and(|s| matches!(s.phase(), Phase::Lingering | Phase::Handshaking));
            if held.is_idle() || quiet {
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

/// Nanoseconds of the wall clock (0 if it reads before 1970): a seed.
fn wall_clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
