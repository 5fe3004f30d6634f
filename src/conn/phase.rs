//! The states of a client connection and of the two halves of a proxied
//! exchange.
//!
//! A connection's observable condition is readable from its [`Phase`]
//! alone: whether a head is pending in the request buffer, whether the idle
//! or the header timer runs, whether our FIN was sent, whether it is gone.

use crate::algo::Nanos;
use crate::http::chunked::{ChunkError, ChunkedDecoder};

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

    /// Scans the bytes of `data` past the first `cleared` (those already
    /// cleared for forwarding) and clears the ones that belong to this
    /// body; returns whether any were.
    pub fn clear(&mut self, data: &[u8], cleared: &mut usize) -> Result<bool, ChunkError> {
        if self.is_complete() || *cleared >= data.len() {
            return Ok(false);
        }
        let n = self.scan(&data[*cleared..])?;
        *cleared += n;
        Ok(n > 0)
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

/// Whether a connection goes on after the current exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum After {
    /// Read the next request on this connection.
    #[default]
    KeepAlive,
    /// Close the connection (gracefully, with a lingering read).
    Close,
}

/// The connection's state.
#[derive(Debug, Clone)]
pub enum Phase {
    /// A TLS connection's handshake is in progress (the transport does
    /// it); the handshake timer runs. Then the first request's head is
    /// awaited with the header timer, as on a new plain connection.
    Handshaking,
    /// A PROXY protocol header is awaited before any HTTP (`proxy_protocol`
    /// on); its source replaces the peer. The header timer runs.
    Preface,
    /// Between requests: waiting for the first byte of the next head (or
    /// parsing pipelined bytes already here). The idle timer runs.
    Idle,
    /// Part of a request head has arrived (or the connection is new). The
    /// header timer runs, from the first byte, and is never pushed.
    ReadingHead,
    /// The head is parsed and still in the request buffer; the pipeline
    /// runs its stages from `next`.
    Routing {
        /// Index of the next pipeline stage.
        next: usize,
    },
    /// Held by the leaky bucket until `until`; then routing resumes at `next`.
    Parked {
        /// Release time.
        until: Nanos,
        /// Index of the next pipeline stage.
        next: usize,
    },
    /// Every backend of the upstream is at its in-flight cap: the request
    /// waits in the upstream's queue (holding a ticket, until
    /// `Exchange::queue_deadline`) for a backend with room; each wake-up
    /// re-runs stage `next` (the one that chose a backend).
    Queued {
        /// The next re-check (the worker may wake it sooner, see
        /// `Session::wake`).
        recheck: Nanos,
        /// Index of the stage that picks the backend.
        next: usize,
    },
    /// A backend connection is being attached (pooled or a non-blocking
    /// connect); the request body scan carries over to `Proxying`.
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
    /// Flushing what is queued before our FIN.
    Closing,
    /// Our FIN is sent; reading and discarding until the client's EOF or
    /// the linger deadline, so unread input cannot turn into a reset that
    /// destroys the response just sent.
    Lingering,
    /// Done: the worker releases the slot at the end of its loop iteration.
    Closed,
}

impl Phase {
    /// Short name for logs and tests.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Handshaking => "handshaking",
            Phase::Preface => "preface",
            Phase::Idle => "idle",
            Phase::ReadingHead => "reading-head",
            Phase::Routing { .. } => "routing",
            Phase::Parked { .. } => "parked",
            Phase::Queued { .. } => "queued",
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
            Phase::Lingering => "lingering",
            Phase::Closed => "closed",
        }
    }

    /// Whether a parsed request head is still at the front of the request
    /// buffer (to be consumed by whatever answers or forwards it).
    pub fn head_pending(&self) -> bool {
        matches!(
            self,
            Phase::Routing { .. } | Phase::Parked { .. } | Phase::Queued { .. }
        )
    }

    /// Whether the phase runs without a timer: parked requests wake on the
    /// worker's parking heap, a closed connection is gone, and routing is
    /// instantaneous.
    pub fn untimed(&self) -> bool {
        matches!(
            self,
            Phase::Routing { .. } | Phase::Parked { .. } | Phase::Queued { .. } | Phase::Closed
        )
    }
}
