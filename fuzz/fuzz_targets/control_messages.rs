//! Fuzz target `control_messages`: see `acm_fuzzing::wire::control_messages` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_fuzzing::wire::control_messages(data));
