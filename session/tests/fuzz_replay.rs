//! Replays every committed corpus and crash-regression file of the `engine` fuzz target through
//! `acm::fuzzing::engine` on stable Rust, as part of `cargo test`, and checks that `fuzz/`
//! holds exactly the targets of `acm-wire` and `acm`. See `fuzz/README.md`.

use std::path::PathBuf;

use acm_wire::fuzzing::replay;

fn fuzz() -> PathBuf {
    replay::fuzz_dir(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_engine_corpus_and_regressions_pass() {
    let report = replay::replay(&fuzz(), acm::fuzzing::TARGETS);
    eprintln!("{:?}", report.counts);
    assert!(
        report.total() >= 10,
        "too few engine inputs: {:?}",
        report.counts
    );
    assert!(report.failures.is_empty(), "{}", report.failures.join("\n"));
}

#[test]
fn fuzz_holds_the_targets_of_both_crates_and_current_seeds() {
    // acm-secure's target is replayed by its own crate's test.
    let secure = acm_wire::fuzzing::Target {
        name: "secure",
        run: acm::secure::fuzzing::secure,
    };
    let every: Vec<_> = acm_wire::fuzzing::TARGETS
        .iter()
        .chain(acm::fuzzing::TARGETS)
        .chain([&secure])
        .copied()
        .collect();
    let mut problems = replay::missing_files(&fuzz(), &every);
    problems.extend(replay::unknown_files(&fuzz(), &every));
    let stale = replay::stale_seeds(&fuzz(), &acm::fuzzing::seeds());
    problems.extend(stale.iter().map(|path| {
        format!(
            "{} is stale: cargo run -p acm --example engine_fuzz_seeds",
            path.display()
        )
    }));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
