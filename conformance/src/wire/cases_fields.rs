//! Every field of every control message, made observable: a wrong value in each changes what
//! the implementation puts on the wire, or SPEC says the field is informative (section 8.1) and
//! a case shows that any value leads to the same frames. The profile hands back what its app
//! was given (the request's names and options come back in its own request, a rejection's code
//! and reason in its report), so that the app-facing fields are seen too.

use acm_wire::pb::{self, ConnectErrorCode, DisconnectReason, LinkCloseReason, SessionError};
use acm_wire::{Control, encode_control};

use super::cases_frame::raw_frame;
use super::peer::{Peer, Step, accepted, channel_token, disconnect, rejected_with, suite_app};
use super::target::WireTarget;
use super::{WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/SESS-3/source-names-come-back",
            ["SESS-3", "SESS-2"],
            "the bundle, module and ability a request names as its source are the target of the profile's connect-back",
            source_names
        ),
        wire_case!(
            "wire/SESS-3/source-ability-makes-another-session",
            ["SESS-3"],
            "two requests that differ only in the source's ability open two sessions",
            other_source_ability
        ),
        wire_case!(
            "wire/SESS-3/target-service-makes-another-session",
            ["SESS-3"],
            "two requests that differ only in the target's service name open two sessions",
            other_service
        ),
        wire_case!(
            "wire/SESS-3/source-service-name-is-informative",
            ["SESS-3", "SESS-2"],
            "two requests that differ only in the source's service name are one session: the second gets CONNECTED_SESSION_EXISTS",
            source_service_informative
        )
        .breaking("SESS-3"),
        wire_case!(
            "wire/SESS-3/earlier-request-unanswered",
            ["SESS-3"],
            "a request for a session whose earlier request still waits for the app gets CONNECTED_SESSION_EXISTS",
            earlier_unanswered
        )
        .breaking("SESS-3"),
        wire_case!(
            "wire/SESS-3/target-bundle-selects-the-app",
            ["SESS-3"],
            "a request for another bundle of the same module and ability gets PEER_ABILITY_NO_ONCOLLABORATE",
            other_bundle
        ),
        wire_case!(
            "wire/SESS-3/target-module-selects-the-ability",
            ["SESS-3"],
            "a request for another module with the echo ability's name gets PEER_ABILITY_NO_ONCOLLABORATE",
            other_module
        ),
        wire_case!(
            "wire/CTRL-3/disconnect-reason-unspecified",
            ["CTRL-3", "DISC-2"],
            "a DISCONNECT whose reason is UNSPECIFIED still ends the session, and nothing answers it",
            disconnect_reason_zero
        )
        .breaking("CTRL-3"),
        wire_case!(
            "wire/CTRL-3/disconnect-error-unknown",
            ["CTRL-3", "DISC-2"],
            "a DISCONNECT whose error is 99 ends the session, and nothing answers it",
            disconnect_error_unknown
        ),
        wire_case!(
            "wire/DISC-1/reason-and-error-no-sender-pairs",
            ["DISC-1", "DISC-2"],
            "a DISCONNECT with the app's reason and a protocol error ends the session, and nothing answers it",
            odd_pair
        )
        .breaking("DISC-1"),
        wire_case!(
            "wire/EVT-1/event-type-unspecified",
            ["EVT-1", "CTRL-3"],
            "a COLLABORATE_EVENT of type UNSPECIFIED is dropped: not echoed, and the session goes on",
            event_type_zero
        )
        .breaking("EVT-1"),
        wire_case!(
            "wire/CTRL-3/rejection-code-unspecified",
            ["CTRL-3", "SESS-4"],
            "a rejection whose code is UNSPECIFIED fails the connect with SYSTEM_INTERNAL_ERROR",
            rejection_code_zero
        )
        .breaking("CTRL-3"),
        wire_case!(
            "wire/CTRL-3/rejection-code-unknown",
            ["CTRL-3", "SESS-4"],
            "a rejection whose code is 99 fails the connect with SYSTEM_INTERNAL_ERROR",
            rejection_code_unknown
        ),
        wire_case!(
            "wire/SESS-4/response-without-result",
            ["SESS-4"],
            "a CONNECT_RESPONSE with neither accepted nor rejected fails the connect: DISCONNECT with PROTOCOL_ERROR, SYSTEM_INTERNAL_ERROR for the app",
            response_without_result
        )
        .breaking("SESS-4"),
        wire_case!(
            "wire/CTRL-3/link-close-reason-unspecified",
            ["CTRL-3", "LINK-7"],
            "a LINK_CLOSE whose reason is UNSPECIFIED still ends the link, and nothing answers it",
            link_close_reason_zero
        )
        .breaking("CTRL-3"),
        wire_case!(
            "wire/LINK-7/frames-after-link-close",
            ["LINK-7"],
            "a PING and a MESSAGE after the suite's LINK_CLOSE get nothing back; the link ends",
            after_link_close
        )
        .breaking("LINK-7"),
        wire_case!(
            "wire/LINK-3/nonce-is-informative",
            ["LINK-3"],
            "two links whose HELLOs carry the same nonce both come up and work",
            same_nonce
        ),
        wire_case!(
            "wire/LINK-2/extension-frame-before-hello",
            ["LINK-2", "FRAME-7"],
            "an extension frame before the suite's HELLO is ignored: the link comes up",
            extension_before_hello
        ),
        wire_case!(
            "wire/FRAME-10/extension-frame-between-pieces",
            ["FRAME-10", "FRAME-7"],
            "an extension frame between the pieces of a split request closes the link with PROTOCOL_ERROR",
            extension_between_pieces
        )
        .breaking("FRAME-10"),
        wire_case!(
            "wire/FRAME-3/extension-frame-before-the-version-is-known",
            ["FRAME-3", "FRAME-7", "LINK-2"],
            "an extension frame written in version 2 before the HELLOs is ignored: no version is negotiated yet",
            extension_before_version
        ),
        wire_case!(
            "wire/FRAME-3/extension-frame-in-another-version",
            ["FRAME-3", "FRAME-7"],
            "an extension frame written in version 2 on a version 1 link closes the link with PROTOCOL_ERROR",
            extension_other_version
        )
        .breaking("FRAME-3"),
        wire_case!(
            "wire/SESS-7/crossing-request-with-equal-token",
            ["SESS-7", "SESS-1"],
            "a crossing request carrying the implementation's own token is rejected with CONNECTED_SESSION_EXISTS",
            equal_tokens
        )
        .breaking("SESS-1"),
        wire_case!(
            "wire/LINK-8/second-link-retires",
            ["LINK-8"],
            "of two links the suite dialed, the later one is closed with NORMAL once it carries no session; the first goes on",
            second_link_retires
        ),
        wire_case!(
            "wire/LINK-8/session-on-the-other-link",
            ["LINK-8"],
            "a session opened on the link that is not preferred is accepted and works 8 s later; the link closes with NORMAL once it ends",
            session_on_other_link
        )
        .breaking("LINK-8"),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// A request from the suite with `edit` made, on a fresh channel, and its answer.
