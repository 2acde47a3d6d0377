//! Every timer SPEC names, observed from the wire, early and late: the HELLO wait, keepalive
//! (sending and receiving), the requester's and the responder's handshake timers, and the TCP
//! binding's OPEN wait. Each is measured against the timers the target declares (SPEC section
//! 15): never before its length, allowing for the time a frame takes to cross; never much after.

use std::time::Duration;

use acm_wire::pb::{self, FrameType, LinkCloseReason};
use acm_wire::{Control, FrameKind};
use tokio::time::Instant;

use super::peer::{ANSWER, Got, Peer, Step, describe, disconnect_is, rejected_with, token};
use super::raw::{Raw, RawTcp};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/LINK-10/no-hello-times-out",
            ["LINK-10"],
            "a peer that never sends HELLO gets LINK_CLOSE TIMEOUT after the HELLO wait, not before",
            no_hello
        )
        .breaking("LINK-10"),
        wire_case!(
            "wire/LINK-10/counted-from-the-open-exchange",
            ["LINK-10", "TCP-5"],
            "with OPEN sent late, the HELLO wait runs from the end of the OPEN exchange, not from the connection",
            hello_wait_after_open
        )
        .breaking("LINK-10")
        .needing(Needs::RawTcp),
        wire_case!(
            "wire/LINK-6/idle-side-pings",
            ["LINK-6"],
            "with the suite's 1 s keepalive, an idle implementation sends PING after 1 s, not before",
            idle_pings
        ),
        wire_case!(
            "wire/LINK-6/own-interval-when-smaller",
            ["LINK-6"],
            "with the suite asking for 600 s, the implementation pings at its own, smaller interval",
            own_interval
        ),
        wire_case!(
            "wire/LINK-6/silence-times-out",
            ["LINK-6", "LINK-7"],
            "with a 1 s keepalive and a silent suite, the link closes with TIMEOUT after 3 s, not before",
            silence_times_out
        )
        .breaking("LINK-6"),
        wire_case!(
            "wire/LINK-6/any-frame-is-a-sign-of-life",
            ["LINK-6", "FRAME-7"],
            "with a 1 s keepalive, extension frames and stray PONGs every 0.6 s keep the link up for 5 s",
            any_frame_counts
        ),
        wire_case!(
            "wire/SESS-5/requester-timer",
            ["SESS-5", "DISC-1"],
            "an implementation whose request is not answered sends DISCONNECT with INTERNAL_ERROR after the handshake timeout, not before",
            requester_timer
        )
        .breaking("SESS-5"),
        wire_case!(
            "wire/SESS-5/responder-timeout",
            ["SESS-5"],
            "a request the app never answers is rejected with SYSTEM_INTERNAL_ERROR, naming SESS-5, after the responder timeout, not before",
            responder_timeout
        ),
        wire_case!(
            "wire/TCP-5/no-open-times-out",
            ["TCP-5"],
            "a connection on which no OPEN comes is ended after the OPEN wait, not before, with nothing sent",
            no_open
        )
        .breaking("TCP-5")
        .needing(Needs::RawTcp),
    ]
}

/// Checks that something a timer of `length` does happened `elapsed` after the timer started:
/// not early (less a margin for the frames that started it and show it to cross), not late.
fn on_time(what: &str, elapsed: Duration, length: Duration) -> Step<()> {
    let margin = (length / 10).max(Duration::from_millis(100));
    let late = length + length / 4 + Duration::from_millis(500);
    if elapsed + margin < length {
        return Err(Verdict::fail(
            format!("{what} after {length:?}"),
            format!("after {elapsed:?}: early"),
        ));
    }
    if elapsed > late {
        return Err(Verdict::fail(
            format!("{what} after {length:?}"),
            format!("after {elapsed:?}: late"),
        ));
    }
    Ok(())
}

