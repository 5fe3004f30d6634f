//! Random event sequences (bytes arrive, peers close or reset, windows
//! open, connects resolve, time passes, timers fire) fed to one session in
//! the scripted world; see `fuzz/src/session.rs` for the decoding and the
//! checks.
#![no_main]

#[path = "../src/session.rs"]
mod session;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    session::run(input);
});
