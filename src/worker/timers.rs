//! Time in the worker: requests parked by the leaky bucket (a heap, woken
//! exactly), and the coarse sweep of connection deadlines, idle pooled
//! connections, spare buffers and the access log.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::{Worker, SWEEP_EVERY};
use crate::algo::Nanos;
use crate::conn::Phase;

/// The worker's timers.
#[derive(Debug, Default)]
pub(super) struct Timers {
    /// `(wake at, connection, its serial)` of parked requests.
    parked: BinaryHeap<Reverse<(Nanos, usize, u64)>>,
    /// When deadlines are next swept.
    next_sweep: Nanos,
}

impl Timers {
    /// Wakes connection `ci` (with `serial`) at `until`.
    pub(super) fn park(&mut self, until: Nanos, ci: usize, serial: u64) {
        self.parked.push(Reverse((until, ci, serial)));
    }

    /// The next time something is due.
    pub(super) fn next_wake(&self) -> Nanos {
        match self.parked.peek() {
            Some(Reverse((at, _, _))) => self.next_sweep.min(*at),
            None => self.next_sweep,
        }
    }
}

impl Worker {
    pub(super) fn run_timers(&mut self) {
        while let Some(&Reverse((at, ci, serial))) = self.timers.parked.peek() {
            if at > self.now {
                break;
            }
            self.timers.parked.pop();
            let live = self.clients.get(ci).is_some_and(|c| {
                c.serial == serial
                    && c.held.get().is_some_and(|s| {
                        matches!(s.phase(), Phase::Parked { .. } | Phase::Queued { .. })
                    })
            });
            if live {
                self.drive(ci);
            }
        }
        if self.now < self.timers.next_sweep {
            return;
        }
        self.timers.next_sweep = self.now.saturating_add(SWEEP_EVERY);
        let now = self.now;
        let due: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.held.is_due(now))
            .map(|(i, _)| i)
            .collect();
        for ci in due {
            self.on_timer(ci);
            self.drive(ci);
        }
        self.expire_idle_upstreams(self.snaps.current.timeouts.idle);
        if self.snaps.has_older() {
            let pins = self.clients.iter().filter_map(|(_, c)| c.held.pinned());
            self.snaps.release_unpinned(pins);
        }
        self.spares.trim(self.id, self.now, &self.shared.metrics);
        self.sinks.log.tick();
        self.sinks.log.flush();
    }
}
