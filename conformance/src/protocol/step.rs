//! The model's steps: what each API call and fault does, as SPEC.md's state table (section 5.7)
//! and the API's error rules say.

use acm::{ConnectErrorCode, DisconnectReason};

use super::implementation::{Call, LinkFault};
use super::model::{
    Answer, ChanState, End, Frame, HANDSHAKE_MS, LinkModel, MAX_MESSAGE, Model, REJECT_REASON,
    SessState,
};
use super::transition::{AcceptInto, Chan, Ended, Handle, Key, Seen, Transition};

/// The API's code for a bad parameter (an unknown or unconnected session, a used token).
pub const PARAMETER_ERROR: u32 = 401;

impl Model {
    /// The state after `transition`, with what it must have made the implementation do in
    /// [`Model::expected`] and [`Model::call_result`].
    pub fn step(mut self, transition: &Transition) -> Self {
        self.expected.clear();
        self.call_result = None;
        let certain = !self.uncertain;
        let end = self.now + Self::duration(transition);
        match transition {
            Transition::Create {
                side,
                handle,
                service,
                ghost,
            } => {
                self.fresh(*handle);
                self.sessions.insert(
                    *handle,
                    super::model::Sess {
                        side: *side,
                        service: *service,
                        ghost: *ghost,
                        state: SessState::Idle,
                        destroyed: false,
                    },
                );
                self.call_result = Some(Ok(()));
            }
            Transition::Connect { handle, chan } => self.connect(*handle, *chan),
            Transition::Accept { chan, into } => self.accept(*chan, *into),
            Transition::Reject { chan } => self.reject(*chan),
            Transition::SendMessage { handle, id, len } => {
                self.fresh_payload(*id);
                let too_long = *len > MAX_MESSAGE;
                self.send_payload(*handle, Call::SendMessage, too_long, Frame::Message, *id);
            }
            Transition::SendData { handle, id, .. } => {
                self.fresh_payload(*id);
                self.send_payload(*handle, Call::SendData, false, Frame::Data, *id);
            }
            Transition::SendEvent { handle, id } => {
                self.fresh_payload(*id);
                self.send_payload(*handle, Call::SendEvent, false, Frame::Event, *id);
            }
            Transition::Disconnect { handle } => {
                self.call_result = Some(self.end_session(*handle, false));
            }
            Transition::Destroy { handle } => {
                self.call_result = Some(self.end_session(*handle, true));
            }
            Transition::Fault(fault) => self.fault(*fault),
            Transition::Advance { .. } => {}
        }
        self.pump();
        self.run_until(end);
        self.exact = certain && !self.uncertain;
        self
    }

    fn fresh(&mut self, id: u32) {
        self.next_id = self.next_id.max(id + 1);
    }

    fn fresh_payload(&mut self, id: u64) {
        self.fresh(u32::try_from(id).unwrap_or(u32::MAX - 1));
    }

    fn done(&mut self, handle: Handle, call: Call, ended: Ended) {
        self.expect(Key::Session(handle), Seen::Done(call, ended));
    }

    /// `connect`: the local checks of `SESS-3`, then CONNECT_REQUEST on a new channel.
    fn connect(&mut self, handle: Handle, chan: Chan) {
        self.fresh(chan);
        let session = self.sessions[&handle].clone();
        if session.destroyed {
            return self.done(handle, Call::Connect, Ended::Error(PARAMETER_ERROR));
        }
        if session.state != SessState::Idle {
            let exists = Ended::Refused(ConnectErrorCode::ConnectedSessionExists, None);
            return self.done(handle, Call::Connect, exists);
        }
        if self.link.is_none() {
            self.link = Some(LinkModel::default());
        }
        let side = session.side;
        // A request of this app for the same session already waits for its answer.
        let waiting = self.sessions.iter().any(|(other, s)| {
            *other != handle
                && s.side == side
                && matches!(s.state, SessState::Connecting(c)
                    if self.chans[&c].service == session.service
                        && self.chans[&c].ghost == session.ghost)
        });
        if waiting || self.open_with_key(side, (session.service, false, session.ghost)) {
            return self.refuse(handle, ConnectErrorCode::ConnectedSessionExists);
        }
        let mut ends = [End::Unseen, End::Unseen];
        ends[side.index()] = End::Requested(self.now + HANDSHAKE_MS);
        self.chans.insert(
            chan,
            ChanState {
                requester: side,
                service: session.service,
                ghost: session.ghost,
                req_handle: handle,
                resp_handle: None,
                ends,
                handed: false,
                pending: false,
            },
        );
        self.set_state(handle, SessState::Connecting(chan));
        self.send(side, Frame::Request(chan));
    }

