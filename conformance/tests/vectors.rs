//! SPEC.md's Appendix A, the frame test vectors, made by the reference implementation: every
//! frame type for given field values, a handshake and a fragmented transfer between two link
//! engines, the TCP binding's messages and a segmented frame. The test fails when the appendix
//! and what the code makes differ; `ACM_WRITE_VECTORS=1 cargo test -p acm-conformance --test
//! vectors` writes the appendix anew.

use std::fmt::Write as _;
use std::time::Instant;

use acm::engine::{EngineConfig, EngineEvent, LinkEngine, OutgoingRequest};
use acm::transport::{CloseReason, DeviceId, Role};
use acm::wire::pb::{self, CollaborateEventType, ConnectErrorCode, DisconnectReason};
use acm::wire::segment::segments;
use acm::wire::{Control, DataFragment, Frame, FrameKind, Limits, encode_control};
use acm_transport_tcp::binding;
use bytes::{Bytes, BytesMut};

const HEADING: &str = "## Appendix A. Frame test vectors";

/// `bytes` in hexadecimal: the first line the 12-byte header (when `header`), then 16 bytes a
/// line.
fn hex(bytes: &[u8], header: bool) -> String {
    let (head, rest) = if header && bytes.len() >= 12 {
        bytes.split_at(12)
    } else {
        (&bytes[..0], bytes)
    };
    let line = |chunk: &[u8]| {
        chunk
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines = Vec::new();
    if !head.is_empty() {
        lines.push(line(head));
    }
    lines.extend(rest.chunks(16).map(line));
    lines.join("\n")
}

/// `text` cut into lines of at most 100 characters, at spaces.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in text.split(' ') {
        let len = word.chars().count();
        if line > 0 && line + 1 + len > 100 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += len;
    }
    out
}

struct Appendix(String);

impl Appendix {
    fn heading(&mut self, text: &str) {
        let _ = write!(self.0, "\n### {text}\n");
    }

    fn text(&mut self, text: &str) {
        let _ = write!(self.0, "\n{}\n", wrap(text));
    }

    /// A vector: what it is, its field values, and its bytes.
    fn vector(&mut self, title: &str, fields: &[&str], bytes: &[u8], header: bool) {
        let mut line = format!("**{title}** ({} bytes)", bytes.len());
        if !fields.is_empty() {
            let _ = write!(line, ": {}", fields.join("; "));
        }
        let _ = write!(
            self.0,
            "\n{}\n\n```text\n{}\n```\n",
            wrap(&line),
            hex(bytes, header)
        );
    }

    fn frame(&mut self, title: &str, fields: &[&str], bytes: &[u8]) {
        self.vector(title, fields, bytes, true);
    }
}

fn encode(control: &Control, channel: u32) -> Bytes {
    control
        .encode_frame(1, channel)
        .expect("the vector encodes")
}

fn nonce() -> Bytes {
    Bytes::from((0u8..16).collect::<Vec<_>>())
}

fn app(device: &str, service: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device.into(),
        bundle_name: "com.example.notes".into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: service.into(),
    }
}

fn token() -> [u8; 16] {
    let mut token = [0u8; 16];
    for (i, b) in token.iter_mut().enumerate() {
        *b = 0xA0 + i as u8;
    }
    token
}

fn fragment(id: u32, index: u32, total: Option<u64>, last: bool, chunk: &'static [u8]) -> Bytes {
    let mut out = BytesMut::new();
    DataFragment {
        channel: 1,
        transfer_id: id,
        index,
        total_length: total,
        last,
        chunk: Bytes::from_static(chunk),
    }
    .encode(1, &mut out)
    .expect("the fragment encodes");
    out.freeze()
}

