//! The gateway side of the control plane: turns admin commands into
//! algorithm swaps broadcast to every worker, and builds the status reports
//! (health JSON with the typed events; `topology`: the routes and upstreams
//! reports; `prometheus`: the metrics text; `store`: the rate-limit store's
//! part of both).
//!
//! Scope of the commands: the seed's ones act on the `default` upstream and
//! the top-level limiter (which every route without a limiter of its own
//! follows); `SetUpstreamBalancer` and `SetRouteLimiter` act on one named
//! upstream or route. Backend names are unique across upstreams, so toggling
//! or resetting a backend by name reaches it in whichever upstream it is.
//!
//! Validation happened in the admin thread (typed specs); building the new
//! algorithm happens here, once, off the request path, and the workers only
//! swap an `Arc`. Reports read the shared atomics directly, so asking for
//! metrics never touches a worker.

mod prometheus;
mod store;
mod topology;

use std::sync::Arc;

use api_gateway_protocol::{BalanceSpec, Command, LimitSpec, Reply};
use crossbeam_channel::Sender;
use mio::Waker;
use serde_json::{json, Value};

use crate::algo::balance::{self, Balancer};
use crate::algo::limit::{self, RateLimiter};
use crate::backend::SelectionMode;
use crate::events::{Event, EventKind};
use crate::metrics::{get, Histogram};
use crate::shared::Shared;
use crate::worker::WorkerMsg;

/// A worker's mailbox: send, then wake (never the other way round, or the
/// message could sit unread until an unrelated event).
#[derive(Clone)]
pub struct Mailbox {
    /// The worker's message channel.
    pub tx: Sender<WorkerMsg>,
    /// The worker's poll waker.
    pub waker: Arc<Waker>,
}

impl Mailbox {
    fn send(&self, msg: WorkerMsg) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Applies commands and answers reports.
pub struct Controller {
    shared: Arc<Shared>,
    mailboxes: Vec<Mailbox>,
    /// Rate limiters by slot: 0 the top-level one, `r + 1` route `r`'s.
    limiters: Vec<Arc<dyn RateLimiter>>,
    /// Per route: it has no limiter of its own and follows the top-level
    /// one (switched with it).
    inherits: Vec<bool>,
    /// Each upstream's balancer (in [`Shared::upstreams`] order).
    balancers: Vec<Arc<dyn Balancer>>,
    generation: u64,
}

impl Controller {
    /// A controller for these workers, starting from the algorithms they run.
    pub fn new(
        shared: Arc<Shared>,
        mailboxes: Vec<Mailbox>,
        limiters: Vec<Arc<dyn RateLimiter>>,
        balancers: Vec<Arc<dyn Balancer>>,
    ) -> Controller {
        let inherits = limiters[1..]
            .iter()
            .map(|l| Arc::ptr_eq(l, &limiters[0]))
            .collect();
        Controller {
            shared,
            mailboxes,
            limiters,
            inherits,
            balancers,
            generation: 0,
        }
    }

    /// Tells every worker to stop accepting and finish within the grace period.
    pub fn shutdown(&self) {
        let grace = crate::algo::Nanos::from_millis(self.shared.config.timeouts.shutdown_grace_ms);
        for m in &self.mailboxes {
            m.send(WorkerMsg::Shutdown { grace });
        }
    }

    /// Applies one command.
    pub fn handle(&mut self, cmd: Command) -> Reply {
        let now = self.shared.clock_now();
        match cmd {
            Command::Health => Reply::Json(self.health()),
            Command::Metrics => Reply::Text(self.prometheus()),
            Command::Routes => Reply::Json(self.routes()),
            Command::Upstreams => Reply::Json(self.upstreams()),
            Command::Consumers => Reply::Json(topology::consumers_json(&self.shared)),
            Command::ReloadTls => self.reload_tls(),
            Command::SetRateLimiter(spec) => self.set_limiter(spec),
            Command::SetLoadBalancer(spec) => self.set_balancer(spec),
            Command::SetUpstreamBalancer { upstream, spec } => {
                self.set_upstream_balancer(&upstream, spec, true)
            }
            Command::SetRouteLimiter { route, spec } => self.set_route_limiter(&route, spec),
            Command::ToggleBackend(name) => match self.shared.backend_by_name(&name) {
                None => Reply::NotFound(format!("no backend named '{name}'")),
                Some((u, b)) => {
                    let up = b.toggle();
                    self.shared.events.record(
                        now,
                        EventKind::BackendToggled {
                            backend: name.clone(),
                            up,
                        },
                    );
                    Reply::Json(json!({"name": name, "upstream": u.name, "up": up}))
                }
            },
            Command::ResetCircuit(name) => match self.shared.backend_by_name(&name) {
                None => Reply::NotFound(format!("no backend named '{name}'")),
                Some((u, b)) => {
                    if let Some(t) = b.breaker.reset(now) {
                        self.shared.circuit_event(b, t, now);
                    }
                    Reply::Json(json!({
                        "name": name,
                        "upstream": u.name,
                        "circuitState": b.breaker.state(now).as_str(),
                    }))
                }
            },
            Command::ResetMetrics => {
                self.shared.metrics.reset();
                for u in &self.shared.upstreams {
                    for b in u.table.iter() {
                        b.stats.reset();
                    }
                }
                for r in self.shared.route_stats.iter() {
                    r.reset();
                }
                for c in self.shared.consumer_stats.iter() {
                    c.reset();
                }
                self.shared.events.record(now, EventKind::MetricsReset);
                Reply::Json(json!({"reset": true}))
            }
        }
    }

