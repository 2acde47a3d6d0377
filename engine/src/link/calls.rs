//! What the app asks of a link: requests, answers, messages, events, data and disconnects.

use super::*;

impl LinkEngine {
    /// Sends CONNECT_REQUEST on a new channel and returns the channel (SPEC section 5).
    pub fn connect(&mut self, now: Instant, request: OutgoingRequest) -> Result<u32, EngineError> {
        let key = self.outgoing_key(&request.source, &request.target)?;
        self.connect_with(
            now,
            request.token,
            key,
            &request.source,
            &request.target,
            &request.options,
        )
    }

    /// The key of a request this side sends on this link: the peer's device in it is the
    /// link's, whatever device the target names (a request for another device is the caller's
    /// mistake, which the peer refuses; it is still the same session as far as this link goes).
    fn outgoing_key(
        &self,
        source: &pb::PeerInfo,
        target: &pb::PeerInfo,
    ) -> Result<SessionKey, EngineError> {
        let peer = self.open_peer()?;
        let remote = [
            peer.device.as_str(),
            &target.bundle_name,
            &target.module_name,
            &target.ability_name,
        ];
        Ok(SessionKey::new(&target.service_name, source, &remote))
    }

    /// [`LinkEngine::connect`] with the request's parts borrowed from their owner, and the
    /// session's key made already (as [`LinkEngine::outgoing_key`] makes it from them).
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn connect_with(
        &mut self,
        now: Instant,
        token: Token,
        key: SessionKey,
        source: &pb::PeerInfo,
        target: &pb::PeerInfo,
        options: &pb::ConnectOptions,
    ) -> Result<u32, EngineError> {
        let peer = self.open_peer()?;
        let deadline = now
            .checked_add(self.config.handshake_timeout)
            .unwrap_or(now);
        debug_assert_eq!(Ok(&key), self.outgoing_key(source, target).as_ref());
        if self.channels.by_key(&key).is_some() {
            return Err(EngineError::SessionExists);
        }
        if options.need_send_data == Some(true) && !self.config.carries_data {
            return Err(EngineError::LocalCannotCarryData);
        }
        if self.channels.len() >= self.config.max_sessions {
            return Err(EngineError::TooManySessions(self.config.max_sessions));
        }
        let body = ConnectRequestRef {
            token: &token,
            source,
            target,
            options,
        };
        let channel = self
            .channels
            .peek_next()
            .ok_or(EngineError::ChannelsExhausted)?;
        let (version, max_frame) = (peer.version, peer.max_frame);
        encode_connect_request(&body, version, channel, max_frame, &mut self.outbound)
            .map_err(|e| EngineError::Encode(e.to_string()))?;
        self.channels.allocate();
        self.channels.insert(
            channel,
            Channel {
                key,
                token,
                state: State::Requested { deadline },
                last_transfer: 0,
            },
        );
        tracing::debug!(channel, "connect request sent");
        Ok(channel)
    }

    /// Accepts the peer's request on `channel`: the session is connected.
    pub fn accept(&mut self, channel: u32) -> Result<(), EngineError> {
        self.open_peer()?;
        let token = self.incoming_token(channel)?;
        let (version, max_frame) = (self.out_version(), self.out_max_frame());
        let response = AcceptedResponseRef { token: &token };
        let mut answers = self.outbound.answering();
        if let Err(err) =
            encode_accepted_response(&response, version, channel, max_frame, &mut answers)
        {
            tracing::error!(%err, channel, "frame does not encode");
        }
        self.channels.set_state(channel, State::Connected);
        tracing::debug!(channel, "request accepted");
        Ok(())
    }

    /// Refuses the peer's request on `channel` with `code` and `reason`.
    pub fn reject(
        &mut self,
        channel: u32,
        code: ConnectErrorCode,
        reason: &str,
    ) -> Result<(), EngineError> {
        self.open_peer()?;
        self.incoming_token(channel)?;
        self.send_rejection(channel, code, reason);
        self.channels.remove(channel);
        tracing::debug!(channel, code = code.as_str_name(), "request rejected");
        Ok(())
    }

