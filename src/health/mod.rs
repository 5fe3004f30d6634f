//! Active health checks: each backend of an upstream with `health_check`
//! is probed on its own schedule, off the workers, and leaves the rotation
//! of every balancer after `unhealthy_after` failed probes in a row.
//!
//! - `state.rs`: the per-backend health cell the data path reads.
//! - `probe.rs`: one probe as bytes (sans-IO): the request, the reply read
//!   so far, and the verdict ([`Verdict`]) it allows.
//! - `tally.rs`: the consecutive-result counter that turns verdicts into
//!   health transitions.

pub mod probe;
pub mod state;
pub mod tally;

pub use probe::{Reason, Verdict};
pub use state::{Health, HealthState};
