//! The consecutive-result counter of one probed backend: which way its
//! probes have gone lately, and when that streak moves its health.
//!
//! Invariants: a streak counts results in one direction only (a pass ends a
//! failing streak and the other way round); a transition is reported only
//! when the backend's health actually changes, so a long streak reports
//! once. Pure: the caller passes the backend's current health (it lives in
//! the shared cell, which the lead may reset) and applies the transition.

use super::state::HealthState;
use crate::config::resilience::HealthCheck;

/// Which way the latest probes went, and how many in a row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Streak {
    /// No probe decided yet.
    #[default]
    Empty,
    /// This many passed in a row.
    Passing(u32),
    /// This many failed in a row.
    Failing(u32),
}

/// A health change a streak decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Health before.
    pub from: HealthState,
    /// Health after (`Healthy` or `Unhealthy`).
    pub to: HealthState,
    /// The streak's length when it decided.
    pub streak: u32,
}

/// One target's counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    streak: Streak,
}

impl Tally {
    /// The current streak.
    pub fn streak(&self) -> Streak {
        self.streak
    }

    /// Counts one probe result for a backend whose health is `current`;
    /// returns the transition it decides, if any: `healthy_after` passes in
    /// a row make it `Healthy`, `unhealthy_after` failures `Unhealthy`.
    /// From `Unchecked` the first decisive streak moves it either way.
    pub fn record(
        &mut self,
        passed: bool,
        current: HealthState,
        check: &HealthCheck,
    ) -> Option<Transition> {
        // Saturating: a backend failing for years must not wrap to 0.
        self.streak = match (self.streak, passed) {
            (Streak::Passing(n), true) => Streak::Passing(n.saturating_add(1)),
            (Streak::Failing(n), false) => Streak::Failing(n.saturating_add(1)),
            (_, true) => Streak::Passing(1),
            (_, false) => Streak::Failing(1),
        };
        // `>=`, not `==`: if the cell was reset under a long streak (a
        // reload), the next result in the same direction re-decides. The
        // config allows no threshold below 1; treat 0 as 1 all the same.
        let (to, streak) = match self.streak {
            Streak::Passing(n) if n >= check.healthy_after.max(1) => (HealthState::Healthy, n),
            Streak::Failing(n) if n >= check.unhealthy_after.max(1) => (HealthState::Unhealthy, n),
            _ => return None,
        };
        (to != current).then_some(Transition {
            from: current,
            to,
            streak,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::{Healthy, Unchecked, Unhealthy};

    fn check(unhealthy_after: u32, healthy_after: u32) -> HealthCheck {
        HealthCheck {
            unhealthy_after,
            healthy_after,
            ..HealthCheck::default()
        }
    }

    /// Feeds `results` through a tally, applying each transition as the
    /// checker does; returns the transitions and the final health.
    fn run(
        c: &HealthCheck,
        start: HealthState,
        results: &[bool],
    ) -> (Vec<Transition>, HealthState) {
        let (mut tally, mut health, mut seen) = (Tally::default(), start, Vec::new());
        for &ok in results {
            if let Some(t) = tally.record(ok, health, c) {
                health = t.to;
                seen.push(t);
            }
        }
        (seen, health)
    }

    #[test]
    fn failures_in_a_row_take_it_out_and_passes_bring_it_back() {
        let c = check(2, 3);
        let (t, h) = run(&c, Unchecked, &[false, false]);
        assert_eq!(h, Unhealthy);
        assert_eq!(
            t,
            [Transition {
                from: Unchecked,
                to: Unhealthy,
                streak: 2
            }]
        );
        let (t, h) = run(&c, Unhealthy, &[true, true, true, true]);
        assert_eq!(h, Healthy);
        assert_eq!(
            t,
            [Transition {
                from: Unhealthy,
                to: Healthy,
                streak: 3
            }],
            "a longer streak reports once"
        );
    }

    #[test]
    fn an_interrupted_streak_starts_over() {
        let c = check(3, 2);
        let (t, h) = run(&c, Healthy, &[false, false, true, false, false]);
        assert!(t.is_empty());
        assert_eq!(h, Healthy);
        let (t, h) = run(&c, Unhealthy, &[true, false, true, false, true]);
        assert!(t.is_empty());
        assert_eq!(h, Unhealthy);
    }

    #[test]
    fn unchecked_moves_on_the_first_decisive_streak() {
        let c = check(2, 2);
        assert_eq!(run(&c, Unchecked, &[true]).1, Unchecked);
        assert_eq!(run(&c, Unchecked, &[true, true]).1, Healthy);
        assert_eq!(run(&c, Unchecked, &[true, false]).1, Unchecked);
        assert_eq!(run(&c, Unchecked, &[true, false, false]).1, Unhealthy);
    }

    #[test]
    fn a_reset_cell_is_re_decided_by_the_running_streak() {
        let c = check(2, 2);
        let mut tally = Tally::default();
        assert!(tally.record(false, Unchecked, &c).is_none());
        assert_eq!(tally.record(false, Unchecked, &c).unwrap().to, Unhealthy);
        assert!(tally.record(false, Unhealthy, &c).is_none());
        // The lead reset the cell; the next failure puts it back.
        let t = tally.record(false, Unchecked, &c).unwrap();
        assert_eq!((t.to, t.streak), (Unhealthy, 4));
        assert_eq!(tally.streak(), Streak::Failing(4));
    }

    #[test]
    fn thresholds_of_one_decide_on_every_change() {
        let c = check(1, 1);
        let (t, h) = run(&c, Unchecked, &[false, true, false]);
        assert_eq!(t.len(), 3);
        assert_eq!(h, Unhealthy);
        // Zero is treated as one.
        assert_eq!(run(&check(0, 0), Unchecked, &[false]).1, Unhealthy);
    }
}
