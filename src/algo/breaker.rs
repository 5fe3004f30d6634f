//! Per-backend circuit breaker: CLOSED → OPEN → HALF_OPEN → CLOSED/OPEN.
//!
//! Placeholder API; the algorithm lands with the traffic-control work.

use api_gateway_admin::BreakerSpec;

use super::Nanos;

/// The three states, as reported to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Traffic flows; failures are counted.
    Closed,
    /// Failing fast: no connection is attempted.
    Open,
    /// One probe request decides.
    HalfOpen,
}

impl CircuitState {
    /// `CLOSED`, `OPEN` or `HALF_OPEN`, as in the original design.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "CLOSED",
            CircuitState::Open => "OPEN",
            CircuitState::HalfOpen => "HALF_OPEN",
        }
    }
}

/// How a request that held a permit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500 arrived.
    Success,
    /// Connect error, timeout, or a 5xx response.
    Failure,
}

/// Leave to send one request to the backend. Hand it back with
/// [`Breaker::record`] or [`Breaker::release`].
#[derive(Debug)]
#[must_use]
pub struct Permit {
    probe: bool,
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

/// One backend's breaker.
#[derive(Debug)]
pub struct Breaker {
    spec: BreakerSpec,
}

impl Breaker {
    /// A closed breaker with these thresholds.
    pub fn new(spec: BreakerSpec) -> Breaker {
        Breaker { spec }
    }

    /// The thresholds.
    pub fn spec(&self) -> BreakerSpec {
        self.spec
    }

    /// The state at `now` (an OPEN circuit whose `open_ms` has passed reads HALF_OPEN).
    pub fn state(&self, _now: Nanos) -> CircuitState {
        CircuitState::Closed
    }

    /// A permit to send, or `None` while failing fast.
    pub fn try_acquire(&self, _now: Nanos) -> Option<Permit> {
        Some(Permit { probe: false })
    }

    /// Records how the permitted request ended.
    pub fn record(&self, permit: Permit, outcome: Outcome, now: Nanos) -> Option<Transition> {
        let _ = (permit, outcome, now);
        None
    }

    /// Returns a permit whose request ended without a verdict (client left).
    pub fn release(&self, permit: Permit) {
        let _ = permit;
    }

    /// Forces CLOSED (operator reset).
    pub fn reset(&self, now: Nanos) -> Option<Transition> {
        let _ = now;
        None
    }
}
