//! An upstream's resilience settings: active health checks, retries under
//! a budget, slow start, the in-flight cap per backend and the queue in
//! front of it. Each upstream may set them; the top-level keys are the
//! `default` upstream's and the defaults of every upstream that does not
//! set its own (as `load_balancer` and `circuit_breaker` are).
//!
//! ```json
//! {"health_check": {"path": "/health", "interval_ms": 1000, "timeout_ms": 500,
//!                   "unhealthy_after": 2, "healthy_after": 2, "expect_status": "2xx",
//!                   "host": "users.internal"},
//!  "retry": {"attempts": 2, "on": ["connect-failure", "reset-before-response", "502", "503", "504"],
//!            "per_try_timeout_ms": 2000, "budget_ratio": 0.2, "budget_min_per_sec": 10},
//!  "slow_start_ms": 10000,
//!  "max_inflight_per_backend": 256, "queue": {"max": 1024, "timeout_ms": 1000}}
//! ```

use serde_json::{Map, Value};

use super::{as_object, check_keys, err, field, ConfigError};

/// Which statuses pass a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectStatus {
    /// A class: `"2xx"` (1-5).
    Class(u8),
    /// One status: `"200"` or `200`.
    Exact(u16),
}

impl ExpectStatus {
    /// Whether `status` passes.
    pub fn accepts(self, status: u16) -> bool {
        match self {
            ExpectStatus::Class(c) => status / 100 == u16::from(c),
            ExpectStatus::Exact(s) => status == s,
        }
    }

    /// As written in the config.
    pub fn describe(self) -> String {
        match self {
            ExpectStatus::Class(c) => format!("{c}xx"),
            ExpectStatus::Exact(s) => s.to_string(),
        }
    }
}

/// `health_check`: probes sent to each backend on their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// The path probed (`GET`).
    pub path: String,
    /// Time between two probes of one backend.
    pub interval_ms: u64,
    /// A probe without a status line by then fails.
    pub timeout_ms: u64,
    /// Failed probes in a row that take a backend out of rotation.
    pub unhealthy_after: u32,
    /// Passed probes in a row that bring it back.
    pub healthy_after: u32,
    /// Which statuses pass.
    pub expect_status: ExpectStatus,
    /// The `Host` sent (default: the backend's address).
    pub host: Option<String>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            path: "/health".into(),
            interval_ms: 1000,
            timeout_ms: 500,
            unhealthy_after: 2,
            healthy_after: 2,
            expect_status: ExpectStatus::Class(2),
            host: None,
        }
    }
}

/// Why a try may be retried (`retry.on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// The connect was refused or failed.
    ConnectFailure,
    /// The connection closed or reset before any response byte.
    ResetBeforeResponse,
    /// The backend answered this status.
    Status(u16),
}

impl RetryOn {
    /// As written in the config.
    pub fn describe(self) -> String {
        match self {
            RetryOn::ConnectFailure => "connect-failure".into(),
            RetryOn::ResetBeforeResponse => "reset-before-response".into(),
            RetryOn::Status(s) => s.to_string(),
        }
    }
}

/// `retry`: failed idempotent requests tried again on another backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first try (so `attempts + 1` tries at most).
    pub attempts: u32,
    /// What may be retried.
    pub on: Vec<RetryOn>,
    /// Bound on one try's wait for a response head (`None`: the route's
    /// backend timeout alone).
    pub per_try_timeout_ms: Option<u64>,
    /// Retries allowed per request, over the last 10 s.
    pub budget_ratio: f64,
    /// Retries allowed per second regardless of traffic.
    pub budget_min_per_sec: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 2,
            on: vec![
                RetryOn::ConnectFailure,
                RetryOn::ResetBeforeResponse,
                RetryOn::Status(502),
                RetryOn::Status(503),
                RetryOn::Status(504),
            ],
            per_try_timeout_ms: None,
            budget_ratio: 0.2,
            budget_min_per_sec: 10,
        }
    }
}

