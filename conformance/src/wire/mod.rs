//! The black-box wire suite: the suite plays the peer device over a link and judges the
//! implementation under test only by what it puts on the wire. The implementation runs the
//! conformance profile ([`crate::profile`], SPEC section 15), in any language, on any transport
//! the suite can reach.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::report::{Case, CaseResult, Report, Verdict};

mod cases_data;
mod cases_frame;
mod cases_link;
mod cases_secure;
mod cases_session;
pub mod peer;
pub mod target;

pub use target::{MockTarget, TcpTarget, WireTarget};

/// The future of one case.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = peer::Step<()>> + Send + 'a>>;

/// A case of the wire suite.
#[derive(Clone, Copy)]
pub struct WireCase {
    /// Its id, rules and title.
    pub case: Case,
    /// Runs it against a target.
    pub run: for<'a> fn(&'a dyn WireTarget) -> CaseFuture<'a>,
}

impl std::fmt::Debug for WireCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireCase")
            .field("case", &self.case)
            .finish()
    }
}

macro_rules! wire_case {
    ($id:literal, [$($rule:literal),+ $(,)?], $title:literal, $run:path) => {
        $crate::wire::WireCase {
            case: $crate::report::Case {
                id: $id,
                rules: &[$($rule),+],
                title: $title,
            },
            run: |target| Box::pin($run(target)),
        }
    };
}
pub(crate) use wire_case;

/// Every case of the wire suite, in a stable order.
pub fn cases() -> Vec<WireCase> {
    let mut all = cases_link::cases();
    all.extend(cases_frame::cases());
    all.extend(cases_session::cases());
    all.extend(cases_data::cases());
    all.extend(cases_secure::cases());
    all
}

/// How long one case may take before it counts as hung (and fails).
pub const CASE_LIMIT: Duration = Duration::from_secs(90);

/// Runs one case with the time limit.
pub async fn run_case(case: &WireCase, target: &dyn WireTarget) -> CaseResult {
    let started = tokio::time::Instant::now();
    let verdict = match tokio::time::timeout(CASE_LIMIT, (case.run)(target)).await {
        Ok(Ok(())) => Verdict::Pass,
        Ok(Err(verdict)) => verdict,
        Err(_) => Verdict::fail(
            format!("the case to finish within {CASE_LIMIT:?}"),
            "it hung",
        ),
    };
    CaseResult {
        case: case.case,
        verdict,
        elapsed: started.elapsed(),
        reproduce: None,
    }
}

/// Runs the cases whose id contains `filter` (all of them for an empty filter) against
/// `target`, calling `progress` after each.
pub async fn run_wire_suite(
    target: &dyn WireTarget,
    filter: &str,
    mut progress: impl FnMut(&CaseResult),
) -> Report {
    let mut report = Report::new(target.describe());
    for case in cases().iter().filter(|c| c.case.id.contains(filter)) {
        let result = run_case(case, target).await;
        progress(&result);
        report.results.push(result);
    }
    report
}
