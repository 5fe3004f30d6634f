//! TLS termination with rustls, on the same mio loop as plain HTTP.
//!
//! - [`certs`]: PEM files into rustls keys; the SNI choice (exact, longest
//!   wildcard suffix, default).
//! - [`server`]: the rustls server config (versions, ALPN `http/1.1`,
//!   resumption), swapped whole on reload; handshake counters.
//! - [`client`]: TLS to backends (verification always on, unless a
//!   backend says `insecure_skip_verify`).
//! - [`stream`]: a non-blocking TLS stream over a mio socket, either end:
//!   as a server the ClientHello is read through rustls' `Acceptor` (so an
//!   unknown name gets `unrecognized_name` and plain HTTP a 400); as a
//!   client the handshake is driven while the backend connect completes.
//!
//! Nothing here implements cryptography: rustls (with ring) does.

pub mod certs;
pub mod client;
pub mod server;
pub mod stream;

pub use client::UpstreamTls;
pub use server::{HandshakeFailure, TlsServer};
pub use stream::TlsStream;
