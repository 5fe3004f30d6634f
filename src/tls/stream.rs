//! A TLS stream over a non-blocking mio socket: the server end of an
//! HTTPS client's connection, or the client end of a connection to a TLS
//! backend.
//!
//! It is read and written like the plain socket it wraps (`Read`/`Write`
//! return `WouldBlock` when the socket does), so the transport's two pump
//! loops drive it unchanged. The handshake happens inside `read`: the
//! ClientHello is read through rustls' `Acceptor`, the certificate chosen
//! by SNI (none and no default: the `unrecognized_name` alert), then rustls
//! finishes the handshake as records arrive. Handshake and alert records
//! rustls produces while reading are flushed as the socket allows; what
//! the socket does not take stays queued ([`TlsStream::has_pending`]) and
//! is flushed on the next writable edge, before any new plaintext.
//!
//! Invariants: plaintext is handed to rustls only when nothing older is
//! queued, so at most one write's worth of records waits in rustls; once
//! the stream failed it reads as EOF and writes fail.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::server::Acceptor;
use rustls::{ClientConnection, Connection};

use super::client::UpstreamTls;
use super::server::{HandshakeFailure, TlsServer};

/// A fatal `unrecognized_name` alert (RFC 6066 §3), as a plaintext record:
/// alerts before the handshake completes are not encrypted.
const UNRECOGNIZED_NAME: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// What a client that spoke plain HTTP to the TLS port is told (nginx
/// answers 400 too).
const PLAIN_HTTP: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\
Content-Length: 70\r\nConnection: close\r\n\r\n\
{\"error\":\"plain HTTP request sent to the HTTPS port\",\"request_id\":\"\"}\n";

enum State {
    /// Reading the ClientHello.
    Accepting(Box<Acceptor>),
    /// Handshaking or established.
    Open(Box<Connection>),
    /// Failed or closed: reads are EOF, writes fail.
    Done,
}

/// A TLS stream over one accepted socket.
pub struct TlsStream {
    tcp: TcpStream,
    state: State,
    /// The HTTPS listener's state (counters); `None` for a backend
    /// connection.
    server: Option<Arc<TlsServer>>,
    /// The first byte the client sent (to tell plain HTTP from TLS).
    first: Option<u8>,
    /// The handshake's outcome has been counted.
    counted: bool,
    /// Our `close_notify` is queued (a deferred FIN retries the flush, not
    /// the alert).
    notified: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Accepting(_) => "accepting",
            State::Open(c) if c.is_handshaking() => "handshaking",
            State::Open(_) => "open",
            State::Done => "done",
        };
        f.debug_struct("TlsStream").field("state", &state).finish()
    }
}

/// Records the first byte read from the socket.
struct Sniff<'a> {
    tcp: &'a mut TcpStream,
    first: &'a mut Option<u8>,
}

impl Read for Sniff<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        if n > 0 && self.first.is_none() {
            *self.first = Some(buf[0]);
        }
        Ok(n)
    }
}

impl TlsStream {
    /// A stream over a freshly accepted `tcp`, served by `server`.
    pub fn accept(tcp: TcpStream, server: Arc<TlsServer>) -> TlsStream {
        TlsStream {
            tcp,
            state: State::Accepting(Box::default()),
            server: Some(server),
            first: None,
            counted: false,
            notified: false,
        }
    }

    /// A client stream to a TLS backend over `tcp` (still connecting).
    pub fn connect(tcp: TcpStream, tls: &UpstreamTls) -> io::Result<TlsStream> {
        let conn = ClientConnection::new(tls.config.clone(), tls.name.clone())
            .map_err(io::Error::other)?;
        Ok(TlsStream {
            tcp,
            state: State::Open(Box::new(Connection::Client(conn))),
            server: None,
            first: None,
            counted: true,
            notified: false,
        })
    }

    /// Drives a client handshake as far as the socket allows (the TCP
    /// connect is complete): `Some(true)` done, `Some(false)` failed (a
    /// certificate that does not verify, a refused version, a reset),
    /// `None` waiting for the backend.
    pub fn drive_handshake(&mut self) -> Option<bool> {
        loop {
            match self.flush_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return Some(false),
            }
            let State::Open(conn) = &mut self.state else {
                return Some(false);
            };
            if !conn.is_handshaking() {
                return Some(true);
            }
            match conn.read_tls(&mut self.tcp) {
                Ok(0) => return Some(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(_) => return Some(false),
            }
            if let Err(e) = conn.process_new_packets() {
                log::warn!("TLS handshake with a backend failed: {e}");
                let _ = conn.write_tls(&mut self.tcp);
                self.state = State::Done;
                return Some(false);
            }
        }
    }

