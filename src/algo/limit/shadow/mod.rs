//! Shadow limiters with an accuracy meter (the sans-IO core): alongside the
//! live limiter, run other algorithms on the same traffic, count what they
//! would have done and how often they agree with the live one, and measure
//! every algorithm, the live one included, against the exact sliding log.
//!
//! Invariants:
//!
//! - a shadow never changes the live decision: [`ShadowSet::observe`] takes
//!   the live [`Decision`] by shared reference and only returns what the
//!   shadows would have done ([`ShadowVerdicts`], for a decision trace);
//! - each shadow runs its own limiter, built by [`build`] from the live spec
//!   [`translate()`]d to its algorithm, over its own bounded key table, so its
//!   counts are exactly what that algorithm would decide alone on the same
//!   sequence of `(key, now)`;
//! - memory is bounded: the shadows' tables are `max_keys` each, and the
//!   [`AccuracyMeter`] documents its own bounds;
//! - nothing reads a clock: `now` is the caller's.
//!
//! Cost: an empty set costs nothing, because there is none: [`ShadowSet::new`]
//! returns `None` when no shadow is selected, and callers hold an
//! `Option<ShadowSet>` (one branch per request when off).

use std::sync::Arc;

use api_gateway_protocol::LimitSpec;

use super::{build, Decision, RateLimiter};
use crate::algo::cells::Evictions;
use crate::algo::Nanos;

pub mod accuracy;
pub mod algorithm;
pub mod counters;
pub mod translate;

pub use accuracy::{Accuracy, AccuracyMeter, Outcome};
pub use algorithm::Algorithm;
pub use counters::{CounterSnapshot, Counters};
pub use translate::{translate, window_form};

/// Most tracks a set measures: the live algorithm plus each algorithm once.
pub const MAX_TRACKS: usize = 1 + Algorithm::ALL.len();

/// Which algorithms shadow the live one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shadows {
    /// Every algorithm but the live one.
    All,
    /// These, in this order, each once (repeats are dropped). The live
    /// algorithm may be listed: a shadow with the live spec, a control.
    Only(Vec<Algorithm>),
}

/// One shadow: its spec, its own limiter, its counters.
struct Shadow {
    spec: LimitSpec,
    limiter: Arc<dyn RateLimiter>,
    counters: Counters,
}

/// The live algorithm's shadows and the meter of all of them.
pub struct ShadowSet {
    live: LimitSpec,
    /// The live verdicts, recorded against themselves (so the live row has
    /// the same shape as a shadow's: everything agrees).
    live_counters: Counters,
    shadows: Vec<Shadow>,
    /// Track 0 is the live algorithm, track `i + 1` is `shadows[i]`.
    meter: AccuracyMeter,
}

/// One algorithm's row in a [`ShadowReport`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlgorithmReport {
    /// The API name, e.g. `"token-bucket"`.
    pub name: &'static str,
    /// Whether this is the live algorithm (the first row).
    pub live: bool,
    /// The spec it runs (the live one, or the translated one).
    pub spec: LimitSpec,
    /// Would-be outcomes and agreement with the live verdict.
    pub counters: CounterSnapshot,
    /// Worst overshoot and undershoot against the exact sliding log.
    pub accuracy: Accuracy,
}

/// What each shadow would have decided for one request, in the set's order
/// (a fixed array: observing allocates nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShadowVerdicts {
    len: usize,
    items: [Option<(Algorithm, Decision)>; MAX_TRACKS],
}

impl ShadowVerdicts {
    fn push(&mut self, algorithm: Algorithm, decision: Decision) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some((algorithm, decision));
            self.len += 1;
        }
    }

    /// Each shadow's algorithm and decision, in order.
    pub fn iter(&self) -> impl Iterator<Item = &(Algorithm, Decision)> + '_ {
        self.items[..self.len].iter().flatten()
    }

    /// How many shadows decided.
    pub fn len(&self) -> usize {
        self.len
    }

    /// No shadow decided.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Everything a [`ShadowSet`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowReport {
    /// The true limit L (the live spec in window form).
    pub limit: u64,
    /// The trailing window W.
    pub window: Nanos,
    /// Keys whose meter history was dropped for room (under-reporting).
    pub keys_replaced: u64,
    /// The live algorithm first, then each shadow in order.
    pub rows: Vec<AlgorithmReport>,
}

