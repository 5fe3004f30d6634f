//! Traffic-control algorithms: rate limiters, load balancers, circuit breaker.
//!
//! Every algorithm is pure in `now`: time is a [`Nanos`] argument, never read
//! from the OS here, so tests drive them exactly with a [`ManualClock`]. All of
//! them are `Send + Sync` and safe to call from several event-loop threads at
//! once (atomics, compare-and-swap; no locks on the request path).

pub mod balance;
pub mod breaker;
pub mod cells;
pub mod clock;
pub mod limit;
pub mod open_budget;

pub use clock::{Clock, ManualClock, MonotonicClock, Nanos};

/// Index of a backend in the [`crate::backend::BackendTable`]; stable for the
/// gateway's lifetime.
pub type BackendId = usize;
