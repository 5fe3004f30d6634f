//! Who may talk to the admin port: the start-up exposure rule and the
//! per-request bearer-token check.
//!
//! Invariants: a non-loopback admin address is only allowed with a token (the
//! admin API can switch algorithms and crash demo backends, so it must never be
//! open to a network by accident); the token comparison takes the same time
//! whatever the first differing byte, so it cannot be guessed byte by byte.

use std::net::SocketAddr;

/// Refuses a configuration that would expose an unauthenticated admin API
/// beyond this host: a non-loopback `addr` without a (non-empty) `token`.
///
/// The gateway calls this before [`crate::spawn`] and refuses to start on `Err`.
///
/// ```
/// use api_gateway_admin::check_exposure;
/// assert!(check_exposure(&"127.0.0.1:9000".parse().unwrap(), None).is_ok());
/// assert!(check_exposure(&"0.0.0.0:9000".parse().unwrap(), None).is_err());
/// assert!(check_exposure(&"0.0.0.0:9000".parse().unwrap(), Some("s3cret")).is_ok());
/// ```
pub fn check_exposure(addr: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    let has_token = token.is_some_and(|t| !t.is_empty());
    if addr.ip().is_loopback() || has_token {
        Ok(())
    } else {
        Err(format!(
            "refusing to expose the admin API on non-loopback address {addr} without a token; \
             bind it to 127.0.0.1 or configure an admin token"
        ))
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
        assert!(
            check_exposure(&lan, Some("")).is_err(),
            "empty token is no token"
        );
        assert!(check_exposure(&lan, Some("t")).is_ok());
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
