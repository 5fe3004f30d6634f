//! The socket side of the connection seam: a [`Transport`] (the byte stream
//! of one peer) and a [`Side`] (a transport with its readiness and what it
//! has seen), with the only two I/O loops the data path has:
//! [`Side::pump_in`] and [`Side::pump_out`].
//!
//! Both the client and the backend end of a proxied exchange are a `Side`,
//! so the edge-trigger rules live here once. The protocol logic
//! ([`crate::conn`]) never sees a socket: it reads what a side saw as a
//! [`Link`] and hands bytes over through buffers.
//!
//! `Transport` is an enum, not a `dyn`: plain TCP or TLS, and a `match`
//! keeps the per-read cost a predictable branch rather than an indirect
//! call.

pub mod outcome;
pub mod side;

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::net::TcpStream;

use crate::tls::TlsStream;

pub use outcome::IoOutcome;
pub use side::{Fill, Link, Nothing, Outbound, Outbox, Pumped, Ready, Seen, Side};

/// The byte stream to one peer.
#[derive(Debug)]
pub enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (a client of the HTTPS listener).
    Tls(Box<TlsStream>),
}

impl Transport {
    /// The TCP socket under the stream (for registration and socket options).
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => t.tcp(),
        }
    }

    /// Shuts our sending half (a FIN after what is queued); `false` when
    /// TLS records are still queued (then [`Side::pump_out`] sends the FIN
    /// once they are out).
    pub fn shutdown_write(&mut self) -> bool {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(Shutdown::Write);
                true
            }
            Transport::Tls(t) => t.shutdown_write(),
        }
    }

    /// Whether a read that returned fewer bytes than asked proves the
    /// socket drained (see `Ready::drained_by`). Not through TLS: one
    /// record may be decrypted while more wait in the socket.
    #[inline]
    pub fn short_read_drains(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Whether bytes are queued below the plaintext (TLS records the
    /// socket has not taken yet).
    #[inline]
    pub fn has_pending(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.has_pending(),
        }
    }

    /// Writes what [`Transport::has_pending`] reports.
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush_pending(),
        }
    }

    /// Whether the TLS handshake is still going on (never for plain TCP).
    #[inline]
    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.is_handshaking(),
        }
    }

    /// Whether the stream is TLS (the scheme the client used).
    #[inline]
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// For a non-blocking connect: `Some(true)` established, `Some(false)`
    /// failed, `None` still in progress (mio's recipe: `take_error`, then
    /// `peer_addr`).
    /// Over TLS the handshake is part of connecting: `Some(true)` only
    /// once it is complete (a certificate that does not verify is a failed
    /// connect).
    pub fn connect_result(&mut self) -> Option<bool> {
        if tcp_connect_result(self.tcp())?.is_err() {
            return Some(false);
        }
        match self {
            Transport::Plain(_) => Some(true),
            Transport::Tls(t) => t.drive_handshake(),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Transport::Plain(s) => s.peer_addr(),
            Transport::Tls(t) => t.tcp_ref().peer_addr(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(t) => t.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
            Transport::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The outcome of a non-blocking TCP connect, by mio's recipe: a pending
/// error means it failed; a peer address means it completed;
/// `NotConnected` means it is still under way (a spurious or early event).
pub fn tcp_connect_result(sock: &mio::net::TcpStream) -> Option<Result<(), io::ErrorKind>> {
    match sock.take_error() {
        Ok(Some(e)) | Err(e) => return Some(Err(e.kind())),
        Ok(None) => {}
    }
    match sock.peer_addr() {
        Ok(_) => Some(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => None,
        Err(e) => Some(Err(e.kind())),
    }
}
