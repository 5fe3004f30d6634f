//! Per-backend circuit breaker: CLOSED → OPEN → HALF_OPEN → CLOSED/OPEN.
//!
//! The whole state is one `AtomicU64` (`state:2 | count:14 | since_ms:48`)
//! updated by compare-and-swap loops, so any worker may acquire and record
//! without a lock. Time is the `now` argument; this module never reads a clock.
//! Invariant: HALF_OPEN has at most one probe permit out at a time.
//! Breakers of one table share an [`OpenBudget`]: a trip that would open more
//! circuits than `max_open_ratio` allows is suppressed (the circuit stays
//! CLOSED with a fresh failure window).
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

// The three states, as reported to operators: shared vocabulary (events and
// reports carry it to the admin), so it lives in the protocol crate.
use api_gateway_protocol::BreakerSpec;
pub use api_gateway_protocol::CircuitState;

use super::open_budget::OpenBudget;
use super::Nanos;

/// How a request that held a permit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response arrived whose status is not in `failure_statuses`.
    Success,
    /// Connect error, timeout, reset, or a status in `failure_statuses`.
    Failure,
}

/// Leave to send one request to the backend. Hand it back with
/// [`Breaker::record`] or [`Breaker::release`].
#[derive(Debug)]
#[must_use]
pub struct Permit {
    probe: bool,
    /// For a probe: the `since_ms` of the HALF_OPEN word that issued it, so a
    /// verdict from a superseded probe cannot decide a later half-open period.
    stamp: u64,
}

impl Permit {
    /// Whether this is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// A state change worth an event-log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// State before.
    pub from: CircuitState,
    /// State after.
    pub to: CircuitState,
}

/// What [`Breaker::record`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The circuit changed state.
    Moved(Transition),
    /// The failure threshold was reached but the [`OpenBudget`] was spent:
    /// the circuit stays CLOSED and its failure window starts over.
    TripSuppressed,
}

// Word layout. `count` means: CLOSED = failures in the current window,
// HALF_OPEN = 1 while the probe is out, OPEN = unused (0).
// `since_ms` means: CLOSED = start of the failure window (first failure),
// OPEN = when it opened, HALF_OPEN = when the current probe was issued.
const STATE_SHIFT: u32 = 62;
const COUNT_SHIFT: u32 = 48;
const COUNT_MAX: u64 = (1 << 14) - 1;
const SINCE_MASK: u64 = (1 << 48) - 1;

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

fn pack(state: u64, count: u64, since_ms: u64) -> u64 {
    debug_assert!(state <= HALF_OPEN && count <= COUNT_MAX);
    state << STATE_SHIFT | count << COUNT_SHIFT | (since_ms & SINCE_MASK)
}

fn unpack(word: u64) -> (u64, u64, u64) {
    (
        word >> STATE_SHIFT,
        (word >> COUNT_SHIFT) & COUNT_MAX,
        word & SINCE_MASK,
    )
}

/// What a [`Breaker::record`] CAS does to the shared [`OpenBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Nothing (no move into or out of CLOSED).
    Keep,
    /// A slot was reserved for this trip (given back if the CAS fails).
    Reserved,
    /// The trip found no slot and is suppressed.
    Suppressed,
    /// The circuit closes: free its slot after the CAS.
    Free,
}

/// Milliseconds as stored (48 bits: ~8900 years since gateway start).
fn ms(now: Nanos) -> u64 {
    now.as_millis() & SINCE_MASK
}

