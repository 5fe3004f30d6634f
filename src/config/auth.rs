//! `consumers` and each route's `auth`: who may call, and how they prove it.
//!
//! Invariants of a loaded config: consumer names are unique; no key belongs
//! to two consumers (compared as digests, so a plaintext key and another
//! consumer's `api_key_sha256` of it collide too); plaintext keys are
//! hashed while parsing and never stored; every name in an `allow` list is
//! a configured consumer; a JWT route has the secret or public key each of
//! its algorithms needs, and its PEM file was read and parsed. Error
//! messages never quote a key or a secret.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::{as_object, check_keys, err, field, from_value, ConfigError, RateLimitConfig};
use crate::auth::KeyDigest;

/// One consumer.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Unique name: what `X-Consumer` says, what `allow` lists, the metric
    /// label.
    pub name: String,
    /// SHA-256 digests of its API keys (`api_keys` hashed on load, and
    /// `api_key_sha256` as given).
    pub key_digests: Vec<KeyDigest>,
    /// Its own limit on routes whose limiter is keyed by consumer.
    pub rate_limit: Option<RateLimitConfig>,
}

/// A route's `auth`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteAuthConfig {
    /// API-key authentication.
    pub api_key: Option<ApiKeyConfig>,
    /// JWT bearer authentication.
    pub jwt: Option<JwtConfig>,
    /// The consumers let through (`None`: any authenticated caller).
    pub allow: Option<Vec<String>>,
}

/// Where `auth.api_key` reads the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiKeyConfig {
    /// A request header (default `X-API-Key`).
    Header(String),
    /// A query parameter.
    Query(String),
}

/// `auth.jwt`.
#[derive(Clone, PartialEq)]
pub struct JwtConfig {
    /// Algorithms a token may be signed with.
    pub algorithms: Vec<Algorithm>,
    /// The HMAC secret (HS*).
    pub secret: Option<String>,
    /// `public_key_pem_file`, and the PEM read from it (RS*, ES*).
    pub public_key: Option<(String, Vec<u8>)>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must be in the token).
    pub audience: Option<Vec<String>>,
    /// Tolerance on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// The claim naming the consumer.
    pub consumer_claim: String,
}

impl std::fmt::Debug for JwtConfig {
    // The secret stays out of any debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithms", &self.algorithms)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key", &self.public_key.as_ref().map(|(f, _)| f))
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .field("consumer_claim", &self.consumer_claim)
            .finish()
    }
}

/// The default `auth.api_key.header`.
pub const DEFAULT_KEY_HEADER: &str = "X-API-Key";

/// The default `auth.jwt.leeway_secs` (Envoy's and jsonwebtoken's).
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Reads `consumers`.
pub(super) fn consumers(v: &Value) -> Result<Vec<ConsumerConfig>, ConfigError> {
    let Value::Array(list) = v else {
        return err("consumers", "must be a list");
    };
    // Which consumer holds each digest, to name the owner of a clash.
    let mut owners: HashMap<KeyDigest, usize> = HashMap::new();
    let mut out: Vec<ConsumerConfig> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let path = format!("consumers[{i}]");
        let o = as_object(c, &path)?;
        check_keys(
            o,
            &format!("{path}."),
            &["name", "api_keys", "api_key_sha256", "rate_limit"],
        )?;
        let name: String = field(o, "name", &format!("{path}.name"))?
            .ok_or_else(|| ConfigError(format!("{path}.name: required")))?;
        if !super::routing::is_name(&name) {
            return err(
                &format!("{path}.name"),
                "must be 1-64 characters of letters, digits, '-', '_' and '.'",
            );
        }
        if out.iter().any(|c| c.name == name) {
            return err(
                &format!("{path}.name"),
                format!("duplicate consumer name \"{name}\""),
            );
        }
        let mut digests = Vec::new();
        let mut add = |d: KeyDigest, at: String, out: &[ConsumerConfig]| {
            if let Some(&owner) = owners.get(&d) {
                let whose = match out.get(owner) {
                    Some(c) => format!("consumer \"{}\"", c.name),
                    None => "this consumer".to_string(),
                };
                return err(&at, format!("the same key is already {whose}'s"));
            }
            owners.insert(d, i);
            digests.push(d);
            Ok(())
        };
        if let Some(keys) = field::<Vec<String>>(o, "api_keys", &format!("{path}.api_keys"))? {
            for (j, k) in keys.iter().enumerate() {
                let at = format!("{path}.api_keys[{j}]");
                check_key(k, &at)?;
                add(KeyDigest::of(k.as_bytes()), at, &out)?;
            }
        }
        if let Some(hexes) =
            field::<Vec<String>>(o, "api_key_sha256", &format!("{path}.api_key_sha256"))?
        {
            for (j, h) in hexes.iter().enumerate() {
                let at = format!("{path}.api_key_sha256[{j}]");
                let d = KeyDigest::from_hex(h).ok_or_else(|| {
                    ConfigError(format!("{at}: must be 64 hex digits (a SHA-256 digest)"))
                })?;
                add(d, at, &out)?;
            }
        }
        let rate_limit = match o.get("rate_limit") {
            None => None,
            Some(v) => Some(consumer_limit(v, &format!("{path}.rate_limit"))?),
        };
        out.push(ConsumerConfig {
            name,
            key_digests: digests,
            rate_limit,
        });
    }
    Ok(out)
}