pub(super) async fn ask_edited(
    peer: &mut Peer,
    ability: &str,
    service: &str,
    edit: impl FnOnce(&mut pb::ConnectRequest),
) -> Step<(u32, pb::ConnectResponse)> {
    let token = channel_token(0x90, peer.peek_channel());
    let mut request = peer.request(ability, service, token);
    edit(&mut request);
    peer.ask(request).await
}

async fn source_names(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (origin, response) = ask_edited(&mut peer, profile::ECHO, "names", |r| {
        if let Some(source) = r.source.as_mut() {
            source.bundle_name = "org.suite.other".into();
            source.module_name = "other-module".into();
            source.ability_name = "OtherAbility".into();
        }
    })
    .await?;
    accepted(&response)?;
    let (_, theirs) = peer.request_back(origin, "back").await?;
    let target = theirs.target.unwrap_or_default();
    let wanted = (
        peer.suite_device(),
        "org.suite.other",
        "other-module",
        "OtherAbility",
        "back",
    );
    let got = (
        target.device_id.as_str(),
        target.bundle_name.as_str(),
        target.module_name.as_str(),
        target.ability_name.as_str(),
        target.service_name.as_str(),
    );
    if got != wanted {
        return fail(format!("a request for {wanted:?}"), format!("{got:?}"));
    }
    Ok(())
}

