//! The admin's own event log: a bounded ring of the actions this thread
//! performed (algorithm switches, toggles, resets, crashes, load tests).
//!
//! Invariant: never holds more than its capacity, so a script hammering the
//! admin API cannot grow memory. The gateway core keeps its own, typed events
//! (circuit transitions, upstream panic; `protocol::EventKind`) and reports
//! them in the health JSON with their fields; the dashboard merges both, and
//! skips the core's copy of actions logged here (same `kind` tags).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Default number of entries kept.
pub const EVENT_LOG_CAPACITY: usize = 200;

/// One admin action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Monotonically increasing sequence number (survives ring eviction, so a
    /// poller can tell which entries it has already shown).
    pub seq: u64,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// Short kind tag: `rate-limiter`, `load-balancer`, `toggle`, `circuit-reset`,
    /// `metrics-reset`, `crash`, `loadtest`.
    pub kind: String,
    /// Human-readable description.
    pub message: String,
}

/// A bounded, thread-safe ring of [`Event`]s.
#[derive(Debug)]
pub struct EventLog {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    ring: VecDeque<Event>,
}

impl EventLog {
    /// An empty log keeping at most `capacity` (at least 1) entries.
    pub fn new(capacity: usize) -> EventLog {
        EventLog {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Appends an event, evicting the oldest one when full.
    pub fn push(&self, kind: &str, message: impl Into<String>) {
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        // A poisoned lock only means another admin thread panicked mid-push;
        // the ring itself is still consistent, so keep logging.
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = inner.next_seq;
        inner.next_seq += 1;
        if inner.ring.len() == self.capacity {
            inner.ring.pop_front();
        }
        inner.ring.push_back(Event {
            seq,
            at_unix_ms,
            kind: kind.to_string(),
            message: message.into(),
        });
    }

    /// The retained events, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.ring.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_ordered() {
        let log = EventLog::new(3);
        for i in 0..5 {
            log.push("toggle", format!("e{i}"));
        }
        let events = log.snapshot();
        assert_eq!(events.len(), 3);
        let msgs: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["e2", "e3", "e4"]);
        assert_eq!(events[0].seq, 2);
        assert!(events[2].at_unix_ms >= events[0].at_unix_ms);
    }
}
