//! The link engine: one per link, sans-IO. Bytes and time go in; frames to send, events and the
//! next deadline come out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use acm_transport::FrameBuf;
use acm_transport::Role;
use acm_wire::pb::{
    self, CollaborateEventType, ConnectErrorCode, DisconnectReason, LinkCloseReason, SessionError,
    connect_response,
};
use acm_wire::{
    AcceptedResponseRef, BufferPool, ConnectRequestRef, Control, ControlAssembler, Fragmenter,
    MIN_FRAME_SIZE, MemoryBudget, Reassembler, SUPPORTED_VERSIONS, encode_accepted_response,
    encode_connect_request, encode_control_into, limits::MAX_MESSAGE_LEN,
};
use bytes::Bytes;

use super::channel::{Channel, Channels, State};
use super::config::EngineConfig;
use super::event::{Closer, ConnectOutcome, EngineError, EngineEvent, Token};
use super::names::SessionKey;
use super::outbound::{Outbound, TransferDone};

/// A request this side's app makes: the handshake's contents.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRequest {
    /// 16 bytes from a CSPRNG (SPEC `SESS-1`).
    pub token: Token,
    /// The requesting app.
    pub source: pb::PeerInfo,
    /// The app asked for, with the service name.
    pub target: pb::PeerInfo,
    /// The options.
    pub options: pb::ConnectOptions,
}

#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) version: u8,
    pub(crate) device: String,
    /// The largest frame this side may send: the peer's announced maximum, within the link's.
    pub(crate) max_frame: u32,
    pub(crate) max_data: u64,
    pub(crate) keepalive: Duration,
}

#[derive(Debug, Clone)]
pub(crate) enum Phase {
    AwaitingHello { deadline: Instant },
    Open(Peer),
    Closed,
}

/// The protocol state of one link and all its sessions (SPEC sections 4 to 7), with no I/O and
/// no clock of its own.
///
/// Feed it each message the link delivers ([`LinkEngine::handle_message`]), the time whenever a
/// deadline passes ([`LinkEngine::handle_timeout`]), and the apps' calls (`connect`, `accept`,
/// `reject`, `send_message`, `send_data`, `disconnect`, `close`). Take from it the frames to send
/// ([`LinkEngine::poll_transmit`]), the events for the apps ([`LinkEngine::poll_event`]) and
/// the next deadline ([`LinkEngine::poll_timeout`]). Every peer input that breaks a rule ends in
/// a typed outcome (a link close or a session close naming the SPEC rule), never a panic.
#[derive(Debug)]
pub struct LinkEngine {
    pub(crate) config: EngineConfig,
    pub(crate) local_device: String,
    pub(crate) expected_peer: Option<String>,
    /// The largest frame the link itself carries.
    pub(crate) link_max_frame: u32,
    /// The largest frame this side accepts, as announced in its HELLO.
    pub(crate) accept_max_frame: u32,
    pub(crate) phase: Phase,
    pub(crate) channels: Channels,
    pub(crate) reassembler: Reassembler,
    pub(crate) assembler: ControlAssembler,
    pub(crate) outbound: Outbound,
    pub(crate) events: VecDeque<EngineEvent>,
    pub(crate) last_sent: Instant,
    pub(crate) last_received: Instant,
    pub(crate) ping_queued: bool,
    pub(crate) pings: u64,
    /// The device's memory budget, which data this side sends is charged against.
    pub(crate) budget: Option<MemoryBudget>,
}

impl LinkEngine {
    /// An engine for a link that opened at `now`. It queues this side's HELLO at once
    /// (SPEC `LINK-1`). `link_max_frame` is the link's own maximum frame size; `nonce` comes
    /// from a CSPRNG; `expected_peer` is the peer's device id when the transport knows it.
    pub fn new(
        now: Instant,
        role: Role,
        local_device: impl Into<String>,
        expected_peer: Option<String>,
        link_max_frame: usize,
        nonce: [u8; 16],
        config: EngineConfig,
    ) -> Self {
        let link_max_frame = u32::try_from(link_max_frame).unwrap_or(u32::MAX);
        let accept_max_frame = config
            .limits
            .max_frame_size
            .min(link_max_frame)
            .max(MIN_FRAME_SIZE);
        let mut engine = Self {
            local_device: local_device.into(),
            expected_peer,
            link_max_frame,
            accept_max_frame,
            phase: Phase::AwaitingHello {
                deadline: now.checked_add(config.hello_timeout).unwrap_or(now),
            },
            channels: Channels::new(role, config.remembered_tokens),
            reassembler: Reassembler::new(config.limits),
            assembler: ControlAssembler::new(),
            outbound: Outbound::default(),
            events: VecDeque::new(),
            last_sent: now,
            last_received: now,
            ping_queued: false,
            pings: 0,
            budget: None,
            config,
        };
        let hello = Control::Hello(pb::Hello {
            min_version: (*SUPPORTED_VERSIONS.start()).into(),
            max_version: (*SUPPORTED_VERSIONS.end()).into(),
            device_id: engine.local_device.clone(),
            max_frame_size: engine.accept_max_frame,
            keepalive_interval_ms: engine.config.keepalive_ms(),
            features: 0,
            nonce: Bytes::copy_from_slice(&nonce),
            max_data_size: engine.config.limits.max_data_size,
        });
        engine.queue_link_frame(&hello, *SUPPORTED_VERSIONS.end());
        engine
    }

