//! The protocol state of a whole device: every link's [`LinkEngine`], the apps' sessions, and
//! the rules that span links, sans-IO.
//!
//! A [`LinkEngine`] knows one link. A device may have several links, one per peer device and,
//! for a while, two to the same device (SPEC `LINK-8`), and its apps' sessions move between
//! them as they connect and disconnect. [`DeviceEngine`] holds all of that: it owns the links'
//! engines, the sessions of the device's apps (idle, connecting on a link, connected on a
//! link), the requests of peers that wait for an app's answer and the tokens that name them,
//! and it applies the rules no single link can: a request is refused while a session between
//! the same apps for the same service is connected or being requested on another link
//! (`SESS-3`, `SESS-7`), a token is routed to the link and channel of its request, and of two
//! links to one device the one the lower id dialed is kept (`LINK-8`).
//!
//! Like the link engine it owns no socket, task or clock. The runtime tells it which links the
//! transport opened ([`DeviceEngine::add_link`]), hands it each link's frames
//! ([`DeviceEngine::handle_message`]) and the time ([`DeviceEngine::handle_timeout`]), makes
//! the apps' calls, and takes out, link by link, the frames to send
//! ([`DeviceEngine::poll_transmit`]), the events ([`DeviceEngine::poll_event`]) and the next
//! deadline ([`DeviceEngine::poll_timeout`]). Each link's events are the events of that link's
//! sessions, in the order of its frames: a runtime that hands each link's events to the apps
//! in order keeps every session's events in order.
//!
//! ```
//! use std::time::Instant;
//! use acm_engine::device::{DeviceEngine, DeviceEvent};
//! use acm_engine::EngineConfig;
//! use acm_transport::Role;
//! use acm_wire::pb;
//!
//! let now = Instant::now();
//! let mut phone = DeviceEngine::new("phone", EngineConfig::default());
//! let mut tablet = DeviceEngine::new("tablet", EngineConfig::default());
//! let to_tablet = phone.add_link(now, Role::Dialer, "tablet", 65_535, [1; 16]);
//! let to_phone = tablet.add_link(now, Role::Acceptor, "phone", 65_535, [2; 16]);
//! let pass = |from: &mut DeviceEngine, a, to: &mut DeviceEngine, b| {
//!     while let Some(frame) = from.poll_transmit(a, now) {
//!         to.handle_message(b, now, frame);
//!     }
//! };
//! pass(&mut phone, to_tablet, &mut tablet, to_phone);
//! pass(&mut tablet, to_phone, &mut phone, to_tablet);
//! assert!(matches!(phone.poll_event(to_tablet), Some(DeviceEvent::LinkUp { .. })));
//! assert!(matches!(tablet.poll_event(to_phone), Some(DeviceEvent::LinkUp { .. })));
//!
//! // The phone's app asks the tablet's; the tablet's app accepts with a session of its own.
//! let app = |device: &str| pb::PeerInfo {
//!     device_id: device.into(),
//!     bundle_name: "com.example".into(),
//!     module_name: "entry".into(),
//!     ability_name: "EntryAbility".into(),
//!     service_name: "chat".into(),
//! };
//! let asking = phone.create_session(app("phone"), app("tablet"), pb::ConnectOptions::default());
//! phone.connect(asking, [7; 16], now).unwrap();
//! pass(&mut phone, to_tablet, &mut tablet, to_phone);
//! let Some(DeviceEvent::IncomingRequest(request)) = tablet.poll_event(to_phone) else {
//!     panic!("the request is routed to the tablet's app")
//! };
//! let answering = tablet.create_session(app("tablet"), request.source, request.options);
//! tablet.accept(answering, &request.token, "com.example", now).unwrap();
//! pass(&mut tablet, to_phone, &mut phone, to_tablet);
//! assert!(matches!(phone.poll_event(to_tablet), Some(DeviceEvent::Connected { session, .. }) if session == asking));
//! assert!(matches!(tablet.poll_event(to_phone), Some(DeviceEvent::Connected { session, .. }) if session == answering));
//! ```

mod links;
mod sessions;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use acm_wire::pb::{
    CollaborateEventType, ConnectErrorCode, ConnectOptions, DisconnectReason, LinkCloseReason,
    PeerInfo,
};
use acm_wire::{BufferPool, MemoryBudget};
use bytes::Bytes;

use crate::HashMap;
use crate::config::EngineConfig;
use crate::event::{Closer, Token};
use crate::link::LinkEngine;
use crate::names::{KeyHashed, SessionKey};

use sessions::{Apps, Pending, Session};

/// The id of a session of one of the device's apps. Ids start at [`FIRST_SESSION_ID`] and are
/// never reused on a device.
pub type SessionId = u64;

/// The first session id of a device: ids are greater than 100, as the reference's are.
pub const FIRST_SESSION_ID: SessionId = 101;

