//! Fuzz target `control_messages`: see `acm_wire::fuzzing::control_messages` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_wire::fuzzing::control_messages(data));
