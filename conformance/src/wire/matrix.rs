//! Every session frame in every state of the channel it arrives on, on that channel and on
//! another one, with what SPEC says happens (the table of section 5.7): made by construction,
//! so that no pair is left out. Also the helpers that make families of cases from tables.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use acm_wire::pb::{self, CollaborateEventType, ConnectErrorCode, DisconnectReason, SessionError};
use acm_wire::{Control, DataFragment};
use bytes::{Bytes, BytesMut};

use super::peer::{
    Peer, Step, accept, accepted, channel_token, disconnect, disconnect_is, event, message, reject,
    rejected_with,
};
use super::target::WireTarget;
use super::{CaseFuture, Needs, WireCase};
use crate::profile;
use crate::report::{Case, Verdict};

/// The states of a channel, as the implementation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No side has opened it: the suite's next channel.
    Never,
    /// The implementation's request awaits the suite's answer (REQUESTED).
    Requested,
    /// The suite's request awaits the implementation's app (INCOMING).
    Incoming,
    /// The suite's request was accepted (CONNECTED).
    Connected,
    /// The suite's request was rejected (closed).
    Rejected,
    /// The suite disconnected the session (closed).
    Disconnected,
    /// The implementation's app destroyed the session (closed).
    Destroyed,
    /// The suite rejected the implementation's request (closed, the implementation's channel).
    Answered,
}

const STATES: [(State, &str, &str); 8] = [
    (State::Never, "never-opened", "never opened"),
    (
        State::Requested,
        "request-sent",
        "whose request the implementation sent",
    ),
    (
        State::Incoming,
        "request-received",
        "whose request the implementation received",
    ),
    (State::Connected, "connected", "connected"),
    (State::Rejected, "rejected", "the implementation rejected"),
    (
        State::Disconnected,
        "disconnected",
        "the suite disconnected",
    ),
    (
        State::Destroyed,
        "destroyed",
        "the implementation's app destroyed",
    ),
    (
        State::Answered,
        "answered",
        "whose request from the implementation the suite rejected",
    ),
];

/// The session frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
    Message,
    /// A FIRST fragment, not LAST, of a new transfer.
    DataFirst,
    /// A fragment neither FIRST nor LAST of a transfer not in progress.
    DataMiddle,
    /// A LAST fragment, not FIRST, of a transfer not in progress.
    DataLast,
    Event,
    Disconnect,
}

const KINDS: [(Kind, &str, &str); 8] = [
    (Kind::Request, "connect-request", "a CONNECT_REQUEST"),
    (Kind::Response, "connect-response", "a CONNECT_RESPONSE"),
    (Kind::Message, "message", "a MESSAGE"),
    (Kind::DataFirst, "data-first", "a FIRST DATA fragment"),
    (Kind::DataMiddle, "data-middle", "a middle DATA fragment"),
    (Kind::DataLast, "data-last", "a LAST DATA fragment"),
    (Kind::Event, "collaborate-event", "a COLLABORATE_EVENT"),
    (Kind::Disconnect, "disconnect", "a DISCONNECT"),
];

/// What SPEC says the implementation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// LINK_CLOSE `PROTOCOL_ERROR`.
    CloseLink,
    /// DISCONNECT `NETWORK_DISCONNECTED` / `PROTOCOL_ERROR` on the channel.
    SessionError,
    /// Nothing: the frame is dropped and the link goes on.
    Discarded,
    /// The session or request ends, and nothing answers.
    Ended,
    /// A new session: the request is answered.
    NewSession,
    /// The implementation's request is accepted: the session works.
    Connected,
    /// The app gets it and the profile echoes it.
    Echoed,
}

impl Outcome {
    fn describe(self) -> &'static str {
        match self {
            Self::CloseLink => "closes the link with PROTOCOL_ERROR",
            Self::SessionError => "closes the session with PROTOCOL_ERROR",
            Self::Discarded => "is discarded",
            Self::Ended => "ends it, and nothing answers",
            Self::NewSession => "opens a session",
            Self::Connected => "connects it",
            Self::Echoed => "is delivered (and echoed)",
        }
    }
}

