//! The receiving half of the link engine: every frame the peer sends, checked against SPEC.md
//! and acted on.

use std::time::{Duration, Instant};

use acm_transport::FrameBuf;
use acm_wire::pb::{
    self, ConnectErrorCode, FrameType, LinkCloseReason, SessionError, connect_response,
};
use acm_wire::reference::{
    read_collaborate_event_type, read_connect_error_code, read_disconnect_reason,
    read_link_close_reason, read_session_error,
};
use acm_wire::{
    Control, ControlError, DataFragment, Frame, FrameKind, SUPPORTED_VERSIONS, negotiate_version,
};
use bytes::Bytes;

use super::channel::{Channel, State};
use super::event::{Closer, ConnectOutcome, EngineEvent, IncomingRequest, Token};
use super::link::{LinkEngine, Peer, Phase};
use super::names::SessionKey;

impl LinkEngine {
    /// Takes one message the link delivered: exactly one frame (SPEC `FRAME-9`).
    pub fn handle_message(&mut self, now: Instant, message: Bytes) {
        if self.is_closed() {
            return;
        }
        self.last_received = now;
        let frame = match Frame::decode_exact(message, self.accept_max_frame, self.version()) {
            Ok(frame) => frame,
            Err(err) => {
                return self.fail_link(err.close_reason(), format!("{}: {err}", err.rule()));
            }
        };
        self.handle_frame(now, frame, Bytes::new());
    }

    /// Takes one message the link delivered in two parts ([`acm_transport::Link::recv_buf`]),
    /// as [`LinkEngine::handle_message`] takes it whole. The data bytes of a DATA frame whose
    /// first part is exactly its headers are not copied; any other split is joined first.
    pub fn handle_message_buf(&mut self, now: Instant, message: FrameBuf) {
        let (head, body) = message.into_parts();
        if body.is_empty() || self.is_closed() {
            return self.handle_message(now, head);
        }
        match Frame::decode_data_headers(&head, body.len(), self.accept_max_frame, self.version()) {
            Some(frame) => {
                self.last_received = now;
                self.handle_frame(now, frame, body);
            }
            None => self.handle_message(now, FrameBuf::new(head, body).into_bytes()),
        }
    }

    /// Acts on a frame decoded from a message. `chunk` is the data bytes of a DATA frame that
    /// arrived apart from its headers, whose payload is then its data header only; empty
    /// otherwise.
    fn handle_frame(&mut self, now: Instant, frame: Frame, chunk: Bytes) {
        if self.answers_overflow() {
            return;
        }
        let body = match self.assembler.push_borrowed(&frame) {
            Ok(body) => body,
            Err(err) => {
                return self.fail_link(err.close_reason(), format!("{}: {err}", err.rule()));
            }
        };
        match (frame.kind, body) {
            (FrameKind::Extension(code), _) => {
                tracing::debug!(code, "extension frame ignored (FRAME-7)");
            }
            (FrameKind::Known(FrameType::Data), _) => self.on_data(frame, chunk),
            (FrameKind::Known(_), None) => {} // a piece of a split body; more follows
            (FrameKind::Known(frame_type), Some((_, channel, body))) => {
                self.on_control(now, frame_type, channel, &body);
            }
        }
    }

    fn on_control(&mut self, now: Instant, frame_type: FrameType, channel: u32, body: &[u8]) {
        let control = match Control::decode_unchecked(frame_type, body) {
            Some(Ok(control)) => control,
            Some(Err(err)) => {
                return self.fail_link(
                    LinkCloseReason::ProtocolError,
                    format!("{}: {err}", err.rule()),
                );
            }
            None => return,
        };
        let problem = control.validate().err();
        if let Phase::AwaitingHello { .. } = self.phase {
            return match control {
                Control::Hello(hello) => self.on_hello(hello, problem),
                Control::LinkClose(close) => self.on_link_close(close),
                _ => self.fail_link(
                    LinkCloseReason::ProtocolError,
                    format!("LINK-2: {} before HELLO", frame_type.as_str_name()),
                ),
            };
        }
        match control {
            Control::Hello(_) => self.fail_link(
                LinkCloseReason::ProtocolError,
                "LINK-2: a second HELLO".into(),
            ),
            Control::LinkClose(close) => self.on_link_close(close),
            Control::Ping(ping) => {
                let pong = Control::Pong(pb::Pong { value: ping.value });
                self.queue_answer(&pong, 0);
            }
            Control::Pong(_) => {}
            Control::ConnectRequest(request) => self.on_request(now, channel, request, problem),
            Control::ConnectResponse(response) => self.on_response(channel, response, problem),
            other => self.on_session_frame(channel, other, problem),
        }
    }

