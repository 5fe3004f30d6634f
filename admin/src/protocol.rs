//! The one vocabulary shared by the admin thread and the gateway's control loop.
//!
//! Everything here is plain data: typed, validated algorithm specs and the
//! command/reply envelope carried over `crossbeam-channel`. The data plane
//! depends on this crate, never the reverse, so nothing here may name a type
//! of the gateway core (or mio).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names accepted by `POST /gateway/rate-limiter/:name` and `rate_limit.algorithm`.
pub const LIMITER_NAMES: [&str; 5] = [
    "fixed-window",
    "sliding-log",
    "sliding-counter",
    "token-bucket",
    "leaky-bucket",
];

/// Names accepted by `POST /gateway/load-balancer/:name` and `load_balancer`.
pub const BALANCER_NAMES: [&str; 5] = [
    "round-robin",
    "weighted-round-robin",
    "least-connections",
    "ip-hash",
    "consistent-hash",
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

/// Overlays the fields of `params` (a JSON object) on `base`'s JSON form and
/// parses the result back, so unknown fields and wrong types are reported by
/// name.
fn merge_params<T>(base: T, params: Option<&Value>) -> Result<T, String>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let Some(params) = params else {
        return Ok(base);
    };
    let Value::Object(over) = params else {
        return Err("parameters must be a JSON object".into());
    };
    let mut merged = serde_json::to_value(base).map_err(|e| e.to_string())?;
    let Value::Object(fields) = &mut merged else {
        return Err("internal: spec is not an object".into());
    };
    let defaults = fields.clone();
    for (k, v) in over {
        if k == "algorithm" {
            continue;
        }
        fields.insert(k.clone(), v.clone());
    }
    serde_json::from_value(merged).map_err(|e| {
        // serde's message for a bad value ("invalid value: integer `-1`,
        // expected u32") does not say which field: find the first given
        // field that fails alone on the defaults, and name it.
        let culprit = over.iter().find(|(k, v)| {
            if k.as_str() == "algorithm" {
                return false;
            }
            let mut one = defaults.clone();
            one.insert((*k).clone(), (*v).clone());
            serde_json::from_value::<T>(Value::Object(one)).is_err()
        });
        match culprit {
            Some((k, _)) => format!("{k}: {e}"),
            None => e.to_string(),
        }
    })
}

/// What the admin thread asks of the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Full status report (`GET /gateway/health`).
    Health,
    /// Prometheus text exposition (`GET /metrics`).
    Metrics,
    /// Switch the rate limiter (state starts fresh).
    SetRateLimiter(LimitSpec),
    /// Switch the load balancer.
    SetLoadBalancer(BalanceSpec),
    /// Flip a backend between operator-up and operator-down.
    ToggleBackend(String),
    /// Force a backend's circuit back to CLOSED.
    ResetCircuit(String),
    /// Zero every counter and histogram.
    ResetMetrics,
}

/// The gateway's answer to a [`Command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Success, with a JSON body.
    Json(Value),
    /// Success, with a text body (Prometheus).
    Text(String),
    /// The named thing does not exist (→ 404).
    NotFound(String),
    /// The command is invalid (→ 400).
    Invalid(String),
}

/// A command plus the channel its reply goes back on (bounded(1), so the
/// gateway's `try_send` never blocks).
#[derive(Debug)]
pub struct Envelope {
    /// The request.
    pub cmd: Command,
    /// Where the reply goes.
    pub reply: crossbeam_channel::Sender<Reply>,
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
