//! Backend sockets: the upstream slab, non-blocking connects, and the
//! per-backend idle keep-alive pool plumbing.
//!
//! An upstream has its own token, so moving it between the pool and a client
//! connection needs no re-registration: only its `owner` changes. Idle
//! pooled sockets stay registered, so a backend closing one is noticed (read
//! returns 0) and it is dropped from the pool before anyone reuses it.

use std::io;
use std::sync::Arc;

use mio::net::TcpStream;
use mio::Interest;

use super::Worker;
use crate::algo::Nanos;
use crate::backend::BackendState;
use crate::conn::{Attach, UpstreamView};
use crate::tls::TlsStream;
use crate::token;
use crate::transport::outcome::{read_into, IoOutcome};
use crate::transport::{Ready, Side, Transport};

/// Where an upstream socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpState {
    /// `connect()` issued, not yet established.
    Connecting,
    /// The connect failed.
    Refused,
    /// Established and owned by a client connection; `reused` if it served
    /// a request before (so it may be stale).
    Active {
        /// Taken from the idle pool.
        reused: bool,
    },
    /// Established, in the idle pool since `since`.
    Idle {
        /// When it was returned to the pool.
        since: Nanos,
    },
}

/// One backend socket.
#[derive(Debug)]
pub struct Upstream {
    /// The socket side.
    pub side: Side,
    /// The backend it is connected to (its state outlives snapshots; its
    /// slot keys the idle pool).
    pub backend: Arc<BackendState>,
    /// The client connection using it (slab index), if any.
    pub owner: Option<usize>,
    /// Life-cycle state.
    pub state: UpState,
}

impl Worker {
    /// What the owning session sees of upstream `u`; resolves a pending
    /// connect first.
    #[inline]
    pub(super) fn upstream_view(&mut self, u: usize) -> UpstreamView {
        let up = &mut self.ups[u];
        if up.state == UpState::Connecting && (up.side.ready.writable || up.side.ready.readable) {
            match up.side.transport.connect_result() {
                Some(true) => up.state = UpState::Active { reused: false },
                Some(false) => up.state = UpState::Refused,
                // A spurious or stale edge: wait for the real one.
                None => up.side.ready = Ready::default(),
            }
        }
        let attach = match up.state {
            UpState::Connecting => Attach::Connecting,
            UpState::Refused => Attach::Refused,
            UpState::Active { reused } => Attach::Ready { reused },
            UpState::Idle { .. } => Attach::Ready { reused: true },
        };
        UpstreamView {
            attach,
            seen: up.side.seen,
        }
    }

    /// Gives connection `ci` a connection to the backend its request was
    /// given: a pooled one unless `fresh`, else a new non-blocking connect.
    /// Attaches none if the connect fails at once (the session sees that).
    pub(super) fn attach(&mut self, ci: usize, fresh: bool) {
        self.detach(ci, false);
        let Some(b) = self.clients[ci]
            .held
            .get()
            .and_then(|s| s.selected_backend())
        else {
            return;
        };
        let (addr, tls, state) = (b.addr, b.tls.clone(), b.state.clone());
        let u = if fresh {
            None
        } else {
            self.checkout_idle(state.slot, ci)
        };
        let u = match u {
            Some(u) => Some(u),
            None => match self.connect(addr, tls, state, ci) {
                Ok(u) => Some(u),
                Err(e) => {
                    log::debug!("connect to backend {addr} failed at once: {e}");
                    None
                }
            },
        };
        self.clients[ci].upstream = u;
    }

    /// Detaches connection `ci`'s upstream, if any: pooled if `reusable`,
    /// else closed.
    pub(super) fn detach(&mut self, ci: usize, reusable: bool) {
        if let Some(u) = self.clients[ci].upstream.take() {
            self.release_upstream(u, reusable);
        }
    }

