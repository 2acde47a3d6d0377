//! The stream decoder: frames come out whole and in order however the bytes are cut, hostile
//! bytes never make it panic or allocate beyond the frame size, errors stick, leftovers at the
//! end of the stream are reported, and payloads are never copied.

mod common;

use acm_wire::pb::{self, FrameType};
use acm_wire::{
    Control, DataFragment, Fragmenter, Frame, FrameDecoder, FrameError, FrameKind, HEADER_LEN,
    MAX_PAYLOAD_LEN,
};
use bytes::{Bytes, BytesMut};
use common::*;
use proptest::prelude::*;
use proptest::sample::Index;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mixed_stream_decodes_the_same_byte_by_byte_in_chunks_and_at_once(
        frames in proptest::collection::vec(valid_frame(300), 1..30),
        sizes in proptest::collection::vec(1usize..80, 1..20),
    ) {
        let wire = encode_stream(&frames);
        prop_assert_eq!(wire.len(), wire_len(&frames));
        prop_assert_eq!(decode_all(&wire, BIG_FRAME, Some(VERSION)), Ok(frames.clone()));
        prop_assert_eq!(decode_in_chunks(&wire, &[1], BIG_FRAME, Some(VERSION)), Ok(frames.clone()));
        prop_assert_eq!(decode_in_chunks(&wire, &sizes, BIG_FRAME, Some(VERSION)), Ok(frames));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_the_buffer_stays_bounded(
        input in hostile_input(),
        max_frame_size in 128u32..=4096,
        sizes in proptest::collection::vec(1usize..300, 1..10),
    ) {
        let mut decoder = FrameDecoder::new(max_frame_size);
        decoder.set_negotiated_version(VERSION);
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut fed = 0;
        let mut failure = None;
        let mut size = sizes.iter().copied().cycle();
        'feed: while fed < input.len() {
            let take = size.next().unwrap_or(1).min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + take]);
            fed += take;
            loop {
                let decoded = decoder.decode(&mut buf);
                // The buffer holds at most a frame the decoder accepts plus what was fed; a
                // decoder that reserved room for a hostile length would blow this bound. The
                // factor 2 leaves room for the buffer's amortised growth.
                prop_assert!(
                    buf.capacity() <= 2 * (max_frame_size as usize + fed),
                    "capacity {} after {} bytes fed, max_frame_size {}",
                    buf.capacity(), fed, max_frame_size,
                );
                match decoded {
                    Ok(Some(frame)) => {
                        prop_assert!(frame.encoded_len() <= max_frame_size as usize);
                        frames.push(frame);
                    }
                    Ok(None) => break,
                    Err(err) => {
                        failure = Some(err);
                        break 'feed;
                    }
                }
            }
        }
        // Every frame handed out is exactly the bytes it was cut from, and nothing else was
        // consumed.
        let consumed = fed - buf.len();
        prop_assert_eq!(encode_stream(&frames), input[..consumed].to_vec());
        match failure {
            Some(err) => {
                prop_assert!(
                    ["FRAME-2", "FRAME-3", "FRAME-4", "FRAME-5", "FRAME-6", "FRAME-7", "FRAME-8"]
                        .contains(&err.rule()),
                    "{err:?} is not a header rule"
                );
                prop_assert_eq!(decoder.decode(&mut buf), Err(err.clone()));
                prop_assert_eq!(decoder.decode_eof(&mut buf), Err(err));
            }
            None => match decoder.decode_eof(&mut buf) {
                Ok(frame) => {
                    prop_assert_eq!(frame, None);
                    prop_assert!(buf.is_empty());
                }
                Err(err) => prop_assert_eq!(err.rule(), "FRAME-9"),
            },
        }
    }
}