/// Waits for the implementation's LINK_CLOSE with TIMEOUT, within `within`, answering nothing.
/// Returns when it came.
async fn expect_timeout_close(peer: &mut Peer, within: Duration) -> Step<Instant> {
    peer.auto_pong = false;
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match peer.next(left).await {
            Ok(Got::Frame(frame)) if frame.kind == FrameKind::Known(FrameType::Ping) => {}
            Ok(Got::Frame(frame)) if frame.kind == FrameKind::Known(FrameType::LinkClose) => {
                return match Control::decode_unchecked(FrameType::LinkClose, &frame.payload) {
                    Some(Ok(Control::LinkClose(close)))
                        if close.reason() == LinkCloseReason::Timeout =>
                    {
                        Ok(Instant::now())
                    }
                    _ => Err(Verdict::fail("LINK_CLOSE TIMEOUT", describe(&frame))),
                };
            }
            Ok(Got::Frame(frame)) => {
                return Err(Verdict::fail("nothing but LINK_CLOSE", describe(&frame)));
            }
            Ok(Got::Ended(closure)) => {
                return Err(Verdict::fail(
                    "LINK_CLOSE TIMEOUT",
                    format!("the link ended without it: {closure}"),
                ));
            }
            Err(_) => {
                return Err(Verdict::fail(
                    format!("LINK_CLOSE TIMEOUT within {within:?}"),
                    "the link stayed up",
                ));
            }
        }
    }
}

async fn no_hello(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let opened = Instant::now();
    peer.expect_hello().await?;
    let hello = peer.timers.hello;
    let closed = expect_timeout_close(&mut peer, hello * 2 + ANSWER).await?;
    on_time("LINK_CLOSE TIMEOUT (LINK-10)", closed - opened, hello)
}

async fn hello_wait_after_open(t: &dyn WireTarget) -> Step<()> {
    let timers = t.timers();
    let mut raw = RawTcp::connect(t).await?;
    // Well within the OPEN wait, but long enough to tell the two starting points apart.
    tokio::time::sleep(timers.open.min(timers.hello) * 6 / 10).await;
    raw.send_open().await?;
    raw.expect_open().await?;
    let opened = Instant::now();
    match raw.next(ANSWER).await? {
        Raw::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Hello) => {}
        other => return Err(Verdict::fail("HELLO", other.describe())),
    }
    match raw.next(timers.hello * 2 + ANSWER).await? {
        Raw::Frame(frame) if frame.kind == FrameKind::Known(FrameType::LinkClose) => on_time(
            "LINK_CLOSE TIMEOUT (LINK-10)",
            opened.elapsed(),
            timers.hello,
        ),
        other => Err(Verdict::fail("LINK_CLOSE TIMEOUT", other.describe())),
    }
}

/// Waits for the implementation's PING, answering nothing; returns when it came.
async fn expect_ping(peer: &mut Peer, within: Duration) -> Step<Instant> {
    peer.auto_pong = false;
    match peer.next(within).await? {
        Got::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Ping) => Ok(Instant::now()),
        Got::Frame(frame) => Err(Verdict::fail("PING", describe(&frame))),
        Got::Ended(closure) => Err(Verdict::fail("PING", format!("the link ended: {closure}"))),
    }
}

async fn idle_pings(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = peer.default_hello();
    hello.keepalive_interval_ms = 1_000;
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_hello().await?;
    let since = Instant::now();
    let interval = Duration::from_secs(1);
    let pinged = expect_ping(&mut peer, interval * 3).await?;
    on_time("PING (LINK-6)", pinged - since, interval)
}

async fn own_interval(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = peer.default_hello();
    hello.keepalive_interval_ms = 600_000;
    peer.send(&Control::Hello(hello), 0).await?;
    let theirs = peer.expect_hello().await?;
    let since = Instant::now();
    let interval = Duration::from_millis(theirs.keepalive_interval_ms.into());
    let pinged = expect_ping(&mut peer, interval * 3).await?;
    on_time(
        "PING at the implementation's interval (LINK-6)",
        pinged - since,
        interval,
    )
}