    /// `acceptConnect(session, token)`.
    fn accept(&mut self, chan: Chan, into: AcceptInto) {
        let c = self.chans[&chan].clone();
        let side = c.responder();
        let handle = match into {
            AcceptInto::Fresh(handle) => {
                self.fresh(handle);
                let session = super::model::Sess {
                    side,
                    service: c.service,
                    ghost: false,
                    state: SessState::Idle,
                    destroyed: false,
                };
                self.sessions.insert(handle, session);
                handle
            }
            AcceptInto::Existing(handle) => handle,
        };
        let session = self.sessions[&handle].clone();
        let refused = session.destroyed
            || !c.pending
            // The token belongs to another service or peer app than the session's.
            || session.service != c.service
            || session.ghost
            || session.state != SessState::Idle;
        if refused {
            return self.done(handle, Call::Accept, Ended::Error(PARAMETER_ERROR));
        }
        let entry = self.chan_mut(chan);
        entry.pending = false;
        entry.ends[side.index()] = End::Connected;
        entry.resp_handle = Some(handle);
        self.set_state(handle, SessState::Connected(chan));
        self.expect(Key::Session(handle), Seen::Connect);
        self.done(handle, Call::Accept, Ended::Ok);
        self.send(side, Frame::Response(chan, Answer::Accepted));
    }

    /// `reject(token, reason)`.
    fn reject(&mut self, chan: Chan) {
        let side = self.chans[&chan].responder();
        if !self.chans[&chan].pending {
            self.call_result = Some(Err(PARAMETER_ERROR));
            return;
        }
        let entry = self.chan_mut(chan);
        entry.pending = false;
        entry.ends[side.index()] = End::Closed;
        let answer = Answer::Rejected(ConnectErrorCode::PeerAppRejected, Some(REJECT_REASON));
        self.send(side, Frame::Response(chan, answer));
        self.call_result = Some(Ok(()));
    }

    /// `sendMessage`, `sendData` and the collaboration event: only on a connected session.
    fn send_payload(
        &mut self,
        handle: Handle,
        call: Call,
        too_long: bool,
        frame: fn(Chan, u64) -> Frame,
        id: u64,
    ) {
        let session = &self.sessions[&handle];
        let side = session.side;
        match session.state {
            SessState::Connected(chan) if !too_long && !session.destroyed => {
                self.send(side, frame(chan, id));
                self.done(handle, call, Ended::Ok);
            }
            _ => self.done(handle, call, Ended::Error(PARAMETER_ERROR)),
        }
    }

    /// `disconnect` (only a connected session) or `destroy` (any session): the peer learns why
    /// (`DISC-1`).
    fn end_session(&mut self, handle: Handle, destroy: bool) -> Result<(), u32> {
        let session = self.sessions[&handle].clone();
        if session.destroyed {
            return Err(PARAMETER_ERROR);
        }
        let reason = if destroy {
            DisconnectReason::PeerAppExit
        } else {
            DisconnectReason::PeerAppCloseCollaboration
        };
        match session.state {
            SessState::Connected(chan) => {
                self.chan_mut(chan).ends[session.side.index()] = End::Closed;
                self.set_state(handle, SessState::Idle);
                self.send(session.side, Frame::Disconnect(chan, reason));
            }
            _ if !destroy => return Err(PARAMETER_ERROR),
            // A connect still waiting goes on; its answer ends the session (see on_response).
            _ => {}
        }
        if destroy && let Some(session) = self.sessions.get_mut(&handle) {
            session.destroyed = true;
        }
        Ok(())
    }

    fn fault(&mut self, fault: LinkFault) {
        let now = self.now;
        match fault {
            LinkFault::Stall(side) | LinkFault::Unstall(side) => {
                if let Some(link) = self.link.as_mut() {
                    let stall = matches!(fault, LinkFault::Stall(_)).then_some(now);
                    link.stalled[side.index()] = stall;
                }
            }
            LinkFault::DropFrames(..) => self.uncertain = true,
            LinkFault::CorruptFrames(side, n) => {
                self.uncertain = true;
                self.corruptions[side.index()] += n;
            }
            LinkFault::Lose => {
                self.end_link();
                if self.uncertain {
                    self.resynchronise();
                }
            }
        }
    }

    /// After a link is lost nothing of it remains: every session is idle, every handshake
    /// over, whatever the faults did before.
    fn resynchronise(&mut self) {
        self.uncertain = false;
        for chan in self.chans.values_mut() {
            chan.ends = [End::Closed, End::Closed];
            chan.pending = false;
        }
        for session in self.sessions.values_mut() {
            session.state = SessState::Idle;
        }
    }
}
