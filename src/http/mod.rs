//! HTTP/1.1 message handling for the proxy: heads parsed in place, body
//! framing, the request-level rules (refused paths, methods and upgrades),
//! head rewriting and gateway-made replies.

pub mod chunked;
pub mod client_ip;
pub mod edits;
pub mod error;
pub mod head;
pub mod host;
pub mod normalize;
pub mod path_check;
pub mod proxy_protocol;
pub mod query;
pub mod request;
pub mod response;
pub mod rewrite;
pub mod rules;
pub mod upgrade;

pub use error::HttpError;
