//! One client connection: its socket, its buffers, and the state machine of
//! the exchange in progress.
//!
//! A connection is an explicit [`Phase`]; the request and response halves of
//! a proxied exchange have their own sub-states ([`ReqSide`], [`RespSide`])
//! because they overlap in time (a backend may answer before the request body
//! is through). The worker (`crate::worker`) performs the I/O and moves the
//! phases; nothing in this module touches a socket.

pub mod buffer;
pub mod io;
pub mod upload;

use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;

use crate::algo::breaker::Permit;
use crate::algo::{BackendId, Nanos};
use crate::http::chunked::{ChunkError, ChunkedDecoder};
use crate::http::head::{HeaderSpan, Span};
use crate::http::request::{Method, RequestHead};
use crate::http::response::ResponseHead;
use buffer::Buffer;
use upload::UploadMeter;

/// Edge-triggered readiness seen on one socket and not yet used up.
///
/// A flag is cleared only when an operation returns `WouldBlock` (or the
/// socket closes), or when a short read proves the socket drained (see
/// [`Ready::drained_by`]): a full buffer pauses reading without losing the edge.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ready {
    /// Bytes (or EOF) may be readable.
    pub readable: bool,
    /// The send buffer may have room.
    pub writable: bool,
    /// The peer's FIN or an error was signalled (`EPOLLRDHUP`/`EPOLLERR`):
    /// reads must go on until they return 0 or fail.
    pub read_closed: bool,
}

/// Whether a short read may be taken as "drained" (see [`Ready::drained_by`]).
/// Linux epoll (and kqueue's `EV_CLEAR`) queue a new edge for every arrival,
/// so this holds there; elsewhere we keep reading until `WouldBlock`.
const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
));

impl Ready {
    /// Folds a poll event in.
    pub fn update(&mut self, ev: &mio::event::Event) {
        // Error and hangup are reported as readable so the next read sees
        // the EOF or error itself (mio treats hup/error as hints).
        self.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
        self.writable |= ev.is_writable() || ev.is_write_closed() || ev.is_error();
        self.read_closed |= ev.is_read_closed() || ev.is_error();
    }

    /// After a read returned `n` bytes into a slice of `asked` bytes: whether
    /// the socket is drained, so the read that would follow can only return
    /// `WouldBlock` and can be skipped. That extra `read` was one wasted
    /// syscall per request on each side of a keep-alive exchange.
    ///
    /// Sound because the kernel wakes an edge-triggered epoll item on every
    /// arrival (`sk_data_ready` → `ep_poll_callback`), not only on the
    /// empty→non-empty transition: whatever arrives after a short read
    /// raises a new edge. nginx does the same (`ngx_unix_recv` with
    /// `EPOLLRDHUP`). A read that filled the slice proves nothing (sozu
    /// #1387), and once the peer's FIN was signalled no further edge comes,
    /// so then we read on until the 0.
    pub fn drained_by(&self, n: usize, asked: usize) -> bool {
        SHORT_READ_DRAINS && n < asked && !self.read_closed
    }
}

/// Bytes queued for one socket that are not part of a buffered body: a
/// rewritten head or a gateway-made reply. Kept after sending until the
/// exchange moves on, so a request can be replayed on a fresh connection.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// How many have been written.
    pub pos: usize,
}

