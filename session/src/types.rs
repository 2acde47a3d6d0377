//! The types of OpenHarmony's abilityConnectionManager API, in Rust naming, with the same
//! meaning and the same numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use acm_wire::pb;
use acm_wire::reference::{ApiEnum, read_start_options};
use bytes::Bytes;

/// A collaboration session's id: the reference's `sessionId`, a number greater than 100, never
/// reused while its device lives. [`SessionId::get`] gives the number, and `From<u64>` makes
/// one from a number an app kept (a session with another number is unknown to every call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// The id as the reference's number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for SessionId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl From<SessionId> for u64 {
    fn from(id: SessionId) -> Self {
        id.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Collaboration information of an application on a device (the API's `PeerInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PeerInfo {
    /// The device id.
    pub device_id: String,
    /// The bundle name of the application.
    pub bundle_name: String,
    /// The module name of the application.
    pub module_name: String,
    /// The ability name of the application.
    pub ability_name: String,
    /// The service name; optional in the API (empty when not given).
    pub service_name: String,
}

impl PeerInfo {
    /// Describes an application; the service name is set with [`PeerInfo::with_service_name`].
    pub fn new(
        device_id: impl Into<String>,
        bundle_name: impl Into<String>,
        module_name: impl Into<String>,
        ability_name: impl Into<String>,
    ) -> Self {
        Self {
            device_id: device_id.into(),
            bundle_name: bundle_name.into(),
            module_name: module_name.into(),
            ability_name: ability_name.into(),
            service_name: String::new(),
        }
    }

    /// Sets the service name.
    #[must_use]
    pub fn with_service_name(mut self, service_name: impl Into<String>) -> Self {
        self.service_name = service_name.into();
        self
    }

    /// Sets the service name, in the room the old one had when it fits.
    pub(crate) fn set_service_name(&mut self, service_name: &str) {
        if self.service_name != service_name {
            self.service_name.clear();
            self.service_name.push_str(service_name);
        }
    }

    pub(crate) fn into_wire(self) -> pb::PeerInfo {
        pb::PeerInfo {
            device_id: self.device_id,
            bundle_name: self.bundle_name,
            module_name: self.module_name,
            ability_name: self.ability_name,
            service_name: self.service_name,
        }
    }

    pub(crate) fn from_wire(peer: pb::PeerInfo) -> Self {
        Self {
            device_id: peer.device_id,
            bundle_name: peer.bundle_name,
            module_name: peer.module_name,
            ability_name: peer.ability_name,
            service_name: peer.service_name,
        }
    }
}

/// How the peer application is started (the API's `StartOptionParams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum StartOptionParams {
    /// Start the peer application in the foreground (API value 0).
    #[default]
    StartInForeground,
}

impl StartOptionParams {
    /// The API's number for the value.
    pub fn value(self) -> i32 {
        self.to_wire().api_value().unwrap_or(0)
    }

    fn to_wire(self) -> pb::StartOptionParams {
        match self {
            Self::StartInForeground => pb::StartOptionParams::StartInForeground,
        }
    }
}

/// Connection options for the application (the API's `ConnectOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectOptions {
    /// Whether the session needs transports that carry data (`send_data`): with `Some(true)`,
    /// `connect` fails with [`ConnectErrorCode::LocalWifiNotOpen`] when this device's transport
    /// cannot carry data, and with [`ConnectErrorCode::PeerWifiNotOpen`] when the peer's cannot
    /// (a transport of small messages, say). It states a need and limits nothing: `send_data`
    /// works on any connected session whose transports carry data, whatever this says, and
    /// fails with 801 when this device's transport does not.
    pub need_send_data: Option<bool>,
    /// How the peer application is started.
    pub start_options: Option<StartOptionParams>,
    /// Additional configuration for the connection.
    pub parameters: BTreeMap<String, String>,
}

impl ConnectOptions {
    pub(crate) fn into_wire(self) -> pb::ConnectOptions {
        pb::ConnectOptions {
            need_send_data: self.need_send_data,
            start_options: self
                .start_options
                .map_or(
                    pb::StartOptionParams::Unspecified,
                    StartOptionParams::to_wire,
                )
                .into(),
            parameters: self.parameters,
        }
    }

