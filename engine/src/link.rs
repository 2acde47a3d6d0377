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

mod calls;
mod ending;

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
