//! The rules on control bodies (SPEC sections 4, 5 and 7): LINK-3, LINK-4, SESS-2, SESS-4,
//! MSG-1 and CTRL-1 to CTRL-4. Each refusal is checked on the value and on its encoding, so
//! that what a peer sends is refused as the value would be.

mod common;

use acm_wire::pb::{
    self, CollaborateEventType, ConnectErrorCode, DisconnectReason, FrameType, LinkCloseReason,
    SessionError, StartOptionParams,
};
use acm_wire::reference::{
    ApiEnum, read_collaborate_event_type, read_connect_error_code, read_disconnect_reason,
    read_link_close_reason, read_session_error, read_start_options,
};
use acm_wire::{Control, ControlError, SUPPORTED_VERSIONS, negotiate_version};
use bytes::Bytes;
use common::*;

/// Asserts that `control` is refused with `expected`, which names `rule`, both by `validate`
/// and when its encoded body is decoded.
fn assert_refused(control: Control, expected: ControlError, rule: &str) {
    assert_eq!(expected.rule(), rule, "{expected:?}");
    assert_eq!(control.validate(), Err(expected.clone()), "{control:?}");
    assert_eq!(
        Control::decode(control.frame_type(), &control.encode_body()),
        Some(Err(expected)),
        "decoding {control:?}"
    );
}

/// Asserts that `control` is valid and decodes from its encoding unchanged.
fn assert_valid(control: Control) {
    assert_eq!(control.validate(), Ok(()), "{control:?}");
    assert_eq!(
        Control::decode(control.frame_type(), &control.encode_body()),
        Some(Ok(control))
    );
}

/// A string of `len` bytes of `c` (an ASCII character).
fn ascii(c: char, len: usize) -> String {
    std::iter::repeat_n(c, len).collect()
}

fn too_long(field: &'static str, len: usize, max: usize) -> ControlError {
    ControlError::TooLong { field, len, max }
}

fn out_of_range(field: &'static str, value: u64, min: u64, max: u64) -> ControlError {
    ControlError::OutOfRange {
        field,
        value,
        min,
        max,
    }
}

// ---------------------------------------------------------------------------------------------
// LINK-3, LINK-4: Hello.

/// A change made to the sample Hello.
type HelloChange = fn(&mut pb::Hello);

fn with_hello(change: impl FnOnce(&mut pb::Hello)) -> Control {
    let mut m = hello();
    change(&mut m);
    Control::Hello(m)
}

#[test]
fn link_3_hello_at_every_bound_is_accepted() {
    assert_valid(Control::Hello(hello()));
    assert_valid(with_hello(|m| {
        m.min_version = 1;
        m.max_version = 255;
        m.device_id = ascii('d', 64);
        m.max_frame_size = 128;
        m.keepalive_interval_ms = 1_000;
        m.max_data_size = 1;
        m.features = u64::MAX;
    }));
    assert_valid(with_hello(|m| {
        m.min_version = 255;
        m.max_version = 255;
        m.device_id = "d".into();
        m.max_frame_size = 16_777_227;
        m.keepalive_interval_ms = 600_000;
        m.max_data_size = u64::MAX;
    }));
}

#[test]
fn link_3_hello_versions_out_of_range_are_refused() {
    let cases = [
        (0, 1, out_of_range("Hello.min_version", 0, 1, 255)),
        (256, 256, out_of_range("Hello.min_version", 256, 1, 255)),
        (1, 0, out_of_range("Hello.max_version", 0, 1, 255)),
        (1, 256, out_of_range("Hello.max_version", 256, 1, 255)),
        (3, 2, ControlError::EmptyVersionRange { min: 3, max: 2 }),
    ];
    for (min, max, expected) in cases {
        let control = with_hello(|m| {
            m.min_version = min;
            m.max_version = max;
        });
        assert_refused(control, expected, "LINK-3");
    }
}

