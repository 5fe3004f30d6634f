//! The typed decision trace of one request: what each pipeline stage
//! decided, in order, with its inputs, and when the backend phases ended.
//!
//! Invariants:
//! - entries are typed values, never text: rendering to JSON happens only
//!   when a trace is fetched (`json.rs`);
//! - a `Trace` exists only for a request that asked for one (and was
//!   trusted) or was sampled, so every allocation here is paid by traced
//!   requests alone;
//! - times are gateway-clock instants (`Nanos`) the request path already
//!   had; nothing here reads a clock except [`Trace::new`] (the wall-clock
//!   start, shown as `started_unix_ms`).

use std::net::IpAddr;

use api_gateway_protocol::CircuitState;

use crate::algo::limit::shadow::ShadowVerdicts;
use crate::algo::limit::{Decision, Verdict};
use crate::algo::Nanos;
use crate::config::resilience::RetryOn;

/// Longest text a trace keeps from the request (target, path, host,
/// method, request id): a client cannot grow a trace beyond a few KiB plus
/// one entry per backend of its upstream.
pub const MAX_TEXT: usize = 512;

/// `bytes` as text for a trace: at most [`MAX_TEXT`] bytes, lossy UTF-8.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]).into_owned()
}

/// How a request came to be traced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// It asked (`X-Gateway-Trace: 1`) and was trusted.
    Asked,
    /// `trace.sample_per_million` picked it.
    Sampled,
}

/// Who the rate limiter counted the request against (never an API key's
/// value: a header key is shown by its name and the hash the limiter used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client IP (keyed by IP, or the fallback of the other sources).
    Ip(IpAddr),
    /// The consumer the route's `auth` proved.
    Consumer(String),
    /// The value of this header (only its name is kept; the value may be
    /// a secret, and `key_hash` tells two callers apart).
    Header(String),
}

/// The rate-limit stage's decision and inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitEntry {
    /// The configured key source (`ip`, `header:NAME`, `consumer`).
    pub key_source: String,
    /// Who was counted.
    pub key: LimitKey,
    /// The key the limiter used (a keyed hash, random per process).
    pub key_hash: u64,
    /// The spec name of the limiter that decided.
    pub algorithm: &'static str,
    /// The limiter's decision.
    pub decision: Decision,
    /// A consumer's own limit decided (not the route's limiter).
    pub consumer_limit: bool,
}

impl RateLimitEntry {
    /// Requests left before this one: `after + 1` when it was admitted
    /// (allowed or delayed: it used one), `after` when denied (it used none).
    pub fn before(&self) -> u64 {
        match self.decision.verdict {
            Verdict::Deny => self.decision.remaining,
            Verdict::Allow | Verdict::Delay(_) => self.decision.remaining.saturating_add(1),
        }
    }

    /// Requests left after this one (the limiter's `remaining`).
    pub fn after(&self) -> u64 {
        self.decision.remaining
    }
}

/// Why a candidate backend could not be picked, as seen before the pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    /// The operator switched it off.
    SwitchedOff,
    /// Its active health checks took it out of rotation.
    Unhealthy,
    /// An earlier try of this request went to it (a retry avoids it).
    Tried,
    /// Its in-flight count is at `max_inflight_per_backend`.
    AtCap,
    /// Its circuit is open (and selection is not in panic mode).
    CircuitOpen,
}

impl Exclusion {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::SwitchedOff => "switched-off",
            Exclusion::Unhealthy => "unhealthy",
            Exclusion::Tried => "tried",
            Exclusion::AtCap => "at-cap",
            Exclusion::CircuitOpen => "circuit-open",
        }
    }
}

/// One backend as selection saw it (read just before the pick).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its name.
    pub name: String,
    /// Its circuit.
    pub circuit: CircuitState,
    /// Its configured weight.
    pub weight: u32,
    /// Its weight under slow start (equal to `weight` when not ramping).
    pub effective_weight: f64,
    /// Requests in flight to it.
    pub inflight: u32,
    /// Its peak-EWMA latency estimate in ms (`p2c-ewma` only).
    pub ewma_ms: Option<f64>,
    /// Why it could not be picked, if it could not.
    pub excluded: Option<Exclusion>,
}

