//! Handshakes (SPEC section 5); closes, messages and events are in `cases_closing.rs`.

use std::time::Duration;

use acm_wire::pb::{
    self, ConnectErrorCode, DisconnectReason, FrameType, SessionError, connect_response,
};
use acm_wire::{Control, DataFragment, FrameKind};
use bytes::Bytes;

use super::peer::{
    Got, Peer, Step, accept, accepted, channel_token, describe, disconnect_is, reject,
    rejected_with, suite_app, token,
};
use super::target::WireTarget;
use super::{Needs, WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/SESS-3/echo-accepted",
            ["SESS-3", "SESS-4", "LINK-11"],
            "a request for the echo ability is accepted on its channel with its token",
            echo_accepted
        ),
        wire_case!(
            "wire/SESS-3/rejected-with-reason",
            ["SESS-3"],
            "a request for the rejecting ability gets PEER_APP_REJECTED with the app's reason",
            rejected
        ),
        wire_case!(
            "wire/SESS-3/no-oncollaborate",
            ["SESS-3"],
            "a request for an ability without handler gets PEER_ABILITY_NO_ONCOLLABORATE",
            no_handler
        ),
        wire_case!(
            "wire/SESS-3/session-exists",
            ["SESS-3"],
            "a second request for a connected session gets CONNECTED_SESSION_EXISTS",
            session_exists
        )
        .breaking("SESS-3"),
        wire_case!(
            "wire/SESS-3/no-request-for-a-session-on-the-other-link",
            ["SESS-3", "LINK-8"],
            "with a session connected on the link that is not preferred, asked to connect back for the same apps and service, the implementation sends no request: its connect() resolves CONNECTED_SESSION_EXISTS",
            no_request_across_links
        )
        .breaking("LINK-8"),
        wire_case!(
            "wire/SESS-3/peer-cannot-carry-data",
            ["SESS-3"],
            "need_send_data towards a device whose transport carries no data gets PEER_WIFI_NOT_OPEN",
            no_data
        )
        .breaking("SESS-3")
        .needing(Needs::NoData),
        wire_case!(
            "wire/SESS-1/replayed-token",
            ["SESS-1"],
            "a request reusing the token of an earlier one is rejected",
            replayed_token
        )
        .breaking("SESS-1"),
        wire_case!(
            "wire/SESS-2/empty-bundle-name",
            ["SESS-2"],
            "a request with an empty bundle name is rejected with SYSTEM_INTERNAL_ERROR",
            empty_bundle
        )
        .breaking("SESS-2"),
        wire_case!(
            "wire/SESS-2/wrong-target-device",
            ["SESS-2"],
            "a request naming another target device is rejected",
            wrong_target_device
        )
        .breaking("SESS-2"),
        wire_case!(
            "wire/SESS-2/short-token",
            ["SESS-2", "SESS-1"],
            "a request with an 8-byte token is rejected",
            short_token
        )
        .breaking("SESS-2"),
        wire_case!(
            "wire/SESS-2/too-many-parameters",
            ["SESS-2"],
            "a request with 65 parameters is rejected",
            too_many_parameters
        )
        .breaking("SESS-2"),
        wire_case!(
            "wire/SESS-6/message-before-accept",
            ["SESS-6"],
            "a MESSAGE before the session is accepted closes it with PROTOCOL_ERROR",
            message_before_accept
        )
        .breaking("SESS-6"),
        wire_case!(
            "wire/SESS-6/data-before-accept",
            ["SESS-6"],
            "DATA before the session is accepted closes it with PROTOCOL_ERROR",
            data_before_accept
        )
        .breaking("SESS-6"),
        wire_case!(
            "wire/SESS-5/requester-gives-up",
            ["SESS-5", "DISC-2"],
            "after the requester's DISCONNECT, a late accept sends nothing",
            requester_gives_up
        ),
        wire_case!(
            "wire/SESS-2/implementation-request",
            ["SESS-1", "SESS-2", "LINK-11"],
            "the implementation's own CONNECT_REQUEST is valid and its session works",
            own_request
        ),
        wire_case!(
            "wire/SESS-4/forged-response-token",
            ["SESS-4"],
            "a CONNECT_RESPONSE with another token fails the implementation's handshake",
            forged_response
        )
        .breaking("SESS-4"),
        wire_case!(
            "wire/SESS-4/late-response-discarded",
            ["SESS-4"],
            "a CONNECT_RESPONSE on a channel that awaits none is discarded",
            late_response
        )
        .breaking("SESS-4"),
        wire_case!(
            "wire/SESS-7/greater-token-wins",
            ["SESS-7"],
            "of two crossing requests, the suite's greater token goes on",
            greater_token_wins
        ),
        wire_case!(
            "wire/SESS-7/smaller-token-loses",
            ["SESS-7"],
            "of two crossing requests, the suite's smaller token gets CONNECTED_SESSION_EXISTS",
            smaller_token_loses
        ),
    ]
}

