//! The limits the implementation keeps to when it sends, at the limit and one past it: the
//! peer's announced frame and data sizes, and the lengths SPEC fixes for messages, event
//! messages, rejection reasons and parameters. The profile's commands (SPEC section 15) make
//! the implementation try; one past a limit, its API refuses or cuts, and nothing over the
//! limit reaches the wire (every body the suite receives is checked against its rules).

use std::collections::BTreeMap;

use acm_wire::pb::{self, CollaborateEventType, ConnectErrorCode};
use bytes::Bytes;

use super::peer::{Peer, Step, channel_token, rejected_with};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/LINK-5/frames-at-the-announced-max",
            ["LINK-5", "FRAME-10"],
            "with the suite's max_frame_size at 1000, a 1024-byte message comes back in pieces of exactly 1000 bytes and no more",
            frames_at_max
        ),
        wire_case!(
            "wire/DATA-6/echo-at-the-announced-max-data-size",
            ["DATA-6", "LINK-5"],
            "with the suite's max_data_size at 1000, a 1000-byte transfer is echoed",
            echo_at_max_data
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/DATA-6/echo-past-the-announced-max-data-size",
            ["DATA-6", "LINK-5"],
            "with the suite's max_data_size at 1000, a 1001-byte transfer is not echoed: the profile reports the refusal, 401",
            echo_past_max_data
        )
        .needing(Needs::Data),
        wire_case!(
            "wire/MSG-1/sent-message-at-1024",
            ["MSG-1"],
            "asked for a 1024-byte message, the implementation sends it whole",
            message_at_limit
        ),
        wire_case!(
            "wire/MSG-1/sent-message-past-1024",
            ["MSG-1"],
            "asked for a 1025-byte message, the implementation sends none: the profile reports the refusal, 401",
            message_past_limit
        ),
        wire_case!(
            "wire/CTRL-4/sent-event-message-at-1024",
            ["CTRL-4", "EVT-1"],
            "asked for an event with a 1024-byte message, the implementation sends it whole",
            event_at_limit
        ),
        wire_case!(
            "wire/CTRL-4/sent-event-message-past-1024",
            ["CTRL-4", "EVT-1"],
            "asked for an event with a 1025-byte message, the implementation sends at most 1024 bytes of it",
            event_past_limit
        ),
        wire_case!(
            "wire/CTRL-4/sent-reason-at-1024",
            ["CTRL-4", "SESS-3"],
            "a rejection whose reason the app makes 1024 bytes long carries it whole",
            reason_at_limit
        ),
        wire_case!(
            "wire/CTRL-4/sent-reason-past-1024",
            ["CTRL-4", "SESS-3"],
            "a rejection whose reason the app makes 1025 bytes long carries at most 1024 bytes of it",
            reason_past_limit
        ),
        wire_case!(
            "wire/SESS-2/sent-parameters-at-the-limit",
            ["SESS-2", "FRAME-10"],
            "a connect-back copies 64 parameters with 1023-byte keys and values into the implementation's own request",
            parameters_at_limit
        ),
        wire_case!(
            "wire/DATA-8/data-to-a-device-that-carries-none",
            ["DATA-8", "SESS-3"],
            "a device whose transport carries no data takes a transfer but sends none back: the profile reports the refusal, 801",
            no_data_device
        )
        .needing(Needs::NoData),
        wire_case!(
            "wire/DATA-8/broken-data-to-a-device-that-carries-none",
            ["DATA-8", "DATA-4"],
            "a device whose transport carries no data still checks fragments: one of a transfer never begun closes the session",
            no_data_broken
        )
        .breaking("DATA-4")
        .needing(Needs::NoData),
        wire_case!(
            "wire/SESS-3/a-device-without-data-connects-back",
            ["SESS-3", "DATA-8"],
            "a device whose transport carries no data still requests sessions that do not ask for need_send_data",
            no_data_connects
        )
        .needing(Needs::NoData),
        wire_case!(
            "wire/DATA-8/data-without-need-send-data",
            ["DATA-8"],
            "a session opened without need_send_data carries data both ways",
            data_without_need
        )
        .needing(Needs::Data),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

async fn frames_at_max(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.max_frame_size = 1000).await?;
    let (channel, _) = peer.open_echo("announced-max").await?;
    let text = "a".repeat(1024);
    peer.say(channel, &text).await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != text {
        return fail("the message echoed", format!("{} bytes", echoed.len()));
    }
    // Peer::next fails any frame over the 1000 bytes announced; the pieces fill them.
    if peer.largest_frame != 1000 {
        return fail(
            "pieces of exactly 1000 bytes but the last (FRAME-10)",
            format!("the largest frame had {} bytes", peer.largest_frame),
        );
    }
    Ok(())
}

/// Expects the profile's report of a call refused with `code` (SPEC section 15).
async fn expect_refused(peer: &mut Peer, channel: u32, code: u32) -> Step<()> {
    let event = peer.expect_event(channel).await?;
    let wanted = format!("{}{code}", profile::SEND_FAILED);
    if event.event_type() != CollaborateEventType::SendFailure || event.message != wanted {
        return fail(format!("SEND_FAILURE {wanted:?}"), format!("{event:?}"));
    }
    Ok(())
}

async fn echo_at_max_data(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.max_data_size = 1000).await?;
    let (channel, _) = peer.open_echo("data-max").await?;
    let data = Bytes::from(vec![0x44; 1000]);
    peer.send_data(channel, 1, data.clone()).await?;
    if peer.expect_data(channel).await? != data {
        return fail("1000 bytes echoed", "other bytes");
    }
    Ok(())
}

