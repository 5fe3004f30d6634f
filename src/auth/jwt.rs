//! JWT bearer tokens: which algorithm, whose key, which claims.
//!
//! The signature, `iss` and `aud` are checked by `jsonwebtoken` (we do not
//! hand-roll crypto). The algorithm is read from the token's header first
//! and must be one the route lists (`none` never is), and the key is the
//! one configured for that algorithm's family, so a token cannot pick an
//! HMAC check against an RSA public key. `exp` and `nbf` are checked here,
//! after the signature, with the route's leeway: a genuine but expired
//! token is still attributed to its consumer in the counters.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::{algorithm_name, family, Family, JwtConfig};

use super::AuthFailure;

/// Longest consumer claim accepted (it becomes a header value).
pub const MAX_CONSUMER_CLAIM: usize = 256;

/// A route's token verifier.
pub struct JwtVerifier {
    /// Per accepted algorithm: its key and its validation rules.
    accepted: Vec<(Algorithm, DecodingKey, Validation)>,
    claim: String,
    leeway: u64,
}

impl fmt::Debug for JwtVerifier {
    // Keys stay out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algs: Vec<&str> = self
            .accepted
            .iter()
            .map(|(a, _, _)| algorithm_name(*a))
            .collect();
        f.debug_struct("JwtVerifier")
            .field("algorithms", &algs)
            .field("consumer_claim", &self.claim)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// A refused token: why, and whose it was when the signature held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The reason.
    pub failure: AuthFailure,
    /// The consumer claim of a genuine token refused for its time window.
    pub subject: Option<String>,
}

impl Refused {
    fn because(failure: AuthFailure) -> Refused {
        Refused {
            failure,
            subject: None,
        }
    }
}

impl JwtVerifier {
    /// Builds the verifier (the config has already checked the keys).
    pub fn new(cfg: &JwtConfig) -> Result<JwtVerifier, String> {
        let mut accepted = Vec::with_capacity(cfg.algorithms.len());
        for &alg in &cfg.algorithms {
            let key = match family(alg) {
                Family::Hmac => cfg
                    .secret
                    .as_deref()
                    .map(|s| DecodingKey::from_secret(s.as_bytes()))
                    .ok_or("no secret")?,
                fam => {
                    let (_, pem) = cfg.public_key.as_ref().ok_or("no public key")?;
                    match fam {
                        Family::Rsa => DecodingKey::from_rsa_pem(pem),
                        _ => DecodingKey::from_ec_pem(pem),
                    }
                    .map_err(|e| e.to_string())?
                }
            };
            let mut v = Validation::new(alg);
            // Time is checked after the signature, here (see the module).
            v.validate_exp = false;
            v.validate_nbf = false;
            v.leeway = 0;
            let mut required = HashSet::new();
            if let Some(iss) = &cfg.issuer {
                v.set_issuer(&[iss]);
                required.insert("iss".to_string());
            }
            match &cfg.audience {
                Some(aud) => {
                    v.set_audience(aud);
                    required.insert("aud".to_string());
                }
                None => v.validate_aud = false,
            }
            v.required_spec_claims = required;
            accepted.push((alg, key, v));
        }
        Ok(JwtVerifier {
            accepted,
            claim: cfg.consumer_claim.clone(),
            leeway: cfg.leeway_secs,
        })
    }

    /// Verifies `token` at `now` (Unix seconds); the consumer claim when
    /// it holds.
    pub fn verify(&self, token: &str, now: u64) -> Result<String, Refused> {
        let alg = header_alg(token).ok_or(Refused::because(AuthFailure::Invalid))?;
        let Some((_, key, validation)) = self
            .accepted
            .iter()
            .find(|(a, _, _)| algorithm_name(*a) == alg)
        else {
            // `none`, or an algorithm this route does not accept.
            return Err(Refused::because(AuthFailure::BadSignature));
        };
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation)
            .map_err(|e| Refused::because(classify(e.kind())))?;
        let claims = data.claims;
        let subject = match claims.get(&self.claim) {
            Some(Value::String(s)) if is_header_safe(s) => s.clone(),
            _ => return Err(Refused::because(AuthFailure::Invalid)),
        };
        let refuse = |failure| {
            Err(Refused {
                failure,
                subject: Some(subject.clone()),
            })
        };
        match numeric(claims.get("exp")) {
            Err(()) => return Err(Refused::because(AuthFailure::Invalid)),
            // RFC 7519 §4.1.4: not accepted on or after `exp`.
            Ok(Some(exp)) if now as f64 >= exp + self.leeway as f64 => {
                return refuse(AuthFailure::Expired)
            }
            Ok(_) => {}
        }
        match numeric(claims.get("nbf")) {
            Err(()) => return Err(Refused::because(AuthFailure::Invalid)),
            Ok(Some(nbf)) if ((now + self.leeway) as f64) < nbf => {
                return refuse(AuthFailure::NotYetValid)
            }
            Ok(_) => {}
        }
        Ok(subject)
    }
}

