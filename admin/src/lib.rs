//! api-gateway's control plane: the admin HTTP server (tiny_http, its own
//! thread), the protocol it speaks with the gateway, and the dashboard.
//!
//! This crate never depends on the gateway core and knows nothing of mio: the
//! gateway hands it a `Sender<Envelope>` and answers each command on the
//! envelope's reply channel.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod protocol;

pub use protocol::{BalanceSpec, BreakerSpec, Command, Envelope, LimitSpec, Reply};
