//! The gateway side of the control plane: turns admin commands into
//! algorithm swaps broadcast to every worker, and builds the status reports
//! (health JSON with the typed events, Prometheus text; `store`: the
//! rate-limit store's part of both).
//!
//! Validation happened in the admin thread (typed specs); building the new
//! algorithm happens here, once, off the request path, and the workers only
//! swap an `Arc`. Reports read the shared atomics directly, so asking for
//! metrics never touches a worker.

mod store;

use std::fmt::Write as _;
use std::sync::Arc;

use api_gateway_protocol::{BalanceSpec, Command, LimitSpec, Reply};
use crossbeam_channel::Sender;
use mio::Waker;
use serde_json::{json, Value};

use crate::algo::balance::{self, Balancer};
use crate::algo::limit::{self, RateLimiter};
use crate::backend::SelectionMode;
use crate::events::{Event, EventKind};
use crate::metrics::{get, Histogram, LATENCY_BUCKETS_MS};
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
            Command::SetRateLimiter(spec) => self.set_limiter(spec),
            Command::SetLoadBalancer(spec) => self.set_balancer(spec),
            Command::ToggleBackend(name) => match self.shared.backends.by_name(&name) {
                None => Reply::NotFound(format!("no backend named '{name}'")),
                Some(b) => {
                    let up = b.toggle();
                    self.shared.events.record(
                        now,
                        EventKind::BackendToggled {
                            backend: name.clone(),
                            up,
                        },
                    );
                    Reply::Json(json!({"name": name, "up": up}))
                }
            },
            Command::ResetCircuit(name) => match self.shared.backends.by_name(&name) {
                None => Reply::NotFound(format!("no backend named '{name}'")),
                Some(b) => {
                    if let Some(t) = b.breaker.reset(now) {
                        self.shared.circuit_event(b, t, now);
                    }
                    Reply::Json(
                        json!({"name": name, "circuitState": b.breaker.state(now).as_str()}),
                    )
                }
            },
            Command::ResetMetrics => {
                self.shared.metrics.reset();
                for b in self.shared.backends.iter() {
                    b.stats.reset();
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
            self.limiters[slot] = limiter.clone();
            for m in &self.mailboxes {
                m.send(WorkerMsg::SetLimiter(slot, limiter.clone()));
            }
        }
        self.generation += 1;
        let now = self.shared.clock_now();
        self.shared.events.record(
            now,
            EventKind::LimiterSwitched {
                algorithm: spec.name().to_string(),
                generation: self.generation,
            },
        );
        Reply::Json(
            json!({"rateLimiter": limiter_json(&spec, &self.shared), "generation": self.generation}),
        )
    }

    /// Switches the `default` upstream's balancer (the seed's endpoint).
    fn set_balancer(&mut self, spec: BalanceSpec) -> Reply {
        self.set_upstream_balancer(crate::config::DEFAULT_UPSTREAM, spec)
    }

    /// Switches upstream `name`'s balancer in every worker.
    fn set_upstream_balancer(&mut self, name: &str, spec: BalanceSpec) -> Reply {
        let Some(u) = self.shared.upstream(name) else {
            return Reply::NotFound(format!("no upstream named '{name}'"));
        };
        let (id, balancer) = (u.id, balance::build(&spec, &u.table));
        self.balancers[id.index()] = balancer.clone();
        for m in &self.mailboxes {
            m.send(WorkerMsg::SetBalancer(id, balancer.clone()));
        }
        self.generation += 1;
        let now = self.shared.clock_now();
        self.shared.events.record(
            now,
            EventKind::BalancerSwitched {
                algorithm: spec.name().to_string(),
                generation: self.generation,
            },
        );
        Reply::Json(
            json!({"loadBalancer": serde_json::to_value(&spec).unwrap_or(Value::Null), "generation": self.generation}),
        )
    }

    /// The `default` upstream's balancer, when there is that upstream.
    fn default_balancer(&self) -> Option<&Arc<dyn Balancer>> {
        let u = self.shared.upstream(crate::config::DEFAULT_UPSTREAM)?;
        self.balancers.get(u.id.index())
    }

    /// The `/gateway/health` report.
    pub fn health(&self) -> Value {
        let s = &self.shared;
        let now = s.clock_now();
        let m = &s.metrics;
        let backends: Vec<Value> = s
            .backends
            .iter()
            .map(|b| {
                json!({
                    "name": b.name,
                    "address": b.addr.to_string(),
                    "weight": b.weight,
                    "up": b.is_up(),
                    "circuitState": b.breaker.state(now).as_str(),
                    "inflight": b.inflight(),
                    "requests": get(&b.stats.requests),
                    "failures": get(&b.stats.failures),
                    "status": class_json(&b.stats.status),
                    "latency_ms": quantiles(&b.stats.latency),
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
            "events": events,
        })
    }

    /// The `/metrics` report (Prometheus text format 0.0.4).
    pub fn prometheus(&self) -> String {
        let s = &self.shared;
        let m = &s.metrics;
        let now = s.clock_now();
        let mut o = String::with_capacity(8192);
        let counter = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            &mut o,
            "gateway_requests_total",
            "Requests received (heads read).",
            get(&m.requests),
        );
        counter(
            &mut o,
            "gateway_proxied_total",
            "Requests forwarded to a backend.",
            get(&m.proxied),
        );
        counter(
            &mut o,
            "gateway_rate_limited_total",
            "Requests answered 429.",
            get(&m.rate_limited),
        );
        counter(
            &mut o,
            "gateway_circuit_broken_total",
            "Requests answered 503: no closed circuit.",
            get(&m.circuit_broken),
        );
        counter(
            &mut o,
            "gateway_circuit_trips_suppressed_total",
            "Circuit trips refused by max_open_ratio (the circuit stayed closed).",
            get(&m.circuit_trips_suppressed),
        );
        counter(
            &mut o,
            "gateway_errors_total",
            "Other gateway-made errors.",
            get(&m.errors),
        );
        counter(
            &mut o,
            "gateway_connections_accepted_total",
            "Client connections accepted.",
            get(&m.connections_accepted),
        );
        counter(
            &mut o,
            "gateway_accept_errors_total",
            "Failed accepts (e.g. EMFILE); accepting pauses 100 ms after each.",
            get(&m.accept_errors),
        );
        let _ = writeln!(o, "# HELP gateway_responses_total Responses sent to clients by status class.\n# TYPE gateway_responses_total counter");
        for (i, c) in m.status.iter().enumerate() {
            let _ = writeln!(
                o,
                "gateway_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
        let _ = writeln!(o, "# HELP gateway_ratelimit_decisions_total Rate-limiter decisions.\n# TYPE gateway_ratelimit_decisions_total counter");
        for (d, c) in [
            ("allowed", &m.limit_allowed),
            ("delayed", &m.limit_delayed),
            ("denied", &m.limit_denied),
        ] {
            let _ = writeln!(
                o,
                "gateway_ratelimit_decisions_total{{decision=\"{d}\"}} {}",
                get(c)
            );
        }
        counter(
            &mut o,
            "gateway_ratelimit_evictions_total",
            "Rate-limit keys evicted from a full table bucket while their state was live.",
            m.limit_evictions.get(),
        );
        let panic = matches!(s.backends.selection(now), SelectionMode::Panic { .. });
        let _ = writeln!(o, "# HELP gateway_upstream_panic 1 while too few backends have a closed circuit and traffic is spread over all switched-on backends.\n# TYPE gateway_upstream_panic gauge\ngateway_upstream_panic {}", u8::from(panic));
        let _ = writeln!(o, "# HELP gateway_inflight_requests Requests being handled.\n# TYPE gateway_inflight_requests gauge\ngateway_inflight_requests {}", get(&m.inflight));
        let _ = writeln!(o, "# HELP gateway_connections_open Client connections open.\n# TYPE gateway_connections_open gauge\ngateway_connections_open {}", get(&m.connections_open));
        let _ = writeln!(o, "# HELP gateway_buffer_pool_spare Spare connection buffers held for reuse (all workers).\n# TYPE gateway_buffer_pool_spare gauge\ngateway_buffer_pool_spare {}", get(&m.buffer_pool_spare));
        let _ = writeln!(o, "# HELP gateway_buffer_pool_in_use Connection buffers held by connections (all workers).\n# TYPE gateway_buffer_pool_in_use gauge\ngateway_buffer_pool_in_use {}", get(&m.buffer_pool_in_use));
        let _ = writeln!(o, "# HELP gateway_uptime_seconds Seconds since start.\n# TYPE gateway_uptime_seconds gauge\ngateway_uptime_seconds {}", now.as_millis() / 1000);
        let _ = writeln!(o, "# HELP gateway_backend_requests_total Requests sent to each backend.\n# TYPE gateway_backend_requests_total counter");
        for b in s.backends.iter() {
            let _ = writeln!(
                o,
                "gateway_backend_requests_total{{backend=\"{}\"}} {}",
                b.name,
                get(&b.stats.requests)
            );
        }
        let _ = writeln!(o, "# HELP gateway_backend_responses_total Backend responses by status class.\n# TYPE gateway_backend_responses_total counter");
        for b in s.backends.iter() {
            for (i, c) in b.stats.status.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "gateway_backend_responses_total{{backend=\"{}\",class=\"{}xx\"}} {}",
                    b.name,
                    i + 1,
                    get(c)
                );
            }
        }
        let _ = writeln!(o, "# HELP gateway_backend_failures_total Failures counted against each backend's circuit.\n# TYPE gateway_backend_failures_total counter");
        for b in s.backends.iter() {
            let _ = writeln!(
                o,
                "gateway_backend_failures_total{{backend=\"{}\"}} {}",
                b.name,
                get(&b.stats.failures)
            );
        }
        let _ = writeln!(o, "# HELP gateway_backend_inflight Requests in flight per backend.\n# TYPE gateway_backend_inflight gauge");
        for b in s.backends.iter() {
            let _ = writeln!(
                o,
                "gateway_backend_inflight{{backend=\"{}\"}} {}",
                b.name,
                b.inflight()
            );
        }
        let _ = writeln!(o, "# HELP gateway_circuit_state Circuit state per backend (1 for the current state).\n# TYPE gateway_circuit_state gauge");
        for b in s.backends.iter() {
            let cur = b.breaker.state(now).as_str();
            for st in ["CLOSED", "OPEN", "HALF_OPEN"] {
                let _ = writeln!(
                    o,
                    "gateway_circuit_state{{backend=\"{}\",state=\"{st}\"}} {}",
                    b.name,
                    u8::from(cur == st)
                );
            }
        }
        let _ = writeln!(o, "# HELP gateway_backend_up Operator switch per backend.\n# TYPE gateway_backend_up gauge");
        for b in s.backends.iter() {
            let _ = writeln!(
                o,
                "gateway_backend_up{{backend=\"{}\"}} {}",
                b.name,
                u8::from(b.is_up())
            );
        }
        histogram(
            &mut o,
            "gateway_request_duration_seconds",
            "Whole-request latency at the gateway.",
            "",
            &m.latency,
        );
        let _ = writeln!(o, "# HELP gateway_backend_response_seconds Time to the backend's response head.\n# TYPE gateway_backend_response_seconds histogram");
        for b in s.backends.iter() {
            histogram_lines(
                &mut o,
                "gateway_backend_response_seconds",
                &format!("backend=\"{}\",", b.name),
                &b.stats.latency,
            );
        }
        store::prometheus(&mut o, s.limit_store.as_ref());
        o
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

fn histogram(o: &mut String, name: &str, help: &str, labels: &str, h: &Histogram) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
    histogram_lines(o, name, labels, h);
}

fn histogram_lines(o: &mut String, name: &str, labels: &str, h: &Histogram) {
    let counts = h.counts();
    let mut cum = 0;
    for (i, c) in counts.iter().enumerate() {
        cum += c;
        match LATENCY_BUCKETS_MS.get(i) {
            Some(ms) => {
                let _ = writeln!(
                    o,
                    "{name}_bucket{{{labels}le=\"{}\"}} {cum}",
                    *ms as f64 / 1000.0
                );
            }
            None => {
                let _ = writeln!(o, "{name}_bucket{{{labels}le=\"+Inf\"}} {cum}");
            }
        }
    }
    let trimmed = labels.trim_end_matches(',');
    let braces = if trimmed.is_empty() {
        String::new()
    } else {
        format!("{{{trimmed}}}")
    };
    let _ = writeln!(o, "{name}_sum{braces} {}", h.sum_us() as f64 / 1e6);
    let _ = writeln!(o, "{name}_count{braces} {cum}");
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
