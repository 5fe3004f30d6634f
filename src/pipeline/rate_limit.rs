//! The rate-limit stage's view of a decision: the client key and the
//! `RateLimit-*` headers (IETF draft-ietf-httpapi-ratelimit-headers, plus
//! the widespread `X-RateLimit-*` forms) that every response carries.

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::algo::limit::Decision;
use crate::config::KeySource;
use crate::http::request::RequestHead;
use crate::http::rewrite::push_decimal;

/// Who a request is from, as far as the limiter can tell.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The resolved client IP.
    pub ip: IpAddr,
    /// The name the route's `auth` proved (a configured consumer's or a
    /// token subject's); empty: anonymous.
    pub consumer: &'a [u8],
}

/// What a client key was made from: the configured source, or the client
/// IP it falls back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyed {
    /// The configured header's value.
    Header,
    /// The proved consumer's name.
    Consumer,
    /// The client IP (configured, or the fallback).
    Ip,
}

/// The limiter key for a request: a keyed hash (random per process, so
/// attackers cannot aim at one table slot) of the configured header's
/// value, or of the consumer, or of the client IP when the header is absent
/// or the request anonymous (or when keyed by IP); and which of them it was.
pub fn client_key(
    hasher: &impl BuildHasher,
    source: &KeySource,
    buf: &[u8],
    head: &RequestHead,
    caller: &Caller<'_>,
) -> (u64, Keyed) {
    match source {
        KeySource::Header(name) => {
            if let Some(v) = head.header(buf, name.as_bytes()) {
                return (hasher.hash_one((1u8, v)), Keyed::Header);
            }
        }
        // One budget per consumer, whichever key or token they used. The
        // name, not the config index, so gateways sharing a global store
        // agree even if their consumer lists are ordered differently.
        KeySource::Consumer if !caller.consumer.is_empty() => {
            return (hasher.hash_one((2u8, caller.consumer)), Keyed::Consumer);
        }
        KeySource::Consumer => {}
        KeySource::ClientIp => {}
    }
    (hasher.hash_one((0u8, caller.ip)), Keyed::Ip)
}

/// Appends the rate-limit headers for `d` to `extra`.
pub fn write_headers(extra: &mut Vec<u8>, d: &Decision) {
    // Runs for every request: appended piecewise, not through `write!`.
    let reset = d.reset_after.as_secs_ceil();
    for prefix in [&b""[..], b"X-"] {
        for (name, n) in [
            (&b"RateLimit-Limit: "[..], d.limit),
            (b"RateLimit-Remaining: ", d.remaining),
            (b"RateLimit-Reset: ", reset),
        ] {
            extra.extend_from_slice(prefix);
            extra.extend_from_slice(name);
            push_decimal(extra, n);
            extra.extend_from_slice(b"\r\n");
        }
    }
}

/// Seconds for `Retry-After`: rounded up, never 0.
pub fn retry_after_secs(d: &Decision) -> u64 {
    d.retry_after.as_secs_ceil().max(1)
}