impl RetryPolicy {
    /// Whether `why` may be retried.
    pub fn covers(&self, why: RetryOn) -> bool {
        self.on.contains(&why)
    }
}

/// `queue`: where requests wait when every backend is at its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Requests waiting at most (per upstream).
    pub max: usize,
    /// The longest wait before a 503.
    pub timeout_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max: 1024,
            timeout_ms: 1000,
        }
    }
}

/// An upstream's resilience settings (all off by default).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resilience {
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
    /// Retries.
    pub retry: Option<RetryPolicy>,
    /// The ramp of a recovered backend (0: off).
    pub slow_start_ms: u64,
    /// Requests in flight per backend at most (`None`: no cap).
    pub max_inflight_per_backend: Option<u32>,
    /// The queue in front of the cap (`None` with a cap: 503 at once).
    pub queue: Option<QueueConfig>,
}

/// Reads the resilience keys of `o` (at `prefix`, e.g. `upstreams[0].`),
/// each defaulting to `inherit`'s.
pub(super) fn parse(
    o: &Map<String, Value>,
    prefix: &str,
    inherit: &Resilience,
) -> Result<Resilience, ConfigError> {
    let mut r = inherit.clone();
    if let Some(v) = o.get("health_check") {
        r.health_check = (!v.is_null())
            .then(|| health_check(v, &format!("{prefix}health_check")))
            .transpose()?;
    }
    if let Some(v) = o.get("retry") {
        r.retry = (!v.is_null())
            .then(|| retry(v, &format!("{prefix}retry")))
            .transpose()?;
    }
    if let Some(ms) = field::<u64>(o, "slow_start_ms", &format!("{prefix}slow_start_ms"))? {
        if ms > 3_600_000 {
            return err(
                &format!("{prefix}slow_start_ms"),
                "must be at most 3600000 (1 h)",
            );
        }
        r.slow_start_ms = ms;
    }
    let at = format!("{prefix}max_inflight_per_backend");
    if let Some(n) = field::<u32>(o, "max_inflight_per_backend", &at)? {
        if !(1..=1_000_000).contains(&n) {
            return err(&at, "must be between 1 and 1000000");
        }
        r.max_inflight_per_backend = Some(n);
    }
    if let Some(v) = o.get("queue") {
        r.queue = (!v.is_null())
            .then(|| queue(v, &format!("{prefix}queue")))
            .transpose()?;
    }
    if r.queue.is_some() && r.max_inflight_per_backend.is_none() {
        return err(
            &format!("{prefix}queue"),
            "needs \"max_inflight_per_backend\" (requests queue only when every backend is at its cap)",
        );
    }
    Ok(r)
}

fn ranged(
    o: &Map<String, Value>,
    key: &str,
    at: &str,
    lo: u64,
    hi: u64,
) -> Result<Option<u64>, ConfigError> {
    let path = format!("{at}.{key}");
    match field::<u64>(o, key, &path)? {
        Some(v) if !(lo..=hi).contains(&v) => err(&path, format!("must be between {lo} and {hi}")),
        v => Ok(v),
    }
}

fn health_check(v: &Value, at: &str) -> Result<HealthCheck, ConfigError> {
    let o = as_object(v, at)?;
    check_keys(
        o,
        &format!("{at}."),
        &[
            "path",
            "interval_ms",
            "timeout_ms",
            "unhealthy_after",
            "healthy_after",
            "expect_status",
            "host",
        ],
    )?;
    let mut h = HealthCheck::default();
    if let Some(p) = field::<String>(o, "path", &format!("{at}.path"))? {
        if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return err(
                &format!("{at}.path"),
                "must start with '/' and have no spaces or control bytes",
            );
        }
        h.path = p;
    }
    if let Some(ms) = ranged(o, "interval_ms", at, 50, 3_600_000)? {
        h.interval_ms = ms;
    }
    if let Some(ms) = ranged(o, "timeout_ms", at, 10, 600_000)? {
        h.timeout_ms = ms;
    }
    if let Some(n) = ranged(o, "unhealthy_after", at, 1, 1000)? {
        h.unhealthy_after = n as u32;
    }
    if let Some(n) = ranged(o, "healthy_after", at, 1, 1000)? {
        h.healthy_after = n as u32;
    }
    if let Some(s) = o.get("expect_status") {
        h.expect_status = expect_status(s).ok_or_else(|| {
            ConfigError(format!(
                "{at}.expect_status: must be a status (\"200\") or a class (\"2xx\")"
            ))
        })?;
    }
    if let Some(host) = field::<String>(o, "host", &format!("{at}.host"))? {
        if host.is_empty() || host.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return err(
                &format!("{at}.host"),
                "must be a host name without spaces or control bytes",
            );
        }
        h.host = Some(host);
    }
    Ok(h)
}