/// Bytes a hostile or broken peer might send: pure noise, or valid frames with some bytes
/// overwritten (which turns lengths into huge ones, types into unknown ones, and so on), cut
/// off anywhere.
fn hostile_input() -> impl Strategy<Value = Vec<u8>> {
    let noise = proptest::collection::vec(any::<u8>(), 0..1024);
    let damaged = (
        proptest::collection::vec(valid_frame(64), 0..8),
        proptest::collection::vec((any::<Index>(), any::<u8>()), 0..4),
        any::<Index>(),
    )
        .prop_map(|(frames, damage, cut)| {
            let mut wire = encode_stream(&frames);
            if !wire.is_empty() {
                for (at, byte) in damage {
                    let at = at.index(wire.len());
                    wire[at] = byte;
                }
                wire.truncate(cut.index(wire.len() + 1));
            }
            wire
        });
    // Valid frames, then a valid header announcing any length, then part of its payload.
    let announced = (
        proptest::collection::vec(valid_frame(64), 0..4),
        valid_frame(0),
        0..=MAX_PAYLOAD_LEN,
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(frames, last, length, tail)| {
            let mut wire = encode_stream(&frames);
            let mut head = last.header();
            head.length = length;
            wire.extend_from_slice(&head.to_bytes());
            wire.extend_from_slice(&tail);
            wire
        });
    prop_oneof![noise, damaged, announced]
}

#[test]
fn realistic_stream_of_controls_data_and_extensions_decodes_in_order() {
    let data = Bytes::from((0..1000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let mut frames = Vec::new();
    for control in sample_controls() {
        frames.push(control.to_frame(VERSION, channel_of(&control)));
    }
    for wire in Fragmenter::new(VERSION, 7, 1, data.clone(), 200).expect("room for data") {
        frames.push(Frame::decode_exact(wire, 200, Some(VERSION)).expect("valid DATA frame"));
    }
    frames.push(Frame {
        version: VERSION,
        kind: FrameKind::Extension(0xC3),
        flags: 0xFF,
        channel: 0,
        payload: Bytes::from_static(b"ignored"),
    });
    let wire = encode_stream(&frames);

    for sizes in [&[1][..], &[5, 1, 13], &[wire.len()]] {
        let decoded = decode_in_chunks(&wire, sizes, BIG_FRAME, Some(VERSION)).expect("valid");
        assert_eq!(decoded, frames);

        let mut controls = Vec::new();
        let mut fragments = Vec::new();
        let mut extensions = Vec::new();
        for frame in &decoded {
            match frame.kind {
                FrameKind::Known(FrameType::Data) => {
                    fragments.push(DataFragment::parse(frame).expect("valid fragment"));
                }
                FrameKind::Known(frame_type) => controls.push(
                    Control::decode(frame_type, &frame.payload)
                        .expect("a control type")
                        .expect("a valid body"),
                ),
                FrameKind::Extension(code) => extensions.push(code),
            }
        }
        assert_eq!(controls, sample_controls());
        let joined: Vec<u8> = fragments.iter().flat_map(|f| f.chunk.to_vec()).collect();
        assert_eq!(joined, data);
        assert!(fragments.last().expect("fragments").last);
        assert_eq!(extensions, [0xC3]);
    }
}

#[test]
fn frame_5_huge_length_is_refused_when_only_the_header_has_arrived() {
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    let mut buf = BytesMut::from(&header(VERSION, 3, 0, MAX_PAYLOAD_LEN, 0)[..]);
    let capacity = buf.capacity();
    let err = decoder.decode(&mut buf).expect_err("refused");
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: u64::from(MAX_PAYLOAD_LEN) + 12,
            max: BIG_FRAME
        }
    );
    assert_eq!(err.rule(), "FRAME-5");
    assert_eq!(err.close_reason(), pb::LinkCloseReason::FrameTooLarge);
    // Nothing was reserved for the announced payload, nor consumed.
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.len(), HEADER_LEN);
}

