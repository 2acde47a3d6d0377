//! The checks on each event: what caused it, and the state it moves a session or the link to.

use std::time::{Duration, Instant};

use acm_wire::limits::MAX_MESSAGE_LEN;
use acm_wire::pb::{self, DisconnectReason, connect_response};
use acm_wire::reference::{read_collaborate_event_type, read_connect_error_code};

use super::{Arrival, Cause, Key, Observer, Session, State, Up};
use acm_engine::{Closer, ConnectOutcome, EngineEvent};

impl Observer {
    pub(super) fn event(&mut self, now: Instant, event: EngineEvent, cause: Cause<'_>) {
        let name = self.name;
        let arrival = match cause {
            Cause::Arrival(arrival) => Some(arrival),
            _ => None,
        };
        match event {
            EngineEvent::LinkUp {
                version,
                peer_device,
            } => {
                assert!(self.up.is_none(), "{name}: LinkUp twice");
                let Some(Arrival::Hello(hello)) = arrival else {
                    panic!("{name}: LinkUp without a HELLO ({cause:?})");
                };
                assert_eq!((version, &peer_device), (1, &hello.device_id), "{name}");
                let keepalive_ms = hello.keepalive_interval_ms.min(self.config.keepalive_ms());
                self.up = Some(Up {
                    device: hello.device_id.clone(),
                    max_frame: hello.max_frame_size,
                    max_data: hello.max_data_size,
                    keepalive: Duration::from_millis(keepalive_ms.into()),
                });
            }
            EngineEvent::LinkClosed { by, .. } => {
                match by {
                    Closer::Peer => assert!(matches!(arrival, Some(Arrival::LinkClose))),
                    Closer::Transport => assert!(matches!(cause, Cause::LinkLost)),
                    Closer::Local => {}
                }
                assert!(
                    self.session_count() == 0,
                    "{name}: LinkClosed before every session was reported ended"
                );
                assert!(
                    self.sent.data.is_empty(),
                    "{name}: transfers outlive the link"
                );
                self.closed = Some(by);
            }
            EngineEvent::IncomingRequest(request) => {
                let Some(Arrival::Request {
                    channel,
                    request: sent,
                }) = arrival
                else {
                    panic!("{name}: IncomingRequest without a request ({cause:?})");
                };
                assert!(self.is_open() && !self.is_local(*channel), "{name}");
                assert!(
                    !self.sessions.contains_key(channel),
                    "{name}: channel reused"
                );
                assert_eq!(request.channel, *channel, "{name}");
                assert_eq!(&request.token[..], &sent.token[..], "{name}: token");
                assert_eq!(Some(&request.source), sent.source.as_ref(), "{name}");
                assert_eq!(Some(&request.target), sent.target.as_ref(), "{name}");
                let options = sent.options.clone().unwrap_or_default();
                assert_eq!(request.options, options, "{name}: options");
                assert!(
                    !self.ended_tokens.contains(&request.token)
                        && !self
                            .open_sessions()
                            .any(|(c, s)| !self.is_local(*c) && s.token == request.token),
                    "{name}: a replayed token taken (SESS-1)"
                );
                assert!(
                    options.need_send_data != Some(true) || self.config.carries_data,
                    "{name}: SESS-3"
                );
                assert!(self.session_count() < self.config.max_sessions, "{name}");
                assert_eq!(
                    request.target.device_id, self.local_device,
                    "{name}: SESS-2"
                );
                let peer = self.up.as_ref().map(|up| up.device.as_str());
                assert_eq!(
                    Some(request.source.device_id.as_str()),
                    peer,
                    "{name}: SESS-2"
                );
                let key = Key::new(
                    &request.target,
                    &request.source,
                    &request.target.service_name,
                );
                for (_, other) in self.open_sessions().filter(|(_, s)| s.key == key) {
                    assert!(
                        other.state == State::Requested && other.token < request.token,
                        "{name}: a second session for one key (SESS-3, SESS-7)"
                    );
                }
                self.sessions.insert(
                    *channel,
                    Session {
                        state: State::Incoming,
                        key,
                        token: request.token,
                        deadline: now.checked_add(self.config.responder_timeout),
                        connected_ever: false,
                        delivered: 0,
                        sent: 0,
                    },
                );
            }
            EngineEvent::ConnectResult { channel, outcome } => {
                self.must_be(channel, State::Requested, "ConnectResult");
                if outcome == ConnectOutcome::Accepted {
                    let token = self.sessions[&channel].token;
                    let Some(Arrival::Response {
                        channel: c,
                        response,
                    }) = arrival
                    else {
                        panic!("{name}: accepted without a response ({cause:?})");
                    };
                    assert_eq!(*c, channel, "{name}");
                    assert_eq!(&response.token[..], &token[..], "{name}: SESS-4");
                    assert!(matches!(
                        response.result,
                        Some(connect_response::Result::Accepted(_))
                    ));
                    self.set_state(channel, State::Connected);
                } else {
                    let token = self.sessions[&channel].token;
                    if let (
                        ConnectOutcome::Failed { code, reason },
                        Some(Arrival::Response {
                            response:
                                pb::ConnectResponse {
                                    token: sent,
                                    result: Some(connect_response::Result::Rejected(rejected)),
                                },
                            channel: c,
                        }),
                    ) = (&outcome, arrival)
                        && sent[..] == token[..]
                        && *c == channel
                    {
                        let expected = read_connect_error_code(rejected.code);
                        assert_eq!((*code, reason), (expected, &rejected.reason), "{name}");
                    }
                    self.set_state(channel, State::Closed);
                }
            }
            EngineEvent::RequestCancelled { channel } => {
                self.must_be(channel, State::Incoming, "RequestCancelled");
                self.set_state(channel, State::Closed);
            }
            EngineEvent::SessionClosed {
                channel, reason, ..
            } => {
                self.must_be(channel, State::Connected, "SessionClosed");
                if reason != DisconnectReason::NetworkDisconnected {
                    assert!(
                        matches!(arrival, Some(Arrival::Disconnect { channel: c, .. }) if *c == channel),
                        "{name}: {reason:?} without the peer's DISCONNECT"
                    );
                }
                self.set_state(channel, State::Closed);
            }
            EngineEvent::Message { channel, text } => {
                self.delivered(channel, "Message");
                assert!(text.len() <= MAX_MESSAGE_LEN, "{name}: MSG-1");
                let expected = Arrival::Message { channel, text };
                assert_eq!(arrival, Some(&expected), "{name}: not what was sent");
            }
            EngineEvent::CollaborateEvent {
                channel,
                event_type,
                message,
            } => {
                self.delivered(channel, "CollaborateEvent");
                let Some(Arrival::Event { channel: c, event }) = arrival else {
                    panic!("{name}: an event nobody sent");
                };
                assert_eq!(*c, channel, "{name}");
                assert_eq!(
                    (Some(event_type), &message),
                    (
                        read_collaborate_event_type(event.event_type),
                        &event.message
                    ),
                    "{name}"
                );
                assert!(message.len() <= MAX_MESSAGE_LEN, "{name}: EVT-1");
            }
            EngineEvent::Data { channel, data } => {
                self.delivered(channel, "Data");
                let Some(Arrival::Data {
                    channel: c,
                    whole: Some(whole),
                }) = arrival
                else {
                    panic!("{name}: data delivered that no whole transfer carried");
                };
                assert_eq!(*c, channel, "{name}");
                assert!(data == whole, "{name}: data not as sent");
            }
            EngineEvent::DataProgress {
                channel,
                received,
                total,
                ..
            } => {
                self.must_be(channel, State::Connected, "DataProgress");
                assert!(
                    matches!(arrival, Some(Arrival::Data { channel: c, .. }) if *c == channel),
                    "{name}: progress without a fragment on its channel"
                );
                assert!(received <= total, "{name}: {received} of {total} received");
            }
            EngineEvent::DataSent {
                channel,
                transfer_id,
                sent,
                total,
            } => {
                assert!(matches!(cause, Cause::Transmit), "{name}");
                assert!(sent <= total, "{name}: {sent} of {total} sent");
                let key = (channel, transfer_id);
                assert!(
                    self.sent.data.contains_key(&key) || self.sent.finished.contains(&key),
                    "{name}: {key:?} was never queued"
                );
            }
            EngineEvent::TransferSent {
                channel,
                transfer_id,
            } => {
                let key = (channel, transfer_id);
                assert!(matches!(cause, Cause::Transmit), "{name}");
                assert!(
                    self.sent.finished.contains(&key),
                    "{name}: {key:?} not sent"
                );
            }
            EngineEvent::TransferAborted {
                channel,
                transfer_id,
            } => {
                let key = (channel, transfer_id);
                assert!(
                    self.sent.data.remove(&key).is_some(),
                    "{name}: {key:?} aborted twice or never queued"
                );
            }
        }
    }

    fn must_be(&self, channel: u32, state: State, event: &str) {
        assert_eq!(
            self.state(channel),
            Some(state),
            "{}: {event} on channel {channel}",
            self.name
        );
    }

    fn delivered(&mut self, channel: u32, event: &str) {
        self.must_be(channel, State::Connected, event);
        if let Some(session) = self.sessions.get_mut(&channel) {
            session.delivered += 1;
        }
    }
}
