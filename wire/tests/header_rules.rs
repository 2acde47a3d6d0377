//! The header rules of SPEC section 3 (FRAME-2 to FRAME-9): each malformed header is refused
//! with its exact typed error, rule id and close reason, by the one-frame decoder and by the
//! stream decoder, which refuses it as soon as the 12 header bytes are there.

mod common;

use acm_wire::pb::LinkCloseReason;
use acm_wire::{Frame, FrameDecoder, FrameError, FrameKind, HEADER_LEN, MAX_PAYLOAD_LEN};
use bytes::{Bytes, BytesMut};
use common::*;

/// Asserts that both decoders refuse `wire` with `expected`, which enforces `rule` and closes
/// the link with `close`. The stream decoder is given only the header: every header rule is
/// checked before any payload byte is awaited.
fn assert_refused(
    wire: &[u8],
    max_frame_size: u32,
    negotiated: Option<u8>,
    expected: FrameError,
    rule: &str,
    close: LinkCloseReason,
) {
    assert_eq!(expected.rule(), rule, "{expected:?}");
    assert_eq!(expected.close_reason(), close, "{expected:?}");
    assert_eq!(
        Frame::decode_exact(Bytes::copy_from_slice(wire), max_frame_size, negotiated),
        Err(expected.clone()),
        "decode_exact"
    );
    let mut decoder = FrameDecoder::new(max_frame_size);
    if let Some(version) = negotiated {
        decoder.set_negotiated_version(version);
    }
    let mut buf = BytesMut::from(&wire[..HEADER_LEN]);
    assert_eq!(decoder.decode(&mut buf), Err(expected), "stream decoder");
}

/// [`assert_refused`] for the rules that close the link as a protocol error.
fn assert_protocol_error(wire: &[u8], negotiated: Option<u8>, expected: FrameError, rule: &str) {
    assert_refused(
        wire,
        BIG_FRAME,
        negotiated,
        expected,
        rule,
        LinkCloseReason::ProtocolError,
    );
}

/// Asserts that both decoders accept `wire` as the same frame, and returns it.
fn assert_accepted(wire: &[u8], max_frame_size: u32, negotiated: Option<u8>) -> Frame {
    let exact = Frame::decode_exact(Bytes::copy_from_slice(wire), max_frame_size, negotiated)
        .expect("decode_exact accepts the frame");
    assert_eq!(
        decode_all(wire, max_frame_size, negotiated),
        Ok(vec![exact.clone()]),
        "the stream decoder accepts the same frame"
    );
    exact
}

#[test]
fn frame_2_bad_magic_is_refused() {
    for magic in [
        [0xAC, 0x4E],
        [0xAD, 0x4D],
        [0x4D, 0xAC],
        [0, 0],
        [0xFF, 0xFF],
    ] {
        let mut wire = raw_frame(VERSION, 3, 0, 0, &[8, 1]);
        wire[..2].copy_from_slice(&magic);
        assert_protocol_error(&wire, None, FrameError::BadMagic(magic), "FRAME-2");
    }
    assert_eq!(
        assert_accepted(&raw_frame(VERSION, 3, 0, 0, &[]), BIG_FRAME, None).channel,
        0
    );
}

#[test]
fn frame_3_version_zero_is_refused_for_every_type() {
    for code in 0..=u8::MAX {
        let channel = u32::from(code > 4);
        let wire = raw_frame(0, code, 0, channel, &[]);
        for negotiated in [None, Some(VERSION)] {
            assert_protocol_error(&wire, negotiated, FrameError::VersionZero, "FRAME-3");
        }
    }
}

#[test]
fn frame_3_other_version_is_refused_only_after_negotiation() {
    let ping = raw_frame(2, 3, 0, 0, &[]);
    let message = raw_frame(2, 7, 0, 9, &[]);
    // Before the HELLOs are exchanged any non-zero version passes the header check.
    assert_eq!(assert_accepted(&ping, BIG_FRAME, None).version, 2);
    assert_eq!(assert_accepted(&message, BIG_FRAME, None).version, 2);
    // After negotiation, a frame must carry the negotiated version.
    for wire in [&ping, &message] {
        assert_protocol_error(
            wire,
            Some(VERSION),
            FrameError::VersionMismatch {
                got: 2,
                negotiated: VERSION,
            },
            "FRAME-3",
        );
    }
    assert_eq!(
        assert_accepted(&raw_frame(2, 7, 0, 9, &[]), BIG_FRAME, Some(2)).version,
        2
    );
}