    /// Delivers received data transfers in buffers of `pool`, shared with other engines,
    /// instead of a pool of the engine's own. Call it before the link carries data.
    #[must_use]
    pub fn with_buffer_pool(mut self, pool: BufferPool) -> Self {
        let reassembler = Reassembler::with_pool(self.config.limits, pool);
        self.reassembler = match self.budget.clone() {
            Some(budget) => reassembler.with_budget(budget),
            None => reassembler,
        };
        self
    }

    /// Charges the data of both directions against `budget`, shared with the device's other
    /// links: an incoming transfer is admitted only within it (SPEC `DATA-7`), and the data
    /// this side sends counts while it waits (see [`acm_wire::budget`]). Call it before the
    /// link carries data.
    #[must_use]
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Self {
        let pool = self.reassembler.pool().clone();
        self.reassembler =
            Reassembler::with_pool(self.config.limits, pool).with_budget(budget.clone());
        self.budget = Some(budget);
        self
    }

    /// The negotiated version, once the link is up.
    pub fn version(&self) -> Option<u8> {
        match &self.phase {
            Phase::Open(peer) => Some(peer.version),
            _ => None,
        }
    }

    /// The engine's settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Whether HELLOs have been exchanged and the link has not ended.
    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// Whether the link has ended (frames may still wait in [`LinkEngine::poll_transmit`]).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether the link has ended and every frame has been handed out: the transport link can
    /// be closed now.
    pub fn is_finished(&self) -> bool {
        self.is_closed() && self.outbound.is_empty()
    }

    /// Sessions on the link, connected or in handshake.
    pub fn session_count(&self) -> usize {
        self.channels.len()
    }

    /// Control frames waiting to be sent: the runtime stops taking new calls while too many
    /// wait, which is the backpressure of `send_message`.
    pub fn queued_control_frames(&self) -> usize {
        self.outbound.control_len()
    }

    /// Frames waiting to be sent that answer the peer's (PONG, CONNECT_RESPONSE, a DISCONNECT
    /// for a session error): a runtime stops reading the link while many wait, so that a peer
    /// that does not read what it is sent cannot make this side queue without bound (SPEC
    /// `LINK-13`).
    pub fn queued_answers(&self) -> usize {
        self.outbound.answers_len()
    }

    /// The bytes of the control frames waiting to be sent.
    pub fn queued_control_bytes(&self) -> usize {
        self.outbound.control_bytes()
    }

    /// Whether frames wait to be sent.
    pub fn wants_transmit(&self) -> bool {
        !self.outbound.is_empty()
    }

    /// Whether events wait in [`LinkEngine::poll_event`].
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Transfers waiting to be sent.
    pub fn queued_transfers(&self) -> usize {
        self.outbound.transfers_len()
    }

    /// Bytes held by unfinished incoming transfers.
    pub fn reassembly_bytes(&self) -> u64 {
        self.reassembler.buffered_bytes()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    /// The next frame to send. The caller sends it at once, in this order.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        self.poll_transmit_buf(now).map(FrameBuf::into_bytes)
    }

    /// The next frame to send, as [`LinkEngine::poll_transmit`] gives it but possibly in two
    /// parts: a DATA frame comes as its headers and a slice of the app's data, for a link that
    /// can send them without joining them ([`acm_transport::Link::send_buf`]).
    pub fn poll_transmit_buf(&mut self, now: Instant) -> Option<FrameBuf> {
        let (frame, sent) = self.outbound.next()?;
        if let Some(sent) = sent {
            self.events.push_back(EngineEvent::DataSent {
                channel: sent.channel,
                transfer_id: sent.transfer_id,
                sent: sent.sent,
                total: sent.total,
            });
            if sent.done {
                self.events.push_back(EngineEvent::TransferSent {
                    channel: sent.channel,
                    transfer_id: sent.transfer_id,
                });
            }
        }
        self.last_sent = now;
        self.ping_queued = false;
        Some(frame)
    }

