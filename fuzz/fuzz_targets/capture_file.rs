#![no_main]
//! cargo-fuzz target: see `tapspan_fuzz::capture_file`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapspan_fuzz::capture_file(data));
