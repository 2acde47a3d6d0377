//! The black-box wire suite: the suite plays the peer device over a link and judges the
//! implementation under test only by what it puts on the wire. The implementation runs the
//! conformance profile ([`crate::profile`], SPEC section 15), in any language, on any transport
//! the suite can reach.
//!
//! Hand-written cases check what a rule says in a scenario; cases made by construction cover a
//! space: every session frame in every state of its channel ([`matrix`](self)), every limit at
//! the limit and one past it, every timer early and late, every binding message. A case that
//! needs what a target lacks ([`Needs`]) reports unsupported there; [`run_reference`] runs each
//! case against a reference target that has it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::report::{Case, CaseResult, Report, Verdict};

pub mod build;
mod cases_across;
mod cases_closing;
mod cases_data;
mod cases_driver;
mod cases_fields;
mod cases_frame;
mod cases_limits;
mod cases_limits_data;
mod cases_link;
mod cases_memory;
mod cases_secure;
mod cases_segments;
mod cases_sending;
mod cases_session;
mod cases_tables;
mod cases_tcp;
mod cases_timers;
mod cases_unread;
mod dial;
mod matrix;
pub mod peer;
mod raw;
pub mod target;

pub use dial::DialTarget;
pub use target::{
    CarriesNoData, MockKind, MockTarget, Needs, ReferenceTcpTarget, TcpTarget, WireTarget,
};

/// The future of one case.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = peer::Step<()>> + Send + 'a>>;

/// A case of the wire suite.
#[derive(Clone, Copy)]
pub struct WireCase {
    /// Its id, rules and title.
    pub case: Case,
    /// What it needs of the target.
    pub needs: Needs,
    /// A number the case's function is given: which variant of a family made by construction.
    pub param: u32,
    /// Runs it against a target.
    pub run: for<'a> fn(&'a dyn WireTarget, u32) -> CaseFuture<'a>,
}

impl WireCase {
    /// The same case, sending input that breaks `rule` ([`Case::breaks`]).
    #[must_use]
    pub fn breaking(mut self, rule: &'static str) -> Self {
        self.case = self.case.breaking(rule);
        self
    }

    /// The same case, needing `needs` of its target.
    #[must_use]
    pub fn needing(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }
}

impl std::fmt::Debug for WireCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireCase")
            .field("case", &self.case)
            .field("needs", &self.needs)
            .field("param", &self.param)
            .finish()
    }
}

macro_rules! wire_case {
    ($id:literal, [$($rule:literal),+ $(,)?], $title:literal, $run:path) => {
        $crate::wire::WireCase {
            case: $crate::report::Case::new($id, &[$($rule),+], $title),
            needs: $crate::wire::Needs::Nothing,
            param: 0,
            run: |target, _| Box::pin($run(target)),
        }
    };
}
pub(crate) use wire_case;

/// Every case of the wire suite, in a stable order.
pub fn cases() -> Vec<WireCase> {
    let mut all = cases_link::cases();
    all.extend(cases_frame::cases());
    all.extend(cases_session::cases());
    all.extend(cases_closing::cases());
    all.extend(cases_data::cases());
    all.extend(cases_fields::cases());
    all.extend(cases_across::cases());
    all.extend(cases_memory::cases());
    all.extend(cases_limits::cases());
    all.extend(cases_unread::cases());
    all.extend(cases_sending::cases());
    all.extend(cases_timers::cases());
    all.extend(cases_tcp::cases());
    all.extend(cases_segments::cases());
    all.extend(matrix::cases());
    all.extend(cases_secure::cases());
    all.extend(cases_driver::cases());
    all
}

/// How long one case may take before it counts as hung (and fails), unless the target says
/// otherwise ([`WireTarget::case_limit`]).
pub const CASE_LIMIT: Duration = Duration::from_secs(90);

/// Runs one case with the time limit, or reports it unsupported when `target` lacks what it
/// needs.
pub async fn run_case(case: &WireCase, target: &dyn WireTarget) -> CaseResult {
    let started = tokio::time::Instant::now();
    let verdict = if !target.has(case.needs) {
        Verdict::Unsupported(format!("the target lacks {}", case.needs.describe()))
    } else {
        let limit = target.case_limit();
        match tokio::time::timeout(limit, (case.run)(target, case.param)).await {
            Ok(Ok(())) => Verdict::Pass,
            Ok(Err(verdict)) => verdict,
            Err(_) => Verdict::fail(format!("the case to finish within {limit:?}"), "it hung"),
        }
    };
    CaseResult {
        case: case.case,
        verdict,
        elapsed: started.elapsed(),
        reproduce: None,
        logs: String::new(),
    }
}

