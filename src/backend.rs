//! The backend table: every configured backend, its operator switch, live
//! in-flight count, circuit breaker and statistics.
//!
//! The table is built once at start and shared (`Arc`) by every worker and the
//! control loop. It outlives algorithm swaps: balancers are rebuilt over it,
//! but the counters they read stay here. The breakers share one
//! [`OpenBudget`] (`max_open_ratio`), and the table decides when selection
//! panics ([`SelectionMode`]). Choosing a backend is
//! [`crate::upstream::Pool::select`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use api_gateway_protocol::{BreakerSpec, StatusSet};

use crate::algo::breaker::{Breaker, CircuitState, Outcome};
use crate::algo::open_budget::{self, OpenBudget};
use crate::algo::{BackendId, Nanos};
use crate::metrics::BackendStats;

/// Two backends speak the same TLS (or both none) when their client
/// settings are equal: a pooled connection made with one is valid for the
/// other.
fn same_tls(
    a: &Option<Arc<crate::tls::UpstreamTls>>,
    b: &Option<Arc<crate::tls::UpstreamTls>>,
) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.same_settings(b),
        _ => false,
    }
}

/// One backend as a snapshot's table holds it: where it is and its weight
/// (this config's), over the state that outlives reloads ([`BackendState`],
/// reached through `Deref`: `b.breaker`, `b.stats`, `b.is_up()`).
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
    /// TLS to it (`None`: plain TCP).
    pub tls: Option<Arc<crate::tls::UpstreamTls>>,
    /// What outlives this table: adopted by the next snapshot's table while
    /// the backend keeps its upstream, name, address, TLS and breaker
    /// settings.
    pub state: Arc<BackendState>,
}

impl std::ops::Deref for Backend {
    type Target = BackendState;

    fn deref(&self) -> &BackendState {
        &self.state
    }
}

/// A backend's long-lived state: its operator switch, in-flight count,
/// circuit breaker and statistics. Shared by every snapshot that has the
/// backend, so a reload that keeps it keeps its circuit, its counts and its
/// pooled connections (workers key those by [`BackendState::slot`]).
#[derive(Debug)]
pub struct BackendState {
    /// Unique within a gateway for its whole life (never reused), so a
    /// worker can index its idle connections by it across reloads.
    pub slot: u32,
    up: AtomicBool,
    inflight: AtomicU32,
    /// Removed by a reload: no new request picks it, its pooled
    /// connections close, late verdicts no longer move its circuit.
    retired: AtomicBool,
    /// The backend's circuit breaker.
    pub breaker: Breaker,
    /// What the active health checks concluded.
    pub health: crate::health::Health,
    /// When its slow-start ramp began (nanoseconds on the gateway clock;
    /// 0: never, so at full weight): it became healthy again or its circuit
    /// closed.
    ramp_since: AtomicU64,
    /// Peak-EWMA response-head latency, fed by the balancer's `observe`
    /// (only `p2c-ewma` records); here so it survives reloads and balancer
    /// switches.
    pub latency: crate::algo::ewma::PeakEwma,
    /// Request counters and latency histogram.
    pub stats: BackendStats,
}

impl BackendState {
    /// A fresh state: switched on, nothing in flight, circuit CLOSED.
    pub fn new(slot: u32, breaker: Breaker) -> BackendState {
        BackendState {
            slot,
            up: AtomicBool::new(true),
            inflight: AtomicU32::new(0),
            retired: AtomicBool::new(false),
            breaker,
            health: crate::health::Health::default(),
            ramp_since: AtomicU64::new(0),
            latency: crate::algo::ewma::PeakEwma::new(),
            stats: BackendStats::default(),
        }
    }

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

    /// Starts its slow-start ramp at `now` (it recovered).
    pub fn begin_ramp(&self, now: Nanos) {
        self.ramp_since.store(now.0.max(1), Ordering::Relaxed);
    }

