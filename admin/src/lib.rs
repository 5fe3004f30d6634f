//! api-gateway's control plane: the admin HTTP server (tiny_http, its own
//! threads), the protocol it speaks with the gateway, and the dashboard.
//!
//! This crate never depends on the gateway core and knows nothing of mio: the
//! gateway hands it a `Sender<Envelope>` (plus, optionally, a `notify` hook
//! that wraps `mio::Waker::wake`) and answers each command on the envelope's
//! reply channel. Crate map:
//!
//! - [`protocol`]: `Command` / `Reply` / `Envelope` and the validated specs.
//! - `routes`: method + path → route → `Command`; all input validation.
//! - `server`: the request loop (auth, bodies, replies, 503 on timeout).
//! - [`auth`]: [`check_exposure`] and the bearer-token check.
//! - [`loadtest`]: the server-side load tester behind `POST /gateway/loadtest`.
//! - [`events`]: the bounded log of admin actions (`GET /gateway/events`).
//! - [`dashboard`]: the embedded single-page dashboard.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
mod client;
pub mod dashboard;
pub mod events;
pub mod loadtest;
pub mod protocol;
mod routes;
mod server;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use auth::check_exposure;
pub use protocol::{
    BalanceSpec, BreakerSpec, Command, Envelope, LimitSpec, Reply, StatusSet,
    DEFAULT_FAILURE_STATUSES,
};

use events::{EventLog, EVENT_LOG_CAPACITY};
use server::Shared;

/// Where the admin listens and what it talks to.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminConfig {
    /// Admin listen address (loopback unless a token is set; see [`check_exposure`]).
    pub addr: SocketAddr,
    /// When set, every request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// The gateway's data-plane address, the target of load tests.
    pub gateway_addr: SocketAddr,
}

// Hand-written so the token never ends up in a log line.
impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("gateway_addr", &self.gateway_addr)
            .finish()
    }
}

/// Tuning knobs with sensible defaults; [`spawn`] uses `AdminOptions::default()`.
#[derive(Clone)]
pub struct AdminOptions {
    /// How long to wait for the gateway to accept and answer a command before
    /// answering 503 (default 2 s).
    pub reply_timeout: Duration,
    /// Called after each command is sent, so the event loop wakes up to drain
    /// the channel (wrap `mio::Waker::wake` here). `None`: the loop polls.
    pub notify: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Request-serving threads (default 4): a long load test occupies one, so
    /// the dashboard keeps polling health meanwhile.
    pub workers: usize,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            reply_timeout: Duration::from_secs(2),
            notify: None,
            workers: 4,
        }
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("reply_timeout", &self.reply_timeout)
            .field("notify", &self.notify.is_some())
            .field("workers", &self.workers)
            .finish()
    }
}

/// A running admin server. Dropping it shuts it down too.
pub struct AdminHandle {
    server: Arc<tiny_http::Server>,
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for AdminHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl AdminHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops serving: cancels a running load test, unblocks every worker and
    /// joins them. Requests already being served finish first.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        self.stop.store(true, Ordering::Release);
        // Each `unblock` releases exactly one blocked `recv`, so send one per
        // worker; a busy worker picks its token up when it next calls `recv`.
        for _ in 0..self.workers.len() {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                log::error!("admin worker panicked");
            }
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Binds `cfg.addr` and serves the admin API and dashboard on background
/// threads with default [`AdminOptions`].
///
/// Errors if the address is refused by [`check_exposure`] or the bind fails.
pub fn spawn(
    cfg: AdminConfig,
    commands: crossbeam_channel::Sender<Envelope>,
) -> io::Result<AdminHandle> {
    spawn_with(cfg, commands, AdminOptions::default())
}

/// [`spawn`] with explicit options (reply timeout, wake hook, worker count).
pub fn spawn_with(
    cfg: AdminConfig,
    commands: crossbeam_channel::Sender<Envelope>,
    opts: AdminOptions,
) -> io::Result<AdminHandle> {
    // An empty token would make `Bearer ` a valid credential: treat it as none.
    let token = cfg.token.filter(|t| !t.is_empty());
    check_exposure(&cfg.addr, token.as_deref())
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
    let server = tiny_http::Server::http(cfg.addr).map_err(|e| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("admin bind {}: {e}", cfg.addr),
        )
    })?;
    let local_addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| io::Error::other("admin listener has no IP address"))?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        token,
        gateway_addr: cfg.gateway_addr,
        commands,
        notify: opts.notify,
        reply_timeout: opts.reply_timeout,
        events: EventLog::new(EVENT_LOG_CAPACITY),
        stop: Arc::clone(&stop),
        loadtest: Mutex::new(()),
    });
    let mut handle = AdminHandle {
        server: Arc::clone(&server),
        local_addr,
        stop,
        workers: Vec::new(),
    };
    for i in 0..opts.workers.max(1) {
        let server = Arc::clone(&server);
        let shared = Arc::clone(&shared);
        let w = thread::Builder::new()
            .name(format!("admin-{i}"))
            .spawn(move || server::worker(&server, &shared))?;
        // On a later spawn failure `handle` drops and joins these.
        handle.workers.push(w);
    }
    log::info!("admin API and dashboard on http://{local_addr}/");
    Ok(handle)
}
