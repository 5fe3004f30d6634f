//! What a matched route does to a request: which upstream it goes to, which
//! limiter counts it, how its path is rewritten, which header fields are
//! set or removed on the way in and out, and which timeouts apply.
//!
//! Built once from a [`RouteConfig`], off the event loop; the request path
//! only reads it and writes into buffers it is handed (no allocation).

use crate::algo::Nanos;
use crate::auth::route::KeyPlace;
use crate::auth::{Consumers, RouteAuth};
use crate::config::{KeySource, RouteConfig};
use crate::http::edits::HeaderEdits;
use crate::upstream::PoolId;

/// A route's policy.
#[derive(Debug)]
pub struct RoutePolicy {
    /// The route's name (metrics, logs, the admin API).
    pub name: String,
    /// The upstream its requests go to.
    pub pool: PoolId,
    /// How its own limiter identifies clients (`None`: it uses the
    /// top-level limiter and its key).
    pub limit_key: Option<KeySource>,
    /// Remove the matched prefix before forwarding.
    pub strip_prefix: bool,
    /// Put in front of the forwarded path ("" for nothing; never ends in
    /// '/').
    pub add_prefix: Box<[u8]>,
    /// Edits to the request sent to the backend.
    pub request_headers: HeaderEdits,
    /// Edits to the response sent to the client.
    pub response_headers: HeaderEdits,
    /// `timeouts.connect_ms` for this route, if it overrides it.
    pub connect: Option<Nanos>,
    /// `timeouts.backend_response_ms` for this route, if it overrides it.
    pub response: Option<Nanos>,
    /// Who may call it (`None`: anyone).
    pub auth: Option<RouteAuth>,
}

impl RoutePolicy {
    /// The policy of `route`, whose upstream is `pool`. (Its limiter is
    /// slot `id + 1` of the snapshot's limiters: see `snapshot::Snapshot::limiters`.)
    pub fn new(
        route: &RouteConfig,
        pool: PoolId,
        consumers: &Consumers,
    ) -> Result<RoutePolicy, String> {
        let add = route.add_prefix.trim_end_matches('/');
        let auth = route
            .auth
            .as_ref()
            .map(|a| RouteAuth::new(a, consumers))
            .transpose()?;
        // The API key goes no further than the gateway.
        let mut request_rules = route.request_headers.clone();
        if let Some(KeyPlace::Header(h)) = auth.as_ref().and_then(|a| a.key_place()) {
            request_rules
                .remove
                .push(String::from_utf8_lossy(h).to_ascii_lowercase());
        }
        Ok(RoutePolicy {
            name: route.name.clone(),
            pool,
            limit_key: route.rate_limit.as_ref().map(|r| r.key.clone()),
            strip_prefix: route.strip_prefix,
            add_prefix: add.as_bytes().into(),
            request_headers: HeaderEdits::new(&request_rules),
            response_headers: HeaderEdits::new(&route.response_headers),
            connect: route.timeouts.connect_ms.map(Nanos::from_millis),
            response: route.timeouts.backend_response_ms.map(Nanos::from_millis),
            auth,
        })
    }

    /// The catch-all of a config without routes: everything to `pool`,
    /// nothing rewritten.
    pub fn catch_all(name: &str, pool: PoolId) -> RoutePolicy {
        RoutePolicy {
            name: name.to_string(),
            pool,
            limit_key: None,
            strip_prefix: false,
            add_prefix: Box::default(),
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            connect: None,
            response: None,
            auth: None,
        }
    }

    /// Whether the forwarded path differs from the normalized one.
    pub fn rewrites_path(&self) -> bool {
        self.strip_prefix || !self.add_prefix.is_empty()
    }

    /// Writes the path to forward into `out` (cleared first): `path` (the
    /// normalized path, no query) with its first `prefix_len` bytes (the
    /// matched prefix) removed if `strip_prefix`, then `add_prefix` in
    /// front. The result always starts with '/' and never has "//" where
    /// the two parts meet: `/api/users` stripped from `/api/users/42` is
    /// `/42`, from `/api/users` it is `/`; with `add_prefix` `/v2` those
    /// become `/v2/42` and `/v2/`... except that a request for exactly the
    /// prefix forwards `add_prefix` as is (`/v2`), as nginx's `proxy_pass`
    /// with a URI part does.
    pub fn forward_path(&self, path: &[u8], prefix_len: usize, out: &mut Vec<u8>) {
        out.clear();
        let rest = if self.strip_prefix {
            &path[prefix_len.min(path.len())..]
        } else {
            path
        };
        let add: &[u8] = &self.add_prefix;
        out.extend_from_slice(add);
        match rest {
            [] if add.is_empty() => out.push(b'/'),
            [] => {}
            [b'/', ..] => out.extend_from_slice(rest),
            _ => {
                // A prefix ending in '/' was stripped: put the separator back.
                out.push(b'/');
                out.extend_from_slice(rest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(strip: bool, add: &str) -> RoutePolicy {
        let mut r = RouteConfig::prefix(0, "/api/users");
        r.strip_prefix = strip;
        r.add_prefix = add.into();
        RoutePolicy::new(&r, PoolId::DEFAULT, &Consumers::default()).unwrap()
    }

    fn forwarded(p: &RoutePolicy, path: &str, prefix: &str) -> String {
        let mut out = Vec::new();
        p.forward_path(path.as_bytes(), prefix.len(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strip_and_add_prefix_edge_cases() {
        let cases = [
            // (strip, add, path, matched prefix, forwarded)
            (false, "", "/api/users/42", "/api/users", "/api/users/42"),
            (true, "", "/api/users/42", "/api/users", "/42"),
            (true, "", "/api/users", "/api/users", "/"),
            (true, "", "/api/users/", "/api/users", "/"),
            (true, "/v2", "/api/users/42", "/api/users", "/v2/42"),
            (true, "/v2", "/api/users", "/api/users", "/v2"),
            (true, "/v2", "/api/users/", "/api/users", "/v2/"),
            (true, "/v2/", "/api/users/42", "/api/users", "/v2/42"),
            (
                false,
                "/v2",
                "/api/users/42",
                "/api/users",
                "/v2/api/users/42",
            ),
            (true, "/", "/api/users/42", "/api/users", "/42"),
            (true, "", "/api/x", "/api/", "/x"),
            (true, "/v2", "/api/x", "/api/", "/v2/x"),
            (true, "", "/anything", "/", "/anything"),
        ];
        for (strip, add, path, prefix, want) in cases {
            let p = policy(strip, add);
            assert_eq!(forwarded(&p, path, prefix), want, "{strip} {add} {path}");
        }
    }
}
