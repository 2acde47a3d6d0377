//! `AbilityConnectionManager`: the API an app uses, one per app (bundle) on a device. A façade
//! over the runtime: it checks the arguments, calls the runtime, and says in the reference's
//! terms how a call failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use acm_engine::device::SessionState;
use acm_engine::{ConnectOutcome, EngineError};
use acm_transport::{DeviceId, InvalidDeviceId};
use acm_wire::limits::{
    MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_PARAMETERS, MAX_SERVICE_NAME_LEN, MAX_TEXT_LEN,
};
use acm_wire::pb;

use crate::error::{AcmError, Invalid, TokenRefusal};
use crate::events::{Callback, EventStream, EventType};
use crate::runtime::Device;
use crate::runtime::app::{AppInner, parse_token};
use crate::types::{
    CollaborateEventType, CollaborateHandler, CollaborateRequest, CollaborateResult,
    ConnectErrorCode, ConnectOptions, ConnectResult, Context, DisconnectReason, PeerInfo,
    Permission, SessionId,
};

impl Device {
    /// The manager for the app of `context` (its bundle). Managers of one bundle share their
    /// sessions and registered abilities.
    pub fn manager(&self, context: &Context) -> AbilityConnectionManager {
        AbilityConnectionManager {
            app: AppInner::of(self, &context.bundle_name),
        }
    }
}

/// The cross-device connection manager of one app: OpenHarmony's `abilityConnectionManager`,
/// backed by the acm protocol over the device's transport. Get one from
/// [`crate::Device::manager`]; clones share the app's sessions. When the last clone is dropped
/// the app counts as ended: its connected sessions end with PEER_APP_EXIT at the peers.
#[derive(Clone)]
pub struct AbilityConnectionManager {
    pub(super) app: Arc<AppInner>,
}

impl std::fmt::Debug for AbilityConnectionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AbilityConnectionManager")
            .field("bundle", &self.app.bundle())
            .finish_non_exhaustive()
    }
}

impl AbilityConnectionManager {
    /// The app's bundle name.
    pub fn bundle_name(&self) -> &str {
        self.app.bundle()
    }

    /// Registers the `onCollaborate` handler of one of the app's abilities: requests from other
    /// devices for `module_name`/`ability_name` go to it. Without one, requesters get
    /// PEER_ABILITY_NO_ONCOLLABORATE.
    ///
    /// The handler runs in the task of the link the request came on, with no lock held: it may
    /// call this manager (create a session and accept, as the reference's example does). It is
    /// kept until [`unregister_ability`](Self::unregister_ability) or
    /// [`Device::shutdown`](crate::Device::shutdown). A handler that holds a clone of this
    /// manager keeps the app, and so its device and transport, alive until then.
    pub fn register_ability(
        &self,
        module_name: &str,
        ability_name: &str,
        handler: impl Fn(CollaborateRequest) -> CollaborateResult + Send + Sync + 'static,
    ) {
        let handler: CollaborateHandler = Arc::new(handler);
        self.app.register(module_name, ability_name, handler);
    }

    /// Removes an ability's handler.
    pub fn unregister_ability(&self, module_name: &str, ability_name: &str) {
        self.app.unregister(module_name, ability_name, None);
    }

