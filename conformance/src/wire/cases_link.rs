//! Link setup, version negotiation, keepalive, closing and channels (SPEC section 4).

use std::time::Duration;

use acm_wire::Control;
use acm_wire::pb::{self, LinkCloseReason};
use bytes::Bytes;

use super::peer::{ANSWER, Got, Peer, Step, token};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/LINK-1/hello-first",
            ["LINK-1", "LINK-3", "FRAME-1"],
            "the implementation's first frame is a valid HELLO of at most 128 bytes on channel 0",
            hello_first
        ),
        wire_case!(
            "wire/LINK-2/frame-before-hello",
            ["LINK-2"],
            "a PING before HELLO closes the link with PROTOCOL_ERROR",
            frame_before_hello
        )
        .breaking("LINK-2"),
        wire_case!(
            "wire/LINK-2/link-close-before-hello",
            ["LINK-2", "LINK-7"],
            "a LINK_CLOSE instead of HELLO ends the link, and nothing answers it",
            link_close_first
        ),
        wire_case!(
            "wire/LINK-2/second-hello",
            ["LINK-2"],
            "a second HELLO closes the link with PROTOCOL_ERROR",
            second_hello
        )
        .breaking("LINK-2"),
        wire_case!(
            "wire/LINK-3/short-nonce",
            ["LINK-3"],
            "a HELLO with a 4-byte nonce closes the link with PROTOCOL_ERROR",
            short_nonce
        )
        .breaking("LINK-3"),
        wire_case!(
            "wire/LINK-3/small-max-frame-size",
            ["LINK-3"],
            "a HELLO announcing max_frame_size 64 closes the link",
            small_max_frame
        )
        .breaking("LINK-3"),
        wire_case!(
            "wire/LINK-3/keepalive-out-of-range",
            ["LINK-3"],
            "a HELLO asking for a 10 ms keepalive closes the link",
            bad_keepalive
        )
        .breaking("LINK-3"),
        wire_case!(
            "wire/LINK-3/empty-version-range",
            ["LINK-3"],
            "a HELLO with max_version below min_version closes the link",
            empty_range
        )
        .breaking("LINK-3"),
        wire_case!(
            "wire/FRAME-5/link-close-fits-before-the-hellos",
            ["FRAME-5", "LINK-3", "LINK-7"],
            "a LINK_CLOSE refusing a HELLO with a 64-byte device id not the transport's fits in the 128 bytes every device accepts",
            close_fits_128
        )
        .breaking("LINK-3"),
        wire_case!(
            "wire/LINK-3/device-id-mismatch",
            ["LINK-3"],
            "a HELLO naming another device than the transport reached closes the link",
            wrong_device
        )
        .breaking("LINK-3"),
        wire_case!(
            "wire/LINK-4/highest-common-version",
            ["LINK-4", "FRAME-3"],
            "a peer speaking versions 1..=9 gets version 1 frames",
            highest_common
        ),
        wire_case!(
            "wire/LINK-4/no-common-version",
            ["LINK-4"],
            "a peer speaking only versions 2..=3 gets LINK_CLOSE NO_COMMON_VERSION",
            no_common_version
        )
        .breaking("LINK-4"),
        wire_case!(
            "wire/LINK-6/ping-answered",
            ["LINK-6"],
            "a PING is answered by a PONG with the same value",
            ping_answered
        ),
        wire_case!(
            "wire/LINK-9/unknown-feature-bits",
            ["LINK-9"],
            "feature bits the implementation does not know are ignored",
            feature_bits
        )
        .breaking("LINK-9"),
        wire_case!(
            "wire/LINK-7/peer-link-close",
            ["LINK-7", "DISC-2"],
            "after the peer's LINK_CLOSE the implementation sends nothing and ends the link",
            peer_link_close
        ),
        wire_case!(
            "wire/LINK-7/new-link-after-close",
            ["LINK-7"],
            "a new link works after the previous one was closed",
            new_link_after_close
        ),
        wire_case!(
            "wire/LINK-11/wrong-parity",
            ["LINK-11"],
            "a CONNECT_REQUEST from the dialer on an even channel closes the link",
            wrong_parity
        )
        .breaking("LINK-11"),
        wire_case!(
            "wire/LINK-11/reused-channel",
            ["LINK-11"],
            "a CONNECT_REQUEST on a channel already used closes the link",
            reused_channel
        )
        .breaking("LINK-11"),
        wire_case!(
            "wire/LINK-11/skipped-channel",
            ["LINK-11"],
            "after a request on channel 1, a request on channel 5 (3 skipped) closes the link with PROTOCOL_ERROR",
            skipped_channel
        )
        .breaking("LINK-11"),
        wire_case!(
            "wire/LINK-11/never-opened-channel",
            ["LINK-11"],
            "a MESSAGE on a channel never opened closes the link",
            never_opened
        )
        .breaking("LINK-11"),
        wire_case!(
            "wire/LINK-11/closed-channel-discarded",
            ["LINK-11", "DISC-2"],
            "a MESSAGE on a channel closed by DISCONNECT is discarded and the link stays up",
            closed_channel
        )
        .breaking("DISC-2"),
        wire_case!(
            "wire/LINK-5/respects-small-frames",
            ["LINK-5", "FRAME-5", "FRAME-10"],
            "with the peer's max_frame_size at 128, every frame of an echo fits",
            small_frames
        )
        .needing(Needs::Data),
    ]
}

