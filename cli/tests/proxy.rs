//! `acm proxy` between the wire suite and the reference peer over TCP on loopback: every byte
//! forwarded (the suite's cases pass through it), every frame decoded, the rules the suite's
//! malformed input breaks named, and a capture written.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{acm, scratch, secure_suite, start_logging_peer, start_peer, start_proxy, suite};

#[test]
fn the_wire_suite_passes_through_the_proxy_which_decodes_every_frame_and_names_broken_rules() {
    let dir = scratch("proxy");
    let (_peer, peer_address) = start_peer();
    let pcap = dir.join("link.pcapng");
    let (mut proxy, listening) =
        start_proxy(&peer_address, &["--json", "--pcap", pcap.to_str().unwrap()]);
    // A handshake, messages and a rejection (SESS-3), fragmented transfers (DATA-5), and the
    // malformed input of the header, binding and body cases.
    for cases in [
        "wire/SESS-3",
        "wire/DATA-5",
        "wire/FRAME-",
        "wire/TCP-4",
        "wire/CTRL-1",
    ] {
        assert!(suite(&listening, cases), "{cases} passes through the proxy");
    }
    let lines = proxy.interrupt_and_collect();
    let objects: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
        .collect();
    let frames: Vec<&Value> = objects.iter().filter(|o| o["event"] == "frame").collect();
    let has_field = |name: &str, field: &str| {
        frames.iter().any(|f| {
            f["name"] == name
                && f["fields"]
                    .as_array()
                    .is_some_and(|fields| fields.iter().any(|kv| kv[0] == field))
        })
    };
    assert!(has_field("OPEN", "device_id"));
    assert!(has_field("HELLO", "max_frame_size"));
    assert!(has_field("CONNECT_REQUEST", "target.service_name"));
    assert!(has_field("CONNECT_RESPONSE", "accepted"));
    assert!(has_field("CONNECT_RESPONSE", "rejected.code"));
    assert!(has_field("MESSAGE", "text"));
    assert!(
        frames.iter().any(|f| f["name"] == "DATA"
            && f["flag_names"] == serde_json::json!(["LAST"])
            && f["fields"][1][1] != "0"),
        "a fragment after the first"
    );
    // The reference breaks no rule; the suite's malformed input is named rule by rule.
    let mut broken = BTreeSet::new();
    for frame in &frames {
        for problem in frame["problems"].as_array().unwrap() {
            let rule = problem["rule"].as_str().unwrap().to_string();
            assert_eq!(frame["dir"], "c>s", "the reference breaks {rule}: {frame}");
            broken.insert(rule);
        }
    }
    for rule in [
        "FRAME-2", "FRAME-3", "FRAME-4", "FRAME-5", "FRAME-6", "FRAME-7", "FRAME-8", "FRAME-9",
        "FRAME-10", "TCP-4", "CTRL-1",
    ] {
        assert!(broken.contains(rule), "{rule} named; named {broken:?}");
    }
    let capture = std::fs::read(&pcap).unwrap();
    assert_eq!(capture[..4], [0x0A, 0x0D, 0x0D, 0x0A], "a pcapng file");
    assert!(capture.len() > 10_000);
}

#[test]
fn a_strict_proxy_does_not_forward_a_malformed_frame_and_prints_text_lines() {
    let (_peer, peer_address) = start_peer();
    let (mut proxy, listening) = start_proxy(&peer_address, &["--strict"]);
    // The suite's bad magic never reaches the peer: the proxy ends the connection instead.
    suite(&listening, "wire/FRAME-2");
    let lines = proxy.interrupt_and_collect();
    let text = lines.join("\n");
    assert!(text.contains(" c>s OPEN len="), "{text}");
    assert!(text.contains(" s>c HELLO ch=0 flags=0x00 len="), "{text}");
    assert!(text.contains("!FRAME-2: magic"), "{text}");
    assert!(text.contains("not forwarded (--strict)"), "{text}");
}

#[test]
fn with_the_key_log_the_proxy_shows_the_frames_inside_secure_records() {
    let dir = scratch("proxy-keylog");
    let keylog = dir.join("keys.log");
    // The reference peer, secure (by default), writes its links' keys.
    let (_peer, peer_address) = start_logging_peer(&keylog);
    let (mut proxy, listening) = start_proxy(
        &peer_address,
        &["--json", "--keylog", keylog.to_str().unwrap()],
    );
    assert!(
        secure_suite(&listening, "wire/SESS-3"),
        "the secure suite passes through"
    );
    let frames: Vec<Value> = proxy
        .interrupt_and_collect()
        .iter()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|o| o["event"] == "frame")
        .collect();
    let shown = |name: &str, field: &str| {
        frames.iter().any(|f| {
            f["name"] == name
                && f["fields"][0][0] == "record"
                && f["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|kv| kv[0] == field)
        })
    };
    assert!(frames.iter().any(|f| f["name"] == "HANDSHAKE"));
    assert!(shown("HELLO", "max_frame_size"), "HELLO opened");
    assert!(shown("CONNECT_REQUEST", "target.service_name"));
    assert!(shown("CONNECT_RESPONSE", "rejected.code"));
    for frame in frames.iter().filter(|f| f["dir"] == "s>c") {
        assert_eq!(frame["problems"], serde_json::json!([]), "{frame}");
    }
    let text = std::fs::read_to_string(&keylog).unwrap();
    assert!(text.lines().all(|l| l.starts_with("ACM_SECURE_V1 ")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keylog).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key log is the owner's only");
    }
}

#[test]
fn conformance_with_pcap_keeps_a_capture_of_each_failing_case_only() {
    let dir = scratch("conformance-pcap");
    let captures = dir.join("captures");
    let (_peer, peer_address) = start_peer();
    // The peer carries data, the suite is told it does not: the case that expects a refusal of
    // DATA fails, the one that expects its delivery passes.
    let output = acm(&[
        "conformance",
        "--target",
        &peer_address,
        "--insecure",
        "--short-timers",
        "--no-data",
        "--cases",
        "wire/DATA-8",
        "--pcap",
        captures.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let failed: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("FAIL "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!failed.is_empty(), "{stdout}");
    let mut files: Vec<String> = std::fs::read_dir(&captures)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut expected: Vec<String> = failed
        .iter()
        .map(|id| format!("{}.pcapng", id.replace('/', "_")))
        .collect();
    expected.sort();
    assert_eq!(files, expected, "{stdout}");
    assert!(stdout.contains("capture: "), "{stdout}");
    for file in files {
        let bytes = std::fs::read(captures.join(file)).unwrap();
        assert_eq!(bytes[..4], [0x0A, 0x0D, 0x0D, 0x0A]);
        // Its frames: the OPEN of the suite at least, in the clear.
        assert!(
            bytes
                .windows(b"acm-conformance-suite".len())
                .any(|w| w == b"acm-conformance-suite")
        );
    }
}