/// What SPEC says happens to `kind` on a channel in `state` (or on another channel, never
/// opened), the rules that say so, and the rule the frame breaks, if any.
fn expected(
    state: State,
    kind: Kind,
    elsewhere: bool,
) -> (Outcome, &'static [&'static str], Option<&'static str>) {
    use Kind as K;
    use Outcome as O;
    use State as S;
    const LINK_11: &[&str] = &["LINK-11"];
    if elsewhere {
        return (O::CloseLink, LINK_11, Some("LINK-11"));
    }
    let data = matches!(
        kind,
        K::Message | K::DataFirst | K::DataMiddle | K::DataLast | K::Event
    );
    match (state, kind) {
        (S::Never, K::Request) => (O::NewSession, &["LINK-11", "SESS-3"], None),
        (S::Never, K::Response) => (O::CloseLink, &["LINK-11", "SESS-4"], Some("LINK-11")),
        (S::Never, _) => (O::CloseLink, LINK_11, Some("LINK-11")),
        (S::Answered, K::Request) | (_, K::Request) => (O::CloseLink, LINK_11, Some("LINK-11")),
        (S::Requested, K::Response) => (O::Connected, &["SESS-4"], None),
        (S::Answered, K::Response) => (O::Discarded, &["SESS-4", "LINK-11"], Some("SESS-4")),
        (_, K::Response) => (O::CloseLink, &["LINK-11", "SESS-4"], Some("LINK-11")),
        (S::Requested | S::Incoming, K::Disconnect) => (O::Ended, &["SESS-5", "DISC-2"], None),
        (S::Requested | S::Incoming, _) => (O::SessionError, &["SESS-6"], Some("SESS-6")),
        (S::Connected, K::Message) => (O::Echoed, &["MSG-1"], None),
        (S::Connected, K::Event) => (O::Echoed, &["EVT-1"], None),
        (S::Connected, K::DataFirst) => (O::Echoed, &["DATA-2"], None),
        (S::Connected, K::DataMiddle | K::DataLast) => {
            (O::SessionError, &["DATA-4"], Some("DATA-4"))
        }
        (S::Connected, K::Disconnect) => (O::Ended, &["DISC-2"], None),
        (S::Disconnected, _) => (O::Discarded, &["DISC-2", "LINK-11"], Some("DISC-2")),
        (S::Destroyed, K::Disconnect) => (O::Discarded, &["DISC-2", "LINK-11"], Some("DISC-2")),
        (S::Rejected | S::Destroyed | S::Answered, _) if data => {
            (O::Discarded, &["SESS-6", "LINK-11"], Some("SESS-6"))
        }
        (_, _) => (O::Discarded, &["LINK-11", "DISC-2"], None),
    }
}

pub(super) fn cases() -> Vec<WireCase> {
    let mut all = Vec::new();
    for (si, (state, state_slug, state_text)) in STATES.iter().enumerate() {
        for (ki, (kind, kind_slug, kind_text)) in KINDS.iter().enumerate() {
            for elsewhere in [false, true] {
                let (outcome, rules, breaks) = expected(*state, *kind, elsewhere);
                let (suffix, on) = if elsewhere {
                    (
                        "-on-another-channel",
                        "on a channel never opened, beside one",
                    )
                } else {
                    ("", "on a channel")
                };
                let id = intern(format!(
                    "wire/{}/matrix/{state_slug}/{kind_slug}{suffix}",
                    rules[0]
                ));
                let title = intern(format!(
                    "{kind_text} {on} {state_text} {}",
                    outcome.describe()
                ));
                let case = Case::new(id, rules, title);
                let param = u32::try_from(si * 16 + ki * 2).unwrap_or(0) + u32::from(elsewhere);
                all.push(WireCase {
                    case: match breaks {
                        Some(rule) => case.breaking(rule),
                        None => case,
                    },
                    needs: if *kind == Kind::DataFirst && !elsewhere && *state == State::Connected {
                        Needs::Data
                    } else {
                        Needs::Nothing
                    },
                    param,
                    run: |target, param| Box::pin(run(target, param)),
                });
            }
        }
    }
    all
}

/// A link with a channel in the state a case needs.
struct Scene {
    peer: Peer,
    /// The channel in that state.
    channel: u32,
    /// A channel never opened, beside it.
    elsewhere: u32,
    /// The echo session a connect-back was asked on.
    origin: u32,
    /// The implementation's token, for its own request.
    token: Bytes,
}

