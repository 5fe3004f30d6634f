//! The active config as `GET /gateway/config` shows it: the JSON document
//! it was built from (the file, or the body of `POST /gateway/config`),
//! with every secret replaced by `"<redacted>"` and the restart-only
//! settings as they run.
//!
//! Secrets are found by field name wherever they appear: `admin_token`,
//! `api_keys` and `api_key_sha256` entries, `secret`, `password`, and the
//! password in a `url`'s user-info (`redis://user:pw@host`). File paths
//! stay (a certificate's or key's path is not its content); contents are
//! never part of the document.
//!
//! A gateway started without a file (the demo, or a `Config` built in
//! code) has no document: one is rendered from the config's main settings.

use serde_json::{json, Map, Value};

use crate::config::{AccessLogTarget, Config};

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `doc` with its secrets redacted.
pub fn redacted(doc: &Value) -> Value {
    let mut v = doc.clone();
    redact(&mut v);
    v
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, field) in map.iter_mut() {
                match k.as_str() {
                    "admin_token" | "secret" | "password" => hide(field),
                    "api_keys" | "api_key_sha256" => match field {
                        Value::Array(items) => items.iter_mut().for_each(hide),
                        other => hide(other),
                    },
                    "url" => {
                        if let Value::String(s) = field {
                            *s = without_password(s);
                        }
                    }
                    _ => redact(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn hide(v: &mut Value) {
    if !v.is_null() {
        *v = Value::String(REDACTED.into());
    }
}

/// `scheme://user:secret@host/...` → `scheme://user:<redacted>@host/...`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    if !userinfo.contains(':') && user.is_empty() {
        return url.to_string();
    }
    format!("{scheme}://{user}:{REDACTED}{}", &rest[at..])
}

/// Sets the restart-only settings in `doc` to the values that run, so the
/// document shows what the gateway does (`fields`: the ones a reload did
/// not apply).
pub fn pin_running(doc: &mut Value, running: &Config, fields: &[&str]) {
    let Value::Object(map) = doc else {
        return;
    };
    for f in fields {
        match *f {
            "listen" => {
                map.insert("listen".into(), json!(running.listen.to_string()));
            }
            "admin" => {
                let v = running.admin.map_or(Value::Null, |a| json!(a.to_string()));
                map.insert("admin".into(), v);
            }
            "workers" => {
                map.insert("workers".into(), json!(running.workers));
            }
            "limits.max_header_bytes" => {
                let limits = map.entry("limits").or_insert_with(|| json!({}));
                if let Value::Object(l) = limits {
                    l.insert(
                        "max_header_bytes".into(),
                        json!(running.limits.max_header_bytes),
                    );
                }
            }
            "tls.listen" => {
                if let (Some(Value::Object(t)), Some(tls)) = (map.get_mut("tls"), &running.tls) {
                    t.insert("listen".into(), json!(tls.listen.to_string()));
                }
            }
            // `tls` added or removed, the token, the store: the document
            // keeps what was sent; the reload's answer named them.
            _ => {}
        }
    }
}

/// A document for a config that came from no file: its listeners, its
/// backends, algorithms, breaker, timeouts, limits, pipeline and routes'
/// names and upstreams.
pub fn render(config: &Config) -> Value {
    let backends = |list: &[crate::backend::BackendDef]| -> Vec<Value> {
        list.iter()
            .map(|b| json!({"name": b.name, "addr": b.addr.to_string(), "weight": b.weight}))
            .collect()
    };
    let mut rate_limit = serde_json::to_value(&config.rate_limit.spec).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut rate_limit {
        o.insert("key".into(), json!(config.rate_limit.key.describe()));
        o.insert("max_keys".into(), json!(config.rate_limit.max_keys));
        if let Some(shadow) = &config.rate_limit.shadow {
            o.insert("shadow".into(), shadow_json(shadow));
        }
    }
    let t = &config.timeouts;
    let l = &config.limits;
    let mut doc = Map::new();
    doc.insert("listen".into(), json!(config.listen.to_string()));
    doc.insert(
        "admin".into(),
        config.admin.map_or(Value::Null, |a| json!(a.to_string())),
    );
    if config.admin_token.is_some() {
        doc.insert("admin_token".into(), json!(REDACTED));
    }
    doc.insert("workers".into(), json!(config.workers));
    if !config.backends.is_empty() {
        doc.insert("backends".into(), json!(backends(&config.backends)));
    }
    if !config.upstreams.is_empty() {
        let ups: Vec<Value> = config
            .upstreams
            .iter()
            .map(|u| {
                json!({
                    "name": u.name,
                    "backends": backends(&u.backends),
                    "load_balancer": serde_json::to_value(&u.load_balancer).unwrap_or(Value::Null),
                    "circuit_breaker": serde_json::to_value(u.circuit_breaker).unwrap_or(Value::Null),
                })
            })
            .collect();
        doc.insert("upstreams".into(), json!(ups));
    }
    doc.insert(
        "load_balancer".into(),
        serde_json::to_value(&config.load_balancer).unwrap_or(Value::Null),
    );
    doc.insert("rate_limit".into(), rate_limit);
    doc.insert(
        "circuit_breaker".into(),
        serde_json::to_value(config.circuit_breaker).unwrap_or(Value::Null),
    );
    doc.insert(
        "timeouts".into(),
        json!({
            "connect_ms": t.connect_ms, "header_read_ms": t.header_read_ms,
            "backend_response_ms": t.backend_response_ms, "idle_ms": t.idle_ms,
            "shutdown_grace_ms": t.shutdown_grace_ms,
        }),
    );
    doc.insert(
        "limits".into(),
        json!({
            "max_header_bytes": l.max_header_bytes, "max_body_bytes": l.max_body_bytes,
            "max_connections": l.max_connections, "max_uri_bytes": l.max_uri_bytes,
            "max_idle_per_backend": l.max_idle_per_backend,
            "min_body_bytes_per_sec": l.min_body_bytes_per_sec,
        }),
    );
    let tr = &config.trace;
    doc.insert(
        "trace".into(),
        json!({
            "enabled": tr.enabled, "sample_per_million": tr.sample_per_million,
            "max_traces": tr.max_traces,
        }),
    );
    doc.insert(
        "pipeline".into(),
        json!(config.pipeline.iter().map(|s| s.name()).collect::<Vec<_>>()),
    );
    if !config.routes.is_empty() {
        let routes: Vec<Value> = config
            .routes
            .iter()
            .map(|r| json!({"name": r.name, "upstream": r.upstream}))
            .collect();
        doc.insert("routes".into(), json!(routes));
    }
    if !config.consumers.is_empty() {
        let consumers: Vec<Value> = config
            .consumers
            .iter()
            .map(|c| json!({"name": c.name, "api_keys": vec![REDACTED; c.key_digests.len()]}))
            .collect();
        doc.insert("consumers".into(), json!(consumers));
    }
    doc.insert(
        "access_log".into(),
        match &config.access_log {
            AccessLogTarget::Stdout => json!("stdout"),
            AccessLogTarget::Off => json!("off"),
            AccessLogTarget::File(p) => json!(p),
        },
    );
    Value::Object(doc)
}

/// `rate_limit.shadow` as written: `"all"` or the list of names.
fn shadow_json(shadow: &crate::algo::limit::shadow::Shadows) -> Value {
    use crate::algo::limit::shadow::Shadows;
    match shadow {
        Shadows::All => json!("all"),
        Shadows::Only(list) => json!(list.iter().map(|a| a.name()).collect::<Vec<_>>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_secret_is_redacted_and_nothing_else() {
        let doc = json!({
            "listen": "127.0.0.1:0",
            "admin_token": "s3cret-admin-token",
            "rate_limit": {"store": {"url": "redis://app:hunter2@127.0.0.1:6379/0", "password": "pw"}},
            "consumers": [{"name": "alice", "api_keys": ["k1", "k2"], "api_key_sha256": ["ab"]}],
            "routes": [{"name": "r", "auth": {"jwt": {"algorithms": ["HS256"], "secret": "jwt-secret",
                         "public_key_pem_file": "/etc/keys/pub.pem"}}}],
        });
        let r = redacted(&doc);
        let text = r.to_string();
        for secret in [
            "s3cret-admin-token",
            "hunter2",
            "\"pw\"",
            "k1",
            "k2",
            "\"ab\"",
            "jwt-secret",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(r["consumers"][0]["name"], "alice");
        assert_eq!(r["consumers"][0]["api_keys"], json!([REDACTED, REDACTED]));
        assert_eq!(
            r["rate_limit"]["store"]["url"],
            "redis://app:<redacted>@127.0.0.1:6379/0"
        );
        assert_eq!(
            r["routes"][0]["auth"]["jwt"]["public_key_pem_file"],
            "/etc/keys/pub.pem"
        );
        assert_eq!(
            without_password("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            without_password("redis://:pw@h:1"),
            "redis://:<redacted>@h:1"
        );
    }

    #[test]
    fn the_demo_renders_and_parses_back() {
        let demo = Config::demo();
        let doc = render(&demo);
        let back = Config::from_json(&doc.to_string()).expect("the rendered demo parses");
        assert_eq!(back.backends.len(), 3);
        assert_eq!(back.rate_limit.spec, demo.rate_limit.spec);
        assert_eq!(back.circuit_breaker, demo.circuit_breaker);
        assert_eq!(back.pipeline, demo.pipeline);
    }
}