/// The default memory budget of a device: 256 MiB for the data of all its links together
/// (transfers being received, received data its apps hold, data waiting to be sent).
pub const DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

/// How long a link that lost the `LINK-8` preference stays open, so that a connect that chose
/// it just before the other link came up can finish; then it closes once it carries no session.
pub const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// A link of the device, as [`DeviceEngine::add_link`] names it. Never reused by an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(u64);

impl LinkId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for LinkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "link {}", self.0)
    }
}

/// One outgoing data transfer: its link, its session's channel there, and its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransferRef {
    /// The link it is sent on.
    pub link: LinkId,
    /// The session's channel on the link.
    pub channel: u32,
    /// The transfer's id on the channel.
    pub transfer_id: u32,
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Not connected: new, disconnected, or failed to connect. It may connect.
    Idle,
    /// Its request is on `channel` of `link`, awaiting the peer's answer.
    Connecting {
        /// The link.
        link: LinkId,
        /// The session's channel on it.
        channel: u32,
    },
    /// Connected on `channel` of `link`.
    Connected {
        /// The link.
        link: LinkId,
        /// The session's channel on it.
        channel: u32,
    },
}

impl SessionState {
    /// The link the session is on, unless it is idle.
    pub fn link(self) -> Option<LinkId> {
        match self {
            Self::Idle => None,
            Self::Connecting { link, .. } | Self::Connected { link, .. } => Some(link),
        }
    }
}

/// A request of a peer's app for an app of this device, which passed the device's checks and
/// waits for the app's answer: [`DeviceEngine::accept`] or [`DeviceEngine::reject`] with its
/// token, before the responder timeout (SPEC `SESS-5`).
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedRequest {
    /// The token that names the request.
    pub token: Token,
    /// The requesting app, with the service it asks for as its `service_name` (SPEC 5.2: the
    /// service is the one the request names for its target).
    pub source: PeerInfo,
    /// The app asked for, on this device.
    pub target: PeerInfo,
    /// The requester's options.
    pub options: ConnectOptions,
}

/// What the runtime acts on, link by link ([`DeviceEngine::poll_event`]), in the order it
/// happened on the link.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    /// HELLOs were exchanged: the link carries sessions.
    LinkUp {
        /// The peer's device id.
        peer: String,
        /// The negotiated version.
        version: u8,
    },
    /// The link has ended; its sessions were reported ended before this event. Once its
    /// frames are sent ([`DeviceEngine::is_finished`]), close the transport's link and
    /// [`DeviceEngine::remove_link`].
    LinkClosed {
        /// Who ended it.
        by: Closer,
        /// Why.
        reason: LinkCloseReason,
        /// Details, naming the SPEC rule when one was broken.
        detail: String,
    },
    /// A peer's app asks for an app of this device: hand it to the app's `onCollaborate`.
    IncomingRequest(Box<RoutedRequest>),
    /// A session is connected: the peer accepted this side's request, or this side accepted
    /// the peer's.
    Connected {
        /// The session.
        session: SessionId,
        /// Its channel on the link.
        channel: u32,
    },
    /// A connect of this side ended without a session.
    ConnectFailed {
        /// The session, idle again (or destroyed).
        session: SessionId,
        /// The channel its request was on.
        channel: u32,
        /// Why, as the API reports it.
        code: ConnectErrorCode,
        /// The peer app's reason, or what went wrong.
        reason: String,
    },
    /// A text message arrived.
    Message {
        /// The session.
        session: SessionId,
        /// The text.
        text: String,
    },
    /// A whole data transfer arrived.
    Data {
        /// The session.
        session: SessionId,
        /// The bytes.
        data: Bytes,
    },
    /// Part of an incoming transfer arrived (see [`crate::EngineEvent::DataProgress`]).
    DataProgress {
        /// The session.
        session: SessionId,
        /// Bytes received so far.
        received: u64,
        /// The transfer's whole length.
        total: u64,
    },
    /// A collaboration event arrived.
    CollaborateEvent {
        /// The session.
        session: SessionId,
        /// Its type.
        event_type: CollaborateEventType,
        /// Its message.
        message: String,
    },
    /// A connected session ended by the peer, a failure or the link's end (not by this side's
    /// own `disconnect`, which is not reported).
    Disconnected {
        /// The session, idle again.
        session: SessionId,
        /// The reason the app is told.
        reason: DisconnectReason,
    },
    /// A fragment of an outgoing transfer was handed out for the link.
    DataSent {
        /// The transfer.
        transfer: TransferRef,
        /// Its bytes handed out so far.
        sent: u64,
        /// Its whole length.
        total: u64,
    },
    /// Every fragment of a transfer was handed out for the link.
    TransferSent(TransferRef),
    /// A transfer was dropped before all of it was handed out: its session or link ended.
    TransferAborted(TransferRef),
}

