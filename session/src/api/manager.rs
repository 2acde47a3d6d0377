//! `AbilityConnectionManager`: the API an app uses, one per app (bundle) on a device. A façade
//! over the runtime: it checks the arguments, calls the runtime, and says in the reference's
//! terms how a call failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use acm_engine::device::SessionState;
use acm_engine::{ConnectOutcome, EngineError};
use acm_transport::DeviceId;
use acm_wire::limits::{MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_PARAMETERS, MAX_SERVICE_NAME_LEN};
use acm_wire::pb;

use crate::error::AcmError;
use crate::events::{Callback, EventStream, EventType};
use crate::runtime::Device;
use crate::runtime::app::{AppInner, parse_token};
use crate::types::{
    CollaborateEventType, CollaborateHandler, CollaborateRequest, CollaborateResult,
    ConnectErrorCode, ConnectOptions, ConnectResult, Context, PeerInfo, Permission, SessionId,
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
        self.app.unregister(module_name, ability_name);
    }

    /// Creates a session with the app `peer_info` for `service_name` and returns its id (greater
    /// than 100). Nothing is sent until [`AbilityConnectionManager::connect`].
    ///
    /// Errors: 201 if `context` lacks one of the four permissions; 401 for an empty or too long
    /// name, a context of another app, or too many parameters. (`need_send_data` over a transport
    /// that cannot carry data is not an error here: `connect` reports LOCAL_WIFI_NOT_OPEN.)
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
            return Err(AcmError::parameter(format!(
                "context: belongs to {:?}, not to this manager's {:?}",
                context.bundle_name,
                self.app.bundle()
            )));
        }
        check_name("serviceName", service_name, MAX_SERVICE_NAME_LEN)?;
        DeviceId::check(&peer_info.device_id)
            .map_err(|e| AcmError::parameter(format!("peerInfo.deviceId: {e}")))?;
        check_name("peerInfo.bundleName", &peer_info.bundle_name, MAX_NAME_LEN)?;
        check_name("peerInfo.moduleName", &peer_info.module_name, MAX_NAME_LEN)?;
        check_name(
            "peerInfo.abilityName",
            &peer_info.ability_name,
            MAX_NAME_LEN,
        )?;
        if !peer_info.service_name.is_empty() && peer_info.service_name != service_name {
            return Err(AcmError::parameter(
                "peerInfo.serviceName: differs from serviceName",
            ));
        }
        check_name("context.moduleName", &context.module_name, MAX_NAME_LEN)?;
        check_name("context.abilityName", &context.ability_name, MAX_NAME_LEN)?;
        if connect_options.parameters.len() > MAX_PARAMETERS {
            return Err(AcmError::parameter(format!(
                "connectOptions.parameters: {} entries, at most {MAX_PARAMETERS}",
                connect_options.parameters.len()
            )));
        }
        for (key, value) in &connect_options.parameters {
            check_name("connectOptions.parameters key", key, MAX_NAME_LEN)?;
            if value.len() > MAX_NAME_LEN {
                return Err(AcmError::parameter(format!(
                    "connectOptions.parameters[{key:?}]: over {MAX_NAME_LEN} bytes"
                )));
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
        Ok(self
            .app
            .create_session(local, peer.into_wire(), connect_options.into_wire()))
    }

    /// Destroys a session: a connected one ends with PEER_APP_EXIT at the peer, and so does a
    /// request still waiting for its answer, whose `connect` then reports
    /// SYSTEM_INTERNAL_ERROR. Its event streams end, and nothing more reaches the app about it.
    /// Errors: 401 for an unknown id.
    pub fn destroy_ability_connection_session(
        &self,
        session_id: SessionId,
    ) -> Result<(), AcmError> {
        self.app
            .destroy_session(session_id)
            .map_err(|e| session_error(session_id, &e))
    }

    /// The app on the other end of a session, or `None` for an unknown id.
    pub fn get_peer_info_by_id(&self, session_id: SessionId) -> Option<PeerInfo> {
        self.app
            .apps_of(session_id)
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
        match self.app.connect(session_id).await {
            Ok(ConnectOutcome::Accepted) => Ok(ConnectResult::connected()),
            Ok(ConnectOutcome::Failed { code, reason }) => Ok(ConnectResult::failed(
                ConnectErrorCode::from_wire(code).unwrap_or(ConnectErrorCode::SystemInternalError),
                reason,
            )),
            Err(EngineError::UnknownSession(_)) => Err(unknown(session_id)),
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
    /// a session this app created for the requesting app and service. Errors: 401 for an
    /// unknown session, an unknown, used or expired token, or a token of another app, peer or
    /// service.
    ///
    /// As the reference's `acceptConnect` does, the acceptance happens when this is called,
    /// not when the returned future is first polled: the session is connected and the answer
    /// is on its way to the requester before this returns. The future only tells how it went;
    /// an ability's handler can accept the request it is handed, as the reference's example
    /// does in `onCollaborate`, without awaiting it.
    pub fn accept_connect(&self, session_id: SessionId, token: &str) -> AcceptConnect {
        AcceptConnect(Some(self.start_accept(session_id, token)))
    }

    fn start_accept(&self, session_id: SessionId, token: &str) -> Result<(), AcmError> {
        let parsed = parse_token(token).ok_or_else(bad_token)?;
        self.app
            .accept(session_id, &parsed)
            .map_err(|err| match err {
                EngineError::UnknownSession(_) => unknown(session_id),
                EngineError::NotIdle => {
                    AcmError::parameter("sessionId: the session is already connected")
                }
                EngineError::UnknownToken | EngineError::OtherApp | EngineError::OtherPeer(_) => {
                    token_error(&err)
                }
                _ => AcmError::parameter(
                    "token: the request is no longer pending (the requester gave up or the link ended)",
                ),
            })
    }

    /// Rejects the request with `token`; the requester gets PEER_APP_REJECTED with `reason`.
    /// Errors: 401 for an unknown, used or expired token, a token of another app, or a reason
    /// over 1024 bytes.
    pub fn reject(&self, token: &str, reason: &str) -> Result<(), AcmError> {
        if reason.len() > acm_wire::limits::MAX_TEXT_LEN {
            return Err(AcmError::parameter("reason: over 1024 bytes"));
        }
        let parsed = parse_token(token).ok_or_else(bad_token)?;
        self.app
            .reject(&parsed, reason)
            .map_err(|e| token_error(&e))
    }

    /// Ends a connected session; the peer sees PEER_APP_CLOSE_COLLABORATION. The session can be
    /// connected again. Errors: 401 for an unknown id or a session that is not connected.
    pub fn disconnect(&self, session_id: SessionId) -> Result<(), AcmError> {
        self.app
            .disconnect(session_id)
            .map_err(|e| session_error(session_id, &e))
    }

    /// Sends a text message of at most 1024 bytes; resolves once it is queued on the link
    /// (waiting while too much is queued). Errors: 401 for an unknown or unconnected session or
    /// a longer message.
    pub async fn send_message(&self, session_id: SessionId, msg: &str) -> Result<(), AcmError> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(AcmError::parameter(format!(
                "msg: {} bytes, at most {MAX_MESSAGE_LEN}",
                msg.len()
            )));
        }
        self.app
            .send_message(session_id, msg)
            .await
            .map_err(|e| session_error(session_id, &e))
    }

    /// Sends a collaboration event to the peer app's `collaborateEvent` listeners. Errors: 401
    /// for an unknown or unconnected session.
    pub async fn send_collaborate_event(
        &self,
        session_id: SessionId,
        event_type: CollaborateEventType,
        message: &str,
    ) -> Result<(), AcmError> {
        self.app
            .send_collaborate_event(session_id, event_type.to_wire(), message)
            .await
            .map_err(|e| session_error(session_id, &e))
    }

    /// Registers `callback` for `event_type` on a session. Errors: 401 for an unknown id.
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
    /// Errors: 401 for an unknown id.
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
    /// [`crate::Event::DataProgress`]. Errors: 401 for an unknown id.
    pub fn events(&self, session_id: SessionId) -> Result<EventStream, AcmError> {
        let bytes = self.app.device().shared().config.stream_data_bytes;
        Ok(self.listeners(session_id)?.stream(false, bytes))
    }

    /// Like [`AbilityConnectionManager::events`], with the progress of incoming transfers
    /// ([`crate::Event::DataProgress`]) too. Errors: 401 for an unknown id.
    pub fn events_with_progress(&self, session_id: SessionId) -> Result<EventStream, AcmError> {
        let bytes = self.app.device().shared().config.stream_data_bytes;
        Ok(self.listeners(session_id)?.stream(true, bytes))
    }

    fn listeners(&self, session_id: SessionId) -> Result<Arc<crate::events::Listeners>, AcmError> {
        self.app
            .listeners(session_id)
            .map_err(|_| unknown(session_id))
    }

    /// Whether the session is connected, for the calls that need it.
    pub(super) fn is_connected(&self, session_id: SessionId) -> Result<bool, AcmError> {
        self.app
            .state_of(session_id)
            .map(|state| matches!(state, SessionState::Connected { .. }))
            .map_err(|_| unknown(session_id))
    }
}

