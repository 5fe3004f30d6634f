//! api-gateway: an HTTP/1.1 API gateway hand-rolled on mio.
//!
//! Crate map, from the socket up:
//! - [`worker`]: the event loop: accepting, timers, pumping bytes, and
//!   executing what each connection's session asks for.
//! - [`transport`]: one end of an exchange ([`transport::Side`]) over a
//!   [`transport::Transport`], with the only two I/O loops (`pump_in`,
//!   `pump_out`).
//! - [`conn`]: the sans-IO HTTP/1.1 session of one client connection
//!   ([`conn::Session::advance`] → [`conn::Step`]), its phases and buffers.
//! - [`upstream`]: upstream pools and [`upstream::Selection`], the guard
//!   that holds a breaker permit and an in-flight count.
//! - [`backend`]: the shared backend table (switches, in-flight, breakers,
//!   statistics) and the panic mode of selection.
//! - [`http`]: heads parsed in place, framing rules, path normalization and
//!   the Host grammar, rewriting, local replies.
//! - [`route`]: the compiled route table: host + path + method → route
//!   (precedence, segment-boundary prefixes, wildcard hosts, 404/405), and
//!   each route's policy (upstream, limiter, prefix rewriting, header
//!   edits, timeouts).
//! - [`auth`]: consumers, API keys (held as SHA-256 digests), JWT bearer
//!   tokens, and each route's `auth` rule (401/403, `X-Consumer`).
//! - [`pipeline`]: the stages' request-side rules (CORS, rate-limit headers)
//!   and the access log.
//! - [`algo`]: rate limiters, load balancers, circuit breaker (pure in `now`;
//!   they depend on the shared spec types, not on the admin).
//! - [`config`]: the configuration file and its validation.
//! - [`control`]: the control loop: admin commands, health, Prometheus text.
//! - [`shared`], [`metrics`], [`events`]: state every thread reads
//!   (configuration, the upstreams and their backend tables, per-route and
//!   global counters, the operator event log).
//! - [`tls`]: TLS termination (rustls): certificates chosen by SNI, the
//!   non-blocking TLS stream the transport wraps, handshake counters.
//! - [`trace`]: the per-request decision trace (typed stage entries, the
//!   trust rule, sampling, the shared ring the admin reads).
//! - [`net`]: address sets from the configuration (trusted proxies).
//! - [`gateway`]: starting and stopping it all; [`demo`]: the demo backends.

#![forbid(unsafe_code)]

pub mod algo;
pub mod auth;
pub mod backend;
pub mod config;
pub mod conn;
pub mod control;
pub mod demo;
pub mod events;
pub mod gateway;
pub mod health;
pub mod http;
pub mod metrics;
pub mod net;
pub mod pipeline;
pub mod reload;
pub mod route;
pub mod shared;
pub mod snapshot;
pub mod tls;
pub mod token;
pub mod trace;
pub mod transport;
pub mod upstream;
pub mod worker;

pub use config::Config;
pub use gateway::Gateway;