async fn two_sessions(
    t: &dyn WireTarget,
    first: impl FnOnce(&mut pb::ConnectRequest),
    second: impl FnOnce(&mut pb::ConnectRequest),
) -> Step<(Peer, pb::ConnectResponse)> {
    let mut peer = Peer::up(t).await?;
    let (_, response) = ask_edited(&mut peer, profile::ECHO, "pair", first).await?;
    accepted(&response)?;
    let (_, response) = ask_edited(&mut peer, profile::ECHO, "pair", second).await?;
    Ok((peer, response))
}

async fn other_source_ability(t: &dyn WireTarget) -> Step<()> {
    let (_, response) = two_sessions(
        t,
        |_| {},
        |r| {
            if let Some(source) = r.source.as_mut() {
                source.ability_name = "SecondAbility".into();
            }
        },
    )
    .await?;
    accepted(&response)
}

async fn other_service(t: &dyn WireTarget) -> Step<()> {
    let (_, response) = two_sessions(
        t,
        |_| {},
        |r| {
            if let Some(target) = r.target.as_mut() {
                target.service_name = "pair-2".into();
            }
        },
    )
    .await?;
    accepted(&response)
}

async fn source_service_informative(t: &dyn WireTarget) -> Step<()> {
    let (_, response) = two_sessions(
        t,
        |r| {
            if let Some(source) = r.source.as_mut() {
                source.service_name = "one".into();
            }
        },
        |r| {
            if let Some(source) = r.source.as_mut() {
                source.service_name = "two".into();
            }
        },
    )
    .await?;
    rejected_with(&response, ConnectErrorCode::ConnectedSessionExists).map(|_| ())
}

async fn earlier_unanswered(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let first = peer.request(profile::SILENT, "once", channel_token(0x91, channel));
    peer.send(&Control::ConnectRequest(first), channel).await?;
    let (_, response) = ask_edited(&mut peer, profile::SILENT, "once", |_| {}).await?;
    rejected_with(&response, ConnectErrorCode::ConnectedSessionExists).map(|_| ())
}

async fn other_bundle(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, response) = ask_edited(&mut peer, profile::ECHO, "bundle", |r| {
        if let Some(target) = r.target.as_mut() {
            target.bundle_name = "org.acm.elsewhere".into();
        }
    })
    .await?;
    rejected_with(&response, ConnectErrorCode::PeerAbilityNoOncollaborate).map(|_| ())
}

async fn other_module(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, response) = ask_edited(&mut peer, profile::ECHO, "module", |r| {
        if let Some(target) = r.target.as_mut() {
            target.module_name = "elsewhere".into();
        }
    })
    .await?;
    rejected_with(&response, ConnectErrorCode::PeerAbilityNoOncollaborate).map(|_| ())
}

/// Ends an echo session with `bye` and checks that nothing answers, and that the session is
/// over (a message on it is not echoed).
async fn ended_quietly(t: &dyn WireTarget, bye: Control) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("bye").await?;
    peer.send(&bye, channel).await?;
    peer.say(channel, "anyone?").await?;
    peer.expect_alive().await
}

