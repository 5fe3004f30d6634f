//! Arbitrary bytes as a backend response head, for a GET and for a HEAD:
//! bodiless statuses and HEAD frame as Empty, spans stay in bounds, and the
//! rewritten head re-parses with the same status and framing.
#![no_main]

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_response_head(data, false);
    checks::check_response_head(data, true);
});
