//! Fuzz target `reassembly`: see `acm_wire::fuzzing::reassembly` and fuzz/README.md.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| acm_wire::fuzzing::reassembly(data));
