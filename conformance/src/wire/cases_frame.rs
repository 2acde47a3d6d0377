//! The frame header and control bodies (SPEC sections 3 and 8).

use acm_wire::pb::{self, FrameType, LinkCloseReason};
use acm_wire::{Control, FLAG_MORE, Frame, FrameHeader, encode_control};
use bytes::{BufMut, Bytes, BytesMut};

use super::peer::{Peer, Step, token};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/FRAME-2/bad-magic",
            ["FRAME-2"],
            "a frame whose magic is not AC 4D closes the link with PROTOCOL_ERROR",
            bad_magic
        )
        .breaking("FRAME-2"),
        wire_case!(
            "wire/FRAME-3/version-zero",
            ["FRAME-3"],
            "a frame in version 0 closes the link with PROTOCOL_ERROR",
            version_zero
        )
        .breaking("FRAME-3")
        .needing(Needs::VersionZero),
        wire_case!(
            "wire/FRAME-3/wrong-version",
            ["FRAME-3"],
            "a PING in version 2 on a version 1 link closes the link",
            wrong_version
        )
        .breaking("FRAME-3"),
        wire_case!(
            "wire/FRAME-3/hello-any-version",
            ["FRAME-3", "LINK-4"],
            "a HELLO whose header says version 7 is accepted",
            hello_any_version
        ),
        wire_case!(
            "wire/FRAME-4/reserved-flag",
            ["FRAME-4"],
            "a PING with a reserved flag bit closes the link with PROTOCOL_ERROR",
            reserved_flag
        )
        .breaking("FRAME-4"),
        wire_case!(
            "wire/FRAME-4/reserved-data-flag",
            ["FRAME-4"],
            "a DATA frame with flag 0x04 closes the link with PROTOCOL_ERROR",
            reserved_data_flag
        )
        .breaking("FRAME-4"),
        wire_case!(
            "wire/FRAME-5/oversize-header",
            ["FRAME-5"],
            "a header announcing more than max_frame_size closes the link with FRAME_TOO_LARGE before its payload",
            oversize
        )
        .breaking("FRAME-5"),
        wire_case!(
            "wire/FRAME-6/type-zero",
            ["FRAME-6"],
            "a frame of type 0 closes the link with PROTOCOL_ERROR",
            type_zero
        )
        .breaking("FRAME-6"),
        wire_case!(
            "wire/FRAME-7/unknown-critical-type",
            ["FRAME-7"],
            "a frame of unknown type 0x30 closes the link with PROTOCOL_ERROR",
            unknown_critical
        )
        .breaking("FRAME-7"),
        wire_case!(
            "wire/FRAME-7/extension-type-ignored",
            ["FRAME-7"],
            "a frame of unknown extension type 0x9A is ignored",
            extension_ignored
        ),
        wire_case!(
            "wire/FRAME-8/link-frame-off-channel-0",
            ["FRAME-8"],
            "a PING on channel 5 closes the link with PROTOCOL_ERROR",
            ping_off_zero
        )
        .breaking("FRAME-8"),
        wire_case!(
            "wire/FRAME-8/session-frame-on-channel-0",
            ["FRAME-8"],
            "a MESSAGE on channel 0 closes the link with PROTOCOL_ERROR",
            message_on_zero
        )
        .breaking("FRAME-8"),
        wire_case!(
            "wire/FRAME-9/short-message",
            ["FRAME-9"],
            "a link message shorter than its header says closes the link",
            short_message
        )
        .breaking("FRAME-9")
        .needing(Needs::Messages),
        wire_case!(
            "wire/FRAME-10/split-request",
            ["FRAME-10", "SESS-3"],
            "a CONNECT_REQUEST split into 40-byte pieces with MORE is accepted",
            split_request
        )
        .breaking("FRAME-10"),
        wire_case!(
            "wire/FRAME-10/interleaved-piece",
            ["FRAME-10"],
            "a PING between the pieces of a split body closes the link",
            interleaved_piece
        )
        .breaking("FRAME-10"),
        wire_case!(
            "wire/CTRL-1/garbage-body",
            ["CTRL-1"],
            "a CONNECT_REQUEST body that is not protobuf closes the link with PROTOCOL_ERROR",
            garbage_body
        )
        .breaking("CTRL-1"),
        wire_case!(
            "wire/CTRL-1/invalid-utf8",
            ["CTRL-1"],
            "a MESSAGE whose text is not UTF-8 closes the link with PROTOCOL_ERROR",
            invalid_utf8
        )
        .breaking("CTRL-1"),
        wire_case!(
            "wire/CTRL-2/unknown-fields",
            ["CTRL-2"],
            "unknown protobuf fields in HELLO and CONNECT_REQUEST are ignored",
            unknown_fields
        )
        .breaking("CTRL-2"),
        wire_case!(
            "wire/CTRL-3/unknown-event-type",
            ["CTRL-3", "EVT-1"],
            "a COLLABORATE_EVENT of unknown type is dropped and the session goes on",
            unknown_event_type
        ),
        wire_case!(
            "wire/CTRL-3/unknown-disconnect-reason",
            ["CTRL-3", "DISC-2"],
            "a DISCONNECT with an unknown reason still ends the session",
            unknown_disconnect_reason
        ),
        wire_case!(
            "wire/CTRL-4/long-event-message",
            ["CTRL-4"],
            "a COLLABORATE_EVENT message over 1024 bytes closes the session",
            long_event_message
        )
        .breaking("CTRL-4"),
    ]
}

