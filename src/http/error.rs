//! Every response the gateway makes up itself, as one typed enum, and the one
//! place that maps it to a status code and a message.

use crate::auth::AuthFailure;

/// A request the gateway answers itself instead of (or after failing at)
/// forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// 400: malformed or ambiguous request (the reason is safe to show).
    BadRequest(&'static str),
    /// 404: no route matches the host and path.
    NoRoute,
    /// 405: a method the gateway does not forward (CONNECT, TRACE).
    MethodNotAllowed,
    /// 405: routes match the host and path but none takes the method (the
    /// `Allow` line, listing what they take, is added by the router).
    RouteMethodNotAllowed,
    /// 408: the head did not arrive in time.
    HeaderTimeout,
    /// 408: the rest of the request body did not arrive in time.
    BodyTimeout,
    /// 413: declared or streamed body above the limit.
    PayloadTooLarge,
    /// 414: request-target above the limit.
    UriTooLong,
    /// 429: rate limited; retry after this many seconds (never 0).
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after_secs: u64,
    },
    /// 431: head larger than the buffer, or too many fields.
    HeadTooLarge,
    /// 502: connection refused/reset, or an unparseable response.
    BadGateway(&'static str),
    /// 503: every backend's circuit is open or switched off.
    NoBackend,
    /// 503: every backend of the upstream fails its health checks.
    NoHealthyBackend,
    /// 503 (with `Retry-After`): every backend is at
    /// `max_inflight_per_backend` and there is no room to wait (no queue,
    /// or it is full).
    AtCapacity,
    /// 503 (with `Retry-After`): the request waited `queue.timeout_ms`
    /// for a backend in vain.
    QueueTimeout,
    /// 503: the gateway is at its connection limit or shutting down.
    Overloaded,
    /// 504: the backend did not answer in time.
    GatewayTimeout,
    /// 505: HTTP version other than 1.0/1.1.
    VersionNotSupported,
    /// 401 or 403: the route's `auth` refused the request (the
    /// `WWW-Authenticate` lines are added by the auth stage).
    Auth(AuthFailure),
}

impl HttpError {
    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::NoRoute => 404,
            HttpError::MethodNotAllowed | HttpError::RouteMethodNotAllowed => 405,
            HttpError::HeaderTimeout | HttpError::BodyTimeout => 408,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::RateLimited { .. } => 429,
            HttpError::HeadTooLarge => 431,
            HttpError::BadGateway(_) => 502,
            HttpError::NoBackend
            | HttpError::NoHealthyBackend
            | HttpError::AtCapacity
            | HttpError::QueueTimeout
            | HttpError::Overloaded => 503,
            HttpError::GatewayTimeout => 504,
            HttpError::VersionNotSupported => 505,
            HttpError::Auth(f) => f.status(),
        }
    }

    /// The `error` text of the JSON body (plain ASCII, no quotes).
    pub fn message(self) -> &'static str {
        match self {
            HttpError::BadRequest(reason) => reason,
            HttpError::NoRoute => "no route",
            HttpError::MethodNotAllowed | HttpError::RouteMethodNotAllowed => "method not allowed",
            HttpError::HeaderTimeout => "request header timeout",
            HttpError::BodyTimeout => "request body timeout",
            HttpError::PayloadTooLarge => "request body too large",
            HttpError::UriTooLong => "request URI too long",
            HttpError::RateLimited { .. } => "rate limit exceeded",
            HttpError::HeadTooLarge => "request header fields too large",
            HttpError::BadGateway(reason) => reason,
            HttpError::NoBackend => "no healthy backend: all circuits open",
            HttpError::NoHealthyBackend => "no healthy backend",
            HttpError::AtCapacity => "backends at capacity: the queue is full",
            HttpError::QueueTimeout => "backends at capacity: no room within the queue timeout",
            HttpError::Overloaded => "gateway overloaded",
            HttpError::GatewayTimeout => "backend timeout",
            HttpError::VersionNotSupported => "HTTP version not supported",
            HttpError::Auth(f) => f.message(),
        }
    }

    /// The one-word outcome a decision trace shows for a request this
    /// answer ended (`crate::trace`).
    pub fn verdict(self) -> &'static str {
        match self {
            HttpError::BadRequest(_) => "bad-request",
            HttpError::NoRoute => "no-route",
            HttpError::MethodNotAllowed | HttpError::RouteMethodNotAllowed => "method-not-allowed",
            HttpError::HeaderTimeout | HttpError::BodyTimeout => "client-timeout",
            HttpError::PayloadTooLarge | HttpError::UriTooLong | HttpError::HeadTooLarge => {
                "too-large"
            }
            HttpError::RateLimited { .. } => "rate-limited",
            HttpError::BadGateway(_) => "bad-gateway",
            HttpError::NoBackend | HttpError::NoHealthyBackend => "no-backend",
            HttpError::AtCapacity => "at-capacity",
            HttpError::QueueTimeout => "queue-timeout",
            HttpError::Overloaded => "overloaded",
            HttpError::GatewayTimeout => "gateway-timeout",
            HttpError::VersionNotSupported => "bad-version",
            HttpError::Auth(AuthFailure::Forbidden) => "forbidden",
            HttpError::Auth(_) => "auth-failed",
        }
    }

    /// The `Allow` value this answer must carry (RFC 9110 §15.5.6: a 405
    /// lists the methods that are served).
    pub fn allow(self) -> Option<&'static str> {
        match self {
            HttpError::MethodNotAllowed => Some(super::rules::ALLOWED_METHODS),
            _ => None,
        }
    }

    /// The reason phrase for the status line.
    pub fn reason(self) -> &'static str {
        reason_phrase(self.status())
    }

    /// Whether the client connection cannot safely carry another request
    /// after this answer (framing of the rest of the stream is unknown).
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            HttpError::BadRequest(_)
                | HttpError::MethodNotAllowed
                | HttpError::HeaderTimeout
                | HttpError::BodyTimeout
                | HttpError::PayloadTooLarge
                | HttpError::UriTooLong
                | HttpError::HeadTooLarge
                | HttpError::VersionNotSupported
                | HttpError::Overloaded
        )
    }
}

/// Reason phrases for the statuses the gateway writes itself.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        204 => "No Content",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
