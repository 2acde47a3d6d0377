//! Fuzz target `secure`: see `acm_fuzzing::secure::secure` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::secure::secure(data));
