//! Cases, verdicts and reports: a terminal summary, JSON and JUnit XML.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// A conformance case: a stable id, the SPEC.md rules it checks, and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// A stable id, `suite/RULE/what` (never a position: adding a case renumbers nothing).
    pub id: &'static str,
    /// The SPEC.md rule ids the case checks.
    pub rules: &'static [&'static str],
    /// What the case does, in a sentence.
    pub title: &'static str,
    /// The one rule that what the case sends breaks, when it sends invalid input on purpose (a
    /// broken frame, a value out of range, a peer that stays silent); `None` when all it sends
    /// is valid. One rule only, so that one check cannot hide the absence of another.
    pub breaks: Option<&'static str>,
}

impl Case {
    /// A case whose input is valid.
    pub const fn new(
        id: &'static str,
        rules: &'static [&'static str],
        title: &'static str,
    ) -> Self {
        Self {
            id,
            rules,
            title,
            breaks: None,
        }
    }

    /// The same case, sending input that breaks `rule` (one of the rules it checks).
    #[must_use]
    pub const fn breaking(mut self, rule: &'static str) -> Self {
        self.breaks = Some(rule);
        self
    }
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The implementation did what the rules say.
    Pass,
    /// It did not.
    Fail {
        /// What the rules call for.
        expected: String,
        /// What happened.
        actual: String,
    },
    /// The implementation declares it lacks an optional feature the case needs.
    Unsupported(String),
    /// Not judged: information about the implementation.
    Informational(String),
}

impl Verdict {
    /// A failure with what was expected and what happened.
    pub fn fail(expected: impl Into<String>, actual: impl Into<String>) -> Self {
        Self::Fail {
            expected: expected.into(),
            actual: actual.into(),
        }
    }

    /// The verdict's name as reports print it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail { .. } => "fail",
            Self::Unsupported(_) => "unsupported",
            Self::Informational(_) => "informational",
        }
    }
}

/// One case's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// Its verdict.
    pub verdict: Verdict,
    /// How long it took.
    pub elapsed: Duration,
    /// What reproduces a failure (a seed and a shrunk sequence, for property-based suites).
    pub reproduce: Option<String>,
}

/// The outcome of a run of one or more suites against one implementation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// What was tested.
    pub target: String,
    /// The results, in the order the cases ran.
    pub results: Vec<CaseResult>,
}