    /// Queues a text message on a connected session (SPEC `MSG-1`).
    pub fn send_message(&mut self, channel: u32, text: &str) -> Result<(), EngineError> {
        if text.len() > MAX_MESSAGE_LEN {
            return Err(EngineError::MessageTooLong(text.len()));
        }
        self.connected(channel)?;
        let message = Control::Message(pb::Message { text: text.into() });
        self.queue_session_frame(&message, channel);
        Ok(())
    }

    /// Queues a collaboration event on a connected session (SPEC `EVT-1`).
    pub fn send_collaborate_event(
        &mut self,
        channel: u32,
        event_type: CollaborateEventType,
        message: &str,
    ) -> Result<(), EngineError> {
        self.connected(channel)?;
        let event = Control::CollaborateEvent(pb::CollaborateEvent {
            event_type: event_type.into(),
            message: truncate(message, acm_wire::limits::MAX_TEXT_LEN),
        });
        self.queue_session_frame(&event, channel);
        Ok(())
    }

    /// Queues a data transfer on a connected session and returns its id; a
    /// [`EngineEvent::TransferSent`] follows once its last fragment has been handed out.
    pub fn send_data(&mut self, channel: u32, data: Bytes) -> Result<u32, EngineError> {
        let peer = self.open_peer()?;
        let (version, max_frame, max_data) = (peer.version, peer.max_frame, peer.max_data);
        if data.len() as u64 > max_data {
            return Err(EngineError::DataTooLarge {
                len: data.len() as u64,
                max: max_data,
            });
        }
        self.connected(channel)?;
        let entry = self
            .channels
            .get_mut(channel)
            .ok_or(EngineError::WrongState {
                channel,
                expected: "connected",
            })?;
        let transfer_id = entry
            .last_transfer
            .checked_add(1)
            .ok_or(EngineError::ChannelsExhausted)?;
        let len = data.len() as u64;
        let fragments = Fragmenter::new(version, channel, transfer_id, data, max_frame)
            .map_err(|e| EngineError::Encode(e.to_string()))?;
        entry.last_transfer = transfer_id;
        let charge = self.budget.as_ref().map(|budget| budget.charge(len));
        self.outbound
            .push_transfer(channel, transfer_id, fragments, charge);
        Ok(transfer_id)
    }

    /// Ends a session this side's app is done with, telling the peer why (SPEC `DISC-1`). Works
    /// on connected sessions and on requests still awaiting their answer.
    pub fn disconnect(
        &mut self,
        channel: u32,
        reason: DisconnectReason,
    ) -> Result<(), EngineError> {
        self.open_peer()?;
        match self.channels.get(channel).map(|c| c.state) {
            Some(State::Connected | State::Requested { .. }) => {}
            _ => {
                return Err(EngineError::WrongState {
                    channel,
                    expected: "connected or requested",
                });
            }
        }
        let disconnect = Control::Disconnect(pb::Disconnect {
            reason: reason.into(),
            error: SessionError::None.into(),
            detail: String::new(),
        });
        self.queue_session_frame(&disconnect, channel);
        self.drop_session_state(channel);
        tracing::debug!(
            channel,
            reason = reason.as_str_name(),
            "session disconnected"
        );
        Ok(())
    }

    // ---- shared helpers, also used by the inbound half ----

    /// The key of the session on `channel`, while it is open.
    #[doc(hidden)]
    pub fn session_key(&self, channel: u32) -> Option<&SessionKey> {
        self.channels.get(channel).map(|c| &c.key)
    }

    pub(crate) fn open_peer(&self) -> Result<&Peer, EngineError> {
        match &self.phase {
            Phase::Open(peer) => Ok(peer),
            Phase::AwaitingHello { .. } => Err(EngineError::LinkNotUp),
            Phase::Closed => Err(EngineError::LinkClosed),
        }
    }

    fn connected(&self, channel: u32) -> Result<(), EngineError> {
        self.open_peer()?;
        match self.channels.get(channel) {
            Some(c) if c.state == State::Connected => Ok(()),
            _ => Err(EngineError::WrongState {
                channel,
                expected: "connected",
            }),
        }
    }

    fn incoming_token(&self, channel: u32) -> Result<Token, EngineError> {
        match self.channels.get(channel) {
            Some(c) if matches!(c.state, State::Incoming { .. }) => Ok(c.token),
            _ => Err(EngineError::WrongState {
                channel,
                expected: "incoming",
            }),
        }
    }
}
