//! Arbitrary bytes as a request head: an accepted head has one framing,
//! in-bounds spans, no smuggling shape, and survives the rewrite/re-parse
//! round trip with the same framing and no hop-by-hop fields.
#![no_main]

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_request_head(data);
});
