//! Consumers and authentication (issue 13), over real sockets: API keys in a
//! header or the query, sha256-only keys, `allow` lists, `X-Consumer`
//! spoofing, per-consumer budgets and overrides, JWT (HS256, RS256, ES256)
//! with exp/nbf leeway, iss/aud, `alg: none`, foreign algorithms and bad
//! signatures, the auth metrics, `GET /gateway/consumers`, keys never
//! echoed, and the config errors that name their field.
//!
//! Each test starts its own gateway (loopback, ephemeral ports) and checks
//! both sides: what the client got, and what (if anything) the backend saw.

mod admin_rig;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use admin_rig::admin_request;
use api_gateway::Config;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use support::*;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "s3cret";
const ISSUER: &str = "https://id.example.test";
const ALICE_1: &str = "k-alice-1";
const ALICE_2: &str = "k-alice-2";
const CAROL: &str = "k-carol-1";
/// Bob's key: the config holds only its digest.
const BOB: &str = "k-bob-1";
/// `printf %s k-bob-1 | sha256sum`
const BOB_SHA256: &str = "06d1750eca14b7b76ad8c33d28d536e073e0afc7e8958422ba9aab805d0ea506";

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The gateway with its admin port, and one test backend per upstream:
/// `d` (top-level backends), `u` (`users`), `o` (`orders`).
struct Rig {
    gw: api_gateway::Gateway,
    admin: SocketAddr,
    d: TestBackend,
    u: TestBackend,
    o: TestBackend,
}

/// Consumers alice (two keys), bob (a sha256 key, own budget of 5) and carol
/// (one key); the routes of the contract plus a few twins:
/// - `/admin`: API key in `X-API-Key`, `allow: ["alice"]`;
/// - `/q`: API key in the query parameter `apikey`;
/// - `/key`: `api_key: {}` (the default header);
/// - `/limited`: API key, token bucket of 2 keyed by consumer;
/// - `/s`: API key, prefix stripped (so `/s/status?code=401` reaches the
///   backend's scripted `/status`);
/// - `/orders`: HS256 JWT, token bucket of 2 keyed by consumer;
/// - `/vip`: the same JWT, `allow: ["alice"]`;
/// - `/rs`, `/es`: RS256 and ES256 JWT with a public key file;
/// - `/open`: no auth.
fn rig() -> Rig {
    let (d, u, o) = (
        TestBackend::start(),
        TestBackend::start(),
        TestBackend::start(),
    );
    let hs = format!(
        r#"{{"algorithms": ["HS256"], "secret": "{SECRET}", "issuer": "{ISSUER}",
             "audience": "orders", "leeway_secs": 30, "consumer_claim": "sub"}}"#
    );
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": "127.0.0.1:0", "workers": 1, "access_log": "off",
            "rate_limit": {{"algorithm": "token-bucket", "capacity": 1000000, "refill_per_sec": 1000000}},
            "backends": [{{"name": "d", "addr": "{d}"}}],
            "upstreams": [
              {{"name": "users", "backends": [{{"name": "u", "addr": "{u}"}}]}},
              {{"name": "orders", "backends": [{{"name": "o", "addr": "{o}"}}]}}
            ],
            "consumers": [
              {{"name": "alice", "api_keys": ["{ALICE_1}", "{ALICE_2}"]}},
              {{"name": "bob", "api_key_sha256": ["{BOB_SHA256}"],
                "rate_limit": {{"algorithm": "token-bucket", "capacity": 5, "refill_per_sec": 0.001}}}},
              {{"name": "carol", "api_keys": ["{CAROL}"]}}
            ],
            "routes": [
              {{"name": "admin", "path_prefix": "/admin", "upstream": "users",
                "auth": {{"api_key": {{"header": "X-API-Key"}}, "allow": ["alice"]}}}},
              {{"name": "q", "path_prefix": "/q", "upstream": "users",
                "auth": {{"api_key": {{"query": "apikey"}}}}}},
              {{"name": "key", "path_prefix": "/key", "upstream": "users",
                "auth": {{"api_key": {{}}}}}},
              {{"name": "limited", "path_prefix": "/limited", "upstream": "users",
                "auth": {{"api_key": {{"header": "X-API-Key"}}}},
                "rate_limit": {{"algorithm": "token-bucket", "capacity": 2, "refill_per_sec": 0.001, "key": "consumer"}}}},
              {{"name": "s", "path_prefix": "/s", "upstream": "users", "strip_prefix": true,
                "auth": {{"api_key": {{"header": "X-API-Key"}}}}}},
              {{"name": "orders", "path_prefix": "/orders", "upstream": "orders",
                "auth": {{"jwt": {hs}}},
                "rate_limit": {{"algorithm": "token-bucket", "capacity": 2, "refill_per_sec": 0.001, "key": "consumer"}}}},
              {{"name": "vip", "path_prefix": "/vip", "upstream": "orders",
                "auth": {{"jwt": {hs}, "allow": ["alice"]}}}},
              {{"name": "rs", "path_prefix": "/rs", "upstream": "orders",
                "auth": {{"jwt": {{"algorithms": ["RS256"], "public_key_pem_file": "{rsa}",
                                   "consumer_claim": "sub"}}}}}},
              {{"name": "es", "path_prefix": "/es", "upstream": "orders",
                "auth": {{"jwt": {{"algorithms": ["ES256"], "public_key_pem_file": "{ec}",
                                   "consumer_claim": "sub"}}}}}},
              {{"name": "open", "path_prefix": "/open", "upstream": "default"}}
            ]}}"#,
        d = d.addr,
        u = u.addr,
        o = o.addr,
        rsa = fixture("rsa_public.pem"),
        ec = fixture("ec_public.pem"),
    );
    let cfg = Config::from_json(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let gw = start(cfg);
    let admin = gw.admin_addr().expect("admin enabled");
    Rig { gw, admin, d, u, o }
}

