//! Counters the workers publish and the control plane reads.
//!
//! Every field is an atomic updated with `Relaxed` ordering from the event
//! loop: no lock and no syscall per request. Readers get a consistent-enough
//! snapshot (each counter exact, not all of them at one instant).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::algo::cells::Evictions;

/// Upper bounds (ms) of the latency histogram buckets; a final +Inf bucket follows.
pub const LATENCY_BUCKETS_MS: [u64; 13] =
    [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one observation in microseconds.
    pub fn observe_us(&self, us: u64) {
        let ms_ceil = us.div_ceil(1000);
        let idx = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms_ceil <= b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.buckets[idx].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Per-bucket counts (not cumulative), the last being +Inf.
    pub fn counts(&self) -> [u64; LATENCY_BUCKETS_MS.len() + 1] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    /// Sum of all observations, microseconds.
    pub fn sum_us(&self) -> u64 {
        self.sum_us.load(Ordering::Relaxed)
    }

    /// Estimated quantile `q` (0..=1) in ms: the upper bound of the bucket
    /// holding it (so an over-estimate by at most one bucket width).
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        let counts = self.counts();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(LATENCY_BUCKETS_MS.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    /// Zeroes the histogram.
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.sum_us.store(0, Ordering::Relaxed);
    }
}

/// Per-backend statistics.
#[derive(Debug, Default)]
pub struct BackendStats {
    /// Requests sent to this backend.
    pub requests: AtomicU64,
    /// Failures counted against it (connect error, timeout, 5xx).
    pub failures: AtomicU64,
    /// Responses by class: 1xx..5xx at index 0..4.
    pub status: [AtomicU64; 5],
    /// Time to the response head, per request.
    pub latency: Histogram,
}

impl BackendStats {
    /// Zeroes everything.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        for s in &self.status {
            s.store(0, Ordering::Relaxed);
        }
        self.latency.reset();
    }
}

/// One consumer's live counters (`/gateway/consumers`, the `consumer`
/// label): requests proved to be theirs, and how many of those were
/// answered 401 (at the gateway: a genuine but expired token), 403 (a
/// route's `allow` list) or 429 (a rate limit), whether the gateway or
/// the backend said so.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Requests attributed to the consumer.
    pub requests: AtomicU64,
    /// Of those, answered 401.
    pub unauthorized: AtomicU64,
    /// Of those, answered 403.
    pub forbidden: AtomicU64,
    /// Of those, answered 429.
    pub limited: AtomicU64,
}

impl ConsumerStats {
    /// Counts one finished request of the consumer's.
    pub fn record(&self, status: u16) {
        Metrics::inc(&self.requests);
        match status {
            401 => Metrics::inc(&self.unauthorized),
            403 => Metrics::inc(&self.forbidden),
            429 => Metrics::inc(&self.limited),
            _ => {}
        }
    }

    /// Zeroes everything.
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.unauthorized,
            &self.forbidden,
            &self.limited,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// One route's live counters (`/gateway/routes`, the `route` label).
#[derive(Debug, Default)]
pub struct RouteStats {
    /// Requests the route took.
    pub requests: AtomicU64,
    /// Answers by class: 1xx..5xx at index 0..4 (the gateway's own included).
    pub status: [AtomicU64; 5],
    /// Of the 4xx, those that were 429 (rate limited).
    pub limited: AtomicU64,
    /// Time from the request head to the end of the exchange.
    pub latency: Histogram,
}

impl RouteStats {
    /// Counts one finished request.
    pub fn record(&self, status: u16, duration_us: u64) {
        Metrics::inc(&self.requests);
        if let Some(slot) = status_class(status).and_then(|i| self.status.get(i)) {
            Metrics::inc(slot);
        }
        if status == 429 {
            Metrics::inc(&self.limited);
        }
        self.latency.observe_us(duration_us);
    }