impl Report {
    /// An empty report for `target`.
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            results: Vec::new(),
        }
    }

    /// Counts of (pass, fail, unsupported, informational).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let count = |name: &str| {
            self.results
                .iter()
                .filter(|r| r.verdict.name() == name)
                .count()
        };
        (
            count("pass"),
            count("fail"),
            count("unsupported"),
            count("informational"),
        )
    }

    /// The SPEC rule ids the cases cover.
    pub fn rules_covered(&self) -> BTreeSet<&'static str> {
        self.results
            .iter()
            .flat_map(|r| r.case.rules.iter().copied())
            .collect()
    }

    /// The failed results.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.verdict, Verdict::Fail { .. }))
    }

    /// A summary for a terminal: every failure with expected and actual, then the counts.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for result in self.failures() {
            let _ = writeln!(
                out,
                "FAIL {}  [{}]",
                result.case.id,
                result.case.rules.join(", ")
            );
            let _ = writeln!(out, "     {}", result.case.title);
            for rule in result.case.rules {
                if let Some(text) = crate::rules::text(rule) {
                    let _ = writeln!(out, "     {rule}: {}", shorten(text, 160));
                }
            }
            if let Verdict::Fail { expected, actual } = &result.verdict {
                let _ = writeln!(out, "     expected: {expected}");
                let _ = writeln!(out, "     actual:   {actual}");
            }
            if let Some(reproduce) = &result.reproduce {
                let _ = writeln!(out, "     reproduce: {reproduce}");
            }
        }
        let (pass, fail, unsupported, info) = self.counts();
        let covered = self.rules_covered().len();
        let _ = writeln!(
            out,
            "{}: {} cases, {pass} passed, {fail} failed, {unsupported} unsupported, {info} informational; {covered} SPEC rules covered",
            self.target,
            self.results.len(),
        );
        out
    }

    /// The report as JSON.
    pub fn to_json(&self) -> String {
        let (pass, fail, unsupported, info) = self.counts();
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"target\":{},\"cases\":{},\"passed\":{pass},\"failed\":{fail},\"unsupported\":{unsupported},\"informational\":{info},\"rules_covered\":[{}],\"rule_texts\":{{{}}},\"results\":[",
            json_string(&self.target),
            self.results.len(),
            self.rules_covered()
                .iter()
                .map(|r| json_string(r))
                .collect::<Vec<_>>()
                .join(","),
            self.rules_covered()
                .iter()
                .filter_map(|r| {
                    crate::rules::text(r)
                        .map(|text| format!("{}:{}", json_string(r), json_string(text)))
                })
                .collect::<Vec<_>>()
                .join(",")
        );
        for (i, result) in self.results.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"id\":{},\"rules\":[{}],\"title\":{},\"verdict\":{},\"elapsed_ms\":{}",
                json_string(result.case.id),
                result
                    .case
                    .rules
                    .iter()
                    .map(|r| json_string(r))
                    .collect::<Vec<_>>()
                    .join(","),
                json_string(result.case.title),
                json_string(result.verdict.name()),
                result.elapsed.as_millis()
            );
            if let Some(rule) = result.case.breaks {
                let _ = write!(out, ",\"breaks\":{}", json_string(rule));
            }
            match &result.verdict {
                Verdict::Fail { expected, actual } => {
                    let _ = write!(
                        out,
                        ",\"expected\":{},\"actual\":{}",
                        json_string(expected),
                        json_string(actual)
                    );
                }
                Verdict::Unsupported(note) | Verdict::Informational(note) => {
                    let _ = write!(out, ",\"note\":{}", json_string(note));
                }
                Verdict::Pass => {}
            }
            if let Some(reproduce) = &result.reproduce {
                let _ = write!(out, ",\"reproduce\":{}", json_string(reproduce));
            }
            out.push('}');
        }
        out.push_str("],\"rule_coverage\":[");
        let table = crate::coverage::coverage(self.results.iter().map(|r| &r.case));
        for (i, row) in table.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"rule\":{},\"must\":{},\"cases\":{},\"invalid_input\":{},\"breaking\":{}}}",
                json_string(row.rule),
                row.must,
                row.cases,
                row.invalid,
                row.broken
            );
        }
        out.push_str("]}");
        out
    }

    /// The report as JUnit XML, one test case per conformance case.
    pub fn to_junit(&self) -> String {
        let (_, fail, unsupported, _) = self.counts();
        let total: f64 = self.results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuite name=\"{}\" tests=\"{}\" failures=\"{fail}\" skipped=\"{unsupported}\" time=\"{total:.3}\">",
            xml(&self.target),
            self.results.len()
        );
        for result in &self.results {
            let _ = write!(
                out,
                "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
                xml(result.case.id.split('/').next().unwrap_or("acm")),
                xml(result.case.id),
                result.elapsed.as_secs_f64()
            );
            match &result.verdict {
                Verdict::Pass => {}
                Verdict::Fail { expected, actual } => {
                    let _ = write!(
                        out,
                        "<failure message=\"{}\">expected: {}\nactual: {}</failure>",
                        xml(&format!(
                            "{} ({})",
                            result.case.title,
                            result.case.rules.join(", ")
                        )),
                        xml(expected),
                        xml(actual)
                    );
                }
                Verdict::Unsupported(note) => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(note));
                }
                Verdict::Informational(note) => {
                    let _ = write!(out, "<system-out>{}</system-out>", xml(note));
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite>\n");
        out
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `text` as a JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if u32::from(c) < 0x20 && c != '\n' && c != '\t' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASE: Case = Case::new(
        "wire/FRAME-2/bad-magic",
        &["FRAME-2"],
        "a frame with a bad magic closes the link",
    );

    fn report() -> Report {
        let mut report = Report::new("reference over mock");
        report.results.push(CaseResult {
            case: CASE,
            verdict: Verdict::Pass,
            elapsed: Duration::from_millis(3),
            reproduce: None,
        });
        report.results.push(CaseResult {
            case: Case::new(
                "wire/MSG-1/long \"text\"",
                &["MSG-1", "CTRL-4"],
                "<long> & wrong",
            )
            .breaking("MSG-1"),
            verdict: Verdict::fail("LIMIT_EXCEEDED", "delivered\nanyway"),
            elapsed: Duration::from_millis(5),
            reproduce: Some("seed 7".into()),
        });
        report
    }

    #[test]
    fn counts_and_coverage() {
        let report = report();
        assert_eq!(report.counts(), (1, 1, 0, 0));
        assert_eq!(
            report.rules_covered().into_iter().collect::<Vec<_>>(),
            ["CTRL-4", "FRAME-2", "MSG-1"]
        );
    }

    #[test]
    fn summary_shows_expected_actual_rule_text_and_reproduction() {
        let summary = report().summary();
        assert!(summary.contains("FAIL wire/MSG-1/long \"text\""));
        assert!(summary.contains("expected: LIMIT_EXCEEDED"));
        assert!(summary.contains("MSG-1: `Message.text` MUST"), "{summary}");
        assert!(summary.contains("reproduce: seed 7"));
        assert!(summary.contains("2 cases, 1 passed, 1 failed"));
    }

    #[test]
    fn json_escapes_and_carries_every_field() {
        let json = report().to_json();
        assert!(json.contains("\"id\":\"wire/MSG-1/long \\\"text\\\"\""));
        assert!(json.contains("\"actual\":\"delivered\\nanyway\""));
        assert!(json.contains("\"failed\":1"));
        assert!(json.contains("\"reproduce\":\"seed 7\""));
        assert!(json.contains("\"breaks\":\"MSG-1\""), "{json}");
        assert!(
            json.contains(
                "{\"rule\":\"MSG-1\",\"must\":true,\"cases\":1,\"invalid_input\":1,\"breaking\":1}"
            ),
            "{json}"
        );
        assert!(
            json.contains("\"rule_texts\":{\"CTRL-4\":\"Free texts"),
            "{json}"
        );
        assert!(json.starts_with('{') && json.ends_with('}'));
    }

    #[test]
    fn junit_marks_failures_and_escapes_markup() {
        let xml = report().to_junit();
        assert!(xml.contains("tests=\"2\" failures=\"1\""));
        assert!(xml.contains("&lt;long&gt; &amp; wrong"));
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert_eq!(xml.matches("<failure ").count(), 1);
    }
}
