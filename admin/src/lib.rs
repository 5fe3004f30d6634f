//! api-gateway's control plane: the admin HTTP server (plain std sockets, its
//! own threads, every connection held to [`AdminLimits`]), the protocol it
//! speaks with the gateway, and the dashboard.
//!
//! This crate never depends on the gateway core and knows nothing of mio: the
//! gateway hands it a `Sender<Envelope>` (plus, optionally, a `notify` hook
//! that wraps `mio::Waker::wake`) and answers each command on the envelope's
//! reply channel. Crate map:
//!
//! - [`protocol`]: `Envelope`, plus the validated specs, `Command` / `Reply`
//!   and the typed events re-exported from the `api-gateway-protocol` crate.
//! - `routes`: method + path → route → `Command`; all input validation.
//! - `acceptor`: the accept loop (survives EMFILE) and one thread per admitted
//!   connection.
//! - `slots`: the connection cap, and who is evicted at the cap.
//! - `conn`: one exchange, read under the size and time limits.
//! - [`AdminLimits`]: those limits.
//! - `server`: what to answer (auth, bodies, replies, 503 on timeout).
//! - [`auth`]: [`check_exposure`] and the bearer-token check.
//! - [`loadtest`]: the server-side load tester behind `POST /gateway/loadtest`.
//! - [`events`]: the bounded log of admin actions (`GET /gateway/events`).
//! - [`dashboard`]: the embedded single-page dashboard.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acceptor;
pub mod auth;
mod client;
mod conn;
pub mod dashboard;
pub mod events;
mod limits;
pub mod loadtest;
pub mod protocol;
mod routes;
mod server;
mod slots;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use auth::{check_exposure, check_token};
pub use limits::AdminLimits;
pub use protocol::{
    BalanceSpec, BreakerSpec, CircuitState, Command, Envelope, EventKind, LimitSpec, Reply,
    StatusSet, DEFAULT_FAILURE_STATUSES,
};

use events::{EventLog, EVENT_LOG_CAPACITY};
use server::Shared;
use slots::Slots;

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
    /// Connection cap, deadlines and size limits (see [`AdminLimits`]).
    pub limits: AdminLimits,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            reply_timeout: Duration::from_secs(2),
            notify: None,
            limits: AdminLimits::default(),
        }
    }
}

impl std::fmt::Debug for AdminOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminOptions")
            .field("reply_timeout", &self.reply_timeout)
            .field("notify", &self.notify.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

/// How long shutdown waits for requests being answered (a load test is
/// cancelled, a gateway command is bounded by the reply timeout).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A running admin server. Dropping it shuts it down too.
pub struct AdminHandle {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    slots: Arc<Slots>,
    acceptor: Option<JoinHandle<()>>,
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

    /// Connections the admin holds right now (at most
    /// [`AdminLimits::max_connections`]).
    pub fn open_connections(&self) -> usize {
        self.slots.len()
    }

    /// Stops serving: closes the listener, cancels a running load test,
    /// closes connections still sending a request, and waits for the ones
    /// being answered. Requests already being served finish first.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stop.store(true, Ordering::Release);
        acceptor::wake(self.local_addr);
        if acceptor.join().is_err() {
            log::error!("admin accept thread panicked");
        }
        self.slots.close_idle();
        if !self.slots.wait_empty(DRAIN_LIMIT) {
            log::warn!("admin: connections still open after shutdown");
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

/// [`spawn`] with explicit options (reply timeout, wake hook, limits).
pub fn spawn_with(
    cfg: AdminConfig,
    commands: crossbeam_channel::Sender<Envelope>,
    opts: AdminOptions,
) -> io::Result<AdminHandle> {
    check_exposure(&cfg.addr, cfg.token.as_deref())
        .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
    let listener = TcpListener::bind(cfg.addr)
        .map_err(|e| io::Error::new(e.kind(), format!("admin bind {}: {e}", cfg.addr)))?;
    let local_addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared {
        token: cfg.token,
        gateway_addr: cfg.gateway_addr,
        commands,
        notify: opts.notify,
        reply_timeout: opts.reply_timeout,
        events: EventLog::new(EVENT_LOG_CAPACITY),
        stop: Arc::clone(&stop),
        loadtest: Mutex::new(()),
    });
    let slots = Arc::new(Slots::new(opts.limits.max_connections));
    let acceptor = acceptor::start(listener, shared, Arc::clone(&slots), opts.limits)?;
    log::info!("admin API and dashboard on http://{local_addr}/");
    Ok(AdminHandle {
        local_addr,
        stop,
        slots,
        acceptor: Some(acceptor),
    })
}
