//! Routing: which configured route a request belongs to, from its host, its
//! normalized path and its method. Pure and sans-IO: [`RouteTable::new`]
//! compiles the config's [`RouteDef`]s once (off the event loop) into an
//! immutable table that workers share through an `Arc`; [`RouteTable::find`]
//! runs per request and never allocates.
//!
//! # Matching
//! - **Host** (`hosts`): compared exactly with the request's host, which the
//!   caller has lower-cased and stripped of its port and trailing dot. The
//!   defs' names are compiled the same way (lower-cased, one trailing dot
//!   removed). `*.example.test` matches a host ending in `.example.test` with
//!   one or more labels before it (`a.example.test`, `a.b.example.test`), never
//!   `example.test` itself nor `xexample.test`. An empty `hosts` list matches
//!   any host, including an absent one (empty `host`). An entry that is neither
//!   a valid name (DNS labels of letters, digits, `-`, `_`; an IPv4 address is
//!   such a name) or a bracketed IPv6 literal, nor `*.` + a valid name, is a
//!   [`RouteError`]; so is a bare `*` (leave `hosts` empty instead).
//! - **Path** ([`PathRule`]): `Exact(p)` matches only `p`. `Prefix(p)` matches
//!   on segment boundaries: `/api` matches `/api`, `/api/`, `/api/x`, never
//!   `/apiary`. A prefix that ends in `/` requires that slash: `/api/` matches
//!   `/api/` and `/api/x` but not `/api` (nginx `location /api/` semantics).
//!   `Prefix("/")` matches every path that starts with `/`. The request path is
//!   the normalized one, without query; a def's path must already be in that
//!   normalized form (no `//`, no dot segment, no `?`/`#`, escapes as two
//!   upper-case hex digits of a reserved byte), else it could never match and
//!   is a [`RouteError`].
//! - **Method** (`methods`): tokens compared case-sensitively (RFC 9110 §9.1);
//!   an empty list allows every method. `GET` does not imply `HEAD`.
//!
//! # Precedence
//! Among the routes whose host and path match, ordered by:
//! 1. host: an exact host, then wildcard hosts by decreasing suffix length
//!    (`*.b.example.test` before `*.example.test`), then routes without
//!    `hosts` (a route listing several hosts ranks by the best one that matches);
//! 2. then an exact `path` before a `path_prefix`;
//! 3. then the longer prefix;
//! 4. then config order,
//!
//! the most specific ones decide: those with the first one's host key and
//! path rule (a "tier": the same exact host or wildcard suffix or none, and
//! the same path or prefix). The first of them, in config order, whose
//! `methods` allow the request's method wins, so one path can send reads
//! and writes to different upstreams. If none of them allows the method,
//! the answer is [`RouteMatch::MethodNotAllowed`] with the union of their
//! methods (each once, in config order) joined with `", "` as `Allow`: a
//! less specific route is never tried for the method, as a less specific
//! nginx `location` is not, so a route's method list cannot be sidestepped
//! through a catch-all. If no route matches host and path,
//! [`RouteMatch::NoRoute`].
//!
//! # Invariants
//! - A table is immutable once built and is `Send + Sync`.
//! - Route ids are indices into the defs slice, so config order is id order.
//! - Lookup cost is bounded by the host's labels and the path's segments
//!   (hash probes), never by the number of routes.

mod error;
mod hash;
mod host;
#[cfg(test)]
mod model;
mod path;
pub mod policy;
pub mod set;
mod table;

pub use error::RouteError;
pub use policy::RoutePolicy;
pub use set::RouteSet;
pub use table::RouteTable;

/// A route's identity: its index in the defs slice, i.e. its config order.
pub type RouteId = usize;

/// How a route matches the path. Both forms start with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRule {
    /// The config's `path`: matches only this path.
    Exact(String),
    /// The config's `path_prefix`: matches on segment boundaries.
    Prefix(String),
}

/// One route as the config layer hands it over (already parsed from JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteDef {
    /// Unique, non-empty name (metrics label, admin endpoints).
    pub name: String,
    /// Host names; empty = any host. `*.example.test` is a wildcard.
    pub hosts: Vec<String>,
    /// The path rule.
    pub path: PathRule,
    /// Allowed methods; empty = any. Tokens, case-sensitive.
    pub methods: Vec<String>,
}

/// The outcome of [`RouteTable::find`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMatch {
    /// This route takes the request.
    Found {
        /// The route.
        id: RouteId,
        /// For `strip_prefix`: how many leading bytes of the path the matched
        /// rule covers, chosen so that what is left (`&path[prefix_len..]`) is
        /// either empty (forward `/`) or starts with `/`. A prefix `p` without
        /// trailing slash covers `p.len()`; one ending in `/` covers all but
        /// that slash (`/api/` on `/api/x` leaves `/x`), so `Prefix("/")`
        /// covers 0; an exact path covers the whole path.
        prefix_len: usize,
    },
    /// No route matches host and path → the caller answers 404.
    NoRoute,
    /// Host and path match but no route allows the method → 405; the `Allow`
    /// value has been written into the caller's buffer.
    MethodNotAllowed,
}