    pub(crate) fn from_wire(options: pb::ConnectOptions) -> Self {
        let start =
            (options.start_options != 0).then(|| match read_start_options(options.start_options) {
                pb::StartOptionParams::StartInForeground | pb::StartOptionParams::Unspecified => {
                    StartOptionParams::StartInForeground
                }
            });
        Self {
            need_send_data: options.need_send_data,
            start_options: start,
            parameters: options.parameters,
        }
    }
}

macro_rules! api_enum {
    ($(#[$meta:meta])* $name:ident => $wire:ident, $prefix:literal { $($(#[$vmeta:meta])* $variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in the API's order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The API's number for the value.
            pub fn value(self) -> i32 {
                self.to_wire().api_value().unwrap_or(-1)
            }

            /// The value with the API's number, if there is one.
            pub fn from_value(value: i32) -> Option<Self> {
                pb::$wire::from_api_value(value).and_then(Self::from_wire)
            }

            /// The API's name of the value, such as `PEER_APP_REJECTED`.
            pub fn name(self) -> &'static str {
                let wire = self.to_wire().as_str_name();
                wire.strip_prefix($prefix).unwrap_or(wire)
            }

            pub(crate) fn to_wire(self) -> pb::$wire {
                match self {
                    $(Self::$variant => pb::$wire::$variant,)*
                }
            }

            pub(crate) fn from_wire(wire: pb::$wire) -> Option<Self> {
                match wire {
                    $(pb::$wire::$variant => Some(Self::$variant),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

api_enum! {
    /// Why a connection failed (the API's `ConnectErrorCode`).
    ConnectErrorCode => ConnectErrorCode, "CONNECT_ERROR_CODE_" {
        /// A session already exists between the applications (0).
        ConnectedSessionExists,
        /// The peer application rejected the request (1).
        PeerAppRejected,
        /// The local transport cannot carry data though `need_send_data` was asked (2).
        LocalWifiNotOpen,
        /// The peer's transport cannot carry data though `need_send_data` was asked (3).
        PeerWifiNotOpen,
        /// The peer ability has no onCollaborate handler (4).
        PeerAbilityNoOncollaborate,
        /// An internal error: a timeout, a lost link, a broken rule (5).
        SystemInternalError,
    }
}

api_enum! {
    /// Why a session ended (the API's `DisconnectReason`).
    DisconnectReason => DisconnectReason, "DISCONNECT_REASON_" {
        /// The peer application called `disconnect` (0).
        PeerAppCloseCollaboration,
        /// The peer application destroyed the session or ended (1).
        PeerAppExit,
        /// The link was lost, missed its keepalives, or the session failed (2).
        NetworkDisconnected,
    }
}

api_enum! {
    /// The type of a collaboration event (the API's `CollaborateEventType`).
    CollaborateEventType => CollaborateEventType, "COLLABORATE_EVENT_TYPE_" {
        /// Task sending failure (0).
        SendFailure,
        /// Color space conversion failure (1).
        ColorSpaceConversionFailure,
    }
}

/// The result of `connect` (the API's `ConnectResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResult {
    /// Whether the session is connected.
    pub is_connected: bool,
    /// Why not, when it is not.
    pub error_code: Option<ConnectErrorCode>,
    /// The peer application's rejection reason, or what went wrong.
    pub reason: Option<String>,
}

impl ConnectResult {
    pub(crate) fn connected() -> Self {
        Self {
            is_connected: true,
            error_code: None,
            reason: None,
        }
    }

    pub(crate) fn failed(code: ConnectErrorCode, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Self {
            is_connected: false,
            error_code: Some(code),
            reason: (!reason.is_empty()).then_some(reason),
        }
    }
}

/// What an event callback receives (the API's `EventCallbackInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCallbackInfo {
    /// The session.
    pub session_id: SessionId,
    /// Why the session ended (`disconnect` events).
    pub reason: Option<DisconnectReason>,
    /// The message received (`receiveMessage` events).
    pub msg: Option<String>,
    /// The data received (`receiveData` events).
    pub data: Option<Bytes>,
}

/// A collaboration event (the API's `CollaborateEventInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollaborateEventInfo {
    /// The event's type.
    pub event_type: CollaborateEventType,
    /// Its content.
    pub event_msg: Option<String>,
}

/// The API's `CollaborationKeys`: keys of the want parameters of a collaboration.
pub mod collaboration_keys {
    /// The peer device information.
    pub const PEER_INFO: &str = "ohos.collaboration.key.peerInfo";
    /// The connection options.
    pub const CONNECT_OPTIONS: &str = "ohos.collaboration.key.connectOptions";
    /// The collaboration type.
    pub const COLLABORATE_TYPE: &str = "ohos.collaboration.key.abilityCollaborateType";
}

/// The API's `CollaborationValues`.
pub mod collaboration_values {
    /// Default collaboration.
    pub const ABILITY_COLLABORATION_TYPE_DEFAULT: &str = "ohos.collaboration.value.abilityCollab";
    /// Collaboration via connection proxy.
    pub const ABILITY_COLLABORATION_TYPE_CONNECT_PROXY: &str =
        "ohos.collaboration.value.connectProxy";
}

/// A permission an application's context may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// `ohos.permission.INTERNET`.
    Internet,
    /// `ohos.permission.GET_NETWORK_INFO`.
    GetNetworkInfo,
    /// `ohos.permission.SET_NETWORK_INFO`.
    SetNetworkInfo,
    /// `ohos.permission.DISTRIBUTED_DATASYNC`.
    DistributedDatasync,
}

impl Permission {
    /// The four permissions `create_ability_connection_session` requires.
    pub const REQUIRED: [Self; 4] = [
        Self::Internet,
        Self::GetNetworkInfo,
        Self::SetNetworkInfo,
        Self::DistributedDatasync,
    ];

    /// The permission's OpenHarmony name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Internet => "ohos.permission.INTERNET",
            Self::GetNetworkInfo => "ohos.permission.GET_NETWORK_INFO",
            Self::SetNetworkInfo => "ohos.permission.SET_NETWORK_INFO",
            Self::DistributedDatasync => "ohos.permission.DISTRIBUTED_DATASYNC",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An application's context: which ability of which app makes a call, and the permissions it
/// holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The application's bundle name.
    pub bundle_name: String,
    /// The module of the calling ability.
    pub module_name: String,
    /// The calling ability.
    pub ability_name: String,
    /// The permissions granted.
    pub permissions: BTreeSet<Permission>,
}

impl Context {
    /// A context for `bundle/module/ability` holding every permission the API requires.
    pub fn new(
        bundle_name: impl Into<String>,
        module_name: impl Into<String>,
        ability_name: impl Into<String>,
    ) -> Self {
        Self {
            bundle_name: bundle_name.into(),
            module_name: module_name.into(),
            ability_name: ability_name.into(),
            permissions: Permission::REQUIRED.into_iter().collect(),
        }
    }

    /// The same context without `permission`.
    #[must_use]
    pub fn without(mut self, permission: Permission) -> Self {
        self.permissions.remove(&permission);
        self
    }
}

/// What `onCollaborate` receives: the request of an app on another device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollaborateRequest {
    /// The requesting app (its `service_name` names the service).
    pub peer_info: PeerInfo,
    /// The requester's options.
    pub connect_options: ConnectOptions,
    /// The token to pass to `accept_connect` or `reject` (the reference's
    /// `ohos.dms.collabToken`).
    pub token: String,
}

/// What `onCollaborate` returns (the reference's `AbilityConstant.CollaborateResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CollaborateResult {
    /// Go on: the app will call `accept_connect` (or `reject`) with the token.
    Accept,
    /// Refuse at once; the requester gets PEER_APP_REJECTED with this reason.
    Reject {
        /// Why.
        reason: String,
    },
}

/// An ability's `onCollaborate` handler. It runs in the task of the link the request came on,
/// with no lock held: answer quickly, spawn the rest.
pub type CollaborateHandler =
    std::sync::Arc<dyn Fn(CollaborateRequest) -> CollaborateResult + Send + Sync>;
