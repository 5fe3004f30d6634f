//! One accepted client connection as its worker keeps it: the socket side,
//! the backend socket attached to it, and its session, which is whole
//! while a request may be in flight and only a [`Resting`] summary (its
//! peer, scheme, phase and deadline) while the connection waits for the
//! first byte of its next request.
//!
//! So an idle keep-alive connection holds about a hundred bytes in the
//! slab, and the session (about 900 bytes, with the capacity of its
//! per-request vectors) goes back to the worker's spares to serve whichever
//! connection reads next: steady traffic allocates nothing, on new
//! connections either.
//!
//! Invariants:
//! - A session rests only when [`Session::resting`] allows it: no buffer,
//!   nothing to send, no request owed, nothing chosen for one.
//! - A session in the spares holds no guard (breaker permit, in-flight
//!   lease, queue ticket): one that rested was settled, one whose
//!   connection closed was blanked.

use crate::algo::Nanos;
use crate::conn::{Resting, Session};
use crate::transport::{Fill, Side};

/// One client connection.
#[derive(Debug)]
pub(super) struct Client {
    /// Unique per worker, so stale timer entries can be told apart after
    /// the slab slot is reused.
    pub(super) serial: u64,
    /// The client socket.
    pub(super) side: Side,
    /// The protocol state.
    pub(super) held: Held,
    /// The backend socket attached (upstream slab index).
    pub(super) upstream: Option<usize>,
}

/// A connection's session: whole, or resting between requests.
#[derive(Debug)]
pub(super) enum Held {
    /// A request may be in flight: the whole session.
    Active(Box<Session>),
    /// Waiting for the first byte of a head: the session's summary.
    Resting(Resting),
    /// Closed while resting (a timeout, a shutdown): nothing was owed, so
    /// no session was taken to end it.
    Closed,
}

impl Held {
    /// The whole session, if it is not resting.
    #[inline]
    pub(super) fn get(&self) -> Option<&Session> {
        match self {
            Held::Active(s) => Some(s),
            Held::Resting(_) | Held::Closed => None,
        }
    }

    /// The whole session, if it is not resting.
    #[inline]
    pub(super) fn get_mut(&mut self) -> Option<&mut Session> {
        match self {
            Held::Active(s) => Some(s),
            Held::Resting(_) | Held::Closed => None,
        }
    }

    /// The whole session, woken from rest on one from `spare` (a new one
    /// when the spares are empty). Callers check `is_closed` first; a
    /// closed entry gets a blank, closed session rather than a panic.
    #[inline]
    pub(super) fn wake(&mut self, spare: impl FnOnce() -> Option<Box<Session>>) -> &mut Session {
        if !matches!(self, Held::Active(_)) {
            let mut s = spare().unwrap_or_else(|| Box::new(Session::blank_session()));
            match *self {
                Held::Resting(r) => s.resume(r),
                _ => s.blank(),
            }
            *self = Held::Active(s);
        }
        match self {
            Held::Active(s) => s,
            // Made active just above.
            Held::Resting(_) | Held::Closed => unreachable!("a woken session is active"),
        }
    }

    /// Closes a resting connection without taking a session: nothing is
    /// owed and nothing is attached, so this is all `Session::close` would
    /// do. Returns whether it was resting.
    pub(super) fn close_resting(&mut self) -> bool {
        let resting = matches!(self, Held::Resting(_));
        if resting {
            *self = Held::Closed;
        }
        resting
    }

    /// Puts the session to rest if it may ([`Session::resting`]) and
    /// returns it for the spares. It is not blanked: it is settled, and
    /// what its last request left is reset by the next one's start.
    pub(super) fn rest(&mut self) -> Option<Box<Session>> {
        let r = self.get()?.resting()?;
        match std::mem::replace(self, Held::Resting(r)) {
            Held::Active(s) => Some(s),
            Held::Resting(_) | Held::Closed => None,
        }
    }

    /// The session, blanked, when the connection is gone (its buffers
    /// taken back).
    pub(super) fn retire(self) -> Option<Box<Session>> {
        match self {
            Held::Active(mut s) => {
                s.blank();
                Some(s)
            }
            Held::Resting(_) | Held::Closed => None,
        }
    }

    /// Whether the session is over.
    #[inline]
    pub(super) fn is_closed(&self) -> bool {
        match self {
            Held::Active(s) => s.is_closed(),
            Held::Resting(_) => false,
            Held::Closed => true,
        }
    }

    /// Whether the session sits between requests with nothing to deliver.
    #[inline]
    pub(super) fn is_idle(&self) -> bool {
        self.get().is_none_or(Session::is_idle)
    }

    /// The serial of the snapshot its request runs on (see
    /// [`Session::pinned`]); none while resting.
    #[inline]
    pub(super) fn pinned(&self) -> Option<u64> {
        self.get().and_then(Session::pinned)
    }

    /// Whether its timer is due at `now`.
    #[inline]
    pub(super) fn is_due(&self, now: Nanos) -> bool {
        match self {
            Held::Active(s) => s.is_due(now),
            Held::Resting(r) => r.deadline() != Nanos::ZERO && r.deadline() <= now,
            Held::Closed => false,
        }
    }

    /// Whether client bytes are wanted, and how (see
    /// [`Session::client_fill`]): a resting session wants them kept.
    #[inline]
    pub(super) fn client_fill(&self) -> Option<Fill> {
        match self {
            Held::Active(s) => s.client_fill(),
            Held::Resting(_) => Some(Fill::Keep),
            Held::Closed => None,
        }
    }

    /// The phase's name (for logs).
    pub(super) fn phase_name(&self) -> &'static str {
        match self {
            Held::Active(s) => s.phase().name(),
            Held::Resting(r) => r.phase_name(),
            Held::Closed => crate::conn::Phase::Closed.name(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle connection holds in the slab is its `Client`: it was
    /// 944 bytes when the whole session lived there (issue 17).
    #[test]
    fn an_idle_connection_is_small() {
        let size = std::mem::size_of::<Client>();
        eprintln!(
            "size_of::<Client>() = {size}, Session = {}",
            std::mem::size_of::<Session>()
        );
        assert!(size <= 128, "Client is {size} bytes");
    }
}