impl Rig {
    /// `GET path` with extra header lines, on a fresh connection.
    fn send(&self, path: &str, extra: &str) -> Response {
        let raw =
            format!("GET {path} HTTP/1.1\r\nHost: gw.test\r\n{extra}Connection: close\r\n\r\n");
        request(self.gw.listen_addr(), raw.as_bytes())
    }

    fn with_key(&self, path: &str, key: &str) -> Response {
        self.send(path, &format!("X-API-Key: {key}\r\n"))
    }

    fn with_token(&self, path: &str, token: &str) -> Response {
        self.send(path, &format!("Authorization: Bearer {token}\r\n"))
    }

    fn admin_get(&self, path: &str) -> Response {
        let r = admin_request(self.admin, "GET", path, None, "");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r
    }

    /// `/metrics` once every `(series, value)` of `want` holds (counters
    /// settle when an exchange ends, which may trail the client's read);
    /// then asserts them, so a miss names the series and shows the text.
    fn metrics_settled(&self, want: &[(&str, f64)]) -> String {
        let mut text = String::new();
        eventually(WAIT, || {
            text = self.admin_get("/metrics").text();
            want.iter().all(|&(series, v)| {
                text.lines().any(|l| {
                    l.strip_prefix(series)
                        .and_then(|rest| rest.strip_prefix(' '))
                        .and_then(|n| n.parse::<f64>().ok())
                        == Some(v)
                })
            })
        });
        for &(series, v) in want {
            assert_eq!(prom(&text, series), v, "{series} in:\n{text}");
        }
        text
    }

    /// `consumers[name]` of `GET /gateway/consumers`.
    fn consumer(&self, name: &str) -> Value {
        let all = self.admin_get("/gateway/consumers").json();
        all["consumers"]
            .as_array()
            .unwrap_or_else(|| panic!("no consumers list: {all}"))
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no consumer {name} in {all}"))
    }
}

fn hits(b: &TestBackend) -> usize {
    b.requests.load(Ordering::SeqCst)
}