    fn set_limiter(&mut self, spec: LimitSpec) -> Reply {
        if let Err(e) = spec.validate() {
            return Reply::Invalid(e);
        }
        // Through the global builder: a live switch keeps the configured store.
        let limiter = limit::global::build(
            &spec,
            self.shared.config.rate_limit.max_keys,
            &self.shared.metrics.limit_evictions,
            self.shared.limit_store.as_ref(),
        );
        // Routes without a limiter of their own follow the top-level one.
        let slots: Vec<usize> = std::iter::once(0)
            .chain(
                (0..self.inherits.len())
                    .filter(|&r| self.inherits[r])
                    .map(|r| r + 1),
            )
            .collect();
        for &slot in &slots {
            self.install_limiter(slot, &limiter);
        }
        self.record_switch(|generation| EventKind::LimiterSwitched {
            algorithm: spec.name().to_string(),
            generation,
            route: None,
        });
        Reply::Json(
            json!({"rateLimiter": limiter_json(&spec, &self.shared), "generation": self.generation}),
        )
    }

    /// Gives route `name` a limiter of its own (slot `r + 1`, fresh state):
    /// from now on a switch of the top-level limiter no longer touches it.
    /// It counts in this process only, like a route's configured limiter,
    /// and is keyed as the data path keys the route: by the route's own
    /// `rate_limit.key` if it has one, else by the top-level key (which is
    /// what `RoutePolicy::limit_key` falling back to `rate_limit.key`
    /// does, so the data path needs no change). It tracks as many clients
    /// as the route's own `max_keys`, else the top-level one.
    fn set_route_limiter(&mut self, name: &str, spec: LimitSpec) -> Reply {
        let names = topology::route_names(&self.shared.config);
        let Some(r) = names.iter().position(|n| *n == name) else {
            return Reply::NotFound(format!("no route named '{name}'"));
        };
        if let Err(e) = spec.validate() {
            return Reply::Invalid(e);
        }
        let cfg = &self.shared.config;
        let max_keys = cfg
            .routes
            .get(r)
            .and_then(|c| c.rate_limit.as_ref())
            .map_or(cfg.rate_limit.max_keys, |rl| rl.max_keys);
        let limiter = limit::build(&spec, max_keys, &self.shared.metrics.limit_evictions);
        self.install_limiter(r + 1, &limiter);
        self.inherits[r] = false;
        self.record_switch(|generation| EventKind::LimiterSwitched {
            algorithm: spec.name().to_string(),
            generation,
            route: Some(name.to_string()),
        });
        Reply::Json(json!({
            "route": name,
            "rateLimiter": self.route_limiter_json(r),
            "generation": self.generation,
        }))
    }

    /// Puts `limiter` in slot `slot` here and in every worker.
    fn install_limiter(&mut self, slot: usize, limiter: &Arc<dyn RateLimiter>) {
        self.limiters[slot] = limiter.clone();
        for m in &self.mailboxes {
            m.send(WorkerMsg::SetLimiter(slot, limiter.clone()));
        }
    }

    /// Counts a switch (the next generation) and logs it as `kind` says.
    fn record_switch(&mut self, kind: impl FnOnce(u64) -> EventKind) {
        self.generation += 1;
        let now = self.shared.clock_now();
        self.shared.events.record(now, kind(self.generation));
    }

