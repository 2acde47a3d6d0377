//! The properties the checker holds the engine to, each with the SPEC rules it stands for.

use std::fmt;

/// A property of every reachable state (safety) or of every state once the network is quiet
/// (the quiescence check, which stands for liveness).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Property {
    /// Every connect ends in exactly one result (`Connected` or `ConnectFailed`), on the link
    /// and channel of its request, and the engine's state of every session is what its events
    /// said. SPEC `SESS-4`, `SESS-5`, section 5.7.
    OneResult,
    /// A device never has two sessions connected between the same apps for the same service.
    /// SPEC `SESS-3`, `SESS-7`.
    OneSession,
    /// Of two crossing requests for the same session, exactly one goes on: the one with the
    /// greater token reaches the peer's app, the other is refused with
    /// `CONNECTED_SESSION_EXISTS`. SPEC `SESS-7`.
    Crossing,
    /// A session's end is seen by the peer with the reason its cause gives: the peer app's
    /// `disconnect()` as `PEER_APP_CLOSE_COLLABORATION`, its destroy as `PEER_APP_EXIT`, a
    /// failure or the link's end as `NETWORK_DISCONNECTED`. SPEC `DISC-1`, `DISC-2`, `LINK-7`.
    DisconnectReason,
    /// Data arrives whole, as one transfer the peer sent on the session, in order, or not at
    /// all. SPEC `DATA-4`, `DATA-5`, section 6.3, `MSG-2`.
    WholeData,
    /// Messages, data and events reach only a session connected on their link, and only what
    /// the peer sent on it, in order. SPEC `SESS-6`, `DISC-2`, `MSG-2`.
    ConnectedOnly,
    /// Nothing is sent after LINK_CLOSE, sent or received, nor on a channel after its
    /// DISCONNECT. SPEC `LINK-7`, `DISC-2`.
    NothingAfterClose,
    /// Correct engines on a correct network never find a rule broken: no DISCONNECT with
    /// `PROTOCOL_ERROR` or `LIMIT_EXCEEDED` and no LINK_CLOSE with `PROTOCOL_ERROR` or
    /// `FRAME_TOO_LARGE`, but for frames the network tampered with. SPEC section 11.
    NoRuleBroken,
    /// Every timer SPEC names fires or is cancelled: once a link's deadlines are handled none
    /// is left behind, no handshake outlives its timer, no request outlives its responder
    /// timer or its requester, and a silent link closes. SPEC section 5.7, `SESS-5`, `LINK-6`.
    Timers,
    /// A request whose token the receiver has seen on the link never reaches its app. SPEC
    /// `SESS-1`.
    ReplayRefused,
    /// A CONNECT_RESPONSE with another token than its request's fails the connect with
    /// `SYSTEM_INTERNAL_ERROR`. SPEC `SESS-4`.
    ForgedResponseRefused,
    /// A message over 1024 bytes never reaches the app. SPEC `MSG-1`.
    MessageLimit,
    /// Once the network is quiet and every timer has passed, no connect waits for its result
    /// and no request waits for an answer (liveness). SPEC `SESS-4`, `SESS-5`.
    EventuallyAnswered,
    /// Once the network is quiet, a session connected on one side of a link is connected on
    /// the other, on the same channel. SPEC `DISC-1`, `DISC-2`, `LINK-7`.
    Twins,
}

