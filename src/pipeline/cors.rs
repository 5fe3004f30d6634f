//! CORS at the gateway: response headers for allowed origins, and preflight
//! requests answered here without bothering a backend (Fetch standard §3.2).

use std::io::Write;

use crate::config::CorsConfig;
use crate::http::head::eq_ci;
use crate::http::request::{Method, RequestHead};

/// What CORS makes of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorsKind {
    /// No `Origin`: not a CORS request.
    None,
    /// A preflight: answer 204 at the gateway.
    Preflight,
    /// An actual cross-origin request: add headers to the response.
    Actual,
}

/// Classifies the request.
pub fn classify(buf: &[u8], head: &RequestHead) -> CorsKind {
    if head.header(buf, b"origin").is_none() {
        CorsKind::None
    } else if head.method() == Method::Options
        && head.header(buf, b"access-control-request-method").is_some()
    {
        CorsKind::Preflight
    } else {
        CorsKind::Actual
    }
}

/// Appends the CORS response headers for this request's origin to `extra`
/// (nothing if the origin is not allowed).
pub fn write_headers(
    extra: &mut Vec<u8>,
    cfg: &CorsConfig,
    buf: &[u8],
    head: &RequestHead,
    kind: CorsKind,
) {
    let Some(origin) = head.header(buf, b"origin") else {
        return;
    };
    let any = cfg.allow_origins.iter().any(|o| o == "*");
    if any {
        extra.extend_from_slice(b"Access-Control-Allow-Origin: *\r\n");
    } else if cfg
        .allow_origins
        .iter()
        .any(|o| eq_ci(o.as_bytes(), origin))
    {
        extra.extend_from_slice(b"Access-Control-Allow-Origin: ");
        extra.extend_from_slice(origin);
        extra.extend_from_slice(b"\r\nVary: Origin\r\n");
    } else {
        // No permission, but the answer still depends on `Origin`: a cache
        // must not hand this response to an allowed origin (Fetch §3.2.5).
        extra.extend_from_slice(b"Vary: Origin\r\n");
        return;
    }
    match kind {
        CorsKind::Preflight => {
            let _ = write!(
                extra,
                "Access-Control-Allow-Methods: {}\r\nAccess-Control-Allow-Headers: {}\r\nAccess-Control-Max-Age: {}\r\n",
                cfg.allow_methods, cfg.allow_headers, cfg.max_age_secs
            );
        }
        CorsKind::Actual => extra.extend_from_slice(
            b"Access-Control-Expose-Headers: x-request-id, x-backend, x-response-time, x-lb-algorithm, x-circuit-state, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After\r\n",
        ),
        CorsKind::None => {}
    }
}