async fn disconnect_reason_zero(t: &dyn WireTarget) -> Step<()> {
    let bye = Control::Disconnect(pb::Disconnect {
        reason: 0,
        error: 0,
        detail: String::new(),
    });
    ended_quietly(t, bye).await
}

async fn disconnect_error_unknown(t: &dyn WireTarget) -> Step<()> {
    let bye = Control::Disconnect(pb::Disconnect {
        reason: DisconnectReason::NetworkDisconnected.into(),
        error: 99,
        detail: String::new(),
    });
    ended_quietly(t, bye).await
}

async fn odd_pair(t: &dyn WireTarget) -> Step<()> {
    let bye = disconnect(
        DisconnectReason::PeerAppCloseCollaboration,
        SessionError::ProtocolError,
        "an app's reason with a failure",
    );
    ended_quietly(t, bye).await
}

async fn event_type_zero(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("events").await?;
    let unspecified = Control::CollaborateEvent(pb::CollaborateEvent {
        event_type: 0,
        message: "no type".into(),
    });
    peer.send(&unspecified, channel).await?;
    peer.say(channel, "after").await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != "after" {
        return fail("\"after\" echoed, and no event first", echoed);
    }
    Ok(())
}

/// Rejects the implementation's connect-back with `code`; returns the code its app got.
async fn connect_result_for(t: &dyn WireTarget, code: i32) -> Step<String> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, request) = peer.connect_back("origin", "codes").await?;
    let answer = Control::ConnectResponse(pb::ConnectResponse {
        token: request.token,
        result: Some(pb::connect_response::Result::Rejected(pb::Rejected {
            code,
            reason: "coded".into(),
        })),
    });
    peer.send(&answer, channel).await?;
    let (result, _) = peer.expect_connect_result(origin).await?;
    peer.expect_alive().await?;
    Ok(result)
}

async fn rejection_code_zero(t: &dyn WireTarget) -> Step<()> {
    let result = connect_result_for(t, 0).await?;
    if result != "5" {
        return fail("acm:connect-result 5 (SYSTEM_INTERNAL_ERROR)", result);
    }
    Ok(())
}

async fn rejection_code_unknown(t: &dyn WireTarget) -> Step<()> {
    let result = connect_result_for(t, 99).await?;
    if result != "5" {
        return fail("acm:connect-result 5 (SYSTEM_INTERNAL_ERROR)", result);
    }
    Ok(())
}

async fn response_without_result(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (origin, channel, request) = peer.connect_back("origin", "no-result").await?;
    let answer = Control::ConnectResponse(pb::ConnectResponse {
        token: request.token,
        result: None,
    });
    peer.send(&answer, channel).await?;
    let bye = peer.expect_disconnect(channel).await?;
    super::peer::disconnect_is(
        &bye,
        DisconnectReason::NetworkDisconnected,
        SessionError::ProtocolError,
    )?;
    let (result, _) = peer.expect_connect_result(origin).await?;
    if result != "5" {
        return fail("acm:connect-result 5 (SYSTEM_INTERNAL_ERROR)", result);
    }
    peer.expect_alive().await
}

async fn link_close_reason_zero(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.open_echo("closing").await?;
    let close = Control::LinkClose(pb::LinkClose {
        reason: 0,
        message: String::new(),
    });
    peer.send(&close, 0).await?;
    peer.expect_end().await
}

async fn after_link_close(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (channel, _) = peer.open_echo("after-close").await?;
    let close = Control::LinkClose(pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "bye".into(),
    });
    peer.send(&close, 0).await?;
    // These may not reach it at all (the transport may have ended): both are fine.
    let _ = peer.send(&Control::Ping(pb::Ping { value: 5 }), 0).await;
    let _ = peer.say(channel, "too late").await;
    peer.expect_end().await
}

async fn same_nonce(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    let mut second = Peer::up(t).await?;
    first.open_echo("nonce-1").await?;
    second.open_echo("nonce-2").await.map(|_| ())
}

