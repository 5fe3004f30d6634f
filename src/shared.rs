//! State shared by every worker and the control loop (behind one `Arc`): the
//! configuration, the backend table, metrics, the event log, the clock epoch,
//! the rate-limit key hasher and the shared rate-limit store; plus the helpers
//! that record typed events about backends and selection, and the client hash
//! of the sticky balancers.
//!
//! The request path reads it without locks (atomics inside); the event log's
//! mutex is taken only on state changes. The algorithm objects are not here
//! but handed to each worker, so a switch is a message, not a lock on the
//! request path.

use std::net::IpAddr;
use std::sync::Arc;

use crate::algo::breaker::Transition;
use crate::algo::limit::global::{GlobalStore, KeyHasher};
use crate::algo::{BackendId, MonotonicClock, Nanos};
use crate::backend::{BackendDef, BackendTable, SelectionMode};
use crate::config::Config;
use crate::events::{EventKind, EventLog};
use crate::metrics::Metrics;

/// Shared by all threads (behind an `Arc`).
#[derive(Debug)]
pub struct Shared {
    /// The configuration the gateway started with.
    pub config: Config,
    /// Backends with their breakers and counters (the `default` pool's
    /// table; selection guards hold it too).
    pub backends: Arc<BackendTable>,
    /// Totals.
    pub metrics: Metrics,
    /// Operator-visible events.
    pub events: EventLog,
    /// The one clock epoch, so every worker's `now` means the same instant.
    pub clock: MonotonicClock,
    /// Hash keys for rate-limit keys (same in every worker, so a client maps
    /// to one table slot whichever worker serves it): random per process, or
    /// fixed per deployment when limits are global (see `KeyHasher`).
    pub key_hasher: KeyHasher,
    /// The shared rate-limit store (sync thread), when `rate_limit.store` is Redis.
    pub limit_store: Option<Arc<GlobalStore>>,
}

impl Shared {
    /// Builds the shared state for `config`.
    pub fn new(config: Config) -> Shared {
        let defs: Vec<BackendDef> = config.backends.clone();
        let backends = Arc::new(BackendTable::new(&defs, config.circuit_breaker));
        let clock = MonotonicClock::new();
        let key_hasher = KeyHasher::for_store(&config.rate_limit.store);
        let limit_store = GlobalStore::start(&config.rate_limit.store, &clock);
        Shared {
            config,
            backends,
            metrics: Metrics::default(),
            events: EventLog::default(),
            clock,
            key_hasher,
            limit_store,
        }
    }

    /// Logs a circuit transition of backend `id`.
    pub fn circuit_event(&self, id: BackendId, t: Transition, now: Nanos) {
        self.events.record(
            now,
            EventKind::CircuitTransition {
                backend: self.backends.get(id).name.clone(),
                from: t.from,
                to: t.to,
            },
        );
    }

    /// Logs that backend `id`'s open circuit admitted its probe request
    /// (OPEN -> HALF_OPEN as the request that took the probe permit saw it).
    pub fn probe_event(&self, id: BackendId, now: Nanos) {
        self.events.record(
            now,
            EventKind::HalfOpenProbe {
                backend: self.backends.get(id).name.clone(),
            },
        );
    }

    /// Logs that selection entered `sel`: a panic starting (too few backends
    /// available) or, for [`SelectionMode::Normal`], ending. The caller logs only
    /// changes (`BackendTable::note_selection`).
    pub fn selection_event(&self, now: Nanos, sel: SelectionMode) {
        let kind = match sel {
            SelectionMode::Panic { available, floor } => {
                EventKind::PanicStarted { available, floor }
            }
            SelectionMode::Normal => EventKind::PanicEnded,
        };
        self.events.record(now, kind);
    }

    /// Counts and logs a trip of backend `id` that the open-circuit cap
    /// (`max_open_ratio`) refused: its circuit stays CLOSED.
    pub fn trip_suppressed(&self, id: BackendId, now: Nanos) {
        Metrics::inc(&self.metrics.circuit_trips_suppressed);
        let budget = self.backends.open_budget();
        self.events.record(
            now,
            EventKind::TripSuppressed {
                backend: self.backends.get(id).name.clone(),
                open: budget.open(),
                max_open: budget.max_open(),
            },
        );
    }
}

/// A stable (fixed-seed) hash of a client address for the sticky balancers:
/// the same client maps to the same backend across restarts. FNV-1a over the
/// address bytes, then a splitmix finaliser to spread nearby addresses.
pub fn client_hash(ip: IpAddr) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    match ip {
        IpAddr::V4(v4) => v4.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(v6) => v6.octets().into_iter().for_each(&mut eat),
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
