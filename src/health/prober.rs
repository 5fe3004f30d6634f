//! The health checker's thread: its own `mio::Poll`, one slot per target,
//! each probed every `interval_ms` over a non-blocking socket with its own
//! `timeout_ms` deadline, and the verdicts turned into health transitions,
//! events and counters.
//!
//! Invariants: at most one probe (one socket) per target at a time; a
//! probe reads at most [`MAX_REPLY`](super::probe::MAX_REPLY) bytes and is
//! closed as soon as it has a verdict; a slot's token is its slab index,
//! and slots are only added or removed after a poll batch's events were
//! handled, so no event of a batch lands on a recycled slot (mio #219).
//! Time is read from the shared clock once per loop iteration.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::checker::Target;
use super::probe::{self, Phase, Probe, Reason, Verdict};
use super::state::HealthState;
use super::tally::{Tally, Transition};
use crate::algo::Nanos;
use crate::backend::BackendState;
use crate::events::EventKind;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::transport::tcp_connect_result;

/// The waker's token; slots use their slab index.
pub(super) const WAKER: Token = Token(usize::MAX);

/// The longest poll wait: the channel is drained at least this often even
/// if a wake were lost, so a new set or a stop is never stuck.
const MAX_WAIT: Duration = Duration::from_secs(1);

/// New targets' first probes are spread over their interval, but over no
/// more than this, so a start with hundreds of backends does not open
/// hundreds of sockets in one instant, yet every backend is probed soon.
const MAX_SPREAD: Nanos = Nanos::from_secs(1);

/// One target and where its probing stands.
#[derive(Debug)]
struct Slot {
    target: Target,
    tally: Tally,
    /// When its next probe starts (one `interval` after the last one
    /// started; a probe that outlasts the interval delays the next).
    next_at: Nanos,
    /// The probe in flight, if any.
    live: Option<Live>,
}

impl Slot {
    /// When this slot next needs the loop: its probe's deadline, or when
    /// its next probe is due.
    fn timer(&self) -> Nanos {
        self.live.as_ref().map_or(self.next_at, |l| l.deadline)
    }
}

/// A probe in flight.
#[derive(Debug)]
struct Live {
    sock: TcpStream,
    probe: Probe,
    deadline: Nanos,
}

/// The checker thread's state.
pub(super) struct Prober {
    poll: Poll,
    rx: Receiver<Vec<Target>>,
    shared: Arc<Shared>,
    slots: Slab<Slot>,
    /// The earliest [`Slot::timer`] (`Nanos(u64::MAX)`: none), so an
    /// iteration woken by a socket does not scan every slot.
    next_timer: Nanos,
}

const NEVER: Nanos = Nanos(u64::MAX);

impl Prober {
    pub(super) fn new(poll: Poll, rx: Receiver<Vec<Target>>, shared: Arc<Shared>) -> Prober {
        Prober {
            poll,
            rx,
            shared,
            slots: Slab::new(),
            next_timer: NEVER,
        }
    }

