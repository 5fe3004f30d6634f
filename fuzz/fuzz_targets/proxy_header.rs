//! Arbitrary bytes as the start of a PROXY-protocol connection (and as
//! X-Forwarded-For lines): no panic, the verdict does not depend on how the
//! bytes are split, a complete header stays within its bounds.
#![no_main]

#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::check_proxy_header(data);
});
