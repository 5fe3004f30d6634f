//! `trace`: the per-request decision trace (see `crate::trace`).
//!
//! ```json
//! {"trace": {"enabled": true, "sample_per_million": 1000, "max_traces": 256}}
//! ```
//!
//! `enabled` governs traces a request asks for (`X-Gateway-Trace: 1`);
//! `sample_per_million` traces that share of requests without asking,
//! whatever `enabled` says; `max_traces` bounds the ring the admin reads.
//! All three apply on reload.

use serde_json::Value;

use super::{as_object, check_keys, err, field, ConfigError};

/// `trace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceConfig {
    /// Honour `X-Gateway-Trace: 1` from trusted clients (default false).
    pub enabled: bool,
    /// Requests traced without asking, per million (0..=1,000,000; default 0).
    pub sample_per_million: u32,
    /// Traces kept for the admin, oldest evicted (1..=65,536; default 256).
    pub max_traces: usize,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            enabled: false,
            sample_per_million: 0,
            max_traces: 256,
        }
    }
}

/// Parses the `trace` object.
pub(super) fn parse(v: &Value) -> Result<TraceConfig, ConfigError> {
    let o = as_object(v, "trace")?;
    check_keys(
        o,
        "trace.",
        &["enabled", "sample_per_million", "max_traces"],
    )?;
    let d = TraceConfig::default();
    let enabled = field::<bool>(o, "enabled", "trace.enabled")?.unwrap_or(d.enabled);
    let sample = field::<u64>(o, "sample_per_million", "trace.sample_per_million")?.map_or(
        Ok(d.sample_per_million),
        |n| {
            u32::try_from(n)
                .ok()
                .filter(|&n| n <= crate::trace::sample::PER_MILLION)
                .ok_or(())
        },
    );
    let Ok(sample_per_million) = sample else {
        return err("trace.sample_per_million", "must be between 0 and 1000000");
    };
    let max_traces = field::<u64>(o, "max_traces", "trace.max_traces")?.unwrap_or(256);
    if !(1..=65_536).contains(&max_traces) {
        return err("trace.max_traces", "must be between 1 and 65536");
    }
    Ok(TraceConfig {
        enabled,
        sample_per_million,
        max_traces: max_traces as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_bounds_and_unknown_fields() {
        assert_eq!(parse(&json!({})).unwrap(), TraceConfig::default());
        let c = parse(&json!({"enabled": true, "sample_per_million": 1_000_000, "max_traces": 3}))
            .unwrap();
        assert_eq!(
            (c.enabled, c.sample_per_million, c.max_traces),
            (true, 1_000_000, 3)
        );
        let e = |v| parse(&v).unwrap_err().0;
        assert!(
            e(json!({"sample_per_million": 1_000_001})).starts_with("trace.sample_per_million:")
        );
        assert!(e(json!({"sample_per_million": -1})).starts_with("trace.sample_per_million:"));
        assert!(e(json!({"max_traces": 0})).starts_with("trace.max_traces:"));
        assert!(e(json!({"max_traces": 65_537})).starts_with("trace.max_traces:"));
        assert!(e(json!({"enabled": "yes"})).starts_with("trace.enabled:"));
        assert!(e(json!({"enable": true})).starts_with("trace.enable: unknown field"));
        assert!(e(json!([])).starts_with("trace: must be an object"));
    }
}
