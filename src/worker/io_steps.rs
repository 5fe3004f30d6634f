//! The four I/O steps of `drive`: client read, backend write, backend read,
//! client write. Each moves bytes between a socket and a buffer as far as
//! readiness and space allow and records what it saw in flags; none of them
//! changes the phase (that is `advance`'s job), so an error path can never
//! skip a transition or a re-arm.

use super::Worker;
use crate::conn::io::{read_into, write_from, IoOutcome};
use crate::conn::{After, Phase, ReqSide, RespSide};

impl Worker {
    /// Reads client bytes into the request buffer while the phase wants them
    /// and there is room; in `Closing`, reads and discards.
    pub(super) fn client_read(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        if !c.ready.readable || c.client_eof {
            return false;
        }
        let discard = match c.phase {
            Phase::Closing => true,
            Phase::Replying(After::Close) => return false,
            _ => false,
        };
        if c.req.is_none() {
            // Leaving idle: buffers and per-request vectors come back.
            c.req = Some(self.pool.get());
            if let Some(s) = self.spare.pop() {
                c.restore_scratch(s);
            }
        }
        let Some(buf) = c.req.as_mut() else {
            return false;
        };
        let mut progress = false;
        loop {
            if buf.is_full() {
                if discard {
                    buf.consume(buf.len());
                } else {
                    // Backpressure: keep the edge, stop reading until the
                    // buffer drains towards the backend. The client is not
                    // the slow one in this window.
                    c.upload.pause();
                    break;
                }
            }
            let space = buf.space();
            let asked = space.len();
            match read_into(&mut c.client, space) {
                IoOutcome::Progress(n) => {
                    buf.fill(n);
                    c.upload.count(n);
                    if discard {
                        buf.consume(n);
                    }
                    progress = true;
                    if c.ready.drained_by(n, asked) {
                        c.ready.readable = false;
                        break;
                    }
                }
                IoOutcome::WouldBlock => {
                    c.ready.readable = false;
                    break;
                }
                IoOutcome::Closed => {
                    c.ready.readable = false;
                    c.client_eof = true;
                    progress = true;
                    break;
                }
                IoOutcome::Failed => {
                    c.ready.readable = false;
                    c.client_eof = true;
                    c.client_failed = true;
                    progress = true;
                    break;
                }
            }
        }
        progress
    }

    /// Writes the request head and cleared body bytes (or, in a tunnel,
    /// everything) to the backend.
    pub(super) fn upstream_write(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let tunnel = match c.phase {
            Phase::Proxying {
                req: ReqSide::Sending(_),
                ..
            } => false,
            Phase::Tunnelling => true,
            _ => return false,
        };
        let Some(u) = c.upstream else {
            return false;
        };
        let up = &mut self.ups[u];
        let mut progress = false;
        while up.ready.writable && !c.upstream_failed {
            let head = c.to_backend.pending();
            let body = match c.req.as_ref() {
                Some(b) if tunnel => b.data(),
                Some(b) => &b.data()[..c.req_fwd],
                None => &[],
            };
            if head.is_empty() && body.is_empty() {
                break;
            }
            match write_from(&mut up.sock, head, body) {
                IoOutcome::Progress(n) => {
                    let from_head = n.min(head.len());
                    let from_body = n - from_head;
                    c.to_backend.pos += from_head;
                    if let Some(b) = c.req.as_mut() {
                        b.consume(from_body);
                    }
                    if !tunnel {
                        c.req_fwd -= from_body;
                    }
                    progress = true;
                }
                IoOutcome::WouldBlock => up.ready.writable = false,
                IoOutcome::Closed | IoOutcome::Failed => {
                    up.ready.writable = false;
                    c.upstream_failed = true;
                    progress = true;
                }
            }
        }
        progress
    }

    /// Reads backend bytes into the response buffer while a response (or a
    /// tunnel) is open and there is room.
    pub(super) fn upstream_read(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        match c.phase {
            Phase::Proxying { ref resp, .. } if !matches!(resp, RespSide::Complete) => {}
            Phase::Tunnelling => {}
            _ => return false,
        }
        let Some(u) = c.upstream else {
            return false;
        };
        let up = &mut self.ups[u];
        if !up.ready.readable || c.upstream_eof {
            return false;
        }
        let buf = c.resp.get_or_insert_with(|| self.pool.get());
        let mut progress = false;
        while !buf.is_full() {
            let space = buf.space();
            let asked = space.len();
            match read_into(&mut up.sock, space) {
                IoOutcome::Progress(n) => {
                    buf.fill(n);
                    progress = true;
                    if up.ready.drained_by(n, asked) {
                        up.ready.readable = false;
                        break;
                    }
                }
                IoOutcome::WouldBlock => {
                    up.ready.readable = false;
                    break;
                }
                IoOutcome::Closed => {
                    up.ready.readable = false;
                    c.upstream_eof = true;
                    progress = true;
                    break;
                }
                IoOutcome::Failed => {
                    up.ready.readable = false;
                    c.upstream_eof = true;
                    c.upstream_failed = true;
                    progress = true;
                    break;
                }
            }
        }
        progress
    }

    /// Writes queued heads/replies and cleared response bytes to the client.
    pub(super) fn client_write(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let body_mode = match c.phase {
            Phase::Proxying { .. } => Some(false),
            Phase::Tunnelling => Some(true),
            Phase::Replying(_) | Phase::Closing | Phase::ReadingHead => None,
            Phase::Parked { .. } | Phase::Connecting(_) => return false,
        };
        let mut progress = false;
        while c.ready.writable && !c.client_shut {
            let head = c.to_client.pending();
            let body = match (body_mode, c.resp.as_ref()) {
                (Some(true), Some(b)) => b.data(),
                (Some(false), Some(b)) => &b.data()[..c.resp_fwd],
                _ => &[],
            };
            if head.is_empty() && body.is_empty() {
                break;
            }
            match write_from(&mut c.client, head, body) {
                IoOutcome::Progress(n) => {
                    let from_head = n.min(head.len());
                    let from_body = n - from_head;
                    c.to_client.pos += from_head;
                    if let Some(b) = c.resp.as_mut() {
                        b.consume(from_body);
                    }
                    if body_mode == Some(false) {
                        c.resp_fwd -= from_body;
                    }
                    c.ex.bytes_out += n as u64;
                    progress = true;
                }
                IoOutcome::WouldBlock => c.ready.writable = false,
                IoOutcome::Closed | IoOutcome::Failed => {
                    c.ready.writable = false;
                    c.client_failed = true;
                    progress = true;
                }
            }
        }
        progress
    }
}
