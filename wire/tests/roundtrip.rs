//! Round trips of every frame type: what is encoded is what is decoded, by both the one-frame
//! decoder and the stream decoder, for any field values the rules allow.

mod common;

use acm_wire::pb::{self, FrameType};
use acm_wire::{
    Control, ControlAssembler, DataFragment, FLAG_MORE, Frame, FrameDecoder, FrameHeader,
    FrameKind, HEADER_LEN, MAX_FRAME_SIZE, MAX_PAYLOAD_LEN, encode_control,
};
use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;

/// Encodes `control` in a frame of `version` on `channel`, decodes it with
/// [`Frame::decode_exact`] and with [`FrameDecoder`] on a link that negotiated `version`, and
/// checks that both give back the same frame and the same body.
fn assert_control_round_trip(control: &Control, version: u8, channel: u32) {
    let wire = control
        .encode_frame(version, channel)
        .expect("control bodies fit in a frame");
    let body = control.encode_body();
    assert_eq!(wire.len(), HEADER_LEN + body.len());

    let exact = Frame::decode_exact(wire.clone(), MAX_FRAME_SIZE, Some(version))
        .expect("decode_exact accepts the frame");
    let mut decoder = FrameDecoder::new(MAX_FRAME_SIZE);
    decoder.set_negotiated_version(version);
    let mut buf = BytesMut::from(&wire[..]);
    let streamed = decoder
        .decode(&mut buf)
        .expect("the stream decoder accepts the frame")
        .expect("the whole frame is there");
    assert!(
        buf.is_empty(),
        "the stream decoder consumed the whole frame"
    );
    assert_eq!(exact, streamed);

    assert_eq!(exact.version, version);
    assert_eq!(exact.kind, FrameKind::Known(control.frame_type()));
    assert_eq!(exact.flags, 0);
    assert_eq!(exact.channel, channel);
    assert_eq!(exact.payload, body);
    assert_eq!(
        Control::decode(control.frame_type(), &exact.payload),
        Some(Ok(control.clone()))
    );
}

/// A session channel: any but 0.
fn session_channel() -> impl Strategy<Value = u32> {
    1u32..
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn hello_round_trips(m in hello_strategy(), version in 1u8..) {
        assert_control_round_trip(&Control::Hello(m), version, 0);
    }

    #[test]
    fn link_close_round_trips(m in link_close_strategy(), version in 1u8..) {
        assert_control_round_trip(&Control::LinkClose(m), version, 0);
    }

    #[test]
    fn ping_round_trips(value in any::<u64>(), version in 1u8..) {
        assert_control_round_trip(&Control::Ping(pb::Ping { value }), version, 0);
    }

    #[test]
    fn pong_round_trips(value in any::<u64>(), version in 1u8..) {
        assert_control_round_trip(&Control::Pong(pb::Pong { value }), version, 0);
    }

    #[test]
    fn connect_request_round_trips(
        m in connect_request_strategy(),
        version in 1u8..,
        channel in session_channel(),
    ) {
        assert_control_round_trip(&Control::ConnectRequest(m), version, channel);
    }

    #[test]
    fn connect_response_accepted_round_trips(
        m in accepted_strategy(),
        version in 1u8..,
        channel in session_channel(),
    ) {
        assert_control_round_trip(&Control::ConnectResponse(m), version, channel);
    }

    #[test]
    fn connect_response_rejected_round_trips(
        m in rejected_strategy(),
        version in 1u8..,
        channel in session_channel(),
    ) {
        assert_control_round_trip(&Control::ConnectResponse(m), version, channel);
    }

    #[test]
    fn message_round_trips(m in message_strategy(), version in 1u8.., channel in session_channel()) {
        assert_control_round_trip(&Control::Message(m), version, channel);
    }

    #[test]
    fn disconnect_round_trips(
        m in disconnect_strategy(),
        version in 1u8..,
        channel in session_channel(),
    ) {
        assert_control_round_trip(&Control::Disconnect(m), version, channel);
    }

    #[test]
    fn collaborate_event_round_trips(
        m in collaborate_event_strategy(),
        version in 1u8..,
        channel in session_channel(),
    ) {
        assert_control_round_trip(&Control::CollaborateEvent(m), version, channel);
    }

    #[test]
    fn header_round_trips_for_any_field_values(
        version in any::<u8>(),
        frame_type in any::<u8>(),
        flags in any::<u8>(),
        length in 0..=MAX_PAYLOAD_LEN,
        channel in any::<u32>(),
    ) {
        let header = FrameHeader { version, frame_type, flags, length, channel };
        let bytes = header.to_bytes();
        // The layout SPEC section 3 draws, written independently of the encoder.
        prop_assert_eq!(&bytes[..], &common::header(version, frame_type, flags, length, channel)[..]);
        prop_assert_eq!(FrameHeader::parse(&bytes), Ok(header));
        prop_assert_eq!(header.frame_len(), HEADER_LEN + length as usize);
        let mut put = BytesMut::new();
        header.put(&mut put);
        prop_assert_eq!(&put[..], &bytes[..]);
    }

    #[test]
    fn data_fragment_round_trips(
        version in 1u8..,
        channel in session_channel(),
        transfer_id in any::<u32>(),
        index in any::<u32>(),
        total_length in proptest::option::of(any::<u64>()),
        last in any::<bool>(),
        chunk in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let sent = DataFragment {
            channel,
            transfer_id,
            index,
            total_length,
            last,
            chunk: Bytes::from(chunk),
        };
        let mut wire = BytesMut::new();
        sent.encode(version, &mut wire).expect("the fragment fits");
        let wire = wire.freeze();

        let exact = Frame::decode_exact(wire.clone(), MAX_FRAME_SIZE, Some(version))
            .expect("a DATA frame on a session channel is valid");
        prop_assert_eq!(exact.kind, FrameKind::Known(FrameType::Data));
        prop_assert_eq!(exact.flags, sent.flags());
        prop_assert_eq!(&exact, &sent.to_frame(version).expect("the fragment fits"));
        prop_assert_eq!(DataFragment::parse(&exact), Ok(sent.clone()));

        let streamed = decode_all(&wire, MAX_FRAME_SIZE, Some(version)).expect("valid stream");
        prop_assert_eq!(streamed.len(), 1);
        prop_assert_eq!(DataFragment::parse(&streamed[0]), Ok(sent));
    }

    #[test]
    fn extension_frame_round_trips_with_its_payload(
        version in 1u8..,
        code in 0x80u8..=0xFF,
        flags in any::<u8>(),
        channel in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let sent = Frame {
            version,
            kind: FrameKind::Extension(code),
            flags,
            channel,
            payload: Bytes::from(payload),
        };
        prop_assert_eq!(sent.type_code(), code);
        let wire = sent.to_bytes().expect("the frame fits");
        prop_assert_eq!(
            Frame::decode_exact(wire.clone(), MAX_FRAME_SIZE, Some(version)),
            Ok(sent.clone())
        );
        prop_assert_eq!(decode_all(&wire, MAX_FRAME_SIZE, Some(version)), Ok(vec![sent]));
    }
}

