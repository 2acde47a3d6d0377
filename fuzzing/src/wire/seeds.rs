//! Seed inputs for the fuzz corpora, built from valid traffic: the frames two devices exchange
//! to open a link and a session, talk and part.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::control::CONTROL_TYPES;
use super::reassembly::{
    FRAGMENTER_FRAME_SIZES, OP_ABORT, OP_FIRST, OP_FRAGMENT, OP_FRAGMENTER, OP_LAST, OP_RAW,
};
use super::segments::{MAX_FRAMES, MAX_MESSAGES, OP_FRAME, OP_PARSE, OP_RAW as OP_SEGMENT};
use crate::put_varint;
use acm_wire::continuation::encode_control;
use acm_wire::control::Control;
use acm_wire::data::{DataFragment, Fragmenter};
use acm_wire::frame::{Frame, FrameKind};
use acm_wire::pb;
use acm_wire::segment::segments as cut;

use crate::Seed;

const NONCE: [u8; 16] = *b"\x5a\x11\x93\x0e\xc4\x27\x8b\x36\xf0\x4d\x19\xa2\x7c\x65\xd8\x01";
const TOKEN: [u8; 16] = *b"\x9c\x03\x4e\x71\xb5\x2a\xe8\x16\x0d\x8f\x63\xc7\x3b\x50\xaa\x24";

fn hello(device_id: &str) -> Control {
    Control::Hello(pb::Hello {
        min_version: 1,
        max_version: 1,
        device_id: device_id.into(),
        max_frame_size: 65_535,
        keepalive_interval_ms: 15_000,
        features: 0,
        nonce: Bytes::from_static(&NONCE),
        max_data_size: 100 << 20,
    })
}

fn peer(device_id: &str, service_name: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device_id.into(),
        bundle_name: "com.example.notes".into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: service_name.into(),
    }
}

fn connect_request() -> Control {
    Control::ConnectRequest(pb::ConnectRequest {
        token: Bytes::from_static(&TOKEN),
        source: Some(peer("phone-1", "")),
        target: Some(peer("tablet-2", "notes-sync")),
        options: Some(pb::ConnectOptions {
            need_send_data: Some(true),
            start_options: pb::StartOptionParams::StartInForeground.into(),
            parameters: BTreeMap::from([("mode".into(), "edit".into())]),
        }),
    })
}

fn connect_response(result: pb::connect_response::Result) -> Control {
    Control::ConnectResponse(pb::ConnectResponse {
        token: Bytes::from_static(&TOKEN),
        result: Some(result),
    })
}

fn rejected(code: pb::ConnectErrorCode, reason: &str) -> Control {
    connect_response(pb::connect_response::Result::Rejected(pb::Rejected {
        code: code.into(),
        reason: reason.into(),
    }))
}

fn accepted() -> Control {
    connect_response(pb::connect_response::Result::Accepted(pb::Accepted {}))
}

fn message(text: &str) -> Control {
    Control::Message(pb::Message { text: text.into() })
}

fn disconnect(reason: pb::DisconnectReason, error: pb::SessionError, detail: &str) -> Control {
    Control::Disconnect(pb::Disconnect {
        reason: reason.into(),
        error: error.into(),
        detail: detail.into(),
    })
}

fn event(event_type: pb::CollaborateEventType, text: &str) -> Control {
    Control::CollaborateEvent(pb::CollaborateEvent {
        event_type: event_type.into(),
        message: text.into(),
    })
}

fn link_close(reason: pb::LinkCloseReason, text: &str) -> Control {
    Control::LinkClose(pb::LinkClose {
        reason: reason.into(),
        message: text.into(),
    })
}

