//! The rate-limit stage's view of a decision: the client key and the
//! `RateLimit-*` headers (IETF draft-ietf-httpapi-ratelimit-headers, plus
//! the widespread `X-RateLimit-*` forms) that every response carries.

use std::hash::BuildHasher;
use std::io::Write;
use std::net::IpAddr;

use crate::algo::limit::Decision;
use crate::config::KeySource;
use crate::http::request::RequestHead;

/// The limiter key for a request: a keyed hash (random per process, so
/// attackers cannot aim at one table slot) of the configured header's value,
/// or of the client IP when the header is absent or not configured.
pub fn client_key(
    hasher: &impl BuildHasher,
    source: &KeySource,
    buf: &[u8],
    head: &RequestHead,
    ip: IpAddr,
) -> u64 {
    if let KeySource::Header(name) = source {
        if let Some(v) = head.header(buf, name.as_bytes()) {
            return hasher.hash_one((1u8, v));
        }
    }
    hasher.hash_one((0u8, ip))
}

/// Appends the rate-limit headers for `d` to `extra`.
pub fn write_headers(extra: &mut Vec<u8>, d: &Decision) {
    let reset = d.reset_after.as_secs_ceil();
    let _ = write!(
        extra,
        "RateLimit-Limit: {0}\r\nRateLimit-Remaining: {1}\r\nRateLimit-Reset: {2}\r\nX-RateLimit-Limit: {0}\r\nX-RateLimit-Remaining: {1}\r\nX-RateLimit-Reset: {2}\r\n",
        d.limit, d.remaining, reset
    );
}

/// Seconds for `Retry-After`: rounded up, never 0.
pub fn retry_after_secs(d: &Decision) -> u64 {
    d.retry_after.as_secs_ceil().max(1)
}
