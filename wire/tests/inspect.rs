//! The inspector behind `acm proxy`, fed with the frames SPEC.md's Appendix A holds (made by the
//! reference implementation and checked against it by `conformance/tests/vectors.rs`) and with
//! malformed bytes, one rule at a time.

use acm_wire::inspect::{Direction, Inspector, Record};
use acm_wire::pb::{self, ConnectErrorCode, connect_response};
use acm_wire::{Control, FrameHeader};
use bytes::Bytes;

/// The test vectors of SPEC.md's Appendix A: each bold title and the bytes of the block after it.
fn vectors() -> Vec<(String, Vec<u8>)> {
    let spec = include_str!("../../SPEC.md");
    let appendix = spec
        .split("## Appendix A.")
        .nth(1)
        .and_then(|a| a.split("## Appendix B.").next())
        .expect("SPEC.md has Appendix A");
    let mut out = Vec::new();
    let mut title = String::new();
    let mut lines = appendix.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("**") {
            title = rest.split("**").next().unwrap_or_default().to_string();
        } else if line == "```text" {
            let mut bytes = Vec::new();
            for line in lines.by_ref() {
                if line == "```" {
                    break;
                }
                for byte in line.split_whitespace() {
                    bytes.push(u8::from_str_radix(byte, 16).expect("hex"));
                }
            }
            out.push((title.clone(), bytes));
        }
    }
    out
}

fn vector(prefix: &str) -> Vec<(Direction, Vec<u8>)> {
    vectors()
        .into_iter()
        .filter(|(title, _)| title.starts_with(prefix))
        .map(|(title, bytes)| {
            let direction = if title.contains("phone → tablet") {
                Direction::Dialer
            } else {
                Direction::Acceptor
            };
            (direction, bytes)
        })
        .collect()
}

fn open(id: &str) -> Vec<u8> {
    let mut out = vec![0xAC, 0x4D, 0, 1, 0, 0, 0, id.len() as u8, 0, 0, 0, 0];
    out.extend_from_slice(id.as_bytes());
    out
}

/// An inspector that has seen both OPENs and the HELLOs of A.3.
fn opened() -> Inspector {
    let mut inspector = Inspector::new();
    let records = push_all(
        &mut inspector,
        &[
            (Direction::Dialer, open("phone")),
            (Direction::Acceptor, open("tablet")),
        ],
    );
    assert_eq!(names(&records), ["OPEN", "OPEN"]);
    let hellos: Vec<_> = vector("phone → tablet: HELLO")
        .into_iter()
        .chain(vector("tablet → phone: HELLO"))
        .collect();
    let records = push_all(&mut inspector, &hellos);
    assert_eq!(names(&records), ["HELLO", "HELLO"]);
    assert_clean(&records);
    inspector
}

/// Feeds each unit in pieces of 5 bytes, so that frames come split across reads.
fn push_all(inspector: &mut Inspector, units: &[(Direction, Vec<u8>)]) -> Vec<Record> {
    let mut out = Vec::new();
    for (direction, bytes) in units {
        for piece in bytes.chunks(5) {
            out.extend(inspector.push(*direction, piece));
        }
    }
    out
}

fn names(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.name.as_str()).collect()
}

fn assert_clean(records: &[Record]) {
    for record in records {
        assert!(record.problems.is_empty(), "{}", record.line());
    }
}

fn rules(record: &Record) -> Vec<&'static str> {
    record.problems.iter().map(|p| p.rule).collect()
}

