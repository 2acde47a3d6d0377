//! The protocol suite against the reference implementation (two acm devices on the mock
//! transport, under a paused clock), against deliberately broken variants of it, and the
//! sequences that found bugs, replayed.

use std::path::Path;
use std::sync::Arc;

use acm_conformance::mutant::Mutation;
use acm_conformance::protocol::transition::{AcceptInto, Transition};
use acm_conformance::protocol::{
    Factory, LinkFault, ProtocolSuiteConfig, ReferenceImplementation, Side, reference,
    reference_factory, replay, run_protocol_suite, run_protocol_suite_with,
};

fn create(side: Side, handle: u32, service: usize) -> Transition {
    Transition::Create {
        side,
        handle,
        service,
        ghost: false,
    }
}

fn mutated(mutation: Mutation) -> Factory {
    Arc::new(move || {
        Box::new(ReferenceImplementation::mutated(
            7,
            reference::DEFAULT_MAX_FRAME_SIZE,
            mutation,
        ))
    })
}

#[test]
fn the_reference_implementation_behaves_as_the_model_says() {
    let config = ProtocolSuiteConfig {
        cases: 256,
        max_steps: 48,
        regressions: Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("proptest-regressions/protocol"),
        ),
        ..ProtocolSuiteConfig::default()
    };
    let report = run_protocol_suite(&config);
    print!("{}", report.summary());
    assert_eq!(report.failures().count(), 0, "{}", report.summary());
    assert_eq!(report.results.len(), 6);
    for rule in ["SESS-3", "SESS-5", "MSG-2", "DISC-1", "LINK-6", "DATA-4"] {
        assert!(report.rules_covered().contains(rule), "{rule} is covered");
    }
}

#[test]
fn mutated_references_fail_the_case_about_the_rule_they_break() {
    let expected = [
        (
            Mutation::WrongDisconnectReason,
            "protocol/DISC-1/disconnect-reasons",
        ),
        (
            Mutation::DeliverPartialData,
            "protocol/MSG-2/delivery-in-order",
        ),
        (
            Mutation::ReorderFragments,
            "protocol/MSG-2/delivery-in-order",
        ),
    ];
    for (mutation, case) in expected {
        let config = ProtocolSuiteConfig {
            cases: 64,
            filter: Some(case.to_string()),
            ..ProtocolSuiteConfig::default()
        };
        let report = run_protocol_suite_with(&config, "mutant", mutated(mutation));
        let failure = report.failures().next();
        assert!(failure.is_some(), "{mutation:?} should fail {case}");
        let reproduce = failure
            .and_then(|f| f.reproduce.clone())
            .unwrap_or_default();
        assert!(reproduce.contains("minimal sequence"), "{reproduce}");
    }
}

/// Replays a sequence `times` times (the implementation's tokens are random, and some outcomes
/// depend on them).
fn replays(case: &str, sequence: &[Transition], times: usize) {
    for _ in 0..times {
        if let Err(failure) = replay(case, sequence, reference_factory()) {
            panic!("{failure}");
        }
    }
}

#[test]
fn a_request_that_arrives_after_the_answer_to_ours_is_no_crossing() {
    // B's request is rejected, but the rejection waits behind a stall, and A's request for the
    // same session follows it. B reads the rejection first: A's request is no crossing
    // (SESS-7), whatever the tokens; it goes to B's app.
    let sequence = [
        create(Side::A, 1, 0),
        create(Side::B, 2, 0),
        Transition::Connect { handle: 2, chan: 3 },
        Transition::Fault(LinkFault::Stall(Side::A)),
        Transition::Reject { chan: 3 },
        Transition::Connect { handle: 1, chan: 5 },
        Transition::Fault(LinkFault::Unstall(Side::A)),
    ];
    replays("protocol/SESS-3/handshake-outcomes", &sequence, 16);
}

#[test]
fn a_request_for_another_ability_is_not_refused_for_a_session_that_exists() {
    // SESS-3 compares the abilities on both sides: a connected session with MainAbility does
    // not make a request for GhostAbility a duplicate; no app handles it.
    let sequence = [
        create(Side::A, 1, 1),
        Transition::Connect { handle: 1, chan: 2 },
        Transition::Accept {
            chan: 2,
            into: AcceptInto::Fresh(3),
        },
        Transition::Create {
            side: Side::A,
            handle: 4,
            service: 1,
            ghost: true,
        },
        Transition::Connect { handle: 4, chan: 5 },
    ];
    replays("protocol/SESS-3/handshake-outcomes", &sequence, 1);
}

#[test]
fn a_session_destroyed_while_connecting_gets_no_event() {
    let sequence = [
        create(Side::A, 1, 0),
        Transition::Connect { handle: 1, chan: 2 },
        Transition::Destroy { handle: 1 },
        Transition::Accept {
            chan: 2,
            into: AcceptInto::Fresh(3),
        },
    ];
    replays("protocol/DISC-1/disconnect-reasons", &sequence, 1);
}

#[test]
fn a_link_that_dies_behind_stalls_leaves_no_task_behind() {
    // Both directions stall until the keepalive ends the link; one side closes it while its
    // peer's frames are held. Once everything is destroyed only the devices' own tasks remain.
    let sequence = [
        create(Side::A, 1, 0),
        Transition::Connect { handle: 1, chan: 2 },
        Transition::Fault(LinkFault::Stall(Side::A)),
        Transition::Fault(LinkFault::Stall(Side::B)),
        Transition::Advance { ms: 61_000 },
    ];
    replays("protocol/LINK-6/stalls-and-keepalive", &sequence, 8);
}