/// A plaintext key: what a header value can carry. The message never
/// quotes the key.
fn check_key(k: &str, at: &str) -> Result<(), ConfigError> {
    if k.is_empty() || k.len() > 4096 {
        return err(at, "must be 1 to 4096 characters");
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return err(
            at,
            "must be visible ASCII (no spaces or control characters)",
        );
    }
    Ok(())
}

/// `consumers[i].rate_limit`: an algorithm and its parameters. The key is
/// the consumer by definition, and the count is in-process.
fn consumer_limit(v: &Value, at: &str) -> Result<RateLimitConfig, ConfigError> {
    let o = as_object(v, at)?;
    for k in ["key", "store", "max_keys", "shadow"] {
        if o.contains_key(k) {
            return err(
                &format!("{at}.{k}"),
                "not allowed here: a consumer's own limit is keyed by the consumer (shadows run beside route and top-level limiters)",
            );
        }
    }
    let mut rl = super::rate_limit_at(v, at)?;
    // One key (the consumer) per table: the smallest table will do.
    rl.max_keys = 16;
    Ok(rl)
}

/// Reads a route's `auth` at `path`; `consumers` are the configured names.
pub(super) fn route_auth(
    v: &Value,
    path: &str,
    consumers: &[ConsumerConfig],
) -> Result<RouteAuthConfig, ConfigError> {
    let o = as_object(v, path)?;
    check_keys(o, &format!("{path}."), &["api_key", "jwt", "allow"])?;
    let api_key = match o.get("api_key") {
        None => None,
        Some(v) => Some(api_key(v, &format!("{path}.api_key"))?),
    };
    let jwt = match o.get("jwt") {
        None => None,
        Some(v) => Some(jwt(v, &format!("{path}.jwt"))?),
    };
    if api_key.is_none() && jwt.is_none() {
        return err(path, "needs \"api_key\" or \"jwt\"");
    }
    let allow = match o.get("allow") {
        None => None,
        Some(v) => {
            let names: Vec<String> = from_value(v, &format!("{path}.allow"))?;
            if names.is_empty() {
                return err(
                    &format!("{path}.allow"),
                    "must not be empty (leave it out to let any consumer in)",
                );
            }
            for (i, n) in names.iter().enumerate() {
                if !consumers.iter().any(|c| &c.name == n) {
                    return err(
                        &format!("{path}.allow[{i}]"),
                        format!("no consumer named \"{n}\""),
                    );
                }
            }
            Some(names)
        }
    };
    Ok(RouteAuthConfig {
        api_key,
        jwt,
        allow,
    })
}

fn api_key(v: &Value, path: &str) -> Result<ApiKeyConfig, ConfigError> {
    let o = as_object(v, path)?;
    check_keys(o, &format!("{path}."), &["header", "query"])?;
    let header: Option<String> = field(o, "header", &format!("{path}.header"))?;
    let query: Option<String> = field(o, "query", &format!("{path}.query"))?;
    match (header, query) {
        (Some(_), Some(_)) => err(path, "has both header and query (choose one)"),
        (Some(h), None) => {
            if !crate::http::upgrade::is_token(&h) {
                return err(&format!("{path}.header"), "must be a header name");
            }
            if super::routing::is_protected_header(&h) {
                return err(
                    &format!("{path}.header"),
                    format!("\"{h}\" is a hop-by-hop or framing header"),
                );
            }
            Ok(ApiKeyConfig::Header(h))
        }
        (None, Some(q)) => {
            let ok = !q.is_empty()
                && q.len() <= 256
                && q.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'&' | b'=' | b'#' | b'?'));
            if !ok {
                return err(
                    &format!("{path}.query"),
                    "must be a query parameter name (visible ASCII without '&', '=', '#' or '?')",
                );
            }
            Ok(ApiKeyConfig::Query(q))
        }
        (None, None) => Ok(ApiKeyConfig::Header(DEFAULT_KEY_HEADER.into())),
    }
}

