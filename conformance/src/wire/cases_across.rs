//! Sessions across the links between the suite's device and the implementation's: `SESS-3` and
//! `SESS-7` compare a request with the sessions of every link to the peer, not only the link it
//! came on, and once the preferred link has gone the other one carries the new sessions
//! (`LINK-8`).

use acm_wire::Control;
use acm_wire::pb::{self, ConnectErrorCode, LinkCloseReason};

use super::peer::{Peer, Step, accept, accepted, channel_token, reject, rejected_with, suite_app};
use super::target::WireTarget;
use super::{WireCase, wire_case};
use crate::profile;
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/SESS-3/session-exists-on-the-other-link",
            ["SESS-3", "LINK-8"],
            "a request on a second link for a session connected on the first gets CONNECTED_SESSION_EXISTS",
            exists_on_the_other_link
        )
        .breaking("SESS-3"),
        wire_case!(
            "wire/SESS-7/smaller-token-loses-across-links",
            ["SESS-7", "SESS-3", "LINK-8"],
            "a request on a second link crossing the implementation's own request on the first, with a smaller token, gets CONNECTED_SESSION_EXISTS; the implementation's request goes on",
            smaller_token_loses_across_links
        ),
        wire_case!(
            "wire/SESS-7/greater-token-wins-across-links",
            ["SESS-7", "SESS-3", "LINK-8"],
            "a request on a second link crossing the implementation's own request on the first, with a greater token, is accepted",
            greater_token_wins_across_links
        ),
        wire_case!(
            "wire/SESS-1/token-waiting-on-the-other-link",
            ["SESS-1", "LINK-8"],
            "a request on a second link with the token of a request still waiting on the first gets SYSTEM_INTERNAL_ERROR; with a fresh token it is accepted",
            token_waiting_on_the_other_link
        )
        .breaking("SESS-1"),
        wire_case!(
            "wire/LINK-8/the-link-left-carries-new-sessions",
            ["LINK-8", "LINK-7"],
            "once the suite has closed the preferred of two links, the implementation connects back on the other one",
            link_left_carries_new_sessions
        ),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

async fn exists_on_the_other_link(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    first.open_echo("held").await?;
    // The second link's own sessions hold nothing for these apps and service: only a check
    // across the device's links finds the session of the first.
    let mut second = Peer::up(t).await?;
    let token = channel_token(0x84, second.peek_channel());
    let (_, response) = second
        .ask(second.request(profile::ECHO, "held", token))
        .await?;
    rejected_with(&response, ConnectErrorCode::ConnectedSessionExists)?;
    first.expect_alive().await
}

async fn token_waiting_on_the_other_link(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    let mut second = Peer::up(t).await?;
    // The silent app never answers: the request waits on the first link, within the
    // responder's 20 s (SESS-5), while the second link brings its token again.
    let token = channel_token(0x85, 1);
    let waiting = first.channel();
    let request = first.request(profile::SILENT, "waits", token);
    first
        .send(&Control::ConnectRequest(request), waiting)
        .await?;
    // The PONG comes after the request was taken: a link's frames are handled in order.
    first.expect_alive().await?;
    let (_, response) = second
        .ask(second.request(profile::ECHO, "again", token))
        .await?;
    rejected_with(&response, ConnectErrorCode::SystemInternalError)?;
    // The refusal is the token's: the same request with a fresh one is accepted.
    let fresh = channel_token(0x86, 1);
    let (_, response) = second
        .ask(second.request(profile::ECHO, "again", fresh))
        .await?;
    accepted(&response)?;
    first.expect_alive().await
}

/// Requests crossing on two links: the implementation's, on the first, and the suite's.
struct Crossing {
    first: Peer,
    second: Peer,
    /// The echo session on the first link that asked for the implementation's request.
    origin: u32,
    /// The implementation's request and its channel on the first link.
    theirs: (u32, pb::ConnectRequest),
    /// The suite's request's channel on the second link, and its answer.
    ours: (u32, pb::ConnectResponse),
}

