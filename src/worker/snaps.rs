//! The snapshots one worker holds: the current one, which every new
//! request takes, and older ones that requests still in flight run on.
//!
//! A reload or a live switch installs a new current snapshot between two
//! events; a request keeps the one its head was parsed under (its serial
//! is in `Session::pinned`). Older snapshots are dropped at the next sweep
//! once no request in flight is pinned to them, and with them whatever
//! only they held (removed backends' state, replaced limiters).

use std::sync::Arc;

use crate::snapshot::Snapshot;

/// The current snapshot and the older ones still in use.
#[derive(Debug)]
pub(super) struct Snaps {
    /// What a request starting now runs on.
    pub current: Arc<Snapshot>,
    older: Vec<Arc<Snapshot>>,
}

impl Snaps {
    pub(super) fn new(current: Arc<Snapshot>) -> Snaps {
        Snaps {
            current,
            older: Vec::new(),
        }
    }

    /// The snapshot of a request pinned to serial `pin`; the current one
    /// between requests (`None`).
    #[inline]
    pub(super) fn for_pin(&self, pin: Option<u64>) -> &Snapshot {
        match pin {
            Some(serial) if serial != self.current.serial => self
                .older
                .iter()
                .find(|s| s.serial == serial)
                .map_or(&self.current, |s| s),
            _ => &self.current,
        }
    }

    /// Makes `next` current; the old one stays while requests run on it.
    pub(super) fn install(&mut self, next: Arc<Snapshot>) {
        let old = std::mem::replace(&mut self.current, next);
        self.older.push(old);
    }

    /// Whether older snapshots are still held.
    pub(super) fn has_older(&self) -> bool {
        !self.older.is_empty()
    }

    /// Drops every older snapshot that no request in `pins` runs on.
    pub(super) fn release_unpinned(&mut self, pins: impl Iterator<Item = u64>) {
        let mut used: Vec<u64> = pins.collect();
        used.sort_unstable();
        used.dedup();
        self.older.retain(|s| used.binary_search(&s.serial).is_ok());
    }
}
