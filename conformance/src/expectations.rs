//! Known failures: an implementation lists the cases it is known to fail, each with a reason;
//! any other result than the one expected makes the run fail.
//!
//! The file has one case per line, its id then the reason; `#` starts a comment:
//!
//! ```text
//! # acme-acm 0.3
//! wire/LINK-6/keepalive-timeout   keepalive is not implemented yet
//! ```

use std::collections::BTreeMap;

use crate::report::{Report, Verdict};

/// The known failures of an implementation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectations {
    known: BTreeMap<String, String>,
}

/// A line of an expectations file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ExpectationsError {
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

/// What a report means once the expectations are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Failures that are not listed.
    pub unexpected_failures: Vec<String>,
    /// Listed cases that passed: the list is out of date.
    pub unexpected_passes: Vec<String>,
    /// Listed cases that failed as expected.
    pub known_failures: Vec<String>,
    /// Listed cases that did not run.
    pub not_run: Vec<String>,
}

impl Judgement {
    /// Whether the run met its expectations: no unexpected failure or pass.
    pub fn ok(&self) -> bool {
        self.unexpected_failures.is_empty() && self.unexpected_passes.is_empty()
    }
}

impl Expectations {
    /// Reads an expectations file.
    pub fn parse(text: &str) -> Result<Self, ExpectationsError> {
        let mut known = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let (id, reason) = line
                .split_once(char::is_whitespace)
                .map(|(id, reason)| (id, reason.trim()))
                .unwrap_or((line, ""));
            if reason.is_empty() {
                return Err(ExpectationsError {
                    line: n + 1,
                    problem: format!("{id}: a known failure needs a reason"),
                });
            }
            if known.insert(id.to_string(), reason.to_string()).is_some() {
                return Err(ExpectationsError {
                    line: n + 1,
                    problem: format!("{id} is listed twice"),
                });
            }
        }
        Ok(Self { known })
    }

    /// The reason a case is expected to fail, if it is.
    pub fn reason(&self, case: &str) -> Option<&str> {
        self.known.get(case).map(String::as_str)
    }

    /// Applies the expectations to a report.
    pub fn judge(&self, report: &Report) -> Judgement {
        let mut judgement = Judgement::default();
        for result in &report.results {
            let listed = self.known.contains_key(result.case.id);
            let failed = matches!(result.verdict, Verdict::Fail { .. });
            let id = result.case.id.to_string();
            match (listed, failed) {
                (false, true) => judgement.unexpected_failures.push(id),
                (true, true) => judgement.known_failures.push(id),
                (true, false) if result.verdict == Verdict::Pass => {
                    judgement.unexpected_passes.push(id)
                }
                _ => {}
            }
        }
        for id in self.known.keys() {
            if !report.results.iter().any(|r| r.case.id == id) {
                judgement.not_run.push(id.clone());
            }
        }
        judgement
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::{Case, CaseResult};

    fn result(id: &'static str, verdict: Verdict) -> CaseResult {
        CaseResult {
            case: Case::new(id, &["FRAME-2"], "t"),
            verdict,
            elapsed: Duration::ZERO,
            reproduce: None,
            logs: String::new(),
        }
    }

    #[test]
    fn parses_ids_reasons_and_comments() {
        let e = Expectations::parse("# header\nwire/a  not yet  # later\n\nwire/b reason two\n")
            .unwrap();
        assert_eq!(e.reason("wire/a"), Some("not yet"));
        assert_eq!(e.reason("wire/b"), Some("reason two"));
        assert_eq!(e.reason("wire/c"), None);
    }

    #[test]
    fn a_line_without_reason_or_listed_twice_is_refused() {
        assert_eq!(Expectations::parse("wire/a\n").unwrap_err().line, 1);
        let err = Expectations::parse("wire/a x\nwire/a y\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.problem.contains("twice"));
    }

    #[test]
    fn judges_unexpected_failures_and_passes() {
        let e =
            Expectations::parse("wire/known it is broken\nwire/fixed was broken\nwire/gone x\n")
                .unwrap();
        let mut report = Report::new("t");
        report.results = vec![
            result("wire/known", Verdict::fail("a", "b")),
            result("wire/fixed", Verdict::Pass),
            result("wire/new", Verdict::fail("a", "b")),
            result("wire/fine", Verdict::Pass),
        ];
        let j = e.judge(&report);
        assert_eq!(j.known_failures, ["wire/known"]);
        assert_eq!(j.unexpected_passes, ["wire/fixed"]);
        assert_eq!(j.unexpected_failures, ["wire/new"]);
        assert_eq!(j.not_run, ["wire/gone"]);
        assert!(!j.ok());
        let clean = Expectations::parse("wire/known it is broken\n").unwrap();
        let mut ok_report = Report::new("t");
        ok_report.results = vec![result("wire/known", Verdict::fail("a", "b"))];
        assert!(clean.judge(&ok_report).ok());
    }
}