impl ShadowSet {
    /// Shadows of `live` (the algorithms `which` selects, each with `live`
    /// translated to it), tracking `max_keys` keys each and counting their
    /// table evictions into `evictions`. `None` when nothing is selected.
    pub fn new(
        live: &LimitSpec,
        which: &Shadows,
        max_keys: usize,
        evictions: &Evictions,
    ) -> Option<ShadowSet> {
        let live_algorithm = Algorithm::of(live);
        let mut picked: Vec<Algorithm> = Vec::with_capacity(Algorithm::ALL.len());
        match which {
            Shadows::All => {
                picked.extend(Algorithm::ALL.into_iter().filter(|&a| a != live_algorithm))
            }
            Shadows::Only(list) => {
                for &a in list {
                    if !picked.contains(&a) {
                        picked.push(a);
                    }
                }
            }
        }
        if picked.is_empty() {
            return None;
        }
        let shadows: Vec<Shadow> = picked
            .into_iter()
            .map(|a| {
                let spec = translate(live, a);
                Shadow {
                    limiter: build(&spec, max_keys, evictions),
                    spec,
                    counters: Counters::default(),
                }
            })
            .collect();
        let (limit, window_ms) = window_form(live);
        let meter = AccuracyMeter::new(
            u64::from(limit),
            Nanos::from_millis(window_ms),
            1 + shadows.len(),
            max_keys,
        );
        Some(ShadowSet {
            live: live.clone(),
            live_counters: Counters::default(),
            shadows,
            meter,
        })
    }

    /// Runs every shadow on the request of `key` at `now` whose live
    /// decision was `live`, and counts and measures them all. The live
    /// decision is only read; what each shadow would have done is returned
    /// (no allocation: callers that do not trace ignore it).
    pub fn observe(&self, key: u64, now: Nanos, live: &Decision) -> ShadowVerdicts {
        let mut outcomes = [Outcome::Reject; MAX_TRACKS];
        outcomes[0] = Outcome::of(live, now);
        self.live_counters.record(live.verdict, live.verdict);
        let mut verdicts = ShadowVerdicts::default();
        for (shadow, out) in self.shadows.iter().zip(outcomes[1..].iter_mut()) {
            let d = shadow.limiter.check(key, now);
            shadow.counters.record(live.verdict, d.verdict);
            *out = Outcome::of(&d, now);
            verdicts.push(Algorithm::of(&shadow.spec), d);
        }
        let tracks = (1 + self.shadows.len()).min(MAX_TRACKS);
        self.meter.observe(key, now, &outcomes[..tracks]);
        verdicts
    }

