//! Circuit-breaker vocabulary: the breaker settings, the set of response
//! statuses that count as failures, and the three states reported to operators.
//!
//! `BreakerSpec` is `Copy` (the status set is a fixed bitset), so every
//! backend's breaker holds its own copy with no allocation or sharing.

use serde::{Deserialize, Serialize};

/// A set of HTTP status codes (100..=599), stored as a bitset so that
/// [`BreakerSpec`] stays `Copy` and a lookup on the response path is one
/// shift. The JSON form is a list of integers, e.g. `[502, 503, 504]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusSet {
    /// Bit `s - 100` is set when status `s` is in the set.
    bits: [u64; 8],
}

impl StatusSet {
    /// Smallest status a set may hold.
    pub const MIN: u16 = 100;
    /// Largest status a set may hold.
    pub const MAX: u16 = 599;

    /// The set of these statuses; `Err` names the first one outside 100..=599.
    pub fn from_statuses(statuses: &[u16]) -> Result<StatusSet, u16> {
        let mut set = StatusSet::default();
        for &s in statuses {
            if !(Self::MIN..=Self::MAX).contains(&s) {
                return Err(s);
            }
            let i = usize::from(s - Self::MIN);
            set.bits[i / 64] |= 1 << (i % 64);
        }
        Ok(set)
    }

    /// Whether `status` is in the set (false for anything outside 100..=599).
    pub fn contains(&self, status: u16) -> bool {
        if !(Self::MIN..=Self::MAX).contains(&status) {
            return false;
        }
        let i = usize::from(status - Self::MIN);
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// The statuses in ascending order.
    pub fn to_vec(&self) -> Vec<u16> {
        (Self::MIN..=Self::MAX)
            .filter(|&s| self.contains(s))
            .collect()
    }
}

impl Serialize for StatusSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_vec().serialize(s)
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<u16>::deserialize(d)?;
        StatusSet::from_statuses(&list).map_err(|s| {
            serde::de::Error::custom(format!(
                "failure_statuses: {s} is not an HTTP status (100..=599)"
            ))
        })
    }
}

/// Circuit-breaker settings, the same for every backend.
///
/// Fields added after the first release (`failure_statuses`,
/// `max_open_ratio`) have defaults, so older JSON forms still parse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSpec {
    /// Failures within `window_ms` that open the circuit: connect errors,
    /// timeouts and resets always count, responses when their status is in
    /// `failure_statuses`.
    pub failure_threshold: u32,
    /// Window in which failures are counted, in milliseconds.
    pub window_ms: u64,
    /// How long an open circuit fails fast before admitting one probe, in milliseconds.
    pub open_ms: u64,
    /// Response statuses that count as a backend failure (default 502, 503,
    /// 504: a plain 500 is the application's answer, not the backend down).
    pub failure_statuses: StatusSet,
    /// Largest share of the backends whose circuits may be open at once
    /// (0.0..=1.0, default 0.5; at least one may open unless it is 0.0). A
    /// trip beyond it is suppressed: the circuit stays closed.
    pub max_open_ratio: f64,
}

/// The statuses that count as failures unless configured otherwise: the
/// gateway-class errors (bad gateway, unavailable, gateway timeout).
pub const DEFAULT_FAILURE_STATUSES: [u16; 3] = [502, 503, 504];

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec {
            failure_threshold: 3,
            window_ms: 10_000,
            open_ms: 15_000,
            failure_statuses: StatusSet::from_statuses(&DEFAULT_FAILURE_STATUSES)
                .unwrap_or_default(),
            max_open_ratio: 0.5,
        }
    }
}

impl BreakerSpec {
    /// Checks ranges; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.failure_threshold) {
            return Err("failure_threshold must be between 1 and 10000".into());
        }
        if !(1..=86_400_000).contains(&self.window_ms) {
            return Err("window_ms must be between 1 and 86400000".into());
        }
        if !(1..=86_400_000).contains(&self.open_ms) {
            return Err("open_ms must be between 1 and 86400000".into());
        }
        // `contains` is false for NaN too.
        if !(0.0..=1.0).contains(&self.max_open_ratio) {
            return Err("max_open_ratio must be between 0.0 and 1.0".into());
        }
        Ok(())
    }
}

/// The three states of a circuit, as reported to operators (health JSON,
/// Prometheus labels, events). The JSON form is the display form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CircuitState {
    /// Traffic flows; failures are counted.
    #[serde(rename = "CLOSED")]
    Closed,
    /// Failing fast: no connection is attempted.
    #[serde(rename = "OPEN")]
    Open,
    /// One probe request decides.
    #[serde(rename = "HALF_OPEN")]
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

impl std::fmt::Display for CircuitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn breaker_spec_without_the_new_fields_still_parses() {
        // The form written before failure_statuses / max_open_ratio existed.
        let old: BreakerSpec = serde_json::from_value(
            json!({"failure_threshold": 3, "window_ms": 10000, "open_ms": 15000}),
        )
        .unwrap();
        assert_eq!(old, BreakerSpec::default());
        assert_eq!(old.failure_statuses.to_vec(), DEFAULT_FAILURE_STATUSES);
        assert!(!old.failure_statuses.contains(500));
        assert_eq!(old.max_open_ratio, 0.5);
    }

    #[test]
    fn status_set_round_trips_and_rejects_non_statuses() {
        let b: BreakerSpec = serde_json::from_value(
            json!({"failure_statuses": [504, 500, 500, 100, 599], "max_open_ratio": 1.0}),
        )
        .unwrap();
        assert_eq!(b.failure_statuses.to_vec(), [100, 500, 504, 599]);
        let back = serde_json::to_value(b).unwrap();
        assert_eq!(back["failure_statuses"], json!([100, 500, 504, 599]));
        assert_eq!(serde_json::from_value::<BreakerSpec>(back).unwrap(), b);
        for bad in [json!([600]), json!([99]), json!([0])] {
            let e = serde_json::from_value::<BreakerSpec>(json!({ "failure_statuses": bad }))
                .unwrap_err()
                .to_string();
            assert!(e.contains("failure_statuses"), "{e}");
        }
        assert!(!b.failure_statuses.contains(0) && !b.failure_statuses.contains(u16::MAX));
    }

    #[test]
    fn max_open_ratio_is_validated_by_name() {
        for bad in [-0.1, 1.01, f64::NAN] {
            let b = BreakerSpec {
                max_open_ratio: bad,
                ..BreakerSpec::default()
            };
            assert!(b.validate().unwrap_err().starts_with("max_open_ratio"));
        }
        for ok in [0.0, 0.5, 1.0] {
            let b = BreakerSpec {
                max_open_ratio: ok,
                ..BreakerSpec::default()
            };
            assert!(b.validate().is_ok());
        }
    }

    #[test]
    fn circuit_state_json_is_its_display_form() {
        for s in [
            CircuitState::Closed,
            CircuitState::Open,
            CircuitState::HalfOpen,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
    }
}