/// The `X-Consumer` values the backend saw on its last request.
fn x_consumers(b: &TestBackend) -> Vec<String> {
    let seen = b.last_seen();
    seen.headers_named("x-consumer")
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// A 401 of the contract: JSON `{error, status: 401, request_id}` and a
/// `WWW-Authenticate` that starts with `scheme`.
fn assert_401(resp: &Response, scheme: &str) {
    assert_eq!(resp.status, 401, "{}", resp.text());
    let body = resp.json();
    assert!(body["error"].is_string(), "{body}");
    assert_eq!(body["status"], 401, "{body}");
    assert!(
        body["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    let www = resp
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("no WWW-Authenticate in {:?}", resp.headers));
    assert!(www.starts_with(scheme), "WWW-Authenticate: {www}");
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims valid for `/orders`: right issuer and audience, 10 minutes left.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": "orders", "iat": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("token signs")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn rs256(private: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&pem(private)).expect("RSA PKCS#8 PEM");
    sign(Algorithm::RS256, &key, claims)
}

fn es256(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&pem("ec_private.pem")).expect("EC PKCS#8 PEM");
    sign(Algorithm::ES256, &key, claims)
}

/// A token on `/orders` that must be refused: 401, the backend not hit.
fn assert_refused_on_orders(r: &Rig, token: &str, why: &str) {
    let resp = r.with_token("/orders/1", token);
    assert_eq!(resp.status, 401, "{why}: {}", resp.text());
    assert_eq!(hits(&r.o), 0, "{why}: the backend was hit");
}

// ---------------------------------------------------------------- API keys

#[test]
fn missing_api_key_is_401_json_with_www_authenticate_apikey() {
    let r = rig();
    assert_401(&r.send("/admin/x", ""), "ApiKey");
    assert_401(&r.send("/q/x?a=1", ""), "ApiKey");
    assert_401(&r.send("/key/x", ""), "ApiKey");
    assert_eq!(
        hits(&r.u),
        0,
        "no request without a key reaches the backend"
    );
}

#[test]
fn unknown_api_key_is_401_with_www_authenticate() {
    let r = rig();
    assert_401(&r.with_key("/admin/x", "k-nobody"), "ApiKey");
    assert_401(&r.send("/q/x?apikey=k-nobody", ""), "ApiKey");
    assert_401(&r.with_key("/admin/x", ""), "ApiKey");
    assert_eq!(hits(&r.u), 0);
}

#[test]
fn consumer_not_in_allow_is_403() {
    let r = rig();
    let resp = r.with_key("/admin/x", CAROL);
    assert_eq!(resp.status, 403, "{}", resp.text());
    let resp = r.with_key("/admin/x", BOB);
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(hits(&r.u), 0);
    // Carol's key is fine where there is no allow list.
    assert_eq!(r.with_key("/key/x", CAROL).status, 200);
}

#[test]
fn valid_key_reaches_the_backend_with_x_consumer_and_without_the_key_header() {
    let r = rig();
    for key in [ALICE_1, ALICE_2] {
        let resp = r.with_key("/admin/x", key);
        assert_eq!(resp.status, 200, "{key}: {}", resp.text());
        let seen = r.u.last_seen();
        assert_eq!(seen.path, "/admin/x");
        assert_eq!(x_consumers(&r.u), ["alice"], "{key}");
        assert_eq!(seen.header("x-api-key"), None, "{key} forwarded");
    }
    assert_eq!(hits(&r.u), 2);
}

#[test]
fn api_key_without_header_or_query_reads_x_api_key() {
    let r = rig();
    assert_eq!(r.with_key("/key/a", CAROL).status, 200);
    assert_eq!(x_consumers(&r.u), ["carol"]);
    assert_eq!(r.u.last_seen().header("x-api-key"), None);
    // Header names have no case (RFC 9110 §5.1).
    let resp = r.send("/key/b", &format!("x-api-key: {ALICE_1}\r\n"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(x_consumers(&r.u), ["alice"]);
    assert_eq!(r.u.last_seen().header("x-api-key"), None);
    // Another header is no credential.
    assert_401(
        &r.send("/key/c", &format!("X-Other: {ALICE_1}\r\n")),
        "ApiKey",
    );
    assert_eq!(hits(&r.u), 2);
}

#[test]
fn query_key_is_removed_and_the_other_parameters_keep_their_order() {
    let r = rig();
    let cases = [
        ("/q/x?a=1&apikey=k-alice-1&b=2", "/q/x?a=1&b=2"),
        ("/q/x?apikey=k-alice-1", "/q/x"),
        ("/q/x?apikey=k-alice-2&z=9&a=1", "/q/x?z=9&a=1"),
        ("/q/x?b=2&a=1&apikey=k-alice-1", "/q/x?b=2&a=1"),
    ];
    for (sent, want) in cases {
        let resp = r.send(sent, "");
        assert_eq!(resp.status, 200, "{sent}: {}", resp.text());
        assert_eq!(r.u.last_seen().path, want, "{sent}");
        assert_eq!(x_consumers(&r.u), ["alice"], "{sent}");
    }
    assert_eq!(hits(&r.u), cases.len());
}

#[test]
fn query_route_takes_no_key_from_the_header() {
    let r = rig();
    assert_401(&r.with_key("/q/x", ALICE_1), "ApiKey");
    assert_eq!(hits(&r.u), 0);
}

#[test]
fn client_x_consumer_is_replaced_on_an_auth_route() {
    let r = rig();
    let resp = r.send(
        "/admin/x",
        &format!("X-Consumer: mallory\r\nX-API-Key: {ALICE_1}\r\nx-consumer: mallory\r\n"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(x_consumers(&r.u), ["alice"], "exactly one, the gateway's");
    // Spoofing does not stand in for a key either.
    assert_401(&r.send("/admin/x", "X-Consumer: alice\r\n"), "ApiKey");
    assert_eq!(hits(&r.u), 1);
}

#[test]
fn client_x_consumer_is_removed_on_an_open_route() {
    let r = rig();
    let resp = r.send("/open/x", "X-Consumer: mallory\r\n");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(r.d.last_seen().path, "/open/x");
    assert_eq!(x_consumers(&r.d), Vec::<String>::new());
}

#[test]
fn sha256_consumer_authenticates_with_the_plaintext_not_the_digest() {
    let r = rig();
    let resp = r.with_key("/key/x", BOB);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(x_consumers(&r.u), ["bob"]);
    assert_eq!(r.u.last_seen().header("x-api-key"), None);
    assert_401(&r.with_key("/key/x", BOB_SHA256), "ApiKey");
    assert_401(
        &r.with_key("/key/x", &BOB_SHA256.to_ascii_uppercase()),
        "ApiKey",
    );
    assert_eq!(hits(&r.u), 1);
}

#[test]
fn rejections_never_echo_the_sent_key() {
    let r = rig();
    let secret_ish = "k-never-echo-7f3a";
    let echoes = |resp: &Response, key: &str| {
        resp.text().contains(key)
            || resp
                .headers
                .iter()
                .any(|(n, v)| n.contains(key) || v.contains(key))
    };
    let resp = r.with_key("/admin/x", secret_ish);
    assert_401(&resp, "ApiKey");
    assert!(
        !echoes(&resp, secret_ish),
        "{:?} {}",
        resp.headers,
        resp.text()
    );
    let resp = r.send(&format!("/q/x?apikey={secret_ish}"), "");
    assert_401(&resp, "ApiKey");
    assert!(
        !echoes(&resp, secret_ish),
        "{:?} {}",
        resp.headers,
        resp.text()
    );
    // A real key refused by `allow` is not echoed either.
    let resp = r.with_key("/admin/x", CAROL);
    assert_eq!(resp.status, 403);
    assert!(!echoes(&resp, CAROL), "{:?} {}", resp.headers, resp.text());
    assert_eq!(hits(&r.u), 0);
}

#[test]
fn admin_api_and_metrics_never_show_keys() {
    let r = rig();
    // Use every key once, right and wrong.
    for key in [ALICE_1, ALICE_2, BOB, CAROL, BOB_SHA256] {
        r.with_key("/key/x", key);
    }
    let r_metrics =
        r.metrics_settled(&[("gateway_consumer_requests_total{consumer=\"alice\"}", 2.0)]);
    let pages = [
        ("/metrics", r_metrics),
        (
            "/gateway/consumers",
            r.admin_get("/gateway/consumers").text(),
        ),
        ("/gateway/routes", r.admin_get("/gateway/routes").text()),
        ("/gateway/health", r.admin_get("/gateway/health").text()),
    ];
    for (page, text) in &pages {
        for key in [ALICE_1, ALICE_2, BOB, CAROL, BOB_SHA256, SECRET] {
            assert!(!text.contains(key), "{page} shows {key}:\n{text}");
        }
    }
}

// -------------------------------------------------------- per-consumer limits

#[test]
fn all_keys_of_a_consumer_share_one_budget_and_others_keep_theirs() {
    let r = rig();
    let statuses = |keys: &[&str]| -> Vec<u16> {
        keys.iter()
            .map(|k| r.with_key("/limited/x", k).status)
            .collect()
    };
    assert_eq!(statuses(&[ALICE_1, ALICE_2, ALICE_1]), [200, 200, 429]);
    assert_eq!(statuses(&[ALICE_2]), [429]);
    let resp = r.with_key("/limited/x", ALICE_1);
    assert_eq!(resp.status, 429);
    assert!(resp.header("retry-after").is_some(), "{:?}", resp.headers);
    // Carol's budget is her own.
    assert_eq!(statuses(&[CAROL, CAROL, CAROL]), [200, 200, 429]);
    assert_eq!(hits(&r.u), 4);
}

#[test]
fn a_consumer_rate_limit_overrides_the_route_capacity() {
    let r = rig();
    let got: Vec<u16> = (0..6)
        .map(|_| r.with_key("/limited/x", BOB).status)
        .collect();
    assert_eq!(got, [200, 200, 200, 200, 200, 429]);
    assert_eq!(hits(&r.u), 5);
    // Alice still has the route's 2.
    let got: Vec<u16> = (0..3)
        .map(|_| r.with_key("/limited/x", ALICE_1).status)
        .collect();
    assert_eq!(got, [200, 200, 429]);
}

#[test]
fn jwt_budget_is_per_consumer_whichever_token() {
    let r = rig();
    // Three different tokens of alice (distinct jti).
    let token = |sub: &str, n: u32| {
        let mut c = claims(sub);
        c["jti"] = json!(format!("{sub}-{n}"));
        hs256(&c)
    };
    let statuses = |sub: &str, n: u32| -> Vec<u16> {
        (0..n)
            .map(|i| r.with_token("/orders/1", &token(sub, i)).status)
            .collect()
    };
    assert_eq!(statuses("alice", 3), [200, 200, 429]);
    let resp = r.with_token("/orders/1", &token("alice", 9));
    assert_eq!(resp.status, 429);
    assert!(resp.header("retry-after").is_some(), "{:?}", resp.headers);
    assert_eq!(statuses("carol", 3), [200, 200, 429]);
    // Bob's own rate_limit (capacity 5) applies on this route too.
    assert_eq!(statuses("bob", 6), [200, 200, 200, 200, 200, 429]);
    assert_eq!(hits(&r.o), 9);
}

// --------------------------------------------------------------------- JWT

#[test]
fn missing_bearer_token_is_401_with_www_authenticate_bearer() {
    let r = rig();
    assert_401(&r.send("/orders/1", ""), "Bearer");
    assert_401(&r.send("/rs/1", ""), "Bearer");
    // An API key is no JWT.
    assert_401(&r.with_key("/orders/1", ALICE_1), "Bearer");
    assert_eq!(hits(&r.o), 0);
}

#[test]
fn valid_hs256_token_forwards_x_consumer_and_the_authorization_header() {
    let r = rig();
    let token = hs256(&claims("alice"));
    let resp = r.send(
        "/orders/1",
        &format!("Authorization: Bearer {token}\r\nX-Consumer: mallory\r\n"),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = r.o.last_seen();
    assert_eq!(seen.path, "/orders/1");
    assert_eq!(x_consumers(&r.o), ["alice"]);
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str())
    );
}

#[test]
fn token_expired_beyond_the_leeway_is_401() {
    let r = rig();
    let mut c = claims("alice");
    c["exp"] = json!(now() - 120);
    assert_refused_on_orders(&r, &hs256(&c), "exp 120 s ago, leeway 30");
}

#[test]
fn token_expired_within_the_leeway_is_accepted() {
    let r = rig();
    let mut c = claims("alice");
    c["exp"] = json!(now() - 10);
    let resp = r.with_token("/orders/1", &hs256(&c));
    assert_eq!(resp.status, 200, "exp 10 s ago, leeway 30: {}", resp.text());
    assert_eq!(x_consumers(&r.o), ["alice"]);
    // And nbf 10 s ahead is within the leeway too.
    let mut c = claims("carol");
    c["nbf"] = json!(now() + 10);
    let resp = r.with_token("/orders/1", &hs256(&c));
    assert_eq!(resp.status, 200, "nbf in 10 s, leeway 30: {}", resp.text());
    assert_eq!(x_consumers(&r.o), ["carol"]);
}

#[test]
fn token_not_yet_valid_beyond_the_leeway_is_401() {
    let r = rig();
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 120);
    assert_refused_on_orders(&r, &hs256(&c), "nbf in 120 s, leeway 30");
}

#[test]
fn token_signed_with_another_secret_is_401() {
    let r = rig();
    let token = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"not-the-secret"),
        &claims("alice"),
    );
    assert_refused_on_orders(&r, &token, "bad signature");
    // A valid token with its signature cut off.
    let good = hs256(&claims("alice"));
    let unsigned = &good[..good.rfind('.').unwrap() + 1];
    assert_refused_on_orders(&r, unsigned, "no signature");
}

#[test]
fn alg_none_token_is_401() {
    let r = rig();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("alice"))
    );
    assert_refused_on_orders(&r, &token, "alg none");
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "None", "typ": "JWT"})),
        b64(&claims("alice"))
    );
    assert_refused_on_orders(&r, &token, "alg None");
}