async fn hello_first(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let hello = peer.expect_hello().await?;
    if hello.device_id != t.device_id() {
        return Err(Verdict::fail(
            format!("HELLO device_id {:?}", t.device_id()),
            format!("{:?}", hello.device_id),
        ));
    }
    Ok(())
}

async fn expect_refused(t: &dyn WireTarget, edit: impl FnOnce(&mut pb::Hello)) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = peer.default_hello();
    edit(&mut hello);
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn frame_before_hello(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    peer.send(&Control::Ping(pb::Ping { value: 1 }), 0).await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn link_close_first(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    peer.expect_hello().await?;
    let close = pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "no, thanks".into(),
    };
    peer.send(&Control::LinkClose(close), 0).await?;
    peer.expect_end().await
}

async fn second_hello(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let hello = peer.default_hello();
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn short_nonce(t: &dyn WireTarget) -> Step<()> {
    expect_refused(t, |h| h.nonce = Bytes::from_static(&[1; 4])).await
}

async fn small_max_frame(t: &dyn WireTarget) -> Step<()> {
    expect_refused(t, |h| h.max_frame_size = 64).await
}

async fn bad_keepalive(t: &dyn WireTarget) -> Step<()> {
    expect_refused(t, |h| h.keepalive_interval_ms = 10).await
}

async fn empty_range(t: &dyn WireTarget) -> Step<()> {
    expect_refused(t, |h| {
        h.min_version = 3;
        h.max_version = 2;
    })
    .await
}

async fn wrong_device(t: &dyn WireTarget) -> Step<()> {
    expect_refused(t, |h| h.device_id = "someone-else".into()).await
}

async fn close_fits_128(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = peer.default_hello();
    // A valid id, but not the device the transport reached: the refusal names both, at length.
    hello.device_id = "x".repeat(64);
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_hello().await?;
    let before = peer.largest_frame;
    peer.expect_link_close(LinkCloseReason::ProtocolError)
        .await?;
    if peer.largest_frame > 128 {
        return Err(Verdict::fail(
            "a LINK_CLOSE of at most 128 bytes before the HELLOs (FRAME-5)",
            format!("{} bytes (HELLO: {before})", peer.largest_frame),
        ));
    }
    Ok(())
}

async fn highest_common(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.max_version = 9).await?;
    peer.send(&Control::Ping(pb::Ping { value: 5 }), 0).await?;
    peer.auto_pong = false;
    match peer.next(ANSWER).await? {
        Got::Frame(frame) if frame.version == 1 => Ok(()),
        Got::Frame(frame) => Err(Verdict::fail(
            "frames in version 1",
            format!("version {}", frame.version),
        )),
        Got::Ended(closure) => Err(Verdict::fail("PONG", format!("the link ended: {closure}"))),
    }
}

async fn no_common_version(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = peer.default_hello();
    hello.min_version = 2;
    hello.max_version = 3;
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_hello().await?;
    peer.expect_link_close(LinkCloseReason::NoCommonVersion)
        .await
}

async fn ping_answered(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.expect_alive().await
}

async fn feature_bits(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.features = 0xFFFF_0000_FFFF_0000).await?;
    peer.expect_alive().await?;
    peer.open_echo("features").await.map(|_| ())
}

async fn peer_link_close(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.open_echo("closing").await?;
    let close = pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "suite done".into(),
    };
    peer.send(&Control::LinkClose(close), 0).await?;
    peer.expect_end().await
}

async fn new_link_after_close(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    first.open_echo("again").await?;
    first.close().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut second = Peer::up(t).await?;
    second.open_echo("again").await.map(|_| ())
}

async fn wrong_parity(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let request = peer.request(profile::ECHO, "parity", token(1));
    peer.send(&Control::ConnectRequest(request), 2).await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn reused_channel(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("reuse").await?;
    let request = peer.request(profile::ECHO, "reuse-2", token(2));
    peer.send(&Control::ConnectRequest(request), channel)
        .await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn skipped_channel(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (first, _) = peer.open_echo("first").await?;
    let request = peer.request(profile::ECHO, "skipping", token(3));
    peer.send(&Control::ConnectRequest(request), first + 4)
        .await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn never_opened(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let message = Control::Message(pb::Message { text: "hi".into() });
    peer.send(&message, 99).await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn closed_channel(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("closed").await?;
    let bye = pb::Disconnect {
        reason: pb::DisconnectReason::PeerAppCloseCollaboration.into(),
        error: pb::SessionError::None.into(),
        detail: String::new(),
    };
    peer.send(&Control::Disconnect(bye), channel).await?;
    peer.send(
        &Control::Message(pb::Message {
            text: "late".into(),
        }),
        channel,
    )
    .await?;
    peer.expect_alive().await
}

async fn small_frames(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.max_frame_size = 128).await?;
    let (channel, _) = peer.open_echo("small").await?;
    let text = "s".repeat(1000);
    peer.send(
        &Control::Message(pb::Message { text: text.clone() }),
        channel,
    )
    .await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != text {
        return Err(Verdict::fail(
            "the 1000-byte message echoed",
            format!("{} bytes", echoed.len()),
        ));
    }
    let data = Bytes::from(vec![7u8; 3000]);
    peer.send_data(channel, 1, data.clone()).await?;
    let back = peer.expect_data(channel).await?;
    if back != data {
        return Err(Verdict::fail(
            "3000 bytes echoed",
            format!("{} bytes", back.len()),
        ));
    }
    Ok(())
}
