//! The TCP binding (SPEC section 14), from a raw connection: the binding's OPEN and CLOSE, frames
//! on the stream, sizes checked before payloads, flow control.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use acm_transport_tcp::binding::HEADER_LEN;
use acm_wire::pb::{self, FrameType, LinkCloseReason};
use acm_wire::{Control, FrameHeader, FrameKind};
use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::peer::{ANSWER, Step, message, token};
use super::raw::{Raw, RawTcp};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    [
        wire_case!(
            "wire/TCP-5/acceptor-waits-for-open",
            ["TCP-5", "LINK-1"],
            "the acceptor sends nothing before the dialer's OPEN, then its own OPEN naming its device, then HELLO",
            acceptor_waits
        ),
        wire_case!(
            "wire/TCP-5/frame-before-open",
            ["TCP-5"],
            "a HELLO sent before OPEN ends the connection, with nothing sent back",
            frame_before_open
        )
        .breaking("TCP-5"),
        wire_case!(
            "wire/TCP-5/second-open",
            ["TCP-5", "TCP-7"],
            "a second OPEN on an open link makes it lost: the connection ends without LINK_CLOSE or CLOSE",
            second_open
        )
        .breaking("TCP-5"),
        wire_case!(
            "wire/TCP-4/open-without-device-id",
            ["TCP-4", "TCP-5"],
            "an OPEN whose payload is empty ends the connection, with nothing sent back",
            empty_open
        )
        .breaking("TCP-4"),
        wire_case!(
            "wire/TCP-4/open-over-64-bytes",
            ["TCP-4"],
            "an OPEN whose header announces 65 bytes ends the connection before its payload",
            long_open
        )
        .breaking("TCP-4"),
        wire_case!(
            "wire/TCP-4/binding-flags-set",
            ["TCP-4"],
            "a binding message with flags 0x01 on an open link makes it lost, without LINK_CLOSE",
            binding_flags
        )
        .breaking("TCP-4"),
        wire_case!(
            "wire/TCP-4/unknown-kind-skipped",
            ["TCP-4"],
            "a binding message of unknown kind 0x07 with a payload is skipped and the link goes on",
            unknown_kind
        ),
        wire_case!(
            "wire/TCP-9/version-0-frame-is-not-a-frame",
            ["TCP-9", "TCP-4", "FRAME-3"],
            "a PING written in version 0 is a binding message of unknown kind: skipped, never answered",
            version_0_ping
        )
        .breaking("TCP-9"),
        wire_case!(
            "wire/TCP-2/two-frames-in-one-write",
            ["TCP-2"],
            "two PINGs written at once are two frames: both answered",
            two_in_one
        ),
        wire_case!(
            "wire/TCP-2/frame-byte-by-byte",
            ["TCP-2", "TCP-3"],
            "a PING written one byte at a time is one frame: answered",
            byte_by_byte
        ),
        wire_case!(
            "wire/TCP-2/byte-between-frames",
            ["TCP-2", "FRAME-2"],
            "a zero byte between two frames misaligns the next header: the link closes with PROTOCOL_ERROR",
            byte_between
        )
        .breaking("TCP-2"),
        wire_case!(
            "wire/FRAME-1/stream-ends-mid-frame",
            ["FRAME-1", "FRAME-9", "TCP-2", "TCP-7"],
            "a MESSAGE cut short by the end of the stream is never delivered: no echo, and the link is lost",
            cut_short
        )
        .breaking("FRAME-1"),
        wire_case!(
            "wire/TCP-3/size-checked-before-payload",
            ["TCP-3", "FRAME-5"],
            "a header announcing a frame over the maximum, with no payload after it, ends the link at once",
            header_over_max
        )
        .breaking("TCP-3"),
        wire_case!(
            "wire/TCP-6/close-after-peer-link-close",
            ["TCP-6", "LINK-12", "LINK-7"],
            "after the suite's LINK_CLOSE alone, the implementation sends CLOSE with code 0 and no text, then ends the connection",
            close_after_link_close
        ),
        wire_case!(
            "wire/TCP-6/nothing-read-after-close",
            ["TCP-6", "LINK-7"],
            "a PING after the suite's CLOSE is not answered: the implementation sends nothing and ends the connection",
            frame_after_close
        )
        .breaking("TCP-6"),
        wire_case!(
            "wire/LINK-12/close-code-of-link-close",
            ["LINK-12", "TCP-6", "FRAME-2"],
            "an implementation that closes the link for a broken rule sends LINK_CLOSE, then CLOSE with the reason's number",
            close_code
        )
        .breaking("FRAME-2"),
        wire_case!(
            "wire/LINK-12/reserved-close-code",
            ["LINK-12", "TCP-6"],
            "a CLOSE with the reserved code 0xBEEF and no LINK_CLOSE ends the link as the peer's close: nothing is sent back",
            reserved_code
        )
        .breaking("LINK-12"),
        wire_case!(
            "wire/TCP-8/reader-stops-when-flooded",
            ["TCP-8", "MSG-2"],
            "a suite that writes messages without reading their echoes is held back, then gets every echo in order",
            flood
        )
        .breaking("TCP-8"),
    ]
    .into_iter()
    .map(|case| case.needing(Needs::RawTcp))
    .collect()
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// The connection ends with nothing sent: no OPEN, no CLOSE, no frame.
async fn ends_silently(raw: &mut RawTcp) -> Step<()> {
    raw.expect_end(|_| false).await.map(|_| ())
}

