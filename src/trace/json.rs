//! Traces as JSON, rendered only when fetched (`GET /gateway/trace/:id`,
//! `GET /gateway/trace`): the request path stores typed entries.
//!
//! Shape: the top level (`id`, `request_id`, `sampled`, `method`, `target`,
//! `client_ip`, `status`, `verdict`, `started_unix_ms`, `duration_ms`) and
//! `stages`, an array of `{"stage": NAME, ...}` in the order they ran. A
//! selection renders as two stages, `circuit-breaker` (when circuits gate
//! it) then `load-balancer`. Times are ms (floats) from the request's start.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use api_gateway_protocol::CircuitState;

use crate::algo::limit::{Decision, Verdict};
use crate::algo::Nanos;
use crate::config::trace::TraceConfig;
use crate::pipeline::rate_limit::retry_after_secs;

use super::record::{Candidate, LimitKey, RateLimitEntry, SelectionEntry, Stage, Trace};

/// Most summaries `GET /gateway/trace` lists (the ring may hold 65,536
/// traces; the dashboard polls the list): each trace stays readable by id.
pub const LIST_MAX: usize = 100;

/// `GET /gateway/trace`: the settings in force, how many traces are held,
/// and the summaries of the newest (at most [`LIST_MAX`]), newest first.
pub fn list(cfg: &TraceConfig, traces: &[Arc<Trace>], held: usize) -> Value {
    json!({
        "enabled": cfg.enabled,
        "sample_per_million": cfg.sample_per_million,
        "capacity": cfg.max_traces,
        "held": held,
        "traces": traces.iter().take(LIST_MAX).map(|t| summary(t)).collect::<Vec<_>>(),
    })
}

/// The whole trace.
pub fn trace(t: &Trace) -> Value {
    let mut doc = summary(t);
    let stages: Vec<Value> = t.stages.iter().flat_map(|s| stage(t, s)).collect();
    if let Value::Object(map) = &mut doc {
        map.insert("client_ip".into(), json!(t.client_ip.to_string()));
        map.insert("stages".into(), Value::Array(stages));
    }
    doc
}

/// The trace's summary, for the list (`GET /gateway/trace`).
pub fn summary(t: &Trace) -> Value {
    json!({
        "id": t.id,
        "request_id": t.request_id,
        "sampled": t.sampled(),
        "method": t.method,
        "target": t.target,
        "client_ip": t.client_ip.to_string(),
        "status": t.status,
        "verdict": t.verdict,
        "started_unix_ms": t.started_unix_ms,
        "duration_ms": t.duration_ms(),
    })
}

fn stage(t: &Trace, s: &Stage) -> Vec<Value> {
    let one = match s {
        Stage::Route {
            route,
            path,
            host,
            upstream,
            miss,
        } => json!({
            "stage": "route", "route": route, "path": path, "host": host,
            "upstream": upstream, "matched": miss.is_none(), "reason": miss,
        }),
        Stage::AuthOk { consumer } => json!({
            "stage": "auth", "result": "ok", "consumer": consumer,
        }),
        Stage::AuthFailed {
            reason,
            message,
            status,
        } => json!({
            "stage": "auth", "result": "failed", "reason": reason,
            "message": message, "status": status,
        }),
        Stage::RateLimit(e) => rate_limit(e),
        Stage::Shadows(entries) => {
            let shadows: Vec<Value> = entries
                .iter()
                .map(|(algorithm, d)| {
                    let mut v = decision(d);
                    v.insert("algorithm".into(), json!(algorithm.name()));
                    Value::Object(v)
                })
                .collect();
            json!({"stage": "shadows", "shadows": shadows})
        }
        Stage::Selection(e) => return selection(e),
        Stage::Queue {
            entered,
            left,
            outcome,
        } => json!({
            "stage": "queue",
            "entered_ms": t.ms_since_start(*entered),
            "left_ms": t.ms_since_start(*left),
            "waited_ms": ms(left.saturating_sub(*entered)),
            "outcome": outcome.as_str(),
        }),
        Stage::Retry {
            attempt,
            failed,
            why,
            next,
        } => json!({
            "stage": "retry", "attempt": attempt, "failed_backend": failed,
            "reason": why.describe(), "next_backend": next,
        }),
        Stage::Backend {
            name,
            status,
            reused,
        } => {
            let at = |p: Option<Nanos>| p.map(|n| t.ms_since_start(n));
            let tm = &t.timings;
            json!({
                "stage": "backend", "backend": name, "status": status, "reused": reused,
                "timings": {
                    "queue": at(tm.queue), "connect": at(tm.connect), "send": at(tm.send),
                    "first_byte": at(tm.first_byte), "last_byte": at(tm.last_byte),
                },
            })
        }
        Stage::Reply { status, error } => json!({
            "stage": "reply", "status": status, "error": error,
        }),
    };
    vec![one]
}

