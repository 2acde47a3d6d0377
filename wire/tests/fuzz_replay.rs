//! Replays every committed fuzz corpus file and crash-regression file through the bodies of the
//! fuzz targets (`acm_wire::fuzzing`), on stable Rust, as part of `cargo test`: the inputs that
//! once found a bug keep proving it fixed, and the seeds keep matching the code.
//!
//! Files live in `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`; see `fuzz/README.md`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use acm_wire::fuzzing::{TARGETS, Target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The regular files of `dir`, sorted; none when it does not exist. Hidden files are skipped
/// (libFuzzer keeps its lock and temporary files there).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Subdirectory names of `dir`.
fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Runs `target` on every file; returns how many ran and the ones that panicked.
fn replay(target: &Target, files: &[PathBuf]) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    for file in files {
        let input = std::fs::read(file).expect("readable fuzz input");
        if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
            failures.push(format!("{}: {}", target.name, file.display()));
        }
    }
    (files.len(), failures)
}

#[test]
fn every_corpus_and_regression_file_passes_its_target() {
    let fuzz = fuzz_dir();
    let mut failures = Vec::new();
    let mut total = 0;
    for target in TARGETS {
        let corpus = files(&fuzz.join("corpus").join(target.name));
        let regressions = files(&fuzz.join("regressions").join(target.name));
        assert!(
            !corpus.is_empty(),
            "no corpus for {} in {}",
            target.name,
            fuzz.join("corpus").display()
        );
        let (ran_corpus, failed) = replay(target, &corpus);
        failures.extend(failed);
        let (ran_regressions, failed) = replay(target, &regressions);
        failures.extend(failed);
        eprintln!(
            "{}: replayed {ran_corpus} corpus and {ran_regressions} regression files",
            target.name
        );
        assert!(ran_corpus >= 1);
        total += ran_corpus + ran_regressions;
    }
    eprintln!("replayed {total} files");
    assert!(
        failures.is_empty(),
        "inputs that fail:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_fuzz_directory_and_target_file_names_a_known_target() {
    let fuzz = fuzz_dir();
    let known: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    for kind in ["corpus", "regressions"] {
        for dir in subdirs(&fuzz.join(kind)) {
            assert!(
                known.contains(&dir.as_str()),
                "fuzz/{kind}/{dir} is no target"
            );
        }
    }
    let mut target_files: Vec<String> = files(&fuzz.join("fuzz_targets"))
        .iter()
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    target_files.sort();
    let mut names: Vec<String> = known.iter().map(|n| n.to_string()).collect();
    names.sort();
    assert_eq!(
        target_files, names,
        "fuzz/fuzz_targets/*.rs and fuzzing::TARGETS differ"
    );
}

#[test]
fn the_committed_seeds_are_the_generated_ones() {
    let corpus = fuzz_dir().join("corpus");
    for seed in acm_wire::fuzzing::seeds() {
        let path = corpus.join(seed.target).join(format!("seed-{}", seed.name));
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == seed.bytes,
            "{} is stale: run `cargo run -p acm-wire --example fuzz_seeds`",
            path.display()
        );
    }
}
