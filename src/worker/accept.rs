//! The listeners (plain, and HTTPS when `tls` is configured): accepting
//! connections, the `max_connections` cap, and backing off when the
//! process runs out of descriptors.

use std::io::{self, Write};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token};

use super::{Client, Held, Worker};
use crate::algo::Nanos;
use crate::conn::{Awaiting, Resting};
use crate::http::rewrite::Scheme;
use crate::metrics::Metrics;
use crate::tls::{TlsServer, TlsStream};
use crate::token;
use crate::transport::{Side, Transport};

/// A listener and whether it has connections waiting.
#[derive(Debug)]
pub(super) struct Acceptor {
    /// `None` once shutdown began.
    listener: Option<TcpListener>,
    /// Its poll token.
    pub(super) token: Token,
    /// The HTTPS listener's TLS state (`None`: plain HTTP).
    tls: Option<Arc<TlsServer>>,
    /// The listener signalled readiness not yet drained.
    pub(super) pending: bool,
    /// Accepting is paused (descriptors exhausted) until then.
    pub(super) paused_until: Nanos,
}

impl Acceptor {
    /// Registers `listener` with `poll`; `tls` makes it the HTTPS one.
    pub(super) fn new(
        poll: &Poll,
        listener: std::net::TcpListener,
        tls: Option<Arc<TlsServer>>,
    ) -> io::Result<Acceptor> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let token = match tls {
            Some(_) => token::TLS_LISTENER,
            None => token::LISTENER,
        };
        poll.registry()
            .register(&mut listener, token, Interest::READABLE)?;
        Ok(Acceptor {
            listener: Some(listener),
            token,
            tls,
            pending: false,
            paused_until: Nanos::ZERO,
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
    /// Accepts what listener `a` (an index in `acceptors`) has waiting.
    pub(super) fn accept(&mut self, a: usize) {
        if self.now < self.acceptors[a].paused_until {
            return;
        }
        let max = self.snaps.current.config.limits.max_connections;
        loop {
            let acceptor = &mut self.acceptors[a];
            let Some(listener) = acceptor.listener.as_ref() else {
                acceptor.pending = false;
                return;
            };
            match listener.accept() {
                Ok((mut sock, peer)) => {
                    if acceptor.paused_until != Nanos::ZERO {
                        log::warn!("worker {}: accepting again", self.id);
                        acceptor.paused_until = Nanos::ZERO;
                    }
                    // Per worker, not per listener: a plain and an HTTPS
                    // connection must never share one (timer entries are
                    // told apart by it after a slot is reused).
                    self.accepted += 1;
                    let serial = self.accepted;
                    let tls = acceptor.tls.clone();
                    Metrics::inc(&self.shared.metrics.connections_accepted);
                    if self.clients.len() >= max {
                        // Over the limit: answer and close right away, so the
                        // client learns why instead of hanging in the backlog
                        // (over TLS a plaintext answer would be garbage).
                        if tls.is_none() {
                            let _ = sock.write(OVERLOADED);
                        }
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
                    // The first request gets the header timeout, not the
                    // longer idle one: a silent new connection is a slowloris.
                    // A TLS one gets the handshake timeout first.
                    let t = &self.snaps.current.timeouts;
                    let (first, wait, transport) = match tls {
                        Some(server) => (
                            Awaiting::Handshake,
                            t.handshake,
                            Transport::Tls(Box::new(TlsStream::accept(sock, server))),
                        ),
                        None if self.snaps.current.config.proxy_protocol => {
                            (Awaiting::Preface, t.header, Transport::Plain(sock))
                        }
                        None => (Awaiting::Head, t.header, Transport::Plain(sock)),
                    };
                    let scheme = match transport.is_tls() {
                        true => Scheme::Https,
                        false => Scheme::Http,
                    };
                    // The session is taken from the spares when the first
                    // bytes come.
                    let deadline = self.now.saturating_add(wait);
                    entry.insert(Client {
                        serial,
                        side: Side::new(transport),
                        held: Held::Resting(Resting::new(peer, scheme, first, deadline)),
                        upstream: None,
                    });
                    Metrics::inc(&self.shared.metrics.connections_open);
                    // A client usually writes its request right after its
                    // connect returns, so it is often here already: read
                    // it now rather than after one more trip through the
                    // poll (a miss costs one read that would block, and the
                    // session rests again). Not over TLS: a handshake that
                    // has not begun would keep a session and a buffer until
                    // its timeout, where waiting keeps 96 bytes.
                    let side = &mut self.clients[ci].side;
                    if !side.transport.is_tls() {
                        side.ready.readable = true;
                        side.ready.writable = true;
                        self.drive(ci);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    acceptor.pending = false;
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
                    if acceptor.paused_until == Nanos::ZERO {
                        log::warn!(
                            "worker {}: accept failed ({e}); retrying every 100 ms until it succeeds",
                            self.id
                        );
                    }
                    Metrics::inc(&self.shared.metrics.accept_errors);
                    acceptor.paused_until = self.now.saturating_add(Nanos::from_millis(100));
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