fn expect_status(v: &Value) -> Option<ExpectStatus> {
    let s = match v {
        Value::Number(n) => n.as_u64()?.to_string(),
        Value::String(s) => s.to_ascii_lowercase(),
        _ => return None,
    };
    match s.as_bytes() {
        [c @ b'1'..=b'5', b'x', b'x'] => Some(ExpectStatus::Class(c - b'0')),
        _ => s
            .parse::<u16>()
            .ok()
            .filter(|n| (100..=599).contains(n))
            .map(ExpectStatus::Exact),
    }
}

fn retry(v: &Value, at: &str) -> Result<RetryPolicy, ConfigError> {
    let o = as_object(v, at)?;
    check_keys(
        o,
        &format!("{at}."),
        &[
            "attempts",
            "on",
            "per_try_timeout_ms",
            "budget_ratio",
            "budget_min_per_sec",
        ],
    )?;
    let mut r = RetryPolicy::default();
    if let Some(n) = ranged(o, "attempts", at, 0, 10)? {
        r.attempts = n as u32;
    }
    if let Some(list) = field::<Vec<Value>>(o, "on", &format!("{at}.on"))? {
        r.on = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let why = match item {
                Value::String(s) if s == "connect-failure" => Some(RetryOn::ConnectFailure),
                Value::String(s) if s == "reset-before-response" => {
                    Some(RetryOn::ResetBeforeResponse)
                }
                Value::String(s) => s
                    .parse::<u16>()
                    .ok()
                    .filter(|n| (500..=599).contains(n))
                    .map(RetryOn::Status),
                Value::Number(n) => n
                    .as_u64()
                    .filter(|n| (500..=599).contains(n))
                    .map(|n| RetryOn::Status(n as u16)),
                _ => None,
            };
            match why {
                Some(w) => r.on.push(w),
                None => {
                    return err(
                        &format!("{at}.on[{i}]"),
                        "must be \"connect-failure\", \"reset-before-response\" or a 5xx status",
                    )
                }
            }
        }
    }
    r.per_try_timeout_ms = ranged(o, "per_try_timeout_ms", at, 1, 3_600_000)?;
    if let Some(x) = field::<f64>(o, "budget_ratio", &format!("{at}.budget_ratio"))? {
        if !(0.0..=1.0).contains(&x) {
            return err(&format!("{at}.budget_ratio"), "must be between 0 and 1");
        }
        r.budget_ratio = x;
    }
    if let Some(n) = ranged(o, "budget_min_per_sec", at, 0, 1_000_000)? {
        r.budget_min_per_sec = n as u32;
    }
    Ok(r)
}

