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
mod shadow;
mod store;
pub(crate) mod topology;

use std::sync::Arc;

use api_gateway_protocol::{BalanceSpec, Command, LimitSpec, Reply};
use crossbeam_channel::Sender;
use mio::Waker;
use serde_json::{json, Value};

use crate::algo::balance::{self, Balancer};
use crate::algo::limit;
use crate::backend::SelectionMode;
use crate::events::{Event, EventKind};
use crate::health::{HealthChecker, HealthState, Target};
use crate::metrics::{get, Histogram};
use crate::reload::{self, Reloader, Trigger};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
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
    /// The snapshot every worker has been sent last.
    current: Arc<Snapshot>,
    /// The serial of the last snapshot built.
    serial: u64,
    /// Live algorithm switches so far (reported with each switch).
    switches: u64,
    /// Where the config comes from, and how reloads went.
    reload: Reloader,
    /// The active health-check thread, once an upstream has `health_check`.
    health: Option<HealthChecker>,
}

impl Controller {
    /// A controller for these workers, which start on `current`.
    pub fn new(
        shared: Arc<Shared>,
        mailboxes: Vec<Mailbox>,
        current: Arc<Snapshot>,
        reload: Reloader,
    ) -> Controller {
        let mut c = Controller {
            shared,
            mailboxes,
            serial: current.serial,
            current,
            switches: 0,
            reload,
            health: None,
        };
        c.sync_health();
        c
    }

    /// Gives the health-check thread the backends of the upstreams that
    /// have `health_check` (started on first need), and puts the others
    /// back to `unchecked`, in rotation (their checks were removed).
    fn sync_health(&mut self) {
        let snap = self.current.clone();
        let mut targets = Vec::new();
        for (pool, cfg) in snap.pools.iter().zip(snap.config.all_upstreams()) {
            for b in pool.table.iter() {
                match &cfg.resilience.health_check {
                    Some(check) => targets.push(Target {
                        state: b.state.clone(),
                        backend: b.name.clone(),
                        upstream: pool.name.clone(),
                        addr: b.addr,
                        tls: b.tls.is_some(),
                        check: check.clone(),
                    }),
                    None => {
                        b.health.set(HealthState::Unchecked);
                    }
                }
            }
        }
        if targets.is_empty() && self.health.is_none() {
            return;
        }
        if self.health.is_none() {
            match HealthChecker::spawn(self.shared.clone()) {
                Ok(h) => self.health = Some(h),
                Err(e) => {
                    log::error!("health checks not started: {e}");
                    return;
                }
            }
        }
        if let Some(h) = &self.health {
            h.set_targets(targets);
        }
    }

    /// The next snapshot serial.
    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Makes `next` the running snapshot: every worker's new requests run
    /// on it from the next loop iteration.
    fn install(&mut self, next: Snapshot) {
        let next = Arc::new(next);
        for m in &self.mailboxes {
            m.send(WorkerMsg::Install(next.clone()));
        }
        self.shared.set_current(next.clone());
        self.current = next;
    }

