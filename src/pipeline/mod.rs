//! The middleware pipeline: which stages run for each request, in which
//! order. The order is configuration (`"pipeline": [...]`), so reordering is
//! one line; the worker runs the stages inline from the event loop and any
//! stage may short-circuit with a response.
//!
//! Stages: `logger` (access log, rejections included), `cors` (headers and
//! preflight at the gateway), `rate-limit`, `circuit-breaker` (balancer pick
//! among backends whose circuit grants a permit), `proxy` (always last).

pub mod access_log;
pub mod cors;
pub mod rate_limit;

// The stage names are configuration (`"pipeline": [...]`), so the type lives
// with the config and is re-exported here: the stages depend on the config
// (their settings), never the reverse.
pub use crate::config::Stage;