fn queue(v: &Value, at: &str) -> Result<QueueConfig, ConfigError> {
    let o = as_object(v, at)?;
    check_keys(o, &format!("{at}."), &["max", "timeout_ms"])?;
    let mut q = QueueConfig::default();
    if let Some(n) = ranged(o, "max", at, 1, 1_000_000)? {
        q.max = n as usize;
    }
    if let Some(ms) = ranged(o, "timeout_ms", at, 1, 600_000)? {
        q.timeout_ms = ms;
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(extra: &str) -> Result<Config, String> {
        Config::from_json(&format!(
            r#"{{"listen": "127.0.0.1:0", "admin": null,
                "backends": [{{"name": "a", "addr": "127.0.0.1:9001"}}],
                "upstreams": [{{"name": "users", "backends": [{{"name": "u1", "addr": "127.0.0.1:9002"}}] {extra}}}],
                "routes": [{{"path_prefix": "/", "upstream": "users"}}]}}"#
        ))
        .map_err(|e| e.0)
    }

    #[test]
    fn the_issue_example_parses_with_every_field() {
        let c = parse(
            r#", "health_check": {"path": "/health", "interval_ms": 1000, "timeout_ms": 500, "unhealthy_after": 2,
                  "healthy_after": 2, "expect_status": "2xx", "host": "users.internal"},
                "retry": {"attempts": 2, "on": ["connect-failure", "reset-before-response", "502", "503", "504"],
                  "per_try_timeout_ms": 2000, "budget_ratio": 0.2, "budget_min_per_sec": 10},
                "slow_start_ms": 10000,
                "max_inflight_per_backend": 256, "queue": {"max": 1024, "timeout_ms": 1000}"#,
        )
        .unwrap();
        let r = &c.upstreams[0].resilience;
        let h = r.health_check.as_ref().unwrap();
        assert_eq!(h.host.as_deref(), Some("users.internal"));
        assert!(h.expect_status.accepts(204) && !h.expect_status.accepts(301));
        let retry = r.retry.as_ref().unwrap();
        assert_eq!(retry.attempts, 2);
        assert_eq!(retry.on.len(), 5);
        assert_eq!(retry.per_try_timeout_ms, Some(2000));
        assert_eq!(r.slow_start_ms, 10_000);
        assert_eq!(r.max_inflight_per_backend, Some(256));
        assert_eq!(r.queue.unwrap().max, 1024);
        // The default upstream (top level) sets none of it here.
        assert_eq!(c.resilience, super::Resilience::default());
    }

    #[test]
    fn errors_name_the_field() {
        let e = |extra: &str| parse(extra).unwrap_err();
        assert!(e(r#", "retry": {"on": ["oops"]}"#).starts_with("upstreams[0].retry.on[0]:"));
        assert!(e(r#", "health_check": {"expect_status": "7xx"}"#)
            .starts_with("upstreams[0].health_check.expect_status:"));
        assert!(e(r#", "health_check": {"interval_ms": 1}"#)
            .starts_with("upstreams[0].health_check.interval_ms:"));
        assert!(e(r#", "queue": {"max": 5}"#).starts_with("upstreams[0].queue:"));
        assert!(
            e(r#", "retry": {"budget_ratio": 2}"#).starts_with("upstreams[0].retry.budget_ratio:")
        );
        assert!(
            e(r#", "health_check": {"bogus": 1}"#).starts_with("upstreams[0].health_check.bogus:")
        );
    }

    #[test]
    fn top_level_keys_are_the_defaults_of_every_upstream() {
        let c = Config::from_json(
            r#"{"listen": "127.0.0.1:0", "admin": null,
                "backends": [{"name": "a", "addr": "127.0.0.1:9001"}],
                "slow_start_ms": 5000, "retry": {"attempts": 1},
                "upstreams": [{"name": "users", "backends": [{"name": "u1", "addr": "127.0.0.1:9002"}],
                               "retry": null}],
                "routes": [{"path_prefix": "/", "upstream": "users"}]}"#,
        )
        .unwrap();
        assert_eq!(c.resilience.slow_start_ms, 5000);
        assert_eq!(c.resilience.retry.as_ref().unwrap().attempts, 1);
        assert_eq!(c.upstreams[0].resilience.slow_start_ms, 5000);
        assert!(
            c.upstreams[0].resilience.retry.is_none(),
            "null turns it off"
        );
        assert_eq!(c.all_upstreams()[0].resilience, c.resilience);
    }
}
