//! The bench binary still runs: `--quick` goes through every measure briefly and writes the
//! table as JSON. Nothing here looks at the numbers (no timing assertions).

use std::process::Command;

#[test]
fn quick_run_prints_and_writes_every_measure() {
    let json = std::env::temp_dir().join(format!("acm-bench-quick-{}.json", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_acm-bench"))
        .args(["--quick", "--json"])
        .arg(&json)
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "acm-bench --quick failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = std::fs::read_to_string(&json).expect("the JSON table was written");
    let _ = std::fs::remove_file(&json);
    for measure in [
        "decode 64 KiB DATA frames from a stream",
        "decode 64 KiB DATA frames: payload copies",
        "encode + decode one ConnectRequest frame",
        "send_data 1 MiB blobs over transport-mock",
        "connect → ConnectResult over transport-mock",
        "send_data 1 MiB over transport-tcp (loopback)",
        "connect → ConnectResult over transport-tcp (loopback)",
        "concurrent sessions: handshakes",
        "concurrent sessions: memory per idle session",
        "bytes on the link per payload byte, 64 KiB at 244-byte frames",
        "bytes on the link per payload byte, 64 KiB at 244-byte messages, segmented",
        "seal + open of 65 507-byte records, one thread",
        "over TCP loopback, secure",
        "CPU time of one link's setup over TCP loopback, secure",
        "dial → first ConnectResult over TCP with latency, secure",
        "hostile idle-connections: 1 link",
        "hostile request-flood: 1 link",
        "hostile large-declarations: 1 link",
        "hostile link-churn: 100 links opened and closed",
    ] {
        assert!(
            stdout.contains(measure),
            "the table lacks {measure:?}:\n{stdout}"
        );
        assert!(
            written.contains(measure),
            "the JSON lacks {measure:?}:\n{written}"
        );
    }
    assert!(written.contains("\"cores\""), "{written}");
    assert_eq!(written.matches("\"measure\"").count(), 24, "{written}");
}

#[test]
fn unknown_arguments_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_acm-bench"))
        .arg("--no-such-flag")
        .output()
        .expect("the bench binary runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
}
