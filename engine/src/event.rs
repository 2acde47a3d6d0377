//! What a link engine reports, and how its calls fail.

use acm_wire::pb::{
    CollaborateEventType, ConnectErrorCode, ConnectOptions, DisconnectReason, LinkCloseReason,
    PeerInfo, SessionError,
};
use bytes::Bytes;

/// A session token: 16 bytes from a CSPRNG (SPEC `SESS-1`).
pub type Token = [u8; 16];

/// Who ended a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closer {
    /// This side closed it (by choice or because the peer broke a rule).
    Local,
    /// The peer sent LINK_CLOSE.
    Peer,
    /// The transport lost it.
    Transport,
}

/// How a handshake this side asked for ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// The peer's app accepted: the session is connected.
    Accepted,
    /// The session did not open: the code and the reason (empty when none was given).
    Failed {
        /// Why.
        code: ConnectErrorCode,
        /// The peer app's reason, or a description of the failure.
        reason: String,
    },
}

/// Something the runtime must act on. Events come out of [`super::LinkEngine::poll_event`] in
/// the order they happened. Deliberately exhaustive: a driver handles every event, and a new
/// one is a change it must see.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// HELLOs were exchanged and a version agreed: sessions may be opened.
    LinkUp {
        /// The negotiated version.
        version: u8,
        /// The peer's device id, from its HELLO.
        peer_device: String,
    },
    /// The link has ended; every session on it has been reported ended before this event.
    LinkClosed {
        /// Who ended it.
        by: Closer,
        /// The reason.
        reason: LinkCloseReason,
        /// Details, naming the SPEC rule when a rule was broken.
        detail: String,
    },
    /// The peer asks to open a session; answer with `accept` or `reject` on the channel.
    IncomingRequest(Box<IncomingRequest>),
    /// The peer gave up on a request this side had not answered yet (SPEC `SESS-5`), or the
    /// request ended with the link.
    RequestCancelled {
        /// The request's channel.
        channel: u32,
    },
    /// A handshake this side asked for has ended.
    ConnectResult {
        /// The session's channel.
        channel: u32,
        /// How it ended.
        outcome: ConnectOutcome,
    },
    /// A text message arrived.
    Message {
        /// The session's channel.
        channel: u32,
        /// The text.
        text: String,
    },
    /// A whole data transfer arrived.
    Data {
        /// The session's channel.
        channel: u32,
        /// The bytes.
        data: Bytes,
    },
    /// A collaboration event arrived.
    CollaborateEvent {
        /// The session's channel.
        channel: u32,
        /// The event's type.
        event_type: CollaborateEventType,
        /// Its message.
        message: String,
    },
    /// A connected session ended, by the peer's DISCONNECT, a session error, or the link's end.
    SessionClosed {
        /// The session's channel.
        channel: u32,
        /// The reason the app is told.
        reason: DisconnectReason,
        /// The failure, or `None` when an app ended the session.
        error: SessionError,
        /// Details.
        detail: String,
    },
    /// Part of an incoming transfer on a connected session has arrived: reported as fragments
    /// arrive, each time the bytes received pass another step of 64 KiB or a hundredth of the
    /// transfer, whichever is larger, and once with `received == total` just before the
    /// transfer's [`EngineEvent::Data`].
    DataProgress {
        /// The session's channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// Bytes received so far.
        received: u64,
        /// The transfer's whole length, from its FIRST fragment.
        total: u64,
    },
    /// A fragment of an outgoing transfer has been handed to the link: after every fragment,
    /// the bytes of the transfer handed out so far.
    DataSent {
        /// The session's channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// Bytes handed to the link so far.
        sent: u64,
        /// The transfer's whole length.
        total: u64,
    },
    /// Every fragment of a transfer has been handed to the link.
    TransferSent {
        /// The session's channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
    },
    /// A transfer was dropped before all of it was sent, because its session or link ended.
    TransferAborted {
        /// The session's channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
    },
}

/// A request from the peer, waiting for this side's app.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingRequest {
    /// The session's channel.
    pub channel: u32,
    /// The request's token.
    pub token: Token,
    /// The app that asks.
    pub source: PeerInfo,
    /// The app asked for.
    pub target: PeerInfo,
    /// The requester's options.
    pub options: ConnectOptions,
}

/// Why a call on the engine was refused. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The link is not up yet (no HELLO from the peer).
    #[error("the link is not up yet")]
    LinkNotUp,
    /// The link has ended.
    #[error("the link has ended")]
    LinkClosed,
    /// No session in the needed state on this channel.
    #[error("no {expected} session on channel {channel}")]
    WrongState {
        /// The channel.
        channel: u32,
        /// The state the call needs.
        expected: &'static str,
    },
    /// A session between the same apps for the same service is connected or connecting.
    #[error("a session between these apps for this service already exists")]
    SessionExists,
    /// `need_send_data` was asked but this side's transport cannot carry data.
    #[error("this device's transport cannot carry data")]
    LocalCannotCarryData,
    /// The link carries as many sessions as it may.
    #[error("the link carries its maximum of {0} sessions")]
    TooManySessions(usize),
    /// Every channel id of this side has been used.
    #[error("no channel id left on this link")]
    ChannelsExhausted,
    /// The message is longer than 1024 bytes.
    #[error("message of {0} bytes exceeds 1024 bytes")]
    MessageTooLong(usize),
    /// The data is larger than the peer accepts.
    #[error("data of {len} bytes exceeds the peer's maximum of {max}")]
    DataTooLarge {
        /// The data's length.
        len: u64,
        /// The peer's `max_data_size`.
        max: u64,
    },
    /// A body could not be encoded (a field over its limit).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// No session of this device has the id (never created, or destroyed).
    #[error("no session {0}")]
    UnknownSession(u64),
    /// The session is not connected: the call needs a connected session.
    #[error("the session is not connected")]
    NotConnected,
    /// The session is connected or connecting: it must be idle for this call.
    #[error("the session is already connected or connecting")]
    NotIdle,
    /// No link to the session's peer device is up: the runtime dials one, then tries again.
    #[error("no link to device {0:?} is up")]
    NoLink(String),
    /// No request of a peer waits for an answer with this token (never sent, already answered,
    /// withdrawn, or expired).
    #[error("no pending request has this token (unknown, already used, or expired)")]
    UnknownToken,
    /// The request with the token is for another app of this device.
    #[error("the request is for another application")]
    OtherApp,
    /// The request with the token comes from another app or service than the session names;
    /// the first name that differs.
    #[error("the request comes from another {0} than the session's peer")]
    OtherPeer(&'static str),
}
