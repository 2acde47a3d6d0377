//! The reference model: what SPEC.md says the two devices' apps observe, step by step.
//!
//! The model runs the session state table of SPEC section 5.7 on both devices at once, over an
//! abstract link that carries whole frames in order in each direction, holds them while a
//! direction is stalled, and ends (with every session on it) when it is lost or when a stall
//! outlasts the keepalive (`LINK-6`). Each step it says which events, call results and
//! `onCollaborate` requests each session and app must see. Faults that break the link's contract
//! (dropped or corrupted frames) make the model uncertain until the link is lost: then only the
//! safety invariants are checked.

use std::collections::{BTreeMap, VecDeque};

use acm::{ConnectErrorCode, DisconnectReason};

use super::implementation::{Call, HANDLER_REASON, Side};
use super::profile::Profile;
use super::transition::{Chan, Ended, Handle, Key, Seen, Transition};

/// How long every step but [`Transition::Advance`] lets the implementation run, in ms.
pub const SETTLE_MS: u64 = 1;
/// SPEC `SESS-5`: a requester gives up after 10 s.
pub const HANDSHAKE_MS: u64 = 10_000;
/// SPEC `SESS-5`: a responder drops an unanswered request after 20 s.
pub const RESPONDER_MS: u64 = 20_000;
/// A stalled link ends no earlier than two keepalive intervals after its stall began (the last
/// frame the stalled side sent is at most one interval old), less a margin, in ms.
pub const DOOM_FROM_MS: u64 = 29_000;
/// ... and no later than three intervals (`LINK-6`), plus a margin.
pub const DOOM_TO_MS: u64 = 46_000;
/// No step may end this close to a timer, in ms: which side of it the step ends on is not
/// certain.
pub const MARGIN_MS: u64 = 3;
/// SPEC `MSG-1`.
pub const MAX_MESSAGE: usize = 1024;
/// The reason the app gives when it calls `reject`.
pub const REJECT_REASON: &str = "not now";

/// Where a session stands at the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessState {
    /// Not connected.
    Idle,
    /// `connect` waits for the handshake.
    Connecting(Chan),
    /// Connected through the handshake.
    Connected(Chan),
}

/// A session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sess {
    /// Its device.
    pub side: Side,
    /// Index into `SERVICES`.
    pub service: usize,
    /// Whether its peer ability is unregistered.
    pub ghost: bool,
    /// Where it stands.
    pub state: SessState,
    /// Whether the app destroyed it.
    pub destroyed: bool,
}

/// One side's protocol state of a handshake's channel (SPEC section 5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The request has not arrived.
    Unseen,
    /// REQUESTED, until this time.
    Requested(u64),
    /// INCOMING, until this time.
    Incoming(u64),
    /// CONNECTED.
    Connected,
    /// Closed.
    Closed,
}

impl End {
    /// Whether the channel is open on this side.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Requested(_) | Self::Incoming(_) | Self::Connected
        )
    }
}

/// A handshake and the session it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChanState {
    /// The requesting device.
    pub requester: Side,
    /// Index into `SERVICES`.
    pub service: usize,
    /// Whether it asks for the unregistered ability.
    pub ghost: bool,
    /// The requesting session.
    pub req_handle: Handle,
    /// The accepting session.
    pub resp_handle: Option<Handle>,
    /// Each side's state, A then B.
    pub ends: [End; 2],
    /// Whether the responder's app was handed the request.
    pub handed: bool,
    /// Whether it can still answer it.
    pub pending: bool,
}

impl ChanState {
    /// The responding device.
    pub fn responder(&self) -> Side {
        self.requester.other()
    }

    /// The session of `side` on the channel.
    pub fn handle_on(&self, side: Side) -> Option<Handle> {
        if side == self.requester {
            Some(self.req_handle)
        } else {
            self.resp_handle
        }
    }

    /// What `SESS-3` compares, seen from `side`: the service, and whether this side's and the
    /// peer's abilities are the unregistered one.
    pub fn key_on(&self, side: Side) -> (usize, bool, bool) {
        if side == self.requester {
            (self.service, false, self.ghost)
        } else {
            (self.service, self.ghost, false)
        }
    }
}

/// An answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `accepted`.
    Accepted,
    /// `rejected` with a code, and the app's reason for PEER_APP_REJECTED.
    Rejected(ConnectErrorCode, Option<&'static str>),
}

