//! Active health checks: each backend of an upstream with `health_check`
//! is probed on its own schedule, off the workers, and leaves the rotation
//! of every balancer after `unhealthy_after` failed probes in a row.
//!
//! - `state.rs`: the per-backend health cell the data path reads.
//! - `probe.rs`: one probe as bytes (sans-IO): the request, the reply read
//!   so far, and the verdict ([`Verdict`]) it allows.
//! - `tally.rs`: the consecutive-result counter that turns verdicts into
//!   health transitions.
//! - `checker.rs`: [`HealthChecker`], the handle: spawns the thread, sets
//!   its [`Target`]s, stops it.
//! - `prober.rs`: that thread: its own `mio::Poll`, schedules, sockets,
//!   and the transitions applied (health cell, event, slow start, metrics).
//!
//! Invariants:
//! - Probes run on one dedicated thread, never on a worker; the data path
//!   only reads the health cell (one relaxed atomic load per pick).
//! - A backend starts `Unchecked`, in rotation; only `unhealthy_after`
//!   failures in a row take it out, and only `healthy_after` passes in a
//!   row bring it back (with a slow-start ramp).
//! - Bounded: at most one socket per target, at most
//!   [`probe::MAX_REPLY`] bytes read per probe, every probe closed by its
//!   `timeout_ms` at the latest.
//! - Plain HTTP/1.1 only: a backend spoken to over TLS gets a TCP connect
//!   check ([`Target::tls`]).
//! - A backend no longer targeted keeps its last health; resetting it is
//!   the caller's (the reload that dropped it).

pub mod checker;
pub mod probe;
mod prober;
pub mod state;
pub mod tally;

pub use checker::{HealthChecker, Target};
pub use probe::{Reason, Verdict};
pub use state::{Health, HealthState};