    /// Its share of its weight at `now` under a `slow_start` ramp: from 0.1
    /// when the ramp begins, linearly to 1.0 after `slow_start` (1.0 with
    /// no ramp configured or none begun).
    #[inline]
    pub fn ramp(&self, now: Nanos, slow_start: Nanos) -> f64 {
        let since = self.ramp_since.load(Ordering::Relaxed);
        if slow_start.0 == 0 || since == 0 {
            return 1.0;
        }
        let elapsed = now.0.saturating_sub(since);
        if elapsed >= slow_start.0 {
            return 1.0;
        }
        0.1 + 0.9 * (elapsed as f64 / slow_start.0 as f64)
    }

    /// Whether a reload removed it.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Marks it removed by a reload and closes its circuit, so its slot in
    /// its upstream's open-circuit budget is free for the backends that
    /// stay. Its in-flight requests finish; their verdicts are ignored.
    pub fn retire(&self, now: Nanos) {
        self.retired.store(true, Ordering::Release);
        let _ = self.breaker.reset(now);
    }

    /// Increments the in-flight count; only [`crate::upstream::Lease`]
    /// calls this, and undoes it on drop.
    pub(crate) fn begin_inflight(&self) {
        self.inflight.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes an in-flight slot unless `cap` are taken; `true` when taken.
    /// One CAS decides, so racing workers never exceed the cap.
    #[inline]
    pub(crate) fn try_begin_inflight(&self, cap: Option<u32>) -> bool {
        match cap {
            None => {
                self.begin_inflight();
                true
            }
            Some(cap) => self
                .inflight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < cap).then_some(n + 1)
                })
                .is_ok(),
        }
    }

    /// Undoes one [`BackendState::begin_inflight`].
    pub(crate) fn end_inflight(&self) {
        // Never underflow, even if a caller pairs wrongly.
        let _ = self
            .inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
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
    /// TLS to it (`None`: plain TCP).
    pub tls: Option<Arc<crate::tls::UpstreamTls>>,
}

/// How a request's backend is chosen right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionMode {
    /// Only switched-on backends whose circuit grants a permit.
    Normal,
    /// Too few backends are available (switched on with a CLOSED circuit):
    /// spread over every switched-on backend, open circuits included, as
    /// Envoy does below its panic threshold, rather than 503 for everyone.
    Panic {
        /// Switched-on backends with a CLOSED circuit.
        available: u32,
        /// The fewest the ratio promises (`backends - max_open`).
        floor: u32,
    },
}

/// The name this type had before the selection guard
/// ([`crate::upstream::Selection`]) took it; kept for API users.
pub type Selection = SelectionMode;

/// All backends of one upstream in one snapshot, indexed by [`BackendId`].
#[derive(Debug)]
pub struct BackendTable {
    backends: Box<[Backend]>,
    /// The upstream's `slow_start_ms` (zero: off).
    slow_start: Nanos,
    budget: Arc<OpenBudget>,
    breaker: BreakerSpec,
    failure_statuses: StatusSet,
    /// The last [`Selection`] seen was panic (for edge-only event lines).
    panicking: AtomicBool,
}

/// Where a table's backends come from: the previous snapshot's table of
/// the same upstream (its states are adopted where the backend is
/// unchanged) and the gateway's slot counter.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    /// The same-named upstream's table in the running snapshot.
    pub previous: Option<&'a BackendTable>,
    /// Hands out [`BackendState::slot`]s.
    pub slots: &'a AtomicU32,
}

impl BackendTable {
    /// Builds the table; every backend starts up with a closed circuit
    /// (slots numbered from 0: for a table that is not part of a gateway).
    pub fn new(defs: &[BackendDef], breaker: BreakerSpec) -> BackendTable {
        let slots = AtomicU32::new(0);
        BackendTable::build(
            defs,
            breaker,
            Lineage {
                previous: None,
                slots: &slots,
            },
        )
    }

