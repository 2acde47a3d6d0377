//! The protocol suite: property-based tests of a whole implementation through the
//! abilityConnectionManager API, against a reference model of what SPEC.md says.
//!
//! A model of two devices' apps and sessions ([`model`]) generates random sequences of API calls
//! (create, connect, accept, reject, send a message, data or an event, disconnect, destroy),
//! link faults (stall, drop, corrupt, lose) and time, with
//! `proptest-state-machine`. Each sequence is applied to an implementation through the
//! [`ProtocolImplementation`] trait, and after every step the suite checks:
//!
//! * exactly what each session and app observed: events in order, `connect` results with their
//!   codes, disconnect reasons, the requests `onCollaborate` received, the results of calls
//!   (while the link keeps its contract: after dropped or corrupted frames, until the link is
//!   lost, only the invariants below);
//! * invariants: per session nothing is delivered twice, out of order, in part, before
//!   `connect`, after `disconnect` or `destroy`, and nothing that was not sent arrives beyond
//!   what corruptions changed;
//! * resources: the sessions the apps hold, the links, and the tasks alive stay where they
//!   should, and return to rest once everything is destroyed.
//!
//! A failure shrinks to a minimal sequence, is saved in a regression file (replayed first on
//! every later run), and is reported with the seed and the sequence.
//!
//! ```no_run
//! use acm_conformance::protocol::{ProtocolSuiteConfig, run_protocol_suite};
//!
//! let report = run_protocol_suite(&ProtocolSuiteConfig::default());
//! print!("{}", report.summary());
//! ```

mod checks;
mod generate;
mod harness;
pub mod implementation;
pub mod model;
mod payload;
pub mod profile;
mod realtime;
pub mod reference;
mod regressions;
pub mod script;
mod step;
pub mod transition;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use crate::report::{Case, CaseResult, Report, Verdict};

pub use implementation::{
    Call, Factory, LinkFault, Observation, Outcome, ProtocolImplementation, RequestRef, Resources,
    SessionEvent, SessionRef, Side,
};
pub use reference::ReferenceImplementation;
pub use wire::WireImplementation;

use generate::ModelMachine;
use harness::{FactoryGuard, Harness};
use profile::{Delivery, Endings, Everything, Faults, Handshakes, Property, Scenarios, Stalls};
use realtime::Voided;
use regressions::RegressionFile;
use transition::Transition;

/// How the suite runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolSuiteConfig {
    /// Sequences tried per property.
    pub cases: u32,
    /// The most steps in a sequence.
    pub max_steps: usize,
    /// The seed of the run; `None` draws one. The same seed tries the same sequences.
    pub seed: Option<[u8; 32]>,
    /// The folder of the regression files (one per property): failures found are added, and
    /// the ones there are replayed first. `None` keeps none.
    pub regressions: Option<PathBuf>,
    /// The most shrink steps for a failure.
    pub max_shrink_iters: u32,
    /// Runs only the cases whose id contains this text.
    pub filter: Option<String>,
}

impl Default for ProtocolSuiteConfig {
    fn default() -> Self {
        Self {
            cases: 32,
            max_steps: 40,
            seed: None,
            regressions: None,
            max_shrink_iters: 1024,
            filter: None,
        }
    }
}

/// The cases of the suite, in the order they run.
pub fn cases() -> [Case; 6] {
    [
        Handshakes::CASE,
        Delivery::CASE,
        Endings::CASE,
        Stalls::CASE,
        Faults::CASE,
        Everything::CASE,
    ]
}

/// The factory of the reference implementation: two acm devices on a mock network.
pub fn reference_factory() -> Factory {
    Arc::new(|| {
        Box::new(ReferenceImplementation::new(
            7,
            reference::DEFAULT_MAX_FRAME_SIZE,
        ))
    })
}

/// Runs the suite against the reference implementation.
pub fn run_protocol_suite(config: &ProtocolSuiteConfig) -> Report {
    run_protocol_suite_with(
        config,
        "acm reference implementation, mock transport",
        reference_factory(),
    )
}

