//! Fuzz target `reassembly`: see `acm_fuzzing::wire::reassembly` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::wire::reassembly(data));
