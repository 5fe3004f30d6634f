//! The vocabulary api-gateway's core and its admin share: the algorithm
//! specs and their bounds, the commands the admin sends and the replies it
//! gets, and the typed events the core reports.
//!
//! Plain data that depends on nothing heavy (serde only): the core's
//! algorithms import their specs from here, so they link neither the admin's
//! HTTP server nor any channel. Nothing here may name a type of the core or
//! of the admin. Crate map:
//!
//! - [`limit`]: [`LimitSpec`], [`LIMITER_NAMES`], the span and rate bounds,
//!   [`rate_interval_ns`].
//! - [`balance`]: [`BalanceSpec`], [`BALANCER_NAMES`].
//! - [`breaker`]: [`BreakerSpec`], [`StatusSet`], [`CircuitState`].
//! - [`command`]: [`Command`] and [`Reply`].
//! - [`event`]: [`EventKind`], one gateway event.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod balance;
pub mod breaker;
pub mod command;
pub mod event;
pub mod limit;
mod params;

pub use balance::{BalanceSpec, BALANCER_NAMES};
pub use breaker::{BreakerSpec, CircuitState, StatusSet, DEFAULT_FAILURE_STATUSES};
pub use command::{Command, Reply};
pub use event::EventKind;
pub use limit::{
    rate_interval_ns, LimitSpec, LIMITER_NAMES, MAX_RATE_PER_SEC, MAX_REFILL_NS, MAX_SPAN_MS,
    MAX_SPAN_NS, MIN_RATE_PER_SEC, SLIDING_COUNTER_MAX_LIMIT, SLIDING_LOG_MAX_LIMIT,
};
