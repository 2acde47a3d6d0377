//! What the implementation remembers of a link's past: the tokens of requests it has answered
//! (`SESS-1`), and, after crossing requests (`SESS-7`), which session another request for the
//! same apps and service meets.

use acm_wire::Control;
use acm_wire::pb::{self, ConnectErrorCode, DisconnectReason, SessionError};

use super::peer::{Peer, Step, accepted, channel_token, disconnect, rejected_with, suite_app};
use super::target::WireTarget;
use super::{WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/SESS-1/token-of-a-refused-request-replayed",
            ["SESS-1", "SESS-2"],
            "a valid request with the token of a request refused as invalid is rejected with SYSTEM_INTERNAL_ERROR",
            refused_token_replayed
        )
        .breaking("SESS-1"),
        wire_case!(
            "wire/SESS-1/the-last-1024-tokens-are-remembered",
            ["SESS-1"],
            "a token replayed after 1023 other requests ended is still refused",
            last_1024_remembered
        )
        .breaking("SESS-1"),
        wire_case!(
            "wire/SESS-7/an-ended-crossing-session-leaves-the-other",
            ["SESS-7", "SESS-3"],
            "after crossing requests, once the suite's session has ended, a new request with a smaller token meets the implementation's request: CONNECTED_SESSION_EXISTS",
            crossing_left_smaller
        )
        .breaking("SESS-3"),
        wire_case!(
            "wire/SESS-7/a-greater-token-beats-the-request-left",
            ["SESS-7"],
            "after crossing requests, once the suite's session has ended, a new request with a greater token than the implementation's goes on",
            crossing_left_greater
        ),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// A request refused as invalid (`SESS-2`: another target device) with `token`, on a fresh
/// channel; its answer is read.
async fn refused(peer: &mut Peer, token: [u8; 16]) -> Step<()> {
    let mut request = peer.request(profile::ECHO, "tokens", token);
    if let Some(target) = request.target.as_mut() {
        target.device_id = "not-this-device".into();
    }
    let (_, response) = peer.ask(request).await?;
    rejected_with(&response, ConnectErrorCode::SystemInternalError).map(|_| ())
}

/// A valid request with `token` is refused for its token (`SESS-1`).
async fn replay_refused(peer: &mut Peer, token: [u8; 16]) -> Step<()> {
    let (_, response) = peer
        .ask(peer.request(profile::ECHO, "replayed", token))
        .await?;
    let reason = rejected_with(&response, ConnectErrorCode::SystemInternalError)?;
    if !reason.contains("SESS-1") {
        return fail("a refusal naming SESS-1", reason);
    }
    Ok(())
}

async fn refused_token_replayed(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let token = [0xB1; 16];
    refused(&mut peer, token).await?;
    replay_refused(&mut peer, token).await
}

async fn last_1024_remembered(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let first = [0xB2; 16];
    refused(&mut peer, first).await?;
    // 1023 more requests end, each refused at once: sent BATCH at a time, the answers of each
    // batch read before the next, so that the suite reads as it goes even where a link holds
    // only a few frames on their way (Bluetooth LE), and the implementation never has more
    // answers queued than a batch (LINK-13).
    const BATCH: u32 = 32;
    let mut channels = Vec::new();
    for i in 0..1023u32 {
        let channel = peer.channel();
        let mut request = peer.request(profile::MISSING, "tokens", channel_token(0xB3, i));
        request
            .target
            .get_or_insert_with(Default::default)
            .service_name = format!("t{i}");
        peer.send(&Control::ConnectRequest(request), channel)
            .await?;
        channels.push(channel);
        if channels.len() as u32 == BATCH || i == 1022 {
            for channel in channels.drain(..) {
                let response = peer.expect_response(channel).await?;
                rejected_with(&response, ConnectErrorCode::PeerAbilityNoOncollaborate)?;
            }
        }
    }
    replay_refused(&mut peer, first).await
}

/// Crossing requests where the suite's token is greater: the implementation's request waits on
/// its channel, the suite's session is accepted, then the suite ends it. Returns the peer.
async fn crossed_then_ended(t: &dyn WireTarget) -> Step<(Peer, pb::ConnectRequest)> {
    let mut peer = Peer::up(t).await?;
    let (_, _, theirs) = peer.connect_back("origin", "cross").await?;
    let mut ours = peer.request(profile::ECHO, "cross", [0xFF; 16]);
    ours.source = Some(suite_app(peer.suite_device()));
    let (channel, response) = peer.ask(ours).await?;
    accepted(&response)?;
    let bye = disconnect(
        DisconnectReason::PeerAppCloseCollaboration,
        SessionError::None,
        "",
    );
    peer.send(&bye, channel).await?;
    Ok((peer, theirs))
}

/// Asks once more for the session of the crossing, with `token`.
async fn again(peer: &mut Peer, token: [u8; 16]) -> Step<pb::ConnectResponse> {
    let mut request = peer.request(profile::ECHO, "cross", token);
    request.source = Some(suite_app(peer.suite_device()));
    let (_, response) = peer.ask(request).await?;
    Ok(response)
}

async fn crossing_left_smaller(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, theirs) = crossed_then_ended(t).await?;
    if theirs.token.as_ref() == [0; 16] {
        return Err(Verdict::Informational(
            "the implementation's token is all zeros: no smaller one".into(),
        ));
    }
    let response = again(&mut peer, [0; 16]).await?;
    rejected_with(&response, ConnectErrorCode::ConnectedSessionExists).map(|_| ())
}

async fn crossing_left_greater(t: &dyn WireTarget) -> Step<()> {
    let (mut peer, theirs) = crossed_then_ended(t).await?;
    // Greater than any token but the one the suite's first request used (which is spent).
    let mut token = [0xFF; 16];
    token[15] = 0xFE;
    if theirs.token.as_ref() >= &token[..] {
        return Err(Verdict::Informational(
            "the implementation's token leaves no greater one".into(),
        ));
    }
    let response = again(&mut peer, token).await?;
    accepted(&response)
}
