//! State shared by every worker and the control loop (behind one `Arc`)
//! for the gateway's whole life: metrics, the event log, the clock epoch,
//! the rate-limit key hasher and shared store, the TLS listener's state,
//! the last decision traces, and the snapshot now running (for reports and tests; workers are handed
//! theirs). Plus the helpers that record typed events about backends and
//! selection, and the client hash of the sticky balancers.
//!
//! The request path reads it without locks (atomics inside); the event log's
//! mutex is taken only on state changes, and the `current` mutex only by the
//! control thread and by callers off the request path.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::algo::breaker::Transition;
use crate::algo::limit::global::{GlobalStore, KeyHasher};
use crate::algo::{MonotonicClock, Nanos};
use crate::backend::{Backend, BackendTable, SelectionMode};
use crate::config::Config;
use crate::events::{EventKind, EventLog};
use crate::metrics::Metrics;
use crate::snapshot::{Counters, Snapshot};
use crate::trace::TraceRing;

/// Shared by all threads (behind an `Arc`).
#[derive(Debug)]
pub struct Shared {
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
    /// The HTTPS listener's TLS state, when `tls` is configured (set by
    /// `Gateway::start`).
    pub tls: Option<Arc<crate::tls::TlsServer>>,
    /// Numbers handed out to snapshots' backend states.
    pub counters: Counters,
    /// The last decision traces (only traced requests take its lock).
    pub traces: TraceRing,
    /// The snapshot now running, as the control thread last installed it.
    current: Mutex<Option<Arc<Snapshot>>>,
}

impl Shared {
    /// Builds the shared state for a gateway starting with `config` (its
    /// rate-limit store and key hasher, which only a restart changes).
    pub fn new(config: &Config) -> Shared {
        let clock = MonotonicClock::new();
        let key_hasher = KeyHasher::for_store(&config.rate_limit.store);
        let limit_store = GlobalStore::start(&config.rate_limit.store, &clock);
        Shared {
            metrics: Metrics::default(),
            events: EventLog::default(),
            clock,
            key_hasher,
            limit_store,
            tls: None,
            counters: Counters::default(),
            traces: TraceRing::default(),
            current: Mutex::new(None),
        }
    }

    /// The snapshot now running. Panics before the gateway installed one
    /// (`Gateway::start` does so before any thread starts).
    pub fn current(&self) -> Arc<Snapshot> {
        let cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        cur.clone().expect("a snapshot is installed at start")
    }

    /// Records `snap` as the one running (control thread).
    pub fn set_current(&self, snap: Arc<Snapshot>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(snap);
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
