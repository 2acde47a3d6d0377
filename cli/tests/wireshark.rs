//! The Wireshark dissector (`tools/wireshark/acm.lua`) run by tshark on the capture `acm proxy`
//! writes while the wire suite talks to the reference peer through it: a handshake, messages,
//! a rejection, fragmented transfers and the suite's malformed input. tshark must show the same
//! units with the same header fields and the same decoded fields as the proxy printed for the
//! same bytes, and every rule it names must be one the proxy named.
//!
//! Needs `tshark` (Debian's package). Without it the test says so and passes, unless
//! `ACM_REQUIRE_TSHARK` is set (`.ci/run` sets it once it has installed tshark).

mod support;

use std::process::Command;

use serde_json::Value;
use support::{scratch, secure_suite, start_logging_peer, start_peer, start_proxy, suite};

/// What one side shows of one packet: the units, then per unit its fields line, and the rules.
#[derive(Debug, Default, PartialEq)]
struct Shown {
    units: Vec<String>,
    fields: Vec<String>,
    header: Option<(u64, u64, u64)>,
    rules: Vec<String>,
}

fn number(text: &str) -> u64 {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => text.parse().unwrap(),
    }
}

/// Whether tshark is here; without it (and without `ACM_REQUIRE_TSHARK`) the tests pass,
/// saying why.
fn have_tshark() -> bool {
    if Command::new("tshark").arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("ACM_REQUIRE_TSHARK").is_none(),
        "tshark is required (ACM_REQUIRE_TSHARK) but not installed"
    );
    eprintln!("skipped: tshark is not installed (apt-get install tshark)");
    false
}

#[test]
fn tshark_with_the_dissector_shows_what_the_proxy_printed() {
    if !have_tshark() {
        return;
    }
    let dir = scratch("wireshark");
    let pcap = dir.join("suite.pcapng");
    let (_peer, peer_address) = start_peer();
    let (mut proxy, listening) =
        start_proxy(&peer_address, &["--json", "--pcap", pcap.to_str().unwrap()]);
    for cases in [
        "wire/SESS-3",
        "wire/DATA-5",
        "wire/DATA-4",
        "wire/FRAME-",
        "wire/TCP-4",
        "wire/CTRL-1",
        "wire/LINK-2",
    ] {
        suite(&listening, cases);
    }
    let (units, rules) = compare(&proxy.interrupt_and_collect(), &pcap, &[]);
    assert!(rules >= 10, "tshark named {rules} rules");
    assert!(units > 100, "{units} units");
}

#[test]
fn with_the_key_log_tshark_opens_secure_records_as_the_proxy_does() {
    if !have_tshark() {
        return;
    }
    let dir = scratch("wireshark-keylog");
    let pcap = dir.join("secure.pcapng");
    let keylog = dir.join("keys.log");
    // The reference peer, secure (by default), writes its links' keys.
    let (_peer, peer_address) = start_logging_peer(&keylog);
    let (mut proxy, listening) = start_proxy(
        &peer_address,
        &[
            "--json",
            "--pcap",
            pcap.to_str().unwrap(),
            "--keylog",
            keylog.to_str().unwrap(),
        ],
    );
    assert!(
        secure_suite(&listening, "wire/SESS-3"),
        "the secure suite passes through"
    );
    let lines = proxy.interrupt_and_collect();
    let option = format!("acm.keylog:{}", keylog.display());
    let (units, _) = compare(&lines, &pcap, &["-o", &option]);
    assert!(units > 20, "{units} units");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"name\":\"CONNECT_REQUEST\"")),
        "records were opened"
    );
}

