//! What comes before the first request on a connection (a PROXY protocol
//! header, when the listener requires one), and the client IP of each
//! request. The parsing rules live in `crate::http::proxy_protocol` and
//! `crate::http::client_ip`; this is only where a session applies them.

use std::net::IpAddr;

use crate::algo::Nanos;
use crate::http::client_ip;
use crate::http::head::{eq_ci, named_in_connection};
use crate::http::proxy_protocol::{self, Parsed};
use crate::http::request::RequestHead;
use crate::metrics::Metrics;
use crate::net::cidr::CidrSet;

use super::phase::Phase;
use super::session::{Ctx, IoView, Session, Step};

impl Session {
    /// `Preface`: parse what has arrived of the PROXY header (it may come in
    /// pieces). Complete: consume it, adopt its source as the peer, and go
    /// on to HTTP with the bytes after it, under the same header deadline.
    /// Invalid or missing: close without a word, since the peer is not
    /// speaking HTTP to us yet.
    pub(super) fn on_preface(&mut self, io: &IoView, ctx: &mut Ctx<'_>, now: Nanos) -> Step {
        let Some(buf) = self.req.as_ref().filter(|b| !b.is_empty()) else {
            return self.on_empty_inbox(io, ctx, now);
        };
        match proxy_protocol::parse(buf.data()) {
            Ok(Parsed::Complete { len, source }) => {
                if let Some(b) = self.req.as_mut() {
                    b.consume(len);
                }
                if let Some(src) = source {
                    self.peer = src;
                }
                self.head_scanned = 0;
                let deadline = self.deadline();
                self.enter(Phase::ReadingHead, deadline);
                Step::Continue
            }
            Ok(Parsed::Incomplete) if !io.client.eof() && !ctx.draining => Step::Wait,
            Ok(Parsed::Incomplete) => self.close(ctx, now),
            Err(e) => {
                log::debug!("{} from {}; closing", e, self.peer);
                Metrics::inc(&ctx.shared.metrics.errors);
                self.close(ctx, now)
            }
        }
    }
}

/// The client IP for a parsed request from `peer`: its `X-Forwarded-For`
/// fields, last first, walked as `client_ip::resolve` says. Fields the
/// client's `Connection` header names are hop-by-hop and not forwarded, so
/// they do not count here either.
pub(super) fn resolve_client_ip(
    peer: IpAddr,
    trusted: &CidrSet,
    buf: &[u8],
    head: &RequestHead,
) -> IpAddr {
    if trusted.is_empty() {
        return peer;
    }
    let hop_by_hop =
        head.conn.names_fields && named_in_connection(buf, &head.connection, b"x-forwarded-for");
    let lines = head
        .headers
        .iter()
        .rev()
        .filter(|h| !hop_by_hop && eq_ci(h.name.get(buf), b"x-forwarded-for"))
        .map(|h| h.value.get(buf));
    client_ip::resolve(peer, trusted, lines)
}
