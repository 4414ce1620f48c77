#![no_main]
//! cargo-fuzz target: see `tapspan_fuzz::reassembly`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapspan_fuzz::reassembly(data));
