//! Fuzz target `frame_decoder`: see `acm_fuzzing::wire::frame_decoder` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::wire::frame_decoder(data));
