//! Replays every committed corpus and crash-regression file of the `secure` fuzz target through
//! `acm_secure::fuzzing::secure` on stable Rust, as part of `cargo test`. See fuzz/README.md.

use acm_wire::fuzzing::{Target, replay};

const TARGETS: &[Target] = &[Target {
    name: "secure",
    run: acm_secure::fuzzing::secure,
}];

#[test]
fn the_secure_corpus_and_regressions_pass() {
    let fuzz = replay::fuzz_dir(env!("CARGO_MANIFEST_DIR"));
    let report = replay::replay(&fuzz, TARGETS);
    eprintln!("{:?}", report.counts);
    assert!(report.total() >= 4, "too few inputs: {:?}", report.counts);
    assert!(report.failures.is_empty(), "{}", report.failures.join("\n"));
    assert!(replay::missing_files(&fuzz, TARGETS).is_empty());
}
