//! A whole request (head and body) processed in one piece and in
//! fuzzer-chosen pieces, re-parsing the growing head prefix as the proxy
//! does, then scanning the body: same verdict, head length, framing and end.
#![no_main]

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let (cuts, data) = checks::split_input(input);
    checks::check_differential(data, &cuts);
});