#[test]
fn algorithm_not_in_the_list_is_401() {
    let r = rig();
    let hs384 = sign(
        Algorithm::HS384,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &claims("alice"),
    );
    assert_refused_on_orders(&r, &hs384, "HS384 on an HS256 route");
    assert_refused_on_orders(&r, &es256(&claims("alice")), "ES256 on an HS256 route");
}

#[test]
fn wrong_issuer_is_401() {
    let r = rig();
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.example.test");
    assert_refused_on_orders(&r, &hs256(&c), "wrong iss");
}

#[test]
fn wrong_audience_is_401() {
    let r = rig();
    let mut c = claims("alice");
    c["aud"] = json!("payments");
    assert_refused_on_orders(&r, &hs256(&c), "wrong aud");
}

#[test]
fn rs256_route_takes_its_key_and_refuses_another() {
    let r = rig();
    let resp = r.with_token("/rs/1", &rs256("rsa_private.pem", &claims("alice")));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(r.o.last_seen().path, "/rs/1");
    assert_eq!(x_consumers(&r.o), ["alice"]);
    let resp = r.with_token("/rs/1", &rs256("rsa_other_private.pem", &claims("alice")));
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(hits(&r.o), 1);
}

#[test]
fn es256_route_takes_its_key() {
    let r = rig();
    let resp = r.with_token("/es/1", &es256(&claims("carol")));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(r.o.last_seen().path, "/es/1");
    assert_eq!(x_consumers(&r.o), ["carol"]);
    // The RS256 key's token is not an ES256 one.
    let resp = r.with_token("/es/1", &rs256("rsa_private.pem", &claims("carol")));
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(hits(&r.o), 1);
}

