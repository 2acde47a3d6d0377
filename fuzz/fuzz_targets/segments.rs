//! Fuzz target `segments`: see `acm_wire::fuzzing::segments` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_wire::fuzzing::segments(data));