    /// Creates a session with the app `peer_info` for `service_name` and returns its id (greater
    /// than 100). Nothing is sent until [`AbilityConnectionManager::connect`].
    ///
    /// Errors: [`AcmError::PermissionDenied`] (201) if `context` lacks one of the four
    /// permissions; [`AcmError::InvalidField`] (401) for an empty or too long name, a context of
    /// another app, or too many parameters. (`need_send_data` over a transport that cannot
    /// carry data is not an error here: `connect` reports LOCAL_WIFI_NOT_OPEN.)
    pub fn create_ability_connection_session(
        &self,
        service_name: &str,
        context: &Context,
        peer_info: PeerInfo,
        connect_options: ConnectOptions,
    ) -> Result<SessionId, AcmError> {
        for permission in Permission::REQUIRED {
            if !context.permissions.contains(&permission) {
                return Err(AcmError::PermissionDenied(permission));
            }
        }
        if context.bundle_name != self.app.bundle() {
            return Err(AcmError::invalid(
                "context",
                Invalid::OtherApp {
                    given: context.bundle_name.clone(),
                    manager: self.app.bundle().to_owned(),
                },
            ));
        }
        check_name("serviceName", service_name, MAX_SERVICE_NAME_LEN)?;
        DeviceId::check(&peer_info.device_id).map_err(|e| {
            let why = match e {
                InvalidDeviceId::Empty => Invalid::Empty,
                InvalidDeviceId::TooLong(len) => Invalid::TooLong {
                    len,
                    max: DeviceId::MAX_LEN,
                },
                _ => Invalid::ControlCharacter,
            };
            AcmError::invalid("peerInfo.deviceId", why)
        })?;
        check_name("peerInfo.bundleName", &peer_info.bundle_name, MAX_NAME_LEN)?;
        check_name("peerInfo.moduleName", &peer_info.module_name, MAX_NAME_LEN)?;
        check_name(
            "peerInfo.abilityName",
            &peer_info.ability_name,
            MAX_NAME_LEN,
        )?;
        if !peer_info.service_name.is_empty() && peer_info.service_name != service_name {
            return Err(AcmError::invalid(
                "peerInfo.serviceName",
                Invalid::DiffersFrom("serviceName"),
            ));
        }
        check_name("context.moduleName", &context.module_name, MAX_NAME_LEN)?;
        check_name("context.abilityName", &context.ability_name, MAX_NAME_LEN)?;
        let count = connect_options.parameters.len();
        if count > MAX_PARAMETERS {
            return Err(AcmError::invalid(
                "connectOptions.parameters",
                Invalid::TooMany {
                    count,
                    max: MAX_PARAMETERS,
                },
            ));
        }
        for (key, value) in &connect_options.parameters {
            check_name("connectOptions.parameters key", key, MAX_NAME_LEN)?;
            if value.len() > MAX_NAME_LEN {
                return Err(AcmError::invalid(
                    "connectOptions.parameters value",
                    Invalid::TooLong {
                        len: value.len(),
                        max: MAX_NAME_LEN,
                    },
                ));
            }
        }
        let local = pb::PeerInfo {
            device_id: self.app.device().id().as_str().to_owned(),
            bundle_name: self.app.bundle().to_owned(),
            module_name: context.module_name.clone(),
            ability_name: context.ability_name.clone(),
            service_name: service_name.to_string(),
        };
        let mut peer = peer_info;
        peer.set_service_name(service_name);
        let id = self
            .app
            .create_session(local, peer.into_wire(), connect_options.into_wire());
        Ok(SessionId::from(id))
    }

    /// Destroys a session: a connected one ends with PEER_APP_EXIT at the peer, and so does a
    /// request still waiting for its answer, whose `connect` then reports
    /// SYSTEM_INTERNAL_ERROR. Its event streams end, and nothing more reaches the app about it.
    /// Errors: [`AcmError::UnknownSession`] (401).
    pub fn destroy_ability_connection_session(
        &self,
        session_id: SessionId,
    ) -> Result<(), AcmError> {
        self.app
            .destroy_session(session_id.get())
            .map_err(|e| session_error(session_id, e))
    }

    /// The app on the other end of a session, or `None` for an unknown id.
    pub fn get_peer_info_by_id(&self, session_id: SessionId) -> Option<PeerInfo> {
        self.app
            .apps_of(session_id.get())
            .map(|(_, peer)| PeerInfo::from_wire(peer))
    }

    /// Connects a session: opens (or reuses) the link to the peer device, sends the request,
    /// and waits for the peer app's answer, at most the handshake timeout (10 s by default).
    /// Every failure is a [`ConnectResult`] with its [`ConnectErrorCode`]; only a bad id is an
    /// error (401).
    ///
    /// The session's `connect` event is the first thing its listeners see; the peer's first
    /// messages may reach them before this call returns, so start listening before connecting.
    pub async fn connect(&self, session_id: SessionId) -> Result<ConnectResult, AcmError> {
        match self.app.connect(session_id.get()).await {
            Ok(ConnectOutcome::Accepted) => Ok(ConnectResult::connected()),
            Ok(ConnectOutcome::Failed { code, reason }) => Ok(ConnectResult::failed(
                ConnectErrorCode::from_wire(code).unwrap_or(ConnectErrorCode::SystemInternalError),
                reason,
            )),
            Err(EngineError::UnknownSession(_)) => Err(AcmError::UnknownSession(session_id)),
            Err(EngineError::NotIdle) => Ok(ConnectResult::failed(
                ConnectErrorCode::ConnectedSessionExists,
                "the session is already connected or connecting",
            )),
            Err(EngineError::SessionExists) => Ok(ConnectResult::failed(
                ConnectErrorCode::ConnectedSessionExists,
                "a session between these apps for this service exists",
            )),
            Err(EngineError::LocalCannotCarryData) => Ok(ConnectResult::failed(
                ConnectErrorCode::LocalWifiNotOpen,
                "this device's transport cannot carry data",
            )),
            Err(err) => Ok(ConnectResult::failed(
                ConnectErrorCode::SystemInternalError,
                err.to_string(),
            )),
        }
    }