async fn echo_accepted(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.open_echo("echo").await.map(|_| ())
}

async fn rejected(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, response) = peer
        .ask(peer.request(profile::REJECT, "r", token(3)))
        .await?;
    let reason = rejected_with(&response, ConnectErrorCode::PeerAppRejected)?;
    if reason != profile::REJECT_REASON {
        return Err(Verdict::fail(
            format!("reason {:?}", profile::REJECT_REASON),
            reason,
        ));
    }
    Ok(())
}

async fn no_handler(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, response) = peer
        .ask(peer.request(profile::MISSING, "m", token(4)))
        .await?;
    rejected_with(&response, ConnectErrorCode::PeerAbilityNoOncollaborate).map(|_| ())
}

async fn session_exists(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.open_echo("twice").await?;
    let (_, response) = peer
        .ask(peer.request(profile::ECHO, "twice", token(5)))
        .await?;
    rejected_with(&response, ConnectErrorCode::ConnectedSessionExists).map(|_| ())
}

async fn no_request_across_links(t: &dyn WireTarget) -> Step<()> {
    let service = "across-links";
    let mut first = Peer::up(t).await?;
    let (origin, _) = first.open_echo("origin").await?;
    // A session on the second link, which is not the preferred one (LINK-8): only a check
    // across the device's links finds it when the implementation connects on the first.
    let mut second = Peer::up(t).await?;
    let token = channel_token(0x83, second.peek_channel());
    let (_, response) = second
        .ask(second.request(profile::ECHO, service, token))
        .await?;
    accepted(&response)?;
    // The same apps and service, from the implementation's side.
    first
        .say(origin, &format!("{}{service}", profile::CMD_CONNECT_BACK))
        .await?;
    // Its report, and no request before it: CONNECTED_SESSION_EXISTS is 0 at the API, and the
    // reason follows in a second message.
    let wanted = format!("{}0", profile::CONNECT_RESULT);
    let mut report = Vec::new();
    while report.len() < 2 {
        let frame = match first.next(super::peer::ANSWER).await? {
            Got::Frame(frame) => frame,
            Got::Ended(closure) => {
                return Err(Verdict::fail(wanted, format!("the link ended: {closure}")));
            }
        };
        if frame.kind == FrameKind::Known(FrameType::ConnectRequest) {
            return Err(Verdict::fail(
                "no request while a session between the same apps for the same service is connected, on any link (SESS-3)",
                describe(&frame),
            ));
        }
        match Control::decode(FrameType::Message, &frame.payload) {
            Some(Ok(Control::Message(message)))
                if frame.kind == FrameKind::Known(FrameType::Message)
                    && frame.channel == origin =>
            {
                report.push(message.text);
            }
            _ => {
                return Err(Verdict::fail(
                    format!("{wanted} on channel {origin}"),
                    describe(&frame),
                ));
            }
        }
        if report[0] != wanted {
            return Err(Verdict::fail(
                format!("{wanted} (CONNECTED_SESSION_EXISTS)"),
                report[0].clone(),
            ));
        }
    }
    first.expect_alive().await?;
    second.expect_alive().await
}

async fn no_data(t: &dyn WireTarget) -> Step<()> {
    if t.carries_data() {
        return Err(Verdict::Unsupported(
            "the implementation's transport carries data".into(),
        ));
    }
    let mut peer = Peer::up(t).await?;
    let mut request = peer.request(profile::ECHO, "data", token(6));
    if let Some(options) = request.options.as_mut() {
        options.need_send_data = Some(true);
    }
    let (_, response) = peer.ask(request).await?;
    rejected_with(&response, ConnectErrorCode::PeerWifiNotOpen).map(|_| ())
}

async fn replayed_token(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, first) = peer
        .ask(peer.request(profile::REJECT, "once", token(7)))
        .await?;
    rejected_with(&first, ConnectErrorCode::PeerAppRejected)?;
    let (_, again) = peer
        .ask(peer.request(profile::ECHO, "twice", token(7)))
        .await?;
    match again.result {
        Some(connect_response::Result::Rejected(_)) => Ok(()),
        other => Err(Verdict::fail(
            "the replayed token refused",
            format!("{other:?}"),
        )),
    }
}

