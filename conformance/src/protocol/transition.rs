//! The steps the suite takes and what it observes, as the model names them.

use acm::{ConnectErrorCode, DisconnectReason};

use super::implementation::{Call, LinkFault, Side};

/// The model's name for a session (an API session on one device).
pub type Handle = u32;
/// The model's name for one handshake and the session it opens, on both devices.
pub type Chan = u32;

/// Where an accepted request's session comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptInto {
    /// A session the responding app creates for it.
    Fresh(Handle),
    /// A session the app already has.
    Existing(Handle),
}

/// One step: an API call, a link fault, or time passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// `createAbilityConnectionSession` on `side` for `SERVICES[service]`, with the peer app's
    /// ability registered or not (`ghost`).
    Create {
        /// The device.
        side: Side,
        /// The new session.
        handle: Handle,
        /// Index into `SERVICES`.
        service: usize,
        /// Whether the peer ability is one no app registers.
        ghost: bool,
    },
    /// `connect`; `chan` names the handshake it may start.
    Connect {
        /// The session.
        handle: Handle,
        /// The handshake.
        chan: Chan,
    },
    /// `acceptConnect` for the request of `chan`.
    Accept {
        /// The handshake.
        chan: Chan,
        /// The session to accept on.
        into: AcceptInto,
    },
    /// `reject` for the request of `chan`.
    Reject {
        /// The handshake.
        chan: Chan,
    },
    /// `sendMessage` of a text of `len` bytes that names payload `id`.
    SendMessage {
        /// The session.
        handle: Handle,
        /// The payload.
        id: u64,
        /// Its length.
        len: usize,
    },
    /// `sendData` of `len` bytes that name payload `id`.
    SendData {
        /// The session.
        handle: Handle,
        /// The payload.
        id: u64,
        /// Its length.
        len: usize,
    },
    /// A collaboration event whose message names payload `id`.
    SendEvent {
        /// The session.
        handle: Handle,
        /// The payload.
        id: u64,
    },
    /// `disconnect`.
    Disconnect {
        /// The session.
        handle: Handle,
    },
    /// `destroyAbilityConnectionSession`.
    Destroy {
        /// The session.
        handle: Handle,
    },
    /// A fault on the link.
    Fault(LinkFault),
    /// Time passes.
    Advance {
        /// How long, in ms.
        ms: u64,
    },
}

/// Who observes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// A session.
    Session(Handle),
    /// A device's app (its `onCollaborate` handler).
    App(Side),
}

/// How a call ended, as the model compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Success.
    Ok,
    /// `connect` connected.
    Connected,
    /// `connect` did not: the code, and the peer app's reason for PEER_APP_REJECTED.
    Refused(ConnectErrorCode, Option<String>),
    /// An API error code.
    Error(u32),
}

/// One observation, as the model compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// `connect` event.
    Connect,
    /// `disconnect` event.
    Disconnect(DisconnectReason),
    /// A message carrying payload `id`.
    Message(u64),
    /// Data carrying payload `id`.
    Data(u64),
    /// A collaboration event carrying payload `id`.
    Collaborate(u64),
    /// A message, data or event that is none of the payloads sent.
    Mangled,
    /// An asynchronous call ended.
    Done(Call, Ended),
    /// The app's handler got the request of a handshake.
    Request(Chan),
}
