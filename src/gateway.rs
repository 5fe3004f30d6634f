//! Starting and stopping a whole gateway: listeners, workers, the control
//! loop and the admin server, wired together.
//!
//! Threads: N workers (one `mio::Poll` each, own `SO_REUSEPORT` listener),
//! one control thread (applies admin commands, broadcasts swaps, runs the
//! shutdown), and the admin server's threads. Used by `main` and by tests,
//! which start gateways on ephemeral ports.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use api_gateway_admin::{
    AdminConfig, AdminHandle, AdminLimits, AdminOptions, Command, Envelope, Reply,
};
use crossbeam_channel::{bounded, select, Receiver, Sender};
use socket2::{Domain, Socket, Type};

use crate::config::Config;
use crate::control::{Controller, Mailbox};
use crate::reload::{ConfigSource, Reloader};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::tls::TlsServer;
use crate::worker::{Worker, WorkerParts};

/// A running gateway.
pub struct Gateway {
    listen: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin: Option<AdminHandle>,
    commands: Sender<Envelope>,
    stop: Sender<()>,
    control: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// Sends control commands to a running gateway from another thread (a
/// signal thread's SIGHUP).
#[derive(Debug, Clone)]
pub struct CommandHandle(Sender<Envelope>);

impl CommandHandle {
    /// Sends `cmd` and waits for the reply.
    pub fn command(&self, cmd: Command) -> Reply {
        send_command(&self.0, cmd)
    }
}

fn send_command(commands: &Sender<Envelope>, cmd: Command) -> Reply {
    let (tx, rx) = bounded(1);
    if commands.send(Envelope { cmd, reply: tx }).is_err() {
        return Reply::Invalid("gateway is stopped".into());
    }
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| Reply::Invalid("gateway did not answer".into()))
}

/// Asks a running gateway to shut down gracefully (from a signal thread).
#[derive(Debug, Clone)]
pub struct StopHandle(Sender<()>);

impl StopHandle {
    /// Requests the graceful shutdown (idempotent).
    pub fn stop(&self) {
        let _ = self.0.try_send(());
    }
}

impl Gateway {
    /// Binds everything and starts the threads. Fails if a port is taken or
    /// the admin exposure rules refuse the configuration.
    pub fn start(config: Config) -> io::Result<Gateway> {
        Gateway::start_with(config, ConfigSource::inline())
    }