    /// Tells every worker to stop accepting and finish within the grace period.
    pub fn shutdown(&self) {
        let grace = crate::algo::Nanos::from_millis(self.current.config.timeouts.shutdown_grace_ms);
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
            Command::Consumers => {
                Reply::Json(topology::consumers_json(&self.shared, &self.current))
            }
            Command::ReloadTls => self.reload_tls(),
            Command::ReloadConfig => match self.reload.read_file() {
                Ok(text) => self.reload(&text, Trigger::File),
                Err(e) => self.refuse(Trigger::File, e),
            },
            Command::ApplyConfig(text) => self.reload(&text, Trigger::Admin),
            Command::Config => Reply::Json(self.reload.document()),
            Command::SetRateLimiter(spec) => self.set_limiter(spec),
            Command::ShadowReport => Reply::Json(shadow::report_json(&self.current)),
            Command::SetLoadBalancer(spec) => self.set_balancer(spec),
            Command::SetUpstreamBalancer { upstream, spec } => {
                self.set_upstream_balancer(&upstream, spec, true)
            }
            Command::SetRouteLimiter { route, spec } => self.set_route_limiter(&route, spec),
            Command::ToggleBackend(name) => match self.current.backend_by_name(&name) {
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
            Command::ResetCircuit(name) => match self.current.backend_by_name(&name) {
                None => Reply::NotFound(format!("no backend named '{name}'")),
                Some((u, b)) => {
                    if let Some(t) = b.breaker.reset(now) {
                        b.begin_ramp(now);
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
                let snap = &self.current;
                for b in snap.pools.iter().flat_map(|p| p.table.iter()) {
                    b.stats.reset();
                }
                for r in snap.route_stats.iter() {
                    r.reset();
                }
                for c in snap.consumer_stats.iter() {
                    c.reset();
                }
                self.shared.events.record(now, EventKind::MetricsReset);
                Reply::Json(json!({"reset": true}))
            }
            Command::Trace(id) => match self.shared.traces.get(&id) {
                Some(t) => Reply::Json(crate::trace::json::trace(&t)),
                None => Reply::NotFound(format!("no trace '{id}' (unknown, or evicted)")),
            },
            Command::Traces => {
                let (newest, held) = self.shared.traces.newest(crate::trace::json::LIST_MAX);
                Reply::Json(crate::trace::json::list(
                    &self.current.config.trace,
                    &newest,
                    held,
                ))
            }
        }
    }

    fn set_limiter(&mut self, spec: LimitSpec) -> Reply {
        if let Err(e) = spec.validate() {
            return Reply::Invalid(e);
        }
        // Through the global builder: a live switch keeps the configured store.
        let cfg = &self.current.config;
        let limiter = limit::global::build(
            &spec,
            cfg.rate_limit.max_keys,
            &self.shared.metrics.limit_evictions,
            self.shared.limit_store.as_ref(),
        );
        // Routes without a limiter of their own follow the top-level one.
        let inherits = &self.current.inherits;
        let slots: Vec<usize> = std::iter::once(0)
            .chain((0..inherits.len()).filter(|&r| inherits[r]).map(|r| r + 1))
            .collect();
        let serial = self.next_serial();
        let evictions = &self.shared.metrics.shadow_evictions;
        let next = self
            .current
            .with_limiter(serial, &slots, &limiter, evictions);
        self.install(next);
        self.record_switch(|generation| EventKind::LimiterSwitched {
            algorithm: spec.name().to_string(),
            generation,
            route: None,
        });
        Reply::Json(
            json!({"rateLimiter": limiter_json(&spec, &self.current, &self.shared), "generation": self.switches}),
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
        let names = self.current.config.route_names();
        let Some(r) = names.iter().position(|n| *n == name) else {
            return Reply::NotFound(format!("no route named '{name}'"));
        };
        if let Err(e) = spec.validate() {
            return Reply::Invalid(e);
        }
        let cfg = &self.current.config;
        let max_keys = cfg
            .routes
            .get(r)
            .and_then(|c| c.rate_limit.as_ref())
            .map_or(cfg.rate_limit.max_keys, |rl| rl.max_keys);
        let limiter = limit::build(&spec, max_keys, &self.shared.metrics.limit_evictions);
        let serial = self.next_serial();
        let evictions = &self.shared.metrics.shadow_evictions;
        let mut next = self
            .current
            .with_limiter(serial, &[r + 1], &limiter, evictions);
        next.inherits[r] = false;
        self.install(next);
        self.record_switch(|generation| EventKind::LimiterSwitched {
            algorithm: spec.name().to_string(),
            generation,
            route: Some(name.to_string()),
        });
        Reply::Json(json!({
            "route": name,
            "rateLimiter": self.route_limiter_json(r),
            "generation": self.switches,
        }))
    }

    /// Counts a switch (the next generation) and logs it as `kind` says.
    fn record_switch(&mut self, kind: impl FnOnce(u64) -> EventKind) {
        self.switches += 1;
        let now = self.shared.clock_now();
        self.shared.events.record(now, kind(self.switches));
    }

    /// Switches the `default` upstream's balancer (the seed's endpoint).
    fn set_balancer(&mut self, spec: BalanceSpec) -> Reply {
        self.set_upstream_balancer(crate::config::DEFAULT_UPSTREAM, spec, false)
    }

    /// Switches upstream `name`'s balancer in every worker; `scoped`: asked
    /// through the per-upstream endpoint (the event names the upstream).
    fn set_upstream_balancer(&mut self, name: &str, spec: BalanceSpec, scoped: bool) -> Reply {
        let Some(u) = self.current.pool(name) else {
            return Reply::NotFound(format!("no upstream named '{name}'"));
        };
        let (id, balancer) = (u.id, balance::build(&spec, &u.table));
        let serial = self.next_serial();
        let next = self.current.with_balancer(serial, id, balancer);
        self.install(next);
        self.record_switch(|generation| EventKind::BalancerSwitched {
            algorithm: spec.name().to_string(),
            generation,
            upstream: scoped.then(|| name.to_string()),
        });
        let mut reply = json!({
            "loadBalancer": serde_json::to_value(&spec).unwrap_or(Value::Null),
            "generation": self.switches,
        });
        if scoped {
            reply["upstream"] = json!(name);
        }
        Reply::Json(reply)
    }

    /// The `default` upstream's balancer, when there is that upstream.
    fn default_balancer(&self) -> Option<&Arc<dyn Balancer>> {
        Some(&self.current.pool(crate::config::DEFAULT_UPSTREAM)?.balancer)
    }

    /// The limiter counting route `r`: its spec and key, its store, and
    /// whether it is the top-level one (`inherited`) or its own.
    fn route_limiter_json(&self, r: usize) -> Value {
        let snap = &self.current;
        let spec = snap.limiters[r + 1].spec();
        let inherited = snap.inherits[r];
        let mut v = if inherited {
            limiter_json(spec, snap, &self.shared)
        } else {
            let key = snap
                .config
                .routes
                .get(r)
                .and_then(|c| c.rate_limit.as_ref())
                .map_or(&snap.config.rate_limit.key, |rl| &rl.key);
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
        let snap = &self.current;
        let routes: Vec<Value> = snap
            .config
            .route_names()
            .into_iter()
            .enumerate()
            .zip(snap.route_stats.iter())
            .map(|((r, name), stats)| {
                topology::route_json(
                    snap,
                    name,
                    snap.config.routes.get(r),
                    self.route_limiter_json(r),
                    stats,
                )
            })
            .collect();
        json!({"routing": snap.config.routing(), "routes": routes})
    }

    /// The `/gateway/upstreams` report.
    pub fn upstreams(&self) -> Value {
        let now = self.shared.clock_now();
        let snap = &self.current;
        let list: Vec<Value> = snap
            .pools
            .iter()
            .map(|p| topology::upstream_json(snap, p, now))
            .collect();
        json!({"upstreams": list})
    }

    /// The `/gateway/health` report: the seed's fields (the top-level
    /// limiter, `default`'s balancer, breaker settings and panic figures),
    /// every backend of every upstream (each naming its upstream, `default`
    /// first), and a summary of the upstreams and routes.
    pub fn health(&self) -> Value {
        let s = &self.shared;
        let snap = &self.current;
        let cfg = &snap.config;
        let now = s.clock_now();
        let m = &s.metrics;
        let backends: Vec<Value> = snap
            .pools
            .iter()
            .flat_map(|p| {
                p.table
                    .iter()
                    .map(move |b| topology::backend_json(p, b, now))
            })
            .collect();
        let upstreams: Vec<Value> = snap
            .pools
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "loadBalancer": spec_json(p.balancer.spec()),
                    "panic": matches!(p.table.selection(now), SelectionMode::Panic { .. }),
                    "backends": p.table.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(),
                    "queue": p.queue.map(|q| json!({"depth": p.waiting.depth(), "max": q.max})),
                })
            })
            .collect();
        let events: Vec<Value> = s.events.snapshot().into_iter().map(event_json).collect();
        json!({
            "status": "ok",
            "uptime_ms": now.as_millis(),
            "listen": cfg.listen.to_string(),
            "workers": cfg.workers,
            "pipeline": cfg.pipeline.iter().map(|st| st.name()).collect::<Vec<_>>(),
            "rateLimiter": limiter_json(snap.limiters[0].spec(), snap, s),
            "loadBalancer": self.default_balancer().map_or(Value::Null, |b| spec_json(b.spec())),
            "circuitBreaker": serde_json::to_value(cfg.circuit_breaker).unwrap_or(Value::Null),
            "upstream": {
                "panic": matches!(snap.backends.selection(now), SelectionMode::Panic { .. }),
                "openCircuits": snap.backends.open_budget().open(),
                "maxOpenCircuits": snap.backends.open_budget().max_open(),
            },
            "backends": backends,
            "upstreams": upstreams,
            "routing": cfg.routing(),
            "routes": cfg.route_names(),
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
            "tls": topology::tls_json(s, snap),
            "generation": snap.generation,
            "config": self.reload.health_json(snap.generation),
            "events": events,
        })
    }

