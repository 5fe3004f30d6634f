//! `trace.sample_per_million`: a cheap per-worker pseudo-random draw
//! (splitmix64) deciding which requests are traced without asking.
//!
//! Not cryptographic and not meant to be: it only spreads samples evenly.
//! Each worker has its own state (no sharing, no atomics), seeded
//! differently per worker so workers do not sample in lockstep.

use crate::algo::balance::{mix64, GOLDEN};

/// One worker's sampler state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampler {
    state: u64,
}

/// The largest `sample_per_million`: every request.
pub const PER_MILLION: u32 = 1_000_000;

impl Sampler {
    /// A sampler seeded with `seed`.
    pub fn new(seed: u64) -> Sampler {
        Sampler { state: seed }
    }

    /// The next 64 random bits (splitmix64, the balancers' mixer).
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Whether this request is one of `per_million` in a million: never
    /// for 0 (and no draw, so an unsampled gateway pays one branch),
    /// always for a million or more.
    #[inline]
    pub fn hit(&mut self, per_million: u32) -> bool {
        match per_million {
            0 => false,
            n if n >= PER_MILLION => true,
            n => self.next() % u64::from(PER_MILLION) < u64::from(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_about_right_and_the_ends_are_exact() {
        let mut s = Sampler::new(42);
        assert!((0..10_000).all(|_| !s.hit(0)));
        assert!((0..10_000).all(|_| s.hit(PER_MILLION)));
        let hits = (0..100_000).filter(|_| s.hit(100_000)).count();
        assert!((9_000..11_000).contains(&hits), "10% of 100k: {hits}");
    }

    #[test]
    fn differently_seeded_workers_draw_differently() {
        let (mut a, mut b) = (Sampler::new(1), Sampler::new(2));
        let da: Vec<bool> = (0..64).map(|_| a.hit(500_000)).collect();
        let db: Vec<bool> = (0..64).map(|_| b.hit(500_000)).collect();
        assert_ne!(da, db);
    }
}
