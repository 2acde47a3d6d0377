//! Fuzz target `segments`: see `acm_fuzzing::wire::segments` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::wire::segments(data));
