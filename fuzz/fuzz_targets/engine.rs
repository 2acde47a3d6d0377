//! Fuzz target `engine`: see `acm_fuzzing::engine::engine` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::engine::engine(data));
