//! Traffic-control algorithms: rate limiters, load balancers, latency
//! estimates, circuit breaker.
//!
//! Every algorithm is pure in `now`: time is a [`Nanos`] argument, never read
//! from the OS here, so tests drive them exactly with a [`ManualClock`]. All of
//! them are `Send + Sync` and safe to call from several event-loop threads at
//! once (atomics, compare-and-swap; no locks on the request path). The one
//! exception is `limit::global`: a short per-bucket lock, windows aligned on
//! wall-clock time, and a sync thread that talks to Redis off the request
//! path. The specs come from the protocol crate; nothing here parses config
//! or renders a report.

pub mod balance;
pub mod breaker;
pub mod cells;
pub mod clock;
pub mod ewma;
pub mod limit;
pub mod open_budget;
pub mod retry_budget;

pub use clock::{Clock, ManualClock, MonotonicClock, Nanos};

/// Index of a backend in the [`crate::backend::BackendTable`]; stable for the
/// gateway's lifetime.
pub type BackendId = usize;