/// Has the implementation send a request on the first link and leaves it unanswered, then
/// sends the crossing request on a second link with `token`. `None` when the implementation's
/// own token is `token`, which leaves the case nothing to compare.
async fn crossing(t: &dyn WireTarget, token: [u8; 16]) -> Step<Option<Crossing>> {
    let mut first = Peer::up(t).await?;
    let (origin, on, request) = first.connect_back("origin", "cross").await?;
    if request.token.as_ref() == token {
        return Ok(None);
    }
    let mut second = Peer::up(t).await?;
    let mut ours = second.request(profile::ECHO, "cross", token);
    ours.source = Some(suite_app(second.suite_device()));
    let ours = second.ask(ours).await?;
    Ok(Some(Crossing {
        first,
        second,
        origin,
        theirs: (on, request),
        ours,
    }))
}

/// Waits for the profile's report of its connect-back on `origin`.
async fn expect_result(peer: &mut Peer, origin: u32, wanted: &str) -> Step<()> {
    let (result, reason) = peer.expect_connect_result(origin).await?;
    if result != wanted {
        return fail(
            format!("acm:connect-result {wanted}"),
            format!("acm:connect-result {result} ({reason:?})"),
        );
    }
    Ok(())
}

/// Says `text` on `channel` and waits for the profile to echo it.
async fn echoes(peer: &mut Peer, channel: u32, text: &str) -> Step<()> {
    peer.say(channel, text).await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != text {
        return fail(format!("{text:?} echoed"), echoed);
    }
    Ok(())
}

async fn smaller_token_loses_across_links(t: &dyn WireTarget) -> Step<()> {
    let Some(mut c) = crossing(t, [0x00; 16]).await? else {
        return Err(Verdict::Informational(
            "the implementation's token is all zeros: no smaller one".into(),
        ));
    };
    rejected_with(&c.ours.1, ConnectErrorCode::ConnectedSessionExists)?;
    let (on, request) = c.theirs;
    c.first.send(&accept(request.token), on).await?;
    expect_result(&mut c.first, c.origin, "connected").await?;
    echoes(&mut c.first, on, "lost").await
}

async fn greater_token_wins_across_links(t: &dyn WireTarget) -> Step<()> {
    let Some(mut c) = crossing(t, [0xFF; 16]).await? else {
        return Err(Verdict::Informational(
            "the implementation's token is all ones: no greater one".into(),
        ));
    };
    accepted(&c.ours.1)?;
    let (on, request) = c.theirs;
    let refusal = reject(
        request.token,
        ConnectErrorCode::ConnectedSessionExists,
        "suite",
    );
    c.first.send(&refusal, on).await?;
    // CONNECTED_SESSION_EXISTS is 0 at the API.
    expect_result(&mut c.first, c.origin, "0").await?;
    echoes(&mut c.second, c.ours.0, "won").await
}

async fn link_left_carries_new_sessions(t: &dyn WireTarget) -> Step<()> {
    let mut first = Peer::up(t).await?;
    // The second link is not the preferred one; a request on it is handled all the same.
    let mut second = Peer::up(t).await?;
    let token = channel_token(0x85, second.peek_channel());
    let (origin, response) = second
        .ask(second.request(profile::ECHO, "left", token))
        .await?;
    accepted(&response)?;
    let close = Control::LinkClose(pb::LinkClose {
        reason: LinkCloseReason::Normal.into(),
        message: "bye".into(),
    });
    first.send(&close, 0).await?;
    first.expect_end().await?;
    second.expect_alive().await?;
    // The only link to the suite's device now: the profile's connect-back goes on it.
    let (on, request) = second.request_back(origin, "after").await?;
    second.send(&accept(request.token), on).await?;
    expect_result(&mut second, origin, "connected").await?;
    echoes(&mut second, on, "left").await
}
