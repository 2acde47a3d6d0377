//! `acm conformance` against the reference implementation as a person runs it in a terminal:
//! what it prints where, its exit codes, and the reports it writes as their readers take them.

#[path = "../../conformance/tests/schema/mod.rs"]
mod schema;

use std::fs::File;
use std::process::{Command, Output, Stdio};

fn acm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("acm runs")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("acm-conformance-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What `acm args` writes to stdout and stderr together, in the order a terminal shows it.
fn terminal(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = scratch(name);
    let path = dir.join("terminal");
    let file = File::create(&path).unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .status()
        .expect("acm runs");
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (status.code(), text)
}

/// The LINK-3 cases send HELLOs that break the rule, and the reference logs a warning for each
/// as it closes the link.
#[test]
fn the_implementation_s_warnings_do_not_reach_the_terminal_when_every_case_passes() {
    for quiet in [&["--quiet"][..], &[]] {
        let output = acm(&[&["conformance", "--cases", "wire/LINK-3/"], quiet].concat());
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
        assert_eq!(stderr, "", "nothing on stderr ({quiet:?})");
        assert!(!stdout.contains("WARN"), "{stdout}");
        assert!(
            stdout.contains(" cases, ") && stdout.contains(" 0 failed"),
            "{stdout}"
        );
    }
}

#[test]
fn with_verbose_each_case_s_logs_are_shown_under_its_verdict() {
    let (code, text) = terminal(
        "verbose",
        &["conformance", "-v", "--cases", "wire/LINK-3/s"],
    );
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let verdict = |id: &str| {
        lines
            .iter()
            .position(|l| *l == format!("pass          {id}"))
            .unwrap_or_else(|| panic!("no verdict of {id} in {text}"))
    };
    let log = |what: &str| {
        lines
            .iter()
            .position(|l| l.starts_with("              ") && l.contains("WARN") && l.contains(what))
            .unwrap_or_else(|| panic!("no warning {what:?} in {text}"))
    };
    // Each case's warning comes after its own verdict and before the next case's.
    let nonce = verdict("wire/LINK-3/short-nonce");
    let frame_size = verdict("wire/LINK-3/small-max-frame-size");
    assert!(nonce < frame_size, "{text}");
    let nonce_warning = log("Hello.nonce is 4 bytes long");
    assert!(
        nonce < nonce_warning && nonce_warning < frame_size,
        "{text}"
    );
    assert!(log("Hello.max_frame_size is 64") > frame_size, "{text}");
}

#[test]
fn an_unsupported_case_says_why_as_it_ends_and_in_the_summary() {
    let output = acm(&["conformance", "--insecure", "--cases", "wire/SEC-13"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "unsupported   wire/SEC-13/announced-frame-size (the target lacks the secure layer)\n"
        ),
        "{stdout}"
    );
    // Quiet: only the summary, which gives each reason once.
    let output = acm(&["conformance", "--insecure", "--cases", "wire/SEC-1", "-q"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("unsupported   "), "{stdout}");
    assert!(
        stdout.contains("unsupported (3): the target lacks the secure layer\n"),
        "{stdout}"
    );
}

#[test]
fn cases_that_match_nothing_are_exit_code_2_with_a_sentence() {
    let output = acm(&["conformance", "--cases", "wire/NO-SUCH-RULE"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("acm: --cases \"wire/NO-SUCH-RULE\" matches none of the ")
            && stderr.contains("cases of the wire, transport and protocol suites")
            && stderr.ends_with("keeps those that contain its text\n"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "", "no report");
    // Against a target, only the wire suite runs: a transport case is none of its cases, and
    // the sentence comes before any attempt to reach the target.
    let output = acm(&[
        "conformance",
        "--target",
        "tcp://127.0.0.1:1",
        "--cases",
        "transport/",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cases of the wire suite;"), "{stderr}");
}

#[test]
fn the_reports_written_follow_the_schema_and_read_back_as_junit() {
    let dir = scratch("reports");
    let (json, junit) = (dir.join("report.json"), dir.join("report.xml"));
    let output = acm(&[
        "conformance",
        "--insecure",
        "--cases",
        "wire/SEC-1",
        "-q",
        "--json",
        json.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        schema::errors(&schema::report_schema(), &json),
        Vec::<String>::new()
    );
    assert_eq!(json["unsupported"], 3);
    assert_eq!(
        json["results"][0]["note"],
        "the target lacks the secure layer"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let document = roxmltree::Document::parse(&xml).unwrap();
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(
        ["tests", "failures", "errors", "skipped"].map(|a| root.attribute(a)),
        [Some("3"), Some("0"), Some("0"), Some("3")]
    );
    let skipped = root
        .descendants()
        .filter(|n| n.tag_name().name() == "skipped")
        .filter_map(|n| n.attribute("message"))
        .collect::<Vec<_>>();
    assert_eq!(skipped, ["the target lacks the secure layer"; 3]);
    let _ = std::fs::remove_dir_all(&dir);
}
