//! `acm peer` and `acm conformance --target` over real TCP on loopback, as two processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(flags: &[&str]) -> (Peer, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args([
            "peer",
            "--listen",
            "tcp://127.0.0.1:0",
            "--device-id",
            "peer-under-test",
        ])
        .args(flags)
        .stdout(Stdio::piped())
        .spawn()
        .expect("acm peer starts");
    let stdout = child.stdout.take().expect("stdout");
    let peer = Peer(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("acm peer prints its address");
    let address = line
        .split_whitespace()
        .find(|word| word.starts_with("tcp://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (peer, address)
}

#[test]
fn the_reference_peer_passes_the_session_cases_over_tcp() {
    let (_peer, address) = start_peer(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args([
            "conformance",
            "--target",
            &address,
            "--cases",
            "wire/SESS-3",
            "--quiet",
        ])
        .output()
        .expect("acm conformance runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("peer-under-test at tcp://"), "{stdout}");
    assert!(
        stdout.contains(" cases, ") && stdout.contains("0 failed"),
        "{stdout}"
    );
}

#[test]
fn a_peer_without_data_and_with_short_timers_passes_the_cases_made_for_it() {
    let (_peer, address) = start_peer(&["--no-data", "--short-timers"]);
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args([
            "conformance",
            "--target",
            &address,
            "--no-data",
            "--short-timers",
            "--cases",
            "wire/DATA-8",
        ])
        .output()
        .expect("acm conformance runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    // Two cases need a device without data and pass; one needs data and is unsupported.
    assert!(
        stdout.contains("3 cases, 2 passed, 0 failed, 1 unsupported"),
        "{stdout}"
    );
}

#[test]
fn an_unreachable_target_is_exit_code_2_with_one_clear_sentence() {
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(["conformance", "--target", "tcp://127.0.0.1:1"])
        .output()
        .expect("acm conformance runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("acm: cannot reach tcp://127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn a_bad_target_address_is_exit_code_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(["conformance", "--target", "udp://nowhere"])
        .output()
        .expect("acm conformance runs");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn known_failures_keep_the_exit_code_at_0_and_unexpected_passes_make_it_1() {
    let dir = std::env::temp_dir().join(format!("acm-expect-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("expectations.txt");
    std::fs::write(&file, "wire/SESS-3/echo-accepted believed broken\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args([
            "conformance",
            "--cases",
            "wire/SESS-3/echo",
            "--quiet",
            "--expectations",
        ])
        .arg(&file)
        .output()
        .expect("acm conformance runs");
    assert_eq!(output.status.code(), Some(1), "the listed case passed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("unexpected pass: wire/SESS-3/echo-accepted"),
        "{stdout}"
    );
    let json = dir.join("report.json");
    let junit = dir.join("report.xml");
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args(["conformance", "--cases", "wire/MSG-2", "--quiet", "--json"])
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("acm conformance runs");
    assert!(output.status.success());
    let json = std::fs::read_to_string(&json).unwrap();
    assert!(json.contains("\"id\":\"wire/MSG-2/order-kept\""), "{json}");
    let junit = std::fs::read_to_string(&junit).unwrap();
    assert!(
        junit.contains("<testcase classname=\"wire\" name=\"wire/MSG-2/order-kept\""),
        "{junit}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn random_scenarios_pass_against_the_reference_peer_and_a_script_replays() {
    let (_peer, address) = start_peer(&["--insecure"]);
    let output = Command::new(env!("CARGO_BIN_EXE_acm"))
        .args([
            "conformance",
            "--target",
            &address,
            "--insecure",
            "--cases",
            "scenarios/",
            "--scenarios",
            "32",
        ])
        .output()
        .expect("acm conformance runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("scenarios/SESS-3/random-scenarios") && stdout.contains("1 passed"),
        "{stdout}"
    );
    let dir = std::env::temp_dir().join(format!("acm-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("steps.txt");
    std::fs::write(
        &script,
        "case scenarios/SESS-3/random-scenarios\n\
         create A 1 notes\n\
         connect 1 chan 2\n\
         accept chan 2 into new 3   # B's scenario app accepts\n\
         data 3 payload 4 len 70000\n\
         message 1 payload 5 len 40\n\
         lose\n\
         connect 3 chan 6\n\
         accept chan 6 into 1\n\
         disconnect 3\n",
    )
    .unwrap();
    for target in [&["--target", &address, "--insecure"][..], &[]] {
        let output = Command::new(env!("CARGO_BIN_EXE_acm"))
            .args(
                [
                    &["conformance", "--replay", script.to_str().unwrap()][..],
                    target,
                ]
                .concat(),
            )
            .output()
            .expect("acm conformance runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{target:?}: {stdout}");
        assert!(stdout.contains("every step passed"), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