#[test]
fn jwt_allow_list_admits_only_the_named_consumers() {
    let r = rig();
    let resp = r.with_token("/vip/1", &hs256(&claims("bob")));
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(hits(&r.o), 0);
    let resp = r.with_token("/vip/1", &hs256(&claims("alice")));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(x_consumers(&r.o), ["alice"]);
    assert_eq!(hits(&r.o), 1);
}

// ------------------------------------------------------------ control plane

#[test]
fn auth_failures_are_counted_by_reason() {
    let r = rig();
    // missing: one API-key route, one JWT route.
    r.send("/admin/x", "");
    r.send("/orders/1", "");
    // unknown
    r.with_key("/admin/x", "k-nobody");
    // forbidden
    r.with_key("/admin/x", CAROL);
    // expired
    let mut c = claims("alice");
    c["exp"] = json!(now() - 120);
    r.with_token("/orders/1", &hs256(&c));
    // bad_signature
    r.with_token(
        "/orders/1",
        &sign(
            Algorithm::HS256,
            &EncodingKey::from_secret(b"not-the-secret"),
            &claims("alice"),
        ),
    );
    // invalid: malformed, wrong iss, wrong aud.
    r.with_token("/orders/1", "not-a-jwt");
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.example.test");
    r.with_token("/orders/1", &hs256(&c));
    let mut c = claims("alice");
    c["aud"] = json!("payments");
    r.with_token("/orders/1", &hs256(&c));
    r.metrics_settled(&[
        ("gateway_auth_failures_total{reason=\"missing\"}", 2.0),
        ("gateway_auth_failures_total{reason=\"unknown\"}", 1.0),
        ("gateway_auth_failures_total{reason=\"forbidden\"}", 1.0),
        ("gateway_auth_failures_total{reason=\"expired\"}", 1.0),
        ("gateway_auth_failures_total{reason=\"bad_signature\"}", 1.0),
        ("gateway_auth_failures_total{reason=\"invalid\"}", 3.0),
    ]);
    assert_eq!(hits(&r.u) + hits(&r.o), 0);
}

