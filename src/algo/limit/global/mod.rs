//! Global rate limits: one limit shared by several gateways through a store (Redis).
//!
//! Decisions stay local: [`GlobalLimiter::check`] takes one short, per-bucket
//! lock on a bounded table and never does I/O. A background sync thread
//! ([`sync`]) pushes local admission counts and pulls global ones for every
//! active key in one pipelined round trip per `sync_ms`, and counts the live
//! gateways. Between syncs each gateway may admit at most its share of what is
//! globally left, `ceil((limit - global) / gateways)`. When the store is down or
//! slow the gateway keeps deciding locally (fail-open) or denies (fail-closed);
//! it never blocks and never panics. Bounds and trade-offs: the project
//! README ("Running several gateways", "Error bound").
//! This module measures and decides only: the config side parses its settings
//! ([`StoreConfig`]) and the control side renders its [`StoreStatus`].

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use api_gateway_protocol::LimitSpec;
use crossbeam_channel::Sender;

use super::{Decision, RateLimiter};
use crate::algo::cells::Evictions;
use crate::algo::{Clock, MonotonicClock, Nanos};

pub mod redis_store;
mod settings;
pub mod sync;
mod table;

pub use settings::{FailMode, RedisStoreConfig, StoreConfig};
pub use table::{Counts, GlobalTable, Kind, Mode, Params, Record, MAX_ENTRIES};

/// Hashes client identities into limiter keys.
///
/// Local limits use a random per-process seed (attackers cannot aim at one
/// table slot). A global limit needs the *same* key on every gateway, so with
/// a Redis store the seed is fixed, derived from `key_prefix` (keep the prefix
/// unpublished if slot-aiming matters to you). SipHash-2-4 either way.
pub enum KeyHasher {
    /// Random per-process keys.
    Random(RandomState),
    /// Fixed keys shared by every gateway of one deployment.
    Fixed(u64, u64),
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyHasher::Random(_) => "KeyHasher::Random",
            KeyHasher::Fixed(..) => "KeyHasher::Fixed",
        })
    }
}

#[allow(deprecated)] // std's SipHasher: the stable, keyed SipHash-2-4 we need.
fn sip(k0: u64, k1: u64) -> std::hash::SipHasher {
    std::hash::SipHasher::new_with_keys(k0, k1)
}

impl KeyHasher {
    /// The hasher a gateway with this store needs.
    pub fn for_store(store: &StoreConfig) -> KeyHasher {
        match store {
            StoreConfig::Local => KeyHasher::Random(RandomState::new()),
            StoreConfig::Redis(r) => {
                let seed = |k: u64| {
                    let mut h = sip(k, 0x6170_692d_6777_0000);
                    h.write(r.key_prefix.as_bytes());
                    h.finish()
                };
                KeyHasher::Fixed(seed(1), seed(2))
            }
        }
    }
}

/// The hasher built by [`KeyHasher`].
#[allow(deprecated)]
pub enum KeyHash {
    /// Random per-process keys.
    Random(DefaultHasher),
    /// Fixed keys.
    Fixed(std::hash::SipHasher),
}

impl Hasher for KeyHash {
    fn write(&mut self, bytes: &[u8]) {
        match self {
            KeyHash::Random(h) => h.write(bytes),
            KeyHash::Fixed(h) => h.write(bytes),
        }
    }

    fn finish(&self) -> u64 {
        match self {
            KeyHash::Random(h) => h.finish(),
            KeyHash::Fixed(h) => h.finish(),
        }
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = KeyHash;
    fn build_hasher(&self) -> KeyHash {
        match self {
            KeyHasher::Random(r) => KeyHash::Random(r.build_hasher()),
            KeyHasher::Fixed(k0, k1) => KeyHash::Fixed(sip(*k0, *k1)),
        }
    }
}

const STARTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// State shared by the limiters, the sync thread and the reports.
pub struct StoreInner {
    cfg: RedisStoreConfig,
    /// Unix time (ns) of the gateway clock's zero: windows are aligned on
    /// wall-clock time so every gateway agrees on window numbers.
    unix_offset: u64,
    state: AtomicU8,
    nodes: AtomicU64,
    current: Mutex<Weak<GlobalTable>>,
    syncs: AtomicU64,
    errors: AtomicU64,
    last_sync_us: AtomicU64,
    last_error: Mutex<String>,
    node_id: String,
}

impl StoreInner {
    fn mode(&self) -> Mode {
        match (self.state.load(Ordering::Acquire), self.cfg.fail) {
            (UP, _) => Mode::Global,
            (_, FailMode::Open) => Mode::Local,
            (_, FailMode::Closed) => Mode::Deny,
        }
    }