/// Runs the suite against the implementation `factory` makes (a fresh one per sequence), named
/// `target` in the report.
pub fn run_protocol_suite_with(
    config: &ProtocolSuiteConfig,
    target: &str,
    factory: Factory,
) -> Report {
    let _guard = FactoryGuard::set(factory);
    let mut report = Report::new(target);
    let properties: [(Case, RunProperty); 6] = [
        (Handshakes::CASE, run_property::<Handshakes>),
        (Delivery::CASE, run_property::<Delivery>),
        (Endings::CASE, run_property::<Endings>),
        (Stalls::CASE, run_property::<Stalls>),
        (Faults::CASE, run_property::<Faults>),
        (Everything::CASE, run_property::<Everything>),
    ];
    let chosen = |case: &Case| {
        config
            .filter
            .as_ref()
            .is_none_or(|f| case.id.contains(f.as_str()))
    };
    report.results = properties
        .into_iter()
        .filter(|(case, _)| chosen(case))
        .map(|(_, run)| run(config))
        .collect();
    report
}

/// The case of the random scenarios over the wire ([`run_wire_scenarios`]).
pub const SCENARIOS: Case = Scenarios::CASE;

/// How many random scenarios `acm conformance --target` runs by default: a few minutes against
/// `acm peer` on loopback.
pub const DEFAULT_SCENARIOS: u32 = 256;

/// Makes a [`WireImplementation`] on `target` for each sequence.
///
/// # Panics
///
/// The factory panics (failing the sequence it was to run) when the target cannot be driven.
pub fn wire_factory(target: Arc<dyn crate::wire::WireTarget>) -> Factory {
    Arc::new(move || match WireImplementation::start(target.clone()) {
        Ok(wire) => Box::new(wire),
        Err(err) => panic!("cannot drive the target's scenario app: {err}"),
    })
}

/// Runs `config.cases` random scenarios against `target` over real links, the suite playing
/// one device and driving the target's scenario app through the profile (SPEC section 15.1),
/// each step checked against the model. Call it outside any async runtime: each scenario runs
/// its own. A target whose transport cannot carry data cannot be driven: unsupported.
pub fn run_wire_scenarios(
    config: &ProtocolSuiteConfig,
    target: Arc<dyn crate::wire::WireTarget>,
) -> CaseResult {
    if !target.carries_data() {
        return CaseResult {
            case: Scenarios::CASE,
            verdict: Verdict::Unsupported(
                "the scenario driver takes payloads as data transfers (SPEC section 15.1), and the \
                 target's transport carries none"
                    .into(),
            ),
            elapsed: std::time::Duration::ZERO,
            reproduce: None,
            logs: String::new(),
        };
    }
    let _guard = FactoryGuard::set(wire_factory(target));
    run_property::<Scenarios>(config)
}

/// Replays `transitions` (a reproduced sequence) of the case `case_id` against the
/// implementation `factory` makes: `Ok` if every step passes, else what failed.
pub fn replay(case_id: &str, transitions: &[Transition], factory: Factory) -> Result<(), String> {
    let _guard = FactoryGuard::set(factory);
    match case_id {
        id if id == Handshakes::CASE.id => replay_property::<Handshakes>(transitions),
        id if id == Delivery::CASE.id => replay_property::<Delivery>(transitions),
        id if id == Endings::CASE.id => replay_property::<Endings>(transitions),
        id if id == Stalls::CASE.id => replay_property::<Stalls>(transitions),
        id if id == Faults::CASE.id => replay_property::<Faults>(transitions),
        id if id == Everything::CASE.id => replay_property::<Everything>(transitions),
        id if id == Scenarios::CASE.id => replay_property::<Scenarios>(transitions),
        other => Err(format!("no case {other:?} in the protocol suite")),
    }
}

