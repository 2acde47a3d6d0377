//! Closes, messages and events (SPEC section 7).

use acm_wire::Control;
use acm_wire::pb::{self, DisconnectReason, FrameType, SessionError};

use super::peer::{Peer, Step};
use super::target::WireTarget;
use super::{WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/DISC-1/disconnect-reason",
            ["DISC-1"],
            "the app's disconnect() reaches the peer as PEER_APP_CLOSE_COLLABORATION",
            disconnect_reason
        ),
        wire_case!(
            "wire/DISC-1/destroy-reason",
            ["DISC-1"],
            "destroying the session reaches the peer as PEER_APP_EXIT",
            destroy_reason
        ),
        wire_case!(
            "wire/DISC-2/quiet-after-disconnect",
            ["DISC-2", "LINK-11"],
            "nothing comes on a channel after its DISCONNECT",
            quiet_after_disconnect
        ),
        wire_case!(
            "wire/EVT-1/event-delivered",
            ["EVT-1"],
            "the app's collaboration event arrives as COLLABORATE_EVENT",
            event_delivered
        ),
        wire_case!(
            "wire/MSG-1/longest-message",
            ["MSG-1"],
            "a message of exactly 1024 bytes is echoed intact",
            longest_message
        ),
        wire_case!(
            "wire/MSG-1/too-long-message",
            ["MSG-1"],
            "a 1025-byte message closes the session with LIMIT_EXCEEDED",
            too_long_message
        )
        .breaking("MSG-1"),
        wire_case!(
            "wire/MSG-2/order-kept",
            ["MSG-2"],
            "40 messages are echoed once each, in order",
            order_kept
        ),
    ]
}

async fn command_and_disconnect(
    t: &dyn WireTarget,
    command: &str,
    reason: DisconnectReason,
) -> Step<u32> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo(command).await?;
    peer.send(
        &Control::Message(pb::Message {
            text: command.into(),
        }),
        channel,
    )
    .await?;
    let bye = peer.expect_disconnect(channel).await?;
    if bye.reason() != reason || bye.error() != SessionError::None {
        return Err(Verdict::fail(
            format!("{} with no error", reason.as_str_name()),
            format!(
                "{} / {}",
                bye.reason().as_str_name(),
                bye.error().as_str_name()
            ),
        ));
    }
    Ok(channel)
}

async fn disconnect_reason(t: &dyn WireTarget) -> Step<()> {
    command_and_disconnect(
        t,
        profile::CMD_DISCONNECT,
        DisconnectReason::PeerAppCloseCollaboration,
    )
    .await
    .map(|_| ())
}

async fn destroy_reason(t: &dyn WireTarget) -> Step<()> {
    command_and_disconnect(t, profile::CMD_DESTROY, DisconnectReason::PeerAppExit)
        .await
        .map(|_| ())
}

async fn quiet_after_disconnect(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("quiet").await?;
    peer.send(
        &Control::Message(pb::Message {
            text: profile::CMD_DISCONNECT.into(),
        }),
        channel,
    )
    .await?;
    peer.expect_disconnect(channel).await?;
    peer.send(
        &Control::Message(pb::Message {
            text: "anyone?".into(),
        }),
        channel,
    )
    .await?;
    peer.expect_alive().await
}

async fn event_delivered(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("event").await?;
    peer.send(
        &Control::Message(pb::Message {
            text: profile::CMD_EVENT.into(),
        }),
        channel,
    )
    .await?;
    match peer.expect_on(channel, FrameType::CollaborateEvent).await? {
        Control::CollaborateEvent(event)
            if event.event_type() == pb::CollaborateEventType::SendFailure
                && event.message == profile::EVENT_MESSAGE =>
        {
            Ok(())
        }
        other => Err(Verdict::fail(
            "SEND_FAILURE \"profile event\"",
            format!("{other:?}"),
        )),
    }
}

async fn longest_message(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("long").await?;
    let text = "ü".repeat(512);
    peer.send(
        &Control::Message(pb::Message { text: text.clone() }),
        channel,
    )
    .await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != text {
        return Err(Verdict::fail(
            "the 1024-byte message echoed",
            format!("{} bytes", echoed.len()),
        ));
    }
    Ok(())
}

async fn too_long_message(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("too-long").await?;
    peer.send(
        &Control::Message(pb::Message {
            text: "x".repeat(1025),
        }),
        channel,
    )
    .await?;
    let bye = peer.expect_disconnect(channel).await?;
    if bye.reason() != DisconnectReason::NetworkDisconnected
        || bye.error() != SessionError::LimitExceeded
    {
        return Err(Verdict::fail(
            "NETWORK_DISCONNECTED with LIMIT_EXCEEDED",
            format!(
                "{} / {}",
                bye.reason().as_str_name(),
                bye.error().as_str_name()
            ),
        ));
    }
    Ok(())
}

async fn order_kept(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("order").await?;
    for i in 0..40 {
        peer.send(
            &Control::Message(pb::Message {
                text: format!("m{i}"),
            }),
            channel,
        )
        .await?;
    }
    for i in 0..40 {
        let echoed = peer.expect_message(channel).await?;
        if echoed != format!("m{i}") {
            return Err(Verdict::fail(format!("m{i}"), echoed));
        }
    }
    Ok(())
}