impl Outgoing {
    /// Bytes still to write.
    pub fn pending(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    /// Whether everything has been written.
    pub fn is_flushed(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// Forgets the content (keeps the allocation).
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.pos = 0;
    }
}

/// The growable vectors of a connection's per-request state (outgoing heads,
/// pipeline headers, header indices), emptied but with their capacity.
///
/// A connection going idle between keep-alive requests hands them to the
/// worker's spare list together with its buffers, and takes a set back when
/// it has bytes again. Steady-state traffic still allocates nothing, and an
/// idle connection holds no heap memory but its slab slot (about 1.4 KB of
/// warm vectors per idle connection otherwise).
#[derive(Debug, Default)]
pub struct Scratch {
    bytes: [Vec<u8>; 5],
    headers: [Vec<HeaderSpan>; 2],
    spans: [Vec<Span>; 2],
}

/// Where a body ends, tracked as its bytes go by.
#[derive(Debug, Clone)]
pub enum BodyScan {
    /// This many bytes left.
    Length(u64),
    /// Chunked: the scanner finds the last chunk and trailers.
    Chunked(ChunkedDecoder),
    /// Until the peer closes (responses only).
    UntilClose,
    /// The end has been seen.
    Complete,
}

impl BodyScan {
    /// Scans `data` (the bytes after those already scanned); returns how many
    /// belong to this body. Becomes `Complete` when the end is inside `data`.
    pub fn scan(&mut self, data: &[u8]) -> Result<usize, ChunkError> {
        match self {
            BodyScan::Length(left) => {
                let n = (*left).min(data.len() as u64);
                *left -= n;
                if *left == 0 {
                    *self = BodyScan::Complete;
                }
                Ok(n as usize)
            }
            BodyScan::Chunked(dec) => {
                let p = dec.feed(data)?;
                if p.done {
                    *self = BodyScan::Complete;
                }
                Ok(p.consumed)
            }
            BodyScan::UntilClose => Ok(data.len()),
            BodyScan::Complete => Ok(0),
        }
    }

    /// Whether the end has been seen.
    pub fn is_complete(&self) -> bool {
        matches!(self, BodyScan::Complete)
    }
}

/// The request half of a proxied exchange.
#[derive(Debug, Clone)]
pub enum ReqSide {
    /// Head and/or body bytes still going to the backend.
    Sending(BodyScan),
    /// The whole request has been written to the backend.
    Sent,
}

/// The response half of a proxied exchange.
#[derive(Debug, Clone)]
pub enum RespSide {
    /// Waiting for (the rest of) the response head.
    AwaitingHead,
    /// Head forwarded; body bytes stream through.
    Streaming(BodyScan),
    /// The whole response has been written to the client.
    Complete,
}

/// What happens once a gateway-made reply is flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Read the next request on this connection.
    KeepAlive,
    /// Close the connection (gracefully, with a lingering read).
    Close,
}

/// The connection's state.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Waiting for a request head (idle keep-alive when the buffer is empty).
    ReadingHead,
    /// Held by the leaky bucket until `until`, then the pipeline resumes.
    Parked {
        /// Release time.
        until: Nanos,
    },
    /// Non-blocking connect to the backend in progress; the request body
    /// scan carries over to `Proxying`.
    Connecting(BodyScan),
    /// Request and response in flight.
    Proxying {
        /// Request half.
        req: ReqSide,
        /// Response half.
        resp: RespSide,
    },
    /// Raw bytes both ways after `101 Switching Protocols`.
    Tunnelling,
    /// Writing a gateway-made reply.
    Replying(After),
    /// Output flushed, write side shut; reading until EOF or the linger deadline.
    Closing,
}

impl Phase {
    /// Short name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::ReadingHead => "reading-head",
            Phase::Parked { .. } => "parked",
            Phase::Connecting(_) => "connecting",
            Phase::Proxying {
                req: ReqSide::Sending(_),
                ..
            } => "sending-request",
            Phase::Proxying {
                resp: RespSide::AwaitingHead,
                ..
            } => "awaiting-response",
            Phase::Proxying { .. } => "streaming-response",
            Phase::Tunnelling => "tunnelling",
            Phase::Replying(_) => "replying",
            Phase::Closing => "closing",
        }
    }
}

/// What must arrive on a new connection before its first request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preface {
    /// Nothing: HTTP from the first byte.
    None,
    /// A PROXY protocol header (`proxy_protocol` on), whose source replaces
    /// `peer`; a connection without a valid one is closed.
    ProxyHeader,
}

