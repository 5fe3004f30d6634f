//! The per-request decision trace: what each pipeline stage decided for one
//! request, in order, with its inputs, kept for the admin to fetch
//! (`GET /gateway/trace/:id`, `GET /gateway/trace`).
//!
//! A request is traced when it asks (`X-Gateway-Trace: 1`) and is trusted
//! ([`admit`]), or when `trace.sample_per_million` picks it ([`sample`]).
//! Everything else pays nothing: the exchange holds `Option<Box<Trace>>`,
//! `None` unless traced, and every trace point is one `if let`.
//!
//! Files: `record.rs` (the typed trace), `admit.rs` (the trust rule),
//! `sample.rs` (the sampler), `ring.rs` (the last traces, shared),
//! `json.rs` (rendering, only when fetched).
//!
//! Never: a trace holds no credential (a header-keyed limit shows the
//! header's name and the key's hash, never the value), and the trace
//! headers never reach a backend (`X-Gateway-Trace-Token` is the admin
//! token).

pub mod admit;
pub mod json;
pub mod record;
pub mod ring;
pub mod sample;

pub use record::{Origin, Stage, Trace};
pub use ring::TraceRing;
pub use sample::Sampler;