    /// Accepts the request with `token` (from [`CollaborateRequest::token`]) on `session_id`,
    /// a session this app created for the requesting app and service. Errors (all 401):
    /// [`AcmError::UnknownSession`], [`AcmError::AlreadyConnected`], and
    /// [`AcmError::TokenRefused`] for an unknown, used or expired token, or a token of another
    /// app, peer or service.
    ///
    /// As the reference's `acceptConnect` does, the acceptance happens when this is called,
    /// not when the returned future is first polled: the session is connected and the answer
    /// is on its way to the requester before this returns. The future only tells how it went;
    /// an ability's handler can accept the request it is handed, as the reference's example
    /// does in `onCollaborate`, without awaiting it.
    pub fn accept_connect(&self, session_id: SessionId, token: &str) -> AcceptConnect {
        AcceptConnect(self.start_accept(session_id, token))
    }

    fn start_accept(&self, session_id: SessionId, token: &str) -> Result<(), AcmError> {
        let parsed = parse_token(token).ok_or(AcmError::TokenRefused(TokenRefusal::Malformed))?;
        self.app
            .accept(session_id.get(), &parsed)
            .map_err(|err| match err {
                EngineError::UnknownSession(_) => AcmError::UnknownSession(session_id),
                EngineError::NotIdle => AcmError::AlreadyConnected(session_id),
                EngineError::UnknownToken | EngineError::OtherApp | EngineError::OtherPeer(_) => {
                    token_error(&err)
                }
                _ => AcmError::TokenRefused(TokenRefusal::Withdrawn),
            })
    }

    /// Rejects the request with `token`; the requester gets PEER_APP_REJECTED with `reason`.
    /// Errors (all 401): [`AcmError::TokenRefused`] for an unknown, used or expired token or a
    /// token of another app; [`AcmError::InvalidField`] for a reason over 1024 bytes.
    pub fn reject(&self, token: &str, reason: &str) -> Result<(), AcmError> {
        if reason.len() > MAX_TEXT_LEN {
            return Err(AcmError::invalid(
                "reason",
                Invalid::TooLong {
                    len: reason.len(),
                    max: MAX_TEXT_LEN,
                },
            ));
        }
        let parsed = parse_token(token).ok_or(AcmError::TokenRefused(TokenRefusal::Malformed))?;
        self.app
            .reject(&parsed, reason)
            .map_err(|e| token_error(&e))
    }

    /// Ends a connected session; the peer sees PEER_APP_CLOSE_COLLABORATION. The session can be
    /// connected again. Errors: [`AcmError::UnknownSession`] or [`AcmError::NotConnected`]
    /// (401).
    pub fn disconnect(&self, session_id: SessionId) -> Result<(), AcmError> {
        self.app
            .disconnect(session_id.get())
            .map_err(|e| session_error(session_id, e))
    }

