//! The `abilityConnectionManager` API: sessions, connect / accept / reject / disconnect,
//! messages, data, and events, with the reference's types and error codes.

pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod manager;
pub(crate) mod progress;
pub(crate) mod session;
pub(crate) mod types;

pub use error::AcmError;
pub use events::{Callback, Event, EventStream, EventType};
pub use manager::{
    AbilityConnectionManager, AcceptConnect, CollaborateHandler, CollaborateRequest,
    CollaborateResult,
};
pub use progress::SendProgress;
pub use types::{
    CollaborateEventInfo, CollaborateEventType, ConnectErrorCode, ConnectOptions, ConnectResult,
    Context, DisconnectReason, EventCallbackInfo, PeerInfo, Permission, SessionId,
    StartOptionParams, collaboration_keys, collaboration_values,
};
