//! Replays every committed fuzz corpus file and crash-regression file through the bodies of the
//! fuzz targets, on stable Rust, as part of `cargo test`: the inputs that once found a bug keep
//! proving it fixed, and the seeds keep matching the code. Files live in `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/`; see `fuzz/README.md`.

use acm_fuzzing::replay::{fuzz_dir, missing_files, replay, stale_seeds, unknown_files};
use acm_fuzzing::{TARGETS, seeds};

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let report = replay(&fuzz_dir(env!("CARGO_MANIFEST_DIR")), TARGETS);
    for (name, corpus, regressions) in &report.counts {
        eprintln!("{name}: replayed {corpus} corpus and {regressions} regression files");
        assert!(
            corpus + regressions >= 10,
            "too few {name} inputs: {corpus} corpus, {regressions} regression files"
        );
    }
    eprintln!("replayed {} files", report.total());
    assert!(
        report.failures.is_empty(),
        "inputs that fail:\n{}",
        report.failures.join("\n")
    );
}

#[test]
fn fuzz_holds_exactly_the_targets_each_with_a_target_file_and_a_corpus() {
    let dir = fuzz_dir(env!("CARGO_MANIFEST_DIR"));
    let mut problems = missing_files(&dir, TARGETS);
    problems.extend(unknown_files(&dir, TARGETS));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_committed_seeds_are_the_generated_ones() {
    let stale = stale_seeds(&fuzz_dir(env!("CARGO_MANIFEST_DIR")), &seeds());
    assert!(
        stale.is_empty(),
        "stale seeds (run `cargo run -p acm-fuzzing --example fuzz_seeds`): {stale:?}"
    );
}
