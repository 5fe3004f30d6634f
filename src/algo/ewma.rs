//! Peak-EWMA latency: one backend's response-time estimate, lock-free.
//!
//! As in Finagle's and Linkerd's `PeakEwma`: a sample above the estimate
//! replaces it at once (a backend that slows down is avoided on the next
//! pick); a lower one pulls it down with weight `1 - exp(-elapsed/decay)`, so
//! a spike is forgotten over a few `decay`s of *time*, not of requests. Read
//! between samples, the estimate decays toward 0 the same way: a backend that
//! was slow once and so stopped being picked is tried again later instead of
//! being starved forever. Zero means "never observed" (it gets tried).
//! State is two `AtomicU64`s (the estimate as `f64` bits, the time of the last
//! sample in gateway nanoseconds); time is passed in, never read here, and
//! reads never write (the pick path stays free of contended stores).
#![deny(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};

use super::Nanos;

/// A backend's peak-EWMA latency estimate (nanoseconds).
///
/// ```
/// use api_gateway::algo::ewma::PeakEwma;
/// use api_gateway::algo::Nanos;
///
/// let decay = Nanos::from_secs(10);
/// let e = PeakEwma::new();
/// assert_eq!(e.estimate(Nanos(0), decay), 0.0); // never observed
/// e.observe(Nanos::from_millis(20), Nanos::from_secs(1), decay);
/// assert_eq!(e.estimate(Nanos::from_secs(1), decay), 20e6); // the peak, at once
/// // A fast sample one decay later moves it most of the way down:
/// // 20 ms · e^-1 + 1 ms · (1 - e^-1) ≈ 7.99 ms.
/// e.observe(Nanos::from_millis(1), Nanos::from_secs(11), decay);
/// let est = e.estimate(Nanos::from_secs(11), decay);
/// assert!((est - 7.9897e6).abs() < 1e3, "{est}");
/// ```
#[derive(Debug, Default)]
pub struct PeakEwma {
    /// The estimate, `f64::to_bits` of nanoseconds (0.0 = never observed).
    bits: AtomicU64,
    /// When the estimate was last updated (gateway nanoseconds).
    at: AtomicU64,
}

impl PeakEwma {
    /// An estimate that has seen nothing (0: the backend gets tried).
    pub const fn new() -> PeakEwma {
        PeakEwma {
            bits: AtomicU64::new(0),
            at: AtomicU64::new(0),
        }
    }

    /// Folds in one round-trip time `rtt` measured at `now`: a peak replaces
    /// the estimate, anything lower moves it toward `rtt` by how long ago the
    /// last sample was, relative to `decay`.
    pub fn observe(&self, rtt: Nanos, now: Nanos, decay: Nanos) {
        let rtt = rtt.0 as f64;
        // Claim the time slot first: the elapsed time this sample weighs
        // against is the gap since whichever sample came last, even one from
        // another worker. `fetch_max` keeps `at` monotone when a worker with
        // a slightly stale `now` races a newer one (its gap then counts as 0).
        let last = self.at.fetch_max(now.0, Ordering::Relaxed);
        let elapsed = now.0.saturating_sub(last);
        // One CAS loop over the estimate, so concurrent samples from several
        // workers are all folded in (none is lost to a blind store); the
        // weight is computed once, outside the loop.
        let w = decay_weight(elapsed, decay);
        let _ = self
            .bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                // The stored value, not the read-time decayed one: after a
                // long gap `w` is near 0 and both give about `rtt`; after a
                // short one they are nearly equal.
                let est = f64::from_bits(old);
                let next = if rtt > est {
                    rtt
                } else {
                    est * w + rtt * (1.0 - w)
                };
                Some(next.to_bits())
            });
    }

    /// The estimate at `now` in nanoseconds (0.0 if never observed): the
    /// last one, decayed toward 0 by `exp(-(now - last sample)/decay)`, as if
    /// a zero sample arrived now (Finagle and tower do the same, but store
    /// it; we only compute it, so picks write nothing).
    ///
    /// The two words are read separately: a sample landing in between pairs
    /// one old word with one new, which misplaces this one read by at most
    /// the gap between two samples' decays. A balancer only ranks backends
    /// with it, so that is harmless.
    pub fn estimate(&self, now: Nanos, decay: Nanos) -> f64 {
        let est = f64::from_bits(self.bits.load(Ordering::Relaxed));
        if est == 0.0 {
            return 0.0;
        }
        let idle = now.0.saturating_sub(self.at.load(Ordering::Relaxed));
        est * decay_weight(idle, decay)
    }
}

