//! A chunked body fed whole and cut at fuzzer-chosen points (see
//! `checks::split_input` for the input layout): same verdict, same end,
//! same payload size, and the same answer as a plain reading of the grammar.
#![no_main]

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let (cuts, data) = checks::split_input(input);
    checks::check_chunked(data, &cuts);
});
