//! The `/metrics` report: Prometheus text format 0.0.4, read straight from
//! the shared atomics.
//!
//! Label values come from config names only (upstream, backend, route names)
//! plus fixed vocabularies (status class, circuit state, decision), so the
//! number of series is bounded by the config, never by traffic: no raw
//! path, host or client ever becomes a label. Values are escaped anyway
//! (`\`, `"`, newline), since config names are free text.
//!
//! Every backend series carries `backend` and `upstream`; the per-route
//! series (`gateway_route_*`) carry `route` and `upstream`. A config without
//! routes reports its catch-all as `route="default"`.

use crate::algo::limit::shadow::Accuracy;
use crate::auth::AuthFailure;
use crate::tls::HandshakeFailure;
use std::borrow::Cow;
use std::fmt::Write as _;

use crate::backend::SelectionMode;
use crate::config::DEFAULT_UPSTREAM;
use crate::health::HealthState;
use crate::metrics::{get, Histogram, LATENCY_BUCKETS_MS};
use crate::shared::Shared;
use crate::snapshot::Snapshot;

use super::store;

/// Escapes a label value (text format: backslash, double quote, newline).
fn esc(v: &str) -> Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(v);
    }
    Cow::Owned(
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n"),
    )
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    family(o, name, "counter", help);
    let _ = writeln!(o, "{name} {v}");
}

fn gauge(o: &mut String, name: &str, help: &str, v: u64) {
    family(o, name, "gauge", help);
    let _ = writeln!(o, "{name} {v}");
}