    fn on_hello(&mut self, hello: pb::Hello, problem: Option<ControlError>) {
        if let Some(err) = problem {
            return self.fail_link(
                LinkCloseReason::ProtocolError,
                format!("{}: {err}", err.rule()),
            );
        }
        if let Some(expected) = &self.expected_peer
            && *expected != hello.device_id
        {
            let detail = format!(
                "LINK-3: HELLO says device {:?} but the transport reached {expected:?}",
                hello.device_id
            );
            return self.fail_link(LinkCloseReason::ProtocolError, detail);
        }
        let Some(version) = negotiate_version(SUPPORTED_VERSIONS, &hello) else {
            let detail = format!(
                "LINK-4: this side speaks {}..={}, the peer {}..={}",
                SUPPORTED_VERSIONS.start(),
                SUPPORTED_VERSIONS.end(),
                hello.min_version,
                hello.max_version
            );
            return self.fail_link(LinkCloseReason::NoCommonVersion, detail);
        };
        let keepalive_ms = hello.keepalive_interval_ms.min(self.config.keepalive_ms());
        let peer = Peer {
            version,
            device: hello.device_id.clone(),
            max_frame: hello.max_frame_size.min(self.link_max_frame),
            max_data: hello.max_data_size,
            keepalive: Duration::from_millis(keepalive_ms.into()),
        };
        tracing::info!(version, peer = %hello.device_id, "link up");
        self.phase = Phase::Open(peer);
        self.events.push_back(EngineEvent::LinkUp {
            version,
            peer_device: hello.device_id,
        });
    }

    fn on_link_close(&mut self, close: pb::LinkClose) {
        let reason = read_link_close_reason(close.reason);
        tracing::info!(reason = reason.as_str_name(), message = %close.message, "peer closed the link");
        self.end_everything();
        // LINK-7: nothing more may be sent after the peer's LINK_CLOSE.
        self.outbound.clear_control();
        self.phase = Phase::Closed;
        self.events.push_back(EngineEvent::LinkClosed {
            by: Closer::Peer,
            reason,
            detail: close.message,
        });
    }

