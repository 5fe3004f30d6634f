//! Buffers and blank sessions kept between requests, so steady traffic
//! allocates nothing (on new connections either), and trimmed periodically
//! so a one-off peak is given back (`tuning.pool_trim_ms`).

use std::sync::atomic::Ordering::Relaxed;

use crate::algo::Nanos;
use crate::conn::buffer::{Buffer, BufferPool, Spares as List};
use crate::conn::Session;
use crate::metrics::Metrics;

/// Spare sessions kept per worker (as many as the buffer pool keeps spare
/// buffers).
const MAX_SPARE: usize = 1024;

/// One worker's spare buffers and sessions.
#[derive(Debug)]
pub(super) struct Spares {
    buffers: BufferPool,
    /// Blank sessions, with the capacity of their per-request vectors.
    sessions: List<Box<Session>>,
    trim_every: Nanos,
    next_trim: Nanos,
    /// `(spare, in_use)` as last added to the shared gauges.
    published: (u64, u64),
}

impl Spares {
    /// Buffers of `size` bytes, trimmed every `trim_every`.
    pub(super) fn new(size: usize, trim_every: Nanos) -> Spares {
        Spares {
            buffers: BufferPool::new(size, MAX_SPARE),
            sessions: List::new(MAX_SPARE),
            trim_every,
            next_trim: Nanos::ZERO,
            published: (0, 0),
        }
    }

    /// A buffer.
    pub(super) fn buffer(&mut self) -> Buffer {
        self.buffers.get()
    }

    /// Hands `session` a request buffer (leaving idle).
    pub(super) fn lend(&mut self, session: &mut Session) {
        session.give_buffers(self.buffers.get());
    }

    /// Takes `session`'s buffers back (idle, or closing).
    pub(super) fn reclaim(&mut self, session: &mut Session) {
        let (req, resp) = session.take_buffers();
        for b in [req, resp].into_iter().flatten() {
            self.buffers.put(b);
        }
    }

    /// A blank session, if one is spare.
    #[inline]
    pub(super) fn session(&mut self) -> Option<Box<Session>> {
        self.sessions.pop()
    }

    /// Keeps a blank session for the next connection that reads (dropped
    /// when the list is full).
    pub(super) fn keep_session(&mut self, s: Box<Session>) {
        self.sessions.push(s);
    }

    /// Every `trim_every`, frees spare buffers and sessions that a whole
    /// period left unused (down to a floor); publishes the pool gauges.
    pub(super) fn trim(&mut self, worker: usize, now: Nanos, metrics: &Metrics) {
        if now >= self.next_trim {
            self.next_trim = now.saturating_add(self.trim_every);
            let freed = self.buffers.trim();
            self.sessions.trim(self.buffers.floor());
            if freed > 0 {
                log::debug!("worker {worker}: freed {freed} unused spare buffers");
            }
        }
        let now = (self.buffers.spare() as u64, self.buffers.in_use() as u64);
        self.publish(metrics, now);
    }

    /// Moves the shared pool gauges by this worker's change since the last
    /// call (each worker adds only its own share, so the sum is exact).
    pub(super) fn publish(&mut self, m: &Metrics, now: (u64, u64)) {
        let was = self.published;
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
        self.published = now;
    }
}