/// One backend's breaker.
///
/// Semantics chosen (see the tests for each):
/// - CLOSED counts failures in a fixed window that starts at the first
///   failure and lasts `window_ms`; reaching `failure_threshold` inside it
///   opens the circuit. A failure after the window starts a new window at 1.
///   Successes do not reset the count ("N failures within `window_ms`", as in
///   the original design), which also keeps the success path write-free.
/// - OPEN fails fast for `open_ms`, after which [`Breaker::state`] reads
///   HALF_OPEN and exactly one caller of [`Breaker::try_acquire`] wins the
///   probe permit (one CAS decides).
/// - Probe success → CLOSED with counts reset; probe failure → OPEN with a new
///   open period starting at `now`. [`Breaker::release`] gives the probe slot
///   back. A probe that is neither recorded nor released within `open_ms` is
///   presumed lost and a new probe is admitted, so HALF_OPEN can never wedge;
///   the lost probe's verdict, if it ever arrives, is then ignored.
/// - A trip first reserves a slot in the shared [`OpenBudget`]; when none is
///   left the trip is suppressed ([`Change::TripSuppressed`]): the circuit
///   stays CLOSED and its window restarts, so it re-evaluates on fresh
///   failures. Every way back to CLOSED (probe success, reset) frees the slot.
/// - Late results of non-probe permits (admitted while CLOSED) that arrive
///   while OPEN or HALF_OPEN are ignored: the trip already accounted for the
///   failure, a late success must not close the circuit without a probe, and a
///   late failure must not extend the open period. One landing in a *later*
///   CLOSED period counts like any failure (conservative).
///
/// ```
/// use api_gateway::algo::breaker::{Breaker, CircuitState, Outcome};
/// use api_gateway::algo::Nanos;
/// use api_gateway_protocol::BreakerSpec;
///
/// let b = Breaker::new(BreakerSpec {
///     failure_threshold: 2,
///     window_ms: 1000,
///     open_ms: 500,
///     ..BreakerSpec::default()
/// });
/// let t = Nanos::from_millis;
/// for now in [t(0), t(10)] {
///     let p = b.try_acquire(now).unwrap();
///     b.record(p, Outcome::Failure, now);
/// }
/// assert_eq!(b.state(t(20)), CircuitState::Open);
/// assert!(b.try_acquire(t(20)).is_none()); // fail fast
/// let probe = b.try_acquire(t(510)).unwrap(); // open_ms passed: one probe
/// assert!(probe.is_probe() && b.try_acquire(t(510)).is_none());
/// b.record(probe, Outcome::Success, t(520));
/// assert_eq!(b.state(t(520)), CircuitState::Closed);
/// ```
#[derive(Debug)]
pub struct Breaker {
    spec: BreakerSpec,
    word: AtomicU64,
    budget: Arc<OpenBudget>,
}

impl Breaker {
    /// A closed breaker with these thresholds that stands alone (it may
    /// always open). `failure_threshold` is clamped to `1..=16383` (the
    /// 14-bit count; the admin API allows up to 10 000).
    pub fn new(spec: BreakerSpec) -> Breaker {
        Breaker::with_budget(spec, Arc::new(OpenBudget::solo()))
    }

    /// A closed breaker that shares `budget` with its table's other breakers.
    pub fn with_budget(spec: BreakerSpec, budget: Arc<OpenBudget>) -> Breaker {
        Breaker {
            spec,
            word: AtomicU64::new(pack(CLOSED, 0, 0)),
            budget,
        }
    }

    /// The thresholds.
    pub fn spec(&self) -> BreakerSpec {
        self.spec
    }

    fn threshold(&self) -> u64 {
        u64::from(self.spec.failure_threshold).clamp(1, COUNT_MAX)
    }

    /// The state at `now` (an OPEN circuit whose `open_ms` has passed reads HALF_OPEN).
    pub fn state(&self, now: Nanos) -> CircuitState {
        self.decode(self.word.load(Ordering::Acquire), ms(now))
    }

