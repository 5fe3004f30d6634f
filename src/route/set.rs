//! The routes a worker serves: the compiled match table and each route's
//! policy, built together from one config and swapped together (an `Arc`).
//!
//! A config without routes has no table: one catch-all policy to `default`,
//! and requests are forwarded exactly as sent ([`RouteSet::is_routing`] is
//! false). With routes, a request's normalized host and path pick a route
//! (or 404/405), and the policy at the same index says what to do with it.

use std::sync::Arc;

use crate::algo::cells::Evictions;
use crate::algo::limit::{self, RateLimiter};
use crate::config::{Config, DEFAULT_UPSTREAM};
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
}

impl RouteSet {
    /// Builds the set for `config`.
    pub fn new(config: &Config) -> Result<RouteSet, String> {
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
            return Ok(RouteSet {
                table: None,
                policies: vec![RoutePolicy::catch_all(DEFAULT_UPSTREAM, pool)],
            });
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
            policies.push(RoutePolicy::new(r, pool_of(&r.upstream)?));
        }
        Ok(RouteSet {
            table: Some(table),
            policies,
        })
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
}

/// The limiters for `routes`: slot 0 the top-level one (`top`), then one
/// per route (slot `r + 1`): its own when it has a `rate_limit` (counting
/// in this process only), else `top` again, so it shares the top-level key
/// space. A config without routes has the catch-all's slot, `top`.
pub fn route_limiters(
    config: &Config,
    routes: &RouteSet,
    top: &Arc<dyn RateLimiter>,
    evictions: &Evictions,
) -> Vec<Arc<dyn RateLimiter>> {
    let own = |r: usize| {
        let rl = config.routes.get(r).and_then(|c| c.rate_limit.as_ref());
        match rl {
            Some(rl) => limit::build(&rl.spec, rl.max_keys, evictions),
            None => top.clone(),
        }
    };
    std::iter::once(top.clone())
        .chain((0..routes.policies.len()).map(own))
        .collect()
}
