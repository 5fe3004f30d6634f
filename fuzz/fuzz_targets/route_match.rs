//! A small route set, a Host and a raw request target through the worker's
//! routing steps (normalize, host name, `RouteTable::find`, forward path);
//! see `fuzz/src/route_match.rs` for the input layout and the invariants.
#![no_main]

#[path = "../src/route_match.rs"]
mod route_match;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    route_match::run(input);
});