/// A frame, abstractly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// CONNECT_REQUEST.
    Request(Chan),
    /// CONNECT_RESPONSE.
    Response(Chan, Answer),
    /// MESSAGE.
    Message(Chan, u64),
    /// A whole data transfer.
    Data(Chan, u64),
    /// COLLABORATE_EVENT.
    Event(Chan, u64),
    /// DISCONNECT.
    Disconnect(Chan, DisconnectReason),
}

/// The link between the devices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkModel {
    /// Since when each side's frames are held, A then B.
    pub stalled: [Option<u64>; 2],
    /// Frames on their way from each side, A then B.
    pub transit: [VecDeque<Frame>; 2],
}

impl LinkModel {
    /// When the link may end because a stall outlasts the keepalive: from, to (ms).
    pub fn doom(&self) -> Option<(u64, u64)> {
        let starts = self.stalled.iter().flatten();
        let first = starts.clone().min()?;
        let last = starts.max()?;
        Some((first + DOOM_FROM_MS, last + DOOM_TO_MS))
    }
}

/// The model's state.
#[derive(Debug, Clone)]
pub struct Model {
    /// Which transitions it makes, and how often.
    pub profile: Profile,
    /// The time, in ms.
    pub now: u64,
    /// The next unused handle, channel and payload id.
    pub next_id: u32,
    /// Every session, destroyed or not.
    pub sessions: BTreeMap<Handle, Sess>,
    /// Every handshake.
    pub chans: BTreeMap<Chan, ChanState>,
    /// The link, while there is one.
    pub link: Option<LinkModel>,
    /// Whether frames were dropped or corrupted on the link: then the model is not exact.
    pub uncertain: bool,
    /// Whether the last step's observations are exactly as [`Model::expected`] says.
    pub exact: bool,
    /// Frames corrupted on purpose, by sending side, A then B.
    pub corruptions: [u64; 2],
    /// What the last step's observers must observe, in order for each.
    pub expected: BTreeMap<Key, Vec<Seen>>,
    /// What the last step's synchronous call must return.
    pub call_result: Option<Result<(), u32>>,
}

