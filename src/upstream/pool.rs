//! One worker's view of an upstream pool and the selection of a backend.
//!
//! The backend table (switches, breakers, in-flight counts, statistics) is
//! shared by every worker; the balancer is the one this worker was last told
//! to use (a switch is a message, never a lock); the idle keep-alive
//! connections are this worker's own sockets (slab indices).

use std::sync::Arc;

use crate::algo::balance::{Balancer, PickKey};
use crate::algo::breaker::Permit;
use crate::algo::retry_budget::RetryBudget;
use crate::algo::{BackendId, Nanos};
use crate::backend::{BackendTable, SelectionMode};
use crate::config::resilience::RetryPolicy;

/// Whether `id` is in the `avoid` mask.
fn avoided(avoid: u64, id: BackendId) -> bool {
    id < 64 && avoid & (1 << id) != 0
}

use super::Selection;

/// Which pool (index in the worker's pool list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PoolId(pub u16);

impl PoolId {
    /// The only pool until routing adds more.
    pub const DEFAULT: PoolId = PoolId(0);

    /// As an index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// Whether the circuit breakers take part in a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gate {
    /// Only backends whose circuit grants a permit (the breaker stage),
    /// unless selection panics (see [`SelectionMode`]).
    #[default]
    Breaker,
    /// Any switched-on backend, no permit (a pipeline without the breaker).
    Any,
}

/// Something an operator wants to see, noticed while selecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolEvent {
    /// The selection mode changed (panic began or ended).
    Mode(SelectionMode),
    /// This backend's circuit let a half-open probe through.
    Probe(BackendId),
}

/// One upstream of a snapshot: its backends and the balancer in force.
#[derive(Clone)]
pub struct Pool {
    /// Its id (index in the snapshot's pools).
    pub id: PoolId,
    /// Its name (`default` for the top-level backends).
    pub name: String,
    /// The backend table (shared with selection guards).
    pub table: Arc<BackendTable>,
    /// The balancer in force.
    pub balancer: Arc<dyn Balancer>,
    /// `retry` (`None`: a failed try is answered as it failed).
    pub retry: Option<RetryPolicy>,
    /// Requests and retries of the last 10 s (kept across reloads).
    pub budget: Arc<RetryBudget>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("id", &self.id)
            .field("backends", &self.table.len())
            .field("balancer", &self.balancer.spec().name())
            .finish()
    }
}

impl Pool {
    /// A pool of `table` chosen among by `balancer`.
    pub fn new(
        id: PoolId,
        name: &str,
        table: Arc<BackendTable>,
        balancer: Arc<dyn Balancer>,
    ) -> Pool {
        Pool {
            id,
            name: name.to_string(),
            table,
            balancer,
            retry: None,
            budget: Arc::default(),
        }
    }

    /// The pool with retries under `retry`, counted in `budget`.
    pub fn with_retries(mut self, retry: Option<RetryPolicy>, budget: Arc<RetryBudget>) -> Pool {
        self.retry = retry;
        self.budget = budget;
        self
    }

    /// Chooses a backend for `key`: one that is switched on and, behind
    /// [`Gate::Breaker`], whose circuit grants a permit — unless selection
    /// panics (too few such backends): then any switched-on backend will
    /// do, with a permit if its circuit grants one. `None`: no backend.
    pub fn select(
        &self,
        key: &PickKey,
        now: Nanos,
        gate: Gate,
        notice: &mut dyn FnMut(PoolEvent),
    ) -> Option<Selection> {
        self.select_avoiding(key, now, gate, 0, notice)
    }

    /// [`Pool::select`] never choosing a backend whose id's bit is set in
    /// `avoid` (a retry's earlier tries; ids of 64 and above are never
    /// avoided).
    pub fn select_avoiding(
        &self,
        key: &PickKey,
        now: Nanos,
        gate: Gate,
        avoid: u64,
        notice: &mut dyn FnMut(PoolEvent),
    ) -> Option<Selection> {
        let table = &*self.table;
        let mode = match gate {
            Gate::Breaker => {
                let mode = table.selection(now);
                if table.note_selection(mode) {
                    notice(PoolEvent::Mode(mode));
                }
                mode
            }
            Gate::Any => SelectionMode::Normal,
        };
        let panic = matches!(mode, SelectionMode::Panic { .. });
        let mut permit: Option<Permit> = None;
        let picked = self.balancer.pick(key, table, &mut |id| {
            let b = table.get(id);
            if !b.is_up() || avoided(avoid, id) {
                return false;
            }
            if gate == Gate::Any {
                return true;
            }
            match b.breaker.try_acquire(now) {
                Some(p) => {
                    permit = Some(p);
                    true
                }
                // Panic: an open circuit is no reason to skip it; without a
                // permit its outcome does not touch the breaker.
                None => panic,
            }
        })?;
        if permit.as_ref().is_some_and(Permit::is_probe) {
            notice(PoolEvent::Probe(picked));
        }
        Some(Selection::new(self.id, &self.table, picked, permit))
    }
}