async fn expect_invalid(
    t: &dyn WireTarget,
    edit: impl FnOnce(&mut pb::ConnectRequest),
) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let mut request = peer.request(profile::ECHO, "invalid", token(8));
    edit(&mut request);
    let (_, response) = peer.ask(request).await?;
    rejected_with(&response, ConnectErrorCode::SystemInternalError).map(|_| ())
}

async fn empty_bundle(t: &dyn WireTarget) -> Step<()> {
    expect_invalid(t, |r| {
        if let Some(source) = r.source.as_mut() {
            source.bundle_name.clear();
        }
    })
    .await
}

async fn wrong_target_device(t: &dyn WireTarget) -> Step<()> {
    expect_invalid(t, |r| {
        if let Some(target) = r.target.as_mut() {
            target.device_id = "not-this-device".into();
        }
    })
    .await
}

async fn short_token(t: &dyn WireTarget) -> Step<()> {
    expect_invalid(t, |r| r.token = Bytes::from_static(&[1; 8])).await
}

async fn too_many_parameters(t: &dyn WireTarget) -> Step<()> {
    expect_invalid(t, |r| {
        if let Some(options) = r.options.as_mut() {
            for i in 0..65 {
                options.parameters.insert(format!("key{i}"), "v".into());
            }
        }
    })
    .await
}

async fn before_accept(t: &dyn WireTarget, early: Bytes) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let request = peer.request(profile::SLOW, "early", token(9));
    peer.send(&Control::ConnectRequest(request), channel)
        .await?;
    peer.send_raw(early.clone()).await.ok();
    let bye = match peer.next(super::peer::ANSWER).await? {
        Got::Frame(frame) if frame.kind == FrameKind::Known(FrameType::Disconnect) => {
            match Control::decode(FrameType::Disconnect, &frame.payload) {
                Some(Ok(Control::Disconnect(d))) if frame.channel == channel => d,
                other => {
                    return Err(Verdict::fail(
                        "DISCONNECT on the channel",
                        format!("{other:?}"),
                    ));
                }
            }
        }
        Got::Frame(frame) => return Err(Verdict::fail("DISCONNECT", describe(&frame))),
        Got::Ended(closure) => {
            return Err(Verdict::fail(
                "DISCONNECT",
                format!("the link ended: {closure}"),
            ));
        }
    };
    if bye.error() != SessionError::ProtocolError {
        return Err(Verdict::fail(
            "SESSION_ERROR_PROTOCOL_ERROR",
            bye.error().as_str_name(),
        ));
    }
    tokio::time::sleep(peer.timers.slow + Duration::from_millis(500)).await;
    peer.expect_alive().await
}

async fn message_before_accept(t: &dyn WireTarget) -> Step<()> {
    let early = Control::Message(pb::Message {
        text: "early".into(),
    })
    .encode_frame(1, 1)
    .map_err(|e| Verdict::fail("a frame", e.to_string()))?;
    before_accept(t, early).await
}

async fn data_before_accept(t: &dyn WireTarget) -> Step<()> {
    let fragment = DataFragment {
        channel: 1,
        transfer_id: 1,
        index: 0,
        total_length: Some(4),
        last: true,
        chunk: Bytes::from_static(b"data"),
    };
    let frame = fragment
        .to_frame(1)
        .and_then(|f| f.to_bytes())
        .map_err(|e| Verdict::fail("a frame", e.to_string()))?;
    before_accept(t, frame).await
}

async fn requester_gives_up(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let request = peer.request(profile::SLOW, "give-up", token(11));
    peer.send(&Control::ConnectRequest(request), channel)
        .await?;
    let bye = pb::Disconnect {
        reason: DisconnectReason::NetworkDisconnected.into(),
        error: SessionError::InternalError.into(),
        detail: "SESS-5: the suite gave up".into(),
    };
    peer.send(&Control::Disconnect(bye), channel).await?;
    tokio::time::sleep(peer.timers.slow + Duration::from_millis(500)).await;
    peer.expect_alive().await
}

/// Asks the profile to connect back for `service` and returns (the echo session's channel, the
/// implementation's request's channel, its request).
async fn request_from_implementation(
    peer: &mut Peer,
    service: &str,
) -> Step<(u32, u32, pb::ConnectRequest)> {
    peer.connect_back("origin", service).await
}