    fn is_up(&self) -> bool {
        self.state.load(Ordering::Acquire) == UP
    }

    /// Records a failed sync; logs only on the transition.
    fn mark_down(&self, what: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            e.clear();
            e.push_str(what);
        }
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            let then = match self.cfg.fail {
                FailMode::Open => "limits are local to each gateway (fail-open)",
                FailMode::Closed => "denying rate-limited requests (fail-closed)",
            };
            log::warn!(
                "rate-limit store {} is down ({what}); {then} until it answers",
                redact(&self.cfg.url)
            );
        }
    }

    /// Records a successful sync; logs only on the transition.
    fn mark_up(&self, nodes: u64, took_us: u64) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.last_sync_us.store(took_us, Ordering::Relaxed);
        self.nodes.store(nodes.max(1), Ordering::Release);
        if self.state.swap(UP, Ordering::AcqRel) != UP {
            log::info!(
                "rate-limit store {} is up: limits are global across {nodes} gateway(s)",
                redact(&self.cfg.url)
            );
        }
    }

    fn current_table(&self) -> Option<Arc<GlobalTable>> {
        self.current.lock().ok().and_then(|w| w.upgrade())
    }
}

/// The running store of one gateway: its sync thread lives as long as this
/// handle (dropping it disconnects the thread's stop channel).
pub struct GlobalStore {
    inner: Arc<StoreInner>,
    _stop: Sender<()>,
}

impl std::fmt::Debug for GlobalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalStore")
            .field("url", &redact(&self.inner.cfg.url))
            .finish_non_exhaustive()
    }
}

impl GlobalStore {
    /// Starts the sync thread for a Redis store; `None` for the local store.
    /// Never fails: an unreachable Redis is a "down" store, retried with backoff.
    pub fn start(cfg: &StoreConfig, clock: &MonotonicClock) -> Option<Arc<GlobalStore>> {
        let cfg = cfg.redis()?.clone();
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let unix_offset = unix_now.saturating_sub(clock.now().0);
        let node_id = format!(
            "{:016x}",
            RandomState::new().hash_one((std::process::id(), unix_now))
        );
        let inner = Arc::new(StoreInner {
            cfg,
            unix_offset,
            state: AtomicU8::new(STARTING),
            nodes: AtomicU64::new(1),
            current: Mutex::new(Weak::new()),
            syncs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_sync_us: AtomicU64::new(0),
            last_error: Mutex::new(String::new()),
            node_id,
        });
        let (stop, stop_rx) = crossbeam_channel::bounded(0);
        let thread_inner = inner.clone();
        if let Err(e) = std::thread::Builder::new()
            .name("ratelimit-sync".into())
            .spawn(move || sync::run(thread_inner, stop_rx))
        {
            inner.mark_down(&format!("cannot start the sync thread: {e}"));
        }
        Some(Arc::new(GlobalStore { inner, _stop: stop }))
    }

    /// Whether the last sync succeeded.
    pub fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    /// Live gateways sharing the limit (as of the last sync; at least 1).
    pub fn gateways(&self) -> u64 {
        self.inner.nodes.load(Ordering::Acquire)
    }

    /// The settings the store runs on.
    pub fn config(&self) -> &RedisStoreConfig {
        &self.inner.cfg
    }

    /// A snapshot of the store's health, for the reports (rendered by the
    /// control side; this module only measures).
    pub fn status(&self) -> StoreStatus {
        let s = &self.inner;
        StoreStatus {
            url: redact(&s.cfg.url),
            state: match s.state.load(Ordering::Acquire) {
                UP => StoreState::Up,
                DOWN => StoreState::Down,
                _ => StoreState::Starting,
            },
            global: s.current_table().is_some(),
            gateways: s.nodes.load(Ordering::Acquire),
            syncs: s.syncs.load(Ordering::Relaxed),
            sync_errors: s.errors.load(Ordering::Relaxed),
            last_sync_us: s.last_sync_us.load(Ordering::Relaxed),
            last_error: s.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
        }
    }
}

/// Whether the store answers, as of the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreState {
    /// No sync has finished yet.
    Starting,
    /// The last sync succeeded: limits are global.
    Up,
    /// The last sync failed: limits are local (fail-open) or deny (fail-closed).
    Down,
}

