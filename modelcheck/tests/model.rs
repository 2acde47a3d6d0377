//! The quick bounds of the model checker: every property holds over every interleaving of two
//! devices and of three, within small bounds; each conformance mutant applied between the
//! engines is found, by the property about the rule it breaks; and a counterexample replays.

use acm_modelcheck::{Bounds, Witness, explore, parse_steps, replay};

fn holds(bounds: Bounds) -> acm_modelcheck::Report {
    let report = explore(bounds, 2, |_| {});
    println!("{report}");
    assert!(report.counterexample.is_none(), "{report}");
    report
}

/// Fails unless the exploration reached each of `witnesses`: the bound reaches what the
/// properties are about.
fn reaches(report: &acm_modelcheck::Report, witnesses: &[Witness]) {
    for witness in witnesses {
        assert!(
            report.witnessed.contains(witness),
            "{witness:?} not reached"
        );
    }
}

#[test]
fn two_devices_keep_every_property_within_the_quick_bound() {
    let report = holds(Bounds::quick());
    assert_eq!(report.depth(), Bounds::quick().depth);
    reaches(
        &report,
        &[
            Witness::CrossingRequests,
            Witness::RefusedAsExisting,
            Witness::HandshakeTimeout,
            Witness::ResponderTimeout,
            Witness::KeepaliveClose,
            Witness::LostWithSessions,
            Witness::DataWhole,
            Witness::DisconnectSeen,
            Witness::DestroyedAnswered,
        ],
    );
}

#[test]
fn three_devices_keep_every_property_within_the_quick_bound() {
    let report = holds(Bounds {
        devices: 3,
        depth: 5,
        ..Bounds::quick()
    });
    assert!(report.witnessed.contains(&Witness::Connected));
}

#[test]
fn a_hostile_network_is_refused_within_the_quick_bound() {
    let report = holds(Bounds {
        depth: 7,
        hostile: true,
        ..Bounds::quick()
    });
    reaches(
        &report,
        &[
            Witness::ReplayRefused,
            Witness::ForgedRefused,
            Witness::OverlongRefused,
        ],
    );
}

#[cfg(feature = "mutants")]
#[test]
fn every_conformance_mutant_is_found_by_the_property_of_its_rule() {
    use acm_modelcheck::{Mutation, Property};
    let expected = [
        (Mutation::WrongDisconnectReason, Property::DisconnectReason),
        (
            Mutation::AcceptAnyResponseToken,
            Property::ForgedResponseRefused,
        ),
        (Mutation::AcceptReplayedToken, Property::ReplayRefused),
        (Mutation::DeliverPartialData, Property::WholeData),
        (Mutation::IgnoreMessageLimit, Property::MessageLimit),
        (Mutation::ReorderFragments, Property::NoRuleBroken),
    ];
    assert_eq!(
        expected.len(),
        Mutation::ALL.len(),
        "every mutation is tried"
    );
    for (mutation, property) in expected {
        let bounds = Bounds {
            hostile: true,
            mutation: Some(mutation),
            ..Bounds::quick()
        };
        let report = explore(bounds, 2, |_| {});
        let Some(found) = report.counterexample else {
            panic!("{mutation:?} not found: {report}");
        };
        println!(
            "{mutation:?}: {} at depth {}\n{found}",
            found.violation.property,
            found.depth()
        );
        assert_eq!(found.violation.property, property, "{mutation:?}: {found}");
        // The counterexample replays to the same violation.
        assert_eq!(
            replay(bounds, &found.all_steps()).map_err(|v| v.property),
            Err(property)
        );
    }
}

/// A counterexample of [`Mutation::WrongDisconnectReason`] as the checker printed it: the
/// phone's app disconnects, and the tablet must see PEER_APP_CLOSE_COLLABORATION.
const DISCONNECT: &str = "
    create phone tablet
    connect phone 101
    deliver 0 0
    accept tablet #1
    deliver 0 1
    disconnect phone 101
    // then the network quiets:
    deliver 0 0
";

#[test]
fn a_counterexample_replays_as_steps() {
    let steps = parse_steps(DISCONNECT).expect("steps");
    assert_eq!(steps.len(), 7);
    assert_eq!(replay(Bounds::quick(), &steps), Ok(()));
    #[cfg(feature = "mutants")]
    {
        let mutated = Bounds {
            mutation: Some(acm_modelcheck::Mutation::WrongDisconnectReason),
            ..Bounds::quick()
        };
        let broken = replay(mutated, &steps).expect_err("the mutant breaks DISC-1");
        assert_eq!(broken.property, acm_modelcheck::Property::DisconnectReason);
    }
}

#[test]
fn a_step_that_is_not_possible_does_not_replay() {
    let steps = parse_steps("connect phone 101").expect("steps");
    assert!(replay(Bounds::quick(), &steps).is_err());
}