#[test]
fn link_3_hello_device_id_is_checked() {
    let field = "Hello.device_id";
    let cases = [
        (String::new(), ControlError::Empty { field }),
        (ascii('d', 65), too_long(field, 65, 64)),
        // The limit counts bytes, not characters: 17 four-byte characters are 68 bytes.
        ("\u{1F600}".repeat(17), too_long(field, 68, 64)),
        (
            "phone\u{7}".into(),
            ControlError::ControlCharacter { field },
        ),
        ("phone\n1".into(), ControlError::ControlCharacter { field }),
        (
            "\u{85}phone".into(),
            ControlError::ControlCharacter { field },
        ),
    ];
    for (device_id, expected) in cases {
        assert_refused(with_hello(|m| m.device_id = device_id), expected, "LINK-3");
    }
    assert_valid(with_hello(|m| m.device_id = "\u{1F600}".repeat(16)));
}

#[test]
fn link_3_hello_sizes_and_intervals_out_of_range_are_refused() {
    let frame = "Hello.max_frame_size";
    let keepalive = "Hello.keepalive_interval_ms";
    let cases: [(HelloChange, ControlError); 5] = [
        (
            |m| m.max_frame_size = 127,
            out_of_range(frame, 127, 128, 16_777_227),
        ),
        (
            |m| m.max_frame_size = 16_777_228,
            out_of_range(frame, 16_777_228, 128, 16_777_227),
        ),
        (
            |m| m.keepalive_interval_ms = 999,
            out_of_range(keepalive, 999, 1_000, 600_000),
        ),
        (
            |m| m.keepalive_interval_ms = 600_001,
            out_of_range(keepalive, 600_001, 1_000, 600_000),
        ),
        (
            |m| m.max_data_size = 0,
            out_of_range("Hello.max_data_size", 0, 1, u64::MAX),
        ),
    ];
    for (change, expected) in cases {
        assert_refused(with_hello(change), expected, "LINK-3");
    }
}

#[test]
fn link_3_hello_nonce_must_be_sixteen_bytes() {
    for len in [0, 15, 17, 32] {
        assert_refused(
            with_hello(|m| m.nonce = Bytes::from(vec![1; len])),
            ControlError::WrongLength {
                field: "Hello.nonce",
                len,
                expected: 16,
            },
            "LINK-3",
        );
    }
}

#[test]
fn link_4_negotiation_picks_the_highest_common_version() {
    let peer = |min, max| pb::Hello {
        min_version: min,
        max_version: max,
        ..hello()
    };
    assert_eq!(negotiate_version(SUPPORTED_VERSIONS, &hello()), Some(1));
    assert_eq!(negotiate_version(1..=5, &peer(2, 9)), Some(5));
    assert_eq!(negotiate_version(3..=9, &peer(1, 4)), Some(4));
    assert_eq!(negotiate_version(1..=255, &peer(7, 7)), Some(7));
    assert_eq!(negotiate_version(1..=255, &peer(200, 255)), Some(255));
    assert_eq!(negotiate_version(1..=2, &peer(3, 4)), None);
    assert_eq!(negotiate_version(5..=6, &peer(1, 4)), None);
}

// ---------------------------------------------------------------------------------------------
// SESS-2: ConnectRequest.

fn with_request(change: impl FnOnce(&mut pb::ConnectRequest)) -> Control {
    let mut m = connect_request();
    change(&mut m);
    Control::ConnectRequest(m)
}

/// The PeerInfo of a request: source or target.
type PeerOf = fn(&mut pb::ConnectRequest) -> &mut pb::PeerInfo;

fn source(m: &mut pb::ConnectRequest) -> &mut pb::PeerInfo {
    m.source.as_mut().expect("sample has a source")
}

fn target(m: &mut pb::ConnectRequest) -> &mut pb::PeerInfo {
    m.target.as_mut().expect("sample has a target")
}

/// A name field of PeerInfo, by its proto name.
fn name_field<'a>(peer: &'a mut pb::PeerInfo, name: &str) -> &'a mut String {
    match name {
        "device_id" => &mut peer.device_id,
        "bundle_name" => &mut peer.bundle_name,
        "module_name" => &mut peer.module_name,
        "ability_name" => &mut peer.ability_name,
        _ => unreachable!("PeerInfo has no name field {name}"),
    }
}