    /// Sends a text message of at most 1024 bytes; resolves once it is queued on the link
    /// (waiting while too much is queued). Errors (all 401): [`AcmError::MessageTooLong`],
    /// [`AcmError::UnknownSession`], [`AcmError::NotConnected`].
    pub async fn send_message(&self, session_id: SessionId, msg: &str) -> Result<(), AcmError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(AcmError::MessageTooLong {
                len: msg.len(),
                max: MAX_MESSAGE_LEN,
            });
        }
        self.app
            .send_message(session_id.get(), msg)
            .await
            .map_err(|e| session_error(session_id, e))
    }

    /// Sends a collaboration event to the peer app's `collaborateEvent` listeners. Errors:
    /// [`AcmError::UnknownSession`] or [`AcmError::NotConnected`] (401).
    pub async fn send_collaborate_event(
        &self,
        session_id: SessionId,
        event_type: CollaborateEventType,
        message: &str,
    ) -> Result<(), AcmError> {
        self.app
            .send_collaborate_event(session_id.get(), event_type.to_wire(), message)
            .await
            .map_err(|e| session_error(session_id, e))
    }

    /// Registers `callback` for `event_type` on a session. Errors: [`AcmError::UnknownSession`] (401).
    pub fn on(
        &self,
        event_type: EventType,
        session_id: SessionId,
        callback: Callback,
    ) -> Result<(), AcmError> {
        self.listeners(session_id)?.on(event_type, callback);
        Ok(())
    }

    /// Removes `callback` (or, with `None`, every callback) of `event_type` from a session.
    /// Errors: [`AcmError::UnknownSession`] (401).
    pub fn off(
        &self,
        event_type: EventType,
        session_id: SessionId,
        callback: Option<&Callback>,
    ) -> Result<(), AcmError> {
        self.listeners(session_id)?.off(event_type, callback);
        Ok(())
    }

    /// The session's events as an async stream, from now on, without
    /// [`crate::Event::DataProgress`]. Errors: [`AcmError::UnknownSession`] (401).
    pub fn events(&self, session_id: SessionId) -> Result<EventStream, AcmError> {
        let bytes = self.app.device().shared().config.stream_data_bytes;
        Ok(self.listeners(session_id)?.stream(false, bytes))
    }

    /// Like [`AbilityConnectionManager::events`], with the progress of incoming transfers
    /// ([`crate::Event::DataProgress`]) too. Errors: [`AcmError::UnknownSession`] (401).
    pub fn events_with_progress(&self, session_id: SessionId) -> Result<EventStream, AcmError> {
        let bytes = self.app.device().shared().config.stream_data_bytes;
        Ok(self.listeners(session_id)?.stream(true, bytes))
    }

    fn listeners(&self, session_id: SessionId) -> Result<Arc<crate::events::Listeners>, AcmError> {
        self.app
            .listeners(session_id.get())
            .map_err(|_| AcmError::UnknownSession(session_id))
    }

    /// Whether the session is connected, for the calls that need it.
    pub(super) fn is_connected(&self, session_id: SessionId) -> Result<bool, AcmError> {
        self.app
            .state_of(session_id.get())
            .map(|state| matches!(state, SessionState::Connected { .. }))
            .map_err(|_| AcmError::UnknownSession(session_id))
    }
}

/// How a call on a session failed, in the API's words.
pub(super) fn session_error(session_id: SessionId, err: EngineError) -> AcmError {
    match err {
        EngineError::UnknownSession(_) => AcmError::UnknownSession(session_id),
        EngineError::NotConnected | EngineError::NotIdle | EngineError::WrongState { .. } => {
            AcmError::NotConnected(session_id)
        }
        // The session ends with its link (SPEC `DISC-2`).
        EngineError::LinkClosed | EngineError::LinkNotUp => AcmError::SessionEnded {
            session_id,
            reason: DisconnectReason::NetworkDisconnected,
        },
        EngineError::MessageTooLong(len) => AcmError::MessageTooLong {
            len,
            max: MAX_MESSAGE_LEN,
        },
        EngineError::DataTooLarge { len, max } => AcmError::DataTooLarge { len, max },
        other => AcmError::Protocol(other),
    }
}

/// How an answer to a request failed, in the API's words.
fn token_error(err: &EngineError) -> AcmError {
    AcmError::TokenRefused(match err {
        EngineError::OtherApp => TokenRefusal::OtherApp,
        EngineError::OtherPeer(what) => TokenRefusal::OtherPeer(what),
        _ => TokenRefusal::Unknown,
    })
}

fn check_name(field: &'static str, value: &str, max: usize) -> Result<(), AcmError> {
    let why = if value.is_empty() {
        Invalid::Empty
    } else if value.len() > max {
        Invalid::TooLong {
            len: value.len(),
            max,
        }
    } else if acm_wire::control::has_control_character(value) {
        Invalid::ControlCharacter
    } else {
        return Ok(());
    };
    Err(AcmError::invalid(field, why))
}

/// How an [`AbilityConnectionManager::accept_connect`] went: a future of
/// `Result<(), AcmError>`, ready at once. The acceptance has happened when this exists;
/// awaiting it only tells the outcome, and dropping it changes nothing.
#[derive(Debug)]
pub struct AcceptConnect(Result<(), AcmError>);

impl AcceptConnect {
    /// The outcome, without awaiting it.
    pub(crate) fn into_inner(self) -> Result<(), AcmError> {
        self.0
    }
}

impl Future for AcceptConnect {
    type Output = Result<(), AcmError>;

    fn poll(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Poll::Ready(self.0.clone())
    }
}
