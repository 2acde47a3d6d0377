//! The black-box wire suite against the reference implementation: every case on a reference
//! target that has what it needs, none unsupported, none failed.

use acm::Security;
use acm_conformance::coverage::{coverage, gaps};
use acm_conformance::profile::{Timers, device_config};
use acm_conformance::wire::{MockTarget, ReferenceRun, cases, run_reference_with, run_wire_suite};
use acm_conformance::{Case, Verdict};

#[test]
fn the_reference_implementation_passes_every_wire_case() {
    let filter = std::env::var("ACM_CASES").unwrap_or_default();
    // Set by .ci/mutants: a mutant's run ends at its first failure.
    let fail_fast = std::env::var_os("ACM_FAIL_FAST").is_some();
    let run = ReferenceRun {
        fail_fast,
        insecure: false,
    };
    let report = run_reference_with(&filter, run, |_| {}).expect("the reference targets start");
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

#[tokio::test(start_paused = true)]
async fn a_plain_implementation_passes_every_case_but_the_secure_layers() {
    let plain = device_config(Timers::SPEC).with_security(Security::Insecure);
    let target = MockTarget::start(plain).expect("target starts");
    let report = run_wire_suite(&target, "", |_| {}).await;
    for result in &report.results {
        let secure_case = result.case.id.starts_with("wire/SEC-");
        match &result.verdict {
            Verdict::Pass => assert!(
                !secure_case || result.case.id == "wire/SEC-6/test-vectors",
                "{} passed against a plain implementation",
                result.case.id
            ),
            Verdict::Unsupported(_) => {}
            other => panic!("{}: {other:?}", result.case.id),
        }
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
