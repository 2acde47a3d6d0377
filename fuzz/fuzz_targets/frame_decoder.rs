//! Fuzz target `frame_decoder`: see `acm_wire::fuzzing::frame_decoder` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_wire::fuzzing::frame_decoder(data));
