//! Every numeric limit the implementation enforces on what it receives, at the limit and one
//! past it: the ones it announces in HELLO (frame size, data size), the ones SPEC fixes (field
//! ranges of HELLO, lengths of names, texts and parameters, the size of a joined control body)
//! and the ones a peer can exhaust (sessions, the device's budget, openings). Those of data
//! transfers (size, unfinished transfers, the reassembly budget, transfer ids) are in
//! [`super::cases_limits_data`]; the limits the implementation keeps to when it sends are in
//! [`super::cases_sending`].

use acm_wire::pb::{self, ConnectErrorCode, DisconnectReason, FrameType, LinkCloseReason};
use acm_wire::{Control, DataFragment, FLAG_MORE, FrameHeader};
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::cases_limits_data::{declare, first, goes_on, limit_exceeded};
use super::peer::{Peer, Step, accepted, channel_token, disconnect, event, rejected_with};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    let mut all = vec![
        wire_case!(
            "wire/FRAME-5/frame-at-max-frame-size",
            ["FRAME-5", "LINK-3"],
            "a DATA frame of exactly the implementation's max_frame_size is taken and its transfer echoed",
            frame_at_max
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/LINK-5/frame-one-past-max-frame-size",
            ["LINK-5", "FRAME-5"],
            "a whole frame one byte over the implementation's max_frame_size closes the link with FRAME_TOO_LARGE",
            frame_past_max
        )
        .needing(Needs::Plain)
        .breaking("LINK-5"),
        wire_case!(
            "wire/FRAME-10/joined-body-of-256-kib",
            ["FRAME-10"],
            "a MESSAGE body of exactly 262 144 bytes, split with MORE, is joined and its text echoed",
            body_at_limit
        ),
        wire_case!(
            "wire/FRAME-10/joined-body-one-past-256-kib",
            ["FRAME-10"],
            "a MESSAGE body of 262 145 bytes, split with MORE, closes the link with FRAME_TOO_LARGE",
            body_past_limit
        )
        .breaking("FRAME-10"),
        wire_case!(
            "wire/LINK-1/hello-over-128-bytes",
            ["LINK-1", "FRAME-5"],
            "a HELLO of 160 bytes, within the implementation's max_frame_size, is accepted",
            big_hello
        )
        .breaking("LINK-1"),
        wire_case!(
            "wire/CTRL-4/event-message-at-1024",
            ["CTRL-4", "EVT-1"],
            "a COLLABORATE_EVENT whose message is 1024 bytes is delivered and echoed whole",
            event_at_limit
        ),
        wire_case!(
            "wire/CTRL-4/rejection-reason-at-1024",
            ["CTRL-4", "SESS-4"],
            "a rejection whose reason is 1024 bytes fails the implementation's connect with that reason",
            reason_at_limit
        ),
        wire_case!(
            "wire/CTRL-4/rejection-reason-past-1024",
            ["CTRL-4", "SESS-4"],
            "a rejection whose reason is 1025 bytes still fails the connect with its code, and nothing answers it",
            reason_past_limit
        )
        .breaking("CTRL-4"),
        wire_case!(
            "wire/CTRL-4/disconnect-detail-at-1024",
            ["CTRL-4", "DISC-2"],
            "a DISCONNECT whose detail is 1024 bytes ends the session, and nothing answers it",
            detail_at_limit
        ),
        wire_case!(
            "wire/CTRL-4/disconnect-detail-past-1024",
            ["CTRL-4", "DISC-2"],
            "a DISCONNECT whose detail is 1025 bytes still ends the session, and nothing answers it",
            detail_past_limit
        )
        .breaking("CTRL-4"),
        wire_case!(
            "wire/CTRL-4/link-close-message-at-1024",
            ["CTRL-4", "LINK-7"],
            "a LINK_CLOSE whose message is 1024 bytes ends the link, and nothing answers it",
            link_close_at_limit
        ),
        wire_case!(
            "wire/CTRL-4/link-close-message-past-1024",
            ["CTRL-4", "LINK-7"],
            "a LINK_CLOSE whose message is 1025 bytes still ends the link, and nothing answers it",
            link_close_past_limit
        )
        .breaking("CTRL-4"),
        wire_case!(
            "wire/TCP-8/a-peer-that-never-reads-is-held-back",
            ["TCP-8", "MSG-2"],
            "a peer that sends messages without reading the echoes is held back (its sends wait), then gets every echo, in order",
            held_back
        )
        .breaking("TCP-8")
        .needing(Needs::Tcp),
        wire_case!(
            "wire/SESS-8/sessions-at-limit-then-one-past",
            ["SESS-8", "SESS-3"],
            "64 connected sessions are accepted, a 65th request is rejected with SYSTEM_INTERNAL_ERROR naming SESS-8, and one more fits once a session ends",
            sessions_past_limit
        )
        .breaking("SESS-8"),
        wire_case!(
            "wire/SESS-8/pending-requests-count",
            ["SESS-8", "SESS-5"],
            "64 requests awaiting the app fill the link: a 65th is rejected with SYSTEM_INTERNAL_ERROR naming SESS-8",
            pending_past_limit
        )
        .breaking("SESS-8"),
        wire_case!(
            "wire/LIMIT-1/device-budget-across-links",
            ["LIMIT-1", "DATA-7"],
            "with one link's transfers declaring the device's whole memory budget, a 2-byte transfer on another link closes its session with LIMIT_EXCEEDED, and both links go on",
            device_budget
        )
        .needing(Needs::Data)
        .breaking("LIMIT-1"),
        wire_case!(
            "wire/LIMIT-2/idle-openings-give-way",
            ["LIMIT-2", "TCP-5"],
            "with 80 TCP connections open that never send OPEN, a new link still opens and carries a session",
            openings_give_way
        )
        .needing(Needs::RawTcp)
        .breaking("LIMIT-2"),
        wire_case!(
            "wire/LIMIT-3/wasted-openings-forgiven",
            ["LIMIT-3", "LIMIT-2", "TCP-5"],
            "300 connections from 127.0.0.2 that each send a frame instead of OPEN refuse no link from the suite's own address, and 127.0.0.2 is let in again within 10 s",
            wasted_openings_forgiven
        )
        .needing(Needs::RawTcp)
        .breaking("LIMIT-3"),
    ];
    all.extend(super::cases_limits_data::cases());
    all.extend(super::cases_tables::cases());
    all
}

