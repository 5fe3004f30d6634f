//! Backend sockets: the upstream slab, non-blocking connects, and the
//! per-backend idle keep-alive pool.
//!
//! An upstream has its own token, so moving it between the pool and a client
//! connection needs no re-registration: only its `owner` changes. Idle
//! pooled sockets stay registered, so a backend closing one is noticed (read
//! returns 0) and it is dropped from the pool before anyone reuses it.

use std::io;

use mio::net::TcpStream;
use mio::Interest;

use super::Worker;
use crate::algo::{BackendId, Nanos};
use crate::conn::io::{read_into, IoOutcome};
use crate::conn::Ready;
use crate::token;

/// Where an upstream socket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpState {
    /// `connect()` issued, not yet established.
    Connecting,
    /// Established and owned by a client connection.
    Active,
    /// Established, in the idle pool since `since`.
    Idle {
        /// When it was returned to the pool.
        since: Nanos,
    },
}

/// One backend socket.
#[derive(Debug)]
pub struct Upstream {
    /// The socket.
    pub sock: TcpStream,
    /// Which backend.
    pub backend: BackendId,
    /// Readiness not yet used up.
    pub ready: Ready,
    /// The client connection using it (slab index), if any.
    pub owner: Option<usize>,
    /// Life-cycle state.
    pub state: UpState,
    /// Served at least one request before (so it may be stale).
    pub reused: bool,
    /// Our write side is shut (tunnels).
    pub write_shut: bool,
}

impl Worker {
    /// Takes a pooled connection to `backend` for connection `ci`, skipping
    /// pooled sockets the backend has closed meanwhile.
    pub(super) fn checkout_idle(&mut self, backend: BackendId, ci: usize) -> Option<usize> {
        while let Some(u) = self.idle[backend].pop() {
            if self.ups[u].ready.readable && !self.idle_still_open(u) {
                self.close_upstream(u);
                continue;
            }
            let up = &mut self.ups[u];
            up.owner = Some(ci);
            up.state = UpState::Active;
            up.reused = true;
            return Some(u);
        }
        None
    }

    /// Starts a non-blocking connect to `backend` for connection `ci`.
    pub(super) fn connect(&mut self, backend: BackendId, ci: usize) -> io::Result<usize> {
        let addr = self.shared.backends.get(backend).addr;
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
        entry.insert(Upstream {
            sock,
            backend,
            ready: Ready::default(),
            owner: Some(ci),
            state: UpState::Connecting,
            reused: false,
            write_shut: false,
        });
        Ok(u)
    }

    /// Checks a pending connect: `Some(true)` established, `Some(false)`
    /// failed, `None` still in progress (mio's recipe: `take_error`, then
    /// `peer_addr`).
    pub(super) fn connect_result(&mut self, u: usize) -> Option<bool> {
        let up = &mut self.ups[u];
        if !(up.ready.writable || up.ready.readable) {
            return None;
        }
        match up.sock.take_error() {
            Ok(Some(_)) | Err(_) => return Some(false),
            Ok(None) => {}
        }
        match up.sock.peer_addr() {
            Ok(_) => {
                up.state = UpState::Active;
                Some(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                // A spurious or stale edge: wait for the real one.
                up.ready = Ready::default();
                None
            }
            Err(_) => Some(false),
        }
    }

    /// Returns an upstream to its backend's pool, or closes it when it
    /// cannot be reused or the pool is full.
    pub(super) fn release_upstream(&mut self, u: usize, reusable: bool) {
        let backend = self.ups[u].backend;
        if reusable
            && self.idle[backend].len() < self.shared.config.limits.max_idle_per_backend
            && !self.draining()
        {
            let up = &mut self.ups[u];
            up.owner = None;
            up.state = UpState::Idle { since: self.now };
            self.idle[backend].push(u);
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
            self.idle[up.backend].retain(|&x| x != u);
        }
        super::forget(self.poll.registry(), &mut up.sock);
    }

    /// An event on a pooled socket: anything readable means it is no longer
    /// usable (EOF, reset, or bytes nobody asked for).
    pub(super) fn on_idle_upstream_event(&mut self, u: usize) {
        if self.ups[u].ready.readable && !self.idle_still_open(u) {
            self.close_upstream(u);
        }
    }

    fn idle_still_open(&mut self, u: usize) -> bool {
        let mut probe = [0u8; 64];
        let up = &mut self.ups[u];
        match read_into(&mut up.sock, &mut probe) {
            IoOutcome::WouldBlock => {
                up.ready.readable = false;
                true
            }
            _ => false,
        }
    }

    /// Closes pooled sockets idle for longer than `max_idle`.
    pub(super) fn expire_idle_upstreams(&mut self, max_idle: Nanos) {
        let now = self.now;
        let stale: Vec<usize> = self
            .idle
            .iter()
            .flatten()
            .copied()
            .filter(|&u| matches!(self.ups[u].state, UpState::Idle { since } if now.saturating_sub(since) >= max_idle))
            .collect();
        for u in stale {
            self.close_upstream(u);
        }
    }
}