fn frames(a: &mut Appendix) {
    a.heading("A.1 One frame of each type");
    a.text(
        "Every frame below is in version 1. Field values not listed are the protobuf defaults \
         (absent on the wire).",
    );
    let hello = pb::Hello {
        min_version: 1,
        max_version: 1,
        device_id: "phone".into(),
        max_frame_size: 65_535,
        keepalive_interval_ms: 15_000,
        features: 0,
        nonce: nonce(),
        max_data_size: 100 << 20,
    };
    a.frame(
        "HELLO",
        &[
            "channel 0",
            "min_version 1, max_version 1",
            "device_id \"phone\"",
            "max_frame_size 65535",
            "keepalive_interval_ms 15000",
            "features 0",
            "nonce 00 01 .. 0f",
            "max_data_size 104857600",
        ],
        &encode(&Control::Hello(hello), 0),
    );
    let close = pb::LinkClose {
        reason: pb::LinkCloseReason::ProtocolError.into(),
        message: "FRAME-2".into(),
    };
    a.frame(
        "LINK_CLOSE",
        &[
            "channel 0",
            "reason PROTOCOL_ERROR (2)",
            "message \"FRAME-2\"",
        ],
        &encode(&Control::LinkClose(close), 0),
    );
    a.frame(
        "PING",
        &["channel 0", "value 1"],
        &encode(&Control::Ping(pb::Ping { value: 1 }), 0),
    );
    a.frame(
        "PONG",
        &["channel 0", "value 1"],
        &encode(&Control::Pong(pb::Pong { value: 1 }), 0),
    );
    let request = pb::ConnectRequest {
        token: Bytes::copy_from_slice(&token()),
        source: Some(app("phone", "")),
        target: Some(app("tablet", "notes")),
        options: Some(pb::ConnectOptions {
            need_send_data: Some(true),
            start_options: pb::StartOptionParams::StartInForeground.into(),
            parameters: [("mode".to_string(), "edit".to_string())].into(),
        }),
    };
    a.frame(
        "CONNECT_REQUEST",
        &[
            "channel 1",
            "token a0 a1 .. af",
            "source {device_id \"phone\", bundle_name \"com.example.notes\", module_name \"entry\", ability_name \"EntryAbility\"}",
            "target {device_id \"tablet\", the same app, service_name \"notes\"}",
            "options {need_send_data true, start_options START_IN_FOREGROUND (1), parameters {\"mode\": \"edit\"}}",
        ],
        &encode(&Control::ConnectRequest(request), 1),
    );
    let accepted = pb::ConnectResponse {
        token: Bytes::copy_from_slice(&token()),
        result: Some(pb::connect_response::Result::Accepted(pb::Accepted {})),
    };
    a.frame(
        "CONNECT_RESPONSE, accepted",
        &["channel 1", "token a0 a1 .. af", "accepted {}"],
        &encode(&Control::ConnectResponse(accepted), 1),
    );
    let rejected = pb::ConnectResponse {
        token: Bytes::copy_from_slice(&token()),
        result: Some(pb::connect_response::Result::Rejected(pb::Rejected {
            code: ConnectErrorCode::PeerAppRejected.into(),
            reason: "busy".into(),
        })),
    };
    a.frame(
        "CONNECT_RESPONSE, rejected",
        &[
            "channel 1",
            "token a0 a1 .. af",
            "rejected {code PEER_APP_REJECTED (2), reason \"busy\"}",
        ],
        &encode(&Control::ConnectResponse(rejected), 1),
    );
    let refused = pb::ConnectResponse {
        token: Bytes::from_static(&[0; 16]),
        result: Some(pb::connect_response::Result::Rejected(pb::Rejected {
            code: ConnectErrorCode::SystemInternalError.into(),
            reason: "SESS-2: ConnectRequest.token is 8 bytes long; it must be 16".into(),
        })),
    };
    a.frame(
        "CONNECT_RESPONSE refusing a request whose token is 8 bytes (SESS-4: 16 zero bytes)",
        &[
            "channel 1",
            "token 00 .. 00",
            "rejected {code SYSTEM_INTERNAL_ERROR (6), reason \"SESS-2: ConnectRequest.token is 8 bytes long; it must be 16\"}",
        ],
        &encode(&Control::ConnectResponse(refused), 1),
    );
    a.frame(
        "MESSAGE",
        &["channel 1", "text \"hello\""],
        &encode(
            &Control::Message(pb::Message {
                text: "hello".into(),
            }),
            1,
        ),
    );
    a.frame(
        "DATA, a transfer in one fragment",
        &[
            "channel 1",
            "flags FIRST | LAST (0x03)",
            "transfer id 1, index 0, total length 5",
            "bytes \"hello\"",
        ],
        &fragment(1, 0, Some(5), true, b"hello"),
    );
    a.frame(
        "DATA, FIRST fragment",
        &[
            "channel 1",
            "flags FIRST (0x01)",
            "transfer id 2, index 0, total length 10",
            "bytes \"012\"",
        ],
        &fragment(2, 0, Some(10), false, b"012"),
    );
    a.frame(
        "DATA, a middle fragment",
        &[
            "channel 1",
            "flags 0",
            "transfer id 2, index 1",
            "bytes \"345\"",
        ],
        &fragment(2, 1, None, false, b"345"),
    );
    a.frame(
        "DATA, LAST fragment",
        &[
            "channel 1",
            "flags LAST (0x02)",
            "transfer id 2, index 2",
            "bytes \"6789\"",
        ],
        &fragment(2, 2, None, true, b"6789"),
    );
    let bye = pb::Disconnect {
        reason: DisconnectReason::PeerAppCloseCollaboration.into(),
        error: pb::SessionError::None.into(),
        detail: String::new(),
    };
    a.frame(
        "DISCONNECT",
        &[
            "channel 1",
            "reason PEER_APP_CLOSE_COLLABORATION (1)",
            "error NONE (0)",
            "detail \"\"",
        ],
        &encode(&Control::Disconnect(bye), 1),
    );
    let event = pb::CollaborateEvent {
        event_type: CollaborateEventType::SendFailure.into(),
        message: "send failed".into(),
    };
    a.frame(
        "COLLABORATE_EVENT",
        &[
            "channel 1",
            "event_type SEND_FAILURE (1)",
            "message \"send failed\"",
        ],
        &encode(&Control::CollaborateEvent(event), 1),
    );
    let message = Control::Message(pb::Message {
        text: "x".repeat(150),
    });
    let pieces = encode_control(&message, 1, 1, 128).expect("the body splits");
    for (i, piece) in pieces.iter().enumerate() {
        let more = if i + 1 < pieces.len() {
            "flags MORE (0x01)"
        } else {
            "flags 0: the last piece"
        };
        a.frame(
            &format!(
                "MESSAGE of 150 bytes of \"x\" split for a peer whose max_frame_size is 128, piece {} of {}",
                i + 1,
                pieces.len()
            ),
            &["channel 1", more],
            piece,
        );
    }
    let largest = pb::Hello {
        min_version: 255,
        max_version: 255,
        device_id: "d".repeat(64),
        max_frame_size: 16_777_227,
        keepalive_interval_ms: 600_000,
        features: 0,
        nonce: nonce(),
        max_data_size: u64::MAX,
    };
    let largest = encode(&Control::Hello(largest), 0);
    assert_eq!(largest.len(), 122, "the size LINK-1 gives");
    a.frame(
        "The largest valid HELLO of version 1 (LINK-1: it fits in 128 bytes)",
        &[
            "min_version 255, max_version 255",
            "device_id 64 bytes of \"d\"",
            "max_frame_size 16777227",
            "keepalive_interval_ms 600000",
            "features 0",
            "nonce 00 01 .. 0f",
            "max_data_size 18446744073709551615",
        ],
        &largest,
    );
}