#[test]
fn frame_3_hello_and_link_close_may_carry_any_version_after_negotiation() {
    for code in [1, 2] {
        for version in [1, 2, 7, u8::MAX] {
            let frame = assert_accepted(&raw_frame(version, code, 0, 0, &[]), BIG_FRAME, Some(1));
            assert_eq!(frame.version, version);
        }
    }
}

#[test]
fn frame_3_extension_frame_in_another_version_is_refused_after_negotiation() {
    let wire = raw_frame(2, 0x90, 0, 0, b"ext");
    assert_eq!(
        assert_accepted(&wire, BIG_FRAME, None).kind,
        FrameKind::Extension(0x90)
    );
    assert_protocol_error(
        &wire,
        Some(VERSION),
        FrameError::VersionMismatch {
            got: 2,
            negotiated: VERSION,
        },
        "FRAME-3",
    );
}

#[test]
fn frame_4_reserved_flag_bits_of_known_types_are_refused() {
    for (frame_type, code) in KNOWN_TYPES {
        let channel = u32::from(!is_link_type(frame_type));
        let defined = defined_flags(frame_type);
        for bit in 0..8 {
            let flag = 1u8 << bit;
            let wire = raw_frame(VERSION, code, flag | defined, channel, &[0; 16]);
            if flag & defined != 0 {
                assert_eq!(
                    assert_accepted(&wire, BIG_FRAME, Some(VERSION)).flags,
                    defined
                );
                continue;
            }
            assert_protocol_error(
                &wire,
                Some(VERSION),
                FrameError::ReservedFlags {
                    frame_type: code,
                    flags: flag,
                },
                "FRAME-4",
            );
        }
    }
    // Only the reserved bits are reported.
    assert_protocol_error(
        &raw_frame(VERSION, 8, 0xF3, 1, &[0; 16]),
        Some(VERSION),
        FrameError::ReservedFlags {
            frame_type: 8,
            flags: 0xF0,
        },
        "FRAME-4",
    );
}

#[test]
fn frame_5_frame_over_max_frame_size_is_refused_from_its_header() {
    let max = 200;
    // Exactly the maximum passes.
    let fits = raw_frame(VERSION, 7, 0, 1, &[b'a'; 200 - HEADER_LEN]);
    assert_eq!(assert_accepted(&fits, max, None).encoded_len(), 200);
    // One byte more is refused, and so is the largest length the header can say.
    for length in [201 - HEADER_LEN as u32, MAX_PAYLOAD_LEN] {
        let wire = header(VERSION, 7, 0, length, 1);
        assert_refused(
            &wire,
            max,
            None,
            FrameError::TooLarge {
                len: u64::from(length) + HEADER_LEN as u64,
                max,
            },
            "FRAME-5",
            LinkCloseReason::FrameTooLarge,
        );
    }
}

#[test]
fn frame_5_size_is_checked_before_the_other_header_rules() {
    // Version 0, type 0, reserved flags and a wrong channel, but too large first of all.
    let wire = header(0, 0, 0xFF, 1000, 5);
    assert_refused(
        &wire,
        128,
        Some(VERSION),
        FrameError::TooLarge {
            len: 1012,
            max: 128,
        },
        "FRAME-5",
        LinkCloseReason::FrameTooLarge,
    );
}

#[test]
fn frame_6_type_zero_is_refused() {
    for channel in [0, 1] {
        assert_protocol_error(
            &raw_frame(VERSION, 0, 0, channel, &[]),
            None,
            FrameError::TypeZero,
            "FRAME-6",
        );
    }
}

