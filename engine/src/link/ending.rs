//! Frames queued on the link's behalf, and how sessions and the link end.

use super::*;

impl LinkEngine {
    /// A LINK_CLOSE whose message is cut so that its frame fits what the peer accepts
    /// (SPEC `FRAME-5`; before the peer's HELLO, the 128 bytes every device accepts).
    pub(super) fn link_close(&self, reason: LinkCloseReason, message: &str) -> Control {
        // The header, the reason (a one-byte tag and value) and the message's tag and length.
        const OVERHEAD: usize = acm_wire::HEADER_LEN + 2 + 3;
        let room = (self.out_max_frame() as usize)
            .saturating_sub(OVERHEAD)
            .min(acm_wire::limits::MAX_TEXT_LEN);
        Control::LinkClose(pb::LinkClose {
            reason: reason.into(),
            message: truncate(message, room),
        })
    }

    /// Queues a link body, which always fits one frame.
    pub(crate) fn queue_link_frame(&mut self, control: &Control, version: u8) {
        match control.encode_frame(version, 0) {
            Ok(frame) => self.outbound.push_control([frame]),
            Err(err) => tracing::error!(%err, "link frame does not encode"),
        }
    }

    /// Queues a session body (or a PING on channel 0), split with MORE if it must be.
    pub(crate) fn queue_session_frame(&mut self, control: &Control, channel: u32) {
        let (version, max_frame) = (self.out_version(), self.out_max_frame());
        match encode_control_into(control, version, channel, max_frame, &mut self.outbound) {
            Ok(()) => {}
            Err(err) => tracing::error!(%err, channel, "frame does not encode"),
        }
    }

    /// Queues a body that answers a frame of the peer's (on channel 0 for a PONG), counted
    /// against [`EngineConfig::max_queued_answers`] (SPEC `LINK-13`).
    pub(crate) fn queue_answer(&mut self, control: &Control, channel: u32) {
        let (version, max_frame) = (self.out_version(), self.out_max_frame());
        let mut answers = self.outbound.answering();
        match encode_control_into(control, version, channel, max_frame, &mut answers) {
            Ok(()) => {}
            Err(err) => tracing::error!(%err, channel, "frame does not encode"),
        }
    }

    /// Whether the answers waiting to be sent have reached their bound, in which case the link
    /// is closed with `RESOURCE_EXHAUSTED` and true returned: the peer sends frames that call
    /// for answers and does not read them (SPEC `LINK-13`).
    pub(crate) fn answers_overflow(&mut self) -> bool {
        let waiting = self.outbound.answers_len();
        if waiting < self.config.max_queued_answers {
            return false;
        }
        self.fail_link_abandoning(format!(
            "LINK-13: {waiting} answers wait to be sent; the peer does not read them"
        ));
        true
    }

    pub(crate) fn send_rejection(&mut self, channel: u32, code: ConnectErrorCode, reason: &str) {
        let Some(token) = self.channels.get(channel).map(|c| c.token) else {
            return;
        };
        self.send_rejection_token(channel, token, code, reason);
    }

    pub(crate) fn send_rejection_token(
        &mut self,
        channel: u32,
        token: Token,
        code: ConnectErrorCode,
        reason: &str,
    ) {
        let response = Control::ConnectResponse(pb::ConnectResponse {
            token: Bytes::copy_from_slice(&token),
            result: Some(connect_response::Result::Rejected(pb::Rejected {
                code: code.into(),
                reason: truncate(reason, acm_wire::limits::MAX_TEXT_LEN),
            })),
        });
        self.queue_answer(&response, channel);
    }

    /// Forgets a session's state: its partial transfers both ways and its channel.
    pub(crate) fn drop_session_state(&mut self, channel: u32) -> Option<Channel> {
        self.reassembler.abort_channel(channel);
        for TransferDone {
            channel,
            transfer_id,
        } in self.outbound.abort_channel(channel)
        {
            self.events.push_back(EngineEvent::TransferAborted {
                channel,
                transfer_id,
            });
        }
        self.channels.remove(channel)
    }

