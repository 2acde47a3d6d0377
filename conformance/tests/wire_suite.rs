//! The black-box wire suite against the reference implementation over the mock transport.

use acm::{DeviceConfig, Security};
use acm_conformance::Verdict;
use acm_conformance::wire::{MockTarget, cases, run_wire_suite};

#[tokio::test(start_paused = true)]
async fn the_reference_implementation_passes_every_wire_case() {
    let target = MockTarget::start(DeviceConfig::default()).expect("target starts");
    let filter = std::env::var("ACM_CASES").unwrap_or_default();
    let report = run_wire_suite(&target, &filter, |_| {}).await;
    println!("{}", report.summary());
    let failed: Vec<_> = report.failures().map(|r| r.case.id).collect();
    assert!(
        failed.is_empty(),
        "failed: {failed:?}\n{}",
        report.summary()
    );
    assert!(
        report
            .results
            .iter()
            .all(|r| matches!(r.verdict, Verdict::Pass | Verdict::Unsupported(_))),
    );
    assert!(report.results.len() >= 60, "{} cases", report.results.len());
}

#[tokio::test(start_paused = true)]
async fn a_plain_implementation_passes_every_case_but_the_secure_layers() {
    let plain = DeviceConfig::default().with_security(Security::Insecure);
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
    }
}
