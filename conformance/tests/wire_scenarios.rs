//! The random scenarios over the wire (SPEC section 15.1): they pass against the reference
//! implementation reached over links, and catch mutated references black-box.

use std::sync::Arc;

use acm_conformance::Verdict;
use acm_conformance::mutant::Mutation;
use acm_conformance::protocol::{ProtocolSuiteConfig, run_wire_scenarios};
use acm_conformance::wire::{MockKind, MockTarget, WireTarget};

/// A runtime for the target, on threads of its own: the suite's steps block the test's thread.
fn target_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

fn config(cases: u32, seed: u8) -> ProtocolSuiteConfig {
    ProtocolSuiteConfig {
        cases,
        seed: Some([seed; 32]),
        max_shrink_iters: 64,
        ..ProtocolSuiteConfig::default()
    }
}

#[test]
fn random_scenarios_pass_against_the_reference_over_secure_mock_links() {
    let runtime = target_runtime();
    let target = runtime
        .block_on(async { MockTarget::profile(MockKind::Plain) })
        .expect("the reference target");
    let target: Arc<dyn WireTarget> = Arc::new(target);
    let result = run_wire_scenarios(&config(24, 7), target);
    assert_eq!(
        result.verdict,
        Verdict::Pass,
        "{}",
        result.reproduce.unwrap_or_default()
    );
}

#[test]
fn a_target_that_carries_no_data_cannot_be_driven() {
    let runtime = target_runtime();
    let target = runtime
        .block_on(async { MockTarget::profile(MockKind::NoData) })
        .expect("the reference target");
    let result = run_wire_scenarios(&config(1, 1), Arc::new(target));
    assert!(matches!(result.verdict, Verdict::Unsupported(_)));
}

/// How many scenarios, each of its own seed, run before one fails against `mutation`; `None`
/// if none of `most` does.
fn scenarios_to_catch(mutation: Mutation, most: u8) -> Option<(u8, String)> {
    let runtime = target_runtime();
    let target = runtime
        .block_on(async { MockTarget::start_mutated(mutation) })
        .expect("the mutated target");
    let target: Arc<dyn WireTarget> = Arc::new(target);
    (1..=most).find_map(|seed| {
        let result = run_wire_scenarios(&config(1, seed), target.clone());
        (result.verdict != Verdict::Pass).then(|| (seed, result.reproduce.unwrap_or_default()))
    })
}

/// The mutants a peer that keeps to the API can expose: the others need frames no API call
/// makes (forged and replayed tokens, messages over 1024 bytes), which the wire cases send.
#[test]
fn random_scenarios_catch_mutated_references_black_box() {
    // With the seeds below: the first scenario catches the wrong reason, the fourth the
    // data mutants (a transfer over 65 535 bytes, in three fragments or more).
    for mutation in [
        Mutation::WrongDisconnectReason,
        Mutation::DeliverPartialData,
        Mutation::ReorderFragments,
    ] {
        let (n, reproduce) = scenarios_to_catch(mutation, 16)
            .unwrap_or_else(|| panic!("{mutation:?} passes 16 random scenarios"));
        eprintln!("{mutation:?}: caught by scenario {n}\n{reproduce}");
        assert!(reproduce.contains("minimal sequence"), "{reproduce}");
    }
}
