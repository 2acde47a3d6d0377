//! What an implementation offers the protocol suite: two devices, A and B, on one network, each
//! with one app, driven through the abilityConnectionManager API.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use acm::{CollaborateEventType, ConnectResult, DisconnectReason};
use bytes::Bytes;

/// The bundle of the app on both devices.
pub const BUNDLE: &str = "org.acm.conformance";
/// The module of the app's abilities.
pub const MODULE: &str = "entry";
/// The ability both apps register an `onCollaborate` handler for.
pub const ABILITY: &str = "MainAbility";
/// An ability no app registers: requests for it get PEER_ABILITY_NO_ONCOLLABORATE.
pub const GHOST_ABILITY: &str = "GhostAbility";
/// The services sessions are created for. The handler answers requests for the last one at
/// once with REJECT and [`HANDLER_REASON`]; it keeps every other request for a later
/// [`ProtocolImplementation::accept`] or [`ProtocolImplementation::reject`].
pub const SERVICES: [&str; 3] = ["notes", "photos", "refused"];
/// The reason the handler gives when it refuses a request for `SERVICES[2]`.
pub const HANDLER_REASON: &str = "the app refuses this service";

/// One of the two devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    /// Device `alpha`.
    A,
    /// Device `beta`.
    B,
}

impl Side {
    /// Both devices.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    /// The other device.
    pub fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    /// 0 for A, 1 for B.
    pub fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }

    /// The device id the side's device uses.
    pub fn device_id(self) -> &'static str {
        match self {
            Self::A => "alpha",
            Self::B => "beta",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "A",
            Self::B => "B",
        })
    }
}

/// A session as the implementation numbers it on one device.
pub type SessionRef = u64;

/// A collaboration request as the implementation numbers it on one device, from
/// [`Observation::Request`].
pub type RequestRef = u64;

/// A fault on every link between the two devices. Faults that name a side act on the frames that
/// side sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// Holds every frame the side sends until [`LinkFault::Unstall`].
    Stall(Side),
    /// Lets the held frames through, in order.
    Unstall(Side),
    /// Discards the next `n` frames the side sends.
    DropFrames(Side, u64),
    /// Changes one byte of each of the next `n` frames the side sends.
    CorruptFrames(Side, u64),
    /// Breaks the links, as a lost radio would: frames in flight vanish.
    Lose,
}

/// What a session reports to its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// `connect`: the session is connected.
    Connect,
    /// `disconnect`, with the reason.
    Disconnect(DisconnectReason),
    /// `receiveMessage`.
    Message(String),
    /// `receiveData`.
    Data(Bytes),
    /// `collaborateEvent`.
    Collaborate(CollaborateEventType, Option<String>),
}

/// An API call that finishes asynchronously.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    /// `connect`.
    Connect,
    /// `acceptConnect`.
    Accept,
    /// `sendMessage`.
    SendMessage,
    /// `sendData`.
    SendData,
    /// `sendCollaborateEvent` (the event of a collaboration).
    SendEvent,
}

/// How an asynchronous call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `connect` resolved with this result.
    Connect(ConnectResult),
    /// The call succeeded.
    Ok,
    /// The call failed with this API error code (201, 401 or 801).
    Error(u32),
}

/// Something the implementation did that the suite checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// A session reported an event.
    Event {
        /// The device.
        device: Side,
        /// The session.
        session: SessionRef,
        /// The event.
        event: SessionEvent,
    },
    /// An asynchronous call finished.
    Done {
        /// The device.
        device: Side,
        /// The session the call was made on.
        session: SessionRef,
        /// The call.
        call: Call,
        /// How it ended.
        outcome: Outcome,
    },
    /// The app's `onCollaborate` handler received a request.
    Request {
        /// The device whose app received it.
        device: Side,
        /// How to name the request in `accept` and `reject`.
        request: RequestRef,
        /// The service asked for.
        service: String,
        /// The requesting app's ability.
        peer_ability: String,
    },
}

