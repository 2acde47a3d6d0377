//! Fuzz target `frame_roundtrip`: see `acm_fuzzing::wire::frame_roundtrip` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::wire::frame_roundtrip(data));
