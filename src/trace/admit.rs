//! Whether a request's `X-Gateway-Trace: 1` is honoured: a pure function
//! of the configuration, the resolved client address and the token the
//! request presented.
//!
//! Rule: tracing must be on (`trace.enabled`); a client on loopback is
//! trusted as is; any other client must present the admin token in
//! `X-Gateway-Trace-Token` (their SHA-256 digests compared in constant
//! time). Without an
//! `admin_token` configured, only loopback clients can ask. A trace shows
//! routing, limits and backend names, so it is an operator's tool.

use std::net::IpAddr;

use subtle::ConstantTimeEq;

/// What the request asked, as its head showed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask<'a> {
    /// `X-Gateway-Trace: 1` was sent.
    pub trace: bool,
    /// The value of `X-Gateway-Trace-Token`, if sent.
    pub token: Option<&'a [u8]>,
}

/// Whether the trace `ask` is honoured for `client`, with tracing
/// `enabled` and `admin_token` configured.
pub fn honoured(ask: Ask<'_>, enabled: bool, client: IpAddr, admin_token: Option<&str>) -> bool {
    if !ask.trace || !enabled {
        return false;
    }
    if is_loopback(client) {
        return true;
    }
    match (admin_token, ask.token) {
        // Digests of equal length, compared in constant time: neither the
        // token's bytes nor its length show in the time taken.
        (Some(expected), Some(given)) => {
            let (e, g) = (sha256(expected.as_bytes()), sha256(given));
            e.as_ref().ct_eq(g.as_ref()).into()
        }
        _ => false,
    }
}

fn sha256(bytes: &[u8]) -> ring::digest::Digest {
    ring::digest::digest(&ring::digest::SHA256, bytes)
}

/// 127.0.0.0/8, `::1`, and IPv4-mapped loopback (`::ffff:127.x.y.z`).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-admin";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ask(token: Option<&'static str>) -> Ask<'static> {
        Ask {
            trace: true,
            token: token.map(str::as_bytes),
        }
    }

    #[test]
    fn loopback_is_trusted_only_when_enabled_and_asked() {
        for client in ["127.0.0.1", "127.9.8.7", "::1", "::ffff:127.0.0.1"] {
            assert!(honoured(ask(None), true, ip(client), None), "{client}");
            assert!(!honoured(ask(None), false, ip(client), Some(TOKEN)));
            let not_asked = Ask {
                trace: false,
                token: Some(TOKEN.as_bytes()),
            };
            assert!(!honoured(not_asked, true, ip(client), Some(TOKEN)));
        }
    }

    #[test]
    fn off_loopback_the_admin_token_is_required() {
        for client in ["203.0.113.9", "10.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"] {
            let c = ip(client);
            assert!(honoured(ask(Some(TOKEN)), true, c, Some(TOKEN)), "{client}");
            assert!(!honoured(ask(None), true, c, Some(TOKEN)));
            assert!(!honoured(ask(Some("wrong")), true, c, Some(TOKEN)));
            assert!(!honoured(
                ask(Some("0123456789abcdef-admiN")),
                true,
                c,
                Some(TOKEN)
            ));
            assert!(!honoured(ask(Some(TOKEN)), false, c, Some(TOKEN)));
            // No admin token configured: never off loopback.
            assert!(!honoured(ask(Some(TOKEN)), true, c, None));
            assert!(!honoured(ask(Some("")), true, c, None));
        }
    }
}