/// The bytes of a frame with any header fields, valid or not.
pub(super) fn raw_frame(
    version: u8,
    frame_type: u8,
    flags: u8,
    channel: u32,
    payload: &[u8],
) -> Bytes {
    let header = FrameHeader {
        version,
        frame_type,
        flags,
        length: payload.len() as u32,
        channel,
    };
    let mut out = BytesMut::with_capacity(12 + payload.len());
    header.put(&mut out);
    out.put_slice(payload);
    out.freeze()
}

async fn refused_after_up(t: &dyn WireTarget, bytes: Bytes, reason: LinkCloseReason) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.send_raw(bytes).await?;
    peer.expect_link_close(reason).await
}

fn ping_body() -> Bytes {
    Control::Ping(pb::Ping { value: 3 }).encode_body()
}

async fn bad_magic(t: &dyn WireTarget) -> Step<()> {
    let mut bytes = raw_frame(1, FrameType::Ping as u8, 0, 0, &ping_body()).to_vec();
    bytes[0] = 0xAB;
    refused_after_up(t, Bytes::from(bytes), LinkCloseReason::ProtocolError).await
}

async fn version_zero(t: &dyn WireTarget) -> Step<()> {
    let bytes = raw_frame(0, FrameType::Ping as u8, 0, 0, &ping_body());
    let mut peer = Peer::up(t).await?;
    match peer.send_raw(bytes).await {
        // A transport may refuse to carry version-0 frames itself (SPEC 13, BLE-8).
        Err(_) => Err(Verdict::Unsupported(
            "the transport refuses version-0 frames".into(),
        )),
        Ok(()) => peer.expect_link_close(LinkCloseReason::ProtocolError).await,
    }
}