/// The whole report.
/// `reloads`: config reloads so far, (succeeded, refused).
pub fn render(s: &Shared, snap: &Snapshot, reloads: (u64, u64)) -> String {
    let m = &s.metrics;
    let now = s.clock_now();
    let mut o = String::with_capacity(8192);
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
    family(
        &mut o,
        "gateway_health_checks_total",
        "counter",
        "Active health-check probes, by result.",
    );
    let _ = writeln!(
        o,
        "gateway_health_checks_total{{result=\"pass\"}} {}",
        get(&m.health_checks_passed)
    );
    let _ = writeln!(
        o,
        "gateway_health_checks_total{{result=\"fail\"}} {}",
        get(&m.health_checks_failed)
    );
    counter(
        &mut o,
        "gateway_trace_token_refused_total",
        "Trace requests off loopback with a wrong X-Gateway-Trace-Token (the admin token).",
        get(&m.trace_token_refused),
    );
    counter(
        &mut o,
        "gateway_retries_total",
        "Tries sent again on another backend (retry policy).",
        get(&m.retries),
    );
    counter(
        &mut o,
        "gateway_retry_budget_exhausted_total",
        "Retries refused by the retry budget; the original error was answered.",
        get(&m.retry_budget_exhausted),
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
    family(
        &mut o,
        "gateway_responses_total",
        "counter",
        "Responses sent to clients by status class.",
    );
    for (i, c) in m.status.iter().enumerate() {
        let _ = writeln!(
            o,
            "gateway_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            get(c)
        );
    }
    family(
        &mut o,
        "gateway_ratelimit_decisions_total",
        "counter",
        "Rate-limiter decisions.",
    );
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
    family(
        &mut o,
        "gateway_upstream_panic",
        "gauge",
        "1 while too few backends of the upstream have a closed circuit and its traffic is spread over all its switched-on backends.",
    );
    for u in &snap.pools {
        let panic = matches!(u.table.selection(now), SelectionMode::Panic { .. });
        let _ = writeln!(
            o,
            "gateway_upstream_panic{{upstream=\"{}\"}} {}",
            esc(&u.name),
            u8::from(panic)
        );
    }
    gauge(
        &mut o,
        "gateway_inflight_requests",
        "Requests being handled.",
        get(&m.inflight),
    );
    queues(&mut o, snap);
    gauge(
        &mut o,
        "gateway_connections_open",
        "Client connections open.",
        get(&m.connections_open),
    );
    gauge(
        &mut o,
        "gateway_buffer_pool_spare",
        "Spare connection buffers held for reuse (all workers).",
        get(&m.buffer_pool_spare),
    );
    gauge(
        &mut o,
        "gateway_buffer_pool_in_use",
        "Connection buffers held by connections (all workers).",
        get(&m.buffer_pool_in_use),
    );
    gauge(
        &mut o,
        "gateway_uptime_seconds",
        "Seconds since start.",
        now.as_millis() / 1000,
    );
    gauge(
        &mut o,
        "gateway_config_generation",
        "The configuration generation running (0 at start, +1 per successful reload).",
        snap.generation,
    );
    family(
        &mut o,
        "gateway_config_reload_total",
        "counter",
        "Config reloads (SIGHUP, POST /gateway/config/reload, POST /gateway/config), by result.",
    );
    let _ = writeln!(
        o,
        "gateway_config_reload_total{{result=\"ok\"}} {}",
        reloads.0
    );
    let _ = writeln!(
        o,
        "gateway_config_reload_total{{result=\"error\"}} {}",
        reloads.1
    );
    backends(&mut o, snap, now);
    histogram(
        &mut o,
        "gateway_request_duration_seconds",
        "Whole-request latency at the gateway.",
        "",
        &m.latency,
    );
    family(
        &mut o,
        "gateway_backend_response_seconds",
        "histogram",
        "Time to the backend's response head.",
    );
    for u in &snap.pools {
        for b in u.table.iter() {
            histogram_lines(
                &mut o,
                "gateway_backend_response_seconds",
                &format!(
                    "backend=\"{}\",upstream=\"{}\",",
                    esc(&b.name),
                    esc(&u.name)
                ),
                &b.stats.latency,
            );
        }
    }
    routes(&mut o, snap);
    shadows(&mut o, s, snap);
    consumers(&mut o, s, snap);
    tls(&mut o, s);
    store::prometheus(&mut o, s.limit_store.as_ref());
    o
}

/// The per-backend families, each backend labelled with its upstream.
fn backends(o: &mut String, snap: &Snapshot, now: crate::algo::Nanos) {
    // (upstream, backend) label pairs, escaped once.
    let labels: Vec<(String, &crate::backend::Backend)> = snap
        .pools
        .iter()
        .flat_map(|u| {
            u.table.iter().map(move |b| {
                (
                    format!("backend=\"{}\",upstream=\"{}\"", esc(&b.name), esc(&u.name)),
                    b,
                )
            })
        })
        .collect();
    family(
        o,
        "gateway_backend_requests_total",
        "counter",
        "Requests sent to each backend.",
    );
    for (l, b) in &labels {
        let _ = writeln!(
            o,
            "gateway_backend_requests_total{{{l}}} {}",
            get(&b.stats.requests)
        );
    }
    family(
        o,
        "gateway_backend_responses_total",
        "counter",
        "Backend responses by status class.",
    );
    for (l, b) in &labels {
        for (i, c) in b.stats.status.iter().enumerate() {
            let _ = writeln!(
                o,
                "gateway_backend_responses_total{{{l},class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
    }
    family(
        o,
        "gateway_backend_failures_total",
        "counter",
        "Failures counted against each backend's circuit.",
    );
    for (l, b) in &labels {
        let _ = writeln!(
            o,
            "gateway_backend_failures_total{{{l}}} {}",
            get(&b.stats.failures)
        );
    }
    family(
        o,
        "gateway_backend_inflight",
        "gauge",
        "Requests in flight per backend.",
    );
    for (l, b) in &labels {
        let _ = writeln!(o, "gateway_backend_inflight{{{l}}} {}", b.inflight());
    }
    family(
        o,
        "gateway_circuit_state",
        "gauge",
        "Circuit state per backend (1 for the current state).",
    );
    for (l, b) in &labels {
        let cur = b.breaker.state(now).as_str();
        for st in ["CLOSED", "OPEN", "HALF_OPEN"] {
            let _ = writeln!(
                o,
                "gateway_circuit_state{{{l},state=\"{st}\"}} {}",
                u8::from(cur == st)
            );
        }
    }
    family(
        o,
        "gateway_backend_up",
        "gauge",
        "Operator switch per backend.",
    );
    for (l, b) in &labels {
        let _ = writeln!(o, "gateway_backend_up{{{l}}} {}", u8::from(b.is_up()));
    }
    family(
        o,
        "gateway_backend_health",
        "gauge",
        "Active health-check state per backend (1 for the current state; unchecked: no check configured or none decided yet).",
    );
    for (l, b) in &labels {
        let cur = b.health.state();
        for st in [
            HealthState::Unchecked,
            HealthState::Healthy,
            HealthState::Unhealthy,
        ] {
            let _ = writeln!(
                o,
                "gateway_backend_health{{{l},state=\"{}\"}} {}",
                st.as_str(),
                u8::from(cur == st)
            );
        }
    }
}

/// The HTTPS listener: handshakes by result, versions and cipher suites
/// negotiated, and each loaded certificate's expiry (so an alert can fire
/// before it lapses).
fn tls(o: &mut String, s: &Shared) {
    let Some(tls) = &s.tls else {
        return;
    };
    let st = &tls.stats;
    family(
        o,
        "gateway_tls_handshakes_total",
        "counter",
        "TLS handshakes on the HTTPS listener, by result (ok, or why it failed).",
    );
    let _ = writeln!(
        o,
        "gateway_tls_handshakes_total{{result=\"ok\"}} {}",
        get(&st.ok)
    );
    for (why, n) in HandshakeFailure::ALL.iter().zip(&st.failed) {
        let _ = writeln!(
            o,
            "gateway_tls_handshakes_total{{result=\"{}\"}} {}",
            why.label(),
            get(n)
        );
    }
    family(
        o,
        "gateway_tls_versions_total",
        "counter",
        "Completed TLS handshakes by protocol version.",
    );
    for (v, n) in ["1.2", "1.3"].iter().zip(&st.versions) {
        let _ = writeln!(
            o,
            "gateway_tls_versions_total{{version=\"{v}\"}} {}",
            get(n)
        );
    }
    family(
        o,
        "gateway_tls_cipher_suites_total",
        "counter",
        "Completed TLS handshakes by cipher suite.",
    );
    for (suite, n) in &st.suites {
        let name = suite.suite().as_str().unwrap_or("unknown");
        let _ = writeln!(
            o,
            "gateway_tls_cipher_suites_total{{suite=\"{name}\"}} {}",
            get(n)
        );
    }
    family(
        o,
        "gateway_tls_certificate_expiry_seconds",
        "gauge",
        "Seconds until each loaded certificate's notAfter (negative once expired).",
    );
    let now = crate::algo::clock::unix_secs() as i64;
    let snapshot = tls.current();
    for (i, (cfg, loaded)) in snapshot.store.certs.iter().enumerate() {
        if let Some(at) = loaded.not_after {
            let hosts = if cfg.hosts.is_empty() {
                "default".to_string()
            } else {
                cfg.hosts.join(",")
            };
            let _ = writeln!(
                o,
                "gateway_tls_certificate_expiry_seconds{{certificate=\"{i}\",file=\"{}\",hosts=\"{}\"}} {}",
                esc(&cfg.cert),
                esc(&hosts),
                at - now
            );
        }
    }
}

/// Authentication failures by reason, and the per-consumer families
/// (`consumer`: configured names only, so the series are bounded by the
/// config).
fn consumers(o: &mut String, s: &Shared, snap: &Snapshot) {
    family(
        o,
        "gateway_auth_failures_total",
        "counter",
        "Requests refused by a route's auth, by reason.",
    );
    for (reason, n) in AuthFailure::REASONS.iter().zip(&s.metrics.auth_failures) {
        let _ = writeln!(
            o,
            "gateway_auth_failures_total{{reason=\"{reason}\"}} {}",
            get(n)
        );
    }
    if snap.config.consumers.is_empty() {
        return;
    }
    let stats = || snap.config.consumers.iter().zip(snap.consumer_stats.iter());
    family(
        o,
        "gateway_consumer_requests_total",
        "counter",
        "Requests each consumer was authenticated for.",
    );
    for (c, st) in stats() {
        let _ = writeln!(
            o,
            "gateway_consumer_requests_total{{consumer=\"{}\"}} {}",
            esc(&c.name),
            get(&st.requests)
        );
    }
    family(
        o,
        "gateway_consumer_responses_total",
        "counter",
        "Each consumer's requests answered 401, 403 or 429 (by the gateway: an expired genuine token, not allowed, rate limited; or by the backend).",
    );
    for (c, st) in stats() {
        for (status, n) in [
            ("401", &st.unauthorized),
            ("403", &st.forbidden),
            ("429", &st.limited),
        ] {
            let _ = writeln!(
                o,
                "gateway_consumer_responses_total{{consumer=\"{}\",status=\"{status}\"}} {}",
                esc(&c.name),
                get(n)
            );
        }
    }
}

/// The queues in front of capped upstreams: depth, turned away, waits.
fn queues(o: &mut String, snap: &Snapshot) {
    let capped: Vec<&crate::upstream::Pool> =
        snap.pools.iter().filter(|p| p.queue.is_some()).collect();
    if capped.is_empty() {
        return;
    }
    family(
        o,
        "gateway_upstream_queue_depth",
        "gauge",
        "Requests waiting for a backend below max_inflight_per_backend.",
    );
    for p in &capped {
        let _ = writeln!(
            o,
            "gateway_upstream_queue_depth{{upstream=\"{}\"}} {}",
            esc(&p.name),
            p.waiting.depth()
        );
    }
    family(
        o,
        "gateway_upstream_queue_rejected_total",
        "counter",
        "Requests answered 503 by the queue: it was full, or the wait timed out.",
    );
    for p in &capped {
        let name = esc(&p.name);
        let _ = writeln!(
            o,
            "gateway_upstream_queue_rejected_total{{upstream=\"{name}\",reason=\"full\"}} {}",
            get(&p.waiting.full)
        );
        let _ = writeln!(
            o,
            "gateway_upstream_queue_rejected_total{{upstream=\"{name}\",reason=\"timeout\"}} {}",
            get(&p.waiting.timed_out)
        );
    }
    family(
        o,
        "gateway_upstream_queue_wait_seconds",
        "histogram",
        "How long requests waited in the queue before they got a backend.",
    );
    for p in &capped {
        histogram_lines(
            o,
            "gateway_upstream_queue_wait_seconds",
            &format!("upstream=\"{}\",", esc(&p.name)),
            &p.waiting.waited,
        );
    }
}

/// One figure of an [`Accuracy`], as a gauge value.
type AccuracyValue = fn(&Accuracy) -> f64;

/// The shadow limiters' families (`limiter`: `top-level` or the route with
/// its own limiter; `algorithm`; the live algorithm's row has
/// `live="true"`). Present only while some limiter has shadows.
fn shadows(o: &mut String, s: &Shared, snap: &Snapshot) {
    let scopes = super::shadow::scopes(snap);
    if scopes.is_empty() {
        return;
    }
    let reports: Vec<_> = scopes.iter().map(|sc| (sc, sc.set.report())).collect();
    let rows = || {
        reports.iter().flat_map(|(sc, r)| {
            r.rows.iter().map(move |row| {
                let labels = format!(
                    "limiter=\"{}\",algorithm=\"{}\",live=\"{}\"",
                    esc(sc.label()),
                    row.name,
                    row.live
                );
                (labels, row)
            })
        })
    };
    family(
        o,
        "gateway_shadow_decisions_total",
        "counter",
        "What each algorithm would have decided on the live limiter's traffic (shadows only count).",
    );
    for (l, row) in rows() {
        let c = row.counters;
        let _ = writeln!(
            o,
            "gateway_shadow_decisions_total{{{l},decision=\"allow\"}} {}",
            c.would_allow
        );
        let _ = writeln!(
            o,
            "gateway_shadow_decisions_total{{{l},decision=\"reject\"}} {}",
            c.would_reject
        );
    }
    family(
        o,
        "gateway_shadow_agreement_total",
        "counter",
        "Each algorithm's verdicts against the live limiter's: both_allow, both_reject, live_only_reject, shadow_only_reject.",
    );
    for (l, row) in rows() {
        let c = row.counters;
        for (cell, v) in [
            ("both_allow", c.both_allow),
            ("both_reject", c.both_reject),
            ("live_only_reject", c.live_only_reject),
            ("shadow_only_reject", c.shadow_only_reject),
        ] {
            let _ = writeln!(
                o,
                "gateway_shadow_agreement_total{{{l},cell=\"{cell}\"}} {v}"
            );
        }
    }
    let gauges: [(&str, &str, AccuracyValue); 3] = [
        (
            "gateway_shadow_overshoot_requests",
            "Worst admitted beyond the true limit in any trailing window, per key, against the exact sliding log.",
            |a| a.overshoot as f64,
        ),
        (
            "gateway_shadow_undershoot_requests",
            "Worst rejection while under the true limit (requests of the limit left unused), against the exact sliding log.",
            |a| a.undershoot as f64,
        ),
        (
            "gateway_shadow_overshoot_ratio",
            "Most admitted in a trailing window, in limits: (L + overshoot) / L.",
            |a| a.overshoot_ratio,
        ),
    ];
    for (name, help, value) in gauges {
        family(o, name, "gauge", help);
        for (l, row) in rows() {
            let _ = writeln!(o, "{name}{{{l}}} {}", value(&row.accuracy));
        }
    }
    counter(
        o,
        "gateway_shadow_evictions_total",
        "Shadow limiters' keys evicted from a full table bucket.",
        s.metrics.shadow_evictions.get(),
    );
}

/// The per-route families (`route` and its `upstream`).
fn routes(o: &mut String, snap: &Snapshot) {
    let labels: Vec<String> = snap
        .config
        .route_names()
        .into_iter()
        .enumerate()
        .map(|(r, name)| {
            let upstream = snap
                .config
                .routes
                .get(r)
                .map_or(DEFAULT_UPSTREAM, |c| c.upstream.as_str());
            format!("route=\"{}\",upstream=\"{}\"", esc(name), esc(upstream))
        })
        .collect();
    let stats = || labels.iter().zip(snap.route_stats.iter());
    family(
        o,
        "gateway_route_requests_total",
        "counter",
        "Requests each route took (answered by the backend or by the gateway).",
    );
    for (l, st) in stats() {
        let _ = writeln!(
            o,
            "gateway_route_requests_total{{{l}}} {}",
            get(&st.requests)
        );
    }
    family(
        o,
        "gateway_route_responses_total",
        "counter",
        "Responses to each route's requests by status class (the gateway's own included).",
    );
    for (l, st) in stats() {
        for (i, c) in st.status.iter().enumerate() {
            let _ = writeln!(
                o,
                "gateway_route_responses_total{{{l},class=\"{}xx\"}} {}",
                i + 1,
                get(c)
            );
        }
    }
    family(
        o,
        "gateway_route_rate_limited_total",
        "counter",
        "Each route's requests answered 429 by its rate limiter.",
    );
    for (l, st) in stats() {
        let _ = writeln!(
            o,
            "gateway_route_rate_limited_total{{{l}}} {}",
            get(&st.limited)
        );
    }
    family(
        o,
        "gateway_route_duration_seconds",
        "histogram",
        "Whole-request latency per route, head read to exchange end.",
    );
    for (l, st) in stats() {
        histogram_lines(
            o,
            "gateway_route_duration_seconds",
            &format!("{l},"),
            &st.latency,
        );
    }
}

fn histogram(o: &mut String, name: &str, help: &str, labels: &str, h: &Histogram) {
    family(o, name, "histogram", help);
    histogram_lines(o, name, labels, h);
}

/// The bucket, sum and count lines of one histogram; `labels` is empty or
/// ends with a comma.
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

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("users-api"), "users-api");
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