async fn acceptor_waits(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::connect(t).await?;
    raw.quiet_for(Duration::from_millis(300)).await?;
    raw.send_open().await?;
    raw.expect_open().await?;
    match raw.next(ANSWER).await? {
        Raw::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Hello) => Ok(()),
        other => fail("HELLO after OPEN (LINK-1)", other.describe()),
    }
}

async fn frame_before_open(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::connect(t).await?;
    let ping = Control::Ping(pb::Ping { value: 1 });
    raw.send_control(&ping, 0).await?;
    ends_silently(&mut raw).await
}

async fn second_open(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    raw.send_open().await?;
    ends_silently(&mut raw).await
}

/// A binding message header: `AC 4D 00 kind`, `flags`, a 24-bit length, channel 0.
fn binding_header(kind: u8, flags: u8, len: u32) -> Vec<u8> {
    let mut out = vec![0xAC, 0x4D, 0, kind, flags];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0; 4]);
    out
}

async fn empty_open(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::connect(t).await?;
    raw.write(&binding_header(1, 0, 0)).await?;
    ends_silently(&mut raw).await
}

async fn long_open(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::connect(t).await?;
    // Only the header: the implementation must not wait for the 65 bytes.
    raw.write(&binding_header(1, 0, 65)).await?;
    ends_silently(&mut raw).await
}

async fn binding_flags(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let mut close = binding_header(2, 1, 4);
    close.extend_from_slice(&[0; 4]);
    raw.write(&close).await?;
    ends_silently(&mut raw).await
}

async fn unknown_kind(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let mut message = binding_header(7, 0, 10);
    message.extend_from_slice(b"0123456789");
    raw.write(&message).await?;
    raw.expect_alive().await
}

async fn version_0_ping(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let body = Control::Ping(pb::Ping { value: 77 }).encode_body();
    let mut frame = binding_header(FrameType::Ping as u8, 0, body.len() as u32);
    frame.extend_from_slice(&body);
    raw.write(&frame).await?;
    // The PONG that comes must be for the next PING, not for this one.
    raw.expect_alive().await
}

fn ping(value: u64) -> Step<bytes::Bytes> {
    Control::Ping(pb::Ping { value })
        .encode_frame(1, 0)
        .map_err(|e| Verdict::fail("a PING", e.to_string()))
}

async fn expect_pong(raw: &mut RawTcp, value: u64) -> Step<()> {
    let frame = raw.expect_frame(FrameType::Pong).await?;
    match Control::decode(FrameType::Pong, &frame.payload) {
        Some(Ok(Control::Pong(pong))) if pong.value == value => Ok(()),
        other => fail(format!("PONG {value}"), format!("{other:?}")),
    }
}

async fn two_in_one(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let mut both = ping(1)?.to_vec();
    both.extend_from_slice(&ping(2)?);
    raw.write(&both).await?;
    expect_pong(&mut raw, 1).await?;
    expect_pong(&mut raw, 2).await
}

async fn byte_by_byte(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    for byte in ping(3)?.iter() {
        raw.write(&[*byte]).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    expect_pong(&mut raw, 3).await
}

async fn byte_between(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let mut bytes = ping(4)?.to_vec();
    bytes.push(0);
    bytes.extend_from_slice(&ping(5)?);
    raw.write(&bytes).await?;
    expect_pong(&mut raw, 4).await?;
    raw.expect_link_close(LinkCloseReason::ProtocolError).await
}

/// Opens an echo session on a raw link: its channel.
async fn raw_echo(raw: &mut RawTcp, service: &str) -> Step<u32> {
    let mut target = super::peer::suite_app(&raw.iut);
    target.ability_name = profile::ECHO.into();
    target.service_name = service.into();
    let request = Control::ConnectRequest(pb::ConnectRequest {
        token: bytes::Bytes::copy_from_slice(&token(0x61)),
        source: Some(super::peer::suite_app(&raw.suite)),
        target: Some(target),
        options: Some(pb::ConnectOptions::default()),
    });
    raw.send_control(&request, 1).await?;
    let frame = raw.expect_frame(FrameType::ConnectResponse).await?;
    match Control::decode(FrameType::ConnectResponse, &frame.payload) {
        Some(Ok(Control::ConnectResponse(r))) => super::peer::accepted(&r).map(|()| 1),
        other => fail("CONNECT_RESPONSE", format!("{other:?}")),
    }
}

async fn cut_short(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let channel = raw_echo(&mut raw, "cut").await?;
    let frame = message("never whole")
        .encode_frame(1, channel)
        .map_err(|e| Verdict::fail("a MESSAGE", e.to_string()))?;
    raw.write(&frame[..frame.len() - 3]).await?;
    raw.finish().await?;
    // No echo: the connection ends (lost: no LINK_CLOSE is owed, the peer is gone).
    raw.expect_end(|got| matches!(got, Raw::Close(0, _)))
        .await
        .map(|_| ())
}

async fn header_over_max(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let header = FrameHeader {
        version: 1,
        frame_type: FrameType::Message as u8,
        flags: 0,
        length: 0x00FF_FFFF,
        channel: 1,
    };
    raw.write(&header.to_bytes()).await?;
    // FRAME-5's LINK_CLOSE and CLOSE when acm checks first; nothing at all when the binding
    // does (TCP-3). Either way the connection ends without waiting for the payload.
    let seen = raw
        .expect_end(|got| match got {
            Raw::Frame(frame) => frame.kind == FrameKind::Known(FrameType::LinkClose),
            Raw::Close(..) => true,
            _ => false,
        })
        .await?;
    for got in seen {
        if let Raw::Frame(frame) = got
            && let Some(Ok(Control::LinkClose(close))) =
                Control::decode_unchecked(FrameType::LinkClose, &frame.payload)
            && close.reason() != LinkCloseReason::FrameTooLarge
        {
            return fail("LINK_CLOSE FRAME_TOO_LARGE", close.reason().as_str_name());
        }
    }
    Ok(())
}

async fn close_after_link_close(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let close = Control::LinkClose(pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "suite done".into(),
    });
    raw.send_control(&close, 0).await?;
    match raw.next(ANSWER).await? {
        Raw::Close(0, text) if text.is_empty() => {}
        other => return fail("CLOSE with code 0 and no text (LINK-12)", other.describe()),
    }
    raw.expect_end(|_| false).await.map(|_| ())
}

