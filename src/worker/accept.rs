//! The listener: accepting connections, the `max_connections` cap, and
//! backing off when the process runs out of descriptors.

use std::io::{self, Write};

use mio::net::TcpListener;
use mio::{Interest, Poll};

use super::{Client, Worker};
use crate::algo::Nanos;
use crate::conn::{Phase, Session};
use crate::metrics::Metrics;
use crate::token;
use crate::transport::{Side, Transport};

/// The listener and whether it has connections waiting.
#[derive(Debug)]
pub(super) struct Acceptor {
    /// `None` once shutdown began.
    listener: Option<TcpListener>,
    /// The listener signalled readiness not yet drained.
    pub(super) pending: bool,
    /// Accepting is paused (descriptors exhausted) until then.
    pub(super) paused_until: Nanos,
    /// Connections accepted so far (each one's serial).
    serial: u64,
}

impl Acceptor {
    /// Registers `listener` with `poll`.
    pub(super) fn new(poll: &Poll, listener: std::net::TcpListener) -> io::Result<Acceptor> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, token::LISTENER, Interest::READABLE)?;
        Ok(Acceptor {
            listener: Some(listener),
            pending: false,
            paused_until: Nanos::ZERO,
            serial: 0,
        })
    }

    /// Stops accepting for good (shutdown).
    pub(super) fn stop(&mut self, poll: &Poll) {
        if let Some(mut l) = self.listener.take() {
            let _ = poll.registry().deregister(&mut l);
        }
        self.pending = false;
    }
}

impl Worker {
    pub(super) fn accept(&mut self) {
        if self.now < self.acceptor.paused_until {
            return;
        }
        let max = self.shared.config.limits.max_connections;
        loop {
            let Some(listener) = self.acceptor.listener.as_ref() else {
                self.acceptor.pending = false;
                return;
            };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    if self.acceptor.paused_until != Nanos::ZERO {
                        log::warn!("worker {}: accepting again", self.id);
                        self.acceptor.paused_until = Nanos::ZERO;
                    }
                    Metrics::inc(&self.shared.metrics.connections_accepted);
                    if self.clients.len() >= max {
                        // Over the limit: answer and close right away, so the
                        // client learns why instead of hanging in the backlog.
                        let _ = sock.write(OVERLOADED);
                        Metrics::inc(&self.shared.metrics.errors);
                        continue;
                    }
                    if !NODELAY_INHERITED {
                        let _ = sock.set_nodelay(true);
                    }
                    let entry = self.clients.vacant_entry();
                    let ci = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut sock,
                        token::client(ci),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("worker {}: register client failed: {e}", self.id);
                        continue;
                    }
                    self.acceptor.serial += 1;
                    // The first request gets the header timeout, not the
                    // longer idle one: a silent new connection is a slowloris.
                    let deadline = self.now.saturating_add(self.sinks.timeouts.header);
                    let first = if self.shared.config.proxy_protocol {
                        Phase::Preface
                    } else {
                        Phase::ReadingHead
                    };
                    entry.insert(Client {
                        serial: self.acceptor.serial,
                        side: Side::new(Transport::Plain(sock)),
                        session: Session::new(peer, first, deadline),
                        upstream: None,
                    });
                    Metrics::inc(&self.shared.metrics.connections_open);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.acceptor.pending = false;
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
                    if self.acceptor.paused_until == Nanos::ZERO {
                        log::warn!(
                            "worker {}: accept failed ({e}); retrying every 100 ms until it succeeds",
                            self.id
                        );
                    }
                    Metrics::inc(&self.shared.metrics.accept_errors);
                    self.acceptor.paused_until = self.now.saturating_add(Nanos::from_millis(100));
                    return;
                }
            }
        }
    }
}

/// Linux copies `TCP_NODELAY` from the listener (set in `gateway::bind_one`)
/// to accepted sockets, saving a `setsockopt` per connection.
const NODELAY_INHERITED: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The answer to a client beyond `max_connections`.
const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 46\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\":\"gateway overloaded\",\"request_id\":\"\"}";
