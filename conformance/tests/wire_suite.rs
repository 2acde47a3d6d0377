//! The black-box wire suite against the reference implementation: every case on a reference
//! target that has what it needs, none unsupported, none failed.

use acm_conformance::coverage::{coverage, gaps};
use acm_conformance::wire::{cases, run_reference_with};
use acm_conformance::{Case, Verdict};

#[test]
fn the_reference_implementation_passes_every_wire_case() {
    let filter = std::env::var("ACM_CASES").unwrap_or_default();
    // Set by .ci/mutants: a mutant's run ends at its first failure.
    let fail_fast = std::env::var_os("ACM_FAIL_FAST").is_some();
    let report =
        run_reference_with(&filter, fail_fast, |_| {}).expect("the reference targets start");
    println!("{}", report.summary());
    let failed: Vec<_> = report.failures().map(|r| r.case.id).collect();
    assert!(
        failed.is_empty(),
        "failed: {failed:?}\n{}",
        report.summary()
    );
    let not_passed: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| (r.case.id, r.verdict.clone()))
        .collect();
    assert!(not_passed.is_empty(), "{not_passed:?}");
    if filter.is_empty() && !fail_fast {
        assert_eq!(report.results.len(), cases().len());
    }
}

#[test]
fn case_ids_are_unique_and_cite_known_rules() {
    let all = cases();
    let mut ids: Vec<_> = all.iter().map(|c| c.case.id).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "duplicate case ids");
    for case in &all {
        assert!(case.case.id.starts_with("wire/"), "{}", case.case.id);
        for rule in case.case.rules {
            assert!(
                acm_conformance::rules::text(rule).is_some(),
                "{}: unknown rule {rule}",
                case.case.id
            );
        }
        let named = case.case.id.split('/').nth(1).unwrap_or_default();
        assert!(
            case.case.rules.contains(&named),
            "{}: its id names a rule it does not cite",
            case.case.id
        );
        if let Some(broken) = case.case.breaks {
            assert!(
                case.case.rules.contains(&broken),
                "{}: it breaks {broken}, which it does not cite",
                case.case.id
            );
        }
    }
}

#[test]
fn every_must_rule_of_the_bindings_run_has_a_case_with_invalid_input() {
    let all: Vec<Case> = cases().iter().map(|c| c.case).collect();
    let table = coverage(all.iter());
    assert_eq!(gaps(&table), Vec::<&str>::new());
}
