//! The vocabulary the admin thread shares with the gateway's control loop.
//!
//! The specs, bounds, `Command`, `Reply` and the typed events live in the
//! small `api-gateway-protocol` crate (so the core's algorithms can use them
//! without linking this HTTP server) and are re-exported here unchanged; only
//! the [`Envelope`], which needs a channel, is the admin's own.

pub use api_gateway_protocol::*;

/// A command plus the channel its reply goes back on (bounded(1), so the
/// gateway's `try_send` never blocks).
#[derive(Debug)]
pub struct Envelope {
    /// The request.
    pub cmd: Command,
    /// Where the reply goes.
    pub reply: crossbeam_channel::Sender<Reply>,
}
