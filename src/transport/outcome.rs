//! Socket reads and writes reduced to an outcome; the only place that looks
//! at `io::ErrorKind`. Network errors never leave the event loop as `Err`:
//! they become what a [`super::Side`] has seen ([`super::Link`]).

use std::io::{self, IoSlice, Read, Write};

/// What one read or write attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOutcome {
    /// Moved this many bytes (> 0).
    Progress(usize),
    /// The socket has nothing more for now: wait for the next readiness edge.
    WouldBlock,
    /// The peer closed (read returned 0, or a write hit a closed pipe).
    Closed,
    /// Reset or another hard error.
    Failed,
}

/// Reads once into `buf`.
pub fn read_into(sock: &mut impl Read, buf: &mut [u8]) -> IoOutcome {
    loop {
        return match sock.read(buf) {
            Ok(0) => IoOutcome::Closed,
            Ok(n) => IoOutcome::Progress(n),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => IoOutcome::WouldBlock,
                io::ErrorKind::Interrupted => continue,
                _ => IoOutcome::Failed,
            },
        };
    }
}

/// Writes once from up to two slices (a head and a body) with one syscall.
pub fn write_from(sock: &mut impl Write, a: &[u8], b: &[u8]) -> IoOutcome {
    loop {
        let r = if a.is_empty() {
            sock.write(b)
        } else if b.is_empty() {
            sock.write(a)
        } else {
            sock.write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
        };
        return match r {
            Ok(0) => IoOutcome::Closed,
            Ok(n) => IoOutcome::Progress(n),
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock => IoOutcome::WouldBlock,
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::BrokenPipe => IoOutcome::Closed,
                _ => IoOutcome::Failed,
            },
        };
    }
}