pub(super) fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// The bytes of one DATA fragment.
pub(super) fn fragment_bytes(fragment: DataFragment) -> Step<Bytes> {
    let mut out = BytesMut::new();
    fragment
        .encode(1, &mut out)
        .map_err(|e| Verdict::fail("an encodable fragment", e.to_string()))?;
    Ok(out.freeze())
}

/// The implementation's announced max_frame_size.
fn their_max(peer: &Peer) -> usize {
    peer.hello.as_ref().map_or(65_535, |h| h.max_frame_size) as usize
}

async fn frame_at_max(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("at-max").await?;
    let (frame, chunk) = super::peer::data_frame(channel, their_max(&peer))?;
    peer.send_raw(frame).await?;
    let back = peer.expect_data(channel).await?;
    if back != chunk {
        return fail(
            format!("{} bytes echoed", chunk.len()),
            back.len().to_string(),
        );
    }
    Ok(())
}

async fn frame_past_max(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("past-max").await?;
    let (frame, _) = super::peer::data_frame(channel, their_max(&peer) + 1)?;
    peer.send_raw(frame).await?;
    peer.expect_link_close(LinkCloseReason::FrameTooLarge).await
}

/// A MESSAGE body of exactly `total` bytes whose text decodes as `text`: the text field written
/// again and again (a later value replaces an earlier one, as protobuf says), so that every
/// byte belongs to a field of `Message` and none is unknown (`CTRL-2`).
fn message_body_of(total: usize, text: &str) -> Step<Bytes> {
    let last = pb::Message { text: text.into() }.encode_to_vec();
    let mut body = BytesMut::with_capacity(total);
    let field = |len: usize| 1 + prost::encoding::encoded_len_varint(len as u64) + len;
    while body.len() + last.len() < total {
        let room = total - body.len() - last.len();
        // The longest filler that fits, leaving no gap too small for another field.
        let mut len = room.saturating_sub(3).min(60_000);
        while len > 0 && (field(len) > room || (room - field(len) > 0 && room - field(len) < 2)) {
            len -= 1;
        }
        if field(len) > room {
            return fail(format!("a body of {total} bytes"), "no filler fits");
        }
        body.put_u8(0x0A);
        prost::encoding::encode_varint(len as u64, &mut body);
        body.put_bytes(b'p', len);
    }
    body.put_slice(&last);
    if body.len() != total {
        return fail(format!("a body of {total} bytes"), body.len().to_string());
    }
    Ok(body.freeze())
}

