//! Helpers shared by the integration tests: sample messages that pass validation, proptest
//! strategies for every control message and for frames, raw header bytes, and stream feeding.
//!
//! Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;

use acm_wire::pb::{self, FrameType, connect_response};
use acm_wire::{
    Control, DataFragment, FLAG_FIRST, FLAG_LAST, FLAG_MORE, Fragmenter, Frame, FrameDecoder,
    FrameError, FrameKind, HEADER_LEN, Reassembler,
};
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

/// The version the tests negotiate.
pub const VERSION: u8 = 1;

/// A frame size that fits every frame the tests build.
pub const BIG_FRAME: u32 = 65_535;

/// Every frame type this version defines, with its code.
pub const KNOWN_TYPES: [(FrameType, u8); 10] = [
    (FrameType::Hello, 1),
    (FrameType::LinkClose, 2),
    (FrameType::Ping, 3),
    (FrameType::Pong, 4),
    (FrameType::ConnectRequest, 5),
    (FrameType::ConnectResponse, 6),
    (FrameType::Message, 7),
    (FrameType::Data, 8),
    (FrameType::Disconnect, 9),
    (FrameType::CollaborateEvent, 10),
];

/// The flag bits a frame type defines, as SPEC section 3.3 lists them: FIRST and LAST for DATA,
/// MORE for session control frames, none for link frames.
pub fn defined_flags(frame_type: FrameType) -> u8 {
    match frame_type {
        FrameType::Data => FLAG_FIRST | FLAG_LAST,
        t if is_link_type(t) => 0,
        _ => FLAG_MORE,
    }
}

/// Whether a frame type belongs on channel 0.
pub fn is_link_type(frame_type: FrameType) -> bool {
    matches!(
        frame_type,
        FrameType::Hello | FrameType::LinkClose | FrameType::Ping | FrameType::Pong
    )
}

/// The 12 header bytes, written field by field as SPEC section 3 draws them, independently of
/// the crate's encoder.
pub fn header(version: u8, frame_type: u8, flags: u8, length: u32, channel: u32) -> Vec<u8> {
    let len = length.to_be_bytes();
    let mut bytes = vec![
        0xAC, 0x4D, version, frame_type, flags, len[1], len[2], len[3],
    ];
    bytes.extend_from_slice(&channel.to_be_bytes());
    bytes
}

/// A whole frame: header and payload, with the header's length taken from the payload.
pub fn raw_frame(version: u8, frame_type: u8, flags: u8, channel: u32, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("test payloads are small");
    let mut bytes = header(version, frame_type, flags, length, channel);
    bytes.extend_from_slice(payload);
    bytes
}

/// Feeds `wire` to a fresh decoder in chunks of the given sizes (cycling through them, 1 byte
/// for a size of 0), draining every whole frame after each chunk, then ends the stream.
pub fn decode_in_chunks(
    wire: &[u8],
    sizes: &[usize],
    max_frame_size: u32,
    negotiated: Option<u8>,
) -> Result<Vec<Frame>, FrameError> {
    let mut decoder = FrameDecoder::new(max_frame_size);
    if let Some(version) = negotiated {
        decoder.set_negotiated_version(version);
    }
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut rest = wire;
    let mut size = sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let take = size.next().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(take);
        buf.extend_from_slice(chunk);
        rest = tail;
        while let Some(frame) = decoder.decode(&mut buf)? {
            frames.push(frame);
        }
    }
    while let Some(frame) = decoder.decode_eof(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

/// Decodes a whole stream given at once.
pub fn decode_all(
    wire: &[u8],
    max_frame_size: u32,
    negotiated: Option<u8>,
) -> Result<Vec<Frame>, FrameError> {
    decode_in_chunks(wire, &[wire.len().max(1)], max_frame_size, negotiated)
}

/// Encodes frames one after the other, as a byte stream carries them.
pub fn encode_stream(frames: &[Frame]) -> Vec<u8> {
    let mut wire = BytesMut::new();
    for frame in frames {
        frame.encode(&mut wire).expect("test frames fit");
    }
    wire.to_vec()
}

/// Whether the memory `inner` lies within the memory `outer` (a payload within the buffer it
/// was received in, when it was not copied).
pub fn within(inner: Range<*const u8>, outer: &Range<*const u8>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// A DATA fragment value.
pub fn fragment(
    channel: u32,
    transfer_id: u32,
    index: u32,
    total_length: Option<u64>,
    last: bool,
    chunk: &[u8],
) -> DataFragment {
    DataFragment {
        channel,
        transfer_id,
        index,
        total_length,
        last,
        chunk: Bytes::copy_from_slice(chunk),
    }
}

/// The frame carrying a fragment, read back from the wire as a receiver reads it.
pub fn fragment_frame(fragment: &DataFragment) -> Frame {
    let mut wire = BytesMut::new();
    fragment
        .encode(VERSION, &mut wire)
        .expect("test fragments fit");
    Frame::decode_exact(wire.freeze(), acm_wire::MAX_FRAME_SIZE, Some(VERSION))
        .expect("test fragments are valid frames")
}

// ---------------------------------------------------------------------------------------------
// Sample messages that pass validation.

/// 16 bytes, as a token or nonce.
pub fn sixteen(byte: u8) -> Bytes {
    Bytes::from(vec![byte; 16])
}

/// A valid Hello.
pub fn hello() -> pb::Hello {
    pb::Hello {
        min_version: 1,
        max_version: 1,
        device_id: "phone-1".into(),
        max_frame_size: 65_535,
        keepalive_interval_ms: 15_000,
        features: 0,
        nonce: sixteen(7),
        max_data_size: 100 << 20,
    }
}

/// A valid PeerInfo with a service name.
pub fn peer(device: &str) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: device.into(),
        bundle_name: "com.example.notes".into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: "notes-sync".into(),
    }
}