fn frame(version: u8, frame_type: u8, flags: u8, channel: u32, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        version,
        frame_type,
        flags,
        length: payload.len() as u32,
        channel,
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[test]
fn the_handshake_messages_and_a_disconnect_of_appendix_a3_are_decoded_field_by_field() {
    let mut inspector = Inspector::new();
    let mut units = vec![
        (Direction::Dialer, open("phone")),
        (Direction::Acceptor, open("tablet")),
    ];
    units.extend(vector("phone → tablet: HELLO"));
    units.extend(vector("tablet → phone: HELLO"));
    units.extend(vector("phone → tablet: CONNECT_REQUEST"));
    units.extend(vector("tablet → phone: CONNECT_RESPONSE"));
    units.extend(vector("phone → tablet: MESSAGE"));
    units.extend(vector("tablet → phone: DISCONNECT"));
    let records = push_all(&mut inspector, &units);
    assert_clean(&records);
    let lines: Vec<String> = records.iter().map(Record::line).collect();
    assert_eq!(lines[0], "c>s OPEN len=5 device_id=\"phone\"");
    assert_eq!(
        lines[2],
        "c>s HELLO ch=0 flags=0x00 len=41 min_version=1 max_version=1 device_id=\"phone\" \
         max_frame_size=65535 keepalive_interval_ms=15000 \
         nonce=11111111111111111111111111111111 max_data_size=104857600"
    );
    assert!(
        lines[4].starts_with(
            "c>s CONNECT_REQUEST ch=1 flags=0x00 len=126 token=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf \
             source.device_id=\"phone\" source.bundle_name=\"com.example.notes\""
        ),
        "{}",
        lines[4]
    );
    assert!(
        lines[4].ends_with("target.service_name=\"notes\" options={}"),
        "{}",
        lines[4]
    );
    assert_eq!(
        lines[5],
        "s>c CONNECT_RESPONSE ch=1 flags=0x00 len=20 token=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf \
         accepted={}"
    );
    assert_eq!(lines[6], "c>s MESSAGE ch=1 flags=0x00 len=4 text=\"hi\"");
    assert_eq!(
        lines[7],
        "s>c DISCONNECT ch=1 flags=0x00 len=2 reason=PEER_APP_CLOSE_COLLABORATION"
    );
    // Offsets count each direction's bytes; the bytes are what went by.
    assert_eq!(records[2].offset, 17);
    assert_eq!(records[4].bytes, units[4].1);
}

#[test]
fn the_fragmented_transfer_of_appendix_a4_shows_transfer_index_and_offsets() {
    let mut inspector = opened();
    let records = push_all(&mut inspector, &vector("phone → tablet: DATA"));
    assert_clean(&records);
    assert_eq!(
        records[0].line(),
        "c>s DATA ch=1 flags=0x01(FIRST) len=116 transfer=1 index=0 total=200 offset=0 bytes=100"
    );
    assert_eq!(
        records[1].line(),
        "c>s DATA ch=1 flags=0x02(LAST) len=108 transfer=1 index=1 offset=100 bytes=100"
    );
}

#[test]
fn a_rejection_names_its_code_and_reason() {
    let mut inspector = opened();
    let response = Control::ConnectResponse(pb::ConnectResponse {
        token: Bytes::from_static(&[7; 16]),
        result: Some(connect_response::Result::Rejected(pb::Rejected {
            code: ConnectErrorCode::PeerAppRejected.into(),
            reason: "busy \"now\"".into(),
        })),
    });
    let wire = response.encode_frame(1, 1).unwrap();
    let records = inspector.push(Direction::Acceptor, &wire);
    assert_clean(&records);
    assert_eq!(
        records[0].line(),
        "s>c CONNECT_RESPONSE ch=1 flags=0x00 len=34 token=07070707070707070707070707070707 \
         rejected.code=PEER_APP_REJECTED rejected.reason=\"busy \\\"now\\\"\""
    );
}

#[test]
fn a_split_body_is_joined_and_an_interruption_breaks_frame_10() {
    let mut inspector = opened();
    let body = Control::Message(pb::Message {
        text: "hello".into(),
    })
    .encode_body();
    let (a, b) = body.split_at(3);
    let records = push_all(
        &mut inspector,
        &[
            (Direction::Dialer, frame(1, 7, 1, 3, a)),
            (Direction::Dialer, frame(1, 7, 0, 3, b)),
        ],
    );
    assert_clean(&records);
    assert_eq!(
        records[0].line(),
        "c>s MESSAGE ch=3 flags=0x01(MORE) len=3 piece=1"
    );
    assert_eq!(
        records[1].line(),
        "c>s MESSAGE ch=3 flags=0x00 len=4 piece=2 text=\"hello\""
    );
    let records = push_all(
        &mut inspector,
        &[
            (Direction::Dialer, frame(1, 7, 1, 3, a)),
            (Direction::Dialer, frame(1, 3, 0, 0, &[])),
        ],
    );
    assert_eq!(rules(&records[1]), ["FRAME-10"]);
}

#[test]
fn each_header_rule_broken_is_named() {
    let cases: [(Vec<u8>, &str); 6] = [
        (frame(0x02, 3, 0, 0, &[]), "FRAME-3"),
        (frame(1, 3, 0x80, 0, &[]), "FRAME-4"),
        (frame(1, 0, 0, 0, &[]), "FRAME-6"),
        (frame(1, 0x0B, 0, 0, &[]), "FRAME-7"),
        (frame(1, 3, 0, 5, &[]), "FRAME-8"),
        (frame(1, 7, 0, 0, &[0x0a, 0x01, 0x41]), "FRAME-8"),
    ];
    for (bytes, rule) in cases {
        let mut inspector = opened();
        let records = inspector.push(Direction::Dialer, &bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(rules(&records[0]), [rule], "{}", records[0].line());
    }
    // Larger than the tablet's 65 535: the phone's frame breaks FRAME-5 (the payload is read
    // all the same, to stay in step with the stream).
    let mut inspector = opened();
    let records = inspector.push(Direction::Dialer, &frame(1, 8, 3, 1, &vec![0; 70_000]));
    assert!(
        rules(&records[0]).contains(&"FRAME-5"),
        "{}",
        records[0].line()
    );
    // An extension frame is shown and passes.
    let records = inspector.push(Direction::Dialer, &frame(1, 0x90, 0xff, 9, b"x"));
    assert_eq!(records[0].name, "EXTENSION 0x90");
    assert_clean(&records);
}

#[test]
fn a_bad_magic_loses_the_framing_and_the_rest_is_shown_unframed() {
    let mut inspector = opened();
    let records = inspector.push(Direction::Dialer, &[0xAC, 0x4E, 1, 3]);
    assert_eq!(records[0].name, "UNFRAMED");
    assert_eq!(rules(&records[0]), ["FRAME-2"]);
    let records = inspector.push(Direction::Dialer, &[1, 2, 3]);
    assert_eq!(records[0].name, "UNFRAMED");
    assert_eq!(records[0].bytes, [1, 2, 3]);
    assert_eq!(records[0].offset, 17 + 53 + 4);
    // The other direction goes on.
    let records = inspector.push(Direction::Acceptor, &frame(1, 4, 0, 0, &[]));
    assert_eq!(names(&records), ["PONG"]);
}

#[test]
fn bodies_and_fragments_that_break_their_rules_are_named() {
    let mut inspector = opened();
    let undecodable = frame(1, 5, 0, 1, &[0x0a, 0x20, 0x01]);
    let records = inspector.push(Direction::Dialer, &undecodable);
    assert_eq!(rules(&records[0]), ["CTRL-1"]);
    let long = Control::Message(pb::Message {
        text: "x".repeat(1025),
    })
    .encode_frame(1, 1)
    .unwrap();
    let records = inspector.push(Direction::Dialer, &long);
    assert_eq!(rules(&records[0]), ["MSG-1"]);
    let short = frame(1, 8, 1, 1, &[0, 0, 0, 1]);
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &short)[0]),
        ["DATA-1"]
    );
    let first = |id: u8, index: u8| {
        let mut p = vec![0, 0, 0, id, 0, 0, 0, index, 0, 0, 0, 0, 0, 0, 0, 4];
        p.extend_from_slice(b"ab");
        frame(1, 8, 1, 1, &p)
    };
    let next = |id: u8, index: u8, flags: u8, chunk: &[u8]| {
        let mut p = vec![0, 0, 0, id, 0, 0, 0, index];
        p.extend_from_slice(chunk);
        frame(1, 8, flags, 1, &p)
    };
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &first(5, 1))[0]),
        ["DATA-2"]
    );
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &first(5, 0))[0]),
        ["DATA-3"]
    );
    let records = inspector.push(Direction::Dialer, &first(6, 0));
    assert_clean(&records);
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &next(6, 2, 0, b"c"))[0]),
        ["DATA-4"]
    );
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &next(6, 1, 0, b"c"))[0]),
        ["DATA-4"]
    );
    inspector.push(Direction::Dialer, &first(7, 0));
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &next(7, 1, 2, b"cde"))[0]),
        ["DATA-5"]
    );
}