/// Where a link stands with `LINK-8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retire {
    /// The link is preferred, or the only one to its device.
    No,
    /// Another link is preferred: this one closes once this grace is over and it carries no
    /// session.
    After(Instant),
    /// The grace is over: the link closes as soon as it carries no session.
    Due,
}

/// One link of the device.
#[derive(Debug)]
struct Slot {
    engine: LinkEngine,
    /// The peer device, as the transport named it.
    peer: String,
    /// The device that dialed the link (`LINK-8` prefers the lower id's links).
    dialer: String,
    /// Whether HELLOs were exchanged and the link has not ended.
    up: bool,
    /// Whether the link lost the `LINK-8` preference, and when it may close.
    retire: Retire,
    /// The session of each channel that carries one of this device's sessions.
    channels: HashMap<u32, SessionId>,
    /// The token of each channel whose request waits for an app of this device.
    requests: HashMap<u32, Token>,
    /// What the runtime has not taken yet.
    events: VecDeque<DeviceEvent>,
}

/// The protocol state of one device. See the module docs.
#[derive(Debug)]
pub struct DeviceEngine {
    local: String,
    config: EngineConfig,
    /// The buffers every link's received transfers are delivered in.
    pool: BufferPool,
    /// The memory every link's data is charged against.
    budget: MemoryBudget,
    links: HashMap<LinkId, Slot>,
    next_link: u64,
    /// The links to each peer device, in the order they were added.
    peers: HashMap<String, Vec<LinkId>>,
    sessions: HashMap<SessionId, Session>,
    next_session: SessionId,
    /// The sessions of each app.
    apps: Apps,
    /// The sessions connecting or connected, by what makes sessions the same (SPEC `SESS-3`).
    active: std::collections::HashMap<SessionKey, Vec<SessionId>, KeyHashed>,
    /// Requests of peers waiting for an app of this device, by token.
    pending: HashMap<Token, Pending>,
    /// Units of work done so far (see [`DeviceEngine::work`]).
    work: u64,
}

impl DeviceEngine {
    /// The engine of device `local_device`, with `config` for every link, and no link yet.
    pub fn new(local_device: impl Into<String>, config: EngineConfig) -> Self {
        let budget = MemoryBudget::new(DEFAULT_MEMORY_BUDGET);
        let pool = BufferPool::default();
        pool.charge_to(&budget);
        Self {
            local: local_device.into(),
            config,
            pool,
            budget,
            links: HashMap::default(),
            next_link: 1,
            peers: HashMap::default(),
            sessions: HashMap::default(),
            next_session: FIRST_SESSION_ID,
            apps: Apps::default(),
            active: std::collections::HashMap::default(),
            pending: HashMap::default(),
            work: 0,
        }
    }

    /// Delivers every link's received transfers in buffers of `pool` (see
    /// [`LinkEngine::with_buffer_pool`]). Call it before adding links.
    #[must_use]
    pub fn with_buffer_pool(mut self, pool: BufferPool) -> Self {
        pool.charge_to(&self.budget);
        self.pool = pool;
        self
    }

    /// The pool every link's received transfers are delivered in. The buffers it keeps count
    /// in the device's budget ([`acm_wire::BufferPool::charge_to`]).
    pub fn buffer_pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Charges the data of every link against `budget` (see [`LinkEngine::with_memory_budget`]):
    /// the device admits incoming transfers only while they fit in it, whichever link they
    /// come on (SPEC `DATA-7`), and the buffers kept for reuse count in it too (`LIMIT-1`).
    /// Call it before adding links. The default is a budget of [`DEFAULT_MEMORY_BUDGET`] of
    /// the engine's own.
    #[must_use]
    pub fn with_memory_budget(mut self, budget: MemoryBudget) -> Self {
        self.pool.charge_to(&budget);
        self.budget = budget;
        self
    }

    /// The budget every link's data is charged against: its `used()` is the memory the
    /// device's data holds now.
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// This device's id.
    pub fn local_device(&self) -> &str {
        &self.local
    }

    /// The settings of every link.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The link engine of `link`, to look at (tests, fuzzers, statistics).
    pub fn link(&self, link: LinkId) -> Option<&LinkEngine> {
        self.links.get(&link).map(|slot| &slot.engine)
    }

    /// Every link of the device, in no particular order.
    pub fn link_ids(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.links.keys().copied()
    }

    /// The number of sessions of the device's apps, in every state.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The number of peers' requests waiting for an app of this device.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// The units of work the device's rules have done so far: one for each event of a link
    /// engine it handled, and one for each entry it looked at in a list or map whose size
    /// depends on the number of links, sessions or requests. A count, not a time: tests use it
    /// to check that the work per request stays flat however many requests, sessions and links
    /// there are.
    pub fn work(&self) -> u64 {
        self.work
    }

    fn count(&mut self, units: usize) {
        self.work = self.work.saturating_add(units as u64);
    }
}