#[test]
fn sess_2_request_token_must_be_sixteen_bytes() {
    for len in [0, 15, 17] {
        assert_refused(
            with_request(|m| m.token = Bytes::from(vec![1; len])),
            ControlError::WrongLength {
                field: "ConnectRequest.token",
                len,
                expected: 16,
            },
            "SESS-2",
        );
    }
}

#[test]
fn sess_2_source_and_target_must_be_present() {
    let field = "ConnectRequest.source";
    assert_refused(
        with_request(|m| m.source = None),
        ControlError::Missing { field },
        "SESS-2",
    );
    let field = "ConnectRequest.target";
    assert_refused(
        with_request(|m| m.target = None),
        ControlError::Missing { field },
        "SESS-2",
    );
}

#[test]
fn sess_2_peer_names_must_be_non_empty_bounded_and_without_control_characters() {
    let peers: [(PeerOf, &str); 2] = [(source, "source"), (target, "target")];
    let limits = [
        ("device_id", 64),
        ("bundle_name", 1023),
        ("module_name", 1023),
        ("ability_name", 1023),
    ];
    for (peer_of, side) in peers {
        for (name, max) in limits {
            // The error names its field with a static string; these few are leaked for the
            // test's lifetime.
            let field: &'static str = format!("ConnectRequest.{side}.{name}").leak();
            let set = |value: String| with_request(|m| *name_field(peer_of(m), name) = value);
            assert_valid(set(ascii('n', max)));
            assert_refused(set(String::new()), ControlError::Empty { field }, "SESS-2");
            assert_refused(
                set(ascii('n', max + 1)),
                too_long(field, max + 1, max),
                "SESS-2",
            );
            assert_refused(
                set("a\tb".into()),
                ControlError::ControlCharacter { field },
                "SESS-2",
            );
        }
    }
}

#[test]
fn sess_2_target_service_name_is_required_and_source_service_name_optional() {
    let target_field = "ConnectRequest.target.service_name";
    assert_refused(
        with_request(|m| target(m).service_name.clear()),
        ControlError::Empty {
            field: target_field,
        },
        "SESS-2",
    );
    assert_valid(with_request(|m| target(m).service_name = ascii('s', 256)));
    assert_refused(
        with_request(|m| target(m).service_name = ascii('s', 257)),
        too_long(target_field, 257, 256),
        "SESS-2",
    );
    assert_refused(
        with_request(|m| target(m).service_name = "svc\u{0}".into()),
        ControlError::ControlCharacter {
            field: target_field,
        },
        "SESS-2",
    );

    let source_field = "ConnectRequest.source.service_name";
    assert_valid(with_request(|m| source(m).service_name.clear()));
    assert_valid(with_request(|m| source(m).service_name = ascii('s', 256)));
    assert_refused(
        with_request(|m| source(m).service_name = ascii('s', 257)),
        too_long(source_field, 257, 256),
        "SESS-2",
    );
}

#[test]
fn sess_2_parameters_are_bounded() {
    let set = |parameters: Vec<(String, String)>| {
        with_request(|m| {
            let options = m.options.as_mut().expect("sample has options");
            options.parameters = parameters.into_iter().collect();
        })
    };
    let entries = |n: usize| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect();
    assert_valid(set(entries(64)));
    assert_refused(
        set(entries(65)),
        too_long("ConnectRequest.options.parameters", 65, 64),
        "SESS-2",
    );

    let key = "ConnectRequest.options.parameters.key";
    let value = "ConnectRequest.options.parameters.value";
    assert_valid(set(vec![(ascii('k', 1023), ascii('v', 1023))]));
    assert_valid(set(vec![("k".into(), String::new())]));
    assert_refused(
        set(vec![(String::new(), "v".into())]),
        ControlError::Empty { field: key },
        "SESS-2",
    );
    assert_refused(
        set(vec![(ascii('k', 1024), "v".into())]),
        too_long(key, 1024, 1023),
        "SESS-2",
    );
    assert_refused(
        set(vec![("k\r".into(), "v".into())]),
        ControlError::ControlCharacter { field: key },
        "SESS-2",
    );
    assert_refused(
        set(vec![("k".into(), ascii('v', 1024))]),
        too_long(value, 1024, 1023),
        "SESS-2",
    );
}