    /// Runs until the handle disconnects the channel.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = self.shared.clock_now();
            let wait = Duration::from_nanos(self.next_timer.saturating_sub(now).0);
            // Rounded up to whole milliseconds (epoll's unit): rounding
            // down would wake early and spin until the timer is due.
            let wait = Duration::from_millis(wait.as_nanos().div_ceil(1_000_000) as u64);
            if let Err(e) = self.poll.poll(&mut events, Some(wait.min(MAX_WAIT))) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("health checker: poll failed ({e}); health checks stop");
                return;
            }
            let now = self.shared.clock_now();
            for ev in events.iter() {
                if ev.token() != WAKER {
                    self.drive(ev.token().0, now);
                }
            }
            // Every iteration, not only on a wake: wakes coalesce, and a
            // lost one must not strand a set or a stop for more than
            // `MAX_WAIT`.
            if !self.drain(now) {
                return;
            }
            if now >= self.next_timer {
                self.sweep(now);
            }
        }
    }

    /// Takes the newest target set, if one came; `false` once the handle
    /// is gone (stop).
    fn drain(&mut self, now: Nanos) -> bool {
        let mut newest = None;
        loop {
            match self.rx.try_recv() {
                Ok(set) => newest = Some(set),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        if let Some(set) = newest {
            self.apply(set, now);
        }
        true
    }

    /// Replaces the targets: slots whose state is in `set` stay where they
    /// are (counters, schedule, probe in flight, token); the others close;
    /// new ones are added with their first probes spread.
    fn apply(&mut self, set: Vec<Target>, now: Nanos) {
        let by_state: HashMap<*const BackendState, usize> = self
            .slots
            .iter()
            .map(|(k, s)| (Arc::as_ptr(&s.target.state), k))
            .collect();
        let mut seen = HashSet::new();
        let mut kept = HashSet::new();
        let mut fresh = Vec::new();
        for t in set {
            let id = Arc::as_ptr(&t.state);
            if !seen.insert(id) {
                log::debug!(
                    "health checker: {}/{} listed twice; probed once",
                    t.upstream,
                    t.backend
                );
                continue;
            }
            match by_state.get(&id) {
                Some(&k) => {
                    let slot = &mut self.slots[k];
                    // A shorter interval applies from now on; a longer one
                    // from the next probe.
                    slot.next_at = slot.next_at.min(now.saturating_add(interval(&t)));
                    slot.target = t;
                    kept.insert(k);
                }
                None => fresh.push(t),
            }
        }
        let gone: Vec<usize> = self
            .slots
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !kept.contains(k))
            .collect();
        for k in gone {
            let mut slot = self.slots.remove(k);
            if let Some(live) = slot.live.as_mut() {
                let _ = self.poll.registry().deregister(&mut live.sock);
            }
        }
        let n = fresh.len() as u64;
        for (i, t) in (0u64..).zip(fresh) {
            let spread = interval(&t).min(MAX_SPREAD);
            let offset = Nanos(spread.0 / n * i);
            self.slots.insert(Slot {
                target: t,
                tally: Tally::default(),
                next_at: now.saturating_add(offset),
                live: None,
            });
        }
        self.next_timer = self.earliest_timer();
        log::debug!("health checker: {} target(s)", self.slots.len());
    }

    /// The soonest timer of any target (`NEVER` without targets).
    fn earliest_timer(&self) -> Nanos {
        self.slots
            .iter()
            .map(|(_, s)| s.timer())
            .min()
            .unwrap_or(NEVER)
    }

    /// Times out overdue probes, starts due ones, and finds the next timer.
    fn sweep(&mut self, now: Nanos) {
        let due: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| s.timer() <= now)
            .map(|(k, _)| k)
            .collect();
        for k in due {
            if self.slots[k].live.is_some() {
                self.finish(k, Verdict::Fail(Reason::TimedOut), now);
            } else {
                self.start(k, now);
            }
        }
        self.next_timer = self.earliest_timer();
    }

    /// Starts slot `k`'s probe: a non-blocking connect, registered for both
    /// directions once (edge-triggered; the probe's phase says which one
    /// it waits for).
    fn start(&mut self, k: usize, now: Nanos) {
        let slot = &mut self.slots[k];
        slot.next_at = now.saturating_add(interval(&slot.target));
        // A backend a reload removed is the caller's to drop from the set;
        // until then it is not probed (its health no longer matters).
        if slot.target.state.is_retired() {
            return;
        }
        let t = &slot.target;
        let opened = TcpStream::connect(t.addr).and_then(|mut sock| {
            self.poll.registry().register(
                &mut sock,
                Token(k),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(sock)
        });
        let sock = match opened {
            Ok(sock) => sock,
            Err(e) if blames_peer(e.kind()) => {
                self.finish(k, Verdict::Fail(Reason::ConnectFailed(e.kind())), now);
                return;
            }
            Err(e) => {
                // Descriptor exhaustion and the like are the gateway's
                // trouble, not the backend's: no verdict, try next time.
                log::warn!(
                    "health checker: no socket for {}/{} ({e}); probe skipped",
                    t.upstream,
                    t.backend
                );
                return;
            }
        };
        // Small requests and replies must not wait for Nagle.
        let _ = sock.set_nodelay(true);
        let probe = if t.tls {
            Probe::connect_only()
        } else {
            let host = probe::host_for(&t.check, t.addr);
            Probe::http(probe::request(&t.check.path, &host), t.check.expect_status)
        };
        let deadline = now.saturating_add(Nanos::from_millis(t.check.timeout_ms));
        slot.live = Some(Live {
            sock,
            probe,
            deadline,
        });
    }

    /// Advances slot `k`'s probe after a readiness event.
    fn drive(&mut self, k: usize, now: Nanos) {
        // An event for a slot without a probe is stale: ignore it.
        let Some(live) = self.slots.get_mut(k).and_then(|s| s.live.as_mut()) else {
            return;
        };
        let verdict = advance(live);
        if verdict.is_decided() {
            self.finish(k, verdict, now);
        }
    }

    /// Ends slot `k`'s probe (if one is in flight) with `verdict`: closes
    /// its socket, counts it, and applies the transition it decides.
    fn finish(&mut self, k: usize, verdict: Verdict, now: Nanos) {
        let slot = &mut self.slots[k];
        if let Some(mut live) = slot.live.take() {
            let _ = self.poll.registry().deregister(&mut live.sock);
            // Dropping the socket closes it; the probe said
            // `Connection: close`, and the body is not wanted.
        }
        self.next_timer = self.next_timer.min(slot.next_at);
        let t = &slot.target;
        if t.state.is_retired() {
            return;
        }
        let passed = match verdict {
            Verdict::Pass(status) => {
                log::trace!(
                    "health checker: {}/{} passed ({status:?})",
                    t.upstream,
                    t.backend
                );
                true
            }
            Verdict::Fail(why) => {
                log::debug!("health checker: {}/{} failed: {why}", t.upstream, t.backend);
                false
            }
            Verdict::Pending => {
                debug_assert!(false, "finish without a verdict");
                return;
            }
        };
        let metrics = &self.shared.metrics;
        Metrics::inc(if passed {
            &metrics.health_checks_passed
        } else {
            &metrics.health_checks_failed
        });
        let current = t.state.health.state();
        let Some(tr) = slot.tally.record(passed, current, &t.check) else {
            return;
        };
        t.state.health.set(tr.to);
        if tr.from == HealthState::Unhealthy && tr.to == HealthState::Healthy {
            // Back in rotation: ramp its share up (slow start), as after a
            // circuit closes.
            t.state.begin_ramp(now);
        }
        if let Some(kind) = event(t, tr, verdict) {
            self.shared.events.record(now, kind);
        } else {
            log::debug!(
                "health checker: {}/{} {} -> {}",
                t.upstream,
                t.backend,
                tr.from.as_str(),
                tr.to.as_str()
            );
        }
    }
}