fn replay_property<P: Property>(transitions: &[Transition]) -> Result<(), String> {
    let mut model = <ModelMachine<P> as ReferenceStateMachine>::init_state()
        .new_tree(&mut TestRunner::deterministic())
        .map_err(|e| e.to_string())?
        .current();
    let initial = model.clone();
    for (i, transition) in transitions.iter().enumerate() {
        if !ModelMachine::<P>::preconditions(&model, transition) {
            return Err(format!("step {}, {transition:?}: not valid there", i + 1));
        }
        model = ModelMachine::<P>::apply(model, transition);
    }
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Harness::<P>::test_sequential(Config::default(), initial, transitions.to_vec(), None);
    }));
    run.map_err(|panic| {
        if let Some(voided) = panic.downcast_ref::<Voided>() {
            return voided.to_string();
        }
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Runs one property of the suite.
type RunProperty = fn(&ProtocolSuiteConfig) -> CaseResult;

fn run_property<P: Property>(config: &ProtocolSuiteConfig) -> CaseResult {
    let started = Instant::now();
    let file = RegressionFile::new(config.regressions.as_ref().map(|dir| dir.join(P::FILE)));
    let proptest_config = Config {
        cases: config.cases,
        max_shrink_iters: config.max_shrink_iters,
        failure_persistence: Some(Box::new(file.clone())),
        verbose: 0,
        // Scenarios are voided only on a real clock, when a target is slow for its timers: as
        // many as are asked for is more than a target that suits its timers ever needs.
        max_global_rejects: config.cases.max(1),
        ..Config::default()
    };
    let mut runner = match config.seed {
        Some(seed) => TestRunner::new_with_rng(
            proptest_config.clone(),
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
        ),
        None => TestRunner::new(proptest_config.clone()),
    };
    let strategy = ModelMachine::<P>::sequential_strategy(1..=config.max_steps.max(1));
    let voided = std::cell::Cell::new(0u32);
    let result = runner.run(&strategy, |(state, transitions, seen)| {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Harness::<P>::test_sequential(proptest_config.clone(), state, transitions, seen);
        }));
        match run {
            Ok(()) => Ok(()),
            Err(panic) => match panic.downcast::<Voided>() {
                Ok(why) => {
                    voided.set(voided.get() + 1);
                    tracing::warn!("a scenario was {why}; another is drawn in its place");
                    Err(TestCaseError::reject(why.0))
                }
                Err(panic) => std::panic::resume_unwind(panic),
            },
        }
    });
    let (verdict, reproduce) = match result {
        Ok(()) => (Verdict::Pass, None),
        Err(TestError::Fail(reason, (_, transitions, _))) => {
            let seed = file.last_saved().map_or_else(
                || "a replayed regression".to_string(),
                |seed| format!("`{seed}`"),
            );
            let reproduce = format!(
                "seed {seed} ({} cases of at most {} steps); minimal sequence of {} steps, to \
                 replay with `acm conformance --replay FILE`:\n{}",
                config.cases,
                config.max_steps,
                transitions.len(),
                script::script(P::CASE.id, &transitions)
            );
            (failure_verdict(&reason), Some(reproduce))
        }
        Err(TestError::Abort(_)) if voided.get() > 0 => (
            Verdict::fail(
                "scenarios that run within the devices' handshake timers",
                format!(
                    "{} scenarios were voided: steps took so long in real time that a handshake \
                     timer may have fired (run the target with the specification's timers, not \
                     the short ones)",
                    voided.get()
                ),
            ),
            None,
        ),
        Err(TestError::Abort(reason)) => (
            Verdict::fail("the property runs its cases", format!("aborted: {reason}")),
            None,
        ),
    };
    CaseResult {
        case: P::CASE,
        verdict,
        elapsed: started.elapsed(),
        reproduce,
        logs: String::new(),
    }
}

/// The verdict of a failed step, from the message the harness fails with.
fn failure_verdict(reason: &impl std::fmt::Display) -> Verdict {
    let text = reason.to_string();
    let (what, rest) = text.split_once("\nexpected: ").unwrap_or((&text, ""));
    let (expected, actual) = rest.split_once("\nactual: ").unwrap_or((rest, ""));
    Verdict::fail(
        format!("{what}: {expected}"),
        if actual.is_empty() { what } else { actual },
    )
}