async fn echo_past_max_data(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up_with(t, |h| h.max_data_size = 1000).await?;
    let (channel, _) = peer.open_echo("data-max").await?;
    let data = Bytes::from(vec![0x44; 1001]);
    peer.send_data(channel, 1, data).await?;
    expect_refused(&mut peer, channel, 401).await
}

async fn command(t: &dyn WireTarget, text: &str) -> Step<(Peer, u32)> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("commands").await?;
    peer.say(channel, text).await?;
    Ok((peer, channel))
}

async fn message_at_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, channel) = command(t, &format!("{}1024", profile::CMD_MESSAGE_OF)).await?;
    let got = peer.expect_message(channel).await?;
    if got != "m".repeat(1024) {
        return fail("1024 bytes of m", format!("{} bytes", got.len()));
    }
    Ok(())
}

async fn message_past_limit(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, channel) = command(t, &format!("{}1025", profile::CMD_MESSAGE_OF)).await?;
    expect_refused(&mut peer, channel, 401).await
}

async fn event_of(t: &dyn WireTarget, len: usize) -> Step<String> {
    let (mut peer, channel) = command(t, &format!("{}{len}", profile::CMD_EVENT_OF)).await?;
    let event = peer.expect_event(channel).await?;
    if event.event_type() != CollaborateEventType::SendFailure {
        return fail("SEND_FAILURE", format!("{event:?}"));
    }
    Ok(event.message)
}

async fn event_at_limit(t: &dyn WireTarget) -> Step<()> {
    let message = event_of(t, 1024).await?;
    if message != "e".repeat(1024) {
        return fail("1024 bytes of e", format!("{} bytes", message.len()));
    }
    Ok(())
}

async fn event_past_limit(t: &dyn WireTarget) -> Step<()> {
    let message = event_of(t, 1025).await?;
    if message.len() > 1024 || message.bytes().any(|b| b != b'e') {
        return fail(
            "at most 1024 bytes of e",
            format!("{} bytes", message.len()),
        );
    }
    Ok(())
}

async fn reason_of(t: &dyn WireTarget, len: usize) -> Step<String> {
    let mut peer = Peer::up(t).await?;
    let token = channel_token(0x80, peer.peek_channel());
    let mut request = peer.request(profile::REJECT, "reasons", token);
    request
        .options
        .get_or_insert_with(Default::default)
        .parameters
        .insert(profile::REASON_LENGTH.into(), len.to_string());
    let (_, response) = peer.ask(request).await?;
    rejected_with(&response, ConnectErrorCode::PeerAppRejected)
}

async fn reason_at_limit(t: &dyn WireTarget) -> Step<()> {
    let reason = reason_of(t, 1024).await?;
    if reason != "r".repeat(1024) {
        return fail("1024 bytes of r", format!("{} bytes", reason.len()));
    }
    Ok(())
}

async fn reason_past_limit(t: &dyn WireTarget) -> Step<()> {
    let reason = reason_of(t, 1025).await?;
    if reason.len() > 1024 || reason.bytes().any(|b| b != b'r') {
        return fail("at most 1024 bytes of r", format!("{} bytes", reason.len()));
    }
    Ok(())
}

async fn parameters_at_limit(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let parameters: BTreeMap<String, String> = (0..64u8)
        .map(|i| {
            let key = format!("{i:02}{}", "k".repeat(1021));
            (key, "v".repeat(1023))
        })
        .collect();
    let token = channel_token(0x81, peer.peek_channel());
    let mut request = peer.request(profile::ECHO, "parameters", token);
    request.options = Some(pb::ConnectOptions {
        parameters: parameters.clone(),
        ..Default::default()
    });
    let (origin, response) = peer.ask(request).await?;
    super::peer::accepted(&response)?;
    let (_, theirs) = peer.request_back(origin, "back").await?;
    let got = theirs.options.unwrap_or_default().parameters;
    if got != parameters {
        return fail(
            "the 64 parameters, unchanged",
            format!("{} of them", got.len()),
        );
    }
    Ok(())
}

async fn no_data_device(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("no-data").await?;
    peer.send_data(channel, 1, Bytes::from_static(b"taken"))
        .await?;
    expect_refused(&mut peer, channel, 801).await
}

async fn no_data_broken(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("no-data").await?;
    let fragment = acm_wire::DataFragment {
        channel,
        transfer_id: 3,
        index: 2,
        total_length: None,
        last: true,
        chunk: Bytes::from_static(b"orphan"),
    };
    let frame = fragment
        .to_frame(1)
        .and_then(|f| f.to_bytes())
        .map_err(|e| Verdict::fail("a frame", e.to_string()))?;
    peer.send_raw(frame).await?;
    let bye = peer.expect_disconnect(channel).await?;
    super::peer::disconnect_is(
        &bye,
        pb::DisconnectReason::NetworkDisconnected,
        pb::SessionError::ProtocolError,
    )?;
    peer.expect_alive().await
}

async fn data_without_need(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let token = channel_token(0x82, peer.peek_channel());
    let mut request = peer.request(profile::ECHO, "unasked", token);
    request.options = Some(pb::ConnectOptions {
        need_send_data: Some(false),
        ..Default::default()
    });
    let (channel, response) = peer.ask(request).await?;
    super::peer::accepted(&response)?;
    let data = Bytes::from_static(b"data anyway");
    peer.send_data(channel, 1, data.clone()).await?;
    if peer.expect_data(channel).await? != data {
        return fail("the transfer echoed", "other bytes");
    }
    Ok(())
}

async fn no_data_connects(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, _, request) = peer.connect_back("origin", "no-data-back").await?;
    let options = request.options.unwrap_or_default();
    if options.need_send_data == Some(true) {
        return fail(
            "a request without need_send_data (SESS-3)",
            format!("{options:?}"),
        );
    }
    Ok(())
}
