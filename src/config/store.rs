//! `rate_limit.store`: reads the store settings out of the config JSON, with
//! errors that name the field (`rate_limit.store.sync_ms: ...`).
//!
//! Parsing lives here, on the config side; the settings themselves are the
//! plain data the store runs on (`crate::algo::limit::global::StoreConfig`),
//! so the dependency points one way: config -> algo, never back.

use serde_json::{Map, Value};

use super::ConfigError;
use crate::algo::limit::global::{FailMode, RedisStoreConfig, StoreConfig};

const STORE_KEYS: [&str; 6] = ["kind", "url", "sync_ms", "key_prefix", "fail", "timeout_ms"];

fn cfg_err<T>(field: &str, msg: impl std::fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("rate_limit.store.{field}: {msg}")))
}

fn u64_field(
    o: &Map<String, Value>,
    k: &str,
    default: u64,
    range: (u64, u64),
) -> Result<u64, ConfigError> {
    match o.get(k) {
        None => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if (range.0..=range.1).contains(&n) => Ok(n),
            _ => cfg_err(
                k,
                format!("must be an integer between {} and {}", range.0, range.1),
            ),
        },
    }
}

fn str_field<'a>(o: &'a Map<String, Value>, k: &str) -> Result<Option<&'a str>, ConfigError> {
    match o.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => cfg_err(k, "must be a string"),
    }
}

/// Parses the `rate_limit.store` object; errors name the field
/// (`rate_limit.store.sync_ms: ...`).
pub fn parse(v: &Value) -> Result<StoreConfig, ConfigError> {
    let Value::Object(o) = v else {
        return Err(ConfigError("rate_limit.store: must be an object".into()));
    };
    if let Some(k) = o.keys().find(|k| !STORE_KEYS.contains(&k.as_str())) {
        return cfg_err(
            k,
            format!("unknown key (expected one of {})", STORE_KEYS.join(", ")),
        );
    }
    match str_field(o, "kind")? {
        None | Some("local") => {
            if let Some(k) = o.keys().find(|k| k.as_str() != "kind") {
                return cfg_err(k, "only allowed with \"kind\": \"redis\"");
            }
            Ok(StoreConfig::Local)
        }
        Some("redis") => {
            let url = str_field(o, "url")?.unwrap_or("redis://127.0.0.1:6379");
            // Parse only (no connection): a typo fails at startup, an
            // unreachable server later, as "store down".
            if let Err(e) = redis::Client::open(url) {
                return cfg_err("url", format!("invalid Redis URL: {e}"));
            }
            let sync_ms = u64_field(o, "sync_ms", 50, (1, 60_000))?;
            let timeout_ms = u64_field(o, "timeout_ms", 250, (10, 60_000))?;
            let key_prefix = str_field(o, "key_prefix")?.unwrap_or("api-gateway:rl");
            if key_prefix.is_empty()
                || key_prefix.len() > 64
                || !key_prefix.bytes().all(|b| b.is_ascii_graphic())
            {
                return cfg_err("key_prefix", "must be 1-64 visible ASCII characters");
            }
            let fail = match str_field(o, "fail")? {
                None | Some("open") => FailMode::Open,
                Some("closed") => FailMode::Closed,
                Some(_) => return cfg_err("fail", "must be \"open\" or \"closed\""),
            };
            Ok(StoreConfig::Redis(RedisStoreConfig {
                url: url.to_string(),
                sync_ms,
                key_prefix: key_prefix.to_string(),
                fail,
                timeout_ms,
            }))
        }
        Some(_) => cfg_err("kind", "must be \"local\" or \"redis\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<StoreConfig, ConfigError> {
        parse(&serde_json::from_str(s).unwrap())
    }

    #[test]
    fn parses_redis_store_with_defaults() {
        let StoreConfig::Redis(r) = parse_str(r#"{"kind":"redis"}"#).unwrap() else {
            panic!("redis expected")
        };
        assert_eq!(r.url, "redis://127.0.0.1:6379");
        assert_eq!((r.sync_ms, r.timeout_ms, r.fail), (50, 250, FailMode::Open));
        assert_eq!(
            parse_str(r#"{"kind":"local"}"#).unwrap(),
            StoreConfig::Local
        );
    }

    #[test]
    fn errors_name_the_field() {
        let e = |s: &str| parse_str(s).unwrap_err().0;
        assert!(e(r#"{"kind":"redis","sync_ms":0}"#).starts_with("rate_limit.store.sync_ms:"));
        assert!(e(r#"{"kind":"redis","url":"http://x"}"#).starts_with("rate_limit.store.url:"));
        assert!(e(r#"{"kind":"redis","fail":"maybe"}"#).starts_with("rate_limit.store.fail:"));
        assert!(
            e(r#"{"kind":"redis","key_prefix":""}"#).starts_with("rate_limit.store.key_prefix:")
        );
        assert!(e(r#"{"kind":"memcached"}"#).starts_with("rate_limit.store.kind:"));
        assert!(e(r#"{"kind":"local","url":"redis://x"}"#).starts_with("rate_limit.store.url:"));
        assert!(e(r#"{"kind":"redis","sync":5}"#).starts_with("rate_limit.store.sync:"));
    }
}
