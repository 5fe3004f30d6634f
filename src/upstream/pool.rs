//! One worker's view of an upstream pool and the selection of a backend.
//!
//! The backend table (switches, breakers, in-flight counts, statistics) is
//! shared by every worker; the balancer is the one this worker was last told
//! to use (a switch is a message, never a lock); the idle keep-alive
//! connections are this worker's own sockets (slab indices).

use std::sync::Arc;

use super::queue::WaitQueue;
use crate::algo::balance::{Balancer, PickKey};
use crate::algo::breaker::Permit;
use crate::algo::retry_budget::RetryBudget;
use crate::algo::{BackendId, Nanos};
use crate::backend::{BackendTable, SelectionMode};
use crate::config::resilience::{QueueConfig, RetryPolicy};

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

/// Why no backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// None switched on with a circuit that grants a permit (or none at all).
    NoBackend,
    /// Every backend fails its health checks.
    Unhealthy,
    /// The ones otherwise eligible are all at `max_inflight_per_backend`.
    AtCap,
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
    /// `max_inflight_per_backend` (`None`: no cap).
    pub cap: Option<u32>,
    /// `queue`: where requests wait when every backend is at its cap
    /// (`None`: a 503 at once).
    pub queue: Option<QueueConfig>,
    /// Its waiting requests (kept across reloads).
    pub waiting: Arc<WaitQueue>,
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
            cap: None,
            queue: None,
            waiting: Arc::default(),
        }
    }

    /// The pool with at most `cap` requests in flight per backend, and
    /// `queue` in front of it (counted in `waiting`).
    pub fn with_cap(
        mut self,
        cap: Option<u32>,
        queue: Option<QueueConfig>,
        waiting: Arc<WaitQueue>,
    ) -> Pool {
        self.cap = cap;
        self.queue = queue;
        self.waiting = waiting;
        self
    }

    /// The pool with retries under `retry`, counted in `budget`.
    pub fn with_retries(mut self, retry: Option<RetryPolicy>, budget: Arc<RetryBudget>) -> Pool {
        self.retry = retry;
        self.budget = budget;
        self
    }

    /// Chooses a backend for `key`: one that is switched on, in rotation
    /// (not failing its health checks), below the in-flight cap and,
    /// behind [`Gate::Breaker`], whose circuit grants a permit — unless
    /// selection panics (too few closed circuits): then any switched-on,
    /// healthy backend below its cap will do, with a permit if its circuit
    /// grants one. On failure, why ([`Refusal`]).
    pub fn select(
        &self,
        key: &PickKey,
        now: Nanos,
        gate: Gate,
        notice: &mut dyn FnMut(PoolEvent),
    ) -> Result<Selection, Refusal> {
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
    ) -> Result<Selection, Refusal> {
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
        let cap = self.cap;
        let mut permit: Option<Permit> = None;
        let mut at_cap = false;
        let picked = self.balancer.pick(key, table, &mut |id| {
            let b = table.get(id);
            if !b.is_up() || !b.health.in_rotation() || avoided(avoid, id) {
                return false;
            }
            // The in-flight slot is taken here, before the permit, so two
            // workers can never both take the last one.
            if !b.try_begin_inflight(cap) {
                at_cap = true;
                return false;
            }
            let take = match gate {
                Gate::Any => true,
                Gate::Breaker => match b.breaker.try_acquire(now) {
                    Some(p) => {
                        permit = Some(p);
                        true
                    }
                    // Panic: an open circuit is no reason to skip it; without a
                    // permit its outcome does not touch the breaker.
                    None => panic,
                },
            };
            if !take {
                b.end_inflight();
            }
            take
        });
        let Some(picked) = picked else {
            return Err(
                if table.iter().all(|b| !b.health.in_rotation()) && !table.is_empty() {
                    Refusal::Unhealthy
                } else if at_cap {
                    Refusal::AtCap
                } else {
                    Refusal::NoBackend
                },
            );
        };
        if permit.as_ref().is_some_and(Permit::is_probe) {
            notice(PoolEvent::Probe(picked));
        }
        Ok(Selection::new(self.id, &self.table, picked, permit))
    }
}
