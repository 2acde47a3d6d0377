//! The protocol suite against the reference implementation (two acm devices on the mock
//! transport, under a paused clock), against deliberately broken variants of it, and the
//! sequences that found bugs, replayed.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use acm::CollaborateEventType;
use bytes::Bytes;

use acm_conformance::mutant::Mutation;
use acm_conformance::protocol::implementation::{
    Observation, ProtocolImplementation, RequestRef, Resources, SessionRef,
};
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

/// A's session 1 for `service` connects on channel 2, accepted into B's new session 3.
fn connected(service: usize) -> [Transition; 3] {
    [
        create(Side::A, 1, service),
        Transition::Connect { handle: 1, chan: 2 },
        Transition::Accept {
            chan: 2,
            into: AcceptInto::Fresh(3),
        },
    ]
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

/// The reference as if its clock were real and its handshake timers had no time at all: every
/// handshake under way outlives them, so every scenario that goes wrong after one may be the
/// timers' doing, not the implementation's.
struct TimersOfNoLength(ReferenceImplementation);

impl ProtocolImplementation for TimersOfNoLength {
    fn name(&self) -> String {
        self.0.name()
    }
    fn create_session(&mut self, side: Side, service: &str, peer: &str) -> Result<SessionRef, u32> {
        self.0.create_session(side, service, peer)
    }
    fn connect(&mut self, side: Side, session: SessionRef) {
        self.0.connect(side, session);
    }
    fn accept(&mut self, side: Side, request: RequestRef, session: SessionRef) {
        self.0.accept(side, request, session);
    }
    fn reject(&mut self, side: Side, request: RequestRef, reason: &str) -> Result<(), u32> {
        self.0.reject(side, request, reason)
    }
    fn send_message(&mut self, side: Side, session: SessionRef, text: String) {
        self.0.send_message(side, session, text);
    }
    fn send_data(&mut self, side: Side, session: SessionRef, data: Bytes) {
        self.0.send_data(side, session, data);
    }
    fn send_event(
        &mut self,
        side: Side,
        session: SessionRef,
        event: CollaborateEventType,
        text: String,
    ) {
        self.0.send_event(side, session, event, text);
    }
    fn disconnect(&mut self, side: Side, session: SessionRef) -> Result<(), u32> {
        self.0.disconnect(side, session)
    }
    fn destroy(&mut self, side: Side, session: SessionRef) -> Result<(), u32> {
        self.0.destroy(side, session)
    }
    fn inject(&mut self, fault: LinkFault) {
        self.0.inject(fault);
    }
    fn advance(&mut self, by: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        self.0.advance(by)
    }
    fn drain(&mut self) -> Vec<Observation> {
        self.0.drain()
    }
    fn resources(&self) -> Resources {
        self.0.resources()
    }
    fn handshake_limit(&self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

fn real_clock(mutation: Option<Mutation>) -> Factory {
    Arc::new(move || {
        let size = reference::DEFAULT_MAX_FRAME_SIZE;
        Box::new(TimersOfNoLength(match mutation {
            Some(mutation) => ReferenceImplementation::mutated(7, size, mutation),
            None => ReferenceImplementation::new(7, size),
        }))
    })
}

#[test]
fn a_scenario_that_outlives_a_handshake_timer_is_voided_not_failed() {
    // The wrong DISCONNECT reason is told from the model at the last step; on a clock where
    // the handshake before it may have timed out, that is no proof of a defect.
    let case = "protocol/DISC-1/disconnect-reasons";
    let [create, connect, accept] = connected(0);
    let sequence = [
        create,
        connect,
        accept,
        Transition::Disconnect { handle: 1 },
    ];
    let defect = Some(Mutation::WrongDisconnectReason);
    let judged = replay(case, &sequence, mutated(Mutation::WrongDisconnectReason));
    let judged = judged.expect_err("the defect fails the sequence");
    assert!(judged.contains("step 4"), "{judged}");
    let voided = replay(case, &sequence, real_clock(defect)).expect_err("not a pass");
    assert!(
        voided.starts_with("voided: step 4: the handshake of channel 2"),
        "{voided}"
    );
    // Where nothing differs from the model, nothing is voided, however long handshakes take.
    replay(case, &sequence, real_clock(None)).expect("the reference passes");
}

#[test]
fn defects_seen_only_after_a_timer_may_have_fired_are_never_blamed_on_a_sequence() {
    let config = ProtocolSuiteConfig {
        cases: 64,
        filter: Some("protocol/DISC-1/disconnect-reasons".into()),
        ..ProtocolSuiteConfig::default()
    };
    let report = run_protocol_suite_with(
        &config,
        "mutant",
        real_clock(Some(Mutation::WrongDisconnectReason)),
    );
    // Either enough scenarios never reached the defect, or the case gives up and says why.
    for failure in report.failures() {
        let text = format!("{:?}", failure.verdict);
        assert!(text.contains("scenarios were voided"), "{text}");
        assert!(failure.reproduce.is_none(), "no sequence is blamed");
    }
    let report = run_protocol_suite_with(&config, "reference", real_clock(None));
    assert_eq!(report.failures().count(), 0, "{}", report.summary());
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
    let [create, connect, accept] = connected(1);
    let sequence = [
        create,
        connect,
        accept,
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
