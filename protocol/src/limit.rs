//! Rate-limiter specs and their bounds: which algorithms exist, their
//! parameters, and the largest spans and rates a parameter may imply.
//!
//! Validation lives here, next to the bounds, so the admin (which validates
//! before sending) and the core (which validates config and builds limiters
//! with [`rate_interval_ns`]) can never disagree on what is accepted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::merge_params;

/// Names accepted by `POST /gateway/rate-limiter/:name` and `rate_limit.algorithm`.
pub const LIMITER_NAMES: [&str; 5] = [
    "fixed-window",
    "sliding-log",
    "sliding-counter",
    "token-bucket",
    "leaky-bucket",
];

/// Largest `limit` the sliding log accepts: it stores one timestamp per
/// admitted request, so its memory is `limit * 8` bytes per tracked key.
pub const SLIDING_LOG_MAX_LIMIT: u32 = 1024;

/// A rate-limiting algorithm and its parameters. The JSON form is the config
/// form: `{"algorithm":"token-bucket","capacity":20,"refill_per_sec":10}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LimitSpec {
    /// At most `limit` requests per aligned window of `window_ms`.
    FixedWindow {
        /// Requests admitted per window.
        limit: u32,
        /// Window length in milliseconds.
        window_ms: u64,
    },
    /// At most `limit` requests in any trailing `window_ms` (exact).
    SlidingLog {
        /// Requests admitted per trailing window (at most [`SLIDING_LOG_MAX_LIMIT`]).
        limit: u32,
        /// Window length in milliseconds.
        window_ms: u64,
    },
    /// Weighted estimate over the current and previous fixed windows.
    SlidingCounter {
        /// Requests admitted per (estimated) trailing window.
        limit: u32,
        /// Window length in milliseconds.
        window_ms: u64,
    },
    /// Bursts up to `capacity`, then `refill_per_sec` steady.
    TokenBucket {
        /// Bucket size: the largest burst.
        capacity: u32,
        /// Tokens added per second.
        refill_per_sec: f64,
    },
    /// Shapes traffic: queues up to `capacity` requests, released at `leak_per_sec`.
    LeakyBucket {
        /// Queue length; beyond it requests get 429.
        capacity: u32,
        /// Requests released per second.
        leak_per_sec: f64,
    },
}

