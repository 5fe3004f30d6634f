//! Upstream pools: the backends a request may be sent to, how one is chosen,
//! and the guard that holds what choosing one took.
//!
//! - [`Pool`]: one worker's view of a pool — the shared backend table (with
//!   its breakers and counters), the balancer this worker uses, and the
//!   worker's idle keep-alive connections per backend.
//! - [`Selection`]: the result of [`Pool::select`]. It owns the breaker
//!   permit ([`PermitGuard`]) and the in-flight count ([`Lease`]); both are
//!   released when it drops, so no path can leak either, and a retry is
//!   "drop this selection, select again".
//!
//! There is one pool (`default`) until routing adds more; ids are already
//! `(PoolId, BackendId)` so the worker's plumbing does not change then.

pub mod pool;
pub mod selection;

pub use pool::{Gate, Pool, PoolEvent, PoolId};
pub use selection::{Lease, PermitGuard, Selection};