    /// When [`LinkEngine::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::AwaitingHello { deadline } => Some(*deadline),
            Phase::Closed => None,
            Phase::Open(peer) => {
                let silence = peer.keepalive.saturating_mul(3);
                let mut next = self.last_received.checked_add(silence);
                if self.wants_transmit() {
                    next = earliest(next, self.last_sent.checked_add(silence));
                }
                if !self.ping_queued {
                    next = earliest(next, self.last_sent.checked_add(peer.keepalive));
                }
                earliest(next, self.channels.next_deadline())
            }
        }
    }

    /// Acts on every deadline that has passed by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match &self.phase {
            Phase::Closed => {}
            Phase::AwaitingHello { deadline } => {
                if now >= *deadline {
                    self.fail_link(
                        LinkCloseReason::Timeout,
                        "LINK-10: no HELLO arrived in time".into(),
                    );
                }
            }
            Phase::Open(peer) => {
                let keepalive = peer.keepalive;
                let silence = keepalive.saturating_mul(3);
                if self.close_if_unread(now, silence) {
                    return;
                }
                if passed(now, self.last_received, silence) {
                    self.fail_link(
                        LinkCloseReason::Timeout,
                        format!("LINK-6: nothing received for {silence:?}"),
                    );
                    return;
                }
                if !self.ping_queued && passed(now, self.last_sent, keepalive) {
                    self.pings = self.pings.wrapping_add(1);
                    let ping = Control::Ping(pb::Ping { value: self.pings });
                    self.queue_session_frame(&ping, 0);
                    self.ping_queued = true;
                }
                while let Some(channel) = self.channels.expired(now) {
                    self.expire(channel);
                }
                // A frame queued just now, on a link whose transport has taken nothing for the
                // silence (the clock moved on by more than that at once), falls under LINK-13
                // too: no deadline is left in the past.
                self.close_if_unread(now, silence);
            }
        }
    }

    /// Closes the link if frames wait and the transport has taken none for `silence` (SPEC
    /// `LINK-13`); tells whether it did.
    fn close_if_unread(&mut self, now: Instant, silence: Duration) -> bool {
        if self.wants_transmit() && passed(now, self.last_sent, silence) {
            self.fail_link_abandoning(format!("LINK-13: the peer took no frame for {silence:?}"));
            return true;
        }
        false
    }

    /// The transport lost the link: every session ends with NETWORK_DISCONNECTED.
    pub fn handle_link_lost(&mut self, detail: impl Into<String>) {
        if self.is_closed() {
            return;
        }
        self.end_everything();
        self.outbound.clear_control();
        self.phase = Phase::Closed;
        let detail = detail.into();
        tracing::info!(%detail, "link lost");
        self.events.push_back(EngineEvent::LinkClosed {
            by: Closer::Transport,
            reason: LinkCloseReason::Unspecified,
            detail,
        });
    }

    /// Closes the link on purpose with LINK_CLOSE (SPEC `LINK-7`).
    pub fn close(&mut self, reason: LinkCloseReason, message: impl Into<String>) {
        if self.is_closed() {
            return;
        }
        let message = message.into();
        self.end_everything();
        let close = self.link_close(reason, &message);
        self.queue_link_frame(&close, self.out_version());
        self.phase = Phase::Closed;
        tracing::info!(reason = reason.as_str_name(), %message, "link closed");
        self.events.push_back(EngineEvent::LinkClosed {
            by: Closer::Local,
            reason,
            detail: message,
        });
    }

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

    /// The version frames are written in: the negotiated one, or this side's highest before.
    pub(crate) fn out_version(&self) -> u8 {
        self.version().unwrap_or(*SUPPORTED_VERSIONS.end())
    }

    fn out_max_frame(&self) -> u32 {
        match &self.phase {
            Phase::Open(peer) => peer.max_frame,
            _ => MIN_FRAME_SIZE,
        }
    }

    /// A LINK_CLOSE whose message is cut so that its frame fits what the peer accepts
    /// (SPEC `FRAME-5`; before the peer's HELLO, the 128 bytes every device accepts).
    fn link_close(&self, reason: LinkCloseReason, message: &str) -> Control {
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

    fn expire(&mut self, channel: u32) {
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

/// Whether `span` has passed since `since` at `now`.
fn passed(now: Instant, since: Instant, span: Duration) -> bool {
    since.checked_add(span).is_some_and(|due| now >= due)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
#[doc(hidden)]
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or_default().to_string()
}