fn jwt(v: &Value, path: &str) -> Result<JwtConfig, ConfigError> {
    let o = as_object(v, path)?;
    check_keys(
        o,
        &format!("{path}."),
        &[
            "algorithms",
            "secret",
            "public_key_pem_file",
            "issuer",
            "audience",
            "leeway_secs",
            "consumer_claim",
        ],
    )?;
    let sub = |k: &str| format!("{path}.{k}");
    let names: Vec<String> = field(o, "algorithms", &sub("algorithms"))?
        .ok_or_else(|| ConfigError(format!("{}: required", sub("algorithms"))))?;
    if names.is_empty() {
        return err(&sub("algorithms"), "must not be empty");
    }
    let mut algorithms = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        let alg = algorithm(n).ok_or_else(|| {
            ConfigError(format!(
                "{path}.algorithms[{i}]: \"{n}\" is not supported (HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384)"
            ))
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    let secret: Option<String> = field(o, "secret", &sub("secret"))?;
    if secret.as_deref() == Some("") {
        return err(&sub("secret"), "must not be empty");
    }
    let public_key = match field::<String>(o, "public_key_pem_file", &sub("public_key_pem_file"))? {
        None => None,
        Some(file) => {
            let pem = std::fs::read(&file).map_err(|e| {
                ConfigError(format!(
                    "{}: cannot read \"{file}\": {e}",
                    sub("public_key_pem_file")
                ))
            })?;
            Some((file, pem))
        }
    };
    for alg in &algorithms {
        let name = algorithm_name(*alg);
        match family(*alg) {
            Family::Hmac if secret.is_none() => {
                return err(path, format!("{name} needs \"secret\""));
            }
            Family::Rsa | Family::Ec => {
                let Some((file, pem)) = &public_key else {
                    return err(path, format!("{name} needs \"public_key_pem_file\""));
                };
                let parsed = match family(*alg) {
                    Family::Rsa => DecodingKey::from_rsa_pem(pem),
                    _ => DecodingKey::from_ec_pem(pem),
                };
                if let Err(e) = parsed {
                    return err(
                        &sub("public_key_pem_file"),
                        format!("\"{file}\" is not a PEM public key for {name}: {e}"),
                    );
                }
            }
            Family::Hmac => {}
        }
    }
    let issuer: Option<String> = field(o, "issuer", &sub("issuer"))?;
    let audience = match o.get("audience") {
        None => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(v) => {
            let list: Vec<String> = from_value(v, &sub("audience"))?;
            if list.is_empty() {
                return err(&sub("audience"), "must not be empty");
            }
            Some(list)
        }
    };
    let leeway_secs = match field::<u64>(o, "leeway_secs", &sub("leeway_secs"))? {
        None => DEFAULT_LEEWAY_SECS,
        Some(s) if s > 86_400 => return err(&sub("leeway_secs"), "must be at most 86400"),
        Some(s) => s,
    };
    let consumer_claim = field::<String>(o, "consumer_claim", &sub("consumer_claim"))?
        .unwrap_or_else(|| "sub".into());
    if consumer_claim.is_empty() {
        return err(&sub("consumer_claim"), "must not be empty");
    }
    Ok(JwtConfig {
        algorithms,
        secret,
        public_key,
        issuer,
        audience,
        leeway_secs,
        consumer_claim,
    })
}

/// Which kind of key an algorithm verifies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A shared secret (HS*).
    Hmac,
    /// An RSA public key (RS*, PS*).
    Rsa,
    /// An EC public key (ES*).
    Ec,
}

/// The key family of `alg`.
pub fn family(alg: Algorithm) -> Family {
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => Family::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => Family::Ec,
        _ => Family::Rsa,
    }
}

/// The JOSE name of `alg`.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
    }
}

/// Parses a JOSE algorithm name; `none` and EdDSA are not offered.
fn algorithm(name: &str) -> Option<Algorithm> {
    let alg = match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        _ => return None,
    };
    Some(alg)
}

