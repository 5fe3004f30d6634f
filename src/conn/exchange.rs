//! Per-request state, reused across the requests of one connection, and the
//! per-request accounting (metrics, access log) that happens exactly once.

use std::net::IpAddr;

use crate::algo::Nanos;
use crate::auth::ConsumerId;
use crate::http::request::Method;
use crate::upstream::{Gate, PoolId, QueueTicket, Selection};

use super::phase::After;

/// Whether the current request's accounting is still owed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ledger {
    /// No request, or its accounting is done.
    #[default]
    Settled,
    /// A request is being handled: its log line and counters are owed.
    Owed,
}

/// What the client has been told about the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Answer {
    /// Nothing yet.
    #[default]
    Nothing,
    /// The backend sent an interim (1xx) head; no final one yet.
    Interim,
    /// A final status: a forwarded response head or a gateway-made reply.
    Final(u16),
}

impl Answer {
    /// Whether any response head (interim or final) came from the backend
    /// or was made by the gateway.
    pub fn started(self) -> bool {
        self != Answer::Nothing
    }

    /// The final status, if one is known.
    pub fn status(self) -> Option<u16> {
        match self {
            Answer::Final(s) => Some(s),
            _ => None,
        }
    }
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct Exchange {
    /// The serial of the snapshot the request runs on (see `Ctx::snap`).
    pub snapshot: u64,
    /// When the head was parsed.
    pub start: Nanos,
    /// Request method.
    pub method: Option<Method>,
    /// Client HTTP minor version.
    pub minor_version: u8,
    /// What the client allows after this exchange.
    pub client_wants: After,
    /// What the client's own head said (`Connection: close`, HTTP/1.0
    /// without keep-alive), whatever the gateway decides: a client that
    /// closes sends nothing more.
    pub client_said: After,
    /// What the response said (or will say) about the connection.
    pub after: After,
    /// The request id (client's valid one, or ours).
    pub request_id: Vec<u8>,
    /// `METHOD path` for the access log (truncated).
    pub log_target: Vec<u8>,
    /// Header lines the pipeline adds to the response (CORS, RateLimit-*).
    pub extra: Vec<u8>,
    /// The route that took the request (an index in the worker's
    /// `RouteSet`; 0, the catch-all, when no routes are configured);
    /// `None` until it is routed (or when it never was: a 400, a 404).
    pub route: Option<usize>,
    /// The path and query forwarded to the backend when routes are
    /// configured (normalized, then rewritten by the route); unused (and
    /// the client's target forwarded as sent) without routes.
    pub target: Vec<u8>,
    /// How long the backend may take to answer, and may stay silent while
    /// a body streams (`timeouts.backend_response_ms`, or the route's own).
    pub response_timeout: Nanos,
    /// The upstream the request goes to (decided by its route).
    pub pool: PoolId,
    /// The backend chosen, with its breaker permit and in-flight lease.
    pub selection: Option<Selection>,
    /// Its place in the upstream's queue while it waits for a backend.
    pub ticket: Option<QueueTicket>,
    /// When its wait in the queue ends (`ZERO`: it never queued).
    pub queue_deadline: Nanos,
    /// Times the request was (re)sent to a backend connection.
    pub attempts: u8,
    /// How its backend was chosen (a retry chooses the same way).
    pub gate: Gate,
    /// Tries sent again on another backend (`retry`).
    pub retries: u8,
    /// Backends tried so far, by id bit (ids below 64).
    pub tried: u64,
    /// When the backend timeout of the whole request runs out (set when
    /// the first try is sent in full; `ZERO` before).
    pub overall_deadline: Nanos,
    /// What the client has been told.
    pub answer: Answer,
    /// When the request was handed to the backend (for latency).
    pub sent_at: Nanos,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// Whether the accounting is owed.
    pub ledger: Ledger,
    /// Time to the response head (ms), reported in `x-response-time`.
    pub response_time_ms: u64,
    /// The client IP resolved from the peer and `X-Forwarded-For`; `None`
    /// until the head is parsed.
    pub client_ip: Option<IpAddr>,
    /// The configured consumer the route's `auth` proved (its counters,
    /// its own limit); `None`: anonymous, or a token subject that is not a
    /// configured consumer.
    pub consumer: Option<ConsumerId>,
    /// The caller's name, sent upstream as `X-Consumer`; empty: anonymous.
    pub consumer_name: Vec<u8>,
    /// The request's decision trace: `None` unless it asked (and is
    /// trusted) or was sampled, so an untraced request pays one branch per
    /// trace point (see `crate::trace`).
    pub trace: Option<Box<crate::trace::Trace>>,
}

/// What the access log shows for a request whose client went away first.
pub const CLIENT_CLOSED: u16 = 499;

impl Exchange {
    /// The status the access log and metrics record.
    pub fn logged_status(&self) -> u16 {
        self.answer.status().unwrap_or(CLIENT_CLOSED)
    }
}