/// Sends `body` as a MESSAGE on `channel`, in pieces that fill the implementation's frames.
async fn send_split(peer: &Peer, channel: u32, body: &Bytes) -> Step<()> {
    let piece = their_max(peer) - 12;
    let mut rest = body.clone();
    while !rest.is_empty() {
        let take = rest.len().min(piece);
        let part = rest.split_to(take);
        let header = FrameHeader {
            version: 1,
            frame_type: FrameType::Message as u8,
            flags: if rest.is_empty() { 0 } else { FLAG_MORE },
            length: take as u32,
            channel,
        };
        let mut frame = BytesMut::with_capacity(12 + take);
        header.put(&mut frame);
        frame.put_slice(&part);
        peer.send_raw(frame.freeze()).await?;
    }
    Ok(())
}

const JOINED_LIMIT: usize = 262_144;

async fn body_at_limit(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("body-limit").await?;
    let body = message_body_of(JOINED_LIMIT, "joined")?;
    send_split(&peer, channel, &body).await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != "joined" {
        return fail("\"joined\" echoed", echoed);
    }
    Ok(())
}

async fn body_past_limit(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("body-limit").await?;
    let body = message_body_of(JOINED_LIMIT + 1, "joined")?;
    send_split(&peer, channel, &body).await?;
    peer.expect_link_close(LinkCloseReason::FrameTooLarge).await
}

/// The size of the HELLO of [`big_hello`].
const BIG_HELLO: usize = 160;

async fn big_hello(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    let real = Control::Hello(peer.default_hello()).encode_body();
    // A long device id first, replaced by the real one that follows (protobuf keeps the last
    // value), so that every byte belongs to a field HELLO has.
    let filler_len = BIG_HELLO - 12 - 2 - real.len();
    let mut body = vec![0x1A, filler_len as u8];
    body.resize(2 + filler_len, b'x');
    body.extend_from_slice(&real);
    let frame = super::cases_frame::raw_frame(1, FrameType::Hello as u8, 0, 0, &body);
    if frame.len() != BIG_HELLO {
        return fail(
            format!("a HELLO of {BIG_HELLO} bytes"),
            frame.len().to_string(),
        );
    }
    peer.send_raw(frame).await?;
    peer.expect_hello().await?;
    peer.expect_alive().await?;
    peer.open_echo("big-hello").await.map(|_| ())
}

async fn event_at_limit(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("event-limit").await?;
    let text = "é".repeat(512);
    let sent = event(pb::CollaborateEventType::ColorSpaceConversionFailure, &text);
    peer.send(&sent, channel).await?;
    let back = peer.expect_event(channel).await?;
    if back.message != text
        || back.event_type() != pb::CollaborateEventType::ColorSpaceConversionFailure
    {
        return fail("the 1024-byte event echoed", format!("{back:?}"));
    }
    Ok(())
}

/// Rejects the implementation's connect-back with a reason of `len` bytes; returns the reason
/// the profile reports.
async fn reject_connect_back(t: &dyn WireTarget, len: usize) -> Step<(Peer, String, String)> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, request) = peer.connect_back("origin", "reason").await?;
    let reason = "q".repeat(len);
    let answer = super::peer::reject(request.token, ConnectErrorCode::PeerAppRejected, &reason);
    peer.send(&answer, channel).await?;
    let (result, got) = peer.expect_connect_result(origin).await?;
    if result != "1" {
        return fail("acm:connect-result 1 (PEER_APP_REJECTED)", result);
    }
    Ok((peer, reason, got.unwrap_or_default()))
}

