//! The retry budget of one upstream (Envoy's retry budgets, Finagle's
//! `RetryBudget`): over the last 10 s, retries may be at most
//! `ratio × requests + min_per_sec × 10`, so retries cannot multiply the
//! load on an upstream that is already failing.
//!
//! Ten one-second buckets of atomic counters, shared by every worker; no
//! lock. A bucket whose second has passed is reset by the first caller of
//! a new second (a race there can lose a few counts from that second's
//! start: the budget is a bound on a storm, not an exact ledger).

use std::sync::atomic::{AtomicU64, Ordering};

use super::Nanos;

const BUCKETS: usize = 10;
/// The window, in seconds.
pub const WINDOW_SECS: u64 = BUCKETS as u64;

#[derive(Debug, Default)]
struct Bucket {
    /// The second it counts (+1, so 0 means never used).
    second: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

/// Requests and retries of the last [`WINDOW_SECS`] seconds.
#[derive(Debug, Default)]
pub struct RetryBudget {
    buckets: [Bucket; BUCKETS],
}

impl RetryBudget {
    /// The bucket of `now`, reset if it still holds an older second.
    fn bucket(&self, now: Nanos) -> &Bucket {
        let sec = now.0 / 1_000_000_000 + 1;
        let b = &self.buckets[(sec % WINDOW_SECS) as usize];
        let seen = b.second.load(Ordering::Acquire);
        if seen != sec
            && b.second
                .compare_exchange(seen, sec, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            b.requests.store(0, Ordering::Relaxed);
            b.retries.store(0, Ordering::Relaxed);
        }
        b
    }

    /// (requests, retries) over the window ending at `now`.
    pub fn totals(&self, now: Nanos) -> (u64, u64) {
        let sec = now.0 / 1_000_000_000 + 1;
        let live = |b: &&Bucket| {
            let s = b.second.load(Ordering::Acquire);
            s != 0 && s + WINDOW_SECS > sec && s <= sec
        };
        self.buckets.iter().filter(live).fold((0, 0), |(q, r), b| {
            (
                q + b.requests.load(Ordering::Relaxed),
                r + b.retries.load(Ordering::Relaxed),
            )
        })
    }

    /// Counts a request sent to the upstream (its first try).
    pub fn note_request(&self, now: Nanos) {
        self.bucket(now).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one retry if the budget allows it at `now`.
    pub fn try_retry(&self, now: Nanos, ratio: f64, min_per_sec: u32) -> bool {
        let (requests, retries) = self.totals(now);
        let allowed = ratio * requests as f64 + f64::from(min_per_sec) * WINDOW_SECS as f64;
        if (retries + 1) as f64 > allowed {
            return false;
        }
        self.bucket(now).retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn the_floor_allows_min_per_sec_times_ten_without_traffic() {
        let b = RetryBudget::default();
        let now = Nanos(5 * S);
        let granted = (0..100).filter(|_| b.try_retry(now, 0.2, 2)).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn the_ratio_follows_requests_and_old_seconds_drop_out() {
        let b = RetryBudget::default();
        for _ in 0..100 {
            b.note_request(Nanos(S));
        }
        // 0.2 × 100 + 0 = 20 retries.
        let granted = (0..50)
            .filter(|_| b.try_retry(Nanos(2 * S), 0.2, 0))
            .count();
        assert_eq!(granted, 20);
        assert_eq!(b.totals(Nanos(2 * S)), (100, 20));
        // 11 s later, both the requests and the retries have left the window.
        assert_eq!(b.totals(Nanos(13 * S)), (0, 0));
        assert!(!b.try_retry(Nanos(13 * S), 0.2, 0));
    }
}