    /// Builds the table for a reload: a backend whose name, address and
    /// TLS settings are unchanged, in an upstream whose breaker settings
    /// are unchanged, keeps its state (circuit, counts, switch, pooled
    /// connections); the upstream then keeps its open-circuit budget too,
    /// resized for the new backend count. Anything else starts fresh.
    pub fn build(defs: &[BackendDef], breaker: BreakerSpec, from: Lineage<'_>) -> BackendTable {
        let max_open = open_budget::max_open(defs.len(), breaker.max_open_ratio);
        let previous = from.previous.filter(|p| p.breaker == breaker);
        let budget = match previous {
            Some(p) => {
                p.budget.resize(defs.len(), max_open);
                p.budget.clone()
            }
            None => Arc::new(OpenBudget::new(defs.len(), max_open)),
        };
        let backends = defs
            .iter()
            .enumerate()
            .map(|(id, d)| {
                let adopted = previous
                    .and_then(|p| p.by_name(&d.name))
                    .filter(|old| old.addr == d.addr && same_tls(&old.tls, &d.tls))
                    .map(|old| old.state.clone());
                let state = adopted.unwrap_or_else(|| {
                    let slot = from.slots.fetch_add(1, Ordering::Relaxed);
                    Arc::new(BackendState::new(
                        slot,
                        Breaker::with_budget(breaker, budget.clone()),
                    ))
                });
                Backend {
                    id,
                    name: d.name.clone(),
                    addr: d.addr,
                    weight: d.weight.max(1),
                    tls: d.tls.clone(),
                    state,
                }
            })
            .collect();
        BackendTable {
            backends,
            slow_start: Nanos::ZERO,
            budget,
            breaker,
            failure_statuses: breaker.failure_statuses,
            panicking: AtomicBool::new(false),
        }
    }

    /// The table with a slow-start ramp of `slow_start` for recovered
    /// backends.
    pub fn with_slow_start(mut self, slow_start: Nanos) -> BackendTable {
        self.slow_start = slow_start;
        self
    }

    /// The upstream's slow-start ramp (zero: off).
    #[inline]
    pub fn slow_start(&self) -> Nanos {
        self.slow_start
    }

    /// Backend `id`'s weight at `now`, scaled by its slow-start ramp.
    #[inline]
    pub fn effective_weight(&self, id: BackendId, now: Nanos) -> f64 {
        let b = &self.backends[id];
        f64::from(b.weight) * b.ramp(now, self.slow_start)
    }

    /// The breaker settings its backends were built with.
    pub fn breaker_spec(&self) -> BreakerSpec {
        self.breaker
    }

    /// The breaker verdict for a response with this status
    /// (`circuit_breaker.failure_statuses`).
    pub fn outcome_of(&self, status: u16) -> Outcome {
        if self.failure_statuses.contains(status) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }

    /// The shared cap on open circuits.
    pub fn open_budget(&self) -> &OpenBudget {
        &self.budget
    }

    /// Whether selection must panic at `now`: fewer switched-on backends
    /// with a CLOSED circuit than `backends - max_open`. With no circuit
    /// open this is one atomic load (nothing to panic about: every
    /// switched-on backend is selectable anyway).
    pub fn selection(&self, now: Nanos) -> SelectionMode {
        let floor = self.budget.panic_floor();
        if floor == 0 || self.budget.open() == 0 {
            return SelectionMode::Normal;
        }
        let available = self
            .backends
            .iter()
            .filter(|b| b.is_up() && b.breaker.state(now) == CircuitState::Closed)
            .count() as u32;
        if available < floor {
            SelectionMode::Panic { available, floor }
        } else {
            SelectionMode::Normal
        }
    }

    /// Records `sel` as the current selection mode; `true` when that is a
    /// change (one caller wins each edge, for the event log).
    pub fn note_selection(&self, sel: SelectionMode) -> bool {
        let panic = matches!(sel, SelectionMode::Panic { .. });
        // Load first: the common case (no change) writes nothing.
        self.panicking.load(Ordering::Relaxed) != panic
            && self.panicking.swap(panic, Ordering::Relaxed) != panic
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
