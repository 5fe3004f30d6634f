//! The rate-limit stage's view of a decision: the client key and the
//! `RateLimit-*` headers (IETF draft-ietf-httpapi-ratelimit-headers, plus
//! the widespread `X-RateLimit-*` forms) that every response carries.

use std::hash::BuildHasher;
use std::net::IpAddr;

use crate::algo::limit::Decision;
use crate::config::KeySource;
use crate::http::request::RequestHead;
use crate::http::rewrite::push_decimal;

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