impl Model {
    /// Two devices with no sessions and no link.
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            now: 0,
            next_id: 1,
            sessions: BTreeMap::new(),
            chans: BTreeMap::new(),
            link: None,
            uncertain: false,
            exact: true,
            corruptions: [0, 0],
            expected: BTreeMap::new(),
            call_result: None,
        }
    }

    /// The sessions the apps still hold.
    pub fn live_sessions(&self) -> Vec<Handle> {
        let live = self.sessions.iter().filter(|(_, s)| !s.destroyed);
        live.map(|(handle, _)| *handle).collect()
    }

    /// How long a transition lets the implementation run, in ms.
    pub fn duration(transition: &Transition) -> u64 {
        match transition {
            Transition::Advance { ms } => *ms,
            _ => SETTLE_MS,
        }
    }

    /// Whether a step that ends at `end` ends clear of every timer.
    pub fn ends_clear(&self, end: u64) -> bool {
        if let Some((from, to)) = self.link.as_ref().and_then(LinkModel::doom)
            && (from..=to).contains(&end)
        {
            return false;
        }
        self.chans.values().flat_map(|c| c.ends).all(|e| match e {
            End::Requested(d) | End::Incoming(d) => d.abs_diff(end) > MARGIN_MS,
            _ => true,
        })
    }

    /// Whether a connect on `side` for this key could cross a request of the peer's for the same
    /// session still on its way (`SESS-7`), whose outcome depends on random tokens. (The peer
    /// may have given up on it already: it still crosses when it arrives.)
    pub fn would_cross(&self, side: Side, service: usize, ghost: bool) -> bool {
        self.chans.values().any(|c| {
            c.requester == side.other()
                && c.ends[side.index()] == End::Unseen
                && c.key_on(side) == (service, false, ghost)
        })
    }

    pub(crate) fn expect(&mut self, key: Key, seen: Seen) {
        self.expected.entry(key).or_default().push(seen);
    }

    /// Expects `seen` on the session, unless the app destroyed it.
    fn expect_event(&mut self, handle: Handle, seen: Seen) {
        if self.sessions.get(&handle).is_some_and(|s| !s.destroyed) {
            self.expect(Key::Session(handle), seen);
        }
    }

    pub(crate) fn set_state(&mut self, handle: Handle, state: SessState) {
        if let Some(session) = self.sessions.get_mut(&handle) {
            session.state = state;
        }
    }

    pub(crate) fn chan_mut(&mut self, chan: Chan) -> &mut ChanState {
        self.chans
            .get_mut(&chan)
            .expect("the model knows every channel")
    }

    /// A channel open on `side` with this key (SPEC `SESS-3`).
    pub(crate) fn open_with_key(&self, side: Side, key: (usize, bool, bool)) -> bool {
        self.chans
            .values()
            .any(|c| c.ends[side.index()].is_open() && c.key_on(side) == key)
    }

    /// Queues a frame on the link; [`Model::pump`] delivers it.
    pub(crate) fn send(&mut self, from: Side, frame: Frame) {
        if let Some(link) = self.link.as_mut() {
            link.transit[from.index()].push_back(frame);
        }
    }

    /// Delivers every frame that can move, in order in each direction.
    pub(crate) fn pump(&mut self) {
        loop {
            let mut moved = false;
            for from in Side::BOTH {
                let Some(link) = self.link.as_mut() else {
                    return;
                };
                if link.stalled[from.index()].is_some() {
                    continue;
                }
                if let Some(frame) = link.transit[from.index()].pop_front() {
                    self.deliver(from.other(), frame);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn deliver(&mut self, to: Side, frame: Frame) {
        match frame {
            Frame::Request(chan) => self.on_request(to, chan),
            Frame::Response(chan, answer) => self.on_response(to, chan, answer),
            Frame::Message(chan, id) => self.on_payload(to, chan, Seen::Message(id)),
            Frame::Data(chan, id) => self.on_payload(to, chan, Seen::Data(id)),
            Frame::Event(chan, id) => self.on_payload(to, chan, Seen::Collaborate(id)),
            Frame::Disconnect(chan, reason) => self.on_disconnect(to, chan, reason),
        }
    }

    /// SPEC `SESS-3`: how the responder answers a request.
    fn on_request(&mut self, to: Side, chan: Chan) {
        let c = self.chans[&chan].clone();
        let answer = if self.open_with_key(to, c.key_on(to)) {
            Some(Answer::Rejected(
                ConnectErrorCode::ConnectedSessionExists,
                None,
            ))
        } else if c.ghost {
            Some(Answer::Rejected(
                ConnectErrorCode::PeerAbilityNoOncollaborate,
                None,
            ))
        } else {
            self.expect(Key::App(to), Seen::Request(chan));
            self.chan_mut(chan).handed = true;
            (c.service == 2).then_some(Answer::Rejected(
                ConnectErrorCode::PeerAppRejected,
                Some(HANDLER_REASON),
            ))
        };
        let now = self.now;
        let entry = self.chan_mut(chan);
        match answer {
            Some(answer) => {
                entry.ends[to.index()] = End::Closed;
                self.send(to, Frame::Response(chan, answer));
            }
            None => {
                entry.ends[to.index()] = End::Incoming(now + RESPONDER_MS);
                entry.pending = true;
            }
        }
    }

    /// SPEC `SESS-4`: the requester gets its answer.
    fn on_response(&mut self, to: Side, chan: Chan, answer: Answer) {
        let c = self.chans[&chan].clone();
        if !matches!(c.ends[to.index()], End::Requested(_)) {
            return; // the handshake has ended: the answer is discarded
        }
        let handle = c.req_handle;
        match answer {
            Answer::Accepted => {
                self.expect_event(handle, Seen::Connect);
                if self.sessions[&handle].destroyed {
                    // The app left while it waited: connect reports the session gone, and the
                    // peer sees the app leave (DISC-1).
                    self.expect(
                        Key::Session(handle),
                        Seen::Done(
                            Call::Connect,
                            Ended::Refused(ConnectErrorCode::SystemInternalError, None),
                        ),
                    );
                    self.chan_mut(chan).ends[to.index()] = End::Closed;
                    self.set_state(handle, SessState::Idle);
                    self.send(to, Frame::Disconnect(chan, DisconnectReason::PeerAppExit));
                } else {
                    self.expect(
                        Key::Session(handle),
                        Seen::Done(Call::Connect, Ended::Connected),
                    );
                    self.chan_mut(chan).ends[to.index()] = End::Connected;
                    self.set_state(handle, SessState::Connected(chan));
                }
            }
            Answer::Rejected(code, reason) => {
                self.chan_mut(chan).ends[to.index()] = End::Closed;
                self.set_state(handle, SessState::Idle);
                let ended = Ended::Refused(code, reason.map(str::to_string));
                self.expect(Key::Session(handle), Seen::Done(Call::Connect, ended));
            }
        }
    }

    fn on_payload(&mut self, to: Side, chan: Chan, seen: Seen) {
        let c = &self.chans[&chan];
        // Frames on a closed channel are discarded (LINK-11); none reaches a channel that is
        // not connected while frames keep their order.
        if c.ends[to.index()] == End::Connected
            && let Some(handle) = c.handle_on(to)
        {
            self.expect_event(handle, seen);
        }
    }

    /// SPEC `DISC-1`, `DISC-2`, `SESS-5`: the peer ended the session or gave up.
    fn on_disconnect(&mut self, to: Side, chan: Chan, reason: DisconnectReason) {
        let c = self.chans[&chan].clone();
        match c.ends[to.index()] {
            End::Connected => {
                if let Some(handle) = c.handle_on(to) {
                    self.expect_event(handle, Seen::Disconnect(reason));
                    self.set_state(handle, SessState::Idle);
                }
            }
            End::Incoming(_) => self.chan_mut(chan).pending = false,
            End::Requested(_) => self.refuse(c.req_handle, ConnectErrorCode::SystemInternalError),
            End::Unseen | End::Closed => return,
        }
        self.chan_mut(chan).ends[to.index()] = End::Closed;
    }

    /// `connect` on `handle` resolves without connecting.
    pub(crate) fn refuse(&mut self, handle: Handle, code: ConnectErrorCode) {
        self.set_state(handle, SessState::Idle);
        let ended = Ended::Refused(code, None);
        self.expect(Key::Session(handle), Seen::Done(Call::Connect, ended));
    }

    /// Runs the timers until `target`: handshake and responder timeouts (`SESS-5`) and the end
    /// of a stalled link (`LINK-6`).
    pub(crate) fn run_until(&mut self, target: u64) {
        loop {
            let death = self
                .link
                .as_ref()
                .and_then(LinkModel::doom)
                .map(|(_, to)| to)
                .filter(|to| *to <= target);
            let limit = death.unwrap_or(target);
            let next = self
                .chans
                .iter()
                .flat_map(|(chan, c)| {
                    Side::BOTH
                        .into_iter()
                        .filter_map(move |side| match c.ends[side.index()] {
                            End::Requested(d) | End::Incoming(d) => Some((d, *chan, side)),
                            _ => None,
                        })
                })
                .filter(|(d, _, _)| *d <= limit)
                .min();
            if let Some((at, chan, side)) = next {
                self.now = self.now.max(at);
                self.expire(chan, side);
                self.pump();
            } else if let Some(at) = death {
                self.now = self.now.max(at);
                self.end_link();
            } else {
                break;
            }
        }
        self.now = self.now.max(target);
    }

    fn expire(&mut self, chan: Chan, side: Side) {
        let c = self.chans[&chan].clone();
        self.chan_mut(chan).ends[side.index()] = End::Closed;
        match c.ends[side.index()] {
            End::Requested(_) => {
                self.refuse(c.req_handle, ConnectErrorCode::SystemInternalError);
                let reason = DisconnectReason::NetworkDisconnected;
                self.send(side, Frame::Disconnect(chan, reason));
            }
            End::Incoming(_) => {
                self.chan_mut(chan).pending = false;
                let answer = Answer::Rejected(ConnectErrorCode::SystemInternalError, None);
                self.send(side, Frame::Response(chan, answer));
            }
            _ => {}
        }
    }

    /// The link ends: every session on it ends with NETWORK_DISCONNECTED, every handshake fails
    /// (`LINK-7`), and frames in flight vanish.
    pub(crate) fn end_link(&mut self) {
        if self.link.take().is_none() {
            return;
        }
        let chans: Vec<Chan> = self.chans.keys().copied().collect();
        for chan in chans {
            for side in Side::BOTH {
                let c = self.chans[&chan].clone();
                match c.ends[side.index()] {
                    End::Requested(_) => {
                        self.refuse(c.req_handle, ConnectErrorCode::SystemInternalError);
                    }
                    End::Incoming(_) => self.chan_mut(chan).pending = false,
                    End::Connected => {
                        if let Some(handle) = c.handle_on(side) {
                            let reason = DisconnectReason::NetworkDisconnected;
                            self.expect_event(handle, Seen::Disconnect(reason));
                            self.set_state(handle, SessState::Idle);
                        }
                    }
                    End::Unseen | End::Closed => {}
                }
                self.chan_mut(chan).ends[side.index()] = End::Closed;
            }
        }
    }
}
