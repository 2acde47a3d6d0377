//! Replays every committed fuzz corpus file and crash-regression file through the bodies of the
//! fuzz targets (`acm_wire::fuzzing`), on stable Rust, as part of `cargo test`: the inputs that
//! once found a bug keep proving it fixed, and the seeds keep matching the code.
//!
//! Files live in `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`; see `fuzz/README.md`.
//! The targets of other crates (the engine's, in `acm`) are replayed by their own crate's test,
//! which also checks that nothing in `fuzz/` names an unknown target.

use acm_wire::fuzzing::replay::{fuzz_dir, missing_files, replay, stale_seeds};
use acm_wire::fuzzing::{TARGETS, seeds};

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let report = replay(&fuzz_dir(env!("CARGO_MANIFEST_DIR")), TARGETS);
    for (name, corpus, regressions) in &report.counts {
        eprintln!("{name}: replayed {corpus} corpus and {regressions} regression files");
    }
    eprintln!("replayed {} files", report.total());
    assert!(
        report.failures.is_empty(),
        "inputs that fail:\n{}",
        report.failures.join("\n")
    );
}

#[test]
fn every_target_has_a_target_file_and_a_corpus() {
    let missing = missing_files(&fuzz_dir(env!("CARGO_MANIFEST_DIR")), TARGETS);
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn the_committed_seeds_are_the_generated_ones() {
    let stale = stale_seeds(&fuzz_dir(env!("CARGO_MANIFEST_DIR")), &seeds());
    assert!(
        stale.is_empty(),
        "stale seeds (run `cargo run -p acm-wire --example fuzz_seeds`): {stale:?}"
    );
}
