//! The shadow limiters' report (`GET /gateway/rate-limiter/shadow` and the
//! `gateway_shadow_*` metric families): one scope per running limiter that
//! has shadows, the top level first, then each route with a limiter of its
//! own. Routes that follow the top-level limiter share its set and are
//! listed under it, so no count is reported twice.

use serde_json::{json, Value};

use crate::algo::limit::shadow::{AlgorithmReport, ShadowSet};
use crate::snapshot::Snapshot;

/// The stated translation rule, reported with the figures so a reader of
/// the JSON knows what "the same limit" means.
pub const RULE: &str = "a window of L requests per W seconds <-> a bucket of capacity L refilling at L/W per second (W = C/r, L = C); window and bucket families keep their own parameters";

/// One limiter with shadows.
pub struct Scope<'a> {
    /// `None`: the top-level limiter; else the route with its own limiter.
    pub route: Option<&'a str>,
    /// The routes counted by this limiter.
    pub routes: Vec<&'a str>,
    /// Its shadows.
    pub set: &'a ShadowSet,
}

impl Scope<'_> {
    /// The label value: `top-level` or the route name.
    pub fn label(&self) -> &str {
        self.route.unwrap_or("top-level")
    }
}

/// Every limiter of `snap` with shadows, the top level first.
pub fn scopes(snap: &Snapshot) -> Vec<Scope<'_>> {
    let names = snap.config.route_names();
    let routing = snap.routes.is_routing();
    let mut out: Vec<Scope<'_>> = Vec::new();
    for (slot, set) in snap.shadows.iter().enumerate() {
        let Some(set) = set else { continue };
        // A slot sharing an earlier slot's set is that scope's route.
        if let Some(scope) = out.iter_mut().find(|s| std::ptr::eq(s.set, &**set)) {
            // Without routes, the catch-all is the top level itself.
            if let Some(&name) = slot.checked_sub(1).and_then(|r| names.get(r)) {
                if routing {
                    scope.routes.push(name);
                }
            }
            continue;
        }
        let route = slot.checked_sub(1).and_then(|r| names.get(r).copied());
        let routes = match (route, routing) {
            (Some(name), true) => vec![name],
            _ => Vec::new(),
        };
        out.push(Scope {
            route: route.filter(|_| routing),
            routes,
            set,
        });
    }
    out
}

/// `n / d`, 0 when nothing was counted.
fn rate(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        n as f64 / d as f64
    }
}

fn row_json(row: &AlgorithmReport) -> Value {
    let c = row.counters;
    let a = row.accuracy;
    json!({
        "algorithm": row.name,
        "live": row.live,
        "spec": serde_json::to_value(&row.spec).unwrap_or(Value::Null),
        "requests": c.requests(),
        "would_allow": c.would_allow,
        "would_reject": c.would_reject,
        "would_reject_rate": rate(c.would_reject, c.requests()),
        "agreement": {
            "both_allow": c.both_allow,
            "both_reject": c.both_reject,
            "live_only_reject": c.live_only_reject,
            "shadow_only_reject": c.shadow_only_reject,
            "rate": rate(c.agreed(), c.requests()),
        },
        "accuracy": {
            "overshoot": a.overshoot,
            "undershoot": a.undershoot,
            "overshoot_ratio": a.overshoot_ratio,
            "undershoot_ratio": a.undershoot_ratio,
            "saturated": a.saturated,
        },
    })
}

/// The whole report.
pub fn report_json(snap: &Snapshot) -> Value {
    let limiters: Vec<Value> = scopes(snap)
        .iter()
        .map(|s| {
            let r = s.set.report();
            let meter = s.set.meter();
            json!({
                "scope": if s.route.is_some() { "route" } else { "top-level" },
                "route": s.route,
                "routes": s.routes,
                "live": r.rows.first().map(|row| row.name),
                "limit": r.limit,
                "window_ms": r.window.as_millis(),
                "keys_tracked": meter.keys_held(),
                "max_keys": meter.key_capacity(),
                "keys_replaced": r.keys_replaced,
                "algorithms": r.rows.iter().map(row_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "enabled": !limiters.is_empty(),
        "rule": RULE,
        "limiters": limiters,
    })
}