    /// The socket.
    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// The socket, shared.
    pub fn tcp_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        match &self.state {
            State::Accepting(_) => true,
            State::Open(c) => c.is_handshaking(),
            State::Done => false,
        }
    }

    /// Whether records are queued that the socket has not taken yet.
    pub fn has_pending(&self) -> bool {
        matches!(&self.state, State::Open(c) if c.wants_write())
    }

    /// Writes queued records until none is left (`Ok`) or the socket is
    /// full (`WouldBlock`).
    pub fn flush_pending(&mut self) -> io::Result<()> {
        let State::Open(conn) = &mut self.state else {
            return Ok(());
        };
        while conn.wants_write() {
            if conn.write_tls(&mut self.tcp)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Sends `close_notify` and, once everything queued is out, our FIN;
    /// returns whether the FIN was sent (else call again when writable).
    pub fn shutdown_write(&mut self) -> bool {
        if let (State::Open(conn), false) = (&mut self.state, self.notified) {
            conn.send_close_notify();
            self.notified = true;
        }
        match self.flush_pending() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            _ => {
                let _ = self.tcp.shutdown(std::net::Shutdown::Write);
                true
            }
        }
    }

    /// The handshake failed: count it (if not yet), stop.
    fn fail(&mut self, why: HandshakeFailure) -> io::Error {
        count_failure(&mut self.counted, self.server.as_deref(), why);
        self.state = State::Done;
        io::Error::new(io::ErrorKind::InvalidData, why.label())
    }

    /// Counts the handshake once it is complete.
    fn note_progress(&mut self) {
        if self.counted {
            return;
        }
        if let (State::Open(c), Some(s)) = (&self.state, &self.server) {
            if !c.is_handshaking() {
                self.counted = true;
                s.stats
                    .completed(c.protocol_version(), c.negotiated_cipher_suite());
            }
        }
    }

    /// Reads the ClientHello; `Ok(true)` once a connection exists.
    fn accept_hello(&mut self) -> io::Result<bool> {
        let State::Accepting(acceptor) = &mut self.state else {
            return Ok(true);
        };
        let mut sniff = Sniff {
            tcp: &mut self.tcp,
            first: &mut self.first,
        };
        if acceptor.read_tls(&mut sniff)? == 0 {
            return Err(self.fail(HandshakeFailure::Incomplete));
        }
        let accepted = match acceptor.accept() {
            Ok(None) => return Ok(false),
            Ok(Some(a)) => a,
            Err((_, mut alert)) => {
                // Plain HTTP starts with a method's capital letter; a TLS
                // record with 0x16. Counted before the answer goes out, so
                // whoever reads the answer sees the count.
                return Err(match self.first {
                    Some(b) if b.is_ascii_uppercase() => {
                        let e = self.fail(HandshakeFailure::NotTls);
                        let _ = self.tcp.write(PLAIN_HTTP);
                        e
                    }
                    _ => {
                        let e = self.fail(HandshakeFailure::Protocol);
                        let _ = alert.write_all(&mut self.tcp);
                        e
                    }
                });
            }
        };
        let Some(server) = &self.server else {
            return Ok(true);
        };
        let snapshot = server.current();
        if snapshot
            .store
            .choose(accepted.client_hello().server_name())
            .is_none()
        {
            let e = self.fail(HandshakeFailure::UnknownName);
            let _ = self.tcp.write(&UNRECOGNIZED_NAME);
            return Err(e);
        }
        match accepted.into_connection(snapshot.config.clone()) {
            Ok(conn) => {
                self.state = State::Open(Box::new(Connection::Server(conn)));
                // The ServerHello flight: the client waits for it.
                match self.flush_pending() {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
                    _ => Ok(true),
                }
            }
            Err((_, mut alert)) => {
                let e = self.fail(HandshakeFailure::Protocol);
                let _ = alert.write_all(&mut self.tcp);
                Err(e)
            }
        }
    }
}

/// Counts a failed handshake once. Called before any answer is written,
/// so a client that has read the answer sees the count.
fn count_failure(counted: &mut bool, server: Option<&TlsServer>, why: HandshakeFailure) {
    if !*counted {
        *counted = true;
        if let Some(s) = server {
            s.stats.failed(why);
        }
    }
}

impl Drop for TlsStream {
    /// A connection closed mid-handshake (the client left, or the
    /// handshake deadline passed) is counted as such.
    fn drop(&mut self) {
        if let (false, true, Some(s)) = (self.counted, self.is_handshaking(), &self.server) {
            s.stats.failed(HandshakeFailure::Incomplete);
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match &mut self.state {
                State::Done => return Ok(0),
                State::Accepting(_) => {
                    self.accept_hello()?;
                }
                State::Open(conn) => {
                    match conn.reader().read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        // TCP closed without close_notify: an EOF all the
                        // same (HTTP framing says whether anything was cut).
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                        Err(e) => return Err(e),
                    }
                    if conn.read_tls(&mut self.tcp)? == 0 {
                        // EOF: the reader reports it (clean or not) next.
                        let handshaking = conn.is_handshaking();
                        if handshaking {
                            return Err(self.fail(HandshakeFailure::Incomplete));
                        }
                        continue;
                    }
                    if conn.process_new_packets().is_err() {
                        // Counted, then the alert rustls queued, then stop.
                        let why = HandshakeFailure::Protocol;
                        count_failure(&mut self.counted, self.server.as_deref(), why);
                        let _ = conn.write_tls(&mut self.tcp);
                        return Err(self.fail(why));
                    }
                    self.note_progress();
                    match self.flush_pending() {
                        Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                        _ => {}
                    }
                }
            }
        }
    }
}

impl TlsStream {
    /// Hands plaintext to rustls (`put`) once older records are out, then
    /// sends what it made as far as the socket takes it.
    fn write_with(
        &mut self,
        len: usize,
        put: impl FnOnce(&mut rustls::Writer<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        // Older records first: the socket's backpressure is ours.
        self.flush_pending()?;
        let State::Open(conn) = &mut self.state else {
            return Err(io::ErrorKind::BrokenPipe.into());
        };
        let n = put(&mut conn.writer())?;
        match self.flush_pending() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ if n == 0 && len > 0 => Err(io::ErrorKind::WouldBlock.into()),
            _ => Ok(n),
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_with(buf.len(), |w| w.write(buf))
    }

    /// A head and its body go out as one record (and one syscall).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let len = bufs.iter().map(|b| b.len()).sum();
        self.write_with(len, |w| w.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}
