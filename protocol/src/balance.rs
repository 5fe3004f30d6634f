//! Load-balancer specs: which algorithms exist and their parameters.
//!
//! Plain data; the core builds the balancer from a spec, off the request path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::merge_params;

/// Names accepted by `POST /gateway/load-balancer/:name` and `load_balancer`.
pub const BALANCER_NAMES: [&str; 6] = [
    "round-robin",
    "weighted-round-robin",
    "least-connections",
    "ip-hash",
    "consistent-hash",
    "p2c-ewma",
];

/// Bounds of `p2c-ewma`'s `decay_ms`: below 100 ms the estimate forgets
/// between two requests of a quiet backend; above 10 minutes it no longer
/// tracks a backend that recovered.
pub const DECAY_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=600_000;

/// A load-balancing algorithm and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BalanceSpec {
    /// Each eligible backend in turn.
    RoundRobin,
    /// Smooth weighted round robin (nginx SWRR order).
    WeightedRoundRobin,
    /// Fewest in-flight requests; ties broken in rotation.
    LeastConnections,
    /// Client address hash: the same client sticks to the same backend.
    IpHash,
    /// Hash ring with `virtual_nodes` points per unit of weight.
    ConsistentHash {
        /// Ring points per backend (times its weight).
        #[serde(default = "default_virtual_nodes")]
        virtual_nodes: u32,
    },
    /// Power of two choices over peak-EWMA latency (Finagle, Linkerd): of two
    /// random backends, the one with the lower latency × (in flight + 1).
    P2cEwma {
        /// How fast the latency estimate forgets (the EWMA's time constant),
        /// in milliseconds.
        #[serde(default = "default_decay_ms")]
        decay_ms: u64,
    },
}

fn default_virtual_nodes() -> u32 {
    160
}

fn default_decay_ms() -> u64 {
    10_000
}

impl BalanceSpec {
    /// The algorithm's API name (one of [`BALANCER_NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            BalanceSpec::RoundRobin => "round-robin",
            BalanceSpec::WeightedRoundRobin => "weighted-round-robin",
            BalanceSpec::LeastConnections => "least-connections",
            BalanceSpec::IpHash => "ip-hash",
            BalanceSpec::ConsistentHash { .. } => "consistent-hash",
            BalanceSpec::P2cEwma { .. } => "p2c-ewma",
        }
    }

    /// Builds a spec from an API name and optional JSON parameters.
    pub fn from_name(name: &str, params: Option<&Value>) -> Result<BalanceSpec, String> {
        let base = match name {
            "round-robin" => BalanceSpec::RoundRobin,
            "weighted-round-robin" => BalanceSpec::WeightedRoundRobin,
            "least-connections" => BalanceSpec::LeastConnections,
            "ip-hash" => BalanceSpec::IpHash,
            "consistent-hash" => BalanceSpec::ConsistentHash {
                virtual_nodes: default_virtual_nodes(),
            },
            "p2c-ewma" => BalanceSpec::P2cEwma {
                decay_ms: default_decay_ms(),
            },
            _ => {
                return Err(format!(
                    "unknown load balancer '{name}'; valid: {}",
                    BALANCER_NAMES.join(", ")
                ))
            }
        };
        let spec = merge_params(base, params)?;
        match spec {
            BalanceSpec::ConsistentHash { virtual_nodes }
                if !(1..=1000).contains(&virtual_nodes) =>
            {
                Err("virtual_nodes must be between 1 and 1000".to_string())
            }
            BalanceSpec::P2cEwma { decay_ms } if !DECAY_MS_RANGE.contains(&decay_ms) => {
                Err(format!(
                    "decay_ms must be between {} and {}",
                    DECAY_MS_RANGE.start(),
                    DECAY_MS_RANGE.end()
                ))
            }
            spec => Ok(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_name_builds_and_names_itself() {
        for n in BALANCER_NAMES {
            assert_eq!(BalanceSpec::from_name(n, None).unwrap().name(), n);
        }
    }

    #[test]
    fn p2c_ewma_tag_default_and_bounds() {
        let spec = BalanceSpec::from_name("p2c-ewma", None).unwrap();
        assert_eq!(spec, BalanceSpec::P2cEwma { decay_ms: 10_000 });
        // The serde tag is the API name, so the config form round-trips.
        assert_eq!(
            serde_json::to_value(&spec).unwrap(),
            json!({"algorithm": "p2c-ewma", "decay_ms": 10_000})
        );
        let parsed: BalanceSpec = serde_json::from_value(json!({"algorithm": "p2c-ewma"})).unwrap();
        assert_eq!(parsed, spec);
        for ok in [100, 600_000] {
            let p = json!({ "decay_ms": ok });
            assert_eq!(
                BalanceSpec::from_name("p2c-ewma", Some(&p)),
                Ok(BalanceSpec::P2cEwma { decay_ms: ok })
            );
        }
        for bad in [json!(99), json!(600_001), json!(-1), json!("soon")] {
            let p = json!({ "decay_ms": bad });
            let err = BalanceSpec::from_name("p2c-ewma", Some(&p)).unwrap_err();
            assert!(err.starts_with("decay_ms"), "{p}: {err}");
        }
    }
}