async fn silence_times_out(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let mut hello = peer.default_hello();
    hello.keepalive_interval_ms = 1_000;
    peer.send(&Control::Hello(hello), 0).await?;
    let silent_since = Instant::now();
    peer.expect_hello().await?;
    let closed = expect_timeout_close(&mut peer, Duration::from_secs(8)).await?;
    on_time(
        "LINK_CLOSE TIMEOUT after 3 silent intervals (LINK-6)",
        closed - silent_since,
        Duration::from_secs(3),
    )
}

async fn any_frame_counts(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.keepalive_interval_ms = 1_000).await?;
    let extension = super::cases_frame::raw_frame(1, 0x9B, 0, 0, b"alive");
    for i in 0..9u64 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        if i % 2 == 0 {
            peer.send_raw(extension.clone()).await?;
        } else {
            peer.send(&Control::Pong(pb::Pong { value: 1_000 + i }), 0)
                .await?;
        }
        // Drain what came (PINGs are answered by the suite only through these frames).
        peer.auto_pong = false;
        while let Ok(got) = peer.next(Duration::from_millis(1)).await {
            match got {
                Got::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Ping) => {}
                Got::Frame(frame) => {
                    return Err(Verdict::fail("the link to stay up", describe(&frame)));
                }
                Got::Ended(closure) => {
                    return Err(Verdict::fail("the link to stay up", closure.to_string()));
                }
            }
        }
    }
    peer.auto_pong = true;
    peer.expect_alive().await
}

async fn requester_timer(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, _) = peer.connect_back("origin", "unanswered").await?;
    let asked = Instant::now();
    let length = peer.timers.handshake;
    let bye = match peer.next(length * 2 + ANSWER).await? {
        Got::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Disconnect) => {
            match Control::decode(FrameType::Disconnect, &frame.payload) {
                Some(Ok(Control::Disconnect(bye))) if frame.channel == channel => bye,
                other => return Err(Verdict::fail("DISCONNECT", format!("{other:?}"))),
            }
        }
        Got::Frame(frame) => return Err(Verdict::fail("DISCONNECT", describe(&frame))),
        Got::Ended(closure) => return Err(Verdict::fail("DISCONNECT", closure.to_string())),
    };
    on_time("DISCONNECT (SESS-5)", asked.elapsed(), length)?;
    disconnect_is(
        &bye,
        pb::DisconnectReason::NetworkDisconnected,
        pb::SessionError::InternalError,
    )?;
    let (result, _) = peer.expect_connect_result(origin).await?;
    if result != "5" {
        return Err(Verdict::fail(
            "acm:connect-result 5 (SYSTEM_INTERNAL_ERROR)",
            result,
        ));
    }
    Ok(())
}

async fn responder_timeout(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let request = peer.request(profile::SILENT, "silent", token(10));
    peer.send(&Control::ConnectRequest(request), channel)
        .await?;
    let asked = Instant::now();
    let length = peer.timers.responder;
    let (on, control) = peer
        .expect(FrameType::ConnectResponse, length * 2 + ANSWER)
        .await?;
    on_time("CONNECT_RESPONSE (SESS-5)", asked.elapsed(), length)?;
    let Control::ConnectResponse(response) = control else {
        return Err(Verdict::fail("CONNECT_RESPONSE", format!("{control:?}")));
    };
    if on != channel {
        return Err(Verdict::fail(
            format!("channel {channel}"),
            format!("channel {on}"),
        ));
    }
    let reason = rejected_with(&response, pb::ConnectErrorCode::SystemInternalError)?;
    if !reason.contains("SESS-5") {
        return Err(Verdict::fail("a reason naming SESS-5", reason));
    }
    Ok(())
}

async fn no_open(t: &dyn WireTarget) -> Step<()> {
    let mut raw = RawTcp::connect(t).await?;
    let connected = Instant::now();
    let length = t.timers().open;
    match raw.next(length * 2 + ANSWER).await? {
        Raw::Ended => on_time(
            "the end of the connection (TCP-5)",
            connected.elapsed(),
            length,
        ),
        other => Err(Verdict::fail("nothing, then the end", other.describe())),
    }
}
