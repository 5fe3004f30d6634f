//! Translating a live limit into another algorithm's parameters, so a shadow
//! limits "the same thing" as the live one and the accuracy meter knows the
//! true limit in window form.
//!
//! The rule, exactly (quoted in the README):
//!
//! > A window algorithm (fixed-window, sliding-log, sliding-counter) that
//! > allows L requests per window of W seconds and a bucket (token-bucket,
//! > leaky-bucket) of capacity C refilled or leaked at r per second
//! > correspond by **C = L, r = L / W**, and back by **W = C / r, L = C**.
//! > Between two algorithms of the same family the parameters are kept as
//! > they are. W is rounded to the nearest millisecond. The result is then
//! > brought into the bounds the protocol validates, lowering a count or a
//! > rate (never raising one), so a translated spec always validates and
//! > builds:
//! >
//! > - r is at most 1e9 per second (`MAX_RATE_PER_SEC`);
//! > - C is lowered until refilling a token bucket from empty takes at most
//! >   365 days (`MAX_REFILL_NS`), or until the last of a full leaky-bucket
//! >   queue waits at most one day (`MAX_SPAN_NS`), with 1/r rounded up to
//! >   whole nanoseconds as the limiters do;
//! > - W is at least 1 ms; a W beyond one day (`MAX_SPAN_MS`) becomes one
//! >   day with L = floor(r x 86400) (at least 1), which keeps the rate and
//! >   lowers the burst;
//! > - L is at most 1024 for sliding-log (`SLIDING_LOG_MAX_LIMIT`) and
//! >   2^21 - 1 for sliding-counter (`SLIDING_COUNTER_MAX_LIMIT`).
//!
//! Invariant: [`translate`] never panics, and its result passes
//! [`LimitSpec::validate`] for ANY input, including specs that never passed
//! validation (zero counts or windows, NaN or infinite rates): those are
//! first brought into bounds the same way (counts at least 1, windows in
//! 1 ms ..= one day, a rate that is not a number or slower than one per day
//! becomes one per day, a faster one than 1e9/s becomes 1e9/s).

use api_gateway_protocol::{
    rate_interval_ns, LimitSpec, MAX_RATE_PER_SEC, MAX_REFILL_NS, MAX_SPAN_MS, MAX_SPAN_NS,
    MIN_RATE_PER_SEC, SLIDING_COUNTER_MAX_LIMIT, SLIDING_LOG_MAX_LIMIT,
};

use super::Algorithm;

/// Seconds per day: the longest window, as a rate factor.
const SECS_PER_DAY: f64 = (MAX_SPAN_MS / 1_000) as f64;

/// `live`'s limit expressed for algorithm `to`, by the rule in the module
/// docs (C = L, r = L / W; W = C / r, L = C; clamped, erring towards
/// denying). Always valid for `to`.
pub fn translate(live: &LimitSpec, to: Algorithm) -> LimitSpec {
    if to.is_window() {
        let (limit, window_ms) = window_form(live);
        match to {
            Algorithm::FixedWindow => LimitSpec::FixedWindow { limit, window_ms },
            Algorithm::SlidingLog => LimitSpec::SlidingLog {
                limit: limit.min(SLIDING_LOG_MAX_LIMIT),
                window_ms,
            },
            _ => LimitSpec::SlidingCounter {
                limit: limit.min(SLIDING_COUNTER_MAX_LIMIT),
                window_ms,
            },
        }
    } else {
        let (capacity, rate) = bucket_form(live);
        // The interval the limiter will use (rounded up), and the span bound
        // the protocol puts on capacity x interval for this bucket.
        let interval = rate_interval_ns(rate).unwrap_or(MAX_SPAN_NS).max(1);
        let span = if to == Algorithm::TokenBucket {
            MAX_REFILL_NS
        } else {
            MAX_SPAN_NS
        };
        let capacity = capacity.min(u32::try_from(span / interval).unwrap_or(u32::MAX));
        if to == Algorithm::TokenBucket {
            LimitSpec::TokenBucket {
                capacity,
                refill_per_sec: rate,
            }
        } else {
            LimitSpec::LeakyBucket {
                capacity,
                leak_per_sec: rate,
            }
        }
    }
}

/// `spec` as "L requests per W ms", before any per-algorithm cap on L: what
/// the accuracy meter takes as the true limit. L >= 1, W in 1 ..= one day.
pub fn window_form(spec: &LimitSpec) -> (u32, u64) {
    match Family::of(spec) {
        Family::Window { limit, window_ms } => (limit, window_ms),
        Family::Bucket {
            capacity: c,
            rate: r,
        } => {
            // W = C / r, in ms, rounded to the nearest ms.
            let w = (f64::from(c) * 1_000.0 / r).round();
            if w < 1.0 {
                (c, 1)
            } else if w > MAX_SPAN_MS as f64 {
                // Keep the rate over one day; `as` saturates, and r x 86400
                // < C here, so this lowers L.
                let l = (r * SECS_PER_DAY).floor() as u32;
                (l.clamp(1, c), MAX_SPAN_MS)
            } else {
                (c, w as u64)
            }
        }
    }
}

