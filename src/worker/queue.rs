//! The requests of this worker that wait for a backend with room (see
//! `Step::Queue`), in arrival order, and their wake-ups.
//!
//! A waiting request is woken at once, first come first served, when this
//! worker frees an in-flight slot (a request ended); slots freed on other
//! workers are found by each request's own re-check timer
//! (`QUEUE_RECHECK`), and its deadline by the same timer. A request that
//! finds no room goes back to the front, so the order holds.

use std::collections::VecDeque;

use super::Worker;
use crate::conn::Phase;

/// This worker's waiting requests.
#[derive(Debug, Default)]
pub(super) struct LocalQueue {
    /// `(connection, its serial)`, oldest first; entries of connections
    /// that left the queue are skipped when met.
    waiting: VecDeque<(usize, u64)>,
    /// A slot was freed since the last wake-up round.
    freed: bool,
}

impl LocalQueue {
    /// Connection `ci` starts waiting (once per wait: its re-checks are
    /// timers, not joins).
    pub(super) fn join(&mut self, ci: usize, serial: u64) {
        self.waiting.push_back((ci, serial));
    }

    /// A request ended on this worker: its slot may fit a waiting one.
    pub(super) fn slot_freed(&mut self) {
        if !self.waiting.is_empty() {
            self.freed = true;
        }
    }
}

impl Worker {
    /// After a slot was freed: offers it to the waiting requests in order,
    /// until one finds no room.
    pub(super) fn wake_queued(&mut self) {
        if !std::mem::take(&mut self.queue.freed) {
            return;
        }
        while let Some((ci, serial)) = self.queue.waiting.pop_front() {
            if !self.is_queued(ci, serial) {
                continue;
            }
            if let Some(s) = self.clients[ci].held.get_mut() {
                s.wake();
            }
            self.drive(ci);
            if self.is_queued(ci, serial) {
                // Still no room: it keeps its place at the front.
                self.queue.waiting.push_front((ci, serial));
                break;
            }
        }
    }

    fn is_queued(&self, ci: usize, serial: u64) -> bool {
        self.clients.get(ci).is_some_and(|c| {
            c.serial == serial
                && c.held
                    .get()
                    .is_some_and(|s| matches!(s.phase(), Phase::Queued { .. }))
        })
    }
}