async fn reason_at_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, sent, got) = reject_connect_back(t, 1024).await?;
    if got != sent {
        return fail("the 1024-byte reason", format!("{} bytes", got.len()));
    }
    peer.expect_alive().await
}

async fn reason_past_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, sent, got) = reject_connect_back(t, 1025).await?;
    if !sent.starts_with(&got) || got.len() < 1000 {
        return fail("the reason, cut to 1024 bytes by the profile", got);
    }
    // No DISCONNECT answers the rejection, nor anything else.
    peer.expect_alive().await
}

async fn detail(t: &dyn WireTarget, len: usize) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("detail").await?;
    let bye = disconnect(
        DisconnectReason::NetworkDisconnected,
        pb::SessionError::InternalError,
        &"d".repeat(len),
    );
    peer.send(&bye, channel).await?;
    // The session is over: a message on its channel is discarded, and nothing answers.
    peer.say(channel, "anyone?").await?;
    peer.expect_alive().await
}

async fn detail_at_limit(t: &dyn WireTarget) -> Step<()> {
    detail(t, 1024).await
}

async fn detail_past_limit(t: &dyn WireTarget) -> Step<()> {
    detail(t, 1025).await
}

async fn link_close(t: &dyn WireTarget, len: usize) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.open_echo("closing").await?;
    let close = Control::LinkClose(pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "m".repeat(len),
    });
    peer.send(&close, 0).await?;
    peer.expect_end().await
}

async fn link_close_at_limit(t: &dyn WireTarget) -> Step<()> {
    link_close(t, 1024).await
}

async fn link_close_past_limit(t: &dyn WireTarget) -> Step<()> {
    link_close(t, 1025).await
}

/// Fills a link with the profile's bound of sessions, each made by `ability`; returns the peer
/// and the channels.
async fn fill(t: &dyn WireTarget, ability: &str) -> Step<(Peer, Vec<u32>)> {
    let mut peer = Peer::up(t).await?;
    let mut channels = Vec::new();
    for i in 0..profile::SESSIONS_PER_LINK {
        let channel = peer.channel();
        let request = peer.request(ability, &format!("s{i}"), channel_token(0x70, channel));
        peer.send(&Control::ConnectRequest(request), channel)
            .await?;
        channels.push(channel);
    }
    if ability == profile::ECHO {
        for channel in &channels {
            accepted(&peer.expect_response(*channel).await?)?;
        }
    }
    Ok((peer, channels))
}

/// Asks for one more session; checks the refusal naming SESS-8.
async fn one_more_refused(peer: &mut Peer) -> Step<()> {
    let token = channel_token(0x71, peer.peek_channel());
    let (_, response) = peer
        .ask(peer.request(profile::ECHO, "one-more", token))
        .await?;
    let reason = rejected_with(&response, ConnectErrorCode::SystemInternalError)?;
    if !reason.contains("SESS-8") {
        return fail("a reason naming SESS-8", reason);
    }
    peer.expect_alive().await
}

async fn sessions_past_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, channels) = fill(t, profile::ECHO).await?;
    one_more_refused(&mut peer).await?;
    let bye = disconnect(
        DisconnectReason::PeerAppCloseCollaboration,
        pb::SessionError::None,
        "",
    );
    peer.send(&bye, channels[0]).await?;
    let token = channel_token(0x72, peer.peek_channel());
    let (_, response) = peer.ask(peer.request(profile::ECHO, "room", token)).await?;
    accepted(&response)
}

async fn pending_past_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, _) = fill(t, profile::SILENT).await?;
    one_more_refused(&mut peer).await
}

/// The most messages the suite offers before it calls the implementation's memory unbounded.
const FLOOD_MESSAGES: usize = 200_000;

