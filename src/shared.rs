//! State shared by every worker and the control loop: configuration, the
//! backend table, metrics, the event log, the clock epoch and the key hasher.
//!
//! Everything here is read concurrently without locks (atomics inside); the
//! algorithm objects themselves are not here but handed to each worker, so a
//! switch is a message, not a lock on the request path.

use std::net::IpAddr;
use std::sync::Arc;

use crate::algo::breaker::Transition;
use crate::algo::limit::global::{GlobalStore, KeyHasher};
use crate::algo::{BackendId, MonotonicClock, Nanos};
use crate::backend::{BackendDef, BackendTable, SelectionMode};
use crate::config::Config;
use crate::events::EventLog;
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
        let name = &self.backends.get(id).name;
        self.events.push(
            now,
            format!("circuit {name} {} -> {}", t.from.as_str(), t.to.as_str()),
        );
    }

    /// Logs a change of selection mode (panic began or ended).
    pub fn selection_event(&self, now: Nanos, sel: SelectionMode) {
        let message = match sel {
            SelectionMode::Panic { available, floor } => format!(
                "upstream panic: {available} backend(s) available, fewer than {floor}; spreading over every switched-on backend"
            ),
            SelectionMode::Normal => {
                "upstream panic over: open circuits are skipped again".to_string()
            }
        };
        self.events.push(now, message);
    }

    /// Logs a half-open probe let through to backend `id`.
    pub fn probe_event(&self, id: BackendId, now: Nanos) {
        let name = &self.backends.get(id).name;
        self.events.push(
            now,
            format!("circuit {name} OPEN -> HALF_OPEN (probe request)"),
        );
    }

    /// Counts and logs a trip of backend `id` that the open-circuit cap
    /// (`max_open_ratio`) refused: its circuit stays CLOSED.
    pub fn trip_suppressed(&self, id: BackendId, now: Nanos) {
        Metrics::inc(&self.metrics.circuit_trips_suppressed);
        let name = &self.backends.get(id).name;
        let budget = self.backends.open_budget();
        self.events.push(
            now,
            format!(
                "circuit {name} trip suppressed: {} of {} allowed circuits already open (max_open_ratio)",
                budget.open(),
                budget.max_open()
            ),
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