fn unknown(session_id: SessionId) -> AcmError {
    AcmError::parameter(format!("sessionId: no session {session_id}"))
}

fn bad_token() -> AcmError {
    AcmError::parameter("token: expected 32 hexadecimal digits")
}

/// How a call on a session failed, in the API's words.
pub(super) fn session_error(session_id: SessionId, err: &EngineError) -> AcmError {
    match err {
        EngineError::UnknownSession(_) => unknown(session_id),
        EngineError::NotConnected | EngineError::NotIdle | EngineError::WrongState { .. } => {
            AcmError::parameter("sessionId: the session is not connected")
        }
        EngineError::LinkClosed | EngineError::LinkNotUp => {
            AcmError::parameter("sessionId: the session's link has ended")
        }
        other => AcmError::parameter(format!("sessionId: {other}")),
    }
}

/// How an answer to a request failed, in the API's words.
fn token_error(err: &EngineError) -> AcmError {
    AcmError::parameter(match err {
        EngineError::OtherApp => "token: the request is for another application".to_string(),
        EngineError::OtherPeer(what) => {
            format!("token: the request comes from another {what} than the session's peer")
        }
        _ => "token: no pending request has this token (unknown, already used, or expired)"
            .to_string(),
    })
}

fn check_name(field: &str, value: &str, max: usize) -> Result<(), AcmError> {
    if value.is_empty() {
        return Err(AcmError::parameter(format!("{field}: empty")));
    }
    if value.len() > max {
        return Err(AcmError::parameter(format!(
            "{field}: {} bytes, at most {max}",
            value.len()
        )));
    }
    if acm_wire::control::has_control_character(value) {
        return Err(AcmError::parameter(format!(
            "{field}: contains a control character"
        )));
    }
    Ok(())
}

/// How an [`AbilityConnectionManager::accept_connect`] went: a future of
/// `Result<(), AcmError>`, ready at once. The acceptance has happened when this exists;
/// awaiting it only tells the outcome, and dropping it changes nothing.
#[derive(Debug)]
pub struct AcceptConnect(Option<Result<(), AcmError>>);

impl Future for AcceptConnect {
    type Output = Result<(), AcmError>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Poll::Ready(self.0.take().unwrap_or_else(|| {
            Err(AcmError::parameter(
                "accept_connect: its outcome was already told",
            ))
        }))
    }
}
