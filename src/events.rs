//! The gateway's own event log: state changes an operator wants to see
//! (circuit transitions, upstream panic, algorithm switched, backend toggled).
//!
//! Events are typed ([`EventKind`], shared with the admin through the protocol
//! crate), and the report serves their fields, so nobody parses the text
//! back; the text is rendered once, when the event is recorded. Written only
//! on state changes, never per request, so a mutex is fine. Bounded: the
//! oldest entries are dropped.

use std::collections::VecDeque;
use std::sync::Mutex;

pub use api_gateway_protocol::EventKind;

use crate::algo::Nanos;

/// Entries kept.
pub const CAPACITY: usize = 200;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When (since gateway start).
    pub at: Nanos,
    /// What happened, as data.
    pub kind: EventKind,
    /// What happened, as the operator reads it (`kind`'s `Display`).
    pub message: String,
}

/// A bounded, shared event log.
#[derive(Debug, Default)]
pub struct EventLog {
    entries: Mutex<VecDeque<Event>>,
}

impl EventLog {
    /// Records an event (also logged at info level, as its text).
    pub fn record(&self, at: Nanos, kind: EventKind) {
        let message = kind.to_string();
        self.append(Event { at, kind, message });
    }

    fn append(&self, event: Event) {
        // A refused reload is an operator's error to see at `warn` (SIGHUP
        // has no other answer); everything else is news.
        match event.kind {
            EventKind::ConfigReloadFailed { .. } => log::warn!("{}", event.message),
            _ => log::info!("{}", event.message),
        }
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() == CAPACITY {
            e.pop_front();
        }
        e.push_back(event);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_typed_events_with_their_text_and_stays_bounded() {
        let log = EventLog::default();
        for g in 0..CAPACITY as u64 + 3 {
            log.record(
                Nanos(g),
                EventKind::LimiterSwitched {
                    algorithm: "token-bucket".into(),
                    generation: g,
                    route: None,
                },
            );
        }
        let events = log.snapshot();
        assert_eq!(events.len(), CAPACITY);
        assert_eq!(events[0].at, Nanos(3));
        assert_eq!(
            events[0].message,
            "rate limiter switched to token-bucket (generation 3)"
        );
        assert!(matches!(
            events[0].kind,
            EventKind::LimiterSwitched { generation: 3, .. }
        ));
    }
}