/// Compares what the proxy printed (`lines`, JSON) with what tshark shows of `pcap` with the
/// dissector (and `options`); returns the number of units and of rules tshark named.
fn compare(lines: &[String], pcap: &std::path::Path, options: &[&str]) -> (usize, usize) {
    let printed: Vec<Value> = lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|o: &Value| o["event"] == "frame" && o["name"] != "TRUNCATED")
        .collect();
    // The proxy's units, one packet each.
    let proxy_shown: Vec<Shown> = printed
        .iter()
        .map(|o| Shown {
            units: vec![o["name"].as_str().unwrap().to_string()],
            fields: vec![
                o["fields"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|kv| format!("{}={}", kv[0].as_str().unwrap(), kv[1].as_str().unwrap()))
                    .collect::<Vec<_>>()
                    .join(" "),
            ],
            header: o["channel"].as_u64().map(|channel| {
                (
                    channel,
                    o["flags"].as_u64().unwrap(),
                    o["length"].as_u64().unwrap(),
                )
            }),
            rules: o["problems"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["rule"].as_str().unwrap().to_string())
                .collect(),
        })
        .collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/wireshark/acm.lua");
    // One line a packet, fields by tabs, occurrences by the record separator (the fields text
    // escapes control characters, so neither occurs in it).
    let output = Command::new("tshark")
        .args(["-r", pcap.to_str().unwrap()])
        .args(["-X", &format!("lua_script:{script}")])
        // acm has no port: the heuristic goes first, also on ports other protocols registered.
        .args(["-o", "tcp.try_heuristic_first:TRUE"])
        .args(options)
        .args(["-Y", "acm", "-T", "fields", "-E", "occurrence=a"])
        .args(["-E", "aggregator=\u{1e}", "-E", "separator=/t"])
        .args(["-e", "acm.unit", "-e", "acm.fields", "-e", "acm.rule"])
        .args(["-e", "acm.channel", "-e", "acm.flags", "-e", "acm.length"])
        .output()
        .expect("tshark runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let split = |column: &str| -> Vec<String> {
        if column.is_empty() {
            Vec::new()
        } else {
            column.split('\u{1e}').map(str::to_string).collect()
        }
    };
    let tshark_shown: Vec<Shown> = text
        .lines()
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            let column = |i: usize| split(columns.get(i).copied().unwrap_or_default());
            let units = column(0);
            let channel = column(3);
            let header = (units.len() == 1 && channel.len() == 1).then(|| {
                (
                    number(&channel[0]),
                    number(&column(4)[0]),
                    number(&column(5)[0]),
                )
            });
            // Every unit has a fields text, empty ones included.
            let fields = columns
                .get(1)
                .map(|c| c.split('\u{1e}').map(str::to_string).collect())
                .unwrap_or_default();
            Shown {
                units,
                fields,
                header,
                rules: column(2),
            }
        })
        .collect();
    // Units in one packet are units the proxy printed one after the other (a frame longer
    // than a segment is shown with its last segment).
    let proxy_units: Vec<&String> = proxy_shown.iter().flat_map(|s| &s.units).collect();
    let tshark_units: Vec<&String> = tshark_shown.iter().flat_map(|s| &s.units).collect();
    assert_eq!(tshark_units, proxy_units);
    let proxy_fields: Vec<&String> = proxy_shown.iter().flat_map(|s| &s.fields).collect();
    let tshark_fields: Vec<&String> = tshark_shown.iter().flat_map(|s| &s.fields).collect();
    for (t, p) in tshark_fields.iter().zip(&proxy_fields) {
        assert_eq!(t, p);
    }
    assert_eq!(tshark_fields.len(), proxy_fields.len());
    let mut at = 0;
    let mut rules_named = 0;
    for shown in &tshark_shown {
        let ours = &proxy_shown[at..at + shown.units.len()];
        at += shown.units.len();
        if let (Some(t), [p]) = (shown.header, ours)
            && p.header.is_some()
        {
            assert_eq!(Some(t), p.header, "{:?}", shown.units);
        }
        let proxy_rules: Vec<&String> = ours.iter().flat_map(|s| &s.rules).collect();
        for rule in &shown.rules {
            assert!(
                proxy_rules.contains(&rule),
                "tshark names {rule} for {:?}; the proxy named {proxy_rules:?}",
                shown.units
            );
            rules_named += 1;
        }
    }
    (proxy_units.len(), rules_named)
}