/// `verdict`, `limit` and `remaining` of a limiter's decision, plus
/// `delay_ms` when delayed and `retry_after_s` (as in `Retry-After`) when
/// denied.
fn decision(d: &Decision) -> Map<String, Value> {
    let mut m = Map::new();
    let verdict = match d.verdict {
        Verdict::Allow => "allow",
        Verdict::Delay(_) => "delay",
        Verdict::Deny => "deny",
    };
    m.insert("verdict".into(), json!(verdict));
    m.insert("limit".into(), json!(d.limit));
    m.insert("remaining".into(), json!(d.remaining));
    match d.verdict {
        Verdict::Delay(delay) => {
            m.insert("delay_ms".into(), json!(ms(delay)));
        }
        Verdict::Deny => {
            m.insert("retry_after_s".into(), json!(retry_after_secs(d)));
        }
        Verdict::Allow => {}
    }
    m
}

fn rate_limit(e: &RateLimitEntry) -> Value {
    let mut m = decision(&e.decision);
    let (key, fell_back) = match &e.key {
        LimitKey::Ip(ip) => (ip.to_string(), e.key_source != "ip"),
        LimitKey::Consumer(name) => (name.clone(), false),
        LimitKey::Header(name) => (name.clone(), false),
    };
    m.insert("stage".into(), json!("rate-limit"));
    m.insert("key_source".into(), json!(e.key_source));
    m.insert("key".into(), json!(key));
    m.insert("key_hash".into(), json!(format!("{:016x}", e.key_hash)));
    m.insert("key_fell_back_to_ip".into(), json!(fell_back));
    m.insert("algorithm".into(), json!(e.algorithm));
    m.insert("before".into(), json!(e.before()));
    m.insert("after".into(), json!(e.after()));
    m.insert("consumer_limit".into(), json!(e.consumer_limit));
    m.insert("reset_after_ms".into(), json!(ms(e.decision.reset_after)));
    Value::Object(m)
}

fn selection(e: &SelectionEntry) -> Vec<Value> {
    let mut out = Vec::with_capacity(2);
    if e.breaker_gate {
        let backends: Vec<Value> = e
            .candidates
            .iter()
            .map(|c| {
                json!({
                    "name": c.name, "state": circuit(c.circuit),
                    "excluded": c.excluded.map(|x| x.as_str()),
                })
            })
            .collect();
        let excluded: Vec<&str> = e
            .candidates
            .iter()
            .filter(|c| c.excluded.is_some())
            .map(|c| c.name.as_str())
            .collect();
        out.push(json!({
            "stage": "circuit-breaker", "upstream": e.upstream, "panic": e.panic,
            "backends": backends, "excluded": excluded,
        }));
    }
    let candidates: Vec<Value> = e.candidates.iter().map(candidate).collect();
    out.push(json!({
        "stage": "load-balancer", "upstream": e.upstream, "algorithm": e.algorithm,
        "candidates": candidates, "pick": e.pick, "refusal": e.refusal,
    }));
    out
}

