#![no_main]
//! cargo-fuzz target: see `tapspan_fuzz::http2`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapspan_fuzz::http2(data));
