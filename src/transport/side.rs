//! One end of a proxied exchange (the client's socket or a backend's): its
//! transport, the readiness not yet used up, and what it has seen.
//!
//! Invariants (the edge-trigger rules, written once for both ends):
//! - A readiness flag is cleared only when an operation returns `WouldBlock`
//!   (or the socket closes), or when a short read proves the socket drained
//!   ([`Ready::drained_by`]). A full buffer pauses reading without losing
//!   the edge, so reading resumes without a new event once there is room.
//! - Once a side has seen its peer's end ([`Link::Eof`]) or a read error
//!   ([`Link::Failed`]) nothing more is read from it; once a write failed or
//!   our half is shut ([`Outbound`]), nothing more is written. The halves
//!   are separate because a backend may answer and close its reading half
//!   before our request is through: its response must still be read.

use super::outcome::{read_into, write_from, IoOutcome};
use super::Transport;
use crate::conn::buffer::Buffer;

/// Edge-triggered readiness seen on one socket and not yet used up.
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
    #[inline]
    pub fn drained_by(&self, n: usize, asked: usize) -> bool {
        SHORT_READ_DRAINS && n < asked && !self.read_closed
    }
}

/// What the reads of one side have seen of its peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Link {
    /// Nothing final yet.
    #[default]
    Open,
    /// The peer shut its sending half (a read returned 0).
    Eof,
    /// A read failed (reset or another hard error); no more bytes come.
    Failed,
}

/// Our sending half of one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outbound {
    /// Bytes may be written.
    #[default]
    Open,
    /// We sent our FIN (after everything queued).
    Shut,
    /// A write failed (reset, broken pipe): nothing more can be delivered.
    Failed,
}

/// What the protocol logic sees of one side: both halves, no socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// The reading half.
    pub link: Link,
    /// The sending half.
    pub outbound: Outbound,
}

impl Seen {
    /// No more bytes will come from the peer.
    #[inline]
    pub fn eof(self) -> bool {
        self.link != Link::Open
    }

    /// The connection broke, reading or writing.
    #[inline]
    pub fn failed(self) -> bool {
        self.link == Link::Failed || self.outbound == Outbound::Failed
    }

    /// Our FIN is sent.
    #[inline]
    pub fn shut(self) -> bool {
        self.outbound == Outbound::Shut
    }
}

/// What [`Side::pump_in`] does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Keep them; stop when the buffer is full (backpressure).
    Keep,
    /// Read and throw away (a lingering close).
    Discard,
}

/// What one pump did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pumped {
    /// Bytes moved.
    pub bytes: usize,
    /// Anything changed (bytes moved, or the link changed).
    pub progress: bool,
    /// Reading stopped because the buffer was full (the edge is kept).
    pub full: bool,
}

/// Bytes queued for a side: a head (or gateway-made reply) and the body
/// bytes cleared to follow it, written together with one syscall.
pub trait Outbox {
    /// The head bytes still to write, then the body bytes.
    fn pending(&self) -> (&[u8], &[u8]);
    /// `n` bytes of `pending()` (head first) were written.
    fn sent(&mut self, n: usize);
}

/// An outbox with nothing queued: pumping it only flushes what the
/// transport itself holds (TLS records of a resting connection).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nothing;

impl Outbox for Nothing {
    fn pending(&self) -> (&[u8], &[u8]) {
        (&[], &[])
    }

    fn sent(&mut self, _: usize) {}
}

/// One end of a proxied exchange.
#[derive(Debug)]
pub struct Side {
    /// The byte stream.
    pub transport: Transport,
    /// Readiness not yet used up.
    pub ready: Ready,
    /// What has been seen, both halves.
    pub seen: Seen,
    /// Our FIN was asked for while TLS records were still queued: it goes
    /// out with the next flush.
    fin_owed: bool,
}

impl Side {
    /// A fresh side over `transport`.
    pub fn new(transport: Transport) -> Side {
        Side {
            transport,
            ready: Ready::default(),
            seen: Seen::default(),
            fin_owed: false,
        }
    }

    /// Whether a read may find something.
    #[inline]
    pub fn may_read(&self) -> bool {
        self.ready.readable && self.seen.link == Link::Open
    }

    /// Reads into `buf` until the socket is drained, the buffer is full
    /// (with [`Fill::Keep`]) or the peer's end is seen.
    pub fn pump_in(&mut self, buf: &mut Buffer, fill: Fill) -> Pumped {
        let mut out = Pumped::default();
        if !self.may_read() {
            return out;
        }
        loop {
            if buf.is_full() {
                match fill {
                    Fill::Discard => buf.consume(buf.len()),
                    Fill::Keep => {
                        out.full = true;
                        return out;
                    }
                }
            }
            let space = buf.space();
            let asked = space.len();
            match read_into(&mut self.transport, space) {
                IoOutcome::Progress(n) => {
                    buf.fill(n);
                    if fill == Fill::Discard {
                        buf.consume(n);
                    }
                    out.bytes += n;
                    out.progress = true;
                    if self.transport.short_read_drains() && self.ready.drained_by(n, asked) {
                        self.ready.readable = false;
                        return out;
                    }
                }
                IoOutcome::WouldBlock => {
                    self.ready.readable = false;
                    return out;
                }
                IoOutcome::Closed => {
                    self.ready.readable = false;
                    self.seen.link = Link::Eof;
                    out.progress = true;
                    return out;
                }
                IoOutcome::Failed => {
                    self.ready.readable = false;
                    self.seen.link = Link::Failed;
                    out.progress = true;
                    return out;
                }
            }
        }
    }

    /// Writes what `out` has queued while the socket takes it (after any
    /// TLS records still queued below it, and a deferred FIN).
    pub fn pump_out(&mut self, out: &mut impl Outbox) -> Pumped {
        let mut done = Pumped::default();
        if self.ready.writable && self.transport.has_pending() {
            match self.transport.flush_pending() {
                Ok(()) => done.progress = true,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.ready.writable = false;
                }
                Err(_) => {
                    self.ready.writable = false;
                    self.seen.outbound = Outbound::Failed;
                    done.progress = true;
                }
            }
        }
        if self.fin_owed && self.ready.writable && self.transport.shutdown_write() {
            self.fin_owed = false;
        }
        while self.ready.writable && self.seen.outbound == Outbound::Open {
            let (head, body) = out.pending();
            if head.is_empty() && body.is_empty() {
                break;
            }
            match write_from(&mut self.transport, head, body) {
                IoOutcome::Progress(n) => {
                    out.sent(n);
                    done.bytes += n;
                    done.progress = true;
                }
                IoOutcome::WouldBlock => self.ready.writable = false,
                IoOutcome::Closed | IoOutcome::Failed => {
                    self.ready.writable = false;
                    self.seen.outbound = Outbound::Failed;
                    done.progress = true;
                }
            }
        }
        done
    }

    /// Shuts our sending half once (the FIN waits for queued TLS records).
    pub fn shut_write(&mut self) {
        if self.seen.outbound == Outbound::Open {
            self.fin_owed = !self.transport.shutdown_write();
            self.seen.outbound = Outbound::Shut;
        }
    }

    /// Whether everything written has left for the socket (no TLS records
    /// queued, no FIN owed).
    #[inline]
    pub fn is_flushed(&self) -> bool {
        !self.fin_owed && !self.transport.has_pending()
    }
}