/// Runs the cases whose id contains `filter` (all of them for an empty filter) against
/// `target`, calling `progress` after each.
pub async fn run_wire_suite(
    target: &dyn WireTarget,
    filter: &str,
    progress: impl FnMut(&CaseResult),
) -> Report {
    run_wire_suite_where(target, |id| id.contains(filter), progress).await
}

/// Runs the cases whose id `keep` keeps against `target`, calling `progress` after each.
pub async fn run_wire_suite_where(
    target: &dyn WireTarget,
    keep: impl Fn(&str) -> bool,
    mut progress: impl FnMut(&CaseResult),
) -> Report {
    let mut report = Report::new(target.describe());
    for case in cases().iter().filter(|c| keep(c.case.id)) {
        let result = run_case(case, target).await;
        tokio::time::sleep(target.settle()).await;
        progress(&result);
        report.results.push(result);
    }
    report
}

/// A tokio runtime on this thread, its clock paused (timers of any length pass at once when
/// nothing else can run) or running.
pub fn runtime(paused: bool) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if paused {
        builder.start_paused(true);
    }
    builder
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))
}

/// Runs the cases whose id contains `filter` against the reference implementation, each on a
/// reference target that has what it needs (SPEC section 15): over the mock transport (on a
/// paused clock, so that timers of seconds take no time) with the secure layer, over a mock
/// transport that carries no data, over a segmented mock transport and over TCP on loopback
/// with the profile's short timers (on a running clock), the last two plain since their cases
/// write frames in the clear. Each case runs once; the report lists them in the suite's order.
pub fn run_reference(filter: &str, progress: impl FnMut(&CaseResult)) -> Result<Report, String> {
    run_reference_with(filter, ReferenceRun::default(), progress)
}

/// How [`run_reference_with`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceRun {
    /// Stop at the first case that does not pass (the report then holds the cases run so
    /// far): for mutation testing, where a run's only question is whether anything fails.
    pub fail_fast: bool,
    /// Every target plain, without the secure layer (whose cases then report unsupported).
    pub insecure: bool,
}

/// [`run_reference`], as `run` says.
pub fn run_reference_with(
    filter: &str,
    run: ReferenceRun,
    mut progress: impl FnMut(&CaseResult),
) -> Result<Report, String> {
    let fail_fast = run.fail_fast;
    let chosen: Vec<WireCase> = cases()
        .into_iter()
        .filter(|c| c.case.id.contains(filter))
        .collect();
    let mut results: Vec<Option<CaseResult>> = vec![None; chosen.len()];
    let paused = runtime(true)?;
    let stopped = paused.block_on(async {
        // The secure mock target first, so that every case that can runs over secure links.
        let targets = [
            (MockKind::Plain, run.insecure),
            (MockKind::Plain, true),
            (MockKind::NoData, run.insecure),
            (MockKind::Segmented, true),
        ];
        for (kind, insecure) in targets {
            let target = MockTarget::profile_with(kind, insecure)
                .map_err(|e| format!("cannot start the reference implementation: {e}"))?;
            for (i, case) in chosen.iter().enumerate() {
                if results[i].is_none() && target.has(case.needs) {
                    let result = run_case(case, &target).await;
                    progress(&result);
                    let stop = fail_fast && result.verdict != Verdict::Pass;
                    results[i] = Some(result);
                    if stop {
                        return Ok(true);
                    }
                }
            }
        }
        Ok::<bool, String>(false)
    })?;
    drop(paused);
    if !stopped && results.iter().any(Option::is_none) {
        let running = runtime(false)?;
        running.block_on(async {
            let target = ReferenceTcpTarget::start()
                .await
                .map_err(|e| format!("cannot start the reference implementation on TCP: {e}"))?;
            for (i, case) in chosen.iter().enumerate() {
                if results[i].is_none() {
                    let result = run_case(case, &target).await;
                    progress(&result);
                    let stop = fail_fast && result.verdict != Verdict::Pass;
                    results[i] = Some(result);
                    if stop {
                        break;
                    }
                }
            }
            Ok::<(), String>(())
        })?;
    }
    let mut report = Report::new(
        "the reference implementation (secure mock, mock, mock without data, segmented mock, TCP)",
    );
    report.results = results.into_iter().flatten().collect();
    Ok(report)
}