/// Alice: 2 requests through, 1 answered 429 by the limiter, 1 answered 401
/// by the backend (`/s/status?code=401` reaches its `/status`): 4 requests.
/// Bob: 1 request refused 403 by `allow`.
fn consumer_traffic(r: &Rig) {
    assert_eq!(r.with_key("/limited/x", ALICE_1).status, 200);
    assert_eq!(r.with_key("/limited/x", ALICE_2).status, 200);
    assert_eq!(r.with_key("/limited/x", ALICE_1).status, 429);
    assert_eq!(r.with_key("/s/status?code=401", ALICE_2).status, 401);
    assert_eq!(r.u.last_seen().path, "/status?code=401");
    assert_eq!(r.with_key("/admin/x", BOB).status, 403);
}

#[test]
fn consumer_metrics_count_requests_and_response_statuses() {
    let r = rig();
    consumer_traffic(&r);
    r.metrics_settled(&[
        ("gateway_consumer_requests_total{consumer=\"alice\"}", 4.0),
        (
            "gateway_consumer_responses_total{consumer=\"alice\",status=\"429\"}",
            1.0,
        ),
        (
            "gateway_consumer_responses_total{consumer=\"alice\",status=\"401\"}",
            1.0,
        ),
        ("gateway_consumer_requests_total{consumer=\"bob\"}", 1.0),
        (
            "gateway_consumer_responses_total{consumer=\"bob\",status=\"403\"}",
            1.0,
        ),
    ]);
}