/// Every control body of a session's life, with a name.
fn controls() -> Vec<(&'static str, Control)> {
    use pb::{CollaborateEventType as Event, ConnectErrorCode as Code};
    use pb::{DisconnectReason as Reason, LinkCloseReason as Close, SessionError as Error};
    vec![
        ("hello", hello("phone-1")),
        ("hello-peer", hello("tablet-2")),
        ("ping", Control::Ping(pb::Ping { value: 42 })),
        ("pong", Control::Pong(pb::Pong { value: 42 })),
        ("connect-request", connect_request()),
        ("accepted", accepted()),
        ("rejected-by-app", rejected(Code::PeerAppRejected, "busy")),
        (
            "rejected-exists",
            rejected(Code::ConnectedSessionExists, ""),
        ),
        (
            "rejected-no-data",
            rejected(Code::PeerWifiNotOpen, "SESS-3"),
        ),
        ("message", message("hello from the phone")),
        ("message-empty", message("")),
        ("event", event(Event::SendFailure, "transfer 3 failed")),
        (
            "disconnect-app",
            disconnect(Reason::PeerAppCloseCollaboration, Error::None, ""),
        ),
        (
            "disconnect-exit",
            disconnect(Reason::PeerAppExit, Error::None, ""),
        ),
        (
            "disconnect-error",
            disconnect(Reason::NetworkDisconnected, Error::LimitExceeded, "DATA-7"),
        ),
        ("link-close", link_close(Close::Normal, "")),
        (
            "link-close-error",
            link_close(Close::ProtocolError, "FRAME-4"),
        ),
        // Texts at their limits (SPEC section 10).
        ("message-longest", message(&"m".repeat(1024))),
        (
            "rejected-longest",
            rejected(Code::PeerAppRejected, &"r".repeat(1024)),
        ),
        (
            "disconnect-longest",
            disconnect(
                Reason::NetworkDisconnected,
                Error::ProtocolError,
                &"d".repeat(1024),
            ),
        ),
        (
            "event-longest",
            event(Event::ColorSpaceConversionFailure, &"e".repeat(1024)),
        ),
        (
            "link-close-longest",
            link_close(Close::Timeout, &"c".repeat(1024)),
        ),
        ("hello-longest-id", hello(&"h".repeat(64))),
    ]
}

/// The frame a control body travels in: link bodies on channel 0, session bodies on channel 1.
fn control_frame(control: &Control) -> Frame {
    let channel = if acm_wire::frame::is_link_frame(control.frame_type()) {
        0
    } else {
        1
    };
    control.to_frame(1, channel)
}

fn encoded(frame: &Frame) -> Vec<u8> {
    frame.to_bytes().expect("seed frames encode").to_vec()
}