#[test]
fn frame_7_unknown_critical_types_are_refused() {
    for code in 11..=0x7F {
        for channel in [0, 1] {
            assert_protocol_error(
                &raw_frame(VERSION, code, 0, channel, &[]),
                Some(VERSION),
                FrameError::UnknownCriticalType(code),
                "FRAME-7",
            );
        }
    }
}

#[test]
fn frame_7_extension_types_are_accepted_to_be_ignored() {
    for code in 0x80..=0xFF {
        for (flags, channel) in [(0, 0), (0xFF, 3), (0x5A, u32::MAX)] {
            let wire = raw_frame(VERSION, code, flags, channel, b"future");
            let frame = assert_accepted(&wire, BIG_FRAME, Some(VERSION));
            assert_eq!(frame.kind, FrameKind::Extension(code));
            assert_eq!((frame.flags, frame.channel), (flags, channel));
            assert_eq!(&frame.payload[..], b"future");
        }
    }
}

#[test]
fn frame_8_link_frames_are_refused_off_channel_zero() {
    for code in 1..=4 {
        assert_eq!(
            assert_accepted(&raw_frame(VERSION, code, 0, 0, &[]), BIG_FRAME, None).channel,
            0
        );
        for channel in [1, 7, u32::MAX] {
            assert_protocol_error(
                &raw_frame(VERSION, code, 0, channel, &[]),
                None,
                FrameError::BadChannel {
                    frame_type: code,
                    channel,
                },
                "FRAME-8",
            );
        }
    }
}

#[test]
fn frame_8_session_frames_are_refused_on_channel_zero() {
    for code in 5..=10 {
        assert_eq!(
            assert_accepted(&raw_frame(VERSION, code, 0, 1, &[0; 8]), BIG_FRAME, None).channel,
            1
        );
        assert_protocol_error(
            &raw_frame(VERSION, code, 0, 0, &[0; 8]),
            None,
            FrameError::BadChannel {
                frame_type: code,
                channel: 0,
            },
            "FRAME-8",
        );
    }
}

#[test]
fn frame_9_link_message_must_hold_exactly_one_frame() {
    let frame = raw_frame(VERSION, 3, 0, 0, &[8, 1]);
    let exact = |bytes: &[u8]| Frame::decode_exact(Bytes::copy_from_slice(bytes), BIG_FRAME, None);
    assert!(exact(&frame).is_ok());

    let two = [frame.clone(), frame.clone()].concat();
    let trailing = [&frame[..], &[0]].concat();
    for (message, expected) in [
        (
            &two[..],
            FrameError::LengthMismatch {
                expected: 14,
                got: 28,
            },
        ),
        (
            &trailing[..],
            FrameError::LengthMismatch {
                expected: 14,
                got: 15,
            },
        ),
        (
            &frame[..13],
            FrameError::LengthMismatch {
                expected: 14,
                got: 13,
            },
        ),
        (&frame[..11], FrameError::Incomplete { have: 11 }),
        (&[][..], FrameError::Incomplete { have: 0 }),
    ] {
        let err = exact(message).expect_err("not exactly one frame");
        assert_eq!(err, expected);
        assert_eq!(err.rule(), "FRAME-9");
        assert_eq!(err.close_reason(), LinkCloseReason::ProtocolError);
    }
}

#[test]
fn frame_9_stream_ending_inside_a_frame_is_refused() {
    let frame = raw_frame(VERSION, 3, 0, 0, &[8, 1]);
    for (cut, expected) in [
        (
            13,
            FrameError::LengthMismatch {
                expected: 14,
                got: 13,
            },
        ),
        (
            12,
            FrameError::LengthMismatch {
                expected: 14,
                got: 12,
            },
        ),
        (3, FrameError::Incomplete { have: 3 }),
    ] {
        let err = decode_all(&frame[..cut], BIG_FRAME, None).expect_err("leftover bytes");
        assert_eq!(err, expected);
        assert_eq!(err.rule(), "FRAME-9");
        assert_eq!(err.close_reason(), LinkCloseReason::ProtocolError);
    }
    // A stream of two whole frames ends cleanly.
    let two = [frame.clone(), frame].concat();
    assert_eq!(decode_all(&two, BIG_FRAME, None).map(|f| f.len()), Ok(2));
}