fn bindings(a: &mut Appendix) {
    a.heading("A.2 The TCP binding's messages and a segmented frame");
    let phone = DeviceId::new("phone").expect("a device id");
    a.frame(
        "TCP OPEN (TCP-4)",
        &["kind 0x01", "device id \"phone\""],
        &binding::open(&phone),
    );
    a.frame(
        "TCP CLOSE after a LINK_CLOSE with reason PROTOCOL_ERROR (TCP-4, LINK-12)",
        &["kind 0x02", "code 2", "text \"FRAME-2\""],
        &binding::close(&CloseReason::new(2, "FRAME-2")),
    );
    a.frame(
        "TCP CLOSE after the peer's LINK_CLOSE (LINK-12)",
        &["kind 0x02", "code 0", "no text"],
        &binding::close(&CloseReason::normal()),
    );
    let ping = encode(&Control::Ping(pb::Ping { value: 1 }), 0);
    for (i, segment) in segments(&ping, 8).enumerate() {
        a.vector(
            &format!(
                "The PING of A.1 in segments of link messages of 8 bytes (SEG-2), segment {}",
                i + 1
            ),
            &[],
            &segment,
            false,
        );
    }
}

/// Two engines, A the phone (dialer) and B the tablet (acceptor), joined by a wire that hands
/// every frame across and writes it into the appendix.
struct Pair {
    now: Instant,
    a: LinkEngine,
    b: LinkEngine,
}

impl Pair {
    fn new(b_limits: Limits) -> Self {
        let now = Instant::now();
        let a = LinkEngine::new(
            now,
            Role::Dialer,
            "phone",
            Some("tablet".into()),
            65_535,
            [0x11; 16],
            EngineConfig::default(),
        );
        let b = LinkEngine::new(
            now,
            Role::Acceptor,
            "tablet",
            Some("phone".into()),
            65_535,
            [0x22; 16],
            EngineConfig::default().with_limits(b_limits),
        );
        Self { now, a, b }
    }

