//! Which protocol upgrades the gateway lets a client ask the backend for.
//!
//! After a `101 Switching Protocols` the connection is a byte tunnel: no more
//! request heads, so no more routes, rate limits or breaker verdicts. Only
//! the protocols an operator lists in `allowed_upgrades` (default
//! `websocket`) may open one. Any other offer (`h2c`, `TLS/1.2`, ...) is
//! dropped from the forwarded request, which then reaches the backend as an
//! ordinary request, without `Upgrade` and without `upgrade` in
//! `Connection`; a backend that answers it with 101 anyway gets a 502
//! (`conn/forward.rs`), never a tunnel.

use super::head::{eq_ci, list_items};

/// Whether `token` may name an upgrade protocol: an RFC 9110 §5.6.2 token
/// (the `protocol-name` of an `Upgrade` element, §7.8).
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// The elements of an `Upgrade` value whose protocol name (the part before
/// an optional `/version`) is one of `allowed`, case-insensitively, in the
/// client's order.
pub fn allowed_offers<'v: 'a, 'a, S: AsRef<str>>(
    value: &'v [u8],
    allowed: &'a [S],
) -> impl Iterator<Item = &'v [u8]> + 'a {
    list_items(value).filter(move |item| {
        let name = item.split(|&b| b == b'/').next().unwrap_or(item);
        allowed.iter().any(|a| eq_ci(a.as_ref().as_bytes(), name))
    })
}

/// Whether the client offers at least one allowed protocol.
pub fn offers_allowed<S: AsRef<str>>(value: &[u8], allowed: &[S]) -> bool {
    allowed_offers(value, allowed).next().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &[&str] = &["websocket"];

    fn offers<'v>(value: &'v [u8], allowed: &[&str]) -> Vec<&'v [u8]> {
        allowed_offers(value, allowed).collect()
    }

    #[test]
    fn keeps_only_allowed_protocols() {
        assert_eq!(offers(b"websocket", WS), [&b"websocket"[..]]);
        assert_eq!(offers(b"WebSocket", WS), [&b"WebSocket"[..]]);
        assert!(offers(b"h2c", WS).is_empty());
        assert!(offers(b"websockets, web socket, x-websocket", WS).is_empty());
        assert_eq!(
            offers(b"h2c, websocket/13 , TLS/1.2", WS),
            [&b"websocket/13"[..]]
        );
        assert_eq!(
            offers(b"h2c, websocket", &["H2C", "websocket"]),
            [&b"h2c"[..], b"websocket"]
        );
        assert!(offers(b"websocket", &[]).is_empty());
        assert!(!offers_allowed(b"", WS));
        assert!(offers_allowed(b" ,websocket,", WS));
    }

    #[test]
    fn tokens() {
        for t in ["websocket", "h2c", "TLS", "x-custom_1.0~"] {
            assert!(is_token(t), "{t}");
        }
        for t in ["", "web socket", "websocket/13", "a,b", "é", "a\r\n"] {
            assert!(!is_token(t), "{t}");
        }
    }
}
