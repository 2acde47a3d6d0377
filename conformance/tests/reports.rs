//! The JSON and JUnit reports as their readers take them: the JSON against the schema written
//! in the repository (`conformance/report.schema.json`), the JUnit XML parsed back by a strict
//! XML 1.0 parser and read as CI systems read it, with hostile text in every field.

mod schema;

use std::time::Duration;

use acm_conformance::{Case, CaseResult, Report, Verdict};
use serde_json::Value;

/// What an implementation under test may say: markup, quotes, a CDATA end, control characters
/// (an escape sequence, NUL, a bell), characters XML cannot hold and some that are fine.
const HOSTILE: &str =
    "<b>&amp;\"quoted\" 'single' ]]> \u{1b}[31mred\u{0}\u{7} \u{fffe}\u{ffff} tab\tline\ncr\r é 🦀";

fn result(case: Case, verdict: Verdict, logs: &str) -> CaseResult {
    CaseResult {
        case,
        verdict,
        elapsed: Duration::from_millis(1500),
        reproduce: None,
        logs: logs.into(),
    }
}

/// A report with every verdict, in two suites, hostile text wherever an implementation's words
/// can reach.
fn hostile_report() -> Report {
    let mut report = Report::new(format!("target {HOSTILE}"));
    report.results = vec![
        result(
            Case::new("wire/FRAME-2/bad-magic", &["FRAME-2"], "bad magic").breaking("FRAME-2"),
            Verdict::Pass,
            "",
        ),
        CaseResult {
            reproduce: Some(format!("seed {HOSTILE}")),
            ..result(
                Case::new(
                    "wire/MSG-1/long",
                    &["MSG-1", "CTRL-4"],
                    "a <long> & \"text\"",
                ),
                Verdict::fail("LIMIT_EXCEEDED", HOSTILE),
                &format!("WARN closing link detail={HOSTILE}\n"),
            )
        },
        result(
            Case::new("wire/SEC-1/handshake", &["SEC-1"], "handshake"),
            Verdict::Unsupported(format!("the target lacks {HOSTILE}")),
            "",
        ),
        result(
            Case::new("transport/reserved/version-0", &["FRAME-3"], "reserved"),
            Verdict::Informational(HOSTILE.into()),
            "",
        ),
    ];
    report
}

#[test]
fn the_json_report_follows_its_schema_and_keeps_every_text_exactly() {
    let report = hostile_report();
    let json: Value = serde_json::from_str(&report.to_json()).expect("the report is JSON");
    let schema = schema::report_schema();
    assert_eq!(schema::errors(&schema, &json), Vec::<String>::new());
    assert_eq!(json["target"], format!("target {HOSTILE}"));
    assert_eq!(
        (&json["cases"], &json["passed"], &json["failed"]),
        (&Value::from(4), &Value::from(1), &Value::from(1))
    );
    assert_eq!(
        (&json["unsupported"], &json["informational"]),
        (&1.into(), &1.into())
    );
    let failed = &json["results"][1];
    assert_eq!(failed["verdict"], "fail");
    assert_eq!(failed["actual"], HOSTILE);
    assert_eq!(failed["expected"], "LIMIT_EXCEEDED");
    assert_eq!(failed["reproduce"], format!("seed {HOSTILE}"));
    assert_eq!(
        failed["logs"],
        format!("WARN closing link detail={HOSTILE}\n")
    );
    assert_eq!(failed["breaks"], Value::Null);
    assert_eq!(json["results"][0]["breaks"], "FRAME-2");
    assert_eq!(json["results"][0]["elapsed_ms"], 1500);
    assert_eq!(
        json["results"][2]["note"],
        format!("the target lacks {HOSTILE}")
    );
    assert!(
        json["results"][0].get("logs").is_none(),
        "no logs, no field"
    );
    assert!(
        json["rule_texts"]["FRAME-2"]
            .as_str()
            .is_some_and(|t| t.contains("AC 4D"))
    );
    let msg_1 = json["rule_coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["rule"] == "MSG-1")
        .unwrap();
    assert_eq!(
        (&msg_1["cases"], &msg_1["invalid_input"], &msg_1["must"]),
        (&1.into(), &0.into(), &true.into())
    );
}

#[test]
fn the_schema_check_finds_what_breaks_the_schema() {
    let schema = schema::report_schema();
    let mut json: Value = serde_json::from_str(&hostile_report().to_json()).unwrap();
    json["results"][0]["verdict"] = "maybe".into();
    json["results"][1]["surprise"] = true.into();
    json["failed"] = (-1).into();
    json["rule_coverage"][0]["must"] = "yes".into();
    json.as_object_mut().unwrap().remove("target");
    let errors = schema::errors(&schema, &json);
    for expected in [
        "$.results[0].verdict: \"maybe\" is not one of",
        "$.results[1]: surprise is not allowed",
        "$.failed: -1 is below 0",
        "$.rule_coverage[0].must: \"yes\" is not of type boolean",
        "$: target is missing",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{expected} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), 5, "{errors:#?}");
}

