//! The health checker's handle: spawns the one probing thread, hands it
//! target sets, stops it.
//!
//! Invariants: one thread with its own `mio::Poll`, so probes never run on
//! (or block) a worker; a target set travels over a channel and is
//! announced by the `Waker` after it was sent (a wake before the send
//! could leave it unread until an unrelated event); stopping disconnects
//! the channel, wakes the thread and joins it, in `stop` or on drop.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::Sender;
use mio::{Poll, Waker};

use super::prober::{Prober, WAKER};
use crate::backend::BackendState;
use crate::config::resilience::HealthCheck;
use crate::shared::Shared;

/// Target sets queued at most before [`HealthChecker::set_targets`] waits
/// for the thread to drain them (it takes only the newest one anyway).
const QUEUED_SETS: usize = 4;

/// One backend to probe, as one upstream's `health_check` sees it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The backend's long-lived state: its health cell is what the probes
    /// move. Its identity (`Arc::ptr_eq`) is the target's identity across
    /// [`HealthChecker::set_targets`] calls.
    pub state: Arc<BackendState>,
    /// Backend name (events).
    pub backend: String,
    /// Upstream name (events).
    pub upstream: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The backend is spoken to over TLS. The checker has no TLS client,
    /// so such a backend gets a TCP connect check only: it passes when the
    /// handshake completes, and `path`, `host` and `expect_status` are not
    /// used.
    pub tls: bool,
    /// How to probe it.
    pub check: HealthCheck,
}

/// The running health checker: one thread probing every target on its own
/// schedule. Dropping it stops the thread too.
#[derive(Debug)]
pub struct HealthChecker {
    /// `None` once stopping: dropping it disconnects the channel, which is
    /// the thread's signal to exit.
    tx: Option<Sender<Vec<Target>>>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl HealthChecker {
    /// Starts the checker thread with no targets. Probes record events in
    /// `shared.events`, count in `shared.metrics` and read
    /// `shared.clock`.
    pub fn spawn(shared: Arc<Shared>) -> io::Result<HealthChecker> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::bounded(QUEUED_SETS);
        let thread = thread::Builder::new()
            .name("health-check".into())
            .spawn(move || Prober::new(poll, rx, shared).run())?;
        Ok(HealthChecker {
            tx: Some(tx),
            waker,
            thread: Some(thread),
        })
    }

    /// Replaces the set probed (called at start and after each config
    /// reload). A target whose `state` is the same `Arc` as a current
    /// target's keeps its streak counters, its schedule and a probe in
    /// flight; new targets are first probed within their first interval
    /// (spread over it, at most 1 s). Backends no longer targeted keep
    /// their last health (the caller resets them) and are no longer
    /// probed. A `state` listed twice is probed once, for its first entry.
    pub fn set_targets(&self, targets: Vec<Target>) {
        let Some(tx) = &self.tx else { return };
        // Send first, then wake (mio `Waker`: a wake before the send could
        // be consumed before the set is there to read). A send fails only
        // if the thread is gone, and then there is nothing to wake.
        if tx.send(targets).is_ok() {
            if let Err(e) = self.waker.wake() {
                // The thread still drains its channel at least once a second.
                log::warn!("health checker: wake failed ({e}); the new targets apply within 1 s");
            }
        }
    }

    /// Stops the thread and joins it (closing every probe socket).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        drop(self.tx.take());
        let _ = self.waker.wake();
        if thread.join().is_err() {
            log::error!("health checker thread panicked");
        }
    }
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.shutdown();
    }
}
