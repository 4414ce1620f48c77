#![no_main]
//! cargo-fuzz target: see `tapspan_fuzz::postgres`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapspan_fuzz::postgres(data));
