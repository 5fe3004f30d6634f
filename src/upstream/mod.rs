//! Upstream pools: the backends a request may be sent to, how one is chosen,
//! and the guard that holds what choosing one took.
//!
//! - [`Pool`]: one upstream of a snapshot — the backend table (with its
//!   breakers and counters) and the balancer in force.
//! - [`IdleConns`]: one worker's idle keep-alive connections, per backend.
//! - [`Selection`]: the result of [`Pool::select`]. It owns the breaker
//!   permit ([`PermitGuard`]) and the in-flight count ([`Lease`]); both are
//!   released when it drops, so no path can leak either, and a retry is
//!   "drop this selection, select again".

pub mod idle;
pub mod pool;
pub mod queue;
pub mod selection;

pub use idle::IdleConns;
pub use pool::{Gate, Pool, PoolEvent, PoolId, Refusal};
pub use queue::{QueueTicket, WaitQueue};
pub use selection::{Lease, PermitGuard, Selection};
