//! One client connection's protocol state, sans-IO: the HTTP/1.1 exchange
//! as a [`Session`] that the worker drives.
//!
//! A connection is an explicit [`Phase`]; the request and response halves of
//! a proxied exchange have their own sub-states ([`ReqSide`], [`RespSide`])
//! because they overlap in time (a backend may answer before the request body
//! is through). [`Session::advance`] moves the phases from what the sockets
//! saw ([`IoView`]) and returns a [`Step`] for the worker to execute; nothing
//! in this module touches a socket, the slab or the poll, so every
//! transition is unit-tested and fuzzed without one.
//!
//! Files: `session.rs` (the state, the view, the steps), `h1.rs` (heads,
//! pipeline, replies, closing, accounting), `forward.rs` (proxying),
//! `timer.rs` (deadlines, body rate), `trace.rs` (decision-trace points),
//! `preface.rs` (PROXY header, client IP), `phase.rs`, `exchange.rs`,
//! `buffer.rs`, `upload.rs`.

pub mod buffer;
pub mod exchange;
mod forward;
mod h1;
pub mod phase;
mod preface;
mod retry;
pub mod session;
pub mod sim;
#[cfg(test)]
mod tests;
mod timer;
mod trace;
pub mod upload;

pub use exchange::{Answer, Exchange, Ledger};
pub use phase::{After, BodyScan, Phase, ReqSide, RespSide};
pub use session::{
    Attach, Awaiting, Ctx, IoView, Outgoing, Peer, RequestIds, Resting, Session, Step, Timeouts,
    UpstreamView,
};