impl Property {
    /// Every property.
    pub const ALL: [Self; 14] = [
        Self::OneResult,
        Self::OneSession,
        Self::Crossing,
        Self::DisconnectReason,
        Self::WholeData,
        Self::ConnectedOnly,
        Self::NothingAfterClose,
        Self::NoRuleBroken,
        Self::Timers,
        Self::ReplayRefused,
        Self::ForgedResponseRefused,
        Self::MessageLimit,
        Self::EventuallyAnswered,
        Self::Twins,
    ];

    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OneResult => "one-result",
            Self::OneSession => "one-session",
            Self::Crossing => "crossing",
            Self::DisconnectReason => "disconnect-reason",
            Self::WholeData => "whole-data",
            Self::ConnectedOnly => "connected-only",
            Self::NothingAfterClose => "nothing-after-close",
            Self::NoRuleBroken => "no-rule-broken",
            Self::Timers => "timers",
            Self::ReplayRefused => "replay-refused",
            Self::ForgedResponseRefused => "forged-response-refused",
            Self::MessageLimit => "message-limit",
            Self::EventuallyAnswered => "eventually-answered",
            Self::Twins => "twins",
        }
    }

    /// The SPEC rules it stands for.
    pub fn rules(self) -> &'static str {
        match self {
            Self::OneResult => "SESS-4, SESS-5, 5.7",
            Self::OneSession => "SESS-3, SESS-7",
            Self::Crossing => "SESS-7",
            Self::DisconnectReason => "DISC-1, DISC-2, LINK-7",
            Self::WholeData => "DATA-4, DATA-5, 6.3, MSG-2",
            Self::ConnectedOnly => "SESS-6, DISC-2, MSG-2",
            Self::NothingAfterClose => "LINK-7, DISC-2",
            Self::NoRuleBroken => "11",
            Self::Timers => "5.7, SESS-5, LINK-6",
            Self::ReplayRefused => "SESS-1",
            Self::ForgedResponseRefused => "SESS-4",
            Self::MessageLimit => "MSG-1",
            Self::EventuallyAnswered => "SESS-4, SESS-5",
            Self::Twins => "DISC-1, DISC-2, LINK-7",
        }
    }
}

impl fmt::Display for Property {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.rules())
    }
}

/// A property broken, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property.
    pub property: Property,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.property, self.detail)
    }
}

/// `Err` with a violation of `property`.
pub(crate) fn broken<T>(property: Property, detail: impl Into<String>) -> Result<T, Violation> {
    Err(Violation {
        property,
        detail: detail.into(),
    })
}

/// A situation the exploration reached: the report lists them, so that a property that holds
/// is seen to hold where it matters (crossing requests did cross, timers did fire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Witness {
    /// A session connected.
    Connected,
    /// An app rejected a request.
    Rejected,
    /// A request arrived while the receiver's own request for the same session waited.
    CrossingRequests,
    /// A connect failed with `CONNECTED_SESSION_EXISTS`.
    RefusedAsExisting,
    /// An app disconnected a session whose request waited for its answer.
    Withdrawn,
    /// A handshake timer failed a connect.
    HandshakeTimeout,
    /// A responder timer dropped a request.
    ResponderTimeout,
    /// A link closed after three silent keepalive intervals.
    KeepaliveClose,
    /// A link closed for want of the peer's HELLO.
    HelloTimeout,
    /// A link was lost under a connected session.
    LostWithSessions,
    /// A whole transfer arrived.
    DataWhole,
    /// A session ended while its receiver held part of a transfer.
    TransferCut,
    /// A peer's `disconnect()` or destroy was seen with its reason.
    DisconnectSeen,
    /// The answer to the request of a session its app destroyed came.
    DestroyedAnswered,
    /// A replayed request was refused.
    ReplayRefused,
    /// A forged response failed its connect.
    ForgedRefused,
    /// An over-long message ended its session.
    OverlongRefused,
}

impl Witness {
    /// Every witness.
    pub const ALL: [Self; 17] = [
        Self::Connected,
        Self::Rejected,
        Self::CrossingRequests,
        Self::RefusedAsExisting,
        Self::Withdrawn,
        Self::HandshakeTimeout,
        Self::ResponderTimeout,
        Self::KeepaliveClose,
        Self::HelloTimeout,
        Self::LostWithSessions,
        Self::DataWhole,
        Self::TransferCut,
        Self::DisconnectSeen,
        Self::DestroyedAnswered,
        Self::ReplayRefused,
        Self::ForgedRefused,
        Self::OverlongRefused,
    ];

    /// Its bit in a set of witnesses.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The witnesses of set `bits`.
    pub fn of(bits: u32) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|w| bits & w.bit() != 0)
            .collect()
    }
}
