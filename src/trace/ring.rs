//! The last traces, shared by every worker and read by the admin: a
//! bounded ring, oldest evicted first.
//!
//! Only traced requests (and the admin) take its mutex, so untraced
//! requests never touch it. The bound is the running config's
//! `trace.max_traces`, applied at each insertion, so a reload that lowers
//! it trims the ring at the next trace.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::record::Trace;

/// The last traces, newest at the back.
#[derive(Debug, Default)]
pub struct TraceRing {
    traces: Mutex<VecDeque<Arc<Trace>>>,
}

impl TraceRing {
    /// Adds `trace`, evicting the oldest beyond `capacity` (at least 1).
    pub fn push(&self, trace: Arc<Trace>, capacity: usize) {
        let mut ring = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        while ring.len() >= capacity.max(1) {
            ring.pop_front();
        }
        ring.push_back(trace);
    }

    /// The trace with id `id`, unless unknown or evicted.
    pub fn get(&self, id: &str) -> Option<Arc<Trace>> {
        let ring = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().find(|t| t.id == id).cloned()
    }

    /// The `n` newest traces, newest first, and how many are held.
    pub fn newest(&self, n: usize) -> (Vec<Arc<Trace>>, usize) {
        let ring = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        (ring.iter().rev().take(n).cloned().collect(), ring.len())
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.traces.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::Nanos;
    use crate::trace::record::Origin;
    use std::net::{IpAddr, Ipv4Addr};

    fn trace(id: &str) -> Arc<Trace> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        Arc::new(Trace::new(id.into(), Origin::Asked, ip, Nanos::ZERO))
    }

    #[test]
    fn the_oldest_are_evicted_beyond_the_capacity() {
        let ring = TraceRing::default();
        for id in ["a", "b", "c", "d", "e"] {
            ring.push(trace(id), 3);
        }
        assert!(ring.get("a").is_none() && ring.get("b").is_none());
        let ids: Vec<String> = ring
            .newest(usize::MAX)
            .0
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids, ["e", "d", "c"]);
        let (two, held) = ring.newest(2);
        assert_eq!(held, 3);
        assert_eq!(two.iter().map(|t| &*t.id).collect::<Vec<_>>(), ["e", "d"]);
        // A lower capacity (a reload) trims at the next insertion.
        ring.push(trace("f"), 1);
        assert_eq!(ring.len(), 1);
        assert!(ring.get("f").is_some());
        ring.push(trace("g"), 0);
        assert_eq!(ring.len(), 1, "a capacity of 0 still keeps the newest");
    }
}
