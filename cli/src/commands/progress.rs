//! What `acm conformance` prints as each case ends, and the logs that go with it.

use std::collections::HashMap;
use std::io::Write as _;

use acm_conformance::{CaseResult, Verdict};

use super::case_logs::CaseLogs;

/// Prints each case's verdict as it ends (with `--quiet`, only failures), with the reason of
/// an unsupported case and the note of an informational one; under it, on stderr, what was
/// logged while it ran, when it failed or with `-v`. Keeps the logs it shows, for the reports.
pub struct Progress {
    pub(super) quiet: bool,
    pub(super) verbose: bool,
    pub(super) logs: CaseLogs,
    pub(super) kept: HashMap<&'static str, String>,
}

impl Progress {
    /// `result`'s case has ended.
    pub fn case(&mut self, result: &CaseResult) {
        let logs = self.logs.take();
        let (line, shown) = self.shown(result, logs);
        if let Some(line) = line {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
        if let Some(logs) = shown {
            eprint!("{}", indented(&logs));
            self.kept.insert(result.case.id, logs);
        }
    }

    /// What to print for `result`: its verdict line, and the logs of its case to show.
    fn shown(&self, result: &CaseResult, logs: String) -> (Option<String>, Option<String>) {
        let failed = matches!(result.verdict, Verdict::Fail { .. });
        if self.quiet && !failed {
            return (None, None);
        }
        let why = match &result.verdict {
            Verdict::Unsupported(note) | Verdict::Informational(note) => format!(" ({note})"),
            Verdict::Pass | Verdict::Fail { .. } => String::new(),
        };
        let line = format!("{:<13} {}{why}", result.verdict.name(), result.case.id);
        let show = (failed || self.verbose) && !logs.is_empty();
        (Some(line), show.then_some(logs))
    }
}

/// `logs` with each line indented under the verdicts' case ids.
pub(super) fn indented(logs: &str) -> String {
    logs.lines()
        .map(|line| format!("              {line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use acm_conformance::Case;
    use tracing_subscriber::fmt::MakeWriter as _;

    use super::*;

    fn progress(quiet: bool, verbose: bool) -> Progress {
        Progress {
            quiet,
            verbose,
            logs: CaseLogs::default(),
            kept: HashMap::new(),
        }
    }

    fn result(verdict: Verdict) -> CaseResult {
        CaseResult {
            case: Case::new("wire/LINK-3/short-nonce", &["LINK-3"], "a short nonce"),
            verdict,
            elapsed: Duration::ZERO,
            reproduce: None,
            logs: String::new(),
        }
    }

    const WARN: &str = "WARN acm_engine::link: closing link\n";

    #[test]
    fn a_case_s_logs_are_shown_when_it_fails_or_with_verbose_only() {
        let failed = result(Verdict::fail("a close", "nothing"));
        let passed = result(Verdict::Pass);
        for quiet in [false, true] {
            let (line, logs) = progress(quiet, false).shown(&failed, WARN.into());
            assert_eq!(
                line.as_deref(),
                Some("fail          wire/LINK-3/short-nonce")
            );
            assert_eq!(logs.as_deref(), Some(WARN));
        }
        assert_eq!(
            progress(false, false).shown(&passed, WARN.into()),
            (Some("pass          wire/LINK-3/short-nonce".into()), None)
        );
        assert_eq!(
            progress(true, false).shown(&passed, WARN.into()),
            (None, None)
        );
        let (_, logs) = progress(false, true).shown(&passed, WARN.into());
        assert_eq!(logs.as_deref(), Some(WARN));
        let (_, logs) = progress(false, true).shown(&failed, String::new());
        assert_eq!(logs, None, "nothing logged, nothing shown");
    }

    #[test]
    fn an_unsupported_case_says_why() {
        let unsupported = result(Verdict::Unsupported(
            "the target lacks the secure layer".into(),
        ));
        let (line, _) = progress(false, false).shown(&unsupported, String::new());
        assert_eq!(
            line.as_deref(),
            Some("unsupported   wire/LINK-3/short-nonce (the target lacks the secure layer)")
        );
    }

    #[test]
    fn what_was_logged_goes_with_the_case_that_ends_next() {
        let mut progress = progress(true, false);
        let _ = progress.logs.make_writer().write_all(WARN.as_bytes());
        progress.case(&result(Verdict::fail("a close", "nothing")));
        assert_eq!(
            progress
                .kept
                .get("wire/LINK-3/short-nonce")
                .map(String::as_str),
            Some(WARN)
        );
        assert_eq!(progress.logs.take(), "", "taken");
    }
}
