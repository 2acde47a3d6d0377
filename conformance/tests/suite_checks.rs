//! The wire suite catches what it claims to: an implementation whose timers fire earlier or
//! later than it declares fails the timer cases.

use acm_conformance::Verdict;
use acm_conformance::profile::{Timers, device_config};
use acm_conformance::wire::{MockTarget, WireCase, cases, run_case};

/// The cases that measure a timer the target declares.
fn timer_cases() -> Vec<WireCase> {
    let ids = [
        "wire/LINK-10/no-hello-times-out",
        "wire/SESS-5/requester-timer",
        "wire/SESS-5/responder-timeout",
    ];
    let chosen: Vec<WireCase> = cases()
        .into_iter()
        .filter(|c| ids.contains(&c.case.id))
        .collect();
    assert_eq!(chosen.len(), ids.len());
    chosen
}

async fn verdicts(target: &MockTarget) -> Vec<(&'static str, Verdict)> {
    let mut out = Vec::new();
    for case in timer_cases() {
        let result = run_case(&case, target).await;
        out.push((case.case.id, result.verdict));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn timers_that_fire_earlier_than_declared_fail_as_early() {
    // Runs the short timers, declares the specification's.
    let target = MockTarget::start(device_config(Timers::SHORT)).expect("target starts");
    for (id, verdict) in verdicts(&target).await {
        match verdict {
            Verdict::Fail { actual, .. } => assert!(actual.contains("early"), "{id}: {actual}"),
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn timers_that_fire_later_than_declared_fail() {
    // Runs the specification's timers, declares the short ones.
    let target = MockTarget::start(device_config(Timers::SPEC))
        .expect("target starts")
        .declaring(Timers::SHORT);
    for (id, verdict) in verdicts(&target).await {
        assert!(matches!(verdict, Verdict::Fail { .. }), "{id}: {verdict:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn timers_as_declared_pass() {
    let target = MockTarget::start(device_config(Timers::SPEC)).expect("target starts");
    for (id, verdict) in verdicts(&target).await {
        assert_eq!(verdict, Verdict::Pass, "{id}");
    }
}
