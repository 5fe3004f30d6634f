//! TLS termination with rustls, on the same mio loop as plain HTTP.
//!
//! - [`certs`]: PEM files into rustls keys; the SNI choice (exact, longest
//!   wildcard suffix, default).
//! - [`server`]: the rustls server config (versions, ALPN `http/1.1`,
//!   resumption), swapped whole on reload; handshake counters.
//! - [`stream`]: a non-blocking TLS stream over a mio socket: the
//!   ClientHello read through rustls' `Acceptor` (so an unknown name gets
//!   `unrecognized_name` and plain HTTP a 400), then records both ways.
//!
//! Nothing here implements cryptography: rustls (with ring) does.

pub mod certs;
pub mod server;
pub mod stream;

pub use server::{HandshakeFailure, TlsServer};
pub use stream::TlsStream;
