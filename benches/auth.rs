//! Authentication costs (issue 13): what a request on an authenticated
//! route pays before it is forwarded.
//!
//! - `auth/key_digest`: SHA-256 of a 32-byte API key.
//! - `auth/key_lookup_10k`: digest + lookup + constant-time compare in a
//!   store of 10,000 keys (hit and miss).
//! - `auth/api_key_route`: the whole API-key check of a route (header
//!   found in a parsed 8-field head, hashed, looked up, `allow` checked).
//! - `auth/jwt_hs256`: verifying an HS256 token (header read, signature,
//!   `iss`/`aud`, `exp`/`nbf`, consumer claim).

use std::hint::black_box;

use api_gateway::auth::jwt::JwtVerifier;
use api_gateway::auth::key::{KeyDigest, KeyStore};
use api_gateway::auth::{ConsumerId, Consumers, RouteAuth};
use api_gateway::config::{ApiKeyConfig, ConsumerConfig, JwtConfig, RouteAuthConfig};
use api_gateway::http::request::{RequestHead, RequestLimits};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

const KEY: &[u8] = b"k-alice-0123456789abcdef01234567";

fn consumers(n: usize) -> Vec<ConsumerConfig> {
    (0..n)
        .map(|i| ConsumerConfig {
            name: format!("c{i}"),
            key_digests: vec![KeyDigest::of(
                format!("k-{i:06}-0123456789abcdef0123").as_bytes(),
            )],
            rate_limit: None,
        })
        .chain(std::iter::once(ConsumerConfig {
            name: "alice".into(),
            key_digests: vec![KeyDigest::of(KEY)],
            rate_limit: None,
        }))
        .collect()
}

fn bench_keys(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    g.bench_function("key_digest", |b| b.iter(|| KeyDigest::of(black_box(KEY))));
    let mut store = KeyStore::default();
    for (i, cc) in consumers(9_999).iter().enumerate() {
        store.insert(cc.key_digests[0], ConsumerId(i as u32));
    }
    g.bench_function("key_lookup_10k/hit", |b| {
        b.iter(|| store.find(&KeyDigest::of(black_box(KEY))))
    });
    g.bench_function("key_lookup_10k/miss", |b| {
        b.iter(|| {
            store.find(&KeyDigest::of(black_box(
                b"k-nobody-0123456789abcdef0123456",
            )))
        })
    });

    let all = Consumers::new(&consumers(9_999));
    let route = RouteAuth::new(
        &RouteAuthConfig {
            api_key: Some(ApiKeyConfig::Header("X-API-Key".into())),
            jwt: None,
            allow: Some(vec!["alice".into(), "c7".into()]),
        },
        &all,
    )
    .unwrap();
    let raw = b"GET /api/users/42?page=2 HTTP/1.1\r\nHost: api.example.test\r\n\
User-Agent: bench/1.0\r\nAccept: application/json\r\nAccept-Encoding: gzip\r\n\
X-API-Key: k-alice-0123456789abcdef01234567\r\nCookie: a=b\r\nConnection: keep-alive\r\n\r\n";
    let mut head = RequestHead::default();
    let limits = RequestLimits {
        max_uri: 8192,
        max_body: 1 << 20,
    };
    assert_eq!(head.parse(raw, &limits), Ok(true));
    let mut name = Vec::with_capacity(64);
    let target = b"/api/users/42?page=2";
    assert!(route
        .authenticate(raw, &head, target, &all, || 0, &mut name)
        .is_ok());
    g.bench_function("api_key_route", |b| {
        b.iter(|| route.authenticate(black_box(raw), &head, target, &all, || 0, &mut name))
    });
    g.finish();
}

fn bench_jwt(c: &mut Criterion) {
    let now = 1_800_000_000u64;
    let cfg = JwtConfig {
        algorithms: vec![Algorithm::HS256],
        secret: Some("a-32-byte-secret-for-hs256-bench".into()),
        public_key: None,
        issuer: Some("https://id.example.test".into()),
        audience: Some(vec!["orders".into()]),
        leeway_secs: 30,
        consumer_claim: "sub".into(),
    };
    let v = JwtVerifier::new(&cfg).unwrap();
    let claims = serde_json::json!({"sub": "alice", "iss": "https://id.example.test",
        "aud": "orders", "exp": now + 3600, "iat": now, "scope": "orders:read orders:write"});
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"a-32-byte-secret-for-hs256-bench"),
    )
    .unwrap();
    assert_eq!(v.verify(&token, now).as_deref(), Ok("alice"));
    c.bench_function("auth/jwt_hs256", |b| {
        b.iter(|| v.verify(black_box(&token), now))
    });
}

criterion_group!(benches, bench_keys, bench_jwt);
criterion_main!(benches);