    /// Ends a session because something failed: tells the peer (SPEC `DISC-1`) and the app.
    pub(crate) fn fail_session(&mut self, channel: u32, error: SessionError, detail: String) {
        let Some(state) = self.channels.get(channel).map(|c| c.state) else {
            return;
        };
        tracing::info!(channel, error = error.as_str_name(), %detail, "session failed");
        let disconnect = Control::Disconnect(pb::Disconnect {
            reason: DisconnectReason::NetworkDisconnected.into(),
            error: error.into(),
            detail: truncate(&detail, acm_wire::limits::MAX_TEXT_LEN),
        });
        self.queue_answer(&disconnect, channel);
        self.drop_session_state(channel);
        self.report_end(
            channel,
            state,
            DisconnectReason::NetworkDisconnected,
            error,
            detail,
        );
    }

    /// Tells the app a session ended, in the words its state calls for.
    pub(crate) fn report_end(
        &mut self,
        channel: u32,
        state: State,
        reason: DisconnectReason,
        error: SessionError,
        detail: String,
    ) {
        let event = match state {
            State::Connected => EngineEvent::SessionClosed {
                channel,
                reason,
                error,
                detail,
            },
            State::Requested { .. } => EngineEvent::ConnectResult {
                channel,
                outcome: ConnectOutcome::Failed {
                    code: ConnectErrorCode::SystemInternalError,
                    reason: detail,
                },
            },
            State::Incoming { .. } => EngineEvent::RequestCancelled { channel },
        };
        self.events.push_back(event);
    }

    /// Closes the link because the peer broke a rule or time ran out (SPEC section 11).
    pub(crate) fn fail_link(&mut self, reason: LinkCloseReason, detail: String) {
        if self.is_closed() {
            return;
        }
        tracing::warn!(reason = reason.as_str_name(), %detail, "closing link");
        self.end_everything();
        let close = self.link_close(reason, &detail);
        self.queue_link_frame(&close, self.out_version());
        self.phase = Phase::Closed;
        self.events.push_back(EngineEvent::LinkClosed {
            by: Closer::Local,
            reason,
            detail,
        });
    }

    /// Closes the link with `RESOURCE_EXHAUSTED` because the peer does not read what it is
    /// sent (SPEC `LINK-13`): what waits to be sent is dropped (but a HELLO not sent yet, which
    /// comes first, `LINK-1`), and the LINK_CLOSE queued after may never reach the peer.
    pub(crate) fn fail_link_abandoning(&mut self, detail: String) {
        if self.is_closed() {
            return;
        }
        self.outbound.clear_control_after_hello();
        self.fail_link(LinkCloseReason::ResourceExhausted, detail);
    }

    /// Ends every session as the link ends (SPEC `LINK-7`, `DISC-2`) and drops all output.
    pub(crate) fn end_everything(&mut self) {
        for TransferDone {
            channel,
            transfer_id,
        } in self.outbound.clear_transfers()
        {
            self.events.push_back(EngineEvent::TransferAborted {
                channel,
                transfer_id,
            });
        }
        for (channel, entry) in self.channels.drain() {
            self.reassembler.abort_channel(channel);
            self.report_end(
                channel,
                entry.state,
                DisconnectReason::NetworkDisconnected,
                SessionError::None,
                "the link ended".into(),
            );
        }
    }

    pub(super) fn expire(&mut self, channel: u32) {
        let Some(state) = self.channels.get(channel).map(|c| c.state) else {
            return;
        };
        match state {
            State::Requested { .. } => {
                self.fail_session(
                    channel,
                    SessionError::InternalError,
                    "SESS-5: no CONNECT_RESPONSE in time".into(),
                );
            }
            State::Incoming { .. } => {
                self.send_rejection(
                    channel,
                    ConnectErrorCode::SystemInternalError,
                    "SESS-5: the app did not answer in time",
                );
                self.drop_session_state(channel);
                self.events
                    .push_back(EngineEvent::RequestCancelled { channel });
            }
            State::Connected => {}
        }
    }
}
