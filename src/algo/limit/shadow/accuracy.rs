//! The accuracy meter: how far each algorithm strays from the exact sliding
//! log, per key, as the sliding log itself defines it.
//!
//! Definition. The true limit is L requests in any trailing window W, where
//! (L, W) is the live spec in window form ([`super::translate::window_form`]:
//! the live limit translated to sliding-log terms, before the sliding log's
//! own cap of 1024 on L). For one algorithm (a *track*) and one key, the
//! meter keeps the times of the requests that algorithm admitted (an
//! admission with `Delay(d)` at `now + d`, when it is actually forwarded):
//!
//! - on an admission at `t`, **overshoot** = (admitted in `(t - W, t]`, this
//!   one included) - L, if positive;
//! - on a rejection at `t`, **undershoot** = L - (the most admitted in any
//!   window `(e - W, e]` that contains `t`), if positive. For an algorithm
//!   that never delays, that window is the trailing one, `(t - W, t]`. For a
//!   shaper (a leaky bucket), admissions it has already committed to
//!   forward later count too: it rejects because its queue is full, and
//!   those queued requests will fill the window that `t` opens; counting
//!   only the past would call every queue-full rejection an early one.
//!
//! Per track the meter reports the worst of each over all keys, and each as
//! a multiple of L: `overshoot_ratio = (L + overshoot) / L` (a fixed window
//! at a boundary admits up to 2.0x the limit: overshoot L) and
//! `undershoot_ratio = (L - undershoot) / L` (0.5: a request was rejected
//! with only half the limit used). The sliding log itself reports 0 and 0
//! (up to its rounding of stamps UP to whole microseconds, which can only
//! reject a sub-microsecond early: an undershoot of at most 1, never seen
//! at whole-µs times).
//!
//! Bounded memory, each bound erring towards under-reporting (the meter
//! may miss a stray, never invent one):
//!
//! - at most `max_keys` keys (fewer if the stamps would exceed
//!   [`MAX_METER_BYTES`]), in [`STRIPES`] fixed-size tables; a new key in a
//!   full table replaces its least recently seen key, whose history is
//!   dropped (its next requests start from nothing);
//! - per key and track at most `min(2L + 1, MAX_STAMPS)` stamps: no local
//!   algorithm with a translated spec admits more than 2L in a window, so
//!   2L + 1 sees every overshoot they make exactly. Beyond it, the oldest
//!   stamp is dropped and the event counted as `saturated`;
//! - stamps at or before `now - W` are dropped on every event: they count in
//!   no window ending at `now` or later. Events of one key are assumed to
//!   come in non-decreasing `now` (one event loop per request); a `now`
//!   slightly behind a racing thread's only forgets stamps it could count.
//!
//! Thread safety: the tables are striped over [`STRIPES`] mutexes by key
//! hash (no global lock); the worst values are atomics updated with
//! `fetch_max`. A poisoned stripe is used as is (the state is plain stamps,
//! valid after any interruption), so the meter never panics.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::super::{Decision, Verdict};
use super::MAX_TRACKS;
use crate::algo::Nanos;

/// Number of independently locked tables.
pub const STRIPES: usize = 16;

/// Most stamps kept per key and track, whatever L.
pub const MAX_STAMPS: usize = 4096;

/// Cap on the stamps' memory (`keys x tracks x stamps x 8` bytes, with each
/// key's stamp buffers counted at their power-of-two allocation size).
pub const MAX_METER_BYTES: usize = 64 << 20;

/// What one track did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded at this time (`now`, or `now + d` for `Delay(d)`).
    Admit(Nanos),
    /// Rejected.
    Reject,
}

impl Outcome {
    /// The outcome of `decision` taken at `now`.
    pub fn of(decision: &Decision, now: Nanos) -> Outcome {
        match decision.verdict {
            Verdict::Allow => Outcome::Admit(now),
            Verdict::Delay(d) => Outcome::Admit(now.saturating_add(d)),
            Verdict::Deny => Outcome::Reject,
        }
    }
}

