//! The queue in front of an upstream whose backends are all at
//! `max_inflight_per_backend`: how many requests wait (across every
//! worker, bounded by `queue.max`), how long they waited, and how many
//! were turned away. Kept across reloads with its upstream's name.
//!
//! A waiting request holds a [`QueueTicket`]; dropping it (the request got
//! a backend, timed out, or its client left) gives the place back, so the
//! depth can never leak.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::algo::Nanos;
use crate::metrics::Histogram;

/// One upstream's wait queue, as counters.
#[derive(Debug, Default)]
pub struct WaitQueue {
    depth: AtomicUsize,
    /// How long requests waited before they got a backend.
    pub waited: Histogram,
    /// Requests turned away because the queue was full.
    pub full: AtomicU64,
    /// Requests that waited `queue.timeout_ms` in vain.
    pub timed_out: AtomicU64,
}

impl WaitQueue {
    /// Requests waiting now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// A place in the queue, unless `max` are waiting.
    pub fn enter(self: &Arc<Self>, max: usize, now: Nanos) -> Option<QueueTicket> {
        self.depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(QueueTicket {
            queue: self.clone(),
            since: now,
        })
    }
}

/// A request's place in a [`WaitQueue`]; given back on drop.
#[derive(Debug)]
pub struct QueueTicket {
    queue: Arc<WaitQueue>,
    /// When it started waiting.
    pub since: Nanos,
}

impl QueueTicket {
    /// The request got a backend at `now`: its wait is recorded.
    pub fn served(self, now: Nanos) {
        let waited = now.saturating_sub(self.since);
        self.queue.waited.observe_us(waited.0 / 1000);
    }

    /// The request waited in vain.
    pub fn timed_out(self) {
        self.queue.timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for QueueTicket {
    fn drop(&mut self) {
        self.queue.depth.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_depth_is_bounded_and_tickets_give_their_place_back() {
        let q = Arc::new(WaitQueue::default());
        let a = q.enter(2, Nanos(0)).unwrap();
        let b = q.enter(2, Nanos(0)).unwrap();
        assert!(q.enter(2, Nanos(0)).is_none(), "full at max");
        assert_eq!(q.depth(), 2);
        a.served(Nanos::from_millis(30));
        assert_eq!(q.depth(), 1);
        drop(b);
        assert_eq!(q.depth(), 0);
        assert!(q.waited.quantile_ms(0.5).is_some(), "the wait was recorded");
    }
}
