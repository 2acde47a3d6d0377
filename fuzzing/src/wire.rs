//! The bodies of the wire's fuzz targets, and the seed inputs of their corpora.
//!
//! Each body takes arbitrary bytes, drives one part of the wire with them, and panics when an
//! invariant breaks; a panic is what a fuzzer reports as a crash. The same functions run under
//! libFuzzer (`fuzz/fuzz_targets/*.rs`) and, on stable Rust, in the replay test
//! (`fuzzing/tests/replay.rs`), which feeds them every committed corpus and regression file.
//!
//! The bodies do not trust the code they test to describe itself: where they check a decision
//! (is this header acceptable, is this fragment an error, is this body valid), they compare it
//! with a small model written from SPEC.md. A body accepts an error when the model finds the
//! rule the error names among the rules the input breaks, since SPEC.md lets a receiver report
//! any of them (section 3.5).
//!
//! Inputs start with a configuration byte or two, then the bytes under test; [`seeds`] builds
//! valid inputs from real traffic, and `fuzz/README.md` describes each layout.

mod control;
mod frames;
mod reassembly;
mod seeds;
mod segments;

pub use control::control_messages;
pub use frames::{frame_decoder, frame_roundtrip};
pub use reassembly::reassembly;
pub use seeds::seeds;
pub use segments::segments_target as segments;
