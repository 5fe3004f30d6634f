//! Poll tokens: which socket an event is for.
//!
//! Client sockets and backend sockets live in two slabs; a token packs the
//! slab index with one bit for the side (`idx << 1 | side`). The top of the
//! token space is reserved for the listener and the waker.

use mio::Token;

/// The client listener.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// The control-channel waker.
pub const WAKER: Token = Token(usize::MAX - 2);
/// The HTTPS listener.
pub const TLS_LISTENER: Token = Token(usize::MAX - 3);

/// What a token refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A client connection (index into the connection slab).
    Client(usize),
    /// A backend socket (index into the upstream slab).
    Upstream(usize),
}

/// Token for client connection `idx`.
pub fn client(idx: usize) -> Token {
    Token(idx << 1)
}

/// Token for upstream socket `idx`.
pub fn upstream(idx: usize) -> Token {
    Token((idx << 1) | 1)
}

/// Decodes a socket token (not a listener or the waker).
pub fn decode(t: Token) -> Target {
    if t.0 & 1 == 0 {
        Target::Client(t.0 >> 1)
    } else {
        Target::Upstream(t.0 >> 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(decode(client(7)), Target::Client(7));
        assert_eq!(decode(upstream(7)), Target::Upstream(7));
        assert_ne!(client(3), upstream(3));
    }
}