    fn decode(&self, word: u64, now_ms: u64) -> CircuitState {
        let (state, _, since) = unpack(word);
        match state {
            CLOSED => CircuitState::Closed,
            OPEN if now_ms.saturating_sub(since) >= self.spec.open_ms => CircuitState::HalfOpen,
            OPEN => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }

    /// Failures counted in the current CLOSED window (0 in other states).
    pub fn failures(&self) -> u32 {
        let (state, count, _) = unpack(self.word.load(Ordering::Acquire));
        if state == CLOSED {
            count as u32
        } else {
            0
        }
    }

    /// A permit to send, or `None` while failing fast (OPEN, or HALF_OPEN with
    /// the probe already out).
    pub fn try_acquire(&self, now: Nanos) -> Option<Permit> {
        let now_ms = ms(now);
        let mut old = self.word.load(Ordering::Acquire);
        loop {
            let (state, count, since) = unpack(old);
            // Saturating: a racing thread's older `now` reads as "no time passed".
            let elapsed = now_ms.saturating_sub(since);
            let take_probe = match state {
                // Fast path: no write at all while closed.
                CLOSED => {
                    return Some(Permit {
                        probe: false,
                        stamp: 0,
                    })
                }
                OPEN => elapsed >= self.spec.open_ms,
                // Free slot (released), or the probe is presumed lost.
                _ => count == 0 || elapsed >= self.spec.open_ms,
            };
            if !take_probe {
                return None;
            }
            let new = pack(HALF_OPEN, 1, now_ms);
            match self
                .word
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Some(Permit {
                        probe: true,
                        stamp: now_ms,
                    })
                }
                Err(cur) => old = cur,
            }
        }
    }

    /// Records how the permitted request ended; `Some` when the state
    /// changed or a trip was suppressed.
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Nanos) -> Option<Change> {
        let now_ms = ms(now);
        let mut old = self.word.load(Ordering::Acquire);
        loop {
            let (state, count, since) = unpack(old);
            // What the CAS below publishes, and what it does to the budget.
            let (from, new, slot) = match (state, permit.probe) {
                // The probe of the current half-open period decides.
                (HALF_OPEN, true) if since == permit.stamp => match outcome {
                    Outcome::Success => {
                        (CircuitState::HalfOpen, pack(CLOSED, 0, now_ms), Slot::Free)
                    }
                    Outcome::Failure => (CircuitState::HalfOpen, pack(OPEN, 0, now_ms), Slot::Keep),
                },
                (CLOSED, false) => {
                    if outcome == Outcome::Success {
                        return None;
                    }
                    let expired = count == 0 || now_ms.saturating_sub(since) >= self.spec.window_ms;
                    let (count, since) = if expired {
                        (1, now_ms)
                    } else {
                        (count + 1, since)
                    };
                    if count < self.threshold() {
                        (CircuitState::Closed, pack(CLOSED, count, since), Slot::Keep)
                    } else if self.budget.try_reserve() {
                        // Reserved before the word turns OPEN, so the
                        // budget's count never understates.
                        (CircuitState::Closed, pack(OPEN, 0, now_ms), Slot::Reserved)
                    } else {
                        // Too many circuits open already: stay CLOSED with an
                        // empty window, so the next failures re-evaluate.
                        (
                            CircuitState::Closed,
                            pack(CLOSED, 0, now_ms),
                            Slot::Suppressed,
                        )
                    }
                }
                // Late non-probe results while OPEN/HALF_OPEN, and superseded
                // probes (lost, or overtaken by an operator reset): ignored.
                _ => return None,
            };
            match self
                .word
                .compare_exchange_weak(old, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    match slot {
                        Slot::Free => self.budget.release(),
                        Slot::Suppressed => return Some(Change::TripSuppressed),
                        Slot::Keep | Slot::Reserved => {}
                    }
                    let to = self.decode(new, now_ms);
                    return (from != to).then_some(Change::Moved(Transition { from, to }));
                }
                Err(cur) => {
                    if slot == Slot::Reserved {
                        // Lost the race: the slot was for a word we did not write.
                        self.budget.release();
                    }
                    old = cur;
                }
            }
        }
    }

    /// Returns a permit whose request ended without a verdict (client left).
    /// For the probe this frees the half-open slot for the next caller.
    pub fn release(&self, permit: Permit) {
        if !permit.probe {
            // Non-probe permits hold no slot.
            return;
        }
        let held = pack(HALF_OPEN, 1, permit.stamp);
        // Fails harmlessly if the probe was superseded or the circuit reset.
        let _ = self.word.compare_exchange(
            held,
            pack(HALF_OPEN, 0, permit.stamp),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Whether the word is anything but CLOSED (holds a budget slot).
    fn holds_slot(&self) -> bool {
        unpack(self.word.load(Ordering::Acquire)).0 != CLOSED
    }

    /// Forces CLOSED with counts cleared (operator reset); `Some` unless it
    /// was already CLOSED.
    pub fn reset(&self, now: Nanos) -> Option<Transition> {
        let now_ms = ms(now);
        let old = self.word.swap(pack(CLOSED, 0, now_ms), Ordering::AcqRel);
        if unpack(old).0 != CLOSED {
            // This swap is the one move out of OPEN/HALF_OPEN: free its slot.
            self.budget.release();
        }
        let from = self.decode(old, now_ms);
        (from != CircuitState::Closed).then_some(Transition {
            from,
            to: CircuitState::Closed,
        })
    }
}

/// A breaker that goes away while not CLOSED (its backend was removed by a
/// reload and its last user is gone) gives its budget slot back, so the
/// upstream's remaining backends may use it.
impl Drop for Breaker {
    fn drop(&mut self) {
        if self.holds_slot() {
            self.budget.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    fn t(ms: u64) -> Nanos {
        Nanos::from_millis(ms)
    }

    fn breaker(threshold: u32, window_ms: u64, open_ms: u64) -> Breaker {
        Breaker::new(BreakerSpec {
            failure_threshold: threshold,
            window_ms,
            open_ms,
            ..BreakerSpec::default()
        })
    }

    fn fail(b: &Breaker, now: Nanos) -> Option<Change> {
        let p = b.try_acquire(now).expect("permit");
        b.record(p, Outcome::Failure, now)
    }

    const TRIP: Option<Change> = Some(Change::Moved(Transition {
        from: CircuitState::Closed,
        to: CircuitState::Open,
    }));

    #[test]
    fn opens_after_threshold_failures_within_window() {
        let b = breaker(3, 1000, 500);
        assert_eq!(fail(&b, t(0)), None);
        assert_eq!(fail(&b, t(400)), None);
        assert_eq!(b.failures(), 2);
        assert_eq!(b.state(t(999)), CircuitState::Closed);
        assert_eq!(fail(&b, t(999)), TRIP);
        assert_eq!(b.state(t(999)), CircuitState::Open);
    }

    #[test]
    fn window_restarts_at_first_failure_after_expiry() {
        let b = breaker(3, 1000, 500);
        fail(&b, t(0));
        fail(&b, t(500));
        // 1000 ms after the window's first failure: a new window with count 1.
        assert_eq!(fail(&b, t(1000)), None);
        assert_eq!(b.failures(), 1);
        fail(&b, t(1500));
        assert_eq!(fail(&b, t(1999)), TRIP);
    }

    #[test]
    fn success_in_closed_keeps_the_count() {
        let b = breaker(2, 1000, 500);
        fail(&b, t(0));
        let p = b.try_acquire(t(1)).unwrap();
        assert!(!p.is_probe());
        assert_eq!(b.record(p, Outcome::Success, t(1)), None);
        assert_eq!(b.failures(), 1);
        assert_eq!(fail(&b, t(2)), TRIP);
    }

    #[test]
    fn threshold_one_opens_on_first_failure() {
        let b = breaker(1, 1000, 500);
        assert_eq!(fail(&b, t(7)), TRIP);
    }

    #[test]
    fn open_fails_fast_then_reads_half_open() {
        let b = breaker(1, 1000, 500);
        fail(&b, t(100));
        assert!(b.try_acquire(t(100)).is_none());
        assert!(b.try_acquire(t(599)).is_none());
        assert_eq!(b.state(t(599)), CircuitState::Open);
        assert_eq!(b.state(t(600)), CircuitState::HalfOpen);
        // A stale `now` from before the trip must not underflow into "expired".
        assert!(b.try_acquire(t(0)).is_none());
    }

    #[test]
    fn half_open_admits_exactly_one_probe() {
        let b = breaker(1, 1000, 500);
        fail(&b, t(0));
        let probe = b.try_acquire(t(500)).expect("probe");
        assert!(probe.is_probe());
        assert_eq!(b.state(t(500)), CircuitState::HalfOpen);
        for now in [500, 501, 999] {
            assert!(b.try_acquire(t(now)).is_none());
        }
        b.release(probe);
    }

    #[test]
    fn probe_success_closes_and_resets_counts() {
        let b = breaker(2, 1000, 500);
        fail(&b, t(0));
        fail(&b, t(1));
        let probe = b.try_acquire(t(501)).unwrap();
        assert_eq!(
            b.record(probe, Outcome::Success, t(502)),
            Some(Change::Moved(Transition {
                from: CircuitState::HalfOpen,
                to: CircuitState::Closed
            }))
        );
        assert_eq!(b.failures(), 0);
        // Needs the full threshold again.
        assert_eq!(fail(&b, t(503)), None);
        assert_eq!(fail(&b, t(504)), TRIP);
    }

    #[test]
    fn probe_failure_reopens_for_a_new_period() {
        let b = breaker(1, 1000, 500);
        fail(&b, t(0));
        let probe = b.try_acquire(t(600)).unwrap();
        assert_eq!(
            b.record(probe, Outcome::Failure, t(700)),
            Some(Change::Moved(Transition {
                from: CircuitState::HalfOpen,
                to: CircuitState::Open
            }))
        );
        // The new open period starts at the probe's failure (700).
        assert!(b.try_acquire(t(1199)).is_none());
        assert_eq!(b.state(t(1199)), CircuitState::Open);
        assert!(b.try_acquire(t(1200)).unwrap().is_probe());
    }

    #[test]
    fn release_gives_the_probe_slot_back() {
        let b = breaker(1, 1000, 500);
        fail(&b, t(0));
        let probe = b.try_acquire(t(500)).unwrap();
        b.release(probe);
        assert_eq!(b.state(t(501)), CircuitState::HalfOpen);
        let again = b.try_acquire(t(501)).expect("slot freed");
        assert!(again.is_probe());
        assert!(b.try_acquire(t(501)).is_none());
        // Releasing a non-probe permit is a no-op.
        let b2 = breaker(1, 1000, 500);
        b2.release(b2.try_acquire(t(0)).unwrap());
        assert_eq!(b2.state(t(0)), CircuitState::Closed);
    }

    #[test]
    fn late_non_probe_results_are_ignored_while_open_or_half_open() {
        let b = breaker(1, 1000, 500);
        let late_ok = b.try_acquire(t(0)).unwrap();
        let late_fail = b.try_acquire(t(0)).unwrap();
        let late_fail2 = b.try_acquire(t(0)).unwrap();
        fail(&b, t(10));
        // OPEN: a late success does not close, a late failure does not extend.
        assert_eq!(b.record(late_ok, Outcome::Success, t(20)), None);
        assert_eq!(b.record(late_fail, Outcome::Failure, t(400)), None);
        assert_eq!(b.state(t(510)), CircuitState::HalfOpen);
        // HALF_OPEN: same; the probe still decides.
        let probe = b.try_acquire(t(510)).unwrap();
        assert_eq!(b.record(late_fail2, Outcome::Failure, t(511)), None);
        assert_eq!(b.state(t(511)), CircuitState::HalfOpen);
        assert!(b.record(probe, Outcome::Success, t(512)).is_some());
        assert_eq!(b.state(t(512)), CircuitState::Closed);
    }

    #[test]
    fn lost_probe_is_replaced_and_its_verdict_ignored() {
        let b = breaker(1, 1000, 500);
        fail(&b, t(0));
        let lost = b.try_acquire(t(500)).unwrap();
        assert!(b.try_acquire(t(999)).is_none());
        let fresh = b.try_acquire(t(1000)).expect("lost probe replaced");
        assert_eq!(b.record(lost, Outcome::Failure, t(1001)), None);
        assert_eq!(b.state(t(1001)), CircuitState::HalfOpen);
        assert!(b.record(fresh, Outcome::Success, t(1002)).is_some());
        assert_eq!(b.state(t(1002)), CircuitState::Closed);
    }

    #[test]
    fn reset_closes_and_reports_only_real_changes() {
        let b = breaker(2, 1000, 500);
        fail(&b, t(0));
        assert_eq!(b.reset(t(1)), None);
        assert_eq!(b.failures(), 0);
        fail(&b, t(2));
        fail(&b, t(3));
        assert_eq!(
            b.reset(t(4)),
            Some(Transition {
                from: CircuitState::Open,
                to: CircuitState::Closed
            })
        );
        // Reset from HALF_OPEN; the superseded probe's verdict is ignored.
        fail(&b, t(10));
        fail(&b, t(11));
        let probe = b.try_acquire(t(600)).unwrap();
        assert_eq!(
            b.reset(t(601)),
            Some(Transition {
                from: CircuitState::HalfOpen,
                to: CircuitState::Closed
            })
        );
        assert_eq!(b.record(probe, Outcome::Failure, t(602)), None);
        assert_eq!(b.state(t(602)), CircuitState::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn threshold_is_clamped_to_the_count_field() {
        let b = breaker(u32::MAX, 1000, 500);
        assert_eq!(b.threshold(), COUNT_MAX);
        let b = breaker(0, 1000, 500);
        assert_eq!(fail(&b, t(0)), TRIP);
    }

    #[test]
    fn racing_threads_get_exactly_one_probe() {
        const THREADS: usize = 4;
        const ROUNDS: u64 = 300;
        let b = Arc::new(breaker(1, 1000, 5));
        fail(&b, t(0));
        let barrier = Arc::new(Barrier::new(THREADS + 1));
        let won = Arc::new(Mutex::new(Vec::new()));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (b, barrier, won) = (b.clone(), barrier.clone(), won.clone());
                std::thread::spawn(move || {
                    for round in 1..=ROUNDS {
                        barrier.wait();
                        if let Some(p) = b.try_acquire(t(round * 10)) {
                            won.lock().unwrap().push(p);
                        }
                        barrier.wait();
                    }
                })
            })
            .collect();
        for round in 1..=ROUNDS {
            barrier.wait(); // threads race now
            barrier.wait(); // all done
            let mut won = won.lock().unwrap();
            assert_eq!(won.len(), 1, "round {round}");
            let probe = won.pop().unwrap();
            assert!(probe.is_probe());
            // Reopen for the next round (a new open period starting now).
            assert!(b.record(probe, Outcome::Failure, t(round * 10)).is_some());
        }
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn concurrent_failures_are_counted_exactly() {
        const THREADS: u32 = 4;
        const PER: u32 = 1000;
        let b = Arc::new(breaker(THREADS * PER + 1, 1_000_000, 500));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        fail(&b, t(u64::from(i)));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(b.failures(), THREADS * PER);
        assert_eq!(fail(&b, t(5000)), TRIP);
    }

    fn shared(n: usize, max_open: u32, threshold: u32) -> (Arc<OpenBudget>, Vec<Breaker>) {
        let budget = Arc::new(OpenBudget::new(n, max_open));
        let spec = BreakerSpec {
            failure_threshold: threshold,
            window_ms: 1_000_000,
            open_ms: 5,
            ..BreakerSpec::default()
        };
        let breakers = (0..n)
            .map(|_| Breaker::with_budget(spec, budget.clone()))
            .collect();
        (budget, breakers)
    }

    #[test]
    fn a_trip_beyond_the_budget_is_suppressed_and_the_window_restarts() {
        // Two backends, max_open_ratio 0.5: one circuit may open.
        let (budget, bs) = shared(2, 1, 2);
        fail(&bs[0], t(0));
        assert_eq!(fail(&bs[0], t(1)), TRIP);
        assert_eq!(budget.open(), 1);
        fail(&bs[1], t(2));
        assert_eq!(fail(&bs[1], t(3)), Some(Change::TripSuppressed));
        assert_eq!(bs[1].state(t(3)), CircuitState::Closed);
        assert_eq!(bs[1].failures(), 0, "window restarted");
        assert!(bs[1].try_acquire(t(3)).is_some(), "still serving");
        // Once the first circuit closes (probe success), the second may trip.
        let probe = bs[0].try_acquire(t(10)).unwrap();
        assert!(bs[0].record(probe, Outcome::Success, t(10)).is_some());
        assert_eq!(budget.open(), 0);
        fail(&bs[1], t(11));
        assert_eq!(fail(&bs[1], t(12)), TRIP);
        // A probe failure keeps the slot; a reset frees it, once.
        let probe = bs[1].try_acquire(t(20)).unwrap();
        assert!(bs[1].record(probe, Outcome::Failure, t(20)).is_some());
        assert_eq!(budget.open(), 1);
        assert!(bs[1].reset(t(21)).is_some());
        assert_eq!(bs[1].reset(t(22)), None);
        assert_eq!(budget.open(), 0);
    }

    #[test]
    fn a_zero_budget_never_opens() {
        let (budget, bs) = shared(3, 0, 1);
        for b in &bs {
            assert_eq!(fail(b, t(0)), Some(Change::TripSuppressed));
            assert_eq!(b.state(t(0)), CircuitState::Closed);
        }
        assert_eq!(budget.open(), 0);
    }

    #[test]
    fn racing_trips_probes_and_resets_keep_the_budget_exact() {
        const THREADS: u64 = 4;
        // Fewer under miri, which runs this about 1000x slower.
        const OPS: u64 = if cfg!(miri) { 500 } else { 20_000 };
        const BACKENDS: usize = 4;
        const MAX_OPEN: u32 = 2;
        let (budget, bs) = shared(BACKENDS, MAX_OPEN, 2);
        let bs = Arc::new(bs);
        let handles: Vec<_> = (0..THREADS)
            .map(|seed| {
                let (bs, budget) = (bs.clone(), budget.clone());
                std::thread::spawn(move || {
                    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                    let mut suppressed = 0u32;
                    for i in 0..OPS {
                        // xorshift64: a fixed, seeded interleaving of operations.
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let b = &bs[(x % BACKENDS as u64) as usize];
                        let now = t(i / 4);
                        match (x >> 8) % 10 {
                            0..=5 => {
                                if let Some(p) = b.try_acquire(now) {
                                    let probe = p.is_probe();
                                    let c = b.record(p, Outcome::Failure, now);
                                    suppressed += u32::from(c == Some(Change::TripSuppressed));
                                    assert!(!(probe && c == Some(Change::TripSuppressed)));
                                }
                            }
                            6 | 7 => {
                                if let Some(p) = b.try_acquire(now) {
                                    let _ = b.record(p, Outcome::Success, now);
                                }
                            }
                            8 => {
                                if let Some(p) = b.try_acquire(now) {
                                    b.release(p);
                                }
                            }
                            _ => {
                                let _ = b.reset(now);
                            }
                        }
                        assert!(budget.open() <= MAX_OPEN, "cap exceeded");
                    }
                    suppressed
                })
            })
            .collect();
        let suppressed: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(suppressed > 0, "the race never hit the cap");
        let not_closed = bs
            .iter()
            .filter(|b| unpack(b.word.load(Ordering::Acquire)).0 != CLOSED)
            .count() as u32;
        assert_eq!(budget.open(), not_closed, "budget drifted from the words");
    }

    /// A deliberately plain reference model (enum states, a probe
    /// generation counter instead of a packed word and ms stamps).
    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone, Copy)]
        enum M {
            Closed { failures: u64, start: u64 },
            Open { since: u64 },
            HalfOpen { out: bool, issued: u64 },
        }

        struct Model {
            spec: BreakerSpec,
            m: M,
            generation: u64,
        }

        impl Model {
            fn state(&self, now: u64) -> CircuitState {
                match self.m {
                    M::Closed { .. } => CircuitState::Closed,
                    M::Open { since } if now - since >= self.spec.open_ms => CircuitState::HalfOpen,
                    M::Open { .. } => CircuitState::Open,
                    M::HalfOpen { .. } => CircuitState::HalfOpen,
                }
            }
            fn failures(&self) -> u32 {
                match self.m {
                    M::Closed { failures, .. } => failures as u32,
                    _ => 0,
                }
            }
            /// `None` = fail fast; `Some(None)` = normal; `Some(Some(g))` = probe.
            fn acquire(&mut self, now: u64) -> Option<Option<u64>> {
                let probe = match self.m {
                    M::Closed { .. } => return Some(None),
                    M::Open { since } => now - since >= self.spec.open_ms,
                    M::HalfOpen { out, issued } => !out || now - issued >= self.spec.open_ms,
                };
                if !probe {
                    return None;
                }
                self.generation += 1;
                self.m = M::HalfOpen {
                    out: true,
                    issued: now,
                };
                Some(Some(self.generation))
            }
            fn record(&mut self, probe: Option<u64>, ok: bool, now: u64) -> Option<Transition> {
                let from = self.state(now);
                match (self.m, probe) {
                    (M::HalfOpen { .. }, Some(g)) if g == self.generation => {
                        self.m = if ok {
                            M::Closed {
                                failures: 0,
                                start: now,
                            }
                        } else {
                            M::Open { since: now }
                        };
                    }
                    (M::Closed { failures, start }, None) if !ok => {
                        let (failures, start) =
                            if failures == 0 || now - start >= self.spec.window_ms {
                                (1, now)
                            } else {
                                (failures + 1, start)
                            };
                        self.m = if failures >= u64::from(self.spec.failure_threshold) {
                            M::Open { since: now }
                        } else {
                            M::Closed { failures, start }
                        };
                    }
                    _ => return None,
                }
                let to = self.state(now);
                (from != to).then_some(Transition { from, to })
            }
            fn release(&mut self, probe: Option<u64>) {
                if let (M::HalfOpen { out: true, issued }, Some(g)) = (self.m, probe) {
                    if g == self.generation {
                        self.m = M::HalfOpen { out: false, issued };
                    }
                }
            }
            fn reset(&mut self, now: u64) -> Option<Transition> {
                let from = self.state(now);
                self.m = M::Closed {
                    failures: 0,
                    start: now,
                };
                // A superseded probe must never decide again.
                self.generation += 1;
                (from != CircuitState::Closed).then_some(Transition {
                    from,
                    to: CircuitState::Closed,
                })
            }
        }

        #[derive(Debug, Clone)]
        enum Op {
            Advance(u64),
            Acquire,
            Record(usize, bool),
            Release(usize),
            Reset,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u64..400).prop_map(Op::Advance),
                Just(Op::Acquire),
                Just(Op::Acquire),
                (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Record(i, ok)),
                any::<usize>().prop_map(Op::Release),
                Just(Op::Reset),
            ]
        }

        proptest! {
            #[test]
            fn breaker_matches_reference_model(
                threshold in 1u32..5,
                window_ms in 1u64..500,
                open_ms in 1u64..500,
                ops in proptest::collection::vec(op(), 0..120),
            ) {
                let spec = BreakerSpec { failure_threshold: threshold, window_ms, open_ms, ..BreakerSpec::default() };
                let b = Breaker::new(spec);
                let mut m = Model { spec, m: M::Closed { failures: 0, start: 0 }, generation: 0 };
                let mut now = 0u64;
                let mut held: Vec<(Permit, Option<u64>)> = Vec::new();
                for op in ops {
                    match op {
                        Op::Advance(d) => now += d,
                        Op::Acquire => {
                            let got = b.try_acquire(t(now));
                            let want = m.acquire(now);
                            prop_assert_eq!(got.is_some(), want.is_some());
                            if let (Some(p), Some(w)) = (got, want) {
                                prop_assert_eq!(p.is_probe(), w.is_some());
                                held.push((p, w));
                            }
                        }
                        Op::Record(i, ok) if !held.is_empty() => {
                            let (p, w) = held.swap_remove(i % held.len());
                            let outcome = if ok { Outcome::Success } else { Outcome::Failure };
                            prop_assert_eq!(b.record(p, outcome, t(now)), m.record(w, ok, now).map(Change::Moved));
                        }
                        Op::Release(i) if !held.is_empty() => {
                            let (p, w) = held.swap_remove(i % held.len());
                            b.release(p);
                            m.release(w);
                        }
                        Op::Reset => prop_assert_eq!(b.reset(t(now)), m.reset(now)),
                        _ => {}
                    }
                    prop_assert_eq!(b.state(t(now)), m.state(now));
                    prop_assert_eq!(b.failures(), m.failures());
                }
            }
        }
    }
}
