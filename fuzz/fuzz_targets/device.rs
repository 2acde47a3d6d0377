//! Fuzz target `device`: see `acm_fuzzing::device::device` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::device::device(data));
