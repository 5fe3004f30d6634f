//! One worker's idle keep-alive connections to backends, keyed by the
//! backend's long-lived [`crate::backend::BackendState::slot`] rather than
//! by a snapshot's indices: a reload that keeps a backend keeps its pooled
//! connections, and a request finishing on an older snapshot returns its
//! connection to the same list.
//!
//! Invariant: an upstream slab index is in at most one list, and only
//! while that upstream is idle (the worker removes it when it closes).

/// Idle connections (upstream slab indices) per backend slot.
#[derive(Debug, Default)]
pub struct IdleConns {
    lists: Vec<Vec<usize>>,
}

impl IdleConns {
    /// Takes the most recently pooled connection to backend `slot`.
    pub fn pop(&mut self, slot: u32) -> Option<usize> {
        self.lists.get_mut(slot as usize)?.pop()
    }

    /// Pools connection `u` to backend `slot`, unless `max` are already
    /// pooled; returns whether it was pooled.
    pub fn push(&mut self, slot: u32, u: usize, max: usize) -> bool {
        let i = slot as usize;
        if self.lists.len() <= i {
            // Slots are dense per gateway and never reused: this grows by
            // one entry per backend the gateway ever had.
            self.lists.resize_with(i + 1, Vec::new);
        }
        let list = &mut self.lists[i];
        if list.len() < max {
            list.push(u);
            true
        } else {
            false
        }
    }

    /// Forgets connection `u` (it is closing).
    pub fn remove(&mut self, slot: u32, u: usize) {
        if let Some(list) = self.lists.get_mut(slot as usize) {
            list.retain(|&x| x != u);
        }
    }

    /// Every pooled connection.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.lists.iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_per_slot_bounded_and_lifo() {
        let mut idle = IdleConns::default();
        assert!(idle.push(3, 10, 2));
        assert!(idle.push(3, 11, 2));
        assert!(!idle.push(3, 12, 2), "full at max");
        assert!(idle.push(0, 20, 2));
        assert_eq!(idle.pop(3), Some(11));
        idle.remove(3, 10);
        assert_eq!(idle.pop(3), None);
        assert_eq!(idle.pop(7), None, "an unseen slot has none");
        assert_eq!(idle.iter().collect::<Vec<_>>(), vec![20]);
    }
}