/// Per-request state, reused across the requests of one connection.
#[derive(Debug, Default)]
pub struct Exchange {
    /// When the head was parsed.
    pub start: Nanos,
    /// Request method.
    pub method: Option<Method>,
    /// Client HTTP minor version.
    pub minor_version: u8,
    /// The client allows keep-alive after this exchange.
    pub client_keep_alive: bool,
    /// The request asked for a protocol upgrade.
    pub upgrade: bool,
    /// The request carries a body the client has not fully sent yet.
    pub has_body: bool,
    /// The request id (client's valid one, or ours).
    pub request_id: Vec<u8>,
    /// `METHOD path` for the access log (truncated).
    pub log_target: Vec<u8>,
    /// Header lines the pipeline adds to the response (CORS, RateLimit-*).
    pub extra: Vec<u8>,
    /// Rate-limit key (hash of client IP or configured header).
    pub limit_key: u64,
    /// Index of the next pipeline stage to run (resuming after parking).
    pub next_stage: usize,
    /// Whether the logger stage is in the pipeline.
    pub log: bool,
    /// The backend chosen.
    pub backend: Option<BackendId>,
    /// Circuit-breaker permit held for the backend.
    pub permit: Option<Permit>,
    /// Replayed once on a fresh connection already.
    pub retried: bool,
    /// Any response byte (head) received from the backend.
    pub response_started: bool,
    /// When the request was handed to the backend (for latency).
    pub sent_at: Nanos,
    /// Final status sent to the client (0 until known).
    pub status: u16,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// A request is being handled (its accounting is still owed).
    pub active: bool,
    /// The backend whose in-flight count this request holds.
    pub backend_inflight: Option<BackendId>,
    /// The response said (or will say) `Connection: close`.
    pub close_after: bool,
    /// Time to the response head (ms), reported in `x-response-time`.
    pub response_time_ms: u64,
    /// The client IP resolved from `peer` and `X-Forwarded-For` (see
    /// [`Conn::client_ip`]); `None` until the head is parsed.
    pub client_ip: Option<IpAddr>,
}

/// One accepted client connection.
#[derive(Debug)]
pub struct Conn {
    /// Unique per worker, so stale timer entries can be told apart after
    /// the slab slot is reused.
    pub serial: u64,
    /// The client socket.
    pub client: TcpStream,
    /// The connection's peer: the TCP peer, or the source its PROXY
    /// protocol header named. Read it through [`Conn::peer_ip`] or
    /// [`Conn::client_ip`].
    pub peer: SocketAddr,
    /// What is still awaited before the first request head.
    pub preface: Preface,
    /// Client readiness.
    pub ready: Ready,
    /// Client → backend bytes (request heads and bodies).
    pub req: Option<Buffer>,
    /// Backend → client bytes (response bodies).
    pub resp: Option<Buffer>,
    /// Bytes at the front of `req` that belong to the current request body
    /// and may be forwarded.
    pub req_fwd: usize,
    /// Bytes at the front of `resp` that belong to the current response body
    /// and may be forwarded.
    pub resp_fwd: usize,
    /// Heads and replies for the client.
    pub to_client: Outgoing,
    /// The rewritten request head for the backend.
    pub to_backend: Outgoing,
    /// The backend socket (index into the upstream slab), while attached.
    pub upstream: Option<usize>,
    /// State.
    pub phase: Phase,
    /// The current request.
    pub ex: Exchange,
    /// Parsed request head (spans into `req`), valid in `ReadingHead` after a
    /// successful parse until the head is consumed.
    pub head: RequestHead,
    /// Parsed response head (spans into `resp`).
    pub resp_head: ResponseHead,
    /// When the current phase times out (`Nanos::ZERO`: never).
    pub deadline: Nanos,
    /// The client shut its write side (read returned 0).
    pub client_eof: bool,
    /// The client connection failed (reset, broken pipe): nothing more can
    /// be delivered.
    pub client_failed: bool,
    /// The backend connection failed (reset, write error).
    pub upstream_failed: bool,
    /// A request head has been parsed and not yet consumed from `req`.
    pub head_pending: bool,
    /// How far `req` has been searched for the end of a head.
    pub head_scanned: usize,
    /// The deadline is the idle keep-alive one (not a header timeout).
    pub timer_is_idle: bool,
    /// The backend shut its side (tunnels: propagated as a write shutdown).
    pub upstream_eof: bool,
    /// Our write side to the client is shut.
    pub client_shut: bool,
    /// No new request may start (shutdown in progress).
    pub draining: bool,
    /// The request body's delivery rate (`limits.min_body_bytes_per_sec`).
    pub upload: UploadMeter,
}