#[test]
fn sess_2_options_are_optional() {
    assert_valid(with_request(|m| m.options = None));
    assert_valid(with_request(|m| {
        m.options = Some(pb::ConnectOptions::default())
    }));
}

// ---------------------------------------------------------------------------------------------
// SESS-4: ConnectResponse.

#[test]
fn sess_4_response_needs_a_token_and_a_result() {
    let accepted = pb::ConnectResponse {
        token: sixteen(1),
        result: Some(pb::connect_response::Result::Accepted(pb::Accepted {})),
    };
    assert_valid(Control::ConnectResponse(accepted.clone()));
    for len in [0, 15, 17] {
        assert_refused(
            Control::ConnectResponse(pb::ConnectResponse {
                token: Bytes::from(vec![1; len]),
                ..accepted.clone()
            }),
            ControlError::WrongLength {
                field: "ConnectResponse.token",
                len,
                expected: 16,
            },
            "SESS-4",
        );
    }
    assert_refused(
        Control::ConnectResponse(pb::ConnectResponse {
            result: None,
            ..accepted
        }),
        ControlError::MissingResult,
        "SESS-4",
    );
}

#[test]
fn sess_4_rejection_needs_a_code_and_a_bounded_reason() {
    for code in ConnectErrorCode::ALL {
        assert_valid(Control::ConnectResponse(rejected((*code).into(), "no")));
    }
    assert_valid(Control::ConnectResponse(rejected(2, &ascii('r', 1024))));
    assert_refused(
        Control::ConnectResponse(rejected(2, &ascii('r', 1025))),
        too_long("ConnectResponse.rejected.reason", 1025, 1024),
        "CTRL-4",
    );
    assert_refused(
        Control::ConnectResponse(rejected(0, "no")),
        ControlError::Unspecified {
            field: "ConnectResponse.rejected.code",
        },
        "CTRL-3",
    );
}

// ---------------------------------------------------------------------------------------------
// MSG-1, CTRL-4: texts.

#[test]
fn msg_1_message_text_is_at_most_1024_bytes() {
    let message = |text: String| Control::Message(pb::Message { text });
    assert_valid(message(String::new()));
    assert_valid(message(ascii('m', 1024)));
    assert_refused(
        message(ascii('m', 1025)),
        too_long("Message.text", 1025, 1024),
        "MSG-1",
    );
    // Bytes of UTF-8 count, not characters: 342 three-byte characters are 1026 bytes.
    assert_refused(
        message("\u{20AC}".repeat(342)),
        too_long("Message.text", 1026, 1024),
        "MSG-1",
    );
}

/// A control body built around one free text.
type TextControl = fn(String) -> Control;