/// `spec` as "capacity C, rate r per second", before the per-bucket cap on
/// C: C >= 1, r a rate the protocol accepts.
pub fn bucket_form(spec: &LimitSpec) -> (u32, f64) {
    match Family::of(spec) {
        Family::Window { limit, window_ms } => {
            // r = L / W with W in seconds: L x 1000 / W_ms.
            (
                limit,
                clamp_rate(f64::from(limit) * 1_000.0 / window_ms as f64),
            )
        }
        Family::Bucket { capacity, rate } => (capacity, rate),
    }
}

/// A spec's parameters by family, already in bounds (counts at least 1,
/// windows in 1 ms ..= one day, rates the protocol accepts).
enum Family {
    /// L requests per W ms.
    Window { limit: u32, window_ms: u64 },
    /// Capacity C at r per second.
    Bucket { capacity: u32, rate: f64 },
}

impl Family {
    fn of(spec: &LimitSpec) -> Family {
        match *spec {
            LimitSpec::FixedWindow { limit, window_ms }
            | LimitSpec::SlidingLog { limit, window_ms }
            | LimitSpec::SlidingCounter { limit, window_ms } => Family::Window {
                limit: limit.max(1),
                window_ms: window_ms.clamp(1, MAX_SPAN_MS),
            },
            LimitSpec::TokenBucket {
                capacity,
                refill_per_sec: rate,
            }
            | LimitSpec::LeakyBucket {
                capacity,
                leak_per_sec: rate,
            } => Family::Bucket {
                capacity: capacity.max(1),
                rate: clamp_rate(rate),
            },
        }
    }
}

