//! The running configuration, compiled: one immutable [`Snapshot`] of the
//! routes, upstreams (backend tables and balancers), consumers, limiters,
//! per-route and per-consumer counters and timeouts, built on the control
//! thread and handed to every worker as an `Arc`.
//!
//! Invariants:
//! - A snapshot never changes. A reload, or a live algorithm switch, builds
//!   a new one (with a new [`Snapshot::serial`]) and workers swap their
//!   `Arc` between two requests; no lock is taken on the request path.
//! - A request runs on the snapshot that was current when its head was
//!   parsed, to its end (see `worker::snaps`): route ids, pool ids and
//!   backend ids in it index that snapshot only.
//! - What must survive a reload lives outside the snapshot and is adopted
//!   by the next one when its owner is unchanged: backend state (circuit,
//!   counts, pooled connections) by upstream + name + address; a limiter
//!   (its counters) by [`LimiterSig`]; route and consumer counters by name.

use std::collections::HashMap;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use crate::algo::balance;
use crate::algo::cells::Evictions;
use crate::algo::limit::shadow::{ShadowSet, Shadows};
use crate::algo::limit::{self, RateLimiter};
use crate::backend::{BackendTable, Lineage};
use crate::config::{Config, KeySource, DEFAULT_UPSTREAM};
use crate::conn::Timeouts;
use crate::metrics::{ConsumerStats, RouteStats};
use crate::route::RouteSet;
use crate::shared::Shared;
use crate::upstream::{Pool, PoolId};

/// After our write side is shut, how long we keep reading (and discarding)
/// so the kernel does not answer unread input with a reset that would
/// destroy the response we just sent (the "lingering close").
pub const LINGER: crate::algo::Nanos = crate::algo::Nanos::from_millis(2000);

/// What a limiter counts, beyond its algorithm's state: equal signatures
/// mean a reload may keep the running limiter (and everyone's budget).
#[derive(Debug, Clone, PartialEq)]
pub struct LimiterSig {
    /// Algorithm and parameters.
    pub spec: api_gateway_protocol::LimitSpec,
    /// Table bound.
    pub max_keys: usize,
    /// What a client is.
    pub key: KeySource,
    /// A route's own limiter (`true`) or the top-level one it follows.
    pub own: bool,
}

