//! Cases, verdicts and reports: a terminal summary, JSON and JUnit XML.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};
use serde_json::{Map, Value, json};

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
    /// What the implementation logged while the case ran, when the runner keeps it (the
    /// suites leave it empty; `acm conformance` fills it for failing cases, or every case with
    /// `-v`).
    pub logs: String,
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
        // Why cases were unsupported, each reason once, in the order they ran.
        let mut reasons: Vec<(&str, usize)> = Vec::new();
        for result in &self.results {
            if let Verdict::Unsupported(why) = &result.verdict {
                match reasons.iter_mut().find(|(reason, _)| reason == why) {
                    Some((_, count)) => *count += 1,
                    None => reasons.push((why, 1)),
                }
            }
        }
        for (why, count) in reasons {
            let _ = writeln!(out, "unsupported ({count}): {why}");
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

    /// The report as JSON, as `conformance/report.schema.json` describes it.
    pub fn to_json(&self) -> String {
        let (pass, fail, unsupported, info) = self.counts();
        let covered = self.rules_covered();
        let rule_texts: Map<String, Value> = covered
            .iter()
            .filter_map(|rule| crate::rules::text(rule).map(|text| (rule.to_string(), text.into())))
            .collect();
        let results: Vec<Value> = self.results.iter().map(result_json).collect();
        let coverage: Vec<Value> = crate::coverage::coverage(self.results.iter().map(|r| &r.case))
            .iter()
            .map(|row| {
                json!({
                    "rule": row.rule,
                    "must": row.must,
                    "cases": row.cases,
                    "invalid_input": row.invalid,
                    "breaking": row.broken,
                })
            })
            .collect();
        json!({
            "target": self.target,
            "cases": self.results.len(),
            "passed": pass,
            "failed": fail,
            "unsupported": unsupported,
            "informational": info,
            "rules_covered": covered,
            "rule_texts": rule_texts,
            "results": results,
            "rule_coverage": coverage,
        })
        .to_string()
    }

    /// The report as JUnit XML, as CI systems read it: a `testsuites` element for the run, a
    /// `testsuite` for each suite (the first part of the case ids), a `testcase` for each case;
    /// a failure is a `failure`, an unsupported case `skipped`, an informational case's note
    /// its `system-out`, and what was logged while a case ran its `system-err`. Characters XML
    /// cannot hold (control characters) are written as `\u{..}`.
    pub fn to_junit(&self) -> String {
        let mut out = Vec::new();
        // Writing to memory cannot fail.
        let _ = self.write_junit(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// [`Report::to_junit`], written to `out`.
    pub fn write_junit(&self, out: impl std::io::Write) -> std::io::Result<()> {
        let mut writer = Writer::new_with_indent(out, b' ', 2);
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let mut suites: Vec<(&str, Vec<&CaseResult>)> = Vec::new();
        for result in &self.results {
            let suite = suite_of(result);
            match suites.iter_mut().find(|(name, _)| *name == suite) {
                Some((_, results)) => results.push(result),
                None => suites.push((suite, vec![result])),
            }
        }
        let all: Vec<&CaseResult> = self.results.iter().collect();
        writer
            .create_element("testsuites")
            .with_attributes(
                suite_attributes(&xml_text(&self.target), &all)
                    .iter()
                    .map(pair),
            )
            .write_inner_content(|writer| {
                for (name, results) in &suites {
                    writer
                        .create_element("testsuite")
                        .with_attributes(
                            suite_attributes(&xml_text(name), results).iter().map(pair),
                        )
                        .write_inner_content(|writer| {
                            results
                                .iter()
                                .try_for_each(|result| write_testcase(writer, result))
                        })?;
                }
                Ok(())
            })?;
        writer.get_mut().write_all(b"\n")
    }
}

/// A result as an element of the JSON report's `results`.
fn result_json(result: &CaseResult) -> Value {
    let mut fields = Map::new();
    fields.insert("id".into(), result.case.id.into());
    fields.insert("rules".into(), result.case.rules.into());
    fields.insert("title".into(), result.case.title.into());
    fields.insert("verdict".into(), result.verdict.name().into());
    fields.insert(
        "elapsed_ms".into(),
        u64::try_from(result.elapsed.as_millis())
            .unwrap_or(u64::MAX)
            .into(),
    );
    if let Some(rule) = result.case.breaks {
        fields.insert("breaks".into(), rule.into());
    }
    match &result.verdict {
        Verdict::Fail { expected, actual } => {
            fields.insert("expected".into(), expected.as_str().into());
            fields.insert("actual".into(), actual.as_str().into());
        }
        Verdict::Unsupported(note) | Verdict::Informational(note) => {
            fields.insert("note".into(), note.as_str().into());
        }
        Verdict::Pass => {}
    }
    if let Some(reproduce) = &result.reproduce {
        fields.insert("reproduce".into(), reproduce.as_str().into());
    }
    if !result.logs.is_empty() {
        fields.insert("logs".into(), result.logs.as_str().into());
    }
    Value::Object(fields)
}

/// The suite a result belongs to: the first part of its case's id.
fn suite_of(result: &CaseResult) -> &'static str {
    result.case.id.split('/').next().unwrap_or("acm")
}

/// The attributes of a `testsuites` or `testsuite` element named `name` over `results`.
fn suite_attributes(name: &str, results: &[&CaseResult]) -> [(&'static str, String); 6] {
    let count = |name: &str| {
        results
            .iter()
            .filter(|r| r.verdict.name() == name)
            .count()
            .to_string()
    };
    let time: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    [
        ("name", name.to_string()),
        ("tests", results.len().to_string()),
        ("failures", count("fail")),
        ("errors", "0".to_string()),
        ("skipped", count("unsupported")),
        ("time", format!("{time:.3}")),
    ]
}

fn pair<'a>((key, value): &'a (&'static str, String)) -> (&'a str, &'a str) {
    (key, value.as_str())
}

fn write_testcase<W: std::io::Write>(
    writer: &mut Writer<W>,
    result: &CaseResult,
) -> std::io::Result<()> {
    let element = writer
        .create_element("testcase")
        .with_attribute(("classname", xml_text(suite_of(result)).as_ref()))
        .with_attribute(("name", xml_text(result.case.id).as_ref()))
        .with_attribute((
            "time",
            format!("{:.3}", result.elapsed.as_secs_f64()).as_str(),
        ));
    let has_content = result.verdict != Verdict::Pass || !result.logs.is_empty();
    if !has_content {
        element.write_empty()?;
        return Ok(());
    }
    element.write_inner_content(|writer| {
        match &result.verdict {
            Verdict::Pass => {}
            Verdict::Fail { expected, actual } => {
                let message = format!("{} ({})", result.case.title, result.case.rules.join(", "));
                let mut body = format!("expected: {expected}\nactual: {actual}");
                if let Some(reproduce) = &result.reproduce {
                    body.push_str("\nreproduce: ");
                    body.push_str(reproduce);
                }
                writer
                    .create_element("failure")
                    .with_attribute(("message", xml_text(&message).as_ref()))
                    .with_attribute(("type", "fail"))
                    .write_text_content(BytesText::new(&xml_text(&body)))?;
            }
            Verdict::Unsupported(note) => {
                writer
                    .create_element("skipped")
                    .with_attribute(("message", xml_text(note).as_ref()))
                    .write_empty()?;
            }
            Verdict::Informational(note) => {
                writer
                    .create_element("system-out")
                    .write_text_content(BytesText::new(&xml_text(note)))?;
            }
        }
        if !result.logs.is_empty() {
            writer
                .create_element("system-err")
                .write_text_content(BytesText::new(&xml_text(&result.logs)))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `text` with the characters XML 1.0 cannot hold, escaped or not (control characters other
/// than tab, line feed and carriage return; U+FFFE and U+FFFF), written as `\u{..}`; the
/// writer escapes the markup.
fn xml_text(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{fffe}' && c != '\u{ffff}')
    };
    if text.chars().all(allowed) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if allowed(c) {
            out.push(c);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
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
            logs: String::new(),
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
            logs: String::new(),
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
    fn summary_says_why_cases_were_unsupported_once_per_reason() {
        let mut report = report();
        for (id, why) in [
            ("wire/SEC-1/a", "the target lacks the secure layer"),
            (
                "wire/DATA-8/b",
                "the target lacks a transport that carries data",
            ),
            ("wire/SEC-1/c", "the target lacks the secure layer"),
        ] {
            report.results.push(CaseResult {
                case: Case::new(id, &["SEC-1"], "unsupported"),
                verdict: Verdict::Unsupported(why.into()),
                elapsed: Duration::ZERO,
                reproduce: None,
                logs: String::new(),
            });
        }
        let summary = report.summary();
        assert!(
            summary.contains(
                "unsupported (2): the target lacks the secure layer\n\
                 unsupported (1): the target lacks a transport that carries data\n"
            ),
            "{summary}"
        );
    }

    #[test]
    fn json_escapes_and_carries_every_field() {
        let json: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        let failed = &json["results"][1];
        assert_eq!(failed["id"], "wire/MSG-1/long \"text\"");
        assert_eq!(failed["actual"], "delivered\nanyway");
        assert_eq!(failed["reproduce"], "seed 7");
        assert_eq!(failed["breaks"], "MSG-1");
        assert_eq!(json["failed"], 1);
        let msg_1 =
            json!({"rule": "MSG-1", "must": true, "cases": 1, "invalid_input": 1, "breaking": 1});
        assert!(json["rule_coverage"].as_array().unwrap().contains(&msg_1));
        assert!(
            json["rule_texts"]["CTRL-4"]
                .as_str()
                .unwrap()
                .starts_with("Free texts")
        );
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
