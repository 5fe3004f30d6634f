//! Who may talk to the admin port: the start-up exposure rule and the
//! per-request bearer-token check.
//!
//! Invariants: a non-loopback admin address is only allowed with a token of
//! at least 16 characters (the admin API can switch algorithms and crash demo
//! backends, so it must never be open to a network by accident or behind a
//! placeholder); a blank token is always refused; the token comparison takes the same time
//! whatever the first differing byte, so it cannot be guessed byte by byte.
//! Browsers add two risks a token-less loopback admin must still refuse: a
//! page on another origin POSTing "simple" requests (CSRF), and a hostile
//! domain re-pointed at 127.0.0.1 reading the API (DNS rebinding). Hence the
//! `Origin` and `Host` checks below.

use std::net::SocketAddr;

/// Shortest token accepted when the admin listens beyond loopback: 16
/// characters, so a guessable word or a placeholder is not what stands
/// between a network and the control plane.
pub const MIN_EXPOSED_TOKEN_CHARS: usize = 16;

/// Refuses a token that is blank or only whitespace, wherever the admin
/// listens: `Bearer ` (or `Bearer    `) would otherwise be a valid
/// credential, or the operator meant a token and got none.
///
/// ```
/// use api_gateway_admin::check_token;
/// assert!(check_token("   ").is_err());
/// assert!(check_token("t").is_ok());
/// ```
pub fn check_token(token: &str) -> Result<(), String> {
    if token.trim().is_empty() {
        Err("must not be blank or whitespace only; remove it, or set a real token".into())
    } else {
        Ok(())
    }
}

/// Refuses a configuration that would expose a weakly protected admin API
/// beyond this host: a blank token anywhere (see [`check_token`]), and a
/// non-loopback `addr` without a token or with one shorter than
/// [`MIN_EXPOSED_TOKEN_CHARS`].
///
/// The gateway calls this before [`crate::spawn`] and refuses to start on `Err`.
///
/// ```
/// use api_gateway_admin::check_exposure;
/// assert!(check_exposure(&"127.0.0.1:9000".parse().unwrap(), None).is_ok());
/// assert!(check_exposure(&"127.0.0.1:9000".parse().unwrap(), Some("s3cret")).is_ok());
/// assert!(check_exposure(&"0.0.0.0:9000".parse().unwrap(), None).is_err());
/// assert!(check_exposure(&"0.0.0.0:9000".parse().unwrap(), Some("s3cret")).is_err());
/// assert!(check_exposure(&"0.0.0.0:9000".parse().unwrap(), Some("a-long-random-s3cret")).is_ok());
/// ```
pub fn check_exposure(addr: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    if let Some(t) = token {
        check_token(t)?;
    }
    if addr.ip().is_loopback() {
        return Ok(());
    }
    match token {
        None => Err(format!(
            "refusing to expose the admin API on non-loopback address {addr} without a token; \
             bind it to 127.0.0.1 or configure an admin token"
        )),
        Some(t) if t.chars().count() < MIN_EXPOSED_TOKEN_CHARS => Err(format!(
            "must be at least {MIN_EXPOSED_TOKEN_CHARS} characters when the admin listens on \
             non-loopback address {addr} (it has {})",
            t.chars().count()
        )),
        Some(_) => Ok(()),
    }
}

/// True when the request's `Authorization` header value carries `token`.
///
/// `None` as the expected token means authentication is off (loopback only,
/// enforced by [`check_exposure`]).
pub(crate) fn authorized(expected: Option<&str>, header: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let Some(value) = header else {
        return false;
    };
    // RFC 6750 §2.1: `Bearer` is case-insensitive, the token is not.
    let value = value.trim();
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && ct_eq(presented.trim().as_bytes(), expected.as_bytes())
}

/// CSRF guard for state-changing requests: a browser always sends `Origin`
/// on cross-origin POSTs, so one that is present must name this very host.
/// Non-browser clients (curl, the gateway's tests) send no `Origin` and pass.
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Some(host) = host else {
        return false;
    };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|h| h.trim_end_matches('/').eq_ignore_ascii_case(host.trim()))
}

/// DNS-rebinding guard for a token-less admin: the `Host` header must name a
/// loopback address (`localhost`, `127.x.y.z`, `[::1]`, any port). With a
/// token configured the token is the guard and any host name is fine.
pub(crate) fn host_allowed(token: Option<&str>, host: Option<&str>) -> bool {
    if token.is_some() {
        return true;
    }
    // HTTP/1.1 requires Host (RFC 9112 §3.2); a request without one is not
    // from a browser, so there is nothing to rebind.
    let Some(host) = host else {
        return true;
    };
    let host = host.trim();
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Constant-time equality: the running time depends only on the lengths,
/// never on where the first difference is.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // Fold the length difference into the accumulator instead of returning
    // early, and walk the longer input so timing leaks only the max length.
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_rule() {
        let lo4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let lo6: SocketAddr = "[::1]:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let lan: SocketAddr = "192.168.1.5:1".parse().unwrap();
        assert!(check_exposure(&lo4, None).is_ok());
        assert!(check_exposure(&lo6, None).is_ok());
        assert!(check_exposure(&any, None).unwrap_err().contains("token"));
        assert!(check_exposure(&lan, Some(""))
            .unwrap_err()
            .contains("blank"));
        assert!(check_exposure(&lo4, Some(" \t "))
            .unwrap_err()
            .contains("blank"));
        assert!(
            check_exposure(&lo4, Some("t")).is_ok(),
            "loopback: any token"
        );
        let short = check_exposure(&lan, Some("fifteen-chars-x")).unwrap_err();
        assert!(short.contains("16 characters"), "{short}");
        assert!(check_exposure(&lan, Some("sixteen-chars-xx")).is_ok());
    }

    #[test]
    fn origin_and_host_guards() {
        assert!(origin_allowed(None, Some("127.0.0.1:9100")));
        assert!(origin_allowed(
            Some("http://127.0.0.1:9100"),
            Some("127.0.0.1:9100")
        ));
        assert!(origin_allowed(
            Some("http://LOCALHOST:9100"),
            Some("localhost:9100")
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("127.0.0.1:9100")
        ));
        assert!(!origin_allowed(Some("null"), Some("127.0.0.1:9100")));
        assert!(!origin_allowed(Some("http://127.0.0.1:9100"), None));
        assert!(host_allowed(None, Some("127.0.0.1:9100")));
        assert!(host_allowed(None, Some("localhost")));
        assert!(host_allowed(None, Some("[::1]:9100")));
        assert!(host_allowed(None, None));
        assert!(!host_allowed(None, Some("evil.example:9100")));
        assert!(!host_allowed(None, Some("10.0.0.1:9100")));
        assert!(host_allowed(Some("t"), Some("admin.internal:9100")));
    }

    #[test]
    fn bearer_check() {
        assert!(authorized(None, None));
        assert!(!authorized(Some("abc"), None));
        assert!(authorized(Some("abc"), Some("Bearer abc")));
        assert!(authorized(Some("abc"), Some("bearer  abc ")));
        assert!(!authorized(Some("abc"), Some("Bearer abd")));
        assert!(!authorized(Some("abc"), Some("Bearer ab")));
        assert!(!authorized(Some("abc"), Some("Bearer abcd")));
        assert!(!authorized(Some("abc"), Some("Basic abc")));
        assert!(!authorized(Some("abc"), Some("abc")));
    }
}