#[test]
fn the_bindings_messages_and_their_rules() {
    let mut inspector = Inspector::new();
    let records = inspector.push(Direction::Dialer, &frame(1, 1, 0, 0, &[]));
    assert!(
        rules(&records[0]).contains(&"TCP-5"),
        "{}",
        records[0].line()
    );
    let mut inspector = Inspector::new();
    inspector.push(Direction::Dialer, &open("phone"));
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &open("phone"))[0]),
        ["TCP-5"]
    );
    let close = vectors()
        .into_iter()
        .find(|(title, _)| title.starts_with("TCP CLOSE after a LINK_CLOSE"))
        .unwrap()
        .1;
    let records = inspector.push(Direction::Dialer, &close);
    assert_eq!(
        records[0].line(),
        "c>s CLOSE len=11 code=2 text=\"FRAME-2\""
    );
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &frame(1, 3, 0, 0, &[]))[0]),
        ["TCP-6", "LINK-2"]
    );
    let long_open = open(&"x".repeat(65));
    let mut inspector = Inspector::new();
    assert_eq!(
        rules(&inspector.push(Direction::Dialer, &long_open)[0]),
        ["TCP-4"]
    );
}

#[test]
fn a_stream_that_ends_mid_frame_leaves_a_truncated_unit() {
    let mut inspector = opened();
    assert!(
        inspector
            .push(Direction::Dialer, &[0xAC, 0x4D, 1, 3, 0, 0, 0, 9])
            .is_empty()
    );
    let record = inspector.finish(Direction::Dialer).unwrap();
    assert_eq!(record.name, "TRUNCATED");
    assert_eq!(rules(&record), ["FRAME-9"]);
    assert!(inspector.finish(Direction::Dialer).is_none());
}

