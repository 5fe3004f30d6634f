//! The admin port's resource limits: how many connections it holds, how long
//! a client may take to send its request, and how many bytes it may send.
//!
//! Every limit applies before authentication (a token does not help against a
//! client that never finishes its head), so together they bound what any
//! peer that can reach the port can cost: at most `max_connections`
//! descriptors and threads, at most `max_head_bytes + max_body_bytes` of
//! buffer per connection, and at most `header_timeout + body_timeout +
//! send_timeout + linger` of a slot's time.

use std::time::Duration;

/// Limits of the admin server; [`Default`] is what the gateway runs with
/// (it overrides `max_head_bytes` with the data plane's
/// `limits.max_header_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections held at once (default 64). At the cap a new connection
    /// takes the slot of the oldest one still sending its request, or is
    /// closed at once when every slot is answering a complete request.
    pub max_connections: usize,
    /// Time from accept to the complete request head (default 5 s): a
    /// deadline, not an idle timer, so trickling bytes does not extend it.
    pub header_timeout: Duration,
    /// Time from the end of the head to the complete body (default 10 s).
    pub body_timeout: Duration,
    /// Largest request head, request line included (default 16 KiB, the data
    /// plane's default `limits.max_header_bytes`); beyond it: 431.
    pub max_head_bytes: usize,
    /// Largest request body (default 64 KiB; algorithm parameters are tiny);
    /// beyond it: 413.
    pub max_body_bytes: usize,
    /// Largest body of `POST /gateway/config` (default 1 MiB): a whole
    /// config with its routes and consumers. Applies only after the token
    /// was checked.
    pub max_config_bytes: usize,
    /// Time allowed to write a response to a client that does not read it.
    pub send_timeout: Duration,
    /// After the response, how long the admin keeps discarding what the
    /// client still sends before closing, so an error answer (431, 413) is
    /// not destroyed by a reset while the client is still writing.
    pub linger: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            max_config_bytes: 1024 * 1024,
            send_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(1),
        }
    }
}