    /// Switches the `default` upstream's balancer (the seed's endpoint).
    fn set_balancer(&mut self, spec: BalanceSpec) -> Reply {
        self.set_upstream_balancer(crate::config::DEFAULT_UPSTREAM, spec, false)
    }

    /// Switches upstream `name`'s balancer in every worker; `scoped`: asked
    /// through the per-upstream endpoint (the event names the upstream).
    fn set_upstream_balancer(&mut self, name: &str, spec: BalanceSpec, scoped: bool) -> Reply {
        let Some(u) = self.shared.upstream(name) else {
            return Reply::NotFound(format!("no upstream named '{name}'"));
        };
        let (id, balancer) = (u.id, balance::build(&spec, &u.table));
        self.balancers[id.index()] = balancer.clone();
        for m in &self.mailboxes {
            m.send(WorkerMsg::SetBalancer(id, balancer.clone()));
        }
        self.record_switch(|generation| EventKind::BalancerSwitched {
            algorithm: spec.name().to_string(),
            generation,
            upstream: scoped.then(|| name.to_string()),
        });
        let mut reply = json!({
            "loadBalancer": serde_json::to_value(&spec).unwrap_or(Value::Null),
            "generation": self.generation,
        });
        if scoped {
            reply["upstream"] = json!(name);
        }
        Reply::Json(reply)
    }

    /// The `default` upstream's balancer, when there is that upstream.
    fn default_balancer(&self) -> Option<&Arc<dyn Balancer>> {
        let u = self.shared.upstream(crate::config::DEFAULT_UPSTREAM)?;
        self.balancers.get(u.id.index())
    }

    /// The JSON of the balancer the upstream at `index` runs.
    fn balancer_json(&self, index: usize) -> Value {
        self.balancers.get(index).map_or(Value::Null, |b| {
            serde_json::to_value(b.spec()).unwrap_or(Value::Null)
        })
    }

    /// The limiter counting route `r`: its spec and key, its store, and
    /// whether it is the top-level one (`inherited`) or its own.
    fn route_limiter_json(&self, r: usize) -> Value {
        let s = &self.shared;
        let spec = self.limiters[r + 1].spec();
        let inherited = self.inherits[r];
        let mut v = if inherited {
            limiter_json(spec, s)
        } else {
            let key = s
                .config
                .routes
                .get(r)
                .and_then(|c| c.rate_limit.as_ref())
                .map_or(&s.config.rate_limit.key, |rl| &rl.key);
            let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.insert("key".into(), Value::String(key.describe()));
                o.insert("store".into(), store::store_json(None));
            }
            v
        };
        if let Value::Object(o) = &mut v {
            o.insert("inherited".into(), Value::Bool(inherited));
        }
        v
    }

    /// The `/gateway/routes` report.
    pub fn routes(&self) -> Value {
        let s = &self.shared;
        let routes: Vec<Value> = topology::route_names(&s.config)
            .into_iter()
            .enumerate()
            .zip(s.route_stats.iter())
            .map(|((r, name), stats)| {
                topology::route_json(
                    s,
                    name,
                    s.config.routes.get(r),
                    self.route_limiter_json(r),
                    stats,
                )
            })
            .collect();
        json!({"routing": s.config.routing(), "routes": routes})
    }

    /// The `/gateway/upstreams` report.
    pub fn upstreams(&self) -> Value {
        let s = &self.shared;
        let now = s.clock_now();
        let list: Vec<Value> = s
            .upstreams
            .iter()
            .map(|u| topology::upstream_json(s, u, self.balancer_json(u.id.index()), now))
            .collect();
        json!({"upstreams": list})
    }