/// One backend selection: the circuit-breaker and load-balancer stages.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionEntry {
    /// The upstream chosen in.
    pub upstream: String,
    /// Whether circuits gate the choice (the `circuit-breaker` stage ran).
    pub breaker_gate: bool,
    /// Selection was in panic mode (open circuits are not excluded).
    pub panic: bool,
    /// The balancer's spec name.
    pub algorithm: &'static str,
    /// Every backend of the upstream.
    pub candidates: Vec<Candidate>,
    /// The backend picked; `None` with `refusal`.
    pub pick: Option<String>,
    /// Why none was picked (`no-backend`, `unhealthy`, `at-cap`).
    pub refusal: Option<&'static str>,
}

/// How a wait in the upstream queue ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOutcome {
    /// A backend had room: the request went on.
    Served,
    /// `queue.timeout_ms` passed first (503).
    TimedOut,
    /// The queue was full: no wait at all (503).
    Full,
    /// The client went away while waiting.
    Abandoned,
}

impl QueueOutcome {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueOutcome::Served => "served",
            QueueOutcome::TimedOut => "timed-out",
            QueueOutcome::Full => "full",
            QueueOutcome::Abandoned => "abandoned",
        }
    }
}

/// One stage's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Routing: the route taken, or why none was.
    Route {
        /// The route's name (`None` without routes configured).
        route: Option<String>,
        /// The normalized path (the raw path without routes).
        path: String,
        /// The host as routes match it (lower case, no port).
        host: String,
        /// The upstream the route sends to.
        upstream: Option<String>,
        /// Why no route took it (`no-route`, `method-not-allowed`).
        miss: Option<&'static str>,
    },
    /// The route's `auth` accepted the caller (`consumer`: `None` for a
    /// token subject that is not a configured consumer).
    AuthOk {
        /// The caller's name, if known.
        consumer: Option<String>,
    },
    /// The route's `auth` refused the request.
    AuthFailed {
        /// The metric reason (`missing`, `unknown`, `forbidden`, ...).
        reason: &'static str,
        /// The message the client got.
        message: &'static str,
        /// The answer's status (401 or 403).
        status: u16,
    },
    /// The rate limiter's decision.
    RateLimit(RateLimitEntry),
    /// What the shadow limiters would have decided (the set's own fixed
    /// array, boxed: the other stages are far smaller).
    Shadows(Box<ShadowVerdicts>),
    /// A backend selection (rendered as the `circuit-breaker` stage, when
    /// circuits gate it, then the `load-balancer` stage).
    Selection(SelectionEntry),
    /// A wait in the upstream queue.
    Queue {
        /// When it entered.
        entered: Nanos,
        /// When it left.
        left: Nanos,
        /// How it ended.
        outcome: QueueOutcome,
    },
    /// A failed try sent again.
    Retry {
        /// The retry's number (1 for the first retry).
        attempt: u8,
        /// The backend that failed.
        failed: String,
        /// How it failed.
        why: RetryOn,
        /// Where the request goes next.
        next: String,
    },
    /// The backend whose response head the client got.
    Backend {
        /// Its name.
        name: String,
        /// The response status.
        status: u16,
        /// The connection came from the idle pool.
        reused: bool,
    },
    /// A gateway-made reply.
    Reply {
        /// Its status.
        status: u16,
        /// Its error message (`None` for a redirect or a preflight).
        error: Option<&'static str>,
    },
}

/// When each backend phase ended, for the try that answered (an earlier,
/// failed try's are dropped by the retry). `None`: the phase did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// The wait in the upstream queue ended.
    pub queue: Option<Nanos>,
    /// The backend connection was ready (connected, or taken from the pool).
    pub connect: Option<Nanos>,
    /// The whole request was with the backend.
    pub send: Option<Nanos>,
    /// The response head arrived.
    pub first_byte: Option<Nanos>,
    /// The whole response was forwarded.
    pub last_byte: Option<Nanos>,
}

