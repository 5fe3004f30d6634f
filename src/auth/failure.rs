//! Why authentication refused a request, and how each reason is answered.

/// A refused request's reason. Each is a label of
/// `gateway_auth_failures_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credential where the route reads one (401).
    Missing,
    /// An API key no consumer has, or two keys at once (401).
    Unknown,
    /// An authenticated consumer the route's `allow` list leaves out (403).
    Forbidden,
    /// A token past its `exp` (401).
    Expired,
    /// A token before its `nbf` (401; counted as `expired`: the token is
    /// genuine, its validity window is not now).
    NotYetValid,
    /// A signature that does not verify, or an algorithm the route does
    /// not accept (`none` included) (401).
    BadSignature,
    /// A malformed token, or a wrong `iss`/`aud`, or no usable consumer
    /// claim (401).
    Invalid,
}

impl AuthFailure {
    /// Every metric reason, in the order of [`AuthFailure::index`].
    pub const REASONS: [&'static str; 6] = [
        "missing",
        "unknown",
        "forbidden",
        "expired",
        "bad_signature",
        "invalid",
    ];

    /// The metric reason's index in [`AuthFailure::REASONS`].
    pub fn index(self) -> usize {
        match self {
            AuthFailure::Missing => 0,
            AuthFailure::Unknown => 1,
            AuthFailure::Forbidden => 2,
            AuthFailure::Expired | AuthFailure::NotYetValid => 3,
            AuthFailure::BadSignature => 4,
            AuthFailure::Invalid => 5,
        }
    }

    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            AuthFailure::Forbidden => 403,
            _ => 401,
        }
    }

    /// The `error` of the JSON body. It never quotes the credential.
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => "authentication required",
            AuthFailure::Unknown => "invalid API key",
            AuthFailure::Forbidden => "consumer not allowed on this route",
            AuthFailure::Expired => "token expired",
            AuthFailure::NotYetValid => "token not yet valid",
            AuthFailure::BadSignature => "invalid token signature",
            AuthFailure::Invalid => "invalid token",
        }
    }

    /// Whether the challenge says the credential was bad rather than
    /// absent (RFC 6750 §3.1 `error="invalid_token"`).
    pub fn is_invalid_credential(self) -> bool {
        !matches!(self, AuthFailure::Missing | AuthFailure::Forbidden)
    }
}