/// A valid ConnectRequest.
pub fn connect_request() -> pb::ConnectRequest {
    pb::ConnectRequest {
        token: sixteen(1),
        source: Some(peer("phone-1")),
        target: Some(peer("tablet-2")),
        options: Some(pb::ConnectOptions {
            need_send_data: Some(true),
            start_options: pb::StartOptionParams::StartInForeground.into(),
            parameters: BTreeMap::from([("mode".into(), "edit".into())]),
        }),
    }
}

/// A valid rejecting ConnectResponse.
pub fn rejected(code: i32, reason: &str) -> pb::ConnectResponse {
    pb::ConnectResponse {
        token: sixteen(1),
        result: Some(connect_response::Result::Rejected(pb::Rejected {
            code,
            reason: reason.into(),
        })),
    }
}

/// One valid body of every control frame type.
pub fn sample_controls() -> Vec<Control> {
    vec![
        Control::Hello(hello()),
        Control::LinkClose(pb::LinkClose {
            reason: pb::LinkCloseReason::Normal.into(),
            message: "bye".into(),
        }),
        Control::Ping(pb::Ping { value: 42 }),
        Control::Pong(pb::Pong { value: 42 }),
        Control::ConnectRequest(connect_request()),
        Control::ConnectResponse(pb::ConnectResponse {
            token: sixteen(1),
            result: Some(connect_response::Result::Accepted(pb::Accepted {})),
        }),
        Control::Message(pb::Message {
            text: "hello there".into(),
        }),
        Control::Disconnect(pb::Disconnect {
            reason: pb::DisconnectReason::PeerAppExit.into(),
            error: pb::SessionError::None.into(),
            detail: String::new(),
        }),
        Control::CollaborateEvent(pb::CollaborateEvent {
            event_type: pb::CollaborateEventType::SendFailure.into(),
            message: "send failed".into(),
        }),
    ]
}

