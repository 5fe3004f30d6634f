//! The shared cap on open circuits (`circuit_breaker.max_open_ratio`) and
//! the panic threshold derived from it.
//!
//! One [`OpenBudget`] per backend table counts the circuits that are not
//! CLOSED. A breaker reserves a slot *before* its word turns OPEN and frees it
//! only *after* its word is back to CLOSED, so the count never understates:
//! at no instant are more than [`OpenBudget::max_open`] circuits open. It is
//! one `AtomicU32`; never a lock.
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU32, Ordering};

/// How many of `backends` circuits may be open at once for `ratio`.
///
/// `floor(ratio × backends)`, but at least 1 when `ratio > 0` (as Envoy's
/// outlier detection ejects at least one host whatever `max_ejection_percent`
/// says): a lone backend that is down still fails fast, and with 2 or 3
/// backends at 0.5 one may open. `ratio == 0.0` means no circuit ever opens.
///
/// ```
/// use api_gateway::algo::open_budget::max_open;
/// assert_eq!(max_open(3, 0.5), 1);
/// assert_eq!(max_open(2, 0.5), 1);
/// assert_eq!(max_open(1, 0.5), 1);
/// assert_eq!(max_open(4, 0.5), 2);
/// assert_eq!(max_open(3, 1.0), 3);
/// assert_eq!(max_open(3, 0.0), 0);
/// ```
pub fn max_open(backends: usize, ratio: f64) -> u32 {
    let n = u32::try_from(backends).unwrap_or(u32::MAX);
    if n == 0 || ratio.is_nan() || ratio <= 0.0 {
        return 0;
    }
    // The epsilon keeps 0.29 × 100 = 28.999… from rounding down to 28.
    let share = (ratio.min(1.0) * f64::from(n) + 1e-9).floor() as u32;
    share.clamp(1, n)
}

/// Counts the circuits that are not CLOSED against a fixed cap.
#[derive(Debug)]
pub struct OpenBudget {
    open: AtomicU32,
    /// Both change only when a reload resizes the upstream
    /// ([`OpenBudget::resize`]); read with relaxed loads.
    max_open: AtomicU32,
    backends: AtomicU32,
}

impl OpenBudget {
    /// A budget for `backends` circuits of which `max_open` may be open.
    pub fn new(backends: usize, max_open: u32) -> OpenBudget {
        let backends = u32::try_from(backends).unwrap_or(u32::MAX);
        OpenBudget {
            open: AtomicU32::new(0),
            max_open: AtomicU32::new(max_open.min(backends)),
            backends: AtomicU32::new(backends),
        }
    }

    /// The budget of a breaker that stands alone: it may always open.
    pub fn solo() -> OpenBudget {
        OpenBudget::new(1, 1)
    }

    /// How many circuits may be open at once.
    pub fn max_open(&self) -> u32 {
        self.max_open.load(Ordering::Relaxed)
    }

    /// A reload changed the upstream's backend count: the cap follows.
    /// Circuits already open stay open (and counted); when they exceed the
    /// new cap, no other circuit opens until enough have closed.
    pub fn resize(&self, backends: usize, max_open: u32) {
        let backends = u32::try_from(backends).unwrap_or(u32::MAX);
        self.backends.store(backends, Ordering::Relaxed);
        self.max_open
            .store(max_open.min(backends), Ordering::Relaxed);
    }

    /// Circuits counted as not CLOSED (an upper bound, exact when quiet).
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Acquire)
    }

    /// The fewest backends with a CLOSED circuit the cap promises
    /// (`backends - max_open`); fewer than this available means panic.
    pub fn panic_floor(&self) -> u32 {
        self.backends
            .load(Ordering::Relaxed)
            .saturating_sub(self.max_open())
    }

    /// Takes a slot for a circuit about to open; `false` when the cap is
    /// reached (the trip must be suppressed). One CAS decides, so racing
    /// trips can never take more than `max_open` slots between them.
    pub(crate) fn try_reserve(&self) -> bool {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_open()).then_some(n + 1)
            })
            .is_ok()
    }

    /// Frees a slot: a reservation whose trip lost its race, or a circuit
    /// that is CLOSED again. Never underflows.
    pub(crate) fn release(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn rounding_is_floor_with_at_least_one() {
        assert_eq!(max_open(0, 0.5), 0);
        assert_eq!(max_open(1, 0.01), 1);
        assert_eq!(max_open(5, 0.5), 2);
        assert_eq!(max_open(100, 0.29), 29);
        assert_eq!(max_open(10, 0.7), 7);
        assert_eq!(max_open(10, 0.3), 3);
        assert_eq!(max_open(7, 1.0), 7);
        assert_eq!(max_open(7, f64::NAN), 0);
        assert_eq!(max_open(7, 2.0), 7);
    }

    #[test]
    fn reserve_stops_at_the_cap_and_release_never_underflows() {
        let b = OpenBudget::new(4, 2);
        assert_eq!(b.panic_floor(), 2);
        assert!(b.try_reserve() && b.try_reserve());
        assert!(!b.try_reserve());
        assert_eq!(b.open(), 2);
        b.release();
        b.release();
        b.release();
        assert_eq!(b.open(), 0);
        assert!(b.try_reserve());
        assert_eq!(OpenBudget::new(2, 5).max_open(), 2);
    }

    #[test]
    fn racing_reservations_never_exceed_the_cap() {
        const THREADS: usize = 4;
        // Fewer under miri, which runs this about 1000x slower.
        const OPS: u64 = if cfg!(miri) { 500 } else { 20_000 };
        let b = Arc::new(OpenBudget::new(8, 3));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    let mut held = 0;
                    for i in 0..OPS {
                        if i % 3 == 2 && held > 0 {
                            b.release();
                            held -= 1;
                        } else if b.try_reserve() {
                            held += 1;
                        }
                        assert!(b.open() <= 3);
                    }
                    held
                })
            })
            .collect();
        let held: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(b.open(), held);
    }
}