/// The worst strays of one track, over all keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Accuracy {
    /// Most admitted beyond L in a trailing window.
    pub overshoot: u64,
    /// Most of L left unused at a rejection.
    pub undershoot: u64,
    /// `(L + overshoot) / L`: the most admitted in a window, in limits.
    pub overshoot_ratio: f64,
    /// `(L - undershoot) / L`: the least admitted in a window at a
    /// rejection, in limits (1.0 when no rejection came early).
    pub undershoot_ratio: f64,
    /// Admissions that found the key's stamp buffer full (oldest dropped).
    pub saturated: u64,
}

#[derive(Debug, Default)]
struct Worst {
    over: AtomicU64,
    under: AtomicU64,
    saturated: AtomicU64,
}

/// One key's admitted stamps, one sorted buffer per track.
#[derive(Debug)]
struct Entry {
    /// The stripe's tick at this key's last event (for replacement).
    seen: u64,
    tracks: Box<[VecDeque<u64>]>,
}

#[derive(Debug, Default)]
struct Stripe {
    /// Events so far in this stripe: the recency clock.
    tick: u64,
    keys: HashMap<u64, Entry>,
    /// Every held key once, with the tick it was queued at, oldest first.
    /// A key seen since it was queued goes to the back when it reaches the
    /// front, so the front, once its tick is its last `seen`, is the least
    /// recently seen key: exact LRU at amortised O(1) per replacement
    /// (a scan of the table would cost O(keys) per new key under churn).
    order: VecDeque<(u64, u64)>,
}

impl Stripe {
    /// Removes the least recently seen key and returns its entry.
    fn evict_oldest(&mut self) -> Option<Entry> {
        // Each pass either evicts or moves a key seen since it was queued,
        // which then carries its latest tick: at most `len` passes.
        for _ in 0..=self.order.len() {
            let (key, queued) = self.order.pop_front()?;
            match self.keys.get(&key).map(|e| e.seen) {
                Some(seen) if seen == queued => return self.keys.remove(&key),
                Some(seen) => self.order.push_back((key, seen)),
                None => {}
            }
        }
        None
    }
}

/// Overshoot and undershoot of several tracks against the exact sliding log.
#[derive(Debug)]
pub struct AccuracyMeter {
    limit: u64,
    window: u64,
    tracks: usize,
    cap: usize,
    per_stripe: usize,
    stripes: Box<[Mutex<Stripe>]>,
    worst: Box<[Worst]>,
    replaced: AtomicU64,
}

impl AccuracyMeter {
    /// A meter for the true limit `limit` per trailing `window` (raised to
    /// at least 1 and 1 ns), measuring `tracks` algorithms (1 ..=
    /// [`MAX_TRACKS`]: each algorithm once plus the live one) over at most
    /// `max_keys` keys (see the module docs for the bounds).
    pub fn new(limit: u64, window: Nanos, tracks: usize, max_keys: usize) -> Self {
        let limit = limit.max(1);
        let tracks = tracks.clamp(1, MAX_TRACKS);
        let cap = usize::try_from(limit.saturating_mul(2).saturating_add(1))
            .unwrap_or(MAX_STAMPS)
            .min(MAX_STAMPS);
        let key_bytes = tracks
            .saturating_mul(cap.next_power_of_two())
            .saturating_mul(8);
        let keys = max_keys.clamp(1, (MAX_METER_BYTES / key_bytes).max(1));
        let stripes = keys.min(STRIPES);
        AccuracyMeter {
            limit,
            window: window.0.max(1),
            tracks,
            cap,
            per_stripe: keys / stripes,
            stripes: (0..stripes).map(|_| Mutex::default()).collect(),
            worst: (0..tracks).map(|_| Worst::default()).collect(),
            replaced: AtomicU64::new(0),
        }
    }

    /// The true limit L.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// The trailing window W.
    pub fn window(&self) -> Nanos {
        Nanos(self.window)
    }