async fn wrong_version(t: &dyn WireTarget) -> Step<()> {
    refused_after_up(
        t,
        raw_frame(2, FrameType::Ping as u8, 0, 0, &ping_body()),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn hello_any_version(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let hello = Control::Hello(peer.default_hello());
    peer.send_raw(raw_frame(
        7,
        FrameType::Hello as u8,
        0,
        0,
        &hello.encode_body(),
    ))
    .await?;
    peer.expect_hello().await?;
    peer.expect_alive().await
}

async fn reserved_flag(t: &dyn WireTarget) -> Step<()> {
    refused_after_up(
        t,
        raw_frame(1, FrameType::Ping as u8, 0x80, 0, &ping_body()),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn reserved_data_flag(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("flags").await?;
    let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 0];
    payload.extend_from_slice(&5u64.to_be_bytes());
    payload.extend_from_slice(b"hello");
    peer.send_raw(raw_frame(
        1,
        FrameType::Data as u8,
        0x01 | 0x02 | 0x04,
        channel,
        &payload,
    ))
    .await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn oversize(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let max = peer.hello.as_ref().map_or(65_535, |h| h.max_frame_size);
    let length = max.saturating_sub(11).min(0xFF_FFFF);
    if t.frames_are_messages() {
        // Only the header: the payload it announces never comes, and need not.
        let header = FrameHeader {
            version: 1,
            frame_type: FrameType::Message as u8,
            flags: 0,
            length,
            channel: 1,
        };
        peer.send_raw(Bytes::copy_from_slice(&header.to_bytes()))
            .await?;
    } else {
        // On a byte stream the frame must be whole to be sent at all.
        peer.send_raw(raw_frame(
            1,
            FrameType::Message as u8,
            0,
            1,
            &vec![0; length as usize],
        ))
        .await?;
    }
    peer.expect_link_close(LinkCloseReason::FrameTooLarge).await
}

async fn type_zero(t: &dyn WireTarget) -> Step<()> {
    refused_after_up(
        t,
        raw_frame(1, 0, 0, 0, &[]),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn unknown_critical(t: &dyn WireTarget) -> Step<()> {
    refused_after_up(
        t,
        raw_frame(1, 0x30, 0, 0, b"?"),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn extension_ignored(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.send_raw(raw_frame(1, 0x9A, 0xFF, 12, b"future stuff"))
        .await?;
    peer.expect_alive().await
}

async fn ping_off_zero(t: &dyn WireTarget) -> Step<()> {
    refused_after_up(
        t,
        raw_frame(1, FrameType::Ping as u8, 0, 5, &ping_body()),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn message_on_zero(t: &dyn WireTarget) -> Step<()> {
    let body = Control::Message(pb::Message { text: "x".into() }).encode_body();
    refused_after_up(
        t,
        raw_frame(1, FrameType::Message as u8, 0, 0, &body),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn short_message(t: &dyn WireTarget) -> Step<()> {
    if !t.frames_are_messages() {
        return Err(Verdict::Unsupported(
            "the transport is a byte stream: frames are delimited by their headers".into(),
        ));
    }
    let whole = raw_frame(1, FrameType::Ping as u8, 0, 0, &ping_body());
    refused_after_up(
        t,
        whole.slice(..whole.len() - 1),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn split_request(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let request = Control::ConnectRequest(peer.request(profile::ECHO, "split", token(0x44)));
    let frames = encode_control(&request, 1, channel, 52)
        .map_err(|e| Verdict::fail("an encodable request", e.to_string()))?;
    if frames.len() < 3 {
        return Err(Verdict::fail(
            "a request in several pieces",
            format!("{}", frames.len()),
        ));
    }
    for frame in frames {
        peer.send_raw(frame).await?;
    }
    let response = peer.expect_response(channel).await?;
    match response.result {
        Some(pb::connect_response::Result::Accepted(_)) => Ok(()),
        other => Err(Verdict::fail("accepted", format!("{other:?}"))),
    }
}

async fn interleaved_piece(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let request = Control::ConnectRequest(peer.request(profile::ECHO, "split", token(0x45)));
    let frames = encode_control(&request, 1, channel, 52)
        .map_err(|e| Verdict::fail("an encodable request", e.to_string()))?;
    let first = Frame::decode_exact(frames[0].clone(), u32::MAX, None)
        .map_err(|e| Verdict::fail("a frame", e.to_string()))?;
    if first.flags & FLAG_MORE == 0 {
        return Err(Verdict::fail("a first piece with MORE", "none"));
    }
    peer.send_raw(frames[0].clone()).await?;
    peer.send(&Control::Ping(pb::Ping { value: 1 }), 0).await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn garbage_body(t: &dyn WireTarget) -> Step<()> {
    refused_after_up(
        t,
        raw_frame(1, FrameType::ConnectRequest as u8, 0, 1, &[0xFF; 9]),
        LinkCloseReason::ProtocolError,
    )
    .await
}

async fn invalid_utf8(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("utf8").await?;
    // Field 1, length-delimited, 2 bytes: not UTF-8.
    peer.send_raw(raw_frame(
        1,
        FrameType::Message as u8,
        0,
        channel,
        &[0x0A, 0x02, 0xC3, 0x28],
    ))
    .await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn unknown_fields(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = Control::Hello(peer.default_hello()).encode_body().to_vec();
    hello.extend_from_slice(&[0xF8, 0x01, 0x07]); // field 31, varint 7
    peer.send_raw(raw_frame(1, FrameType::Hello as u8, 0, 0, &hello))
        .await?;
    peer.expect_hello().await?;
    let channel = peer.channel();
    let request = Control::ConnectRequest(peer.request(profile::ECHO, "fields", token(0x46)));
    let mut body = request.encode_body().to_vec();
    body.extend_from_slice(&[0xA2, 0x06, 0x03, b'n', b'e', b'w']); // field 100, 3 bytes
    peer.send_raw(raw_frame(
        1,
        FrameType::ConnectRequest as u8,
        0,
        channel,
        &body,
    ))
    .await?;
    match peer.expect_response(channel).await?.result {
        Some(pb::connect_response::Result::Accepted(_)) => Ok(()),
        other => Err(Verdict::fail("accepted", format!("{other:?}"))),
    }
}

async fn unknown_event_type(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("events").await?;
    let event = pb::CollaborateEvent {
        event_type: 77,
        message: "from the future".into(),
    };
    peer.send(&Control::CollaborateEvent(event), channel)
        .await?;
    peer.send(
        &Control::Message(pb::Message {
            text: "still here".into(),
        }),
        channel,
    )
    .await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != "still here" {
        return Err(Verdict::fail("the message echoed", echoed));
    }
    Ok(())
}

async fn unknown_disconnect_reason(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("reasons").await?;
    let bye = pb::Disconnect {
        reason: 99,
        error: 0,
        detail: String::new(),
    };
    peer.send(&Control::Disconnect(bye), channel).await?;
    // The session is over: a message on its channel is discarded, not echoed.
    peer.send(
        &Control::Message(pb::Message {
            text: "echo?".into(),
        }),
        channel,
    )
    .await?;
    peer.expect_alive().await
}

async fn long_event_message(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("long-event").await?;
    let event = pb::CollaborateEvent {
        event_type: pb::CollaborateEventType::SendFailure.into(),
        message: "e".repeat(1025),
    };
    peer.send(&Control::CollaborateEvent(event), channel)
        .await?;
    let bye = peer.expect_disconnect(channel).await?;
    if bye.reason() != pb::DisconnectReason::NetworkDisconnected {
        return Err(Verdict::fail(
            "NETWORK_DISCONNECTED",
            bye.reason().as_str_name(),
        ));
    }
    Ok(())
}