fn candidate(c: &Candidate) -> Value {
    let mut v = json!({
        "name": c.name, "weight": c.weight, "effective_weight": c.effective_weight,
        "inflight": c.inflight, "excluded": c.excluded.map(|x| x.as_str()),
    });
    if let (Some(ewma), Value::Object(m)) = (c.ewma_ms, &mut v) {
        m.insert("ewma_ms".into(), json!(ewma));
    }
    v
}

/// The trace form of a circuit state.
fn circuit(s: CircuitState) -> &'static str {
    match s {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half-open",
    }
}

fn ms(n: Nanos) -> f64 {
    n.0 as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resilience::RetryOn;
    use crate::trace::record::{Exclusion, Origin, QueueOutcome};
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn stages_render_in_order_with_their_names_and_times() {
        let start = Nanos::from_millis(100);
        let mut t = Trace::new(
            "00000001000000ff".into(),
            Origin::Asked,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            start,
        );
        t.request_id = "client-id".into();
        t.method = "GET".into();
        t.target = "/x".into();
        t.push(Stage::Route {
            route: None,
            path: "/x".into(),
            host: "t".into(),
            upstream: Some("default".into()),
            miss: None,
        });
        t.push(Stage::RateLimit(RateLimitEntry {
            key_source: "header:X-API-Key".into(),
            key: LimitKey::Header("X-API-Key".into()),
            key_hash: 0xab,
            algorithm: "fixed-window",
            decision: Decision {
                verdict: Verdict::Deny,
                limit: 2,
                remaining: 0,
                reset_after: Nanos::from_millis(1500),
                retry_after: Nanos::from_millis(1200),
            },
            consumer_limit: false,
        }));
        let cand = |name: &str, excluded| Candidate {
            name: name.into(),
            circuit: CircuitState::Closed,
            weight: 1,
            effective_weight: 1.0,
            inflight: 0,
            ewma_ms: None,
            excluded,
        };
        t.push(Stage::Selection(SelectionEntry {
            upstream: "default".into(),
            breaker_gate: true,
            panic: false,
            algorithm: "round-robin",
            candidates: vec![cand("a", Some(Exclusion::CircuitOpen)), cand("b", None)],
            pick: Some("b".into()),
            refusal: None,
        }));
        t.queue_entered(Nanos::from_millis(101));
        t.queue_left(QueueOutcome::Served, Nanos::from_millis(103));
        t.retried(1, "a".into(), RetryOn::Status(503), "b".into());
        t.timings.connect = Some(Nanos::from_millis(104));
        t.push(Stage::Backend {
            name: "b".into(),
            status: 200,
            reused: true,
        });
        t.finish(200, Nanos::from_millis(110));
        let v = trace(&t);
        let names: Vec<&str> = v["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "route",
                "rate-limit",
                "circuit-breaker",
                "load-balancer",
                "queue",
                "retry",
                "backend"
            ]
        );
        assert_eq!(v["id"], "00000001000000ff");
        assert_eq!(v["request_id"], "client-id");
        assert_eq!(v["sampled"], false);
        assert_eq!(v["verdict"], "proxied");
        assert_eq!(v["duration_ms"], 10.0);
        let rl = &v["stages"][1];
        assert_eq!(rl["key"], "X-API-Key", "a header key shows its name only");
        assert_eq!(rl["key_hash"], "00000000000000ab");
        assert_eq!(
            (rl["before"].as_u64(), rl["after"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(rl["retry_after_s"], 2);
        assert_eq!(v["stages"][2]["excluded"], json!(["a"]));
        assert_eq!(v["stages"][3]["pick"], "b");
        assert_eq!(v["stages"][4]["entered_ms"], 1.0);
        assert_eq!(v["stages"][4]["left_ms"], 3.0);
        assert_eq!(v["stages"][5]["reason"], "503");
        let timings = &v["stages"][6]["timings"];
        assert_eq!(timings["queue"], 3.0);
        assert_eq!(timings["connect"], 4.0);
        assert!(timings["send"].is_null());
    }
}