/// The running configuration (see the module docs).
#[derive(Clone)]
pub struct Snapshot {
    /// Unique per snapshot built by this gateway (reloads and switches).
    pub serial: u64,
    /// The config generation: 0 for the start config, +1 per successful
    /// reload (live switches do not count).
    pub generation: u64,
    /// The config it was compiled from (with restart-only fields as
    /// running).
    pub config: Arc<Config>,
    /// Routes, their policies, the consumers and their own limiters.
    pub routes: Arc<RouteSet>,
    /// Every upstream, `default` first when there is one (the order of
    /// [`Config::all_upstreams`]), indexed by [`PoolId`].
    pub pools: Vec<Pool>,
    /// The `default` upstream's backends (an empty table without them):
    /// the seed's endpoints act on it.
    pub backends: Arc<BackendTable>,
    /// Rate limiters by slot: 0 the top-level one, `r + 1` route `r`'s (the
    /// top-level one again while the route follows it).
    pub limiters: Vec<Arc<dyn RateLimiter>>,
    /// Per route: it follows the top-level limiter (switched with it).
    pub inherits: Vec<bool>,
    /// Shadow limiters by slot, as `limiters` (`None`: the slot has none).
    /// Slots that share a limiter share its set.
    pub shadows: Vec<Option<Arc<ShadowSet>>>,
    /// Per route, in config order (the catch-all alone without routes).
    pub route_stats: Arc<[Arc<RouteStats>]>,
    /// Per consumer, in config order (= `ConsumerId`).
    pub consumer_stats: Arc<[Arc<ConsumerStats>]>,
    /// The timeouts, converted.
    pub timeouts: Timeouts,
    /// The pipeline has the logger stage.
    pub logger: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("serial", &self.serial)
            .field("generation", &self.generation)
            .field("routes", &self.routes.len())
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

/// Numbers snapshots and backend states for one gateway.
#[derive(Debug, Default)]
pub struct Counters {
    /// The next backend state slot.
    pub backend_slots: AtomicU32,
}

impl Snapshot {
    /// Compiles `config`. With `previous` (a reload), state whose owner is
    /// unchanged is adopted from it (see the module docs). Fails with the
    /// message of the first thing that does not compile.
    pub fn build(
        config: Config,
        shared: &Shared,
        previous: Option<&Snapshot>,
        serial: u64,
        generation: u64,
    ) -> Result<Snapshot, String> {
        let evictions = &shared.metrics.limit_evictions;
        let routes = RouteSet::new(&config, evictions, previous.map(|p| &*p.routes))?;
        let pools: Vec<Pool> = config
            .all_upstreams()
            .into_iter()
            .enumerate()
            .map(|(i, u)| {
                let before = previous.and_then(|p| p.pool(&u.name));
                let table = Arc::new(
                    BackendTable::build(
                        &u.backends,
                        u.circuit_breaker,
                        Lineage {
                            previous: before.map(|p| &*p.table),
                            slots: &shared.counters.backend_slots,
                        },
                    )
                    .with_slow_start(crate::algo::Nanos::from_millis(u.resilience.slow_start_ms)),
                );
                let balancer = balance::build(&u.load_balancer, &table);
                // The retry budget counts the upstream's traffic, whichever
                // config it came through.
                let budget = before.map(|p| p.budget.clone()).unwrap_or_default();
                let waiting = before.map(|p| p.waiting.clone()).unwrap_or_default();
                let r = &u.resilience;
                Pool::new(PoolId(i as u16), &u.name, table, balancer)
                    .with_retries(r.retry.clone(), budget)
                    .with_cap(r.max_inflight_per_backend, r.queue, waiting)
            })
            .collect();
        let backends = match pools.first() {
            Some(p) if p.name == DEFAULT_UPSTREAM => p.table.clone(),
            _ => Arc::new(BackendTable::new(&[], config.circuit_breaker)),
        };
        let (limiters, inherits) = build_limiters(&config, &routes, shared, previous);
        let shadows = build_shadows(
            &config,
            &limiters,
            &inherits,
            &shared.metrics.shadow_evictions,
            previous,
        );
        // Counters are kept by name: what a previous route or consumer of
        // that name counted goes on.
        let old_routes: HashMap<&str, &Arc<RouteStats>> = previous
            .map(|p| {
                p.config
                    .route_names()
                    .into_iter()
                    .zip(p.route_stats.iter())
                    .collect()
            })
            .unwrap_or_default();
        let route_stats = config
            .route_names()
            .iter()
            .map(|name| {
                old_routes
                    .get(name)
                    .map(|s| Arc::clone(s))
                    .unwrap_or_default()
            })
            .collect();
        let old_consumers: HashMap<&str, &Arc<ConsumerStats>> = previous
            .map(|p| {
                let names = p.config.consumers.iter().map(|c| c.name.as_str());
                names.zip(p.consumer_stats.iter()).collect()
            })
            .unwrap_or_default();
        let consumer_stats = config
            .consumers
            .iter()
            .map(|c| {
                old_consumers
                    .get(c.name.as_str())
                    .map(|s| Arc::clone(s))
                    .unwrap_or_default()
            })
            .collect();
        let timeouts = Timeouts::from_config(&config, LINGER);
        let logger = config.pipeline.contains(&crate::pipeline::Stage::Logger);
        Ok(Snapshot {
            serial,
            generation,
            config: Arc::new(config),
            routes: Arc::new(routes),
            pools,
            backends,
            limiters,
            inherits,
            shadows,
            route_stats,
            consumer_stats,
            timeouts,
            logger,
        })
    }

    /// Whether its requests are written to the access log (when open).
    #[inline]
    pub fn logs_requests(&self) -> bool {
        self.logger
    }