/// What an implementation holds now, to prove that nothing grows without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    /// Sessions each device's app holds (created and not destroyed), A then B.
    pub sessions: [usize; 2],
    /// Links open between the two devices.
    pub links: usize,
    /// Tasks alive in the runtime, where the implementation can count them.
    pub tasks: Option<usize>,
}

/// Two devices, A and B, on a shared network, each running one app ([`BUNDLE`]) that registers
/// an `onCollaborate` handler for [`ABILITY`] (see [`SERVICES`] for how it answers).
///
/// Every method is called from within the async runtime that [`ProtocolImplementation::advance`]
/// runs on (for the reference implementation, a current-thread tokio runtime with a paused
/// clock). Calls that finish asynchronously are started by their method and report through
/// [`ProtocolImplementation::drain`]; they make progress only while `advance` runs.
pub trait ProtocolImplementation {
    /// What reports call the implementation.
    fn name(&self) -> String;

    /// `createAbilityConnectionSession` on `device` for `service`, with the app on the other
    /// device's `peer_ability` as peer and default options. Returns the session, or the error
    /// code.
    fn create_session(
        &mut self,
        device: Side,
        service: &str,
        peer_ability: &str,
    ) -> Result<SessionRef, u32>;

    /// Starts `connect`; its end is an [`Observation::Done`] with [`Call::Connect`].
    fn connect(&mut self, device: Side, session: SessionRef);

    /// Starts `acceptConnect(session, token)` with the token of `request`; its end is an
    /// [`Observation::Done`] with [`Call::Accept`]. A request the implementation never reported
    /// must be refused with 401.
    fn accept(&mut self, device: Side, request: RequestRef, session: SessionRef);

    /// `reject(token, reason)` with the token of `request`.
    fn reject(&mut self, device: Side, request: RequestRef, reason: &str) -> Result<(), u32>;

    /// Starts `sendMessage`; its end is an [`Observation::Done`] with [`Call::SendMessage`].
    fn send_message(&mut self, device: Side, session: SessionRef, text: String);

    /// Starts `sendData`; its end is an [`Observation::Done`] with [`Call::SendData`].
    fn send_data(&mut self, device: Side, session: SessionRef, data: Bytes);

    /// Starts sending a collaboration event; its end is an [`Observation::Done`] with
    /// [`Call::SendEvent`].
    fn send_event(
        &mut self,
        device: Side,
        session: SessionRef,
        event: CollaborateEventType,
        message: String,
    );

    /// `disconnect`.
    fn disconnect(&mut self, device: Side, session: SessionRef) -> Result<(), u32>;

    /// `destroyAbilityConnectionSession`.
    fn destroy(&mut self, device: Side, session: SessionRef) -> Result<(), u32>;

    /// Applies `fault` to every link between the devices.
    fn inject(&mut self, fault: LinkFault);

    /// Lets the implementation run for `by` of its time, and at least until everything that
    /// can happen at once has happened.
    fn advance(&mut self, by: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>>;

    /// The observations made since the last call, in the order they happened.
    fn drain(&mut self) -> Vec<Observation>;

    /// What the implementation holds now.
    fn resources(&self) -> Resources;

    /// Waits until `expected` observations are there to drain, for an implementation on a real
    /// clock whose steps take real time (over the wire). One on the suite's clock has them
    /// once [`ProtocolImplementation::advance`] returns: the default waits for nothing.
    fn settle(&mut self, expected: usize) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        let _ = expected;
        Box::pin(async {})
    }

    /// On a real clock, the shortest handshake timer of either device (`SESS-5`): a handshake
    /// under way that long may have ended on its own, which the model never expects. `None`
    /// (the default) on the suite's paused clock, where no time passes unless a step says so.
    fn handshake_limit(&self) -> Option<Duration> {
        None
    }

    /// Links between the devices that stay open whatever the sessions do: over the wire, the
    /// one that carries the suite's driver session. The suite expects at least this many.
    fn links_at_rest(&self) -> usize {
        0
    }
}

/// Makes a fresh implementation (two new devices on a new network), inside the runtime the suite
/// runs it on.
pub type Factory = std::sync::Arc<dyn Fn() -> Box<dyn ProtocolImplementation> + Send + Sync>;