/// An attribute that CI systems read, which must be there.
fn attribute<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no {name}", node.tag_name().name()))
}

fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// What the report writes for `text`: characters XML cannot hold as `\u{..}`.
fn shown(text: &str) -> String {
    text.replace('\u{1b}', "\\u{1b}")
        .replace('\u{0}', "\\u{0}")
        .replace('\u{7}', "\\u{7}")
        .replace('\u{fffe}', "\\u{fffe}")
        .replace('\u{ffff}', "\\u{ffff}")
}

#[test]
fn the_junit_report_reads_back_as_ci_systems_read_it() {
    let xml = hostile_report().to_junit();
    let document = roxmltree::Document::parse(&xml)
        .unwrap_or_else(|e| panic!("not well-formed XML 1.0: {e}\n{xml}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    // Line ends and tabs are written as references, which attribute normalisation keeps.
    assert_eq!(attribute(root, "name"), shown(&format!("target {HOSTILE}")));
    let totals = ["tests", "failures", "errors", "skipped"].map(|a| attribute(root, a));
    assert_eq!(totals, ["4", "1", "0", "1"]);
    assert_eq!(attribute(root, "time"), "6.000");

    let suites: Vec<_> = elements(root, "testsuite").collect();
    let names: Vec<&str> = suites.iter().map(|s| attribute(*s, "name")).collect();
    assert_eq!(names, ["wire", "transport"]);
    let wire = suites[0];
    assert_eq!(
        ["tests", "failures", "errors", "skipped", "time"].map(|a| attribute(wire, a)),
        ["3", "1", "0", "1", "4.500"]
    );

    let cases: Vec<_> = suites
        .iter()
        .flat_map(|s| elements(*s, "testcase"))
        .collect();
    assert_eq!(cases.len(), 4);
    for case in &cases {
        assert_eq!(attribute(*case, "time"), "1.500");
        let name = attribute(*case, "name");
        assert!(name.starts_with(attribute(*case, "classname")), "{name}");
    }
    let passed = cases[0];
    assert_eq!(attribute(passed, "name"), "wire/FRAME-2/bad-magic");
    assert_eq!(passed.children().filter(|n| n.is_element()).count(), 0);

    let failed = cases[1];
    let failure = elements(failed, "failure").next().expect("a failure");
    assert_eq!(
        attribute(failure, "message"),
        "a <long> & \"text\" (MSG-1, CTRL-4)"
    );
    let body = failure.text().unwrap_or_default();
    assert!(body.contains("expected: LIMIT_EXCEEDED"), "{body}");
    // A parser turns a carriage return in text into a line feed unless it was written as a
    // reference: the report writes it as one, so it comes back.
    assert!(
        body.contains(&format!("actual: {}", shown(HOSTILE))),
        "{body:?}"
    );
    assert!(
        body.contains(&format!("reproduce: seed {}", shown(HOSTILE))),
        "{body:?}"
    );
    let logs = elements(failed, "system-err")
        .next()
        .expect("the case's logs");
    assert_eq!(
        logs.text(),
        Some(shown(&format!("WARN closing link detail={HOSTILE}\n")).as_str())
    );

    let skipped = elements(cases[2], "skipped").next().expect("skipped");
    assert!(
        attribute(skipped, "message").starts_with("the target lacks <b>&amp;\"quoted\""),
        "{skipped:?}"
    );
    let informational = elements(cases[3], "system-out").next().expect("its note");
    assert_eq!(informational.text(), Some(shown(HOSTILE).as_str()));
    assert_eq!(elements(cases[3], "failure").count(), 0);
}

#[test]
fn an_empty_report_is_still_a_report() {
    let report = Report::new("nothing");
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert!(schema::errors(&schema::report_schema(), &json).is_empty());
    let xml = report.to_junit();
    let document = roxmltree::Document::parse(&xml).unwrap();
    assert_eq!(attribute(document.root_element(), "tests"), "0");
}
