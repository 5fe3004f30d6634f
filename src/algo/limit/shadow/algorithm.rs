//! The five local rate-limiting algorithms as a plain value, for choosing
//! shadows and translating a limit from one algorithm to another.
//!
//! The names are exactly the protocol's [`LIMITER_NAMES`], in the same
//! order; a test pins that, so the two lists cannot drift apart.

use api_gateway_protocol::LimitSpec;

#[cfg(doc)]
use api_gateway_protocol::LIMITER_NAMES;

/// One of the five local algorithms (what a [`LimitSpec`] is, without its
/// parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `fixed-window`: L per aligned window.
    FixedWindow,
    /// `sliding-log`: L in any trailing window (exact).
    SlidingLog,
    /// `sliding-counter`: weighted estimate of the trailing window.
    SlidingCounter,
    /// `token-bucket`: bursts of C, refilled at r per second.
    TokenBucket,
    /// `leaky-bucket`: queues up to C, released at r per second.
    LeakyBucket,
}

impl Algorithm {
    /// Every algorithm, in the protocol's order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
        Algorithm::SlidingCounter,
        Algorithm::TokenBucket,
        Algorithm::LeakyBucket,
    ];

    /// The API name (`"fixed-window"`, ...), as in [`LimitSpec::name`].
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::FixedWindow => "fixed-window",
            Algorithm::SlidingLog => "sliding-log",
            Algorithm::SlidingCounter => "sliding-counter",
            Algorithm::TokenBucket => "token-bucket",
            Algorithm::LeakyBucket => "leaky-bucket",
        }
    }

    /// The algorithm of an API name; `None` for anything else (exact match).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm `spec` configures.
    pub fn of(spec: &LimitSpec) -> Algorithm {
        match spec {
            LimitSpec::FixedWindow { .. } => Algorithm::FixedWindow,
            LimitSpec::SlidingLog { .. } => Algorithm::SlidingLog,
            LimitSpec::SlidingCounter { .. } => Algorithm::SlidingCounter,
            LimitSpec::TokenBucket { .. } => Algorithm::TokenBucket,
            LimitSpec::LeakyBucket { .. } => Algorithm::LeakyBucket,
        }
    }

    /// Whether it counts L requests per window W (else it is a bucket of
    /// capacity C and rate r).
    pub fn is_window(self) -> bool {
        matches!(
            self,
            Algorithm::FixedWindow | Algorithm::SlidingLog | Algorithm::SlidingCounter
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_gateway_protocol::LIMITER_NAMES;

    #[test]
    fn names_are_the_protocols_and_round_trip() {
        let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names, LIMITER_NAMES);
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
            let spec = LimitSpec::default_for(a.name()).unwrap();
            assert_eq!(Algorithm::of(&spec), a);
            assert_eq!(spec.name(), a.name());
        }
        for bad in ["", "Fixed-Window", "token_bucket", "leaky-bucket ", "gcra"] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad:?}");
        }
        let windows: Vec<bool> = Algorithm::ALL.iter().map(|a| a.is_window()).collect();
        assert_eq!(windows, [true, true, true, false, false]);
    }
}