async fn own_request(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, request) = request_from_implementation(&mut peer, "back").await?;
    if channel % 2 != 0 {
        return Err(Verdict::fail(
            "an even channel from the acceptor (LINK-11)",
            channel.to_string(),
        ));
    }
    let source = request.source.clone().unwrap_or_default();
    let target = request.target.clone().unwrap_or_default();
    if request.token.len() != 16
        || source.device_id != t.device_id()
        || target.device_id != t.suite_device_id()
    {
        return Err(Verdict::fail(
            "a 16-byte token and the two devices' ids (SESS-1, SESS-2)",
            format!("{request:?}"),
        ));
    }
    if target.service_name != "back" || target.bundle_name != suite_app("").bundle_name {
        return Err(Verdict::fail(
            "the suite's app and service \"back\"",
            format!("{target:?}"),
        ));
    }
    peer.send(&accept(request.token), channel).await?;
    expect_result(&mut peer, origin, "connected").await?;
    peer.say(channel, "ping back").await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != "ping back" {
        return Err(Verdict::fail("\"ping back\" echoed", echoed));
    }
    Ok(())
}

/// Waits for the profile's report of a connect-back and checks its result.
async fn expect_result(peer: &mut Peer, origin: u32, wanted: &str) -> Step<Option<String>> {
    let (result, reason) = peer.expect_connect_result(origin).await?;
    if result != wanted {
        return Err(Verdict::fail(
            format!("acm:connect-result {wanted}"),
            format!("acm:connect-result {result} ({reason:?})"),
        ));
    }
    Ok(reason)
}

async fn forged_response(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, request) = request_from_implementation(&mut peer, "forged").await?;
    let mut forged = request.token.to_vec();
    forged[0] ^= 0xFF;
    peer.send(&accept(Bytes::from(forged)), channel).await?;
    let bye = peer.expect_disconnect(channel).await?;
    disconnect_is(
        &bye,
        DisconnectReason::NetworkDisconnected,
        SessionError::ProtocolError,
    )?;
    // The app's connect() resolves with SYSTEM_INTERNAL_ERROR, API value 5.
    expect_result(&mut peer, origin, "5").await.map(|_| ())
}

async fn late_response(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, request) = request_from_implementation(&mut peer, "late").await?;
    let rejection = reject(
        request.token.clone(),
        ConnectErrorCode::PeerAppRejected,
        "suite",
    );
    peer.send(&rejection, channel).await?;
    peer.send(&accept(request.token), channel).await?;
    let reason = expect_result(&mut peer, origin, "1").await?;
    if reason.as_deref() != Some("suite") {
        return Err(Verdict::fail("the reason \"suite\"", format!("{reason:?}")));
    }
    peer.expect_alive().await
}

struct Crossing {
    peer: Peer,
    origin: u32,
    theirs: u32,
    request: pb::ConnectRequest,
    ours: u32,
    response: pb::ConnectResponse,
}

async fn crossing(t: &dyn WireTarget, suite_token: [u8; 16]) -> Step<Crossing> {
    let mut peer = Peer::up(t).await?;
    let (origin, theirs, request) = request_from_implementation(&mut peer, "cross").await?;
    let mut ours = peer.request(profile::ECHO, "cross", suite_token);
    ours.source = Some(suite_app(peer.suite_device()));
    let (channel, response) = peer.ask(ours).await?;
    Ok(Crossing {
        peer,
        origin,
        theirs,
        request,
        ours: channel,
        response,
    })
}

async fn greater_token_wins(t: &dyn WireTarget) -> Step<()> {
    let mut c = crossing(t, [0xFF; 16]).await?;
    accepted(&c.response)?;
    let refusal = reject(
        c.request.token,
        ConnectErrorCode::ConnectedSessionExists,
        "suite",
    );
    c.peer.send(&refusal, c.theirs).await?;
    expect_result(&mut c.peer, c.origin, "0").await?;
    c.peer.say(c.ours, "won").await?;
    let echoed = c.peer.expect_message(c.ours).await?;
    if echoed != "won" {
        return Err(Verdict::fail("\"won\" echoed", echoed));
    }
    Ok(())
}

async fn smaller_token_loses(t: &dyn WireTarget) -> Step<()> {
    let mut c = crossing(t, [0x00; 16]).await?;
    rejected_with(&c.response, ConnectErrorCode::ConnectedSessionExists)?;
    c.peer.send(&accept(c.request.token), c.theirs).await?;
    expect_result(&mut c.peer, c.origin, "connected").await?;
    c.peer.say(c.theirs, "lost").await?;
    let echoed = c.peer.expect_message(c.theirs).await?;
    if echoed != "lost" {
        return Err(Verdict::fail("\"lost\" echoed", echoed));
    }
    Ok(())
}