    /// Takes a pooled connection to `backend` for connection `ci`, skipping
    /// pooled sockets the backend has closed meanwhile.
    fn checkout_idle(&mut self, slot: u32, ci: usize) -> Option<usize> {
        while let Some(u) = self.idle.pop(slot) {
            if self.ups[u].side.ready.readable && !self.idle_still_open(u) {
                self.close_upstream(u);
                continue;
            }
            let up = &mut self.ups[u];
            up.owner = Some(ci);
            up.state = UpState::Active { reused: true };
            return Some(u);
        }
        None
    }

    /// Starts a non-blocking connect to `addr` (backend `state`) for
    /// connection `ci`.
    fn connect(
        &mut self,
        addr: std::net::SocketAddr,
        tls: Option<Arc<crate::tls::UpstreamTls>>,
        backend: Arc<BackendState>,
        ci: usize,
    ) -> io::Result<usize> {
        let mut sock = TcpStream::connect(addr)?;
        // Small heads and replies must not wait for Nagle.
        let _ = sock.set_nodelay(true);
        let entry = self.ups.vacant_entry();
        let u = entry.key();
        self.poll.registry().register(
            &mut sock,
            token::upstream(u),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let transport = match tls {
            Some(t) => Transport::Tls(Box::new(TlsStream::connect(sock, &t)?)),
            None => Transport::Plain(sock),
        };
        entry.insert(Upstream {
            side: Side::new(transport),
            backend,
            owner: Some(ci),
            state: UpState::Connecting,
        });
        Ok(u)
    }

    /// Returns an upstream to its pool, or closes it when it cannot be
    /// reused or the pool is full.
    fn release_upstream(&mut self, u: usize, reusable: bool) {
        let max = self.snaps.current.config.limits.max_idle_per_backend;
        let b = &self.ups[u].backend;
        // A backend a reload removed gets no new requests: its connections
        // close as their requests end.
        let keep = reusable && !self.draining() && !b.is_retired();
        if keep && self.idle.push(b.slot, u, max) {
            let up = &mut self.ups[u];
            up.owner = None;
            up.state = UpState::Idle { since: self.now };
        } else {
            self.close_upstream(u);
        }
    }

    /// Deregisters and drops an upstream socket (removing it from the pool).
    pub(super) fn close_upstream(&mut self, u: usize) {
        if !self.ups.contains(u) {
            return;
        }
        let mut up = self.ups.remove(u);
        if let UpState::Idle { .. } = up.state {
            self.idle.remove(up.backend.slot, u);
        }
        super::forget(self.poll.registry(), up.side.transport.tcp());
    }

    /// An event on a pooled socket: anything readable means it is no longer
    /// usable (EOF, reset, or bytes nobody asked for).
    pub(super) fn on_idle_upstream_event(&mut self, u: usize) {
        if self.ups[u].side.ready.readable && !self.idle_still_open(u) {
            self.close_upstream(u);
        }
    }

    fn idle_still_open(&mut self, u: usize) -> bool {
        let mut probe = [0u8; 64];
        let side = &mut self.ups[u].side;
        match read_into(&mut side.transport, &mut probe) {
            IoOutcome::WouldBlock => {
                side.ready.readable = false;
                true
            }
            _ => false,
        }
    }

    /// Closes pooled sockets idle for longer than `max_idle`.
    pub(super) fn expire_idle_upstreams(&mut self, max_idle: Nanos) {
        let now = self.now;
        let ups = &self.ups;
        let stale: Vec<usize> = self
            .idle
            .iter()
            .filter(|&u| {
                matches!(ups[u].state, UpState::Idle { since } if now.saturating_sub(since) >= max_idle)
            })
            .collect();
        for u in stale {
            self.close_upstream(u);
        }
    }

    /// Closes the pooled connections to backends a reload removed.
    pub(super) fn close_retired_idle(&mut self) {
        let ups = &self.ups;
        let retired: Vec<usize> = self
            .idle
            .iter()
            .filter(|&u| ups[u].backend.is_retired())
            .collect();
        for u in retired {
            self.close_upstream(u);
        }
    }
}
