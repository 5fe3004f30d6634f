//! A backend's health as the active checks see it: one atomic byte, read
//! on every pick, written only by the health-check thread.
//!
//! A backend starts `Unchecked` and stays in rotation until checks prove it
//! unhealthy (nginx's default; a new backend is not held back until its
//! first probe). Health is distinct from the circuit: the circuit learns
//! from real requests, health from probes; a backend must pass both.

use std::sync::atomic::{AtomicU8, Ordering};

/// What the checks concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// No check configured, or none decided yet: in rotation.
    Unchecked,
    /// `healthy_after` probes in a row passed.
    Healthy,
    /// `unhealthy_after` probes in a row failed: out of rotation.
    Unhealthy,
}

impl HealthState {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Unchecked => "unchecked",
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
        }
    }

    fn from_u8(v: u8) -> HealthState {
        match v {
            1 => HealthState::Healthy,
            2 => HealthState::Unhealthy,
            _ => HealthState::Unchecked,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            HealthState::Unchecked => 0,
            HealthState::Healthy => 1,
            HealthState::Unhealthy => 2,
        }
    }
}

/// The health cell of one backend.
#[derive(Debug, Default)]
pub struct Health(AtomicU8);

impl Health {
    /// The current state.
    #[inline]
    pub fn state(&self) -> HealthState {
        HealthState::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Whether the backend may be picked (anything but `Unhealthy`).
    #[inline]
    pub fn in_rotation(&self) -> bool {
        self.state() != HealthState::Unhealthy
    }

    /// Sets the state; returns the previous one.
    pub fn set(&self, s: HealthState) -> HealthState {
        HealthState::from_u8(self.0.swap(s.to_u8(), Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unhealthy_leaves_the_rotation() {
        let h = Health::default();
        assert_eq!(h.state(), HealthState::Unchecked);
        assert!(h.in_rotation());
        assert_eq!(h.set(HealthState::Unhealthy), HealthState::Unchecked);
        assert!(!h.in_rotation());
        assert_eq!(h.set(HealthState::Healthy), HealthState::Unhealthy);
        assert!(h.in_rotation());
    }
}
