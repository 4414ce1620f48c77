#![no_main]
//! cargo-fuzz target: see `tapspan_fuzz::replay`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapspan_fuzz::replay(data));