async fn held_back(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("held-back").await?;
    let text = |i: usize| format!("{i:08}{}", "h".repeat(992));
    let mut sent = 0;
    loop {
        if sent == FLOOD_MESSAGES {
            return fail(
                format!(
                    "the implementation to stop reading before {FLOOD_MESSAGES} messages of 1000 bytes (TCP-8)"
                ),
                "it took them all",
            );
        }
        // A send that waits a second is held back: the implementation has stopped reading.
        let held = peer
            .say_held(channel, &text(sent), std::time::Duration::from_secs(1))
            .await?;
        sent += 1;
        if held {
            break;
        }
    }
    for i in 0..sent {
        let echoed = peer.expect_message(channel).await?;
        if echoed != text(i) {
            return fail(
                format!("echo {i} in order (MSG-2)"),
                echoed.chars().take(8).collect::<String>(),
            );
        }
    }
    peer.expect_alive().await
}

/// The profile's memory budget for the whole device (SPEC section 15).
const DEVICE_BUDGET: u64 = profile::MEMORY_BUDGET;

async fn device_budget(t: &dyn WireTarget) -> Step<()> {
    let mut filler = Peer::up(t).await?;
    let max = filler.hello.as_ref().map_or(100 << 20, |h| h.max_data_size);
    let (filled, _) = filler.open_echo("device-budget").await?;
    declare(&filler, filled, DEVICE_BUDGET, max).await?;
    // At the budget exactly: allowed.
    goes_on(&mut filler, filled).await?;
    let mut other = Peer::up(t).await?;
    let (channel, _) = other.open_echo("over-budget").await?;
    other.send_raw(first(channel, 1, 2)?).await?;
    limit_exceeded(&mut other, channel).await?;
    goes_on(&mut filler, filled).await
}

/// Connections that never send OPEN, more than the reference implementation's 64 places.
const IDLE_OPENINGS: usize = 80;

async fn openings_give_way(t: &dyn WireTarget) -> Step<()> {
    let Some(addr) = t.tcp_addr() else {
        return Err(Verdict::Unsupported("no TCP address".into()));
    };
    let mut idle = Vec::with_capacity(IDLE_OPENINGS);
    for _ in 0..IDLE_OPENINGS {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => idle.push(stream),
            Err(e) => return fail("a TCP connection", e.to_string()),
        }
    }
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("after-idle").await?;
    goes_on(&mut peer, channel).await?;
    drop(idle);
    Ok(())
}

/// Connections that each waste an opening, more than the reference implementation's allowance
/// of 256 for one address.
const WASTED_OPENINGS: usize = 300;

async fn wasted_openings_forgiven(t: &dyn WireTarget) -> Step<()> {
    let Some(addr) = t.tcp_addr() else {
        return Err(Verdict::Unsupported("no TCP address".into()));
    };
    if addr.ip() != std::net::Ipv4Addr::LOCALHOST {
        return Err(Verdict::Unsupported(
            "a target on 127.0.0.1, so that the suite can connect from a second address".into(),
        ));
    }
    // A frame's header where OPEN must come first (TCP-5): the opening is wasted.
    let header = [0xAC, 0x4D, 0x01, 0x07, 0, 0, 0, 0, 0, 0, 0, 1];
    for _ in 0..WASTED_OPENINGS {
        let socket = tokio::net::TcpSocket::new_v4()
            .map_err(|e| Verdict::fail("a socket", e.to_string()))?;
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0)))
            .map_err(|e| Verdict::Unsupported(format!("a socket bound to 127.0.0.2: {e}")))?;
        // Refused at once or dropped for its frame: either way, read to the end.
        if let Ok(mut stream) = socket.connect(addr).await
            && stream.write_all(&header).await.is_ok()
        {
            let mut sink = [0u8; 64];
            let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while let Ok(1..) = stream.read(&mut sink).await {}
            });
            if end.await.is_err() {
                return fail(
                    "a connection whose first bytes are a frame to be dropped (TCP-5)",
                    "still open after 10 s",
                );
            }
        }
    }
    // Another address is let in at once...
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("after-wasted").await?;
    goes_on(&mut peer, channel).await?;
    // ...and the wasteful one once it stops.
    crate::robustness::attack::readmitted(addr)
        .await
        .map(|_| ())
        .map_err(|why| {
            Verdict::fail(
                "127.0.0.2 let in again within 10 s of its last wasted opening (LIMIT-3)",
                why,
            )
        })
}