    /// Upstream pool `id`.
    #[inline]
    pub fn pool_at(&self, id: PoolId) -> &Pool {
        &self.pools[id.index()]
    }

    /// The upstream named `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The limiter that counts route `route`'s requests.
    #[inline]
    pub fn limiter(&self, route: usize) -> &dyn RateLimiter {
        &*self.limiters[route + 1]
    }

    /// The shadow limiters beside route `route`'s limiter, if any.
    #[inline]
    pub fn shadows(&self, route: usize) -> Option<&ShadowSet> {
        self.shadows.get(route + 1)?.as_deref()
    }

    /// The backend named `name` (names are unique across upstreams), with
    /// its upstream.
    pub fn backend_by_name(&self, name: &str) -> Option<(&Pool, &crate::backend::Backend)> {
        self.pools
            .iter()
            .find_map(|p| p.table.by_name(name).map(|b| (p, b)))
    }

    /// The signature of the limiter in `slot` as it runs (a live switch's
    /// algorithm, this config's table bound and key).
    pub fn limiter_sig(&self, slot: usize) -> LimiterSig {
        let own = owns(&self.inherits, slot);
        let (max_keys, key) = slot_params(&self.config, slot, own);
        LimiterSig {
            spec: self.limiters[slot].spec().clone(),
            max_keys,
            key,
            own,
        }
    }

    /// This snapshot with `limiter` in `slots` (a live switch): everything
    /// else shared. The slots' shadows start afresh beside the new live
    /// algorithm (their translations follow it), one set for all `slots`.
    pub fn with_limiter(
        &self,
        serial: u64,
        slots: &[usize],
        limiter: &Arc<dyn RateLimiter>,
        shadow_evictions: &Evictions,
    ) -> Snapshot {
        let mut next = self.clone();
        next.serial = serial;
        let shadows = slots.first().and_then(|&s| {
            let which = slot_shadows(&self.config, s)?;
            let (max_keys, _) = slot_params(&self.config, s, owns(&self.inherits, s));
            ShadowSet::new(limiter.spec(), which, max_keys, shadow_evictions).map(Arc::new)
        });
        for &s in slots {
            next.limiters[s] = limiter.clone();
            next.shadows[s] = shadows.clone();
        }
        next
    }

