//! The wire suite catches broken implementations: every deliberately mutated variant of the
//! reference implementation fails at least one case, and the case that catches it is the one
//! about the rule it breaks.

use acm_conformance::mutant::Mutation;
use acm_conformance::profile::{Timers, device_config};
use acm_conformance::wire::{MockTarget, run_wire_suite};

async fn failures(target: MockTarget) -> Vec<&'static str> {
    let report = run_wire_suite(&target, "", |_| {}).await;
    report.failures().map(|r| r.case.id).collect()
}

#[tokio::test(start_paused = true)]
async fn every_mutant_fails_a_case_about_the_rule_it_breaks() {
    let expected = [
        (
            Mutation::WrongDisconnectReason,
            "wire/DISC-1/disconnect-reason",
        ),
        (
            Mutation::AcceptAnyResponseToken,
            "wire/SESS-4/forged-response-token",
        ),
        (Mutation::AcceptReplayedToken, "wire/SESS-1/replayed-token"),
        (Mutation::DeliverPartialData, "wire/DATA-4/large-transfer"),
        (Mutation::IgnoreMessageLimit, "wire/MSG-1/too-long-message"),
        (Mutation::ReorderFragments, "wire/DATA-4/large-transfer"),
    ];
    assert_eq!(
        expected.len(),
        Mutation::ALL.len(),
        "every mutation is tried"
    );
    for (mutation, case) in expected {
        let target = MockTarget::start_mutated(mutation).expect("target starts");
        let failed = failures(target).await;
        assert!(
            failed.contains(&case),
            "{mutation:?} should fail {case}; it failed {failed:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_unmutated_reference_fails_nothing() {
    let target = MockTarget::start(device_config(Timers::SPEC)).expect("target starts");
    assert_eq!(failures(target).await, Vec::<&str>::new());
}