    /// [`Gateway::start`], remembering where `config` came from: the file
    /// that SIGHUP and `POST /gateway/config/reload` read again, and the
    /// document `GET /gateway/config` shows.
    pub fn start_with(config: Config, source: ConfigSource) -> io::Result<Gateway> {
        let reloader = Reloader::new(source, &config);
        if let Some(admin) = config.admin {
            api_gateway_admin::check_exposure(&admin, config.admin_token.as_deref())
                .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e))?;
        }
        let workers = config.workers.max(1);
        let listeners = bind_listeners(config.listen, workers)?;
        let listen = listeners[0].local_addr()?;
        let tls_addr;
        let mut config = config;
        config.listen = listen;
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        let (tls, mut tls_listeners) = match config.tls.as_mut() {
            Some(t) => {
                let server = Arc::new(TlsServer::new(t).map_err(invalid)?);
                let ls = bind_listeners(t.listen, workers)?;
                t.listen = ls[0].local_addr()?;
                tls_addr = Some(t.listen);
                (Some(server), ls.into_iter().map(Some).collect())
            }
            None => {
                tls_addr = None;
                (None, Vec::new())
            }
        };
        let mut shared = Shared::new(&config);
        shared.tls = tls;
        let shared = Arc::new(shared);
        let snapshot = Arc::new(
            Snapshot::build(config, &shared, None, 0, 0)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        );
        shared.set_current(snapshot.clone());

        let mut mailboxes = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        for (id, listener) in listeners.into_iter().enumerate() {
            let (tx, rx) = bounded(64);
            let tls_listener = tls_listeners
                .get_mut(id)
                .and_then(Option::take)
                .zip(shared.tls.clone());
            let (worker, waker) = Worker::new(WorkerParts {
                id,
                listener,
                tls_listener,
                shared: shared.clone(),
                snapshot: snapshot.clone(),
                rx,
            })?;
            mailboxes.push(Mailbox { tx, waker });
            threads.push(
                thread::Builder::new()
                    .name(format!("worker-{id}"))
                    .spawn(move || {
                        if let Err(e) = worker.run() {
                            log::error!("worker {id} stopped: {e}");
                        }
                    })?,
            );
        }

        let (commands, command_rx) = bounded::<Envelope>(64);
        let (stop, stop_rx) = bounded::<()>(1);
        let controller = Controller::new(shared.clone(), mailboxes, snapshot.clone(), reloader);
        let control = thread::Builder::new()
            .name("control".into())
            .spawn(move || control_loop(controller, command_rx, stop_rx, threads))?;

        let start = &snapshot.config;
        let admin = match start.admin {
            Some(addr) => Some(api_gateway_admin::spawn_with(
                AdminConfig {
                    addr,
                    token: start.admin_token.clone(),
                    gateway_addr: listen,
                },
                commands.clone(),
                AdminOptions {
                    // One head limit for both ports: the admin reads no more
                    // of a head before auth than the data plane would.
                    limits: AdminLimits {
                        max_head_bytes: start.limits.max_header_bytes,
                        ..AdminLimits::default()
                    },
                    ..AdminOptions::default()
                },
            )?),
            None => None,
        };
        log::info!("gateway listening on http://{listen} with {workers} worker(s)");
        if let Some(t) = &start.tls {
            log::info!("gateway listening on https://{}", t.listen);
        }
        Ok(Gateway {
            listen,
            tls_addr,
            admin,
            commands,
            stop,
            control: Some(control),
            shared,
        })
    }

    /// The client-facing address (resolved when configured with port 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The HTTPS address, when `tls` is configured (resolved when
    /// configured with port 0).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// The admin address, when the admin port is enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminHandle::local_addr)
    }

    /// Shared state (metrics, events) for inspection.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The configuration snapshot now running (its backends, routes,
    /// limiters), for inspection.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current()
    }

    /// Sends a control command and waits for the reply (what the admin API
    /// does for each request).
    pub fn command(&self, cmd: Command) -> Reply {
        send_command(&self.commands, cmd)
    }

    /// A handle that sends commands from another thread.
    pub fn command_handle(&self) -> CommandHandle {
        CommandHandle(self.commands.clone())
    }

    /// A handle that can request shutdown from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Blocks until the gateway has shut down (after a [`StopHandle::stop`]).
    pub fn wait(mut self) {
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
        if let Some(a) = self.admin.take() {
            a.shutdown();
        }
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests within
    /// the grace period, close idle connections, join every thread.
    pub fn shutdown(self) {
        self.stop_handle().stop();
        self.wait();
    }
}

fn control_loop(
    mut controller: Controller,
    commands: Receiver<Envelope>,
    stop: Receiver<()>,
    workers: Vec<JoinHandle<()>>,
) {
    loop {
        select! {
            recv(commands) -> env => match env {
                Ok(env) => {
                    let reply = controller.handle(env.cmd);
                    let _ = env.reply.try_send(reply);
                }
                Err(_) => break,
            },
            recv(stop) -> _ => break,
        }
    }
    log::info!("shutting down: no new connections, finishing in-flight requests");
    controller.shutdown();
    for w in workers {
        let _ = w.join();
    }
    log::info!("all workers stopped");
}

/// Binds `n` listeners on one address; with several, each gets
/// `SO_REUSEPORT` so the kernel spreads connections across workers.
fn bind_listeners(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let first = bind_one(addr, n > 1)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..n {
        all.push(bind_one(actual, true)?);
    }
    Ok(all)
}

fn bind_one(addr: SocketAddr, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    // Accepted sockets inherit it (Linux), so the worker need not set it on
    // each one: small heads and replies must not wait for Nagle.
    socket.set_nodelay(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