/// A session control body: the bodies that may be split across frames (SPEC `FRAME-10`).
fn session_control() -> impl Strategy<Value = Control> {
    prop_oneof![
        connect_request_strategy().prop_map(Control::ConnectRequest),
        prop_oneof![accepted_strategy(), rejected_strategy()].prop_map(Control::ConnectResponse),
        message_strategy().prop_map(Control::Message),
        disconnect_strategy().prop_map(Control::Disconnect),
        collaborate_event_strategy().prop_map(Control::CollaborateEvent),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn frame_10_split_control_bodies_round_trip_at_any_frame_size(
        control in session_control(),
        max_frame_size in 128u32..=1024,
        channel in session_channel(),
    ) {
        let body = control.encode_body();
        let frames = encode_control(&control, VERSION, channel, max_frame_size)
            .expect("session bodies may be split");
        let room = max_frame_size as usize - HEADER_LEN;
        prop_assert_eq!(frames.len(), body.len().div_ceil(room).max(1));

        let decoded = decode_all(&frames.concat(), max_frame_size, Some(VERSION))
            .expect("every piece is a valid frame");
        let (last, pieces) = decoded.split_last().expect("at least one frame");
        let mut assembler = ControlAssembler::new();
        for piece in pieces {
            prop_assert_eq!(piece.flags, FLAG_MORE);
            prop_assert_eq!(piece.encoded_len(), max_frame_size as usize);
            prop_assert_eq!(assembler.push(piece), Ok(None));
        }
        prop_assert_eq!(last.flags, 0);
        let (frame_type, on, joined) = assembler
            .push(last)
            .expect("the pieces follow each other")
            .expect("the last piece ends the body");
        prop_assert_eq!((frame_type, on), (control.frame_type(), channel));
        prop_assert_eq!(&joined, &body);
        prop_assert_eq!(Control::decode(frame_type, &joined), Some(Ok(control)));
    }
}

#[test]
fn every_known_frame_type_has_its_code_and_a_round_tripping_body() {
    let controls = sample_controls();
    for (frame_type, code) in KNOWN_TYPES {
        assert_eq!(i32::from(frame_type), i32::from(code));
        assert_eq!(
            Frame::new(VERSION, frame_type, 1, Bytes::new()).type_code(),
            code
        );
        assert_eq!(FrameKind::from_code(code), Ok(FrameKind::Known(frame_type)));
        if frame_type == FrameType::Data {
            assert_eq!(Control::decode(frame_type, &[]), None);
            continue;
        }
        let control = controls
            .iter()
            .find(|c| c.frame_type() == frame_type)
            .expect("a sample body for every control type");
        assert_control_round_trip(control, VERSION, channel_of(control));
    }
}
