//! Time as a value: [`Nanos`] since the gateway's epoch, and the [`Clock`]s
//! that produce it.
//!
//! Only the event loop owns a clock and reads it once per iteration; the
//! algorithms receive `now` as an argument. All differences saturate, so a
//! stale `now` from a racing thread can never underflow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Nanoseconds since the clock's epoch (gateway start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    /// Zero: the epoch.
    pub const ZERO: Nanos = Nanos(0);

    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Nanos {
        Nanos(ms.saturating_mul(1_000_000))
    }

    /// From seconds.
    pub const fn from_secs(s: u64) -> Nanos {
        Nanos(s.saturating_mul(1_000_000_000))
    }

    /// Whole milliseconds (truncated).
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Whole seconds, rounded up (for `Retry-After`, which must never say 0
    /// when the client has to wait).
    pub const fn as_secs_ceil(self) -> u64 {
        self.0.div_ceil(1_000_000_000)
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub const fn saturating_sub(self, earlier: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating.
    pub const fn saturating_add(self, d: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(d.0))
    }

    /// As a std `Duration`.
    pub const fn to_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Nanos {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// Wall-clock seconds since the Unix epoch, for what is dated outside the
/// process (token `exp`/`nbf`, certificate validity); never for durations,
/// which use [`Nanos`] from a [`Clock`].
pub fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The civil date (year, month 1-12, day 1-31) of `days` since the Unix
/// epoch (proleptic Gregorian; H. Hinnant's civil-from-days).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC), for
/// reports read by people.
pub fn utc_string(secs: u64) -> String {
    let (y, m, d) = civil_date((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A source of `now`.
pub trait Clock: Send + Sync {
    /// The current time since the clock's epoch.
    fn now(&self) -> Nanos;
}

/// The real clock: `std::time::Instant` (monotonic on every platform std
/// supports), relative to when it was created.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        MonotonicClock {
            start: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Nanos {
        Nanos::from(self.start.elapsed())
    }
}

/// A clock that moves only when told to; for exact tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `start`.
    pub fn new(start: Nanos) -> Self {
        ManualClock(AtomicU64::new(start.0))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Nanos) {
        self.0.fetch_add(d.0, Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Nanos) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        Nanos(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(Nanos(1).as_secs_ceil(), 1);
        assert_eq!(Nanos::from_secs(2).as_secs_ceil(), 2);
        assert_eq!(Nanos::ZERO.as_secs_ceil(), 0);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Nanos::from_millis(5));
        assert_eq!(c.now(), Nanos::from_millis(5));
        c.advance(Nanos::from_millis(10));
        assert_eq!(c.now().as_millis(), 15);
        assert_eq!(Nanos(3).saturating_sub(Nanos(7)), Nanos::ZERO);
    }

    #[test]
    fn utc_strings() {
        assert_eq!(super::utc_string(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc_string(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            super::utc_string(20_788 * 86_400 + 45_296),
            "2026-12-01T12:34:56Z"
        );
    }
}