    /// Stamps kept per key and track: `min(2L + 1, MAX_STAMPS)`.
    pub fn stamp_cap(&self) -> usize {
        self.cap
    }

    /// Most keys held at once (at most the `max_keys` asked for).
    pub fn key_capacity(&self) -> usize {
        self.per_stripe * self.stripes.len()
    }

    /// Keys held now.
    pub fn keys_held(&self) -> usize {
        self.stripes.iter().map(|s| lock(s).keys.len()).sum()
    }

    /// Keys whose history was dropped to make room for another.
    pub fn replaced(&self) -> u64 {
        self.replaced.load(Ordering::Relaxed)
    }

    /// Stamps held for `key` on `track` (0 if not held).
    pub fn stamps_held(&self, key: u64, track: usize) -> usize {
        lock(self.stripe(key))
            .keys
            .get(&key)
            .and_then(|e| e.tracks.get(track))
            .map_or(0, VecDeque::len)
    }

    /// Records one request of `key` at `now`: `outcomes[i]` is what track
    /// `i` did with it (extra outcomes are ignored; missing tracks skipped).
    pub fn observe(&self, key: u64, now: Nanos, outcomes: &[Outcome]) {
        let mut stripe = lock(self.stripe(key));
        stripe.tick = stripe.tick.wrapping_add(1);
        let tick = stripe.tick;
        if !stripe.keys.contains_key(&key) {
            let mut reused = None;
            if stripe.keys.len() >= self.per_stripe {
                reused = stripe.evict_oldest();
                if reused.is_some() {
                    self.replaced.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A replaced key's buffers serve the new one: churn through a
            // full table allocates nothing.
            let tracks = match reused {
                Some(mut old) => {
                    old.tracks.iter_mut().for_each(VecDeque::clear);
                    old.tracks
                }
                None => (0..self.tracks).map(|_| VecDeque::new()).collect(),
            };
            stripe.keys.insert(key, Entry { seen: tick, tracks });
            stripe.order.push_back((key, tick));
        }
        let Some(entry) = stripe.keys.get_mut(&key) else {
            return;
        };
        entry.seen = tick;
        for ((outcome, stamps), worst) in outcomes
            .iter()
            .zip(entry.tracks.iter_mut())
            .zip(self.worst.iter())
        {
            self.step(stamps, now.0, *outcome, worst);
        }
    }

    /// The worst strays of `track` so far (`None` past the last track).
    pub fn accuracy(&self, track: usize) -> Option<Accuracy> {
        let w = self.worst.get(track)?;
        let over = w.over.load(Ordering::Relaxed);
        let under = w.under.load(Ordering::Relaxed).min(self.limit);
        let l = self.limit as f64;
        Some(Accuracy {
            overshoot: over,
            undershoot: under,
            overshoot_ratio: (l + over as f64) / l,
            undershoot_ratio: (l - under as f64) / l,
            saturated: w.saturated.load(Ordering::Relaxed),
        })
    }

    /// One track's event on one key's sorted stamps.
    fn step(&self, stamps: &mut VecDeque<u64>, now: u64, outcome: Outcome, worst: &Worst) {
        let w = self.window;
        // `s + W <= t` is "s not in (t - W, t]" without going below zero.
        while stamps.front().is_some_and(|&s| s.saturating_add(w) <= now) {
            stamps.pop_front();
        }
        let in_window = |stamps: &VecDeque<u64>, t: u64| {
            let lo = stamps.partition_point(|&s| s.saturating_add(w) <= t);
            let hi = stamps.partition_point(|&s| s <= t);
            hi.saturating_sub(lo) as u64
        };
        match outcome {
            Outcome::Admit(at) => {
                if stamps.len() >= self.cap {
                    stamps.pop_front();
                    worst.saturated.fetch_add(1, Ordering::Relaxed);
                }
                // Sorted insert; at the back unless a delayed admission of
                // this track is still in the future.
                let pos = stamps.partition_point(|&s| s <= at.0);
                stamps.insert(pos, at.0);
                let over = in_window(stamps, at.0).saturating_sub(self.limit);
                worst.over.fetch_max(over, Ordering::Relaxed);
            }
            Outcome::Reject => {
                // Windows ending at `now` or at a committed admission less
                // than W ahead: every window containing `now` holds no more
                // than the one of these that ends at its last stamp.
                // Latest first, and done at the first full one: a shaper
                // with a full queue is judged on one window, not on every
                // queued request (its usual case: rejection after rejection).
                let ahead = stamps.partition_point(|&s| s <= now);
                let end = stamps.partition_point(|&s| s < now.saturating_add(w));
                let mut most = in_window(stamps, now);
                for &e in stamps.range(ahead..end.max(ahead)).rev() {
                    if most >= self.limit {
                        break;
                    }
                    most = most.max(in_window(stamps, e));
                }
                let under = self.limit.saturating_sub(most);
                worst.under.fetch_max(under, Ordering::Relaxed);
            }
        }
    }

    fn stripe(&self, key: u64) -> &Mutex<Stripe> {
        // High bits of a Fibonacci multiply: sequential keys spread out.
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        &self.stripes[(h % self.stripes.len() as u64) as usize]
    }
}

/// The stripe's table, poisoned or not (its stamps are valid either way).
fn lock(m: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use api_gateway_protocol::LimitSpec;

    use super::*;
    use crate::algo::cells::Evictions;
    use crate::algo::limit::build;

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    /// Runs `spec` alone over `times` (one key) into a one-track meter for
    /// `limit` per `window`; returns the meter and how many were admitted.
    fn measure(spec: &LimitSpec, limit: u64, window: Nanos, times: &[Nanos]) -> (Accuracy, usize) {
        let l = build(spec, 64, &Evictions::default());
        let m = AccuracyMeter::new(limit, window, 1, 64);
        let mut admitted = 0;
        for &t in times {
            let d = l.check(7, t);
            admitted += usize::from(d.is_admitted());
            m.observe(7, t, &[Outcome::of(&d, t)]);
        }
        (m.accuracy(0).unwrap(), admitted)
    }

    fn burst(t: Nanos, n: usize) -> Vec<Nanos> {
        vec![t; n]
    }

    #[test]
    fn fixed_window_at_a_boundary_overshoots_by_the_limit() {
        // 5 per aligned second: 5 at the end of [1 s, 2 s), 5 at the start
        // of [2 s, 3 s), all within 1 ms; then one more, rejected.
        let spec = LimitSpec::FixedWindow {
            limit: 5,
            window_ms: 1_000,
        };
        let mut times = burst(ms(1_999), 5);
        times.extend(burst(ms(2_000), 6));
        let (acc, admitted) = measure(&spec, 5, ms(1_000), &times);
        assert_eq!(admitted, 10);
        assert_eq!((acc.overshoot, acc.undershoot), (5, 0));
        assert_eq!(acc.overshoot_ratio, 2.0);
        assert_eq!(acc.undershoot_ratio, 1.0);
        assert_eq!(acc.saturated, 0);
    }

    /// Deterministic pseudo-random times (whole ms, non-decreasing) with
    /// bursts of up to 8 at one instant.
    fn scattered(seed: u64, n: usize) -> Vec<Nanos> {
        let mut x = seed;
        let mut t = 1_000;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            t += (x >> 33) % 400;
            for _ in 0..=(x >> 60) % 8 {
                out.push(ms(t));
            }
        }
        out
    }

    #[test]
    fn sliding_log_never_strays() {
        let spec = LimitSpec::SlidingLog {
            limit: 5,
            window_ms: 1_000,
        };
        let mut boundary = burst(ms(1_999), 5);
        boundary.extend(burst(ms(2_000), 5));
        boundary.extend(burst(ms(2_999), 5));
        boundary.extend(burst(ms(3_000), 5));
        let paced: Vec<Nanos> = (0..100).map(|i| ms(1_000 + 100 * i)).collect();
        let mut paced_then_burst = paced.clone();
        paced_then_burst.extend(burst(ms(11_000), 10));
        let sequences = [
            burst(ms(1_000), 20),
            boundary,
            paced,
            paced_then_burst,
            scattered(1, 2_000),
            scattered(42, 2_000),
        ];
        for (i, times) in sequences.iter().enumerate() {
            let (acc, admitted) = measure(&spec, 5, ms(1_000), times);
            assert_eq!((acc.overshoot, acc.undershoot), (0, 0), "sequence {i}");
            assert!(admitted > 0, "sequence {i}");
            assert!(admitted < times.len(), "sequence {i} has rejections");
        }
    }

    #[test]
    fn token_bucket_bursts_beyond_the_window_after_pacing() {
        // Live: 10 per 10 s; as a token bucket, C = 10 at r = 1/s.
        let (c, period) = (10u64, Nanos::from_secs(1));
        let spec = LimitSpec::TokenBucket {
            capacity: 10,
            refill_per_sec: 1.0,
        };
        let window = Nanos::from_secs(10);
        let t0 = Nanos::from_secs(100); // idle until then: a full bucket
                                        // C requests at the refill rate (t0, t0 + 1 s, ..., t0 + 9 s), then
                                        // one period later a burst of C + 1.
        let paced: Vec<Nanos> = (0..c).map(|i| Nanos(t0.0 + i * period.0)).collect();
        let burst_at = Nanos(t0.0 + c * period.0);
        let mut times = paced.clone();
        times.extend(burst(burst_at, c as usize + 1));
        let (acc, admitted) = measure(&spec, c, window, &times);
        // Pacing keeps the bucket full after each refill, so the burst gets
        // all C tokens; the (C + 1)th is rejected.
        assert_eq!(admitted, 2 * c as usize);
        // From the definition: at the last burst admission, (t - W, t] =
        // (t0, t0 + 10 s] holds the paced ones after t0 (C - 1) and the C
        // of the burst; overshoot = that - L.
        let in_window = paced
            .iter()
            .filter(|&&p| p.0 + window.0 > burst_at.0)
            .count() as u64
            + c;
        assert_eq!(in_window, 19);
        assert_eq!(acc.overshoot, in_window - c);
        assert_eq!(acc.overshoot, 9);
        assert_eq!(acc.overshoot_ratio, 1.9);
        // The rejected one came with 19 in the window: no undershoot.
        assert_eq!(acc.undershoot, 0);
    }

    #[test]
    fn delayed_admissions_count_when_released() {
        // L = 2 per 1 s; three admitted at 0 with delays 0, 0.5 s, 1 s are
        // released at 0, 0.5 s, 1 s: never 3 in a window (0.5 s, 1 s]...
        let m = AccuracyMeter::new(2, ms(1_000), 1, 8);
        let d = |delay| Decision::admit(delay, 2, 0, Nanos::ZERO);
        for delay in [Nanos::ZERO, ms(500), ms(1_000)] {
            m.observe(1, Nanos::ZERO, &[Outcome::of(&d(delay), Nanos::ZERO)]);
        }
        assert_eq!(m.accuracy(0).unwrap().overshoot, 0);
        // ... whereas three released at once would be 1 over.
        for _ in 0..3 {
            m.observe(2, Nanos::ZERO, &[Outcome::of(&d(Nanos::ZERO), Nanos::ZERO)]);
        }
        assert_eq!(m.accuracy(0).unwrap().overshoot, 1);
        // A rejection at 0 of key 1: 1 released so far, but the window
        // (-0.5 s, 0.5 s], which contains 0, holds 2 committed: not early.
        m.observe(1, Nanos::ZERO, &[Outcome::Reject]);
        assert_eq!(m.accuracy(0).unwrap().undershoot, 0);
        // Key 3: one admitted, nothing committed ahead: 1 of 2 left unused.
        m.observe(3, Nanos::ZERO, &[Outcome::of(&d(Nanos::ZERO), Nanos::ZERO)]);
        m.observe(3, ms(10), &[Outcome::Reject]);
        let acc = m.accuracy(0).unwrap();
        assert_eq!((acc.undershoot, acc.undershoot_ratio), (1, 0.5));
    }

    #[test]
    fn a_full_stripe_replaces_its_least_recently_seen_key() {
        // 32 keys: 16 stripes of 2.
        let m = AccuracyMeter::new(5, ms(1_000), 1, 32);
        let stripe_of = |k: u64| m.stripe(k) as *const _;
        let mut same = (1..10_000u64).filter(|&k| stripe_of(k) == stripe_of(1));
        let (a, b, c, d) = (
            1,
            same.nth(1).unwrap(),
            same.next().unwrap(),
            same.next().unwrap(),
        );
        let admit = |k: u64, t: u64| m.observe(k, ms(t), &[Outcome::Admit(ms(t))]);
        admit(a, 1);
        admit(b, 2);
        admit(a, 3); // a is now more recent than b
        admit(c, 4); // full: b goes
        assert_eq!((m.stamps_held(a, 0), m.stamps_held(b, 0)), (2, 0));
        assert_eq!(m.stamps_held(c, 0), 1);
        admit(c, 5);
        admit(d, 6); // a (last seen at 3) goes, c stays
        assert_eq!((m.stamps_held(a, 0), m.stamps_held(c, 0)), (0, 2));
        // d took a replaced key's buffers, empty: only its own stamp.
        assert_eq!(m.stamps_held(d, 0), 1);
        assert_eq!(m.replaced(), 2);
        assert_eq!(m.keys_held(), 2);
    }

    #[test]
    fn a_leaky_bucket_rejecting_on_a_full_queue_is_not_early() {
        // Capacity 20 leaking 2/s (20 per 10 s): a burst of 50 at one
        // instant forwards 1 now and queues 20; the other 29 are rejected
        // while the queue holds what fills the next window.
        let spec = api_gateway_protocol::LimitSpec::LeakyBucket {
            capacity: 20,
            leak_per_sec: 2.0,
        };
        let l = crate::algo::limit::build(&spec, 16, &crate::algo::cells::Evictions::default());
        let m = AccuracyMeter::new(20, ms(10_000), 1, 16);
        let now = ms(1_000);
        let mut rejected = 0;
        for _ in 0..50 {
            let d = l.check(1, now);
            rejected += u64::from(!d.is_admitted());
            m.observe(1, now, &[Outcome::of(&d, now)]);
        }
        assert!(rejected > 0);
        let acc = m.accuracy(0).unwrap();
        assert_eq!((acc.overshoot, acc.undershoot), (0, 0));
    }

    #[test]
    fn tracks_are_separate_and_early_times_do_not_underflow() {
        // Times below W: the window (t - W, t] reaches before the epoch.
        let m = AccuracyMeter::new(3, Nanos::from_secs(60), 2, 8);
        for t in 0..5 {
            m.observe(9, Nanos(t), &[Outcome::Admit(Nanos(t)), Outcome::Reject]);
        }
        let (a, b) = (m.accuracy(0).unwrap(), m.accuracy(1).unwrap());
        assert_eq!((a.overshoot, a.undershoot), (2, 0));
        assert_eq!((b.overshoot, b.undershoot), (0, 3));
        assert_eq!(b.undershoot_ratio, 0.0);
        assert_eq!(m.accuracy(2), None);
        // Absurd track counts are clamped, not allocated.
        let huge = AccuracyMeter::new(3, Nanos(1), usize::MAX, usize::MAX);
        assert_eq!(huge.accuracy(MAX_TRACKS - 1).map(|a| a.overshoot), Some(0));
        assert_eq!(huge.accuracy(MAX_TRACKS), None);
        // Fewer outcomes than tracks, or more: no panic, extra ignored.
        m.observe(9, Nanos(5), &[]);
        m.observe(9, Nanos(5), &[Outcome::Reject; 5]);
    }

    #[test]
    fn key_count_is_bounded_under_churn() {
        let m = AccuracyMeter::new(5, ms(1_000), 3, 64);
        assert!(m.key_capacity() <= 64);
        for k in 0..100_000u64 {
            let t = Nanos(k * 1_000);
            m.observe(
                k,
                t,
                &[Outcome::Admit(t), Outcome::Reject, Outcome::Admit(t)],
            );
        }
        assert!(m.keys_held() <= 64, "{}", m.keys_held());
        assert_eq!(m.keys_held(), m.key_capacity());
        assert_eq!(m.replaced(), 100_000 - m.key_capacity() as u64);
        // Tiny tables too.
        let one = AccuracyMeter::new(1, ms(1), 1, 0);
        for k in 0..1_000 {
            one.observe(k, Nanos(k), &[Outcome::Reject]);
        }
        assert_eq!((one.key_capacity(), one.keys_held()), (1, 1));
    }

    #[test]
    fn the_least_recently_seen_key_is_replaced() {
        // 32 keys over 16 stripes: 2 per stripe. Three keys of one stripe.
        let m = AccuracyMeter::new(5, ms(1_000), 1, 32);
        let s0 = m.stripe(0) as *const _;
        let same: Vec<u64> = (1..10_000u64)
            .filter(|&k| std::ptr::eq(m.stripe(k), s0))
            .take(3)
            .collect();
        let (a, b, c) = (same[0], same[1], same[2]);
        let admit = [Outcome::Admit(ms(1))];
        for k in [a, b, a, c] {
            m.observe(k, ms(1), &admit);
        }
        assert_eq!(m.stamps_held(a, 0), 2);
        assert_eq!(m.stamps_held(b, 0), 0, "b was seen least recently");
        assert_eq!(m.stamps_held(c, 0), 1);
        assert_eq!(m.replaced(), 1);
    }

    #[test]
    fn stamps_per_key_are_capped() {
        // L = 5: cap 2L + 1 = 11; 10x the limit in one instant.
        let m = AccuracyMeter::new(5, ms(1_000), 1, 8);
        assert_eq!(m.stamp_cap(), 11);
        for _ in 0..50 {
            m.observe(3, ms(5), &[Outcome::Admit(ms(5))]);
        }
        assert_eq!(m.stamps_held(3, 0), 11);
        let acc = m.accuracy(0).unwrap();
        assert_eq!(
            (acc.overshoot, acc.saturated),
            (6, 39),
            "seen up to the cap"
        );
        // Large L: cap MAX_STAMPS.
        let big = AccuracyMeter::new(5_000, ms(1_000), 1, 8);
        assert_eq!(big.stamp_cap(), MAX_STAMPS);
        for _ in 0..50_000 {
            big.observe(3, ms(5), &[Outcome::Admit(ms(5))]);
        }
        assert_eq!(big.stamps_held(3, 0), MAX_STAMPS);
        // Large L and many tracks: fewer keys, within the byte budget.
        let wide = AccuracyMeter::new(u64::MAX, ms(1), 6, 1 << 20);
        assert!(wide.key_capacity() * 6 * MAX_STAMPS * 8 <= MAX_METER_BYTES);
        // Old stamps leave: after the window only the new one is held.
        m.observe(3, ms(1_005), &[Outcome::Admit(ms(1_005))]);
        assert_eq!(m.stamps_held(3, 0), 1);
    }

    #[test]
    fn several_threads_share_the_meter() {
        let m = Arc::new(AccuracyMeter::new(5, ms(1_000), 1, 4_096));
        let handles: Vec<_> = (0..8u64)
            .map(|th| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..2_000u64 {
                        let t = ms(i);
                        // Each thread its own 100 keys, each admitted once
                        // per 100 ms: 10 per window, 5 over L = 5.
                        m.observe(th * 1_000_000 + i % 100, t, &[Outcome::Admit(t)]);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(m.keys_held(), 800);
        assert_eq!(m.accuracy(0).unwrap().overshoot, 5);
    }
}