fn data(len: usize) -> Bytes {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn fragments(channel: u32, transfer_id: u32, len: usize, frame_size: u32) -> Vec<DataFragment> {
    let mut fragmenter =
        Fragmenter::new(1, channel, transfer_id, data(len), frame_size).expect("room for data");
    std::iter::from_fn(|| fragmenter.next_fragment()).collect()
}

fn data_frames(channel: u32, transfer_id: u32, len: usize, frame_size: u32) -> Vec<Frame> {
    fragments(channel, transfer_id, len, frame_size)
        .iter()
        .map(|fragment| fragment.to_frame(1).expect("seed fragments encode"))
        .collect()
}

/// A whole conversation, as one side receives it.
fn conversation() -> Vec<Frame> {
    let mut frames = vec![
        control_frame(&hello("tablet-2")),
        control_frame(&connect_request()),
        control_frame(&message("first note")),
    ];
    frames.extend(data_frames(1, 1, 600, 244));
    frames.push(control_frame(&event(
        pb::CollaborateEventType::SendFailure,
        "",
    )));
    frames.push(control_frame(&Control::Ping(pb::Ping { value: 1 })));
    frames.push(control_frame(&disconnect(
        pb::DisconnectReason::PeerAppExit,
        pb::SessionError::None,
        "",
    )));
    frames.push(control_frame(&link_close(pb::LinkCloseReason::Normal, "")));
    frames
}

fn extension_frame() -> Frame {
    Frame {
        version: 1,
        kind: FrameKind::Extension(0x80),
        flags: 0x5A,
        channel: 9,
        payload: Bytes::from_static(b"extension"),
    }
}

fn frame_decoder_seeds(out: &mut Vec<Seed>) {
    let mut seed = |name: String, config: u8, chunking: u8, frames: &[Frame]| {
        let mut bytes = vec![config, chunking];
        for frame in frames {
            bytes.extend(encoded(frame));
        }
        out.push(Seed {
            target: "frame_decoder",
            name,
            bytes,
        });
    };
    // Configuration: bits 0-2 the max frame size (0: 65 535, 3: 1024), bits 3-4 the version.
    const DEFAULT: u8 = 0;
    const NEGOTIATED: u8 = 1 << 3;
    const SMALL: u8 = 3 | NEGOTIATED;
    let conversation = conversation();
    seed("conversation".into(), DEFAULT, 0x03, &conversation);
    seed(
        "conversation-negotiated".into(),
        NEGOTIATED,
        0x26,
        &conversation[1..],
    );
    seed(
        "conversation-small-frames".into(),
        SMALL,
        0x47,
        &conversation[1..],
    );
    for (name, control) in controls() {
        let chunking = name.len() as u8;
        seed(
            name.into(),
            NEGOTIATED,
            chunking,
            &[control_frame(&control)],
        );
    }
    seed(
        "data-transfer".into(),
        SMALL,
        0x15,
        &data_frames(3, 7, 3000, 1024),
    );
    seed(
        "data-empty".into(),
        NEGOTIATED,
        0x01,
        &data_frames(1, 1, 0, 244),
    );
    seed("extension".into(), NEGOTIATED, 0x02, &[extension_frame()]);
    // A message split across frames of 128 bytes with MORE, then a ping.
    let mut split: Vec<Frame> = encode_control(&message(&"long text ".repeat(40)), 1, 1, 128)
        .expect("a message splits")
        .into_iter()
        .map(|bytes| Frame::decode_exact(bytes, 128, Some(1)).expect("a piece decodes"))
        .collect();
    split.push(control_frame(&Control::Ping(pb::Ping { value: 2 })));
    seed("split-message".into(), 1 | NEGOTIATED, 0x0B, &split);
    // A stream that ends in the middle of a frame.
    let mut cut = vec![NEGOTIATED, 0x04];
    cut.extend(encoded(&control_frame(&message("cut short"))));
    cut.truncate(cut.len().saturating_sub(3));
    out.push(Seed {
        target: "frame_decoder",
        name: "ends-mid-frame".into(),
        bytes: cut,
    });
}

fn frame_roundtrip_seeds(out: &mut Vec<Seed>) {
    let mut seed = |name: &str, config: u8, frame: &Frame| {
        let mut bytes = vec![config];
        bytes.extend(encoded(frame));
        out.push(Seed {
            target: "frame_roundtrip",
            name: name.into(),
            bytes,
        });
    };
    const NEGOTIATED: u8 = 1 << 3;
    for (name, control) in controls() {
        seed(name, NEGOTIATED, &control_frame(&control));
    }
    seed(
        "hello-before-negotiation",
        0,
        &control_frame(&hello("phone-1")),
    );
    let transfer = data_frames(2, 5, 500, 200);
    seed("data-first", NEGOTIATED, &transfer[0]);
    seed("data-middle", NEGOTIATED, &transfer[1]);
    seed("data-last", NEGOTIATED, transfer.last().expect("fragments"));
    seed("data-whole", NEGOTIATED, &data_frames(2, 6, 40, 200)[0]);
    seed("data-empty", NEGOTIATED, &data_frames(2, 7, 0, 200)[0]);
    seed("extension", NEGOTIATED, &extension_frame());
    let pieces = encode_control(&message(&"piece ".repeat(30)), 1, 3, 128).expect("it splits");
    let first_piece = Frame::decode_exact(pieces[0].clone(), 128, Some(1)).expect("it decodes");
    seed("message-piece", NEGOTIATED, &first_piece);
}

fn fragment_op(fragment: &DataFragment) -> Vec<u8> {
    let mut op = OP_FRAGMENT | channel_bits(fragment.channel);
    if fragment.total_length.is_some() {
        op |= OP_FIRST;
    }
    if fragment.last {
        op |= OP_LAST;
    }
    let mut bytes = vec![op];
    put_varint(&mut bytes, fragment.transfer_id.into());
    put_varint(&mut bytes, fragment.index.into());
    if let Some(total) = fragment.total_length {
        put_varint(&mut bytes, total);
    }
    let len = u8::try_from(fragment.chunk.len()).expect("seed chunks fit an operation");
    bytes.push(len);
    bytes.extend_from_slice(&fragment.chunk);
    bytes
}

fn raw_op(fragment: &DataFragment) -> Vec<u8> {
    let frame = fragment.to_frame(1).expect("seed fragments encode");
    let mut op = OP_RAW | channel_bits(fragment.channel);
    if fragment.total_length.is_some() {
        op |= OP_FIRST;
    }
    if fragment.last {
        op |= OP_LAST;
    }
    let len = u8::try_from(frame.payload.len()).expect("seed payloads fit an operation");
    let mut bytes = vec![op, len];
    bytes.extend_from_slice(&frame.payload);
    bytes
}

fn channel_bits(channel: u32) -> u8 {
    u8::try_from(channel.saturating_sub(1) & 3).unwrap_or(0) << 2
}

fn reassembly_seeds(out: &mut Vec<Seed>) {
    let mut seed = |name: &str, config: u8, ops: Vec<Vec<u8>>| {
        let mut bytes = vec![config];
        bytes.extend(ops.concat());
        out.push(Seed {
            target: "reassembly",
            name: name.into(),
            bytes,
        });
    };
    // Configuration: bits 0-1 max_data_size (1: 1000, 2: 100 MiB), bits 2-3 the budget as a
    // multiple of it, bits 4-5 max_transfers (3: 32).
    const ROOMY: u8 = 2 | (3 << 4);
    const TIGHT: u8 = 1 | (1 << 2) | (1 << 4);
    let ops = |fragments: &[DataFragment]| fragments.iter().map(fragment_op).collect::<Vec<_>>();

    seed("one-fragment", ROOMY, ops(&fragments(1, 1, 50, 200)));
    seed("empty-transfer", ROOMY, ops(&fragments(1, 1, 0, 200)));
    seed("three-fragments", ROOMY, ops(&fragments(2, 4, 300, 120)));
    seed("tight-limits", TIGHT, ops(&fragments(1, 9, 1000, 200)));

    // Two transfers on two channels, and a second transfer on one, interleaved.
    let a = fragments(1, 1, 400, 150);
    let b = fragments(2, 1, 250, 100);
    let c = fragments(1, 2, 90, 100);
    let mut interleaved = Vec::new();
    for i in 0..a.len().max(b.len()) {
        interleaved.extend(a.get(i).map(fragment_op));
        interleaved.extend(b.get(i).map(fragment_op));
    }
    interleaved.extend(ops(&c));
    seed("interleaved", ROOMY, interleaved);

    seed(
        "raw-fragments",
        ROOMY,
        fragments(3, 2, 300, 150).iter().map(raw_op).collect(),
    );

    // A transfer dropped halfway, then the next one.
    let dropped = fragments(4, 1, 300, 120);
    let mut abort = vec![OP_ABORT | channel_bits(4)];
    put_varint(&mut abort, 1);
    let mut ops_aborted = vec![fragment_op(&dropped[0]), abort];
    ops_aborted.extend(ops(&fragments(4, 2, 100, 120)));
    ops_aborted.push(fragment_op(&fragments(4, 3, 200, 120)[0]));
    ops_aborted.push(vec![OP_ABORT | OP_FIRST | channel_bits(4)]);
    seed("aborted", ROOMY, ops_aborted);

    // Successive transfers on one channel, ids increasing with gaps.
    let mut successive = Vec::new();
    for (id, len) in [(1, 10), (2, 0), (5, 180), (6, 1)] {
        successive.extend(ops(&fragments(2, id, len, 100)));
    }
    seed("successive-transfers", ROOMY, successive);

    // One unfinished transfer on each of the four channels, then each completed.
    let four: Vec<Vec<DataFragment>> = (1..=4).map(|ch| fragments(ch, 1, 150, 120)).collect();
    let mut every_channel: Vec<Vec<u8>> = four.iter().map(|f| fragment_op(&f[0])).collect();
    every_channel.extend(four.iter().flat_map(|f| f[1..].iter().map(fragment_op)));
    seed("every-channel", ROOMY, every_channel.clone());
    // The same with a budget of 2000 bytes and at most three unfinished: the fourth is refused.
    seed(
        "every-channel-tight",
        1 | (1 << 2) | (2 << 4),
        every_channel,
    );

    seed(
        "largest-chunks",
        ROOMY,
        ops(&fragments(1, 1, 1000, 12 + 8 + 255)),
    );
    seed("data-size-16", 3 << 4, ops(&fragments(3, 8, 16, 40)));
    seed(
        "unbounded-limits",
        3 | (3 << 2) | (3 << 4),
        ops(&fragments(4, 1, 200, 64)),
    );
    seed(
        "raw-whole",
        ROOMY,
        vec![raw_op(&fragments(2, 3, 100, 200)[0])],
    );
    seed(
        "raw-empty",
        ROOMY,
        vec![raw_op(&fragments(2, 3, 0, 200)[0])],
    );

    for (i, &size) in FRAGMENTER_FRAME_SIZES.iter().enumerate().skip(1) {
        let mut op = vec![OP_FRAGMENTER | channel_bits(1) | ((i as u8) << 4)];
        put_varint(&mut op, 3);
        put_varint(&mut op, 120);
        op.push(0x41);
        seed(&format!("fragmenter-{size}"), ROOMY, vec![op]);
    }
}

fn control_seeds(out: &mut Vec<Seed>) {
    for (name, control) in controls() {
        let selector = CONTROL_TYPES
            .iter()
            .position(|&t| t == control.frame_type())
            .expect("every control type is selectable");
        let mut bytes = vec![u8::try_from(selector).expect("nine types")];
        bytes.extend_from_slice(&control.encode_body());
        out.push(Seed {
            target: "control_messages",
            name: name.into(),
            bytes,
        });
    }
}

/// The configuration byte picking the receiver's largest frame, and an operation byte's bits
/// picking a link's largest message.
fn max_frame_config(max_frame: usize) -> u8 {
    let index = MAX_FRAMES.iter().position(|&m| m == max_frame);
    u8::try_from(index.expect("a listed frame size")).expect("eight sizes")
}

fn max_message_bits(max_message: usize) -> u8 {
    let index = MAX_MESSAGES.iter().position(|&m| m == max_message);
    u8::try_from(index.expect("a listed message size")).expect("eight sizes") << 2
}

/// Segments of real frames as raw link messages, and the same frames cut by the target.
fn segments_seeds(out: &mut Vec<Seed>) {
    let mut seed = |name: String, max_frame: usize, ops: Vec<u8>| {
        let mut bytes = vec![max_frame_config(max_frame)];
        bytes.extend(ops);
        out.push(Seed {
            target: "segments",
            name,
            bytes,
        });
    };
    let frames: Vec<(&str, Bytes)> = vec![
        (
            "hello",
            Bytes::from(encoded(&control_frame(&hello("watch-01")))),
        ),
        (
            "request",
            Bytes::from(encoded(&control_frame(&connect_request()))),
        ),
        (
            "message",
            Bytes::from(encoded(&control_frame(&message("hi there")))),
        ),
        (
            "data",
            Bytes::from(encoded(&data_frames(1, 1, 900, 1024)[0])),
        ),
    ];
    for (name, frame) in &frames {
        for max_message in [29, 244] {
            let mut ops = Vec::new();
            for segment in cut(frame, max_message) {
                ops.push(OP_SEGMENT);
                ops.push(u8::try_from(segment.len()).expect("short segments"));
                ops.extend_from_slice(&segment);
            }
            seed(format!("raw-{name}-at-{max_message}"), 65_535, ops);
        }
        let mut ops = vec![OP_FRAME | max_message_bits(244)];
        put_varint(&mut ops, frame.len() as u64);
        ops.push(frame[0]);
        seed(format!("cut-{name}"), 1000, ops);
    }
    // A conversation cut at 29-byte messages, then a frame over a small receiver's limit.
    let mut ops = Vec::new();
    for frame in conversation() {
        let frame = Bytes::from(encoded(&frame));
        ops.push(OP_FRAME | max_message_bits(29));
        put_varint(&mut ops, frame.len() as u64);
        ops.push(frame[0]);
    }
    seed("conversation-cut".into(), 65_535, ops);
    let mut ops = vec![OP_FRAME | max_message_bits(3)];
    put_varint(&mut ops, 40);
    ops.push(0xAC);
    seed("over-the-limit".into(), 12, ops);
    seed(
        "parse-and-reserved-bits".into(),
        100,
        vec![
            OP_PARSE, 3, 1, 2, 3, OP_SEGMENT, 2, 0x81, 9, OP_SEGMENT, 1, 0,
        ],
    );
    seed(
        "whole-at-every-size".into(),
        244,
        (0..8u8)
            .flat_map(|size| [3 | size << 2, 20].into_iter().chain(0..20))
            .collect(),
    );
}

/// The seed inputs of every target, built from valid traffic.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    frame_decoder_seeds(&mut out);
    frame_roundtrip_seeds(&mut out);
    reassembly_seeds(&mut out);
    control_seeds(&mut out);
    segments_seeds(&mut out);
    out
}
