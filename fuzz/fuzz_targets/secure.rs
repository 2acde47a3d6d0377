//! Fuzz target `secure`: see `acm_secure::fuzzing::secure` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_secure::fuzzing::secure(data));