    /// Moves every frame both ways, writing each down.
    fn pump(&mut self, out: &mut Appendix) {
        loop {
            let mut moved = false;
            while let Some(frame) = self.a.poll_transmit(self.now) {
                out.frame(&title("phone → tablet", &frame), &[], &frame);
                self.b.handle_message(self.now, frame);
                moved = true;
            }
            while let Some(frame) = self.b.poll_transmit(self.now) {
                out.frame(&title("tablet → phone", &frame), &[], &frame);
                self.a.handle_message(self.now, frame);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }
}

fn title(direction: &str, frame: &Bytes) -> String {
    let decoded = Frame::decode_exact(frame.clone(), u32::MAX, None).expect("a valid frame");
    let name = match decoded.kind {
        FrameKind::Known(t) => t
            .as_str_name()
            .trim_start_matches("FRAME_TYPE_")
            .to_string(),
        FrameKind::Extension(code) => format!("extension {code:#04x}"),
    };
    format!("{direction}: {name}, channel {}", decoded.channel)
}

fn handshake(a: &mut Appendix) {
    a.heading("A.3 A handshake, a message and a disconnect");
    a.text(
        "Two reference engines with the default settings: the phone dials, the tablet accepts. \
         Each HELLO's nonce is 16 bytes of 0x11 (phone) and 0x22 (tablet). The phone's app \
         connects with the request of A.1 without options, the tablet's app accepts, the phone \
         sends \"hi\", the tablet disconnects. The frames in the order they cross:",
    );
    let mut pair = Pair::new(Limits::default());
    pair.pump(a);
    let request = OutgoingRequest {
        token: token(),
        source: app("phone", ""),
        target: app("tablet", "notes"),
        options: pb::ConnectOptions::default(),
    };
    let channel = pair.a.connect(pair.now, request).expect("connect");
    pair.pump(a);
    let incoming = std::iter::from_fn(|| pair.b.poll_event())
        .find_map(|e| match e {
            EngineEvent::IncomingRequest(request) => Some(request.channel),
            _ => None,
        })
        .expect("the request arrives");
    pair.b.accept(incoming).expect("accept");
    pair.pump(a);
    pair.a.send_message(channel, "hi").expect("message");
    pair.pump(a);
    pair.b
        .disconnect(incoming, DisconnectReason::PeerAppCloseCollaboration)
        .expect("disconnect");
    pair.pump(a);
}

fn transfer(a: &mut Appendix) {
    a.heading("A.4 A fragmented transfer");
    a.text(
        "The tablet announces max_frame_size 128; once the link is up and a session connected as \
         in A.3, the phone's app sends 200 bytes, 00 01 02 .. c7. The DATA frames it sends:",
    );
    let mut pair = Pair::new(Limits::default().with_max_frame_size(128));
    let mut quiet = Appendix(String::new());
    pair.pump(&mut quiet);
    let request = OutgoingRequest {
        token: token(),
        source: app("phone", ""),
        target: app("tablet", "notes"),
        options: pb::ConnectOptions::default(),
    };
    let channel = pair.a.connect(pair.now, request).expect("connect");
    pair.pump(&mut quiet);
    let incoming = std::iter::from_fn(|| pair.b.poll_event())
        .find_map(|e| match e {
            EngineEvent::IncomingRequest(request) => Some(request.channel),
            _ => None,
        })
        .expect("the request arrives");
    pair.b.accept(incoming).expect("accept");
    pair.pump(&mut quiet);
    let data: Vec<u8> = (0..200u8).collect();
    pair.a
        .send_data(channel, Bytes::from(data.clone()))
        .expect("send_data");
    pair.pump(a);
    let received = std::iter::from_fn(|| pair.b.poll_event()).find_map(|e| match e {
        EngineEvent::Data { data, .. } => Some(data),
        _ => None,
    });
    assert_eq!(
        received.as_deref(),
        Some(&data[..]),
        "the transfer arrives whole"
    );
}

fn appendix() -> String {
    let mut a = Appendix(String::new());
    a.0.push_str(HEADING);
    a.0.push('\n');
    a.text(
        "Made by the reference implementation (`conformance/tests/vectors.rs`), whose test fails \
         when this appendix and the code disagree. Bytes are hexadecimal; a frame's first line \
         is its 12-byte header, then its payload follows, 16 bytes a line.",
    );
    frames(&mut a);
    bindings(&mut a);
    handshake(&mut a);
    transfer(&mut a);
    a.0
}

#[test]
fn appendix_a_is_what_the_reference_implementation_makes() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../SPEC.md");
    let spec = std::fs::read_to_string(&path).expect("SPEC.md is readable");
    let start = spec.find(HEADING).expect("SPEC.md has Appendix A");
    let end = spec[start + HEADING.len()..]
        .find("\n## ")
        .map_or(spec.len(), |i| start + HEADING.len() + i + 1);
    let written = spec[start..end].trim_end();
    let made = appendix();
    if written == made.trim_end() {
        return;
    }
    if std::env::var_os("ACM_WRITE_VECTORS").is_some() {
        let updated = format!("{}{}\n\n{}", &spec[..start], made.trim_end(), &spec[end..]);
        std::fs::write(&path, updated).expect("SPEC.md is writable");
        return;
    }
    let first = written
        .lines()
        .zip(made.lines())
        .position(|(w, m)| w != m)
        .unwrap_or(written.lines().count().min(made.lines().count()));
    panic!(
        "SPEC.md's Appendix A differs from what the reference makes, first at its line {}:\n  SPEC: {:?}\n  code: {:?}\nRun ACM_WRITE_VECTORS=1 cargo test -p acm-conformance --test vectors to write it anew.",
        first + 1,
        written.lines().nth(first),
        made.lines().nth(first)
    );
}