/// Sets up `state` on a new link, its sessions for a service of the case's own (`param`): a
/// link of an earlier case that a slow transport has not taken down yet then holds no session
/// the implementation could take for this one's (`SESS-3`).
async fn scene(t: &dyn WireTarget, state: State, param: u32) -> Step<Scene> {
    let service = format!("matrix-{param}");
    let service = service.as_str();
    let mut peer = Peer::up(t).await?;
    let mut origin = 0;
    let mut token = Bytes::from_static(&[0xAB; 16]);
    let channel = match state {
        State::Never => peer.peek_channel(),
        State::Requested | State::Answered => {
            let (from, on, request) = peer.connect_back("origin", service).await?;
            origin = from;
            token = request.token;
            if state == State::Answered {
                let no = reject(token.clone(), ConnectErrorCode::PeerAppRejected, "matrix");
                peer.send(&no, on).await?;
                let (result, _) = peer.expect_connect_result(origin).await?;
                if result != "1" {
                    return fail("acm:connect-result 1", result);
                }
            }
            on
        }
        State::Incoming => {
            let channel = peer.channel();
            let request = peer.request(profile::SILENT, service, channel_token(0xA0, channel));
            peer.send(&Control::ConnectRequest(request), channel)
                .await?;
            channel
        }
        State::Connected | State::Disconnected | State::Destroyed => {
            let (channel, _) = peer.open_echo(service).await?;
            if state == State::Disconnected {
                let bye = disconnect(
                    DisconnectReason::PeerAppCloseCollaboration,
                    SessionError::None,
                    "",
                );
                peer.send(&bye, channel).await?;
            }
            if state == State::Destroyed {
                peer.say(channel, profile::CMD_DESTROY).await?;
                let bye = peer.expect_disconnect(channel).await?;
                disconnect_is(&bye, DisconnectReason::PeerAppExit, SessionError::None)?;
            }
            channel
        }
        State::Rejected => {
            let token = channel_token(0xA1, peer.peek_channel());
            let (channel, response) = peer
                .ask(peer.request(profile::REJECT, service, token))
                .await?;
            rejected_with(&response, ConnectErrorCode::PeerAppRejected)?;
            channel
        }
    };
    // Beside it: the same side's channel after the next one (the next one of the suite's, for a
    // channel never opened), which nobody has opened.
    let elsewhere = match state {
        State::Requested | State::Answered => channel + 2,
        State::Never => channel + 2,
        _ => channel + 4,
    };
    Ok(Scene {
        peer,
        channel,
        elsewhere,
        origin,
        token,
    })
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

fn fragment(
    channel: u32,
    index: u32,
    total: Option<u64>,
    last: bool,
    chunk: &'static [u8],
) -> Step<Bytes> {
    let mut out = BytesMut::new();
    DataFragment {
        channel,
        transfer_id: 1,
        index,
        total_length: total,
        last,
        chunk: Bytes::from_static(chunk),
    }
    .encode(1, &mut out)
    .map_err(|e| Verdict::fail("an encodable fragment", e.to_string()))?;
    Ok(out.freeze())
}

/// Sends a frame of `kind` on `channel`.
async fn send_kind(scene: &mut Scene, kind: Kind, channel: u32) -> Step<()> {
    let peer = &mut scene.peer;
    match kind {
        Kind::Request => {
            let token = channel_token(0xA2, channel);
            let request = peer.request(profile::ECHO, "matrix-new", token);
            peer.send(&Control::ConnectRequest(request), channel).await
        }
        Kind::Response => peer.send(&accept(scene.token.clone()), channel).await,
        Kind::Message => peer.send(&message("matrix"), channel).await,
        Kind::DataFirst => {
            peer.send_raw(fragment(channel, 0, Some(6), false, b"abc")?)
                .await
        }
        Kind::DataMiddle => {
            peer.send_raw(fragment(channel, 1, None, false, b"def")?)
                .await
        }
        Kind::DataLast => {
            peer.send_raw(fragment(channel, 1, None, true, b"def")?)
                .await
        }
        Kind::Event => {
            let sent = event(CollaborateEventType::SendFailure, "matrix event");
            peer.send(&sent, channel).await
        }
        Kind::Disconnect => {
            let bye = disconnect(
                DisconnectReason::PeerAppCloseCollaboration,
                SessionError::None,
                "",
            );
            peer.send(&bye, channel).await
        }
    }
}

async fn run(t: &dyn WireTarget, param: u32) -> Step<()> {
    let (si, ki, elsewhere) = (
        param as usize / 16,
        (param as usize % 16) / 2,
        param % 2 == 1,
    );
    let (Some((state, _, _)), Some((kind, _, _))) = (STATES.get(si), KINDS.get(ki)) else {
        return fail("a known state and frame", param.to_string());
    };
    let (outcome, _, _) = expected(*state, *kind, elsewhere);
    let mut scene = scene(t, *state, param).await?;
    let on = if elsewhere {
        scene.elsewhere
    } else {
        scene.channel
    };
    send_kind(&mut scene, *kind, on).await?;
    let (channel, origin) = (scene.channel, scene.origin);
    let peer = &mut scene.peer;
    match outcome {
        Outcome::CloseLink => {
            peer.expect_link_close(pb::LinkCloseReason::ProtocolError)
                .await
        }
        Outcome::SessionError => {
            let bye = peer.expect_disconnect(channel).await?;
            disconnect_is(
                &bye,
                DisconnectReason::NetworkDisconnected,
                SessionError::ProtocolError,
            )?;
            if *state == State::Requested {
                expect_result(peer, origin, "5").await?;
            }
            peer.expect_alive().await
        }
        Outcome::Discarded => peer.expect_alive().await,
        Outcome::Ended => {
            match state {
                State::Requested => expect_result(peer, origin, "5").await?,
                // No late answer from the responder's timer either.
                State::Incoming => {
                    tokio::time::sleep(
                        peer.timers.responder + std::time::Duration::from_millis(500),
                    )
                    .await;
                }
                _ => peer.say(channel, "anyone?").await?,
            }
            peer.expect_alive().await
        }
        Outcome::NewSession => accepted(&peer.expect_response(channel).await?),
        Outcome::Connected => {
            expect_result(peer, origin, "connected").await?;
            echoed(peer, channel).await
        }
        Outcome::Echoed => match kind {
            Kind::Message => {
                let echoed = peer.expect_message(channel).await?;
                if echoed != "matrix" {
                    return fail("\"matrix\" echoed", echoed);
                }
                Ok(())
            }
            Kind::Event => {
                let back = peer.expect_event(channel).await?;
                if back.message != "matrix event" {
                    return fail("the event echoed", format!("{back:?}"));
                }
                Ok(())
            }
            _ => {
                peer.send_raw(fragment(channel, 1, None, true, b"def")?)
                    .await?;
                if peer.expect_data(channel).await? != "abcdef" {
                    return fail("\"abcdef\" echoed", "other bytes");
                }
                Ok(())
            }
        },
    }
}

async fn expect_result(peer: &mut Peer, origin: u32, wanted: &str) -> Step<()> {
    let (result, _) = peer.expect_connect_result(origin).await?;
    if result != wanted {
        return fail(format!("acm:connect-result {wanted}"), result);
    }
    Ok(())
}

/// A message on `channel` comes back.
async fn echoed(peer: &mut Peer, channel: u32) -> Step<()> {
    peer.say(channel, "matrix").await?;
    let echoed = peer.expect_message(channel).await?;
    if echoed != "matrix" {
        return fail("\"matrix\" echoed", echoed);
    }
    Ok(())
}

/// `text` as a string that lives as long as the program, the same one for equal texts: ids and
/// titles of cases made at run time, however often the list is made.
pub(super) fn intern(text: String) -> &'static str {
    static ALL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut all = ALL
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = all.get(text.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    all.insert(leaked);
    leaked
}

/// A family of cases made by construction: one per entry of a table, each running `run` with
/// the entry's index.
pub(super) struct Family {
    /// The rules every case of the family checks.
    pub(super) rules: &'static [&'static str],
    /// What the cases need of the target.
    pub(super) needs: Needs,
    /// Runs entry `param`.
    pub(super) run: for<'a> fn(&'a dyn WireTarget, u32) -> CaseFuture<'a>,
}

impl Family {
    /// The cases: entry `i` has the id and title `names` gives it and breaks `breaks(i)`. An
    /// entry whose id an earlier one has is left out (two limits may share a valid value).
    pub(super) fn cases(
        &self,
        names: impl Iterator<Item = (String, String)>,
        breaks: impl Fn(usize) -> Option<&'static str>,
    ) -> Vec<WireCase> {
        let mut seen = HashSet::new();
        names
            .enumerate()
            .filter_map(|(i, (id, title))| {
                let id = intern(id);
                if !seen.insert(id) {
                    return None;
                }
                let case = Case::new(id, self.rules, intern(title));
                Some(WireCase {
                    case: match breaks(i) {
                        Some(rule) => case.breaking(rule),
                        None => case,
                    },
                    needs: self.needs,
                    param: u32::try_from(i).unwrap_or(u32::MAX),
                    run: self.run,
                })
            })
            .collect()
    }
}