impl Conn {
    /// Takes the per-request vectors out (cleared), for an idle connection.
    pub fn stash_scratch(&mut self) -> Scratch {
        use std::mem::take;
        self.to_client.clear();
        self.to_backend.clear();
        let mut s = Scratch {
            bytes: [
                take(&mut self.to_client.bytes),
                take(&mut self.to_backend.bytes),
                take(&mut self.ex.extra),
                take(&mut self.ex.log_target),
                take(&mut self.ex.request_id),
            ],
            headers: [
                take(&mut self.head.headers),
                take(&mut self.resp_head.headers),
            ],
            spans: [
                take(&mut self.head.connection),
                take(&mut self.resp_head.connection),
            ],
        };
        s.bytes.iter_mut().for_each(Vec::clear);
        s.headers.iter_mut().for_each(Vec::clear);
        s.spans.iter_mut().for_each(Vec::clear);
        s
    }

    /// Puts a set of (empty) per-request vectors back in place of the
    /// current ones, which must be empty too (the connection was idle).
    pub fn restore_scratch(&mut self, s: Scratch) {
        let Scratch {
            bytes: [to_client, to_backend, extra, log_target, request_id],
            headers: [head_headers, resp_headers],
            spans: [head_conn, resp_conn],
        } = s;
        debug_assert!(self.to_client.bytes.is_empty() && self.ex.extra.is_empty());
        self.to_client.bytes = to_client;
        self.to_client.pos = 0;
        self.to_backend.bytes = to_backend;
        self.to_backend.pos = 0;
        self.ex.extra = extra;
        self.ex.log_target = log_target;
        self.ex.request_id = request_id;
        self.head.headers = head_headers;
        self.resp_head.headers = resp_headers;
        self.head.connection = head_conn;
        self.resp_head.connection = resp_conn;
    }
    /// A new connection in `ReadingHead`.
    pub fn new(serial: u64, client: TcpStream, peer: SocketAddr, deadline: Nanos) -> Conn {
        Conn {
            serial,
            client,
            peer,
            preface: Preface::None,
            ready: Ready::default(),
            req: None,
            resp: None,
            req_fwd: 0,
            resp_fwd: 0,
            to_client: Outgoing::default(),
            to_backend: Outgoing::default(),
            upstream: None,
            phase: Phase::ReadingHead,
            ex: Exchange::default(),
            head: RequestHead::default(),
            resp_head: ResponseHead::default(),
            deadline,
            client_eof: false,
            client_failed: false,
            upstream_failed: false,
            head_pending: false,
            head_scanned: 0,
            timer_is_idle: false,
            upstream_eof: false,
            client_shut: false,
            draining: false,
            upload: UploadMeter::default(),
        }
    }

    /// The connection's peer address (canonical: IPv4-mapped IPv6 as IPv4).
    /// This is what the gateway appends to `X-Forwarded-For`: the address it
    /// saw itself, as nginx's `$proxy_add_x_forwarded_for` does.
    pub fn peer_ip(&self) -> IpAddr {
        self.peer.ip().to_canonical()
    }

    /// The client IP of the current request: the peer, or what a trusted
    /// proxy's `X-Forwarded-For` says (`crate::http::client_ip`). The rate
    /// limit key, the sticky balancers' key and the access log use this.
    pub fn client_ip(&self) -> IpAddr {
        self.ex.client_ip.unwrap_or_else(|| self.peer_ip())
    }

    /// Whether the connection sits between requests with nothing buffered.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::ReadingHead)
            && self.req.as_ref().is_none_or(Buffer::is_empty)
            && self.to_client.is_flushed()
    }
}
