//! Load-balancer specs: which algorithms exist and their parameters.
//!
//! Plain data; the core builds the balancer from a spec, off the request path.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::merge_params;

/// Names accepted by `POST /gateway/load-balancer/:name` and `load_balancer`.
pub const BALANCER_NAMES: [&str; 5] = [
    "round-robin",
    "weighted-round-robin",
    "least-connections",
    "ip-hash",
    "consistent-hash",
];

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
}

fn default_virtual_nodes() -> u32 {
    160
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
            _ => {
                return Err(format!(
                    "unknown load balancer '{name}'; valid: {}",
                    BALANCER_NAMES.join(", ")
                ))
            }
        };
        let spec = merge_params(base, params)?;
        if let BalanceSpec::ConsistentHash { virtual_nodes } = spec {
            if !(1..=1000).contains(&virtual_nodes) {
                return Err("virtual_nodes must be between 1 and 1000".to_string());
            }
        }
        Ok(spec)
    }
}
