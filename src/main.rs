//! The `api-gateway` binary.

fn main() {}