#[test]
fn ctrl_4_free_texts_are_at_most_1024_bytes() {
    let link_close = |message: String| {
        Control::LinkClose(pb::LinkClose {
            reason: LinkCloseReason::Normal.into(),
            message,
        })
    };
    let disconnect = |detail: String| {
        Control::Disconnect(pb::Disconnect {
            reason: DisconnectReason::PeerAppExit.into(),
            error: SessionError::None.into(),
            detail,
        })
    };
    let event = |message: String| {
        Control::CollaborateEvent(pb::CollaborateEvent {
            event_type: CollaborateEventType::SendFailure.into(),
            message,
        })
    };
    let cases: [(TextControl, &'static str); 3] = [
        (link_close, "LinkClose.message"),
        (disconnect, "Disconnect.detail"),
        (event, "CollaborateEvent.message"),
    ];
    for (make, field) in cases {
        assert_valid(make(ascii('t', 1024)));
        assert_refused(
            make(ascii('t', 1025)),
            too_long(field, 1025, 1024),
            "CTRL-4",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CTRL-1, CTRL-2: bodies that are not, or more than, their message.

/// The control frame types and the message names their decode errors give.
const CONTROL_TYPES: [(FrameType, &str); 9] = [
    (FrameType::Hello, "Hello"),
    (FrameType::LinkClose, "LinkClose"),
    (FrameType::Ping, "Ping"),
    (FrameType::Pong, "Pong"),
    (FrameType::ConnectRequest, "ConnectRequest"),
    (FrameType::ConnectResponse, "ConnectResponse"),
    (FrameType::Message, "Message"),
    (FrameType::Disconnect, "Disconnect"),
    (FrameType::CollaborateEvent, "CollaborateEvent"),
];

#[test]
fn ctrl_1_garbage_body_is_refused() {
    let garbage: [&[u8]; 5] = [
        // A key whose varint never ends.
        &[0x80],
        // A varint of eleven bytes.
        &[
            0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
        ],
        // Field 15 announcing 5 bytes of which 1 is there.
        &[0x7A, 0x05, 0x01],
        // Wire type 7 does not exist.
        &[0x0F],
        // Field number 0 is invalid.
        &[0x00, 0x00],
    ];
    for (frame_type, message) in CONTROL_TYPES {
        for body in garbage {
            let Some(Err(err)) = Control::decode(frame_type, body) else {
                panic!("{message} body {body:02X?} was not refused");
            };
            let ControlError::Decode {
                message: named,
                detail,
            } = &err
            else {
                panic!("{message} body {body:02X?} refused with {err:?}");
            };
            assert_eq!(*named, message);
            assert!(!detail.is_empty());
            assert_eq!(err.rule(), "CTRL-1");
        }
    }
}

#[test]
fn ctrl_1_body_with_wrong_wire_types_or_invalid_utf8_is_refused() {
    let cases: [(FrameType, &[u8]); 3] = [
        // Message.text (field 1, a string) holding invalid UTF-8.
        (FrameType::Message, &[0x0A, 0x02, 0xFF, 0xFE]),
        // Ping.value (field 1, a varint) sent as a length-delimited field.
        (FrameType::Ping, &[0x0A, 0x01, 0x00]),
        // ConnectRequest.source (field 2, a message) holding a truncated PeerInfo.
        (FrameType::ConnectRequest, &[0x12, 0x02, 0x0A, 0x05]),
    ];
    for (frame_type, body) in cases {
        let result = Control::decode(frame_type, body).expect("a control type");
        let err = result.expect_err("refused");
        assert!(matches!(err, ControlError::Decode { .. }), "{err:?}");
        assert_eq!(err.rule(), "CTRL-1");
    }
}

#[test]
fn ctrl_1_types_without_a_protobuf_body_are_not_decoded() {
    assert_eq!(Control::decode(FrameType::Data, &[1, 2, 3]), None);
    assert_eq!(Control::decode(FrameType::Unspecified, &[]), None);
}

#[test]
fn ctrl_2_unknown_fields_are_ignored() {
    // Unknown fields of every wire type: varint, 64-bit, length-delimited, 32-bit.
    let unknown: &[u8] = &[
        0xF8, 0x06, 0x96, 0x01, // field 111, varint 150
        0x81, 0x07, 1, 2, 3, 4, 5, 6, 7, 8, // field 112, fixed64
        0x8A, 0x07, 0x03, b'n', b'e', b'w', // field 113, 3 bytes
        0x95, 0x07, 1, 2, 3, 4, // field 114, fixed32
    ];
    for control in sample_controls() {
        let mut body = control.encode_body().to_vec();
        body.extend_from_slice(unknown);
        assert_eq!(
            Control::decode(control.frame_type(), &body),
            Some(Ok(control.clone())),
            "unknown fields after {control:?}"
        );
        let mut body = unknown.to_vec();
        body.extend_from_slice(&control.encode_body());
        assert_eq!(
            Control::decode(control.frame_type(), &body),
            Some(Ok(control))
        );
    }
}

#[test]
fn ctrl_2_unknown_fields_inside_nested_messages_are_ignored() {
    let request = connect_request();
    let mut body = Control::ConnectRequest(request.clone())
        .encode_body()
        .to_vec();
    // Field 2 (source) again, holding only an unknown field: protobuf merges it into source.
    body.extend_from_slice(&[0x12, 0x03, 0xF8, 0x06, 0x01]);
    // Field 4 (options) again, likewise.
    body.extend_from_slice(&[0x22, 0x03, 0xF8, 0x06, 0x01]);
    assert_eq!(
        Control::decode(FrameType::ConnectRequest, &body),
        Some(Ok(Control::ConnectRequest(request)))
    );
}

// ---------------------------------------------------------------------------------------------
// CTRL-3: enums.

#[test]
fn ctrl_3_unspecified_required_enums_are_refused() {
    let cases = [
        (
            Control::LinkClose(pb::LinkClose::default()),
            "LinkClose.reason",
        ),
        (
            Control::Disconnect(pb::Disconnect::default()),
            "Disconnect.reason",
        ),
        (
            Control::CollaborateEvent(pb::CollaborateEvent::default()),
            "CollaborateEvent.event_type",
        ),
        (
            Control::ConnectResponse(rejected(0, "")),
            "ConnectResponse.rejected.code",
        ),
    ];
    for (control, field) in cases {
        assert_refused(control, ControlError::Unspecified { field }, "CTRL-3");
    }
    // An enum never sent reads as UNSPECIFIED: the empty LinkClose body is refused too.
    assert_eq!(
        Control::decode(FrameType::LinkClose, &[]),
        Some(Err(ControlError::Unspecified {
            field: "LinkClose.reason"
        }))
    );
}

#[test]
fn ctrl_3_unknown_enum_values_pass_validation() {
    for value in [99, 1 << 20, -1, i32::MIN, i32::MAX] {
        assert_valid(Control::LinkClose(pb::LinkClose {
            reason: value,
            message: String::new(),
        }));
        assert_valid(Control::Disconnect(pb::Disconnect {
            reason: value,
            error: value,
            detail: String::new(),
        }));
        assert_valid(Control::CollaborateEvent(pb::CollaborateEvent {
            event_type: value,
            message: String::new(),
        }));
        assert_valid(Control::ConnectResponse(rejected(value, "")));
        assert_valid(with_request(|m| {
            m.options.as_mut().expect("options").start_options = value;
        }));
    }
}

#[test]
fn ctrl_3_unknown_enum_values_are_read_leniently() {
    for unknown in [0, 99, -1, i32::MAX] {
        assert_eq!(
            read_link_close_reason(unknown),
            LinkCloseReason::ProtocolError
        );
        assert_eq!(
            read_disconnect_reason(unknown),
            DisconnectReason::NetworkDisconnected
        );
        assert_eq!(read_collaborate_event_type(unknown), None);
        assert_eq!(
            read_connect_error_code(unknown),
            ConnectErrorCode::SystemInternalError
        );
        assert_eq!(
            read_start_options(unknown),
            StartOptionParams::StartInForeground
        );
    }
    for unknown in [99, -1, i32::MAX] {
        assert_eq!(read_session_error(unknown), SessionError::InternalError);
    }
}

#[test]
fn ctrl_3_known_enum_values_are_read_as_they_are() {
    for wire in 1..=7 {
        let known = LinkCloseReason::try_from(wire).expect("known");
        assert_eq!(read_link_close_reason(wire), known);
    }
    for known in DisconnectReason::ALL {
        assert_eq!(read_disconnect_reason((*known).into()), *known);
    }
    for known in CollaborateEventType::ALL {
        assert_eq!(read_collaborate_event_type((*known).into()), Some(*known));
    }
    for known in ConnectErrorCode::ALL {
        assert_eq!(read_connect_error_code((*known).into()), *known);
    }
    assert_eq!(
        read_start_options(StartOptionParams::StartInForeground.into()),
        StartOptionParams::StartInForeground
    );
    for wire in 0..=3 {
        let known = SessionError::try_from(wire).expect("known");
        assert_eq!(read_session_error(wire), known);
    }
}