    /// Applies config `text` live, or refuses it whole (see
    /// [`crate::reload`]).
    fn reload(&mut self, text: &str, trigger: Trigger) -> Reply {
        match self.try_reload(text, trigger) {
            Ok(answer) => Reply::Json(answer),
            Err(e) => self.refuse(trigger, e),
        }
    }

    /// Records and logs a refused reload; the running config stays.
    fn refuse(&mut self, trigger: Trigger, why: String) -> Reply {
        self.reload.failed(trigger, why.clone());
        let now = self.shared.clock_now();
        self.shared
            .events
            .record(now, EventKind::ConfigReloadFailed { error: why.clone() });
        Reply::Invalid(why)
    }

    /// Validates everything, then swaps: parse and check the config, keep
    /// the restart-only settings as they run, read the certificates, build
    /// the snapshot (adopting limiters, backend state and counters whose
    /// owner is unchanged); then install the certificates and the
    /// snapshot, and retire the backends that are gone.
    fn try_reload(&mut self, text: &str, trigger: Trigger) -> Result<Value, String> {
        let (mut next, doc) = reload::parse(text)?;
        let not_applied = self.reload.not_applied(&next);
        let running = self.current.config.clone();
        reload::restart::keep_running(&mut next, &running);
        let certs = match (&self.shared.tls, &next.tls) {
            (Some(server), Some(cfg)) => Some(server.prepare(cfg)?),
            _ => None,
        };
        let changes = reload::diff::Changes::between(&running, &next).summary();
        let overrides = self.live_overrides();
        let serial = self.next_serial();
        let generation = self.current.generation + 1;
        let snap = Snapshot::build(next, &self.shared, Some(&self.current), serial, generation)?;
        // Nothing can fail from here on.
        if let (Some(server), Some(certs)) = (&self.shared.tls, certs) {
            server.install(certs);
        }
        let now = self.shared.clock_now();
        let previous = self.current.clone();
        self.install(snap);
        retire_removed(&previous, &self.current, now);
        self.sync_health();
        let mut line = changes.clone();
        if !overrides.is_empty() {
            line.push_str(&format!(
                "; live overrides replaced by the config: {}",
                overrides.join(", ")
            ));
        }
        if !not_applied.is_empty() {
            line.push_str(&format!(
                "; not applied (restart needed): {}",
                not_applied.join(", ")
            ));
            log::warn!(
                "config reload: these fields need a restart and were not applied: {}",
                not_applied.join(", ")
            );
        }
        self.shared.events.record(
            now,
            EventKind::ConfigReloaded {
                generation,
                changes: line,
            },
        );
        self.reload.succeeded(
            trigger,
            doc,
            &self.current.config,
            not_applied.clone(),
            changes.clone(),
        );
        Ok(json!({
            "reloaded": true,
            "generation": generation,
            "changes": changes,
            "overrides_replaced": overrides,
            "not_applied": not_applied,
        }))
    }

