//! The gateway's own event log: state changes an operator wants to see
//! (circuit opened/closed, algorithm switched, backend toggled).
//!
//! Written only on state changes, never per request, so a mutex is fine.
//! Bounded: the oldest entries are dropped.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::algo::Nanos;

/// Entries kept.
pub const CAPACITY: usize = 200;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When (since gateway start).
    pub at: Nanos,
    /// What happened.
    pub message: String,
}

/// A bounded, shared event log.
#[derive(Debug, Default)]
pub struct EventLog {
    entries: Mutex<VecDeque<Event>>,
}

impl EventLog {
    /// Records an event (also logged at info level).
    pub fn push(&self, at: Nanos, message: String) {
        log::info!("{message}");
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() == CAPACITY {
            e.pop_front();
        }
        e.push_back(Event { at, message });
    }

    /// The events, oldest first.
    pub fn snapshot(&self) -> Vec<Event> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}
