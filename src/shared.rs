//! State shared by every worker and the control loop (behind one `Arc`): the
//! configuration, the upstreams with their backend tables, metrics, the event log, the clock epoch,
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
use crate::algo::{MonotonicClock, Nanos};
use crate::backend::{Backend, BackendTable, SelectionMode};
use crate::config::{Config, DEFAULT_UPSTREAM};
use crate::events::{EventKind, EventLog};
use crate::metrics::{ConsumerStats, Metrics, RouteStats};
use crate::upstream::PoolId;

/// One upstream pool as every thread sees it.
#[derive(Debug)]
pub struct Upstream {
    /// Its id (index in [`Shared::upstreams`] and in each worker's pools).
    pub id: PoolId,
    /// Its name (`default` for the top-level backends).
    pub name: String,
    /// Its backends with their breakers and counters (selection guards
    /// hold it too).
    pub table: Arc<BackendTable>,
}

/// Shared by all threads (behind an `Arc`).
#[derive(Debug)]
pub struct Shared {
    /// The configuration the gateway started with.
    pub config: Config,
    /// Every upstream, `default` first when there is one (the order of
    /// [`Config::all_upstreams`]).
    pub upstreams: Vec<Upstream>,
    /// The `default` upstream's backends (the top-level `backends`; an
    /// empty table when the config has none). The seed's admin endpoints
    /// act on it.
    pub backends: Arc<BackendTable>,
    /// Totals.
    pub metrics: Metrics,
    /// Per route, in config order (the catch-all alone without routes).
    pub route_stats: Box<[RouteStats]>,
    /// Per consumer, in config order (= `ConsumerId`).
    pub consumer_stats: Box<[ConsumerStats]>,
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
    /// The HTTPS listener's TLS state, when `tls` is configured (set by
    /// `Gateway::start`).
    pub tls: Option<Arc<crate::tls::TlsServer>>,
}

impl Shared {
    /// Builds the shared state for `config`.
    pub fn new(config: Config) -> Shared {
        let upstreams: Vec<Upstream> = config
            .all_upstreams()
            .into_iter()
            .enumerate()
            .map(|(i, u)| Upstream {
                id: PoolId(i as u16),
                name: u.name,
                table: Arc::new(BackendTable::new(&u.backends, u.circuit_breaker)),
            })
            .collect();
        let backends = match upstreams.first() {
            Some(u) if u.name == DEFAULT_UPSTREAM => u.table.clone(),
            _ => Arc::new(BackendTable::new(&[], config.circuit_breaker)),
        };
        let clock = MonotonicClock::new();
        let key_hasher = KeyHasher::for_store(&config.rate_limit.store);
        let limit_store = GlobalStore::start(&config.rate_limit.store, &clock);
        let route_stats = (0..config.routes.len().max(1))
            .map(|_| RouteStats::default())
            .collect();
        let consumer_stats = (0..config.consumers.len())
            .map(|_| ConsumerStats::default())
            .collect();
        Shared {
            config,
            upstreams,
            backends,
            metrics: Metrics::default(),
            route_stats,
            consumer_stats,
            events: EventLog::default(),
            clock,
            key_hasher,
            limit_store,
            tls: None,
        }
    }

    /// Logs a circuit transition of backend `b`.
    pub fn circuit_event(&self, b: &Backend, t: Transition, now: Nanos) {
        self.events.record(
            now,
            EventKind::CircuitTransition {
                backend: b.name.clone(),
                from: t.from,
                to: t.to,
            },
        );
    }

    /// Logs that backend `b`'s open circuit admitted its probe request
    /// (OPEN -> HALF_OPEN as the request that took the probe permit saw it).
    pub fn probe_event(&self, b: &Backend, now: Nanos) {
        self.events.record(
            now,
            EventKind::HalfOpenProbe {
                backend: b.name.clone(),
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

    /// Counts and logs a trip of backend `b` (of `table`) that the
    /// open-circuit cap (`max_open_ratio`) refused: its circuit stays CLOSED.
    pub fn trip_suppressed(&self, table: &BackendTable, b: &Backend, now: Nanos) {
        Metrics::inc(&self.metrics.circuit_trips_suppressed);
        let budget = table.open_budget();
        self.events.record(
            now,
            EventKind::TripSuppressed {
                backend: b.name.clone(),
                open: budget.open(),
                max_open: budget.max_open(),
            },
        );
    }

    /// The upstream named `name`.
    pub fn upstream(&self, name: &str) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    /// The backend named `name` (names are unique across upstreams), with
    /// its upstream.
    pub fn backend_by_name(&self, name: &str) -> Option<(&Upstream, &Backend)> {
        self.upstreams
            .iter()
            .find_map(|u| u.table.by_name(name).map(|b| (u, b)))
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
