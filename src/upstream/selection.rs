//! What choosing a backend takes, held as guards.
//!
//! Invariant: every permit a breaker grants and every in-flight count begun
//! is given back exactly once — by an explicit [`PermitGuard::record`] with
//! a verdict, or by `Drop` (an unused permit, an ended lease). The guards
//! hold an `Arc` of the backend table, so they outlive nothing they need.

use std::sync::Arc;

use crate::algo::breaker::{Change, Outcome, Permit};
use crate::algo::{BackendId, Nanos};
use crate::backend::{Backend, BackendTable};

use super::PoolId;

/// A circuit-breaker permit for one backend, if its breaker granted one
/// (panic-mode selections and pipelines without the breaker stage have
/// none). Dropped unused, it is released without a verdict.
#[derive(Debug)]
pub struct PermitGuard {
    table: Arc<BackendTable>,
    backend: BackendId,
    permit: Option<Permit>,
}

impl PermitGuard {
    /// Whether a permit is still held (no verdict recorded yet).
    pub fn is_held(&self) -> bool {
        self.permit.is_some()
    }

    /// Whether the held permit is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.permit.as_ref().is_some_and(Permit::is_probe)
    }

    /// Hands the permit back with a verdict (once; later calls do nothing)
    /// and returns any state change of the breaker.
    pub fn record(&mut self, outcome: Outcome, now: Nanos) -> Option<Change> {
        let p = self.permit.take()?;
        let b = self.table.get(self.backend);
        if b.is_retired() {
            // Removed by a reload: its circuit no longer matters, and a
            // late trip must not take a slot the remaining backends need.
            b.breaker.release(p);
            return None;
        }
        b.breaker.record(p, outcome, now)
    }

    /// Gives the permit back without a verdict (the request never tested
    /// the backend: the client went away or was too slow).
    pub fn release(&mut self) {
        if let Some(p) = self.permit.take() {
            self.table.get(self.backend).breaker.release(p);
        }
    }
}

impl Drop for PermitGuard {
    fn drop(&mut self) {
        self.release();
    }
}

/// One request counted in a backend's in-flight number until it drops.
#[derive(Debug)]
pub struct Lease {
    table: Arc<BackendTable>,
    backend: BackendId,
}

impl Lease {
    /// Begins counting a request against `backend`.
    /// A lease for a slot already taken (`BackendState::try_begin_inflight`).
    pub fn adopt(table: Arc<BackendTable>, backend: BackendId) -> Lease {
        Lease { table, backend }
    }

    pub fn begin(table: Arc<BackendTable>, backend: BackendId) -> Lease {
        table.get(backend).begin_inflight();
        Lease { table, backend }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.table.get(self.backend).end_inflight();
    }
}

/// A chosen backend with what choosing it took.
#[derive(Debug)]
pub struct Selection {
    /// The upstream it belongs to.
    pub pool: PoolId,
    /// The backend (an index in that upstream's table).
    pub backend: BackendId,
    /// Its breaker permit (if granted).
    pub permit: PermitGuard,
    /// Its in-flight count.
    pub lease: Lease,
}

impl Selection {
    /// Takes a selection of `backend` of upstream `pool` (whose table is
    /// `table`) holding `permit` (if any).
    pub fn new(
        pool: PoolId,
        table: &Arc<BackendTable>,
        backend: BackendId,
        permit: Option<Permit>,
    ) -> Selection {
        Selection {
            pool,
            backend,
            permit: PermitGuard {
                table: table.clone(),
                backend,
                permit,
            },
            // The pool's pick took the in-flight slot (`try_begin_inflight`).
            lease: Lease::adopt(table.clone(), backend),
        }
    }

    /// The chosen backend's entry in the table.
    pub fn entry(&self) -> &Backend {
        self.lease.table.get(self.backend)
    }

    /// The table of the chosen backend's upstream.
    pub fn table(&self) -> &BackendTable {
        &self.lease.table
    }
}