/// The `alg` of a token's header, if the header is readable JSON.
fn header_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok()?;
    let v: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    match v.get("alg") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A NumericDate claim: absent, a number, or not a number (an error).
fn numeric(v: Option<&Value>) -> Result<Option<f64>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(()),
        Some(_) => Err(()),
    }
}

/// Whether a claim can be sent as `X-Consumer` as is: 1 to 256 visible
/// ASCII characters or inner spaces.
fn is_header_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CONSUMER_CLAIM
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// The reason for a `jsonwebtoken` error.
fn classify(kind: &ErrorKind) -> AuthFailure {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::Crypto(_) => AuthFailure::BadSignature,
        ErrorKind::ExpiredSignature => AuthFailure::Expired,
        ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
        _ => AuthFailure::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn cfg() -> JwtConfig {
        JwtConfig {
            algorithms: vec![Algorithm::HS256],
            secret: Some("s3cret".into()),
            public_key: None,
            issuer: Some("https://id.example.test".into()),
            audience: Some(vec!["orders".into()]),
            leeway_secs: 30,
            consumer_claim: "sub".into(),
        }
    }

    fn token(alg: Algorithm, secret: &str, claims: Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(extra: Value) -> Value {
        let mut c = json!({"sub": "alice", "iss": "https://id.example.test", "aud": "orders",
                           "exp": NOW + 600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn verdict(t: &str) -> Result<String, AuthFailure> {
        JwtVerifier::new(&cfg())
            .unwrap()
            .verify(t, NOW)
            .map_err(|r| r.failure)
    }

    #[test]
    fn each_rule_of_the_contract() {
        let hs = |extra| token(Algorithm::HS256, "s3cret", claims(extra));
        assert_eq!(verdict(&hs(json!({}))), Ok("alice".into()));
        // exp within the leeway still passes; beyond it, expired.
        assert_eq!(verdict(&hs(json!({"exp": NOW - 10}))), Ok("alice".into()));
        assert_eq!(
            verdict(&hs(json!({"exp": NOW - 30}))),
            Err(AuthFailure::Expired)
        );
        assert_eq!(
            verdict(&hs(json!({"nbf": NOW + 31}))),
            Err(AuthFailure::NotYetValid)
        );
        assert_eq!(verdict(&hs(json!({"nbf": NOW + 30}))), Ok("alice".into()));
        assert_eq!(
            verdict(&hs(json!({"iss": "https://evil.test"}))),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            verdict(&hs(json!({"aud": "billing"}))),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            verdict(&hs(json!({"aud": ["billing", "orders"]}))),
            Ok("alice".into())
        );
        assert_eq!(
            verdict(&hs(json!({"exp": "tomorrow"}))),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(verdict(&hs(json!({"sub": 7}))), Err(AuthFailure::Invalid));
        assert_eq!(
            verdict(&hs(json!({"sub": "a\r\nX-Admin: 1"}))),
            Err(AuthFailure::Invalid)
        );
        let mut no_iss = claims(json!({}));
        no_iss.as_object_mut().unwrap().remove("iss");
        assert_eq!(
            verdict(&token(Algorithm::HS256, "s3cret", no_iss)),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            verdict(&token(Algorithm::HS256, "other", claims(json!({})))),
            Err(AuthFailure::BadSignature)
        );
        assert_eq!(
            verdict(&token(Algorithm::HS384, "s3cret", claims(json!({})))),
            Err(AuthFailure::BadSignature)
        );
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            b64(&claims(json!({})))
        );
        assert_eq!(verdict(&none), Err(AuthFailure::BadSignature));
        assert_eq!(verdict("not-a-token"), Err(AuthFailure::Invalid));
        assert_eq!(verdict(""), Err(AuthFailure::Invalid));
    }

    #[test]
    fn an_expired_genuine_token_names_its_subject_and_a_forged_one_does_not() {
        let v = JwtVerifier::new(&cfg()).unwrap();
        let expired = token(
            Algorithm::HS256,
            "s3cret",
            claims(json!({"exp": NOW - 100})),
        );
        let r = v.verify(&expired, NOW).unwrap_err();
        assert_eq!(r.subject.as_deref(), Some("alice"));
        let forged = token(Algorithm::HS256, "x", claims(json!({"exp": NOW - 100})));
        assert_eq!(v.verify(&forged, NOW).unwrap_err().subject, None);
    }

    #[test]
    fn debug_output_shows_no_key() {
        let v = JwtVerifier::new(&cfg()).unwrap();
        let d = format!("{v:?}");
        assert!(d.contains("HS256") && !d.contains("s3cret"), "{d}");
    }
}