    /// This snapshot with `balancer` for upstream `pool` (a live switch).
    pub fn with_balancer(
        &self,
        serial: u64,
        pool: PoolId,
        balancer: Arc<dyn balance::Balancer>,
    ) -> Snapshot {
        let mut next = self.clone();
        next.serial = serial;
        next.pools[pool.index()].balancer = balancer;
        next
    }
}

/// Whether `slot` holds a route's own limiter (not the top-level one it
/// would follow); `inherits` is per route, as [`Snapshot::inherits`].
fn owns(inherits: &[bool], slot: usize) -> bool {
    slot.checked_sub(1)
        .and_then(|r| inherits.get(r))
        .is_some_and(|&follows| !follows)
}

/// The table bound and key of the limiter in `slot` of `config`: a route's
/// own `rate_limit` (its key, else the top-level key) or the top-level
/// settings.
fn slot_params(config: &Config, slot: usize, own: bool) -> (usize, KeySource) {
    let top = &config.rate_limit;
    let route = slot
        .checked_sub(1)
        .and_then(|r| config.routes.get(r))
        .and_then(|r| r.rate_limit.as_ref())
        .filter(|_| own);
    match route {
        Some(rl) => (rl.max_keys, rl.key.clone()),
        None => (top.max_keys, top.key.clone()),
    }
}

/// The shadows configured for the limiter in `slot` of `config`: a route's
/// own `rate_limit.shadow`, else the top-level one (a route's own limiter
/// without the field follows the top-level list, as nginx inherits).
fn slot_shadows(config: &Config, slot: usize) -> Option<&Shadows> {
    let top = config.rate_limit.shadow.as_ref();
    let route = slot
        .checked_sub(1)
        .and_then(|r| config.routes.get(r))
        .and_then(|r| r.rate_limit.as_ref());
    match route {
        Some(rl) => rl.shadow.as_ref().or(top),
        None => top,
    }
}

/// The shadow sets of every slot. Slots sharing a limiter share one set;
/// a set is adopted from `previous` where its limiter was adopted and the
/// list is unchanged, so a reload that keeps a limiter keeps its counts.
fn build_shadows(
    config: &Config,
    limiters: &[Arc<dyn RateLimiter>],
    inherits: &[bool],
    evictions: &Evictions,
    previous: Option<&Snapshot>,
) -> Vec<Option<Arc<ShadowSet>>> {
    let mut out: Vec<Option<Arc<ShadowSet>>> = Vec::with_capacity(limiters.len());
    for (slot, limiter) in limiters.iter().enumerate() {
        let which = slot_shadows(config, slot);
        let same = |l: &Arc<dyn RateLimiter>| Arc::ptr_eq(l, limiter);
        // Another slot of this snapshot with the same limiter and list.
        let shared = limiters[..slot]
            .iter()
            .enumerate()
            .find(|&(s, l)| same(l) && slot_shadows(config, s) == which)
            .map(|(s, _)| out[s].clone());
        // The set the same limiter had before, under the same list.
        let adopted = || {
            let p = previous?;
            let s = p.limiters.iter().position(same)?;
            (slot_shadows(&p.config, s) == which).then(|| p.shadows[s].clone())?
        };
        let set = match shared {
            Some(set) => set,
            None => adopted().or_else(|| {
                let (max_keys, _) = slot_params(config, slot, owns(inherits, slot));
                ShadowSet::new(limiter.spec(), which?, max_keys, evictions).map(Arc::new)
            }),
        };
        out.push(set);
    }
    out
}

/// The limiters of every slot, adopting the running one wherever its
/// signature is unchanged.
fn build_limiters(
    config: &Config,
    routes: &RouteSet,
    shared: &Shared,
    previous: Option<&Snapshot>,
) -> (Vec<Arc<dyn RateLimiter>>, Vec<bool>) {
    let evictions = &shared.metrics.limit_evictions;
    let prev_names = previous.map(|p| p.config.route_names());
    // The running limiter of the slot that `name` (`None`: top level) had.
    let adopt = |name: Option<&str>, sig: &LimiterSig| -> Option<Arc<dyn RateLimiter>> {
        let p = previous?;
        let slot = match name {
            None => 0,
            Some(n) => prev_names.as_ref()?.iter().position(|x| *x == n)? + 1,
        };
        (p.limiter_sig(slot) == *sig).then(|| p.limiters[slot].clone())
    };
    let top_cfg = &config.rate_limit;
    let top_sig = LimiterSig {
        spec: top_cfg.spec.clone(),
        max_keys: top_cfg.max_keys,
        key: top_cfg.key.clone(),
        own: false,
    };
    let top = adopt(None, &top_sig).unwrap_or_else(|| {
        limit::global::build(
            &top_cfg.spec,
            top_cfg.max_keys,
            evictions,
            shared.limit_store.as_ref(),
        )
    });
    let names = config.route_names();
    let mut limiters = vec![top.clone()];
    let mut inherits = Vec::with_capacity(routes.len());
    for (r, name) in names.iter().enumerate() {
        match config.routes.get(r).and_then(|c| c.rate_limit.as_ref()) {
            Some(rl) => {
                let sig = LimiterSig {
                    spec: rl.spec.clone(),
                    max_keys: rl.max_keys,
                    key: rl.key.clone(),
                    own: true,
                };
                let l = adopt(Some(name), &sig)
                    .unwrap_or_else(|| limit::build(&rl.spec, rl.max_keys, evictions));
                limiters.push(l);
                inherits.push(false);
            }
            None => {
                limiters.push(top.clone());
                inherits.push(true);
            }
        }
    }
    (limiters, inherits)
}
