//! The `abilityConnectionManager` API: sessions, connect / accept / reject / disconnect,
//! messages, data, and events, with the reference's types and error codes. A façade over the
//! runtime: argument checks and the reference's error codes.

pub(crate) mod manager;
pub(crate) mod progress;

pub use crate::error::{AcmError, Capability, Invalid, TokenRefusal};
pub use crate::events::{Callback, Event, EventStream, EventType};
pub use crate::types::{
    CollaborateEventInfo, CollaborateEventType, CollaborateHandler, CollaborateRequest,
    CollaborateResult, ConnectErrorCode, ConnectOptions, ConnectResult, Context, DisconnectReason,
    EventCallbackInfo, PeerInfo, Permission, SessionId, StartOptionParams, collaboration_keys,
    collaboration_values,
};
pub use manager::{AbilityConnectionManager, AcceptConnect};
pub use progress::SendProgress;
