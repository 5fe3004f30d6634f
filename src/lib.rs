//! api-gateway: an HTTP/1.1 API gateway hand-rolled on mio.
//!
//! Crate map:
//! - [`algo`]: rate limiters, load balancers, circuit breaker (pure in `now`).
//! - [`backend`]: the shared backend table (weights, in-flight, breakers, stats).
//! - [`http`]: heads parsed in place, framing rules, rewriting, local replies.
//! - [`metrics`]: atomic counters published by workers.
//! - [`net`]: address sets from the configuration (trusted proxies).

#![forbid(unsafe_code)]

pub mod algo;
pub mod backend;
pub mod config;
pub mod conn;
pub mod control;
pub mod demo;
pub mod events;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod shared;
pub mod token;
pub mod transport;
pub mod upstream;
pub mod worker;

pub use config::Config;
pub use gateway::Gateway;