#[cfg(test)]
mod tests {
    use crate::auth::KeyDigest;
    use crate::config::{Config, KeySource, Stage};

    fn load(consumers: &str, routes: &str, extra: &str) -> Result<Config, String> {
        let text = format!(
            r#"{{"listen": "127.0.0.1:0", "admin": null,
                "backends": [{{"name": "d1", "addr": "127.0.0.1:3001"}}],
                "consumers": {consumers}, "routes": {routes}{extra}}}"#
        );
        Config::from_json(&text).map_err(|e| e.0)
    }

    const TWO: &str = r#"[{"name": "alice", "api_keys": ["k-alice-1", "k-alice-2"]},
        {"name": "bob", "api_key_sha256": ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"],
         "rate_limit": {"algorithm": "token-bucket", "capacity": 5, "refill_per_sec": 1}}]"#;

    #[test]
    fn the_issue_example_loads_and_keys_are_held_as_digests() {
        let c = load(
            TWO,
            r#"[{"name": "admin", "path_prefix": "/admin", "upstream": "default",
                 "auth": {"api_key": {"header": "X-API-Key"}, "allow": ["alice"]}},
                {"name": "orders", "path_prefix": "/orders", "upstream": "default",
                 "auth": {"jwt": {"algorithms": ["HS256"], "secret": "s", "issuer": "https://id.example.test",
                                  "audience": "orders", "leeway_secs": 30, "consumer_claim": "sub"}},
                 "rate_limit": {"algorithm": "token-bucket", "capacity": 20, "refill_per_sec": 5, "key": "consumer"}},
                {"name": "q", "path_prefix": "/q", "upstream": "default", "auth": {"api_key": {"query": "apikey"}}},
                {"name": "dflt", "path_prefix": "/d", "upstream": "default", "auth": {"api_key": {}}}]"#,
            "",
        )
        .unwrap();
        assert_eq!(c.consumers.len(), 2);
        assert_eq!(
            c.consumers[0].key_digests,
            [KeyDigest::of(b"k-alice-1"), KeyDigest::of(b"k-alice-2")]
        );
        assert_eq!(c.consumers[1].key_digests, [KeyDigest::of(b"abc")]);
        assert!(c.consumers[1].rate_limit.is_some());
        let admin = c.routes[0].auth.as_ref().unwrap();
        assert_eq!(admin.allow.as_deref(), Some(&["alice".to_string()][..]));
        let jwt = c.routes[1].auth.as_ref().unwrap().jwt.as_ref().unwrap();
        assert_eq!(jwt.leeway_secs, 30);
        assert_eq!(jwt.audience.as_deref(), Some(&["orders".to_string()][..]));
        assert_eq!(
            c.routes[1].rate_limit.as_ref().unwrap().key,
            KeySource::Consumer
        );
        assert_eq!(
            c.routes[3].auth.as_ref().unwrap().api_key,
            Some(super::ApiKeyConfig::Header("X-API-Key".into()))
        );
        // `auth` is placed before rate-limit when the pipeline does not name it.
        assert_eq!(
            c.pipeline,
            [
                Stage::Logger,
                Stage::Cors,
                Stage::Auth,
                Stage::RateLimit,
                Stage::CircuitBreaker,
                Stage::Proxy
            ]
        );
        // No plaintext key or secret survives in the loaded config's
        // debug output.
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("k-alice") && !debug.contains("\"s\""),
            "{debug}"
        );
    }

    #[test]
    fn without_auth_routes_the_pipeline_is_unchanged() {
        let c = load(TWO, r#"["/a"]"#, "").unwrap();
        assert!(!c.pipeline.contains(&Stage::Auth));
        let c = load(
            TWO,
            r#"[{"path_prefix": "/a", "upstream": "default", "auth": {"api_key": {}}}]"#,
            r#", "pipeline": ["rate-limit", "proxy"]"#,
        )
        .unwrap();
        assert_eq!(c.pipeline, [Stage::Auth, Stage::RateLimit, Stage::Proxy]);
    }

    #[test]
    fn errors_name_the_field_and_never_quote_a_key() {
        let route = |auth: &str| {
            format!(r#"[{{"path_prefix": "/a", "upstream": "default", "auth": {auth}}}]"#)
        };
        let cases = [
            (
                TWO.to_string(),
                route(r#"{"api_key": {}, "allow": ["carol"]}"#),
                r#"routes[0].auth.allow[0]: no consumer named "carol""#,
            ),
            (
                r#"[{"name": "a", "api_keys": ["k-1"]}, {"name": "b", "api_keys": ["k-1"]}]"#.into(),
                r#"["/a"]"#.into(),
                r#"consumers[1].api_keys[0]: the same key is already consumer "a"'s"#,
            ),
            (
                r#"[{"name": "a", "api_keys": ["abc"]}, {"name": "b", "api_key_sha256": ["BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"]}]"#.into(),
                r#"["/a"]"#.into(),
                r#"consumers[1].api_key_sha256[0]: the same key is already consumer "a"'s"#,
            ),
            (
                r#"[{"name": "a", "api_keys": ["k-1", "k-1"]}]"#.into(),
                r#"["/a"]"#.into(),
                "consumers[0].api_keys[1]: the same key is already this consumer's",
            ),
            (
                r#"[{"name": "a", "api_key_sha256": ["xyz"]}]"#.into(),
                r#"["/a"]"#.into(),
                "consumers[0].api_key_sha256[0]: must be 64 hex digits",
            ),
            (
                r#"[{"name": "a", "api_keys": ["has space"]}]"#.into(),
                r#"["/a"]"#.into(),
                "consumers[0].api_keys[0]: must be visible ASCII",
            ),
            (
                r#"[{"name": "a"}, {"name": "a"}]"#.into(),
                r#"["/a"]"#.into(),
                r#"consumers[1].name: duplicate consumer name "a""#,
            ),
            (
                r#"[{"name": "a", "rate_limit": {"algorithm": "token-bucket", "capacity": 1, "refill_per_sec": 1, "key": "ip"}}]"#.into(),
                r#"["/a"]"#.into(),
                "consumers[0].rate_limit.key: not allowed here",
            ),
            (
                TWO.into(),
                route(r#"{"jwt": {"algorithms": ["HS256"]}}"#),
                r#"routes[0].auth.jwt: HS256 needs "secret""#,
            ),
            (
                TWO.into(),
                route(r#"{"jwt": {"algorithms": ["RS256"]}}"#),
                r#"routes[0].auth.jwt: RS256 needs "public_key_pem_file""#,
            ),
            (
                TWO.into(),
                route(r#"{"jwt": {"algorithms": ["RS256"], "public_key_pem_file": "/nonexistent/key.pem"}}"#),
                r#"routes[0].auth.jwt.public_key_pem_file: cannot read "/nonexistent/key.pem""#,
            ),
            (
                TWO.into(),
                route(r#"{"jwt": {"algorithms": ["ES256"], "public_key_pem_file": "Cargo.toml"}}"#),
                r#"routes[0].auth.jwt.public_key_pem_file: "Cargo.toml" is not a PEM public key for ES256"#,
            ),
            (
                TWO.into(),
                route(r#"{"jwt": {"algorithms": ["none"], "secret": "s"}}"#),
                r#"routes[0].auth.jwt.algorithms[0]: "none" is not supported"#,
            ),
            (
                TWO.into(),
                route(r#"{"allow": ["alice"]}"#),
                r#"routes[0].auth: needs "api_key" or "jwt""#,
            ),
            (
                TWO.into(),
                route(r#"{"api_key": {"header": "X-K", "query": "k"}}"#),
                "routes[0].auth.api_key: has both header and query",
            ),
            (
                TWO.into(),
                route(r#"{"api_key": {"header": "Content-Length"}}"#),
                "routes[0].auth.api_key.header:",
            ),
            (
                TWO.into(),
                route(r#"{"api_key": {"query": "a&b"}}"#),
                "routes[0].auth.api_key.query:",
            ),
            (
                TWO.into(),
                route(r#"{"api_key": {}, "allow": []}"#),
                "routes[0].auth.allow: must not be empty",
            ),
            (
                TWO.into(),
                route(r#"{"api_key": {}, "basic": {}}"#),
                "routes[0].auth.basic: unknown field",
            ),
        ];
        for (consumers, routes, want) in cases {
            let e = load(&consumers, &routes, "").expect_err(want);
            assert!(e.starts_with(want), "{e}\n  wanted: {want}");
            assert!(!e.contains("k-1") && !e.contains("k-alice"), "{e}");
        }
        let e = load(
            TWO,
            &route(r#"{"api_key": {}}"#),
            r#", "pipeline": ["rate-limit", "auth", "proxy"]"#,
        )
        .unwrap_err();
        assert!(
            e.starts_with("pipeline[1]: \"auth\" must come before"),
            "{e}"
        );
    }
}