#[test]
fn gateway_consumers_lists_names_key_counts_and_counters() {
    let r = rig();
    consumer_traffic(&r);
    let settled = eventually(WAIT, || counters(&r.consumer("alice")) == [4, 1, 0, 1]);
    let alice = r.consumer("alice");
    assert!(
        settled,
        "alice, want requests 4, 401: 1, 403: 0, 429: 1: {alice}"
    );
    assert_eq!(alice["api_keys"], 2, "{alice}");
    let bob = r.consumer("bob");
    assert_eq!(bob["api_keys"], 1, "{bob}");
    assert_eq!(counters(&bob), [1, 0, 1, 0], "{bob}");
    let carol = r.consumer("carol");
    assert_eq!(carol["api_keys"], 1, "{carol}");
    assert_eq!(counters(&carol), [0, 0, 0, 0], "{carol}");
    let all = r.admin_get("/gateway/consumers").json();
    let mut names: Vec<&str> = all["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["alice", "bob", "carol"], "{all}");
}

/// `[requests, 401, 403, 429]` of a `/gateway/consumers` entry (-1: absent).
fn counters(consumer: &Value) -> [i64; 4] {
    ["requests", "401", "403", "429"].map(|k| consumer["counters"][k].as_i64().unwrap_or(-1))
}

// ------------------------------------------------------------ config errors

/// What `Config::from_json` makes of a config with these consumers and
/// routes (route 0 is the one under test): the error's text, or `None`.
fn config_error(consumers: &str, routes: &str) -> Option<String> {
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "off",
            "backends": [{{"name": "d", "addr": "127.0.0.1:9"}}],
            "upstreams": [{{"name": "users", "backends": [{{"name": "u", "addr": "127.0.0.1:9"}}]}}],
            "consumers": {consumers},
            "routes": {routes}}}"#
    );
    Config::from_json(&text).err().map(|e| e.0)
}

const ALICE_ONLY: &str = r#"[{"name": "alice", "api_keys": ["k-alice-1"]}]"#;

#[test]
fn config_error_names_an_unknown_consumer_in_allow() {
    let route = |allow: &str| {
        format!(
            r#"[{{"path_prefix": "/a", "upstream": "users",
                 "auth": {{"api_key": {{"header": "X-API-Key"}}, "allow": ["{allow}"]}}}}]"#
        )
    };
    assert_eq!(config_error(ALICE_ONLY, &route("alice")), None);
    let e = config_error(ALICE_ONLY, &route("zed")).expect("an unknown consumer is refused");
    assert!(e.starts_with("routes[0].auth.allow[0]"), "{e}");
}

#[test]
fn config_error_names_a_key_two_consumers_share() {
    let consumers = |bob_key: &str| {
        format!(
            r#"[{{"name": "alice", "api_keys": ["k-shared"]}},
                {{"name": "bob", "api_keys": ["{bob_key}"]}}]"#
        )
    };
    let route = r#"[{"path_prefix": "/a", "upstream": "users", "auth": {"api_key": {}}}]"#;
    assert_eq!(config_error(&consumers("k-bob"), route), None);
    let e = config_error(&consumers("k-shared"), route).expect("a shared key is refused");
    assert!(e.starts_with("consumers[1].api_keys[0]"), "{e}");
    assert!(!e.contains("k-shared"), "the error shows the key: {e}");
}

#[test]
fn config_error_names_a_jwt_route_without_a_secret() {
    let route = |secret: &str| {
        format!(
            r#"[{{"path_prefix": "/a", "upstream": "users",
                 "auth": {{"jwt": {{"algorithms": ["HS256"], {secret} "consumer_claim": "sub"}}}}}}]"#
        )
    };
    assert_eq!(
        config_error(ALICE_ONLY, &route(r#""secret": "s3cret","#)),
        None
    );
    let e = config_error(ALICE_ONLY, &route("")).expect("HS256 without a secret is refused");
    assert!(e.starts_with("routes[0].auth.jwt"), "{e}");
}

#[test]
fn config_error_names_an_unreadable_pem_file() {
    let route = |file: &str| {
        format!(
            r#"[{{"path_prefix": "/a", "upstream": "users",
                 "auth": {{"jwt": {{"algorithms": ["RS256"], "public_key_pem_file": "{file}"}}}}}}]"#
        )
    };
    assert_eq!(
        config_error(ALICE_ONLY, &route(&fixture("rsa_public.pem"))),
        None
    );
    let e = config_error(ALICE_ONLY, &route(&fixture("no-such-key.pem")))
        .expect("a missing PEM file is refused");
    assert!(
        e.starts_with("routes[0].auth.jwt.public_key_pem_file"),
        "{e}"
    );
}

