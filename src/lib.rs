//! api-gateway: an HTTP/1.1 API gateway hand-rolled on mio.
//!
//! Crate map:
//! - [`algo`]: rate limiters, load balancers, circuit breaker (pure in `now`).
//! - [`backend`]: the shared backend table (weights, in-flight, breakers, stats).
//! - [`metrics`]: atomic counters published by workers.

#![forbid(unsafe_code)]

pub mod algo;
pub mod backend;
pub mod metrics;