/// The event a transition is worth: leaving the rotation, or coming back
/// after leaving it. A backend's first checks passing (unchecked ->
/// healthy) changes nothing for traffic and is not logged.
fn event(t: &Target, tr: Transition, verdict: Verdict) -> Option<EventKind> {
    let plural = if tr.streak == 1 { "" } else { "s" };
    let (healthy, reason) = match (tr.to, verdict) {
        (HealthState::Unhealthy, Verdict::Fail(why)) => {
            (false, format!("{} failed check{plural}: {why}", tr.streak))
        }
        (HealthState::Healthy, _) if tr.from == HealthState::Unhealthy => {
            (true, format!("{} passed check{plural}", tr.streak))
        }
        _ => return None,
    };
    Some(EventKind::HealthChanged {
        backend: t.backend.clone(),
        upstream: t.upstream.clone(),
        healthy,
        reason,
    })
}

/// A target's interval.
fn interval(t: &Target) -> Nanos {
    Nanos::from_millis(t.check.interval_ms)
}

/// Whether a failed `connect` call is the peer's (or the path to it's)
/// fault, so the probe fails, rather than the gateway's own (no descriptor,
/// no memory: std reports those as uncategorized or out-of-memory errors).
fn blames_peer(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable
            | K::NotConnected
            | K::TimedOut
            | K::PermissionDenied
    )
}

/// Moves a probe as far as its socket allows: completes the connect, sends
/// the request, reads the reply; stops at `WouldBlock` (the next edge
/// resumes it) or a verdict. Edge-triggered: each step runs until the
/// socket would block, never on a mere readiness hint.
fn advance(live: &mut Live) -> Verdict {
    loop {
        match live.probe.phase() {
            Phase::Connecting => match tcp_connect_result(&live.sock) {
                None => return Verdict::Pending,
                Some(Err(kind)) => return Verdict::Fail(Reason::ConnectFailed(kind)),
                Some(Ok(())) => {
                    let v = live.probe.connected();
                    if v.is_decided() {
                        return v;
                    }
                }
            },
            Phase::Sending => match live.sock.write(live.probe.unsent()) {
                Ok(0) => return Verdict::Fail(Reason::Io(io::ErrorKind::WriteZero)),
                Ok(n) => live.probe.wrote(n),
                Err(e) => match io_step(e) {
                    Some(v) => return v,
                    None => continue,
                },
            },
            Phase::Reading => {
                debug_assert!(!live.probe.spare().is_empty(), "a full reply decides");
                match live.sock.read(live.probe.spare()) {
                    Ok(n) => {
                        let v = live.probe.filled(n);
                        if v.is_decided() {
                            return v;
                        }
                    }
                    Err(e) => match io_step(e) {
                        Some(v) => return v,
                        None => continue,
                    },
                }
            }
        }
    }
}

/// What an I/O error means for a probe: wait (`WouldBlock`), retry
/// (`None`: interrupted), or fail. A refusal can surface on the first read
/// or write rather than on the connect (sozu `socket.rs`): it is still a
/// failed connect.
fn io_step(e: io::Error) -> Option<Verdict> {
    match e.kind() {
        io::ErrorKind::WouldBlock => Some(Verdict::Pending),
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::ConnectionRefused => Some(Verdict::Fail(Reason::ConnectFailed(
            io::ErrorKind::ConnectionRefused,
        ))),
        kind => Some(Verdict::Fail(Reason::Io(kind))),
    }
}
