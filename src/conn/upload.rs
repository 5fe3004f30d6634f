//! The minimum request-body rate (`limits.min_body_bytes_per_sec`).
//!
//! Any byte is progress to an inactivity timer, so a client sending ten
//! bytes a second pins a backend connection for as long as it likes. The
//! meter averages what the client delivered over fixed windows instead:
//!
//! - the first window of each body is a grace period (a client may pause to
//!   think, TCP may be ramping up), so it is not judged;
//! - each later window must bring `rate × window` bytes, else the client is
//!   too slow (the worker answers 408 and drops the backend connection);
//! - a window in which the gateway itself stopped reading (the request
//!   buffer was full because the backend was not taking the body, or the
//!   client waits for `100 Continue`) is not held against the client: it is
//!   restarted instead.
//!
//! Pure bookkeeping on `Nanos`; the worker feeds it byte counts and asks it
//! at its timer sweep.

use crate::algo::Nanos;

/// Where the meter is in a body's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Stage {
    /// No body is being uploaded (or the check is disabled).
    #[default]
    Off,
    /// The first window: not judged.
    Grace,
    /// Counting bytes in a judged window.
    Measuring,
}

/// What a due check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadVerdict {
    /// Fast enough (or not judged): a new window has begun.
    Keep,
    /// Below the minimum rate over a whole window.
    TooSlow,
}

/// Per-connection body-rate bookkeeping; no allocation, a few words.
#[derive(Debug, Clone, Copy, Default)]
pub struct UploadMeter {
    stage: Stage,
    window_start: Nanos,
    check_at: Nanos,
    bytes: u64,
    paused: bool,
}

impl UploadMeter {
    /// A body starts being forwarded at `now`: the grace window begins.
    pub fn start(&mut self, now: Nanos, window: Nanos) {
        *self = UploadMeter {
            stage: Stage::Grace,
            window_start: now,
            check_at: now.saturating_add(window),
            bytes: 0,
            paused: false,
        };
    }

    /// The body is complete (or the exchange ended): stop judging.
    pub fn stop(&mut self) {
        self.stage = Stage::Off;
        self.check_at = Nanos::ZERO;
    }

    /// Whether a body is being metered.
    pub fn is_on(&self) -> bool {
        self.stage != Stage::Off
    }

    /// `n` bytes arrived from the client.
    pub fn count(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(n as u64);
    }

    /// The gateway stopped reading the client in this window (full buffer):
    /// the window cannot be judged.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// Whether a window has ended and [`UploadMeter::judge`] should run.
    pub fn is_due(&self, now: Nanos) -> bool {
        self.stage != Stage::Off && now >= self.check_at
    }

    /// Judges the window that just ended against `min_per_sec` and starts
    /// the next one.
    pub fn judge(&mut self, now: Nanos, window: Nanos, min_per_sec: u64) -> UploadVerdict {
        let elapsed = now.saturating_sub(self.window_start);
        // Bytes owed for the time actually elapsed (sweeps are coarse);
        // u128 so no rate and window can overflow.
        let owed = u128::from(min_per_sec) * u128::from(elapsed.0) / 1_000_000_000;
        let judged = self.stage == Stage::Measuring && !self.paused;
        if judged && u128::from(self.bytes) < owed {
            return UploadVerdict::TooSlow;
        }
        self.stage = Stage::Measuring;
        self.window_start = now;
        self.check_at = now.saturating_add(window);
        self.bytes = 0;
        self.paused = false;
        UploadVerdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Nanos = Nanos::from_millis(10_000);

    fn at(ms: u64) -> Nanos {
        Nanos::from_millis(ms)
    }

    #[test]
    fn the_first_window_is_grace() {
        let mut m = UploadMeter::default();
        m.start(at(0), W);
        assert!(!m.is_due(at(9_999)));
        assert!(m.is_due(at(10_000)));
        // Nothing sent in the grace window: not judged.
        assert_eq!(m.judge(at(10_000), W, 1024), UploadVerdict::Keep);
        assert!(!m.is_due(at(19_999)));
        m.count(10_239);
        assert_eq!(m.judge(at(20_000), W, 1024), UploadVerdict::TooSlow);
    }

    #[test]
    fn enough_bytes_per_window_keeps_the_upload() {
        let mut m = UploadMeter::default();
        m.start(at(0), W);
        m.judge(at(10_000), W, 1024);
        m.count(10_240);
        assert_eq!(m.judge(at(20_000), W, 1024), UploadVerdict::Keep);
        // Each window starts from zero: the last one's surplus is no credit.
        m.count(100);
        assert_eq!(m.judge(at(30_000), W, 1024), UploadVerdict::TooSlow);
    }

    #[test]
    fn a_late_sweep_owes_bytes_for_the_time_actually_elapsed() {
        let mut m = UploadMeter::default();
        m.start(at(0), W);
        m.judge(at(10_000), W, 1000);
        m.count(10_000);
        // 10.05 s elapsed: 10,050 bytes owed.
        assert_eq!(m.judge(at(20_050), W, 1000), UploadVerdict::TooSlow);
    }

    #[test]
    fn a_window_where_the_gateway_stopped_reading_is_not_judged() {
        let mut m = UploadMeter::default();
        m.start(at(0), W);
        m.judge(at(10_000), W, 1024);
        m.pause();
        assert_eq!(m.judge(at(20_000), W, 1024), UploadVerdict::Keep);
        // The pause was for that window only.
        assert_eq!(m.judge(at(30_000), W, 1024), UploadVerdict::TooSlow);
    }

    #[test]
    fn stopped_meter_is_never_due_and_extremes_do_not_overflow() {
        let mut m = UploadMeter::default();
        assert!(!m.is_due(Nanos(u64::MAX)));
        m.start(at(0), Nanos(u64::MAX));
        m.stop();
        assert!(!m.is_on() && !m.is_due(Nanos(u64::MAX)));
        m.start(at(0), W);
        m.judge(at(10_000), W, u64::MAX);
        m.count(usize::MAX);
        assert_eq!(
            m.judge(Nanos(u64::MAX), W, u64::MAX),
            UploadVerdict::TooSlow
        );
    }
}