/// `rate` if the protocol accepts it; else the nearest accepted rate (NaN
/// and anything not above zero: the slowest, one per day).
fn clamp_rate(rate: f64) -> f64 {
    if rate_interval_ns(rate).is_some() {
        rate
    } else if rate > MAX_RATE_PER_SEC {
        MAX_RATE_PER_SEC
    } else {
        MIN_RATE_PER_SEC
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::cells::Evictions;
    use crate::algo::limit::build;
    use crate::algo::Nanos;

    fn fw(limit: u32, window_ms: u64) -> LimitSpec {
        LimitSpec::FixedWindow { limit, window_ms }
    }
    fn sl(limit: u32, window_ms: u64) -> LimitSpec {
        LimitSpec::SlidingLog { limit, window_ms }
    }
    fn sc(limit: u32, window_ms: u64) -> LimitSpec {
        LimitSpec::SlidingCounter { limit, window_ms }
    }
    fn tb(capacity: u32, refill_per_sec: f64) -> LimitSpec {
        LimitSpec::TokenBucket {
            capacity,
            refill_per_sec,
        }
    }
    fn lb(capacity: u32, leak_per_sec: f64) -> LimitSpec {
        LimitSpec::LeakyBucket {
            capacity,
            leak_per_sec,
        }
    }

    #[test]
    fn window_to_bucket_is_c_equals_l_and_r_equals_l_over_w() {
        // 100 per 10 s -> capacity 100 at 10/s.
        let live = fw(100, 10_000);
        assert_eq!(translate(&live, Algorithm::TokenBucket), tb(100, 10.0));
        assert_eq!(translate(&live, Algorithm::LeakyBucket), lb(100, 10.0));
        // 5 per 2 s -> 2.5/s; 3 per 250 ms -> 12/s.
        assert_eq!(translate(&sl(5, 2_000), Algorithm::TokenBucket), tb(5, 2.5));
        assert_eq!(translate(&sc(3, 250), Algorithm::LeakyBucket), lb(3, 12.0));
    }

    #[test]
    fn bucket_to_window_is_w_equals_c_over_r_and_l_equals_c() {
        // Capacity 20 at 2/s -> 20 per 10 s.
        let live = tb(20, 2.0);
        assert_eq!(translate(&live, Algorithm::FixedWindow), fw(20, 10_000));
        assert_eq!(translate(&live, Algorithm::SlidingLog), sl(20, 10_000));
        assert_eq!(translate(&live, Algorithm::SlidingCounter), sc(20, 10_000));
        // Capacity 10 leaking 5/s -> 10 per 2 s; 1 at 3/s -> 333.33 ms, to 333.
        assert_eq!(
            translate(&lb(10, 5.0), Algorithm::SlidingLog),
            sl(10, 2_000)
        );
        assert_eq!(translate(&lb(1, 3.0), Algorithm::FixedWindow), fw(1, 333));
    }

    #[test]
    fn same_family_keeps_parameters() {
        for a in [
            Algorithm::FixedWindow,
            Algorithm::SlidingLog,
            Algorithm::SlidingCounter,
        ] {
            for live in [fw(7, 1_234), sl(7, 1_234), sc(7, 1_234)] {
                assert_eq!(
                    window_form(&translate(&live, a)),
                    (7, 1_234),
                    "{live:?} {a:?}"
                );
                assert_eq!(Algorithm::of(&translate(&live, a)), a);
            }
        }
        assert_eq!(translate(&tb(9, 0.7), Algorithm::LeakyBucket), lb(9, 0.7));
        assert_eq!(translate(&lb(9, 0.7), Algorithm::TokenBucket), tb(9, 0.7));
        assert_eq!(translate(&tb(9, 0.7), Algorithm::TokenBucket), tb(9, 0.7));
    }

    #[test]
    fn round_trips() {
        // Window -> bucket -> window: exact for any whole-ms window.
        for (l, w) in [
            (1, 1),
            (100, 10_000),
            (3, 1_000),
            (7, 86_400_000),
            (1_000, 60_000),
        ] {
            for a in [
                Algorithm::FixedWindow,
                Algorithm::SlidingLog,
                Algorithm::SlidingCounter,
            ] {
                for b in [Algorithm::TokenBucket, Algorithm::LeakyBucket] {
                    let there = translate(&translate(&fw(l, w), b), a);
                    if b == Algorithm::LeakyBucket && l == 7 {
                        // 7 per day: 1/r rounds up to 12_342_857_142_858 ns,
                        // 7 of which exceed a day of queue, so C drops to 6.
                        assert_eq!(bucket_form(&translate(&fw(l, w), b)).0, 6);
                        continue;
                    }
                    assert_eq!(window_form(&there), (l, w), "{l}/{w} via {b:?} to {a:?}");
                }
            }
        }
        // Bucket -> window -> bucket: exact when C / r is whole ms.
        for (c, r) in [(20, 2.0), (10, 5.0), (1, 1_000.0), (4, 0.5)] {
            for b in [Algorithm::TokenBucket, Algorithm::LeakyBucket] {
                let back = translate(&translate(&tb(c, r), Algorithm::SlidingLog), b);
                assert_eq!(bucket_form(&back), (c, r), "{c} at {r}");
            }
        }
    }

    #[test]
    fn clamps_lower_counts_and_rates() {
        // Sliding log stores L stamps: at most 1024.
        assert_eq!(
            translate(&fw(5_000, 1_000), Algorithm::SlidingLog),
            sl(1_024, 1_000)
        );
        assert_eq!(
            translate(&fw(u32::MAX, 1_000), Algorithm::SlidingCounter),
            sc(SLIDING_COUNTER_MAX_LIMIT, 1_000)
        );
        // u32::MAX per ms is 4.3e12/s: clamped to 1e9/s.
        assert_eq!(
            translate(&fw(u32::MAX, 1), Algorithm::TokenBucket),
            tb(u32::MAX, 1e9)
        );
        // A token bucket refilling over 10 days: one day at the same rate.
        assert_eq!(
            translate(&tb(10, 1.0 / 86_400.0), Algorithm::FixedWindow),
            fw(1, MAX_SPAN_MS)
        );
        assert_eq!(
            translate(&tb(300, 0.001), Algorithm::SlidingLog),
            sl(86, MAX_SPAN_MS)
        );
        // ... and a leaky bucket's queue is at most a day long.
        assert_eq!(
            translate(&tb(365, 1.0 / 86_400.0), Algorithm::LeakyBucket),
            lb(1, 1.0 / 86_400.0)
        );
        // Sub-millisecond windows become 1 ms.
        assert_eq!(translate(&tb(1, 1e6), Algorithm::FixedWindow), fw(1, 1));
    }

    #[test]
    fn every_translation_validates_and_builds() {
        let lives = [
            fw(100, 10_000),
            sl(100, 10_000),
            sc(100, 10_000),
            tb(20, 2.0),
            lb(10, 5.0),
            fw(u32::MAX, 1),
            fw(u32::MAX, MAX_SPAN_MS),
            fw(1, MAX_SPAN_MS),
            fw(7, MAX_SPAN_MS),
            sl(1_024, 1),
            tb(u32::MAX, 1e9),
            tb(365, 1.0 / 86_400.0),
            lb(86_400, 1.0),
            lb(u32::MAX, 1e9),
            // Never valid: brought into bounds, no panic.
            fw(0, 0),
            sl(0, u64::MAX),
            sc(u32::MAX, 0),
            tb(0, f64::NAN),
            tb(u32::MAX, 1.0),
            lb(5, f64::INFINITY),
            lb(5, f64::NEG_INFINITY),
            lb(u32::MAX, 1e-300),
            tb(3, -2.0),
        ];
        for live in &lives {
            for a in Algorithm::ALL {
                let spec = translate(live, a);
                assert_eq!(Algorithm::of(&spec), a);
                assert_eq!(spec.validate(), Ok(()), "{live:?} -> {spec:?}");
                let l = build(&spec, 16, &Evictions::default());
                assert!(l.check(1, Nanos::from_secs(1)).is_admitted(), "{spec:?}");
            }
        }
    }
}
