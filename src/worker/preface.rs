//! What comes before the first request on a connection (a PROXY protocol
//! header, when the listener requires one), and the client IP of each
//! request. The parsing rules live in `crate::http::proxy_protocol` and
//! `crate::http::client_ip`; this is only where the worker applies them.

use std::net::IpAddr;

use super::Worker;
use crate::conn::Preface;
use crate::http::client_ip;
use crate::http::head::{eq_ci, named_in_connection};
use crate::http::proxy_protocol::{self, Parsed};
use crate::http::request::RequestHead;
use crate::metrics::Metrics;
use crate::net::cidr::CidrSet;

impl Worker {
    /// `ReadingHead` while the PROXY header is awaited: parse what has
    /// arrived (it may come in pieces). Complete: consume it, adopt its
    /// source as the peer, and go on to HTTP with the bytes after it. Invalid
    /// or missing: close without a word, since the peer is not speaking
    /// HTTP to us yet. The header timeout set at accept bounds the wait.
    pub(super) fn on_proxy_header(&mut self, ci: usize) -> bool {
        let c = &mut self.conns[ci];
        let received = c.req.as_ref().map(|b| b.data()).unwrap_or(&[]);
        match proxy_protocol::parse(received) {
            Ok(Parsed::Complete { len, source }) => {
                if let Some(b) = c.req.as_mut() {
                    b.consume(len);
                }
                if let Some(src) = source {
                    c.peer = src;
                }
                c.preface = Preface::None;
                c.head_scanned = 0;
                true
            }
            Ok(Parsed::Incomplete) if !c.client_eof && !c.draining => false,
            Ok(Parsed::Incomplete) => {
                self.close(ci);
                true
            }
            Err(e) => {
                log::debug!("worker {}: {} from {}; closing", self.id, e, c.peer);
                Metrics::inc(&self.shared.metrics.errors);
                self.close(ci);
                true
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