    /// The live switches in force that differ from the config (a reload
    /// replaces them with the config's settings).
    fn live_overrides(&self) -> Vec<String> {
        let snap = &self.current;
        let cfg = &snap.config;
        let mut out = Vec::new();
        if *snap.limiters[0].spec() != cfg.rate_limit.spec {
            out.push("rate limiter".to_string());
        }
        for (r, name) in cfg.route_names().iter().enumerate() {
            let configured = cfg.routes.get(r).and_then(|c| c.rate_limit.as_ref());
            let own = !snap.inherits[r];
            let differs = match configured {
                Some(rl) => *snap.limiters[r + 1].spec() != rl.spec,
                None => own,
            };
            if differs {
                out.push(format!("rate limiter of route {name}"));
            }
        }
        for (p, u) in snap.pools.iter().zip(cfg.all_upstreams()) {
            if *p.balancer.spec() != u.load_balancer {
                out.push(format!("load balancer of upstream {}", p.name));
            }
        }
        out
    }

    /// Re-reads the certificate files (`POST /gateway/tls/reload`, SIGHUP).
    fn reload_tls(&self) -> Reply {
        let s = &self.shared;
        let (Some(server), Some(cfg)) = (&s.tls, &self.current.config.tls) else {
            return Reply::Invalid("no \"tls\" listener is configured".into());
        };
        match server.reload(cfg) {
            Ok(()) => {
                log::info!("TLS certificates reloaded");
                Reply::Json(json!({"reloaded": true, "tls": topology::tls_json(s, &self.current)}))
            }
            Err(e) => {
                log::warn!("TLS reload failed, the old certificates stay: {e}");
                Reply::Invalid(e)
            }
        }
    }

    /// The `/metrics` report (Prometheus text format 0.0.4).
    pub fn prometheus(&self) -> String {
        prometheus::render(&self.shared, &self.current, self.reload.totals())
    }
}

/// Retires every backend of `old` that `new` did not adopt: no new request
/// picks it, its pooled connections close, its open circuit frees its slot.
fn retire_removed(old: &Snapshot, new: &Snapshot, now: crate::algo::Nanos) {
    let kept = |state: &Arc<crate::backend::BackendState>| {
        new.pools
            .iter()
            .flat_map(|p| p.table.iter())
            .any(|b| Arc::ptr_eq(&b.state, state))
    };
    for b in old.pools.iter().flat_map(|p| p.table.iter()) {
        if !kept(&b.state) {
            b.state.retire(now);
        }
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

/// A balancer's or limiter's spec as JSON (`null` if it cannot be).
fn spec_json(spec: &impl serde::Serialize) -> Value {
    serde_json::to_value(spec).unwrap_or(Value::Null)
}

fn limiter_json(spec: &LimitSpec, snap: &Snapshot, s: &Shared) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.insert(
            "key".into(),
            Value::String(snap.config.rate_limit.key.describe()),
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