#[test]
fn secure_envelopes_are_counted_and_not_read_as_frames() {
    let mut inspector = Inspector::new();
    inspector.push(Direction::Dialer, &open("phone"));
    inspector.push(Direction::Acceptor, &open("tablet"));
    let m1 = frame(1, 0x7E, 0, 0, &[0; 64]);
    let m2 = frame(1, 0x7E, 0, 0, &[0; 96]);
    let rec = frame(1, 0x7F, 0, 0, &[0; 16]);
    let records = push_all(
        &mut inspector,
        &[
            (Direction::Dialer, m1),
            (Direction::Acceptor, m2.clone()),
            (Direction::Dialer, m2),
            (Direction::Dialer, rec.clone()),
            (Direction::Dialer, rec),
        ],
    );
    assert_clean(&records);
    let lines: Vec<String> = records.iter().map(Record::line).collect();
    assert_eq!(lines[0], "c>s HANDSHAKE len=64 message=1");
    assert_eq!(lines[2], "c>s HANDSHAKE len=96 message=3");
    assert_eq!(lines[4], "c>s RECORD len=16 number=1");
}

#[test]
fn hostile_streams_never_panic() {
    // Pseudo-random bytes after a valid opening, in both directions, in pieces.
    let mut seed: u32 = 0x1234_5678;
    for round in 0..200 {
        let mut inspector = opened();
        for _ in 0..50 {
            let mut piece = vec![0xAC, 0x4D];
            let len = (seed % 40) as usize;
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                piece.push((seed & 0xff) as u8);
            }
            // Keep lengths small so that units complete.
            if piece.len() > 7 {
                piece[5] = 0;
                piece[6] = 0;
                piece[7] %= 24;
            }
            let direction = if round % 2 == 0 {
                Direction::Dialer
            } else {
                Direction::Acceptor
            };
            for record in inspector.push(direction, &piece) {
                let _ = record.line();
            }
        }
        let _ = inspector.finish(Direction::Dialer);
    }
}

/// "Keys" that open a record by dropping its 16 last bytes, for the dialer ephemeral key
/// `[7; 32]` only.
struct Clear;

struct ClearOpener;

impl acm_wire::inspect::RecordOpen for ClearOpener {
    fn open(&mut self, _number: u64, body: &[u8]) -> Option<Vec<u8>> {
        let len = body.len().checked_sub(16)?;
        (body[len..] == [0xEE; 16]).then(|| body[..len].to_vec())
    }
}

impl acm_wire::inspect::RecordKeys for Clear {
    fn opener(
        &self,
        dialer_ephemeral: &[u8; 32],
        _direction: Direction,
    ) -> Option<Box<dyn acm_wire::inspect::RecordOpen>> {
        (dialer_ephemeral == &[7; 32]).then(|| Box::new(ClearOpener) as _)
    }
}

#[test]
fn with_keys_records_are_opened_and_their_frames_shown() {
    let mut inspector = Inspector::with_keys(std::sync::Arc::new(Clear));
    inspector.push(Direction::Dialer, &open("phone"));
    inspector.push(Direction::Acceptor, &open("tablet"));
    let mut m1 = vec![7; 32];
    m1.extend_from_slice(&[0; 32]);
    let record = |frame: &[u8], tag: u8| {
        let mut body = frame.to_vec();
        body.extend_from_slice(&[tag; 16]);
        frame_bytes(0x7F, &body)
    };
    let hello = &vector("phone → tablet: HELLO")[0].1;
    let records = push_all(
        &mut inspector,
        &[
            (Direction::Dialer, frame_bytes(0x7E, &m1)),
            (Direction::Acceptor, frame_bytes(0x7E, &[0; 96])),
            (Direction::Dialer, frame_bytes(0x7E, &[0; 96])),
            (Direction::Dialer, record(&[], 0xEE)),
            (Direction::Dialer, record(hello, 0xEE)),
            (Direction::Dialer, record(hello, 0x00)),
        ],
    );
    assert_eq!(
        records[3].line(),
        "c>s RECORD len=16 number=0 opened=confirmation"
    );
    assert!(
        records[4]
            .line()
            .starts_with("c>s HELLO ch=0 flags=0x00 len=41 record=1 min_version=1"),
        "{}",
        records[4].line()
    );
    assert_eq!(
        records[4].bytes.len(),
        12 + 53 + 16,
        "the bytes are the record's"
    );
    assert_eq!(rules(&records[5]), ["SEC-9"], "{}", records[5].line());
}

fn frame_bytes(kind: u8, body: &[u8]) -> Vec<u8> {
    frame(1, kind, 0, 0, body)
}
