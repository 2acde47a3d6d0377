//! Fuzz target `engine`: see `acm::fuzzing::engine` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm::fuzzing::engine(data));