    fn on_request(
        &mut self,
        now: Instant,
        channel: u32,
        request: pb::ConnectRequest,
        problem: Option<ControlError>,
    ) {
        if !self.channels.peer_may_open(channel) {
            return self.fail_link(
                LinkCloseReason::ProtocolError,
                format!("LINK-11: the peer may not open channel {channel}"),
            );
        }
        self.channels.note_peer_opened(channel);
        let token = token_of(&request.token);
        let refuse = |engine: &mut Self, code: ConnectErrorCode, reason: String| {
            tracing::debug!(channel, code = code.as_str_name(), %reason, "request refused");
            if let Some(token) = token {
                engine.channels.remember_ended(token);
            }
            engine.send_rejection_token(channel, token.unwrap_or_default(), code, &reason);
        };
        if let Some(err) = problem {
            return refuse(
                self,
                ConnectErrorCode::SystemInternalError,
                format!("{}: {err}", err.rule()),
            );
        }
        let (Some(token), Some(source), Some(target)) = (token, request.source, request.target)
        else {
            return refuse(
                self,
                ConnectErrorCode::SystemInternalError,
                "SESS-2: incomplete request".into(),
            );
        };
        if self.channels.token_seen(&token) {
            return refuse(
                self,
                ConnectErrorCode::SystemInternalError,
                "SESS-1: token already used".into(),
            );
        }
        let peer_device = self
            .open_peer()
            .map(|p| p.device.clone())
            .unwrap_or_default();
        if source.device_id != peer_device || target.device_id != self.local_device {
            return refuse(
                self,
                ConnectErrorCode::SystemInternalError,
                "SESS-2: the request's device ids are not the link's".into(),
            );
        }
        let key = SessionKey::incoming(&source, &target);
        if let Some((_, existing)) = self.channels.by_key(&key) {
            // SESS-7: crossing requests; the greater token goes on.
            let crossing = matches!(existing.state, State::Requested { .. });
            if !(crossing && token > existing.token) {
                return refuse(
                    self,
                    ConnectErrorCode::ConnectedSessionExists,
                    "SESS-3: a session between these apps for this service exists".into(),
                );
            }
        }
        let options = request.options.unwrap_or_default();
        if options.need_send_data == Some(true) && !self.config.carries_data {
            return refuse(
                self,
                ConnectErrorCode::PeerWifiNotOpen,
                "SESS-3: this device's transport cannot carry data".into(),
            );
        }
        if self.channels.len() >= self.config.max_sessions {
            return refuse(
                self,
                ConnectErrorCode::SystemInternalError,
                format!(
                    "SESS-8: the link carries its maximum of {} sessions",
                    self.config.max_sessions
                ),
            );
        }
        let deadline = now
            .checked_add(self.config.responder_timeout)
            .unwrap_or(now);
        self.channels.insert(
            channel,
            Channel {
                key,
                token,
                state: State::Incoming { deadline },
                last_transfer: 0,
            },
        );
        tracing::debug!(channel, "incoming request");
        self.events
            .push_back(EngineEvent::IncomingRequest(Box::new(IncomingRequest {
                channel,
                token,
                source,
                target,
                options,
            })));
    }

    fn on_response(
        &mut self,
        channel: u32,
        response: pb::ConnectResponse,
        problem: Option<ControlError>,
    ) {
        if !self.channels.was_opened(channel) || self.channels.is_peers(channel) {
            return self.fail_link(
                LinkCloseReason::ProtocolError,
                format!("LINK-11: CONNECT_RESPONSE on channel {channel}, never requested"),
            );
        }
        let Some(entry) = self.channels.get(channel) else {
            return; // SESS-4: the request has ended; the answer is discarded
        };
        if !matches!(entry.state, State::Requested { .. }) {
            return;
        }
        if token_of(&response.token) != Some(entry.token) {
            return self.fail_session(
                channel,
                SessionError::ProtocolError,
                "SESS-4: CONNECT_RESPONSE carries another token".into(),
            );
        }
        let outcome = match response.result {
            Some(connect_response::Result::Accepted(_)) => ConnectOutcome::Accepted,
            Some(connect_response::Result::Rejected(rejected)) => ConnectOutcome::Failed {
                code: read_connect_error_code(rejected.code),
                reason: rejected.reason,
            },
            None => {
                let detail = problem.map_or_else(
                    || "SESS-4: no result".to_string(),
                    |e| format!("{}: {e}", e.rule()),
                );
                return self.fail_session(channel, SessionError::ProtocolError, detail);
            }
        };
        if outcome == ConnectOutcome::Accepted {
            self.channels.set_state(channel, State::Connected);
        } else {
            self.drop_session_state(channel);
        }
        tracing::debug!(channel, ?outcome, "connect result");
        self.events
            .push_back(EngineEvent::ConnectResult { channel, outcome });
    }