/// The channel a control body travels on in the tests: 0 for link bodies, 7 otherwise.
pub fn channel_of(control: &Control) -> u32 {
    if is_link_type(control.frame_type()) {
        0
    } else {
        7
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies for values that pass validation.

/// 16 arbitrary bytes.
pub fn token() -> impl Strategy<Value = Bytes> {
    proptest::array::uniform16(any::<u8>()).prop_map(|bytes| Bytes::copy_from_slice(&bytes))
}

/// A device id: 1 to 16 characters without control characters (at most 64 bytes).
pub fn device_id() -> impl Strategy<Value = String> {
    "\\PC{1,16}"
}

/// A bundle, module, ability or service name, or a parameter key: 1 to 64 characters without
/// control characters (at most 256 bytes).
pub fn name() -> impl Strategy<Value = String> {
    "\\PC{1,64}"
}

/// A free text of at most 256 characters of any kind (at most 1024 bytes).
pub fn text() -> impl Strategy<Value = String> {
    "(?s).{0,256}"
}

/// A required enum value: anything but the UNSPECIFIED zero, known values more often.
pub fn required_enum(known: i32) -> impl Strategy<Value = i32> {
    prop_oneof![
        3 => 1..=known,
        1 => any::<i32>().prop_filter("UNSPECIFIED is refused", |v| *v != 0),
    ]
}

/// An optional enum value: anything, known values more often.
pub fn any_enum(known: i32) -> impl Strategy<Value = i32> {
    prop_oneof![3 => 0..=known, 1 => any::<i32>()]
}

prop_compose! {
    pub fn hello_strategy()(
        (min_version, max_version) in (1u32..=255).prop_flat_map(|min| (Just(min), min..=255)),
        device_id in device_id(),
        max_frame_size in 128u32..=16_777_227,
        keepalive_interval_ms in 1_000u32..=600_000,
        features in any::<u64>(),
        nonce in token(),
        max_data_size in 1u64..,
    ) -> pb::Hello {
        pb::Hello {
            min_version, max_version, device_id, max_frame_size, keepalive_interval_ms, features,
            nonce, max_data_size,
        }
    }
}

pub fn link_close_strategy() -> impl Strategy<Value = pb::LinkClose> {
    (required_enum(7), text()).prop_map(|(reason, message)| pb::LinkClose { reason, message })
}

/// A PeerInfo; the service name may be empty unless `service_required`.
pub fn peer_strategy(service_required: bool) -> impl Strategy<Value = pb::PeerInfo> {
    let service = if service_required {
        name().boxed()
    } else {
        prop_oneof![Just(String::new()), name()].boxed()
    };
    (device_id(), name(), name(), name(), service).prop_map(
        |(device_id, bundle_name, module_name, ability_name, service_name)| pb::PeerInfo {
            device_id,
            bundle_name,
            module_name,
            ability_name,
            service_name,
        },
    )
}

pub fn connect_options_strategy() -> impl Strategy<Value = pb::ConnectOptions> {
    (
        proptest::option::of(any::<bool>()),
        any_enum(1),
        proptest::collection::btree_map(name(), "(?s).{0,64}", 0..8),
    )
        .prop_map(
            |(need_send_data, start_options, parameters)| pb::ConnectOptions {
                need_send_data,
                start_options,
                parameters,
            },
        )
}

pub fn connect_request_strategy() -> impl Strategy<Value = pb::ConnectRequest> {
    (
        token(),
        peer_strategy(false),
        peer_strategy(true),
        proptest::option::of(connect_options_strategy()),
    )
        .prop_map(|(token, source, target, options)| pb::ConnectRequest {
            token,
            source: Some(source),
            target: Some(target),
            options,
        })
}

pub fn accepted_strategy() -> impl Strategy<Value = pb::ConnectResponse> {
    token().prop_map(|token| pb::ConnectResponse {
        token,
        result: Some(connect_response::Result::Accepted(pb::Accepted {})),
    })
}

pub fn rejected_strategy() -> impl Strategy<Value = pb::ConnectResponse> {
    (token(), required_enum(6), text()).prop_map(|(token, code, reason)| pb::ConnectResponse {
        token,
        result: Some(connect_response::Result::Rejected(pb::Rejected {
            code,
            reason,
        })),
    })
}

pub fn message_strategy() -> impl Strategy<Value = pb::Message> {
    text().prop_map(|text| pb::Message { text })
}

pub fn disconnect_strategy() -> impl Strategy<Value = pb::Disconnect> {
    (required_enum(3), any_enum(3), text()).prop_map(|(reason, error, detail)| pb::Disconnect {
        reason,
        error,
        detail,
    })
}

pub fn collaborate_event_strategy() -> impl Strategy<Value = pb::CollaborateEvent> {
    (required_enum(2), text()).prop_map(|(event_type, message)| pb::CollaborateEvent {
        event_type,
        message,
    })
}

// ---------------------------------------------------------------------------------------------
// Strategies for frames.

/// A frame that passes every header rule on a link that negotiated [`VERSION`], with an
/// arbitrary payload of up to `max_payload` bytes: a known type on a channel that suits it
/// (with any of its defined flags), or an extension type with any flags and channel.
pub fn valid_frame(max_payload: usize) -> impl Strategy<Value = Frame> {
    let payload = proptest::collection::vec(any::<u8>(), 0..=max_payload).prop_map(Bytes::from);
    let known = (0..KNOWN_TYPES.len(), any::<u32>(), 0u8..=3).prop_map(|(i, channel, flags)| {
        let (frame_type, _) = KNOWN_TYPES[i];
        let channel = if is_link_type(frame_type) {
            0
        } else {
            channel.max(1)
        };
        let flags = flags & defined_flags(frame_type);
        (FrameKind::Known(frame_type), flags, channel)
    });
    let extension = (0x80u8..=0xFF, any::<u8>(), any::<u32>())
        .prop_map(|(code, flags, channel)| (FrameKind::Extension(code), flags, channel));
    (prop_oneof![3 => known, 1 => extension], payload).prop_map(
        |((kind, flags, channel), payload)| Frame {
            version: VERSION,
            kind,
            flags,
            channel,
            payload,
        },
    )
}

/// The number of bytes a frame takes on the wire.
pub fn wire_len(frames: &[Frame]) -> usize {
    frames.iter().map(|f| HEADER_LEN + f.payload.len()).sum()
}

/// The fragments of transfer `transfer_id` of `data` in 20 000-byte frames that all share one
/// buffer, as a byte stream's receive buffer would: the reassembler copies them.
pub fn shared_fragments(transfer_id: u32, data: &Bytes) -> Vec<DataFragment> {
    let mut stream = BytesMut::new();
    for frame in Fragmenter::new(VERSION, 3, transfer_id, data.clone(), 20_000).expect("fits") {
        stream.put_slice(&frame);
    }
    let mut rest = stream.freeze();
    let mut fragments = Vec::new();
    while !rest.is_empty() {
        let len = 12 + u32::from_be_bytes([0, rest[5], rest[6], rest[7]]) as usize;
        let frame = Frame::decode_exact(rest.split_to(len), 20_000, Some(VERSION)).expect("ok");
        fragments.push(DataFragment::from_frame(frame).expect("valid"));
    }
    fragments
}

/// Pushes `fragments` in order and gives the transfer they complete.
pub fn reassemble(reassembler: &mut Reassembler, fragments: Vec<DataFragment>) -> Bytes {
    let mut delivered = None;
    for fragment in fragments {
        delivered = reassembler.push(fragment).expect("in order");
    }
    delivered.expect("whole")
}