#[test]
fn partial_frame_is_awaited_without_consuming_bytes() {
    let ping = Frame::new(VERSION, FrameType::Ping, 0, Bytes::from(vec![8; 100]));
    let wire = ping.to_bytes().expect("fits");
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    let mut buf = BytesMut::new();
    for (i, byte) in wire.iter().enumerate() {
        assert_eq!(decoder.decode(&mut buf), Ok(None), "after {i} bytes");
        assert_eq!(buf.len(), i, "nothing consumed before the frame is whole");
        buf.extend_from_slice(&[*byte]);
    }
    assert_eq!(decoder.decode(&mut buf), Ok(Some(ping)));
    assert!(buf.is_empty());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

#[test]
fn decode_after_an_error_keeps_returning_the_error() {
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    let mut bad = raw_frame(VERSION, 3, 0, 0, &[]);
    bad[0] = 0xAD;
    let mut buf = BytesMut::from(&bad[..]);
    let err = decoder.decode(&mut buf).expect_err("bad magic");
    assert_eq!(err, FrameError::BadMagic([0xAD, 0x4D]));

    // Even a valid frame behind it, or in a fresh buffer, is not read any more.
    let good = raw_frame(VERSION, 3, 0, 0, &[]);
    buf.extend_from_slice(&good);
    assert_eq!(decoder.decode(&mut buf), Err(err.clone()));
    let mut fresh = BytesMut::from(&good[..]);
    assert_eq!(decoder.decode(&mut fresh), Err(err.clone()));
    assert_eq!(decoder.decode_eof(&mut fresh), Err(err.clone()));
    assert_eq!(fresh.len(), good.len(), "nothing consumed after the error");
    let mut empty = BytesMut::new();
    assert_eq!(decoder.decode(&mut empty), Err(err));
}

#[test]
fn decode_eof_delivers_whole_frames_then_reports_leftovers() {
    let ping = raw_frame(VERSION, 3, 0, 0, &[8, 1]);
    let pong = raw_frame(VERSION, 4, 0, 0, &[16, 1]);

    // A clean end: the frames, then nothing.
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    let mut buf = BytesMut::from(&[ping.clone(), pong.clone()].concat()[..]);
    assert!(decoder.decode_eof(&mut buf).expect("ping").is_some());
    assert!(decoder.decode_eof(&mut buf).expect("pong").is_some());
    assert_eq!(decoder.decode_eof(&mut buf), Ok(None));

    // A partial header left over.
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    let mut buf = BytesMut::from(&[&ping[..], &pong[..5]].concat()[..]);
    assert!(decoder.decode_eof(&mut buf).expect("ping").is_some());
    let err = decoder.decode_eof(&mut buf).expect_err("leftover");
    assert_eq!(err, FrameError::Incomplete { have: 5 });
    assert_eq!(err.rule(), "FRAME-9");
    assert_eq!(err.close_reason(), pb::LinkCloseReason::ProtocolError);

    // A whole header and part of the payload left over.
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    let mut buf = BytesMut::from(&pong[..13]);
    let err = decoder.decode_eof(&mut buf).expect_err("leftover");
    assert_eq!(
        err,
        FrameError::LengthMismatch {
            expected: 14,
            got: 13
        }
    );
    assert_eq!(err.rule(), "FRAME-9");
}

#[test]
fn payloads_are_zero_copy_slices_of_the_receive_buffer() {
    let frames = [
        Frame::new(VERSION, FrameType::Message, 5, Bytes::from(vec![1; 500])),
        Frame::new(VERSION, FrameType::Data, 5, Bytes::from(vec![2; 300])),
        Frame::new(VERSION, FrameType::Ping, 0, Bytes::from(vec![3; 10])),
    ];
    let wire = encode_stream(&frames);

    let mut buf = BytesMut::from(&wire[..]);
    let received = buf.as_ptr_range();
    let mut decoder = FrameDecoder::new(BIG_FRAME);
    for sent in &frames {
        let frame = decoder.decode(&mut buf).expect("valid").expect("whole");
        assert_eq!(&frame, sent);
        assert!(
            within(frame.payload.as_ptr_range(), &received),
            "payload copied out of the receive buffer"
        );
    }

    let message = Bytes::from(wire);
    let frame = Frame::decode_exact(message.slice(..512), BIG_FRAME, Some(VERSION)).expect("ok");
    assert_eq!(frame.payload.len(), 500);
    assert!(within(
        frame.payload.as_ptr_range(),
        &message.as_ptr_range()
    ));
}