    /// The shadows' algorithms, in order.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        self.shadows
            .iter()
            .map(|s| Algorithm::of(&s.spec))
            .collect()
    }

    /// The meter (for its bounds and per-key state).
    pub fn meter(&self) -> &AccuracyMeter {
        &self.meter
    }

    /// Counters and accuracy of the live algorithm and of every shadow.
    pub fn report(&self) -> ShadowReport {
        let row = |track: usize, spec: &LimitSpec, counters: &Counters| AlgorithmReport {
            name: spec.name(),
            live: track == 0,
            spec: spec.clone(),
            counters: counters.snapshot(),
            // Every track exists: the meter was built with one per row.
            accuracy: self.meter.accuracy(track).unwrap_or(Accuracy {
                overshoot: 0,
                undershoot: 0,
                overshoot_ratio: 1.0,
                undershoot_ratio: 1.0,
                saturated: 0,
            }),
        };
        let mut rows = Vec::with_capacity(1 + self.shadows.len());
        rows.push(row(0, &self.live, &self.live_counters));
        for (i, s) in self.shadows.iter().enumerate() {
            rows.push(row(i + 1, &s.spec, &s.counters));
        }
        ShadowReport {
            limit: self.meter.limit(),
            window: self.meter.window(),
            keys_replaced: self.meter.replaced(),
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::limit::Verdict;

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    /// A scripted sequence over `keys` keys: bursts, pacing, idle gaps and
    /// window boundaries, whole ms, non-decreasing.
    fn script(keys: u64) -> Vec<(u64, Nanos)> {
        let mut out = Vec::new();
        let mut x = 0x1234_5678_u64;
        let mut t = 1_000;
        for round in 0..400u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            t += match round % 40 {
                0 => 5_000, // idle: buckets refill, windows expire
                _ => (x >> 33) % 300,
            };
            // 1 to 10 at one instant, up to 4 of them for one key.
            let burst = 1 + (x >> 58) % 10;
            for b in 0..burst {
                out.push(((x >> 20).wrapping_add(b / 4) % keys, ms(t)));
            }
        }
        out
    }

    /// Replays `seq` through `live` and a full shadow set; checks each
    /// shadow against its algorithm run alone on the same sequence.
    fn shadows_match_their_algorithms_alone(live_spec: &LimitSpec, seq: &[(u64, Nanos)]) {
        let ev = Evictions::default();
        let live = build(live_spec, 1_024, &ev);
        let set = ShadowSet::new(live_spec, &Shadows::All, 1_024, &ev).unwrap();
        let alone: Vec<Arc<dyn RateLimiter>> = set
            .report()
            .rows
            .iter()
            .map(|r| build(&r.spec, 1_024, &Evictions::default()))
            .collect();
        let mut expected = vec![(0u64, 0u64); alone.len()];
        for &(key, now) in seq {
            let d = live.check(key, now);
            let verdicts = set.observe(key, now, &d);
            assert_eq!(verdicts.len(), alone.len() - 1);
            // Row 0 rebuilds the live spec: it must decide as the live one.
            for (i, (l, e)) in alone.iter().zip(expected.iter_mut()).enumerate() {
                let own = l.check(key, now);
                if i > 0 {
                    // What observe returned is what the algorithm alone did.
                    let (_, shadow) = verdicts.iter().nth(i - 1).unwrap();
                    assert_eq!(shadow.verdict, own.verdict);
                }
                if own.is_admitted() {
                    e.0 += 1;
                } else {
                    e.1 += 1;
                }
            }
        }
        let report = set.report();
        assert_eq!(report.rows.len(), 5);
        for (row, &(allow, reject)) in report.rows.iter().zip(&expected) {
            let c = row.counters;
            assert_eq!(
                (c.would_allow, c.would_reject),
                (allow, reject),
                "{} under live {live_spec:?}",
                row.name
            );
            assert_eq!(c.requests(), seq.len() as u64);
            assert_eq!(
                c.agreed() + c.live_only_reject + c.shadow_only_reject,
                seq.len() as u64
            );
        }
        assert!(
            expected.iter().all(|&(a, r)| a > 0 && r > 0),
            "{expected:?}"
        );
        // The live row agrees with itself.
        let c = report.rows[0].counters;
        assert_eq!((c.live_only_reject, c.shadow_only_reject), (0, 0));
    }

    #[test]
    fn shadow_counts_equal_the_algorithm_alone_for_one_key() {
        let seq = script(1);
        for live in [
            LimitSpec::SlidingLog {
                limit: 5,
                window_ms: 1_000,
            },
            LimitSpec::TokenBucket {
                capacity: 4,
                refill_per_sec: 2.0,
            },
        ] {
            shadows_match_their_algorithms_alone(&live, &seq);
        }
    }

    #[test]
    fn shadow_counts_equal_the_algorithm_alone_for_several_keys() {
        let seq = script(7);
        for live in [
            LimitSpec::FixedWindow {
                limit: 3,
                window_ms: 500,
            },
            LimitSpec::LeakyBucket {
                capacity: 3,
                leak_per_sec: 4.0,
            },
        ] {
            shadows_match_their_algorithms_alone(&live, &seq);
        }
    }

    #[test]
    fn agreement_counters_match_a_hand_computed_case() {
        // Live: fixed window, 2 per aligned second. Shadow: sliding log,
        // 2 in any trailing second.
        let live_spec = LimitSpec::FixedWindow {
            limit: 2,
            window_ms: 1_000,
        };
        let set = ShadowSet::new(
            &live_spec,
            &Shadows::Only(vec![Algorithm::SlidingLog, Algorithm::SlidingLog]),
            64,
            &Evictions::default(),
        )
        .unwrap();
        assert_eq!(set.algorithms(), [Algorithm::SlidingLog], "repeats dropped");
        let live = build(&live_spec, 64, &Evictions::default());
        //            time   fixed window          sliding log
        // 900 ms  x2        allow (1st, 2nd)      allow (1st, 2nd)
        // 1000 ms x2        allow (new window)    reject: (0, 1000] has 2
        // 1000 ms x1        reject                reject
        // 1900 ms x1        reject: 2 this window allow: 900s expired
        // 2000 ms x1        allow (new window)    allow: 1 in (1000, 2000]
        let times = [900, 900, 1_000, 1_000, 1_000, 1_900, 2_000];
        let mut live_verdicts = Vec::new();
        for t in times {
            let d = live.check(1, ms(t));
            live_verdicts.push(d.verdict == Verdict::Allow);
            set.observe(1, ms(t), &d);
        }
        assert_eq!(live_verdicts, [true, true, true, true, false, false, true]);
        let r = set.report();
        assert_eq!((r.limit, r.window), (2, ms(1_000)));
        let shadow = &r.rows[1];
        assert_eq!(shadow.name, "sliding-log");
        assert_eq!(
            shadow.counters,
            CounterSnapshot {
                would_allow: 4,
                would_reject: 3,
                both_allow: 3,
                both_reject: 1,
                live_only_reject: 1,
                shadow_only_reject: 2,
            }
        );
        // The meter measures the live algorithm too: 4 admitted in
        // (0, 1000] is 2 over (2.0x); the sliding log never strays.
        let (l, s) = (r.rows[0].accuracy, shadow.accuracy);
        assert!(r.rows[0].live && !shadow.live);
        assert_eq!((l.overshoot, l.undershoot, l.overshoot_ratio), (2, 0, 2.0));
        assert_eq!((s.overshoot, s.undershoot), (0, 0));
    }

    #[test]
    fn selection_all_is_every_other_algorithm_and_empty_is_none() {
        let live = LimitSpec::default_for("token-bucket").unwrap();
        let ev = Evictions::default();
        assert!(ShadowSet::new(&live, &Shadows::Only(vec![]), 64, &ev).is_none());
        let all = ShadowSet::new(&live, &Shadows::All, 64, &ev).unwrap();
        assert_eq!(
            all.algorithms(),
            [
                Algorithm::FixedWindow,
                Algorithm::SlidingLog,
                Algorithm::SlidingCounter,
                Algorithm::LeakyBucket
            ]
        );
        let r = all.report();
        let names: Vec<&str> = r.rows.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "token-bucket",
                "fixed-window",
                "sliding-log",
                "sliding-counter",
                "leaky-bucket"
            ]
        );
        // 20 at 2/s -> 20 per 10 s.
        assert_eq!(
            r.rows[2].spec,
            LimitSpec::SlidingLog {
                limit: 20,
                window_ms: 10_000
            }
        );
        assert_eq!((r.limit, r.window), (20, Nanos::from_secs(10)));
        // The live algorithm may be listed: a control with the live spec.
        let ctl =
            ShadowSet::new(&live, &Shadows::Only(vec![Algorithm::TokenBucket]), 64, &ev).unwrap();
        assert_eq!(ctl.report().rows[1].spec, live);
    }

    #[test]
    fn meter_keys_stay_bounded_through_the_set() {
        let live_spec = LimitSpec::SlidingLog {
            limit: 3,
            window_ms: 1_000,
        };
        let ev = Evictions::default();
        let live = build(&live_spec, 64, &ev);
        let set = ShadowSet::new(&live_spec, &Shadows::All, 64, &ev).unwrap();
        for k in 0..100_000u64 {
            let now = Nanos(k * 1_000);
            set.observe(k, now, &live.check(k, now));
        }
        assert!(set.meter().keys_held() <= 64);
        let r = set.report();
        assert_eq!(r.keys_replaced, 100_000 - set.meter().key_capacity() as u64);
        for row in &r.rows {
            assert_eq!(row.counters.would_allow, 100_000, "{}", row.name);
        }
    }
}
