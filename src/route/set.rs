//! The routes a worker serves: the compiled match table and each route's
//! policy, built together from one config and swapped together (an `Arc`).
//!
//! A config without routes has no table: one catch-all policy to `default`,
//! and requests are forwarded exactly as sent ([`RouteSet::is_routing`] is
//! false). With routes, a request's normalized host and path pick a route
//! (or 404/405), and the policy at the same index says what to do with it.
//!
//! The consumers live here too: routes' `allow` lists name them by id, so
//! the two must always come from the same config. So do the limiters of
//! consumers with their own `rate_limit` (fixed by the config; the admin
//! switches only the top-level and per-route limiters).

use std::sync::Arc;

use crate::algo::cells::Evictions;
use crate::algo::limit::{self, RateLimiter};
use crate::auth::route::KeyPlace;
use crate::auth::{ConsumerId, Consumers};
use crate::config::{Config, KeySource, DEFAULT_UPSTREAM};
use crate::upstream::PoolId;

use super::policy::RoutePolicy;
use super::{RouteDef, RouteMatch, RouteTable};

/// Routes and their policies.
#[derive(Debug)]
pub struct RouteSet {
    /// `None`: no routes configured (one catch-all, no normalization).
    table: Option<RouteTable>,
    /// One per route, in config order (the catch-all alone without routes).
    policies: Vec<RoutePolicy>,
    /// The configured consumers.
    consumers: Consumers,
    /// For each consumer with its own `rate_limit` (its place `o`) and each
    /// limiter slot `s` keyed by consumer (0: top level, `r + 1`: route
    /// `r`'s own): its limiter, at `o * (routes + 1) + s`.
    consumer_limiters: ConsumerLimiters,
    /// Query parameters that carry API keys: masked in the access log.
    key_params: Vec<Box<[u8]>>,
}