/// The trace of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The gateway's own request id (`{prefix:08x}{serial:08x}`), unique
    /// per process: the trace's id.
    pub id: String,
    /// The request id the request carried upstream (the client's, if it
    /// sent a valid one, else `id`).
    pub request_id: String,
    /// How it came to be traced.
    pub origin: Origin,
    /// The method token.
    pub method: String,
    /// The request target as sent (truncated like the access log's).
    pub target: String,
    /// The resolved client IP.
    pub client_ip: IpAddr,
    /// Wall-clock start, ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Gateway-clock start (the request head parsed).
    pub start: Nanos,
    /// Gateway-clock end (the request settled); `ZERO` until then.
    pub end: Nanos,
    /// The status logged (499: the client went away first).
    pub status: u16,
    /// A one-word outcome, set by the stage that ended the request
    /// (`proxied` when a backend answered).
    pub verdict: &'static str,
    /// The decisions, in order.
    pub stages: Vec<Stage>,
    /// Backend phase ends.
    pub timings: Timings,
    /// The answering try's connection came from the idle pool.
    pub connection_reused: bool,
    /// A queue wait not ended yet: when it began.
    queued_at: Option<Nanos>,
}

impl Trace {
    /// A trace for the request `id` that starts at `start`.
    pub fn new(id: String, origin: Origin, client_ip: IpAddr, start: Nanos) -> Trace {
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Trace {
            request_id: id.clone(),
            id,
            origin,
            method: String::new(),
            target: String::new(),
            client_ip,
            started_unix_ms,
            start,
            end: Nanos::ZERO,
            status: 0,
            verdict: "",
            stages: Vec::with_capacity(8),
            timings: Timings::default(),
            connection_reused: false,
            queued_at: None,
        }
    }

    /// Whether sampling (not the request) asked for it.
    pub fn sampled(&self) -> bool {
        self.origin == Origin::Sampled
    }

    /// Records a stage's decision.
    pub fn push(&mut self, stage: Stage) {
        self.stages.push(stage);
    }

    /// Records what each shadow limiter would have decided (nothing when
    /// there are none).
    pub fn shadows(&mut self, verdicts: &ShadowVerdicts) {
        if !verdicts.is_empty() {
            self.push(Stage::Shadows(Box::new(*verdicts)));
        }
    }

    /// The request starts waiting in the upstream queue at `now`.
    pub fn queue_entered(&mut self, now: Nanos) {
        self.queued_at = Some(now);
    }

    /// Its wait ends at `now` (`Full`: it never started).
    pub fn queue_left(&mut self, outcome: QueueOutcome, now: Nanos) {
        let entered = self.queued_at.take().unwrap_or(now);
        if outcome != QueueOutcome::Full {
            // A full queue is no wait: the queue phase did not happen.
            self.timings.queue = Some(now);
        }
        self.push(Stage::Queue {
            entered,
            left: now,
            outcome,
        });
    }

    /// Whether a queue wait is in progress.
    pub fn is_queued(&self) -> bool {
        self.queued_at.is_some()
    }

    /// A failed try is sent again: its phase times no longer describe the
    /// try that will answer.
    pub fn retried(&mut self, attempt: u8, failed: String, why: RetryOn, next: String) {
        let t = &mut self.timings;
        (t.connect, t.send, t.first_byte, t.last_byte) = (None, None, None, None);
        self.push(Stage::Retry {
            attempt,
            failed,
            why,
            next,
        });
    }

    /// A gateway-made reply of `status` ends the request.
    pub fn reply(&mut self, status: u16, error: Option<&'static str>, verdict: &'static str) {
        self.verdict = verdict;
        self.push(Stage::Reply { status, error });
    }

    /// The request settled at `now` with `status`: closes what is still
    /// open (a queue wait) and sets the verdict if no stage did.
    pub fn finish(&mut self, status: u16, now: Nanos) {
        if self.is_queued() {
            self.queue_left(QueueOutcome::Abandoned, now);
        }
        self.status = status;
        self.end = now;
        if self.verdict.is_empty() {
            let answered = self
                .stages
                .iter()
                .any(|s| matches!(s, Stage::Backend { .. }));
            self.verdict = match (answered, status) {
                (true, _) => "proxied",
                (false, 499) => "client-closed",
                (false, _) => "error",
            };
        }
    }

    /// From the start to `at`, in ms.
    pub fn ms_since_start(&self, at: Nanos) -> f64 {
        at.saturating_sub(self.start).0 as f64 / 1e6
    }