    /// MESSAGE, DISCONNECT and COLLABORATE_EVENT.
    fn on_session_frame(&mut self, channel: u32, control: Control, problem: Option<ControlError>) {
        let Some(state) = self.check_channel(channel) else {
            return;
        };
        if let Control::Disconnect(disconnect) = control {
            return self.on_disconnect(channel, state, disconnect);
        }
        if state != State::Connected {
            return self.fail_session(
                channel,
                SessionError::ProtocolError,
                "SESS-6: frame before the session is connected".into(),
            );
        }
        match (control, problem) {
            (Control::Message(_), Some(err)) => {
                self.fail_session(
                    channel,
                    SessionError::LimitExceeded,
                    format!("{}: {err}", err.rule()),
                );
            }
            (Control::Message(message), _) => {
                self.events.push_back(EngineEvent::Message {
                    channel,
                    text: message.text,
                });
            }
            (Control::CollaborateEvent(event), problem) => {
                let Some(event_type) = read_collaborate_event_type(event.event_type) else {
                    return; // CTRL-3: an event this version does not know is dropped
                };
                if let Some(err) = problem {
                    return self.fail_session(
                        channel,
                        SessionError::ProtocolError,
                        format!("{}: {err}", err.rule()),
                    );
                }
                self.events.push_back(EngineEvent::CollaborateEvent {
                    channel,
                    event_type,
                    message: event.message,
                });
            }
            _ => {}
        }
    }

    fn on_disconnect(&mut self, channel: u32, state: State, disconnect: pb::Disconnect) {
        let reason = read_disconnect_reason(disconnect.reason);
        let error = read_session_error(disconnect.error);
        tracing::debug!(channel, reason = reason.as_str_name(), "peer disconnected");
        self.drop_session_state(channel);
        let detail = if disconnect.detail.is_empty() {
            format!("the peer ended the session ({})", reason.as_str_name())
        } else {
            disconnect.detail
        };
        self.report_end(channel, state, reason, error, detail);
    }

    fn on_data(&mut self, frame: Frame, chunk: Bytes) {
        let channel = frame.channel;
        let Some(state) = self.check_channel(channel) else {
            return;
        };
        if state != State::Connected {
            return self.fail_session(
                channel,
                SessionError::ProtocolError,
                "SESS-6: DATA before the session is connected".into(),
            );
        }
        // Taking the frame lets the reassembler keep a large chunk without copying it.
        let fragment = match DataFragment::from_split_frame(frame, chunk) {
            Ok(fragment) => fragment,
            Err(err) => {
                return self.fail_session(
                    channel,
                    err.session_error(),
                    format!("{}: {err}", err.rule()),
                );
            }
        };
        let (transfer_id, len) = (fragment.transfer_id, fragment.chunk.len() as u64);
        match self.reassembler.push(fragment) {
            Ok(Some(data)) => {
                let total = data.len() as u64;
                self.events.push_back(EngineEvent::DataProgress {
                    channel,
                    transfer_id,
                    received: total,
                    total,
                });
                self.events.push_back(EngineEvent::Data { channel, data });
            }
            Ok(None) => {
                if let Some((received, total)) = self.reassembler.progress(channel, transfer_id)
                    && passes_a_step(received, len, total)
                {
                    self.events.push_back(EngineEvent::DataProgress {
                        channel,
                        transfer_id,
                        received,
                        total,
                    });
                }
            }
            Err(err) => {
                self.fail_session(
                    channel,
                    err.session_error(),
                    format!("{}: {err}", err.rule()),
                );
            }
        }
    }

    /// The state of the session on `channel`; `None` when the frame is to be discarded (a
    /// closed channel) or the link was closed (a channel never opened, SPEC `LINK-11`).
    fn check_channel(&mut self, channel: u32) -> Option<State> {
        if let Some(entry) = self.channels.get(channel) {
            return Some(entry.state);
        }
        if !self.channels.was_opened(channel) {
            self.fail_link(
                LinkCloseReason::ProtocolError,
                format!("LINK-11: frame on channel {channel}, never opened"),
            );
        }
        None
    }
}

/// Receive-side progress is reported every this many bytes, or every hundredth of the transfer
/// when that is larger (see [`EngineEvent::DataProgress`]).
pub const PROGRESS_STEP: u64 = 64 * 1024;

/// Whether a transfer of `total` bytes that has now `received`, the last `len` of them just
/// now, has passed a step of progress with them.
fn passes_a_step(received: u64, len: u64, total: u64) -> bool {
    let step = PROGRESS_STEP.max(total / 100);
    received / step > received.saturating_sub(len) / step
}

fn token_of(bytes: &[u8]) -> Option<Token> {
    bytes.try_into().ok()
}