async fn frame_after_close(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    raw.send_close(0, "").await?;
    raw.write(&ping(9)?).await?;
    ends_silently(&mut raw).await
}

async fn close_code(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let mut bad = ping(1)?.to_vec();
    bad[0] = 0xAB;
    raw.write(&bad).await?;
    raw.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn reserved_code(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    raw.send_close(0xBEEF, "a code no binding assigns").await?;
    ends_silently(&mut raw).await
}

/// How many bytes of messages the suite offers at most before it calls the implementation's
/// memory unbounded.
const FLOOD_LIMIT: usize = 256 << 20;

async fn flood(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::up(t).await?;
    let channel = raw_echo(&mut raw, "flood").await?;
    let (mut reader, mut writer) = raw.into_split();
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (counter, stopped) = (written.clone(), stop.clone());
    let frame = message(&"f".repeat(1000))
        .encode_frame(1, channel)
        .map_err(|e| Verdict::fail("a MESSAGE", e.to_string()))?;
    let per_frame = frame.len();
    // Whole frames only, so that the stream stays well-formed wherever the writer stops.
    let mut chunk = BytesMut::with_capacity(64 * per_frame);
    for _ in 0..64 {
        chunk.put_slice(&frame);
    }
    let chunk = chunk.freeze();
    let writing = tokio::spawn(async move {
        while !stopped.load(Ordering::Relaxed) && counter.load(Ordering::Relaxed) < FLOOD_LIMIT {
            if writer.write_all(&chunk).await.is_err() {
                return None;
            }
            counter.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        // Handed back: dropping it would end the suite's direction of the connection.
        Some(writer)
    });
    // Held back: nothing more is taken for a second, though the suite still offers bytes.
    let mut last = 0;
    let mut still = 0;
    while still < 4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = written.load(Ordering::Relaxed);
        if writing.is_finished() {
            return fail(
                format!("the implementation to stop reading before {FLOOD_LIMIT} bytes (TCP-8)"),
                format!("it took {now} bytes"),
            );
        }
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    // Now read: the echoes come, the writer's last write completes, and it stops.
    stop.store(true, Ordering::Relaxed);

    let mut buf = BytesMut::new();
    let mut echoes = 0usize;
    loop {
        while let Some(len) = whole_frame(&buf) {
            let frame = buf.split_to(len);
            if frame[3] == FrameType::Message as u8 {
                echoes += 1;
            }
        }
        let wanted = written.load(Ordering::Relaxed) / per_frame;
        if writing.is_finished() && echoes == wanted {
            break;
        }
        if echoes > wanted && writing.is_finished() {
            return fail(format!("{wanted} echoes"), format!("{echoes}"));
        }
        let mut read = [0u8; 64 * 1024];
        match tokio::time::timeout(ANSWER, reader.read(&mut read)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&read[..n]),
            _ => {
                return fail(
                    format!("{wanted} echoes"),
                    format!("{echoes}, then nothing"),
                );
            }
        }
    }
    match writing.await {
        Ok(Some(_writer)) => Ok(()),
        _ => fail(
            "the suite's writes to complete once it reads",
            "they failed",
        ),
    }
}

/// The length of the frame at the front of `buf`, once all of it is there.
fn whole_frame(buf: &[u8]) -> Option<usize> {
    let header = buf.get(..HEADER_LEN)?;
    let len = HEADER_LEN
        + (usize::from(header[5]) << 16 | usize::from(header[6]) << 8 | usize::from(header[7]));
    (buf.len() >= len).then_some(len)
}