async fn extension_before_hello(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    peer.send_raw(raw_frame(1, 0xA5, 0, 0, b"before hello"))
        .await?;
    let hello = peer.default_hello();
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_hello().await?;
    peer.expect_alive().await?;
    peer.open_echo("extension").await.map(|_| ())
}

async fn extension_before_version(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::open(t).await?;
    peer.send_raw(raw_frame(2, 0xA5, 0, 0, b"from version 2"))
        .await?;
    let hello = peer.default_hello();
    peer.send(&Control::Hello(hello), 0).await?;
    peer.expect_hello().await?;
    peer.expect_alive().await
}

async fn extension_between_pieces(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let channel = peer.channel();
    let request = Control::ConnectRequest(peer.request(profile::ECHO, "split", [0x92; 16]));
    let frames = encode_control(&request, 1, channel, 52)
        .map_err(|e| Verdict::fail("an encodable request", e.to_string()))?;
    let (Some(piece), true) = (frames.first(), frames.len() > 1) else {
        return fail("a request in several pieces", frames.len().to_string());
    };
    peer.send_raw(piece.clone()).await?;
    peer.send_raw(raw_frame(1, 0xA5, 0, 0, b"in between"))
        .await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn extension_other_version(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    peer.send_raw(raw_frame(2, 0xA5, 0, 0, b"version 2"))
        .await?;
    peer.expect_link_close(LinkCloseReason::ProtocolError).await
}

async fn equal_tokens(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let (_, _, theirs) = peer.connect_back("origin", "cross").await?;
    let token: [u8; 16] = theirs.token.as_ref().try_into().unwrap_or([0; 16]);
    let mut ours = peer.request(profile::ECHO, "cross", token);
    ours.source = Some(suite_app(peer.suite_device()));
    let (_, response) = peer.ask(ours).await?;
    rejected_with(&response, ConnectErrorCode::ConnectedSessionExists).map(|_| ())
}

/// How long a link that is not preferred may stay open without sessions (the reference
/// implementation's grace is 5 s, `LINK-8`).
const RETIRE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// How long the suite keeps a session on a link that is not preferred: past the reference
/// implementation's grace.
const LINGER: std::time::Duration = std::time::Duration::from_secs(8);

async fn expect_retired(peer: &mut Peer) -> Step<()> {
    let (_, control) = peer.expect(pb::FrameType::LinkClose, RETIRE_WITHIN).await?;
    match control {
        Control::LinkClose(close) if close.reason() == LinkCloseReason::Normal => {
            peer.expect_end().await
        }
        other => fail("LINK_CLOSE NORMAL (LINK-8)", format!("{other:?}")),
    }
}

async fn second_link_retires(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    first.open_echo("kept").await?;
    let mut second = Peer::up(t).await?;
    expect_retired(&mut second).await?;
    first.expect_alive().await
}

async fn session_on_other_link(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    first.open_echo("kept").await?;
    let mut second = Peer::up(t).await?;
    let (channel, _) = second.open_echo("other").await?;
    // The link stays while it carries the session, however long. Both links show signs of life
    // meanwhile, so that the implementation's keepalive (LINK-6) has no reason to close them.
    let until = tokio::time::Instant::now() + LINGER;
    loop {
        let now = tokio::time::Instant::now();
        if now >= until {
            break;
        }
        tokio::time::sleep((until - now).min(second.timers.keepalive)).await;
        first.expect_alive().await?;
        second.expect_alive().await?;
    }
    second.say(channel, "works").await?;
    if second.expect_message(channel).await? != "works" {
        return fail("\"works\" echoed", "something else");
    }
    let bye = disconnect(
        DisconnectReason::PeerAppCloseCollaboration,
        SessionError::None,
        "",
    );
    second.send(&bye, channel).await?;
    expect_retired(&mut second).await?;
    first.expect_alive().await
}
