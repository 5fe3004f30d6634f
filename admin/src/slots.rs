//! The table of open admin connections: the connection cap, and which
//! connection gives up its slot when a new one arrives at the cap.
//!
//! Invariants: at most `cap` connections are registered at once, so the
//! admin holds at most `cap` client descriptors (one each: the table and the
//! connection's thread share one `Arc<TcpStream>`, nothing is `try_clone`d)
//! and `cap` connection threads. At the cap a new connection evicts the
//! *oldest connection still sending its request* (or lingering after its
//! answer): those are the ones a slow-loris flood consists of, while a real
//! client sends its whole head at once and is past that phase within a
//! millisecond. So a flood of partial heads only ever evicts itself, and the
//! operator's request still gets in; when every slot is answering a complete
//! request, the new connection is closed at once. Only a request that passed
//! authentication (or a `GET` of a static dashboard file, answered at once)
//! ever reaches the answering phase, so an unauthenticated client cannot hold
//! a slot that is safe from eviction. Eviction is
//! `shutdown(Both)`: the evicted thread's blocked read returns at once and
//! the thread drops the descriptor.

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where a connection is in its one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the request head or body: evictable.
    Reading,
    /// The request is complete and being answered: never evicted.
    Answering,
    /// Answered; discarding late input before the close: evictable.
    Closing,
}

struct Entry {
    stream: Arc<TcpStream>,
    phase: Phase,
}

/// Open connections, keyed by accept order (so the first key is the oldest).
pub(crate) struct Slots {
    cap: usize,
    table: Mutex<Table>,
    /// Signalled whenever a connection leaves the table (shutdown waits on it).
    left: Condvar,
}

struct Table {
    next: u64,
    open: BTreeMap<u64, Entry>,
}

/// What [`Slots::admit`] decided.
pub(crate) enum Admission {
    /// Registered; the connection gives its slot back when this drops.
    In(Slot),
    /// Every slot is answering a complete request: close the new one.
    Full,
}

impl Slots {
    pub(crate) fn new(cap: usize) -> Slots {
        Slots {
            cap: cap.max(1),
            table: Mutex::new(Table {
                next: 0,
                open: BTreeMap::new(),
            }),
            left: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panicking connection thread must not take the admin down with it.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `stream`, evicting the oldest evictable connection at the cap.
    pub(crate) fn admit(self: &Arc<Self>, stream: Arc<TcpStream>) -> Admission {
        let mut t = self.lock();
        if t.open.len() >= self.cap {
            let victim = t
                .open
                .iter()
                .find(|(_, e)| e.phase != Phase::Answering)
                .map(|(id, _)| *id);
            let Some(id) = victim else {
                return Admission::Full;
            };
            if let Some(e) = t.open.remove(&id) {
                let _ = e.stream.shutdown(Shutdown::Both);
            }
            self.left.notify_all();
        }
        let id = t.next;
        t.next += 1;
        t.open.insert(
            id,
            Entry {
                stream,
                phase: Phase::Reading,
            },
        );
        Admission::In(Slot {
            slots: Arc::clone(self),
            id,
        })
    }

    /// Connections registered now.
    pub(crate) fn len(&self) -> usize {
        self.lock().open.len()
    }

    /// Shuts down every connection that is not answering (shutdown of the
    /// admin: nobody will finish sending a request any more).
    pub(crate) fn close_idle(&self) {
        for e in self.lock().open.values() {
            if e.phase != Phase::Answering {
                let _ = e.stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Waits until every connection has left, at most `limit`; false if some
    /// are still open then.
    pub(crate) fn wait_empty(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut t = self.lock();
        while !t.open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            t = match self.left.wait_timeout(t, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// One registered connection; dropping it frees the slot.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
}

impl Slot {
    /// Moves the connection to `phase` (a no-op once it has been evicted).
    pub(crate) fn set(&self, phase: Phase) {
        if let Some(e) = self.slots.lock().open.get_mut(&self.id) {
            e.phase = phase;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.slots.lock();
        t.open.remove(&self.id);
        drop(t);
        self.slots.left.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair(l: &TcpListener) -> (TcpStream, Arc<TcpStream>) {
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, Arc::new(s))
    }

    #[test]
    fn the_oldest_reader_is_evicted_and_answering_ones_never() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let slots = Arc::new(Slots::new(2));
        let (_c0, s0) = pair(&l);
        let (_c1, s1) = pair(&l);
        let (_c2, s2) = pair(&l);
        let (_c3, s3) = pair(&l);
        let Admission::In(a) = slots.admit(s0) else {
            panic!("first refused")
        };
        let Admission::In(_b) = slots.admit(s1) else {
            panic!("second refused")
        };
        a.set(Phase::Answering);
        // At the cap: the reader (_b, younger) goes, the answering one stays.
        let Admission::In(c) = slots.admit(s2) else {
            panic!("third refused")
        };
        assert_eq!(slots.len(), 2);
        c.set(Phase::Answering);
        assert!(matches!(slots.admit(s3), Admission::Full));
        drop(a);
        assert_eq!(slots.len(), 1);
        drop(c);
        assert!(slots.wait_empty(Duration::from_millis(10)));
    }
}