impl LimitSpec {
    /// The algorithm's API name (one of [`LIMITER_NAMES`]).
    pub fn name(&self) -> &'static str {
        match self {
            LimitSpec::FixedWindow { .. } => "fixed-window",
            LimitSpec::SlidingLog { .. } => "sliding-log",
            LimitSpec::SlidingCounter { .. } => "sliding-counter",
            LimitSpec::TokenBucket { .. } => "token-bucket",
            LimitSpec::LeakyBucket { .. } => "leaky-bucket",
        }
    }

    /// The defaults used when switching by name without parameters.
    pub fn default_for(name: &str) -> Option<LimitSpec> {
        Some(match name {
            "fixed-window" => LimitSpec::FixedWindow {
                limit: 100,
                window_ms: 10_000,
            },
            "sliding-log" => LimitSpec::SlidingLog {
                limit: 100,
                window_ms: 10_000,
            },
            "sliding-counter" => LimitSpec::SlidingCounter {
                limit: 100,
                window_ms: 10_000,
            },
            "token-bucket" => LimitSpec::TokenBucket {
                capacity: 20,
                refill_per_sec: 2.0,
            },
            "leaky-bucket" => LimitSpec::LeakyBucket {
                capacity: 10,
                leak_per_sec: 5.0,
            },
            _ => return None,
        })
    }

    /// Builds a spec from an API name and optional JSON parameters (an object
    /// whose fields override the defaults). Errors name the bad field.
    pub fn from_name(name: &str, params: Option<&Value>) -> Result<LimitSpec, String> {
        let base = LimitSpec::default_for(name).ok_or_else(|| {
            format!(
                "unknown rate limiter '{name}'; valid: {}",
                LIMITER_NAMES.join(", ")
            )
        })?;
        let spec = merge_params(base, params)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks ranges, including the time spans the parameters imply (see
    /// [`MAX_SPAN_MS`]); the message starts with the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let window = |v: u64| {
            if (1..=MAX_SPAN_MS).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "window_ms: must be between 1 and {MAX_SPAN_MS} (one day)"
                ))
            }
        };
        let at_least_one = |field: &str, v: u32| {
            if v >= 1 {
                Ok(())
            } else {
                Err(format!("{field}: must be at least 1"))
            }
        };
        let rate = |field: &str, v: f64| {
            rate_interval_ns(v).ok_or_else(|| {
                format!(
                    "{field}: must be a number between {MIN_RATE_PER_SEC:.10} (one per day, 1/86400) \
                     and {MAX_RATE_PER_SEC:e} (got {v})"
                )
            })
        };
        match *self {
            LimitSpec::FixedWindow { limit, window_ms } => {
                at_least_one("limit", limit)?;
                window(window_ms)
            }
            LimitSpec::SlidingCounter { limit, window_ms } => {
                at_least_one("limit", limit)?;
                if limit > SLIDING_COUNTER_MAX_LIMIT {
                    return Err(format!(
                        "limit: must be at most {SLIDING_COUNTER_MAX_LIMIT} for sliding-counter \
                         (its counts are 21-bit fields)"
                    ));
                }
                window(window_ms)
            }
            LimitSpec::SlidingLog { limit, window_ms } => {
                at_least_one("limit", limit)?;
                if limit > SLIDING_LOG_MAX_LIMIT {
                    return Err(format!(
                        "limit: must be at most {SLIDING_LOG_MAX_LIMIT} for sliding-log (it stores one timestamp per request)"
                    ));
                }
                window(window_ms)
            }
            LimitSpec::TokenBucket {
                capacity,
                refill_per_sec,
            } => {
                at_least_one("capacity", capacity)?;
                let t = rate("refill_per_sec", refill_per_sec)?;
                if u128::from(capacity) * u128::from(t) > u128::from(MAX_REFILL_NS) {
                    return Err(format!(
                        "capacity: refilling an empty bucket (capacity / refill_per_sec) must take \
                         at most {} days; {capacity} at {refill_per_sec}/s takes longer",
                        MAX_REFILL_NS / NS_PER_DAY
                    ));
                }
                Ok(())
            }
            LimitSpec::LeakyBucket {
                capacity,
                leak_per_sec,
            } => {
                at_least_one("capacity", capacity)?;
                let t = rate("leak_per_sec", leak_per_sec)?;
                if u128::from(capacity) * u128::from(t) > u128::from(MAX_SPAN_NS) {
                    return Err(format!(
                        "capacity: the last of a full queue waits capacity / leak_per_sec, which \
                         must be at most one day (86400 s); {capacity} at {leak_per_sec}/s waits longer"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Longest time span a limiter parameter may set or imply: a window
/// (`window_ms`), the interval between two tokens or two releases
/// (`1 / refill_per_sec`, `1 / leak_per_sec`), and the longest a leaky bucket
/// keeps a request queued (`capacity / leak_per_sec`): one day. Every derived
/// time then stays far below the ~584 years a u64 of nanoseconds holds.
pub const MAX_SPAN_MS: u64 = 86_400_000;

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// [`MAX_SPAN_MS`] in nanoseconds.
pub const MAX_SPAN_NS: u64 = NS_PER_DAY;

/// Longest time a token bucket may take to refill from empty
/// (`capacity / refill_per_sec`): 365 days. It holds no resources (unlike a
/// queued request), so it may exceed [`MAX_SPAN_NS`]; the bound keeps `now`
/// plus it far from u64 overflow.
pub const MAX_REFILL_NS: u64 = 365 * NS_PER_DAY;

/// Fastest rate (`refill_per_sec`, `leak_per_sec`): one per nanosecond.
pub const MAX_RATE_PER_SEC: f64 = 1e9;

/// Slowest rate: one per day (interval [`MAX_SPAN_NS`]).
pub const MIN_RATE_PER_SEC: f64 = 1.0 / 86_400.0;

/// Largest `limit` of the sliding counter: one 21-bit count field.
pub const SLIDING_COUNTER_MAX_LIMIT: u32 = (1 << 21) - 1;

/// Nanoseconds between two events at `per_sec` per second, rounded UP (so
/// rounding can only slow the rate), or `None` unless `per_sec` is finite,
/// at most [`MAX_RATE_PER_SEC`], and the interval at most [`MAX_SPAN_NS`]
/// (within half a ns of float rounding, see below).
/// The same function validates specs and builds the limiters, so a rate is
/// accepted iff the interval the limiter will use is within bounds: exactly
/// one day (`1.0 / 86400.0`) is accepted, anything slower is not.
pub fn rate_interval_ns(per_sec: f64) -> Option<u64> {
    if !(per_sec.is_finite() && per_sec > 0.0 && per_sec <= MAX_RATE_PER_SEC) {
        return None;
    }
    // >= 1 since per_sec <= 1e9; +inf for subnormal rates, rejected below.
    let t = 1e9 / per_sec;
    // Half a nanosecond of slack: a decimal `1/86400` may parse one ULP
    // below the f64 nearest to it (serde_json's fast path), which puts `t`
    // a few hundredths of a ns over one day. Such a rate counts as exactly
    // one per day; a day plus one whole ns is refused.
    if t <= MAX_SPAN_NS as f64 + 0.5 {
        Some((t.ceil() as u64).min(MAX_SPAN_NS))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BalanceSpec;
    use serde_json::json;

    #[test]
    fn limiter_from_name_applies_params_and_validates() {
        let spec = LimitSpec::from_name("token-bucket", Some(&json!({"capacity": 5}))).unwrap();
        assert_eq!(
            spec,
            LimitSpec::TokenBucket {
                capacity: 5,
                refill_per_sec: 2.0
            }
        );
        let err = LimitSpec::from_name("token-bucket", Some(&json!({"capacity": 0}))).unwrap_err();
        assert!(err.contains("capacity"), "{err}");
        let err = LimitSpec::from_name("token-bucket", Some(&json!({"bogus": 1}))).unwrap_err();
        assert!(err.contains("bogus"), "{err}");
        let err = LimitSpec::from_name("nope", None).unwrap_err();
        assert!(err.contains("sliding-log"), "{err}");
    }

    fn leaky(capacity: u32, leak_per_sec: f64) -> Result<(), String> {
        LimitSpec::LeakyBucket {
            capacity,
            leak_per_sec,
        }
        .validate()
    }

    fn token(capacity: u32, refill_per_sec: f64) -> Result<(), String> {
        LimitSpec::TokenBucket {
            capacity,
            refill_per_sec,
        }
        .validate()
    }

    #[test]
    fn rate_interval_is_capped_at_one_day_exactly() {
        assert_eq!(rate_interval_ns(1.0 / 86_400.0), Some(MAX_SPAN_NS));
        assert_eq!(rate_interval_ns(MIN_RATE_PER_SEC), Some(MAX_SPAN_NS));
        // How serde_json parses the decimal form: one ULP below 1/86400.
        let parsed: f64 = serde_json::from_str("0.000011574074074074073").unwrap();
        assert_eq!(rate_interval_ns(parsed), Some(MAX_SPAN_NS));
        // One ns slower than one per day: out.
        let just_beyond = 1e9 / (MAX_SPAN_NS as f64 + 1.0);
        assert_eq!(rate_interval_ns(just_beyond), None);
        assert_eq!(rate_interval_ns(1.0 / 86_400.001), None);
        assert_eq!(rate_interval_ns(1.0 / 86_399.999), Some(86_399_999_000_000));
        assert_eq!(rate_interval_ns(3.0), Some(333_333_334), "rounded up");
        assert_eq!(rate_interval_ns(1e9), Some(1));
        for bad in [
            1e-15,
            1e-300,
            f64::MIN_POSITIVE / 4.0, // subnormal: 1e9 / it is +inf
            0.0,
            -0.0,
            -1.0,
            1e9 * (1.0 + f64::EPSILON),
            1e300,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(rate_interval_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn rates_beyond_one_day_are_rejected_naming_the_field() {
        // Issue 10: capacity 2 at 1e-15/s was accepted and parked requests forever.
        let err = leaky(2, 1e-15).unwrap_err();
        assert!(err.starts_with("leak_per_sec: "), "{err}");
        let err = token(2, 1e-15).unwrap_err();
        assert!(err.starts_with("refill_per_sec: "), "{err}");
        assert_eq!(leaky(1, 1.0 / 86_400.0), Ok(()));
        assert_eq!(token(1, 1.0 / 86_400.0), Ok(()));
        assert!(leaky(1, 1.0 / 86_400.001).is_err());
        assert!(token(1, 1.0 / 86_400.001).is_err());
        for bad in [f64::NAN, f64::INFINITY, -1.0, 0.0, 1e300, 2e9] {
            assert!(leaky(1, bad).unwrap_err().starts_with("leak_per_sec: "));
            assert!(token(1, bad).unwrap_err().starts_with("refill_per_sec: "));
        }
    }

    #[test]
    fn derived_spans_are_bounded() {
        // Leaky bucket: the last queued request waits capacity / rate <= 1 day.
        assert_eq!(leaky(86_400, 1.0), Ok(()));
        let err = leaky(86_401, 1.0).unwrap_err();
        assert!(err.starts_with("capacity: "), "{err}");
        assert!(leaky(2, 1.0 / 86_400.0).is_err(), "2 days of queue");
        assert!(leaky(u32::MAX, 1e9).is_ok(), "4.3 s of queue");
        // Token bucket: refilling from empty takes <= 365 days.
        assert_eq!(token(365, 1.0 / 86_400.0), Ok(()));
        assert!(token(366, 1.0 / 86_400.0)
            .unwrap_err()
            .starts_with("capacity: "));
        assert!(token(u32::MAX, 1e9).is_ok(), "4.3 s to refill");
        assert!(token(u32::MAX, 1.0).is_err(), "136 years to refill");
    }

    #[test]
    fn counts_and_windows_are_bounded() {
        let fw = |limit, window_ms| LimitSpec::FixedWindow { limit, window_ms }.validate();
        assert_eq!(fw(u32::MAX, MAX_SPAN_MS), Ok(()));
        assert!(fw(1, MAX_SPAN_MS + 1)
            .unwrap_err()
            .starts_with("window_ms: "));
        assert!(fw(1, u64::MAX).unwrap_err().starts_with("window_ms: "));
        assert!(fw(1, 0).unwrap_err().starts_with("window_ms: "));
        assert!(fw(0, 1).unwrap_err().starts_with("limit: "));
        let sc = |limit| {
            LimitSpec::SlidingCounter {
                limit,
                window_ms: 1000,
            }
            .validate()
        };
        assert_eq!(sc(SLIDING_COUNTER_MAX_LIMIT), Ok(()));
        assert!(sc(SLIDING_COUNTER_MAX_LIMIT + 1)
            .unwrap_err()
            .starts_with("limit: "));
        let sl = LimitSpec::SlidingLog {
            limit: SLIDING_LOG_MAX_LIMIT + 1,
            window_ms: 1000,
        };
        assert!(sl.validate().unwrap_err().starts_with("limit: "));
    }

    #[test]
    fn type_errors_name_the_field() {
        for (name, params, field) in [
            ("token-bucket", json!({"capacity": -1}), "capacity"),
            (
                "token-bucket",
                json!({"capacity": 4_294_967_296u64}),
                "capacity",
            ),
            ("token-bucket", json!({"capacity": 1e300}), "capacity"),
            (
                "leaky-bucket",
                json!({"leak_per_sec": "fast"}),
                "leak_per_sec",
            ),
            ("fixed-window", json!({"window_ms": -5}), "window_ms"),
            (
                "fixed-window",
                json!({"limit": 5, "window_ms": 1.5}),
                "window_ms",
            ),
        ] {
            let err = LimitSpec::from_name(name, Some(&params)).unwrap_err();
            assert!(err.starts_with(&format!("{field}: ")), "{params}: {err}");
        }
    }

    #[test]
    fn config_form_round_trips() {
        let spec: LimitSpec = serde_json::from_value(
            json!({"algorithm":"token-bucket","capacity":20,"refill_per_sec":10}),
        )
        .unwrap();
        assert_eq!(spec.name(), "token-bucket");
        let b = BalanceSpec::from_name("consistent-hash", None).unwrap();
        assert_eq!(b, BalanceSpec::ConsistentHash { virtual_nodes: 160 });
    }
}
