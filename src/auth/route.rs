//! One route's `auth`: which credential it reads and where, who may pass,
//! and the challenge a refusal carries.
//!
//! An API key, when the route reads one and the request carries it, is the
//! credential; else a bearer token, when the route verifies JWTs; else the
//! request has none (401). Two copies of the key (headers or parameters)
//! are refused rather than guessed between. The route's `allow` list is
//! checked last, against the consumer the credential proved (403).

use crate::config::{ApiKeyConfig, RouteAuthConfig};
use crate::http::head::eq_ci;
use crate::http::query;
use crate::http::request::RequestHead;

use super::jwt::JwtVerifier;
use super::key::KeyHasher;
use super::{AuthFailure, ConsumerId, Consumers};

/// The realm every challenge names.
pub const REALM: &str = "api-gateway";

/// Where an API key is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPlace {
    /// This header (its name as configured).
    Header(Box<[u8]>),
    /// This query parameter.
    Query(Box<[u8]>),
}

/// A route's authentication rule, compiled.
#[derive(Debug)]
pub struct RouteAuth {
    key: Option<KeyPlace>,
    jwt: Option<JwtVerifier>,
    /// Sorted; `None`: any authenticated caller.
    allow: Option<Box<[ConsumerId]>>,
    /// `WWW-Authenticate` lines for a request without a credential.
    challenge: Box<[u8]>,
    /// The same, for a bad credential (`error="invalid_token"` on Bearer).
    challenge_invalid: Box<[u8]>,
}

/// A refusal: the reason, and the consumer it is counted against when the
/// credential proved one (403, or a genuine expired token).
pub type Refusal = (AuthFailure, Option<ConsumerId>);

impl RouteAuth {
    /// Compiles `cfg` against `consumers`.
    pub fn new(cfg: &RouteAuthConfig, consumers: &Consumers) -> Result<RouteAuth, String> {
        let key = cfg.api_key.as_ref().map(|k| match k {
            ApiKeyConfig::Header(h) => KeyPlace::Header(h.as_bytes().into()),
            ApiKeyConfig::Query(q) => KeyPlace::Query(q.as_bytes().into()),
        });
        let jwt = cfg.jwt.as_ref().map(JwtVerifier::new).transpose()?;
        let allow = match &cfg.allow {
            None => None,
            Some(names) => {
                let mut ids = names
                    .iter()
                    .map(|n| {
                        consumers
                            .by_name(n)
                            .ok_or_else(|| format!("no consumer named \"{n}\""))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                ids.sort();
                ids.dedup();
                Some(ids.into_boxed_slice())
            }
        };
        let line = |invalid: bool| {
            let mut out = String::new();
            match &cfg.api_key {
                Some(ApiKeyConfig::Header(h)) => out.push_str(&format!(
                    "WWW-Authenticate: ApiKey realm=\"{REALM}\", header=\"{h}\"\r\n"
                )),
                Some(ApiKeyConfig::Query(q)) => out.push_str(&format!(
                    "WWW-Authenticate: ApiKey realm=\"{REALM}\", query=\"{q}\"\r\n"
                )),
                None => {}
            }
            if cfg.jwt.is_some() {
                out.push_str(&format!("WWW-Authenticate: Bearer realm=\"{REALM}\""));
                if invalid {
                    out.push_str(", error=\"invalid_token\"");
                }
                out.push_str("\r\n");
            }
            out.into_bytes().into_boxed_slice()
        };
        Ok(RouteAuth {
            key,
            jwt,
            allow,
            challenge: line(false),
            challenge_invalid: line(true),
        })
    }

    /// Where the route reads its API key.
    pub fn key_place(&self) -> Option<&KeyPlace> {
        self.key.as_ref()
    }

    /// The `WWW-Authenticate` lines for a refusal (none for a 403).
    pub fn challenge(&self, failure: AuthFailure) -> &[u8] {
        match failure {
            AuthFailure::Forbidden => b"",
            f if f.is_invalid_credential() => &self.challenge_invalid,
            _ => &self.challenge,
        }
    }

    /// Authenticates a request: `target` is the path and query to forward
    /// (the key parameter is read from its query); `now` gives Unix seconds
    /// (read only for a token). On success, the consumer (`None`: a token's
    /// subject that is not a configured consumer) and, in `name`, the name
    /// to send as `X-Consumer`.
    pub fn authenticate(
        &self,
        buf: &[u8],
        head: &RequestHead,
        target: &[u8],
        consumers: &Consumers,
        now: impl FnOnce() -> u64,
        name: &mut Vec<u8>,
    ) -> Result<Option<ConsumerId>, Refusal> {
        name.clear();
        let proved = match self.api_key(buf, head, target, consumers)? {
            Some(id) => Some(id),
            None => match (&self.jwt, bearer(buf, head)) {
                (Some(jwt), Some(token)) => match jwt.verify(token, now()) {
                    Ok(subject) => {
                        name.extend_from_slice(subject.as_bytes());
                        consumers.by_name(&subject)
                    }
                    Err(r) => {
                        let who = r.subject.as_deref().and_then(|s| consumers.by_name(s));
                        return Err((r.failure, who));
                    }
                },
                _ => return Err((AuthFailure::Missing, None)),
            },
        };
        if let Some(allow) = &self.allow {
            if proved.is_none_or(|id| allow.binary_search(&id).is_err()) {
                return Err((AuthFailure::Forbidden, proved));
            }
        }
        if let Some(id) = proved {
            if name.is_empty() {
                name.extend_from_slice(consumers.name(id).as_bytes());
            }
        }
        Ok(proved)
    }

    /// The consumer of the request's API key; `None` when the route reads
    /// no key or the request carries none.
    fn api_key(
        &self,
        buf: &[u8],
        head: &RequestHead,
        target: &[u8],
        consumers: &Consumers,
    ) -> Result<Option<ConsumerId>, Refusal> {
        let mut hasher = KeyHasher::new();
        match &self.key {
            None => return Ok(None),
            Some(KeyPlace::Header(h)) => {
                let mut values = head
                    .headers
                    .iter()
                    .filter(|f| eq_ci(f.name.get(buf), h))
                    .map(|f| f.value.get(buf));
                let Some(v) = values.next().filter(|v| !v.is_empty()) else {
                    return Ok(None);
                };
                if values.next().is_some() {
                    return Err((AuthFailure::Unknown, None));
                }
                hasher.update(v);
            }
            Some(KeyPlace::Query(q)) => {
                let Some(start) = query::query_start(target) else {
                    return Ok(None);
                };
                let qs = &target[start..];
                let (count, value) = query::find(qs, q);
                let Some(v) = value.map(|r| &qs[r]).filter(|v| !v.is_empty()) else {
                    return Ok(None);
                };
                if count > 1 {
                    return Err((AuthFailure::Unknown, None));
                }
                query::percent_decode(v, |piece| hasher.update(piece));
            }
        }
        match consumers.keys().find(&hasher.finish()) {
            Some(id) => Ok(Some(id)),
            None => Err((AuthFailure::Unknown, None)),
        }
    }
}

/// The token of `Authorization: Bearer <token>` (the scheme in any case).
fn bearer<'b>(buf: &'b [u8], head: &RequestHead) -> Option<&'b str> {
    let v = head.header(buf, b"authorization")?;
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    if !eq_ci(scheme, b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    if token.is_empty() {
        return None;
    }
    std::str::from_utf8(token).ok()
}