impl RouteSet {
    /// Builds the set for `config`; `evictions` counts the consumer
    /// limiters' evictions.
    pub fn new(
        config: &Config,
        evictions: &Evictions,
        previous: Option<&RouteSet>,
    ) -> Result<RouteSet, String> {
        // Fail closed: a route's `auth` must never be skipped because the
        // pipeline (built by hand) has no stage to run it.
        if config.routes.iter().any(|r| r.auth.is_some())
            && !config.pipeline.contains(&crate::config::Stage::Auth)
        {
            return Err("routes with \"auth\" need the \"auth\" stage in the pipeline".into());
        }
        let consumers = Consumers::new(&config.consumers);
        let names = config.upstream_names();
        let pool_of = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .map(|i| PoolId(i as u16))
                .ok_or_else(|| format!("no upstream named \"{name}\""))
        };
        if !config.routing() {
            let pool = pool_of(DEFAULT_UPSTREAM)?;
            let policies = vec![RoutePolicy::catch_all(DEFAULT_UPSTREAM, pool)];
            return Ok(RouteSet::assemble(
                config, None, policies, consumers, evictions, previous,
            ));
        }
        let defs: Vec<RouteDef> = config
            .routes
            .iter()
            .map(|r| RouteDef {
                name: r.name.clone(),
                hosts: r.hosts.clone(),
                path: r.path.clone(),
                methods: r.methods.clone(),
            })
            .collect();
        let table = RouteTable::new(&defs).map_err(|e| e.to_string())?;
        let mut policies = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            policies.push(RoutePolicy::new(r, pool_of(&r.upstream)?, &consumers)?);
        }
        Ok(RouteSet::assemble(
            config,
            Some(table),
            policies,
            consumers,
            evictions,
            previous,
        ))
    }

    fn assemble(
        config: &Config,
        table: Option<RouteTable>,
        policies: Vec<RoutePolicy>,
        consumers: Consumers,
        evictions: &Evictions,
        previous: Option<&RouteSet>,
    ) -> RouteSet {
        let slots = policies.len() + 1;
        let by_consumer = |s: usize| match s {
            0 => config.rate_limit.key == KeySource::Consumer,
            s => policies[s - 1].limit_key == Some(KeySource::Consumer),
        };
        let owner = |s: usize| match s {
            0 => "",
            s => policies[s - 1].name.as_str(),
        };
        let mut consumer_limiters = Vec::new();
        for c in &config.consumers {
            let Some(rl) = c.rate_limit.as_ref() else {
                continue;
            };
            for s in 0..slots {
                consumer_limiters.push(by_consumer(s).then(|| {
                    let sig = ConsumerLimitSig {
                        consumer: c.name.clone(),
                        owner: owner(s).to_string(),
                        spec: rl.spec.clone(),
                        max_keys: rl.max_keys,
                    };
                    // A reload that leaves this limit alone keeps its counters.
                    let limiter = previous
                        .and_then(|p| p.consumer_limiters.adopt(&sig))
                        .unwrap_or_else(|| limit::build(&rl.spec, rl.max_keys, evictions));
                    (limiter, sig)
                }));
            }
        }
        let mut key_params: Vec<Box<[u8]>> = policies
            .iter()
            .filter_map(|p| match p.auth.as_ref()?.key_place()? {
                KeyPlace::Query(q) => Some(q.clone()),
                KeyPlace::Header(_) => None,
            })
            .collect();
        key_params.sort();
        key_params.dedup();
        RouteSet {
            table,
            policies,
            consumers,
            consumer_limiters: ConsumerLimiters(consumer_limiters),
            key_params,
        }
    }

    /// Whether requests are routed (routes configured): matched on their
    /// normalized path, which is then what gets forwarded.
    #[inline]
    pub fn is_routing(&self) -> bool {
        self.table.is_some()
    }

    /// The route for a request (see [`RouteTable::find`]); without routes,
    /// always the catch-all.
    #[inline]
    pub fn find(&self, host: &[u8], path: &[u8], method: &[u8], allow: &mut Vec<u8>) -> RouteMatch {
        match &self.table {
            Some(t) => t.find(host, path, method, allow),
            None => RouteMatch::Found {
                id: 0,
                prefix_len: 0,
            },
        }
    }

    /// Route `id`'s policy.
    #[inline]
    pub fn policy(&self, id: usize) -> &RoutePolicy {
        &self.policies[id]
    }

    /// How many routes (1, the catch-all, without routes).
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Never: there is always at least the catch-all.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The configured consumers.
    #[inline]
    pub fn consumers(&self) -> &Consumers {
        &self.consumers
    }

    /// The limiter of `consumer`'s own `rate_limit` on route `route`, when
    /// it has one and the route's limiter is keyed by consumer.
    #[inline]
    pub fn consumer_limiter(&self, route: usize, consumer: ConsumerId) -> Option<&dyn RateLimiter> {
        let o = self.consumers.own_limit(consumer)?;
        let slot = match self.policies[route].limit_key {
            Some(_) => route + 1,
            None => 0,
        };
        let l = self
            .consumer_limiters
            .0
            .get(o * (self.policies.len() + 1) + slot)?;
        l.as_ref().map(|(l, _)| &**l)
    }

    /// Masks API keys sent as query parameters in `log_target` (a logged
    /// `METHOD target`).
    #[inline]
    pub fn redact_keys(&self, log_target: &mut Vec<u8>) {
        for p in &self.key_params {
            crate::http::query::redact(log_target, p);
        }
    }
}

/// Consumers' own limiters (see `RouteSet::consumer_limiters`).
struct ConsumerLimiters(Vec<Option<(Arc<dyn RateLimiter>, ConsumerLimitSig)>>);

/// Which consumer's own limit a limiter enforces, on which slot (`owner`:
/// the route's name, empty for the top level), with which settings.
#[derive(Debug, Clone, PartialEq)]
struct ConsumerLimitSig {
    consumer: String,
    owner: String,
    spec: api_gateway_protocol::LimitSpec,
    max_keys: usize,
}

impl ConsumerLimiters {
    /// The running limiter with this signature, if there is one.
    fn adopt(&self, sig: &ConsumerLimitSig) -> Option<Arc<dyn RateLimiter>> {
        self.0
            .iter()
            .flatten()
            .find(|(_, s)| s == sig)
            .map(|(l, _)| l.clone())
    }
}

impl std::fmt::Debug for ConsumerLimiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} consumer limiters", self.0.iter().flatten().count())
    }
}
