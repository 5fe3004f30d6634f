//! Active health checks: each backend of an upstream with `health_check`
//! is probed on its own schedule, off the workers, and leaves the rotation
//! of every balancer after `unhealthy_after` failed probes in a row.
//!
//! `state.rs`: the per-backend health cell the data path reads.

pub mod state;

pub use state::{Health, HealthState};
