#![no_main]
//! cargo-fuzz target: see `tapspan_fuzz::redis`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapspan_fuzz::redis(data));