    /// Zeroes everything.
    pub fn reset(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.limited.store(0, Ordering::Relaxed);
        for s in &self.status {
            s.store(0, Ordering::Relaxed);
        }
        self.latency.reset();
    }
}

/// Gateway-wide totals.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests whose head was read (including rejected ones).
    pub requests: AtomicU64,
    /// Requests forwarded to a backend.
    pub proxied: AtomicU64,
    /// Requests answered 429.
    pub rate_limited: AtomicU64,
    /// Requests answered 503 because no circuit was closed.
    pub circuit_broken: AtomicU64,
    /// Requests answered with a gateway-made error (4xx/5xx other than 429/503-circuit).
    pub errors: AtomicU64,
    /// Circuit trips refused by `circuit_breaker.max_open_ratio` (the
    /// circuit stayed CLOSED).
    pub circuit_trips_suppressed: AtomicU64,
    /// Tries sent again on another backend under `retry`.
    pub retries: AtomicU64,
    /// Retries refused by the retry budget (the original error was answered).
    pub retry_budget_exhausted: AtomicU64,
    /// Responses sent to clients by class: 1xx..5xx at index 0..4.
    pub status: [AtomicU64; 5],
    /// Rate-limit decisions: allowed, delayed (queued), denied.
    pub limit_allowed: AtomicU64,
    /// Requests queued by the leaky bucket.
    pub limit_delayed: AtomicU64,
    /// Requests denied by the rate limiter.
    pub limit_denied: AtomicU64,
    /// Live rate-limit keys evicted from a full table bucket; every limiter
    /// built (including after a live switch) counts into this one.
    pub limit_evictions: Evictions,
    /// Shadow limiters' keys evicted from a full table bucket (kept apart
    /// from the live count: shadows never change what clients see).
    pub shadow_evictions: Evictions,
    /// Client connections accepted.
    pub connections_accepted: AtomicU64,
    /// Client connections currently open.
    pub connections_open: AtomicU64,
    /// Failed `accept` calls (descriptor exhaustion and the like).
    pub accept_errors: AtomicU64,
    /// Requests currently being handled.
    pub inflight: AtomicU64,
    /// Spare connection buffers held by the workers' pools (all workers;
    /// refreshed at each timer sweep).
    pub buffer_pool_spare: AtomicU64,
    /// Connection buffers in use by connections (all workers; refreshed at
    /// each timer sweep).
    pub buffer_pool_in_use: AtomicU64,
    /// Whole-request latency as seen by the gateway.
    pub latency: Histogram,
    /// Requests refused by authentication, by reason (the order of
    /// `AuthFailure::REASONS`).
    pub auth_failures: [AtomicU64; 6],
    /// Active health-check probes that passed (every backend, every
    /// upstream; connect-only probes of TLS backends included).
    pub health_checks_passed: AtomicU64,
    /// Active health-check probes that failed.
    pub health_checks_failed: AtomicU64,
    /// `X-Gateway-Trace` requests off loopback whose
    /// `X-Gateway-Trace-Token` was wrong (tracing on): someone guessing
    /// the admin token on the data port.
    pub trace_token_refused: AtomicU64,
}

impl Metrics {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge, never below zero.
    pub fn dec(gauge: &AtomicU64) {
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Counts a response status sent to a client.
    pub fn count_status(&self, status: u16) {
        if let Some(slot) = status_class(status).and_then(|i| self.status.get(i)) {
            Metrics::inc(slot);
        }
    }

    /// Zeroes the counters (gauges such as open connections are kept).
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.proxied,
            &self.rate_limited,
            &self.circuit_broken,
            &self.errors,
            &self.circuit_trips_suppressed,
            &self.retries,
            &self.retry_budget_exhausted,
            &self.limit_allowed,
            &self.limit_delayed,
            &self.limit_denied,
            &self.connections_accepted,
            &self.accept_errors,
            &self.health_checks_passed,
            &self.health_checks_failed,
            &self.trace_token_refused,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for s in self.status.iter().chain(&self.auth_failures) {
            s.store(0, Ordering::Relaxed);
        }
        self.limit_evictions.reset();
        self.shadow_evictions.reset();
        self.latency.reset();
    }
}

/// Index 0..4 for 1xx..5xx.
pub fn status_class(status: u16) -> Option<usize> {
    match status {
        100..=599 => Some(usize::from(status / 100 - 1)),
        _ => None,
    }
}

/// Reads a counter.
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_bucket_upper_bounds() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.observe_us(800); // 1 ms bucket
        }
        for _ in 0..10 {
            h.observe_us(40_000); // 50 ms bucket
        }
        assert_eq!(h.quantile_ms(0.5), Some(1));
        assert_eq!(h.quantile_ms(0.9), Some(1));
        assert_eq!(h.quantile_ms(0.99), Some(50));
        h.reset();
        assert_eq!(h.quantile_ms(0.5), None);
    }
}
