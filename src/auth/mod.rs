//! Who is calling: consumers, their API keys, JWT bearer tokens, and the
//! rule each route applies (who may pass, what the backend is told).
//!
//! - [`key`]: API keys as SHA-256 digests, looked up and compared in
//!   constant time; plaintext keys are never stored.
//! - [`jwt`]: bearer-token verification (signature, `exp`/`nbf` with
//!   leeway, `iss`, `aud`) through the `jsonwebtoken` crate.
//! - [`consumers`]: the configured consumers and their key store.
//! - [`route`]: one route's `auth`: which credential, where it is read,
//!   the `allow` list, the `WWW-Authenticate` challenge.
//! - [`failure`]: why a request was refused (the metric reasons).
//!
//! Everything here is sans-IO: it reads a parsed head and buffers it is
//! handed. The API-key path allocates nothing per request.

pub mod consumers;
pub mod failure;
pub mod jwt;
pub mod key;
pub mod route;

pub use consumers::{ConsumerId, Consumers};
pub use failure::AuthFailure;
pub use key::KeyDigest;
pub use route::RouteAuth;