    /// From the start to the end, in ms.
    pub fn duration_ms(&self) -> f64 {
        self.ms_since_start(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn trace() -> Trace {
        Trace::new(
            "0000000a00000001".into(),
            Origin::Asked,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            Nanos::from_millis(10),
        )
    }

    fn entry(verdict: Verdict, remaining: u64) -> RateLimitEntry {
        RateLimitEntry {
            key_source: "ip".into(),
            key: LimitKey::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            key_hash: 7,
            algorithm: "fixed-window",
            decision: Decision {
                verdict,
                limit: 5,
                remaining,
                reset_after: Nanos::from_millis(1000),
                retry_after: Nanos::ZERO,
            },
            consumer_limit: false,
        }
    }

    #[test]
    fn before_counts_this_request_only_when_admitted() {
        let allowed = entry(Verdict::Allow, 3);
        assert_eq!((allowed.before(), allowed.after()), (4, 3));
        let delayed = entry(Verdict::Delay(Nanos::from_millis(5)), 0);
        assert_eq!((delayed.before(), delayed.after()), (1, 0));
        let denied = entry(Verdict::Deny, 0);
        assert_eq!((denied.before(), denied.after()), (0, 0));
    }

    #[test]
    fn shadows_are_recorded_in_order_and_none_is_no_stage() {
        use crate::algo::cells::Evictions;
        use crate::algo::limit::shadow::{Algorithm, ShadowSet, Shadows};
        use api_gateway_protocol::LimitSpec;
        let live = LimitSpec::FixedWindow {
            limit: 1,
            window_ms: 60_000,
        };
        let which = Shadows::Only(vec![Algorithm::TokenBucket, Algorithm::SlidingLog]);
        let set = ShadowSet::new(&live, &which, 64, &Evictions::default()).expect("two shadows");
        let now = Nanos::from_millis(1);
        let live_decision = Decision::admit(Nanos::ZERO, 1, 0, Nanos::from_millis(1000));
        let verdicts = set.observe(7, now, &live_decision);
        let mut t = trace();
        t.shadows(&verdicts);
        let Some(Stage::Shadows(entries)) = t.stages.last() else {
            panic!("a shadows stage: {:?}", t.stages);
        };
        let algos: Vec<_> = entries.iter().map(|&(a, _)| a).collect();
        assert_eq!(algos, [Algorithm::TokenBucket, Algorithm::SlidingLog]);
        assert!(entries
            .iter()
            .all(|(_, d)| d.verdict == Verdict::Allow && d.limit >= 1));
        // A second request over the limit of 1: the sliding log denies.
        let verdicts = set.observe(7, now, &live_decision);
        t.shadows(&verdicts);
        let Some(Stage::Shadows(entries)) = t.stages.last() else {
            panic!("a second shadows stage");
        };
        assert_eq!(entries.iter().nth(1).unwrap().1.verdict, Verdict::Deny);
        let mut empty = trace();
        empty.shadows(&ShadowVerdicts::default());
        assert!(empty.stages.is_empty());
    }

    #[test]
    fn a_retry_forgets_the_failed_tries_phase_times() {
        let mut t = trace();
        t.timings.connect = Some(Nanos::from_millis(11));
        t.timings.queue = Some(Nanos::from_millis(10));
        t.retried(1, "a".into(), RetryOn::ConnectFailure, "b".into());
        assert_eq!(t.timings.connect, None);
        assert_eq!(t.timings.queue, Some(Nanos::from_millis(10)));
        assert!(matches!(t.stages[0], Stage::Retry { attempt: 1, .. }));
    }

    #[test]
    fn finish_closes_a_queue_wait_and_names_the_outcome() {
        let mut t = trace();
        t.queue_entered(Nanos::from_millis(11));
        t.finish(499, Nanos::from_millis(20));
        assert_eq!(t.verdict, "client-closed");
        assert!(matches!(
            t.stages[0],
            Stage::Queue {
                outcome: QueueOutcome::Abandoned,
                ..
            }
        ));
        assert_eq!(t.duration_ms(), 10.0);
        let mut t = trace();
        t.push(Stage::Backend {
            name: "b".into(),
            status: 200,
            reused: false,
        });
        t.finish(200, Nanos::from_millis(12));
        assert_eq!(t.verdict, "proxied");
        let mut t = trace();
        t.reply(429, Some("rate limit exceeded"), "rate-limited");
        t.finish(429, Nanos::from_millis(12));
        assert_eq!(t.verdict, "rate-limited");
    }
}