    /// The `/gateway/health` report: the seed's fields (the top-level
    /// limiter, `default`'s balancer, breaker settings and panic figures),
    /// every backend of every upstream (each naming its upstream, `default`
    /// first), and a summary of the upstreams and routes.
    pub fn health(&self) -> Value {
        let s = &self.shared;
        let now = s.clock_now();
        let m = &s.metrics;
        let backends: Vec<Value> = s
            .upstreams
            .iter()
            .flat_map(|u| {
                u.table
                    .iter()
                    .map(move |b| topology::backend_json(u, b, now))
            })
            .collect();
        let upstreams: Vec<Value> = s
            .upstreams
            .iter()
            .map(|u| {
                json!({
                    "name": u.name,
                    "loadBalancer": self.balancer_json(u.id.index()),
                    "panic": matches!(u.table.selection(now), SelectionMode::Panic { .. }),
                    "backends": u.table.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
                })
            })
            .collect();
        let events: Vec<Value> = s.events.snapshot().into_iter().map(event_json).collect();
        json!({
            "status": "ok",
            "uptime_ms": now.as_millis(),
            "listen": s.config.listen.to_string(),
            "workers": s.config.workers,
            "pipeline": s.config.pipeline.iter().map(|st| st.name()).collect::<Vec<_>>(),
            "rateLimiter": limiter_json(self.limiters[0].spec(), s),
            "loadBalancer": self.default_balancer().map_or(Value::Null, |b| serde_json::to_value(b.spec()).unwrap_or(Value::Null)),
            "circuitBreaker": serde_json::to_value(s.config.circuit_breaker).unwrap_or(Value::Null),
            "upstream": {
                "panic": matches!(s.backends.selection(now), SelectionMode::Panic { .. }),
                "openCircuits": s.backends.open_budget().open(),
                "maxOpenCircuits": s.backends.open_budget().max_open(),
            },
            "backends": backends,
            "upstreams": upstreams,
            "routing": s.config.routing(),
            "routes": topology::route_names(&s.config),
            "totals": {
                "requests": get(&m.requests),
                "proxied": get(&m.proxied),
                "rate_limited": get(&m.rate_limited),
                "circuit_broken": get(&m.circuit_broken),
                "circuit_trips_suppressed": get(&m.circuit_trips_suppressed),
                "errors": get(&m.errors),
                "inflight": get(&m.inflight),
                "status": class_json(&m.status),
                "latency_ms": quantiles(&m.latency),
            },
            "connections": {"open": get(&m.connections_open), "accepted": get(&m.connections_accepted)},
            "tls": topology::tls_json(s),
            "events": events,
        })
    }

    /// Re-reads the certificate files (`POST /gateway/tls/reload`, SIGHUP).
    fn reload_tls(&self) -> Reply {
        let s = &self.shared;
        let (Some(server), Some(cfg)) = (&s.tls, &s.config.tls) else {
            return Reply::Invalid("no \"tls\" listener is configured".into());
        };
        match server.reload(cfg) {
            Ok(()) => {
                log::info!("TLS certificates reloaded");
                Reply::Json(json!({"reloaded": true, "tls": topology::tls_json(s)}))
            }
            Err(e) => {
                log::warn!("TLS reload failed, the old certificates stay: {e}");
                Reply::Invalid(e)
            }
        }
    }

    /// The `/metrics` report (Prometheus text format 0.0.4).
    pub fn prometheus(&self) -> String {
        prometheus::render(&self.shared)
    }
}

/// One entry of the health report's `events`: `at_ms` and `message` as
/// always, plus the typed fields flattened in (`kind`, `backend`, `from`,
/// `to`, ...), which the dashboard reads instead of parsing `message`.
fn event_json(e: Event) -> Value {
    let mut v = serde_json::to_value(&e.kind).unwrap_or_else(|_| json!({}));
    if let Value::Object(o) = &mut v {
        o.insert("at_ms".into(), e.at.as_millis().into());
        o.insert("message".into(), e.message.into());
    }
    v
}

fn limiter_json(spec: &LimitSpec, s: &Shared) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert(
            "key".into(),
            Value::String(s.config.rate_limit.key.describe()),
        );
        o.insert("store".into(), store::store_json(s.limit_store.as_ref()));
    }
    v
}

fn class_json(counters: &[std::sync::atomic::AtomicU64; 5]) -> Value {
    json!({
        "1xx": get(&counters[0]), "2xx": get(&counters[1]), "3xx": get(&counters[2]),
        "4xx": get(&counters[3]), "5xx": get(&counters[4]),
    })
}

fn quantiles(h: &Histogram) -> Value {
    json!({"p50": h.quantile_ms(0.5), "p90": h.quantile_ms(0.9), "p99": h.quantile_ms(0.99)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::breaker::CircuitState;
    use crate::algo::Nanos;

    #[test]
    fn report_events_keep_message_and_add_typed_fields() {
        let kind = EventKind::CircuitTransition {
            backend: "Backend-A".into(),
            from: CircuitState::Closed,
            to: CircuitState::Open,
        };
        let e = Event {
            at: Nanos::from_millis(1500),
            message: kind.to_string(),
            kind,
        };
        assert_eq!(
            event_json(e),
            json!({
                "at_ms": 1500,
                "message": "circuit Backend-A CLOSED -> OPEN",
                "kind": "circuit",
                "backend": "Backend-A",
                "from": "CLOSED",
                "to": "OPEN",
            })
        );
    }
}