/// The README's walk-through, on `examples/routes.json` with its backend
/// addresses swapped for test backends: 401 without a key, 401 with a
/// wrong one, 403 for carol on alice's route, 200 for alice (key dropped,
/// `X-Consumer: alice`), then `reports`' budget of 5 per consumer for
/// carol and bob's own limit (capacity 50; his key is held as sha256 only).
#[test]
fn the_readme_walk_through_on_the_example_config() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/routes.json"))
            .expect("examples/routes.json");
    let backends: Vec<TestBackend> = (0..4).map(|_| TestBackend::start()).collect();
    let mut text = text
        .replace("127.0.0.1:4000", "127.0.0.1:0")
        .replace("\"127.0.0.1:4001\"", "null");
    for (i, b) in backends.iter().enumerate() {
        text = text.replace(&format!("127.0.0.1:{}", 3001 + i), &b.addr.to_string());
    }
    let gw = start(Config::from_json(&text).expect("the example config loads"));
    let get = |path: &str, key: Option<&str>| {
        let key = key.map_or(String::new(), |k| format!("X-API-Key: {k}\r\n"));
        let raw = format!("GET {path} HTTP/1.1\r\nHost: h\r\n{key}Connection: close\r\n\r\n");
        request(gw.listen_addr(), raw.as_bytes())
    };
    let web = &backends[0];
    let r = get("/admin/stats", None);
    assert_401(&r, "ApiKey");
    assert_eq!(get("/admin/stats", Some("wrong")).status, 401);
    assert_eq!(get("/admin/stats", Some("k-carol-demo-1")).status, 403);
    assert_eq!(hits(web), 0, "no refused request reached the backend");
    let r = get("/admin/stats", Some("k-alice-demo-1"));
    assert_eq!(r.status, 200);
    let seen = web.last_seen();
    assert_eq!(seen.header("x-consumer"), Some("alice"));
    assert_eq!(seen.header("x-api-key"), None);
    // `reports` (the orders backend): 5 per consumer, but bob has his own 50.
    let statuses: Vec<u16> = (0..7)
        .map(|_| get("/api/reports", Some("k-carol-demo-1")).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let bob: Vec<u16> = (0..7)
        .map(|_| get("/api/reports", Some("k-bob-demo-1")).status)
        .collect();
    assert_eq!(bob, [200; 7], "bob's own limit (capacity 50) applies");
    assert_eq!(backends[3].last_seen().header("x-consumer"), Some("bob"));
}

/// A key sent as a query parameter is masked in the access log, on an
/// accepted and on a refused request alike.
#[test]
fn query_keys_are_masked_in_the_access_log() {
    let b = TestBackend::start();
    let dir = std::env::temp_dir().join(format!("gw-auth-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("access.log");
    let text = format!(
        r#"{{"listen": "127.0.0.1:0", "admin": null, "workers": 1, "access_log": "{}",
            "backends": [{{"name": "d", "addr": "{}"}}],
            "consumers": [{{"name": "alice", "api_keys": ["{ALICE_1}"]}}],
            "routes": [{{"path_prefix": "/q", "upstream": "default", "auth": {{"api_key": {{"query": "apikey"}}}}}},
                       {{"path_prefix": "/", "upstream": "default"}}]}}"#,
        log.display(),
        b.addr
    );
    let gw = start(Config::from_json(&text).unwrap());
    let send = |target: &str| {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        request(gw.listen_addr(), raw.as_bytes()).status
    };
    assert_eq!(send(&format!("/q/x?a=1&apikey={ALICE_1}")), 200);
    assert_eq!(send("/q/x?apikey=guess-123"), 401);
    // A key sent to a route that does not read it is masked all the same.
    assert_eq!(send(&format!("/elsewhere?apikey={ALICE_1}")), 200);
    let mut text = String::new();
    assert!(
        eventually(WAIT, || {
            text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().count() >= 3
        }),
        "three log lines: {text}"
    );
    assert!(
        !text.contains(ALICE_1) && !text.contains("guess-123"),
        "{text}"
    );
    assert!(text.contains("GET /q/x?a=1&apikey=***\""), "{text}");
    assert!(text.contains("GET /q/x?apikey=***\""), "{text}");
    gw.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