impl StoreState {
    /// `starting`, `up` or `down`, as reported.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreState::Starting => "starting",
            StoreState::Up => "up",
            StoreState::Down => "down",
        }
    }
}

/// What [`GlobalStore::status`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStatus {
    /// The Redis URL with any password masked.
    pub url: String,
    /// Up, down or starting.
    pub state: StoreState,
    /// Whether the limiter in force is a global one (some algorithms have no
    /// global mode and stay local).
    pub global: bool,
    /// Live gateways sharing the limit (at least 1).
    pub gateways: u64,
    /// Successful syncs.
    pub syncs: u64,
    /// Failed syncs.
    pub sync_errors: u64,
    /// Duration of the last successful sync, in microseconds.
    pub last_sync_us: u64,
    /// What the last failed sync reported (empty if none failed).
    pub last_error: String,
}

/// A limiter whose counts are shared through a [`GlobalStore`].
pub struct GlobalLimiter {
    spec: LimitSpec,
    table: Arc<GlobalTable>,
    store: Arc<StoreInner>,
}

impl RateLimiter for GlobalLimiter {
    fn check(&self, key: u64, now: Nanos) -> Decision {
        let s = &self.store;
        self.table
            .check(key, now, s.mode(), s.nodes.load(Ordering::Acquire))
    }

    fn spec(&self) -> &LimitSpec {
        &self.spec
    }
}

/// Whether `spec` can be enforced globally (fixed window, sliding counter).
pub fn is_global(spec: &LimitSpec) -> bool {
    matches!(
        spec,
        LimitSpec::FixedWindow { .. } | LimitSpec::SlidingCounter { .. }
    )
}

/// Builds the limiter for `spec`: global when a store is given and the
/// algorithm supports it, else the local one from [`super::build`] (with a
/// warning when a store was configured). The newest global limiter is the one
/// the sync thread serves, so live switches keep the store.
pub fn build(
    spec: &LimitSpec,
    max_keys: usize,
    evictions: &Evictions,
    store: Option<&Arc<GlobalStore>>,
) -> Arc<dyn RateLimiter> {
    let Some(store) = store else {
        return super::build(spec, max_keys, evictions);
    };
    let inner = &store.inner;
    let (kind, limit, window_ms) = match *spec {
        LimitSpec::FixedWindow { limit, window_ms } => (Kind::Fixed, limit, window_ms),
        LimitSpec::SlidingCounter { limit, window_ms } => (Kind::Sliding, limit, window_ms),
        _ => {
            log::warn!(
                "rate limiter {} has no global mode: each gateway enforces it alone \
                 (N gateways admit up to N x the limit); use fixed-window or sliding-counter",
                spec.name()
            );
            if let Ok(mut c) = inner.current.lock() {
                *c = Weak::new();
            }
            return super::build(spec, max_keys, evictions);
        }
    };
    let table = Arc::new(GlobalTable::new(Params {
        kind,
        limit: u64::from(limit),
        window_ms: window_ms.max(1),
        unix_offset: inner.unix_offset,
        sync_ms: inner.cfg.sync_ms,
        max_keys,
        evictions: evictions.clone(),
    }));
    if let Ok(mut c) = inner.current.lock() {
        *c = Arc::downgrade(&table);
    }
    Arc::new(GlobalLimiter {
        spec: spec.clone(),
        table,
        store: inner.clone(),
    })
}

/// `redis://user:secret@host` -> `redis://user:***@host`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_string(),
        },
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(prefix: &str) -> StoreConfig {
        StoreConfig::Redis(RedisStoreConfig {
            url: "redis://127.0.0.1:6379".into(),
            sync_ms: 50,
            key_prefix: prefix.into(),
            fail: FailMode::Open,
            timeout_ms: 250,
        })
    }

    #[test]
    fn fixed_hasher_is_the_same_in_every_process_and_depends_on_prefix() {
        let a = KeyHasher::for_store(&redis("x"));
        let b = KeyHasher::for_store(&redis("x"));
        let c = KeyHasher::for_store(&redis("y"));
        assert_eq!(a.hash_one("client"), b.hash_one("client"));
        assert_ne!(a.hash_one("client"), c.hash_one("client"));
        let r1 = KeyHasher::for_store(&StoreConfig::Local);
        let r2 = KeyHasher::for_store(&StoreConfig::Local);
        assert_ne!(r1.hash_one("client"), r2.hash_one("client"));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
    }
}