/// The weight the old estimate keeps after `elapsed`: `exp(-elapsed/decay)`.
/// A zero `decay` (never configured: `decay_ms` is at least 100) is its
/// limit: no memory once any time has passed.
fn decay_weight(elapsed: u64, decay: Nanos) -> f64 {
    if elapsed == 0 {
        1.0
    } else if decay.0 == 0 {
        0.0
    } else {
        (-(elapsed as f64) / decay.0 as f64).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::{Clock, ManualClock};
    use std::sync::Arc;

    const DECAY: Nanos = Nanos::from_secs(10);

    fn ms(n: u64) -> Nanos {
        Nanos::from_millis(n)
    }

    #[test]
    fn unobserved_is_zero() {
        let e = PeakEwma::new();
        assert_eq!(e.estimate(Nanos::from_secs(100), DECAY), 0.0);
    }

    #[test]
    fn first_sample_and_peaks_replace_the_estimate() {
        let clock = ManualClock::new(Nanos::ZERO);
        let e = PeakEwma::new();
        clock.advance(Nanos::from_secs(1));
        e.observe(ms(5), clock.now(), DECAY);
        assert_eq!(e.estimate(clock.now(), DECAY), 5e6);
        // A higher sample a nanosecond later still jumps all the way.
        clock.advance(Nanos(1));
        e.observe(ms(40), clock.now(), DECAY);
        assert_eq!(e.estimate(clock.now(), DECAY), 40e6);
    }

    #[test]
    fn lower_samples_decay_by_elapsed_time() {
        let clock = ManualClock::new(Nanos::ZERO);
        let e = PeakEwma::new();
        clock.advance(Nanos::from_secs(1));
        e.observe(ms(20), clock.now(), DECAY);
        // Same instant: weight exp(0) = 1, the low sample changes nothing.
        e.observe(ms(1), clock.now(), DECAY);
        assert_eq!(e.estimate(clock.now(), DECAY), 20e6);
        // One decay later: 20·e^-1 + 1·(1 - e^-1) ms.
        clock.advance(Nanos::from_secs(10));
        e.observe(ms(1), clock.now(), DECAY);
        let w = (-1f64).exp();
        let want = 20e6 * w + 1e6 * (1.0 - w);
        assert_eq!(e.estimate(clock.now(), DECAY), want);
        // Half a decay after that.
        clock.advance(Nanos::from_secs(5));
        e.observe(ms(1), clock.now(), DECAY);
        let w = (-0.5f64).exp();
        assert_eq!(e.estimate(clock.now(), DECAY), want * w + 1e6 * (1.0 - w));
        // Many decays later it has all but converged on the new level.
        clock.advance(Nanos::from_secs(1000));
        e.observe(ms(1), clock.now(), DECAY);
        assert!((e.estimate(clock.now(), DECAY) - 1e6).abs() < 1e-3);
    }

    #[test]
    fn an_idle_estimate_decays_toward_zero() {
        let e = PeakEwma::new();
        e.observe(ms(30), Nanos::from_secs(1), DECAY);
        assert_eq!(e.estimate(Nanos::from_secs(1), DECAY), 30e6);
        // One and two decays of silence: e^-1 and e^-2 of it.
        let one = e.estimate(Nanos::from_secs(11), DECAY);
        assert_eq!(one, 30e6 * (-1f64).exp());
        let two = e.estimate(Nanos::from_secs(21), DECAY);
        assert_eq!(two, 30e6 * (-2f64).exp());
        // Reading wrote nothing: the same instant reads the same again.
        assert_eq!(e.estimate(Nanos::from_secs(11), DECAY), one);
        // An earlier `now` than the last sample reads the undecayed value.
        assert_eq!(e.estimate(Nanos::ZERO, DECAY), 30e6);
    }

    #[test]
    fn a_stale_now_counts_as_no_time_passed() {
        let e = PeakEwma::new();
        e.observe(ms(20), Nanos::from_secs(20), DECAY);
        // A racing worker's older `now`: weight 1, so no movement, and the
        // last-update time does not go backwards.
        e.observe(ms(1), Nanos::from_secs(10), DECAY);
        assert_eq!(e.estimate(Nanos::from_secs(20), DECAY), 20e6);
        assert_eq!(e.at.load(Ordering::Relaxed), Nanos::from_secs(20).0);
    }

    #[test]
    fn zero_decay_remembers_nothing_once_time_passes() {
        let e = PeakEwma::new();
        e.observe(ms(20), ms(1), Nanos::ZERO);
        assert_eq!(e.estimate(ms(1), Nanos::ZERO), 20e6);
        e.observe(ms(3), ms(2), Nanos::ZERO);
        assert_eq!(e.estimate(ms(2), Nanos::ZERO), 3e6);
        assert_eq!(e.estimate(ms(3), Nanos::ZERO), 0.0);
    }

    #[test]
    fn concurrent_peaks_are_not_lost() {
        // Every thread observes its own peak; the CAS loop means the highest
        // one wins whatever the interleaving.
        let e = Arc::new(PeakEwma::new());
        let handles: Vec<_> = (1..=4u64)
            .map(|t| {
                let e = e.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        e.observe(Nanos(t * 1000 + i), Nanos(1), DECAY);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(e.estimate(Nanos(1), DECAY), 4999.0);
    }
}
