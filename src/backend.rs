//! The backend table: every configured backend, its operator switch, live
//! in-flight count, circuit breaker and statistics.
//!
//! The table is built once at start and shared (`Arc`) by every worker and the
//! control loop. It outlives algorithm swaps: balancers are rebuilt over it,
//! but the counters they read stay here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use api_gateway_admin::BreakerSpec;

use crate::algo::breaker::Breaker;
use crate::algo::BackendId;
use crate::metrics::BackendStats;

/// One backend server.
#[derive(Debug)]
pub struct Backend {
    /// Index in the table.
    pub id: BackendId,
    /// Display name (`x-backend`, `/gateway/health`).
    pub name: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Relative share for weighted algorithms (>= 1).
    pub weight: u32,
    up: AtomicBool,
    inflight: AtomicU32,
    /// The backend's circuit breaker.
    pub breaker: Breaker,
    /// Request counters and latency histogram.
    pub stats: BackendStats,
}

impl Backend {
    /// Whether the operator has it switched on.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Operator switch; returns the new state.
    pub fn toggle(&self) -> bool {
        !self.up.fetch_xor(true, Ordering::Relaxed)
    }

    /// Requests currently assigned to this backend.
    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the returned [`Lease`] drops.
    pub fn lease(&self) -> Lease<'_> {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        Lease { backend: self }
    }

    /// Increments the in-flight count without a guard; pair with
    /// [`Backend::end_inflight`]. Used where the holder is not a scope (a
    /// connection state machine).
    pub fn begin_inflight(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    /// Undoes one [`Backend::begin_inflight`].
    pub fn end_inflight(&self) {
        // Never underflow, even if a caller pairs wrongly.
        let _ = self
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// RAII in-flight marker from [`Backend::lease`].
#[derive(Debug)]
pub struct Lease<'a> {
    backend: &'a Backend,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.backend.end_inflight();
    }
}

/// What the table is built from.
#[derive(Debug, Clone)]
pub struct BackendDef {
    /// Display name.
    pub name: String,
    /// Address.
    pub addr: SocketAddr,
    /// Weight (>= 1).
    pub weight: u32,
}

/// All backends, indexed by [`BackendId`].
#[derive(Debug)]
pub struct BackendTable {
    backends: Box<[Backend]>,
}

impl BackendTable {
    /// Builds the table; every backend starts up with a closed circuit.
    pub fn new(defs: &[BackendDef], breaker: BreakerSpec) -> BackendTable {
        let backends = defs
            .iter()
            .enumerate()
            .map(|(id, d)| Backend {
                id,
                name: d.name.clone(),
                addr: d.addr,
                weight: d.weight.max(1),
                up: AtomicBool::new(true),
                inflight: AtomicU32::new(0),
                breaker: Breaker::new(breaker),
                stats: BackendStats::default(),
            })
            .collect();
        BackendTable { backends }
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// The backend with this id. Panics on an id not from this table.
    pub fn get(&self, id: BackendId) -> &Backend {
        &self.backends[id]
    }

    /// All backends in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Backend> {
        self.backends.iter()
    }

    /// Looks a backend up by display name.
    pub fn by_name(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }
}
