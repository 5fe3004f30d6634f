//! Per-shadow counters: what the shadow would have done, and how often it
//! agrees with the live limiter.
//!
//! Invariants: one [`Counters::record`] per observed request adds exactly one
//! to `would_allow` or `would_reject`, and exactly one to one of the four
//! agreement counters, so both groups sum to the request count. A `Delay`
//! counts as an allow: a leaky bucket shapes (the request is still served)
//! rather than rejects. The counters are independent relaxed atomics: a
//! [`Counters::snapshot`] taken while requests are observed may be mid-way
//! through one of them (each field is exact, the sums may lag by the
//! requests in flight).

use std::sync::atomic::{AtomicU64, Ordering};

use super::super::Verdict;

/// Would-be outcomes and agreement with the live verdict, for one shadow.
#[derive(Debug, Default)]
pub struct Counters {
    would_allow: AtomicU64,
    would_reject: AtomicU64,
    both_allow: AtomicU64,
    both_reject: AtomicU64,
    live_only_reject: AtomicU64,
    shadow_only_reject: AtomicU64,
}

/// A plain copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Requests the shadow would have admitted (now or delayed).
    pub would_allow: u64,
    /// Requests the shadow would have rejected.
    pub would_reject: u64,
    /// Both live and shadow admit.
    pub both_allow: u64,
    /// Both reject.
    pub both_reject: u64,
    /// The live limiter rejects, the shadow would admit.
    pub live_only_reject: u64,
    /// The live limiter admits, the shadow would reject.
    pub shadow_only_reject: u64,
}

impl CounterSnapshot {
    /// Requests observed (`would_allow + would_reject`).
    pub fn requests(&self) -> u64 {
        self.would_allow.saturating_add(self.would_reject)
    }

    /// Requests on which live and shadow agree.
    pub fn agreed(&self) -> u64 {
        self.both_allow.saturating_add(self.both_reject)
    }
}

impl Counters {
    /// Counts one request: the live verdict and the shadow's.
    pub fn record(&self, live: Verdict, shadow: Verdict) {
        let (live_rejects, shadow_rejects) = (live == Verdict::Deny, shadow == Verdict::Deny);
        let bump = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        bump(if shadow_rejects {
            &self.would_reject
        } else {
            &self.would_allow
        });
        bump(match (live_rejects, shadow_rejects) {
            (false, false) => &self.both_allow,
            (true, true) => &self.both_reject,
            (true, false) => &self.live_only_reject,
            (false, true) => &self.shadow_only_reject,
        });
    }

    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            would_allow: get(&self.would_allow),
            would_reject: get(&self.would_reject),
            both_allow: get(&self.both_allow),
            both_reject: get(&self.both_reject),
            live_only_reject: get(&self.live_only_reject),
            shadow_only_reject: get(&self.shadow_only_reject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::Nanos;

    #[test]
    fn delay_is_an_allow_and_groups_sum_to_requests() {
        let c = Counters::default();
        let (a, d, x) = (Verdict::Allow, Verdict::Delay(Nanos(5)), Verdict::Deny);
        // (live, shadow) pairs covering every case, delays on both sides.
        let pairs = [
            (a, a),
            (a, d),
            (d, a),
            (a, x),
            (d, x),
            (x, a),
            (x, d),
            (x, x),
            (x, x),
        ];
        for (live, shadow) in pairs {
            c.record(live, shadow);
        }
        let s = c.snapshot();
        assert_eq!(
            s,
            CounterSnapshot {
                would_allow: 5,
                would_reject: 4,
                both_allow: 3,
                both_reject: 2,
                live_only_reject: 2,
                shadow_only_reject: 2,
            }
        );
        assert_eq!(s.requests(), 9);
        assert_eq!(
            s.agreed() + s.live_only_reject + s.shadow_only_reject,
            s.requests()
        );
    }
}
