//! `AbilityConnectionManager`: the API an app uses, one per app (bundle) on a device.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, ready};

use acm_transport::DeviceId;
use acm_wire::limits::{MAX_MESSAGE_LEN, MAX_NAME_LEN, MAX_PARAMETERS, MAX_SERVICE_NAME_LEN};
use acm_wire::pb;
use tokio::sync::oneshot;

use super::error::AcmError;
use super::events::{Callback, EventStream, EventType, lock};
use super::session::{SessionShared, SessionState};
use super::types::{
    CollaborateEventType, ConnectErrorCode, ConnectOptions, ConnectResult, Context, PeerInfo,
    Permission, SessionId,
};
use crate::engine::{ConnectOutcome, EngineError};
use crate::runtime::device::DeviceInner;
use crate::runtime::link_task::{AcceptReply, LinkCommand, LinkHandle};

/// The first session id: ids are greater than 100.
const FIRST_SESSION_ID: SessionId = 101;

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

/// An ability's `onCollaborate` handler. It runs on the runtime: answer quickly, spawn the rest.
pub type CollaborateHandler = Arc<dyn Fn(CollaborateRequest) -> CollaborateResult + Send + Sync>;

/// An ability's registered handler.
struct Registered {
    module: String,
    ability: String,
    handler: CollaborateHandler,
}

pub(crate) struct AppInner {
    bundle: String,
    pub(super) device: Arc<DeviceInner>,
    next_id: AtomicU64,
    sessions: Mutex<BTreeMap<SessionId, Arc<SessionShared>>>,
    /// The sessions by the keyed hash of their service, so that checking a request (SPEC
    /// `SESS-3`) does not look at every session of the app: ordered pairs, which a new session
    /// joins without an allocation of its own (sessions of services whose hashes collide are
    /// told apart by their names).
    by_service: Mutex<BTreeSet<(u64, SessionId)>>,
    /// The hasher of `by_service`.
    service_hasher: foldhash::quality::RandomState,
    /// The registered handlers by module and ability: an app has few, and a request looks its
    /// one up without making a key.
    handlers: Mutex<Vec<Registered>>,
}

impl AppInner {
    pub(crate) fn new(bundle: String, device: Arc<DeviceInner>) -> Self {
        Self {
            bundle,
            device,
            next_id: AtomicU64::new(FIRST_SESSION_ID),
            sessions: Mutex::new(BTreeMap::new()),
            by_service: Mutex::new(BTreeSet::new()),
            service_hasher: foldhash::quality::RandomState::default(),
            handlers: Mutex::new(Vec::new()),
        }
    }

    /// Whether a session between this app's `local` ability and `peer` for `service` is
    /// connected (SPEC `SESS-3` compares the abilities on both sides).
    pub(crate) fn has_connected(&self, local: &PeerInfo, peer: &PeerInfo, service: &str) -> bool {
        // Nothing locks the sessions and then the index.
        let hash = self.service_hasher.hash_one(service);
        let index = lock(&self.by_service);
        let mut candidates = index
            .range((hash, SessionId::MIN)..=(hash, SessionId::MAX))
            .peekable();
        if candidates.peek().is_none() {
            return false;
        }
        let sessions = lock(&self.sessions);
        candidates.filter_map(|(_, id)| sessions.get(id)).any(|s| {
            s.service_name() == service
                && s.local.module_name == local.module_name
                && s.local.ability_name == local.ability_name
                && s.peer.device_id == peer.device_id
                && s.peer.bundle_name == peer.bundle_name
                && s.peer.module_name == peer.module_name
                && s.peer.ability_name == peer.ability_name
                && matches!(s.state(), SessionState::Connected { .. })
        })
    }

    /// Adds a new session to the app.
    fn add_session(&self, session: SessionShared) {
        let (id, hash) = (
            session.id,
            self.service_hasher.hash_one(session.service_name()),
        );
        lock(&self.sessions).insert(id, Arc::new(session));
        lock(&self.by_service).insert((hash, id));
    }

    /// Takes a session away from the app.
    fn remove_session(&self, id: SessionId) -> Option<Arc<SessionShared>> {
        let session = lock(&self.sessions).remove(&id)?;
        let hash = self.service_hasher.hash_one(session.service_name());
        lock(&self.by_service).remove(&(hash, id));
        Some(session)
    }

    /// Drops every registered handler (and whatever they hold, such as clones of this app's
    /// manager), outside the lock.
    pub(crate) fn forget_handlers(&self) {
        let handlers = std::mem::take(&mut *lock(&self.handlers));
        drop(handlers);
    }

    pub(crate) fn handler(&self, module: &str, ability: &str) -> Option<CollaborateHandler> {
        lock(&self.handlers)
            .iter()
            .find(|r| r.module == module && r.ability == ability)
            .map(|r| r.handler.clone())
    }
}

impl Drop for AppInner {
    /// The app has ended: its peers see PEER_APP_EXIT (SPEC `DISC-1`).
    fn drop(&mut self) {
        for session in lock(&self.sessions).values() {
            end_session(session, pb::DisconnectReason::PeerAppExit);
        }
    }
}

/// Sends DISCONNECT for a connected or connecting session, without waiting.
fn end_session(session: &SessionShared, reason: pb::DisconnectReason) {
    if let SessionState::Connected { link, channel } = session.state() {
        link.send_now(LinkCommand::Disconnect { channel, reason });
    }
    session.set_state(SessionState::Idle);
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
            .field("bundle", &self.app.bundle)
            .finish_non_exhaustive()
    }
}

impl AbilityConnectionManager {
    pub(crate) fn from_inner(app: Arc<AppInner>) -> Self {
        Self { app }
    }

    /// The app's bundle name.
    pub fn bundle_name(&self) -> &str {
        &self.app.bundle
    }

    /// Registers the `onCollaborate` handler of one of the app's abilities: requests from other
    /// devices for `module_name`/`ability_name` go to it. Without one, requesters get
    /// PEER_ABILITY_NO_ONCOLLABORATE.
    ///
    /// The handler is kept until [`unregister_ability`](Self::unregister_ability) or
    /// [`Device::shutdown`](crate::Device::shutdown). A handler that holds a clone of this
    /// manager (to create and accept sessions) keeps the app, and so its device and transport,
    /// alive until then.
    pub fn register_ability(
        &self,
        module_name: &str,
        ability_name: &str,
        handler: impl Fn(CollaborateRequest) -> CollaborateResult + Send + Sync + 'static,
    ) {
        let handler: CollaborateHandler = Arc::new(handler);
        let mut handlers = lock(&self.app.handlers);
        let replaced = match handlers
            .iter_mut()
            .find(|r| r.module == module_name && r.ability == ability_name)
        {
            Some(registered) => Some(std::mem::replace(&mut registered.handler, handler)),
            None => {
                handlers.push(Registered {
                    module: module_name.to_string(),
                    ability: ability_name.to_string(),
                    handler,
                });
                None
            }
        };
        drop(handlers);
        drop(replaced);
    }

    /// Removes an ability's handler.
    pub fn unregister_ability(&self, module_name: &str, ability_name: &str) {
        lock(&self.app.handlers).retain(|r| r.module != module_name || r.ability != ability_name);
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
        if context.bundle_name != self.app.bundle {
            return Err(AcmError::parameter(format!(
                "context: belongs to {:?}, not to this manager's {:?}",
                context.bundle_name, self.app.bundle
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
        let id = self.app.next_id.fetch_add(1, Ordering::Relaxed);
        let local = pb::PeerInfo {
            device_id: self.app.device.transport.local_device().as_str().to_owned(),
            bundle_name: self.app.bundle.clone(),
            module_name: context.module_name.clone(),
            ability_name: context.ability_name.clone(),
            service_name: service_name.to_string(),
        };
        let mut peer = peer_info;
        peer.set_service_name(service_name);
        let peer = peer.into_wire();
        let options = connect_options.into_wire();
        let session = SessionShared::new(id, peer, local, options);
        self.app.add_session(session);
        Ok(id)
    }

    /// Destroys a session: a connected one ends with PEER_APP_EXIT at the peer. Its event
    /// streams end. Errors: 401 for an unknown id.
    pub fn destroy_ability_connection_session(
        &self,
        session_id: SessionId,
    ) -> Result<(), AcmError> {
        let session = self
            .app
            .remove_session(session_id)
            .ok_or_else(|| unknown(session_id))?;
        // Nothing reaches the app about a session it destroyed, even a connect still under way.
        session.listeners.clear();
        end_session(&session, pb::DisconnectReason::PeerAppExit);
        Ok(())
    }

    /// The app on the other end of a session, or `None` for an unknown id.
    pub fn get_peer_info_by_id(&self, session_id: SessionId) -> Option<PeerInfo> {
        lock(&self.app.sessions)
            .get(&session_id)
            .map(|s| PeerInfo::from_wire(s.peer.clone()))
    }

    fn session(&self, session_id: SessionId) -> Result<Arc<SessionShared>, AcmError> {
        lock(&self.app.sessions)
            .get(&session_id)
            .cloned()
            .ok_or_else(|| unknown(session_id))
    }

    /// Connects a session: opens (or reuses) the link to the peer device, sends the request,
    /// and waits for the peer app's answer, at most the handshake timeout (10 s by default).
    /// Every failure is a [`ConnectResult`] with its [`ConnectErrorCode`]; only a bad id is an
    /// error (401).
    ///
    /// The session's `connect` event is the first thing its listeners see; the peer's first
    /// messages may reach them before this call returns, so start listening before connecting.
    ///
    /// While it waits on the device's runtime, the call reads the link itself, so that the
    /// answer reaches it without a trip through the link's task; the callbacks of the link's
    /// other sessions may then run in the calling task.
    pub async fn connect(&self, session_id: SessionId) -> Result<ConnectResult, AcmError> {
        let session = self.session(session_id)?;
        if !session.begin_connecting() {
            return Ok(ConnectResult::failed(
                ConnectErrorCode::ConnectedSessionExists,
                "the session is already connected or connecting",
            ));
        }
        let result = self.connect_session(&session).await;
        if !result.is_connected {
            session.set_state(SessionState::Idle);
        } else if !lock(&self.app.sessions).contains_key(&session_id) {
            // Destroyed while connecting: the peer sees the app leave, and the caller is told
            // the session is gone.
            end_session(&session, pb::DisconnectReason::PeerAppExit);
            return Ok(ConnectResult::failed(
                ConnectErrorCode::SystemInternalError,
                "the session was destroyed while it connected",
            ));
        }
        Ok(result)
    }

    async fn connect_session(&self, session: &Arc<SessionShared>) -> ConnectResult {
        let link = match self.app.device.link_to(&session.peer.device_id).await {
            Ok(link) => link,
            Err(why) => return ConnectResult::failed(ConnectErrorCode::SystemInternalError, why),
        };
        let token = match self.app.device.new_token() {
            Ok(token) => token,
            Err(why) => return ConnectResult::failed(ConnectErrorCode::SystemInternalError, why),
        };
        let key = session.connect_key();
        if !self.app.device.begin_outgoing(key.clone(), token, link.id) {
            return ConnectResult::failed(
                ConnectErrorCode::ConnectedSessionExists,
                "a request for this session is already waiting for its answer",
            );
        }
        let result = self.request(session, &link, token).await;
        self.app.device.end_outgoing(key);
        result
    }

    async fn request(
        &self,
        session: &Arc<SessionShared>,
        link: &LinkHandle,
        token: crate::engine::Token,
    ) -> ConnectResult {
        let (reply, answer) = oneshot::channel();
        let command = LinkCommand::Connect {
            token,
            session: session.clone(),
            reply,
        };
        let mut answer = link.answer(answer);
        if link.call_reading(command, &mut answer).await.is_err() {
            return link_gone();
        }
        match answer.await {
            Ok(Ok(ConnectOutcome::Accepted)) => ConnectResult::connected(),
            Ok(Ok(ConnectOutcome::Failed { code, reason })) => ConnectResult::failed(
                ConnectErrorCode::from_wire(code).unwrap_or(ConnectErrorCode::SystemInternalError),
                reason,
            ),
            Ok(Err(EngineError::SessionExists)) => ConnectResult::failed(
                ConnectErrorCode::ConnectedSessionExists,
                "a session between these apps for this service exists",
            ),
            Ok(Err(EngineError::LocalCannotCarryData)) => ConnectResult::failed(
                ConnectErrorCode::LocalWifiNotOpen,
                "this device's transport cannot carry data",
            ),
            Ok(Err(err)) => {
                ConnectResult::failed(ConnectErrorCode::SystemInternalError, err.to_string())
            }
            Err(_) => link_gone(),
        }
    }

    /// Accepts the request with `token` (from [`CollaborateRequest::token`]) on `session_id`,
    /// a session this app created for the requesting app and service. Errors: 401 for an
    /// unknown session, an unknown, used or expired token, or a token of another app, peer or
    /// service.
    ///
    /// As the reference's `acceptConnect` does, the acceptance starts when this is called, not
    /// when the returned future is first polled; the future tells how it ended. An ability's
    /// handler can therefore accept the request it is handed, as the reference's example does
    /// in `onCollaborate`, without a task of its own: the link answers the requester as soon as
    /// the handler returns. Dropping the future does not stop the acceptance. A session whose
    /// acceptance fails is left idle, whether or not the future is awaited.
    pub fn accept_connect(&self, session_id: SessionId, token: &str) -> AcceptConnect {
        AcceptConnect(match self.start_accept(session_id, token) {
            Ok(answer) => AcceptState::Handed(answer),
            Err(err) => AcceptState::Refused(Some(err)),
        })
    }

    /// The part of [`accept_connect`](Self::accept_connect) that runs when it is called: checks
    /// the call and hands the acceptance to the request's link.
    fn start_accept(
        &self,
        session_id: SessionId,
        token: &str,
    ) -> Result<oneshot::Receiver<Result<(), EngineError>>, AcmError> {
        let session = self.session(session_id)?;
        let pending = self.app.device.take_request(token, &self.app.bundle)?;
        // Compared name by name, without making a key of the session's names.
        if let Err(what) = pending
            .key
            .with_remote(session.service_name(), &session.peer)
        {
            self.app.device.restore_request(token, pending);
            return Err(AcmError::parameter(format!(
                "token: the request comes from another {what} than the session's peer"
            )));
        }
        if !session.begin_connecting() {
            self.app.device.restore_request(token, pending);
            return Err(AcmError::parameter(
                "sessionId: the session is already connected",
            ));
        }
        let (reply, answer) = oneshot::channel();
        pending.link.hand(LinkCommand::Accept {
            channel: pending.channel,
            reply: AcceptReply::new(session, reply),
        });
        Ok(answer)
    }

    /// Rejects the request with `token`; the requester gets PEER_APP_REJECTED with `reason`.
    /// Errors: 401 for an unknown, used or expired token, a token of another app, or a reason
    /// over 1024 bytes.
    pub fn reject(&self, token: &str, reason: &str) -> Result<(), AcmError> {
        if reason.len() > acm_wire::limits::MAX_TEXT_LEN {
            return Err(AcmError::parameter("reason: over 1024 bytes"));
        }
        let pending = self.app.device.take_request(token, &self.app.bundle)?;
        pending.link.send_now(LinkCommand::Reject {
            channel: pending.channel,
            code: pb::ConnectErrorCode::PeerAppRejected,
            reason: reason.to_string(),
        });
        Ok(())
    }

    /// Ends a connected session; the peer sees PEER_APP_CLOSE_COLLABORATION. The session can be
    /// connected again. Errors: 401 for an unknown id or a session that is not connected.
    pub fn disconnect(&self, session_id: SessionId) -> Result<(), AcmError> {
        let session = self.session(session_id)?;
        match session.state() {
            SessionState::Connected { .. } => {
                end_session(&session, pb::DisconnectReason::PeerAppCloseCollaboration);
                Ok(())
            }
            _ => Err(AcmError::parameter(
                "sessionId: the session is not connected",
            )),
        }
    }

    pub(super) fn connected(
        &self,
        session_id: SessionId,
    ) -> Result<(crate::runtime::link_task::LinkHandle, u32), AcmError> {
        match self.session(session_id)?.state() {
            SessionState::Connected { link, channel } => Ok((link, channel)),
            _ => Err(AcmError::parameter(
                "sessionId: the session is not connected",
            )),
        }
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
        let (link, channel) = self.connected(session_id)?;
        let (reply, answer) = oneshot::channel();
        let command = LinkCommand::Message {
            channel,
            text: msg.to_string(),
            reply,
        };
        engine_result(link.commands.send(command).await.is_ok(), answer.await)
    }

    /// Sends a collaboration event to the peer app's `collaborateEvent` listeners.
    pub async fn send_collaborate_event(
        &self,
        session_id: SessionId,
        event_type: CollaborateEventType,
        message: &str,
    ) -> Result<(), AcmError> {
        let (link, channel) = self.connected(session_id)?;
        let (reply, answer) = oneshot::channel();
        let command = LinkCommand::CollaborateEvent {
            channel,
            event_type: event_type.to_wire(),
            message: message.to_string(),
            reply,
        };
        engine_result(link.commands.send(command).await.is_ok(), answer.await)
    }

    /// Registers `callback` for `event_type` on a session. Errors: 401 for an unknown id.
    pub fn on(
        &self,
        event_type: EventType,
        session_id: SessionId,
        callback: Callback,
    ) -> Result<(), AcmError> {
        self.session(session_id)?.listeners.on(event_type, callback);
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
        self.session(session_id)?
            .listeners
            .off(event_type, callback);
        Ok(())
    }

    /// The session's events as an async stream, from now on, without
    /// [`super::Event::DataProgress`]. Errors: 401 for an unknown id.
    pub fn events(&self, session_id: SessionId) -> Result<EventStream, AcmError> {
        let bytes = self.app.device.config.stream_data_bytes;
        Ok(self.session(session_id)?.listeners.stream(false, bytes))
    }

    /// Like [`AbilityConnectionManager::events`], with the progress of incoming transfers
    /// ([`super::Event::DataProgress`]) too. Errors: 401 for an unknown id.
    pub fn events_with_progress(&self, session_id: SessionId) -> Result<EventStream, AcmError> {
        let bytes = self.app.device.config.stream_data_bytes;
        Ok(self.session(session_id)?.listeners.stream(true, bytes))
    }
}

fn unknown(session_id: SessionId) -> AcmError {
    AcmError::parameter(format!("sessionId: no session {session_id}"))
}

fn link_gone() -> ConnectResult {
    ConnectResult::failed(ConnectErrorCode::SystemInternalError, "the link ended")
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

fn engine_result(
    sent: bool,
    answer: Result<Result<(), EngineError>, oneshot::error::RecvError>,
) -> Result<(), AcmError> {
    match (sent, answer) {
        (true, Ok(Ok(()))) => Ok(()),
        (true, Ok(Err(err))) => Err(AcmError::parameter(format!("sessionId: {err}"))),
        _ => Err(AcmError::parameter(
            "sessionId: the session's link has ended",
        )),
    }
}

/// How an [`AbilityConnectionManager::accept_connect`] ended: a future of `Result<(), AcmError>`.
/// The acceptance has started when this exists; awaiting it only tells the outcome, and
/// dropping it does not stop the acceptance.
#[derive(Debug)]
pub struct AcceptConnect(AcceptState);

#[derive(Debug)]
enum AcceptState {
    /// Refused when called, until told; `None` once the outcome, whichever, has been told.
    Refused(Option<AcmError>),
    /// Handed to the link: its answer comes here.
    Handed(oneshot::Receiver<Result<(), EngineError>>),
}

impl Future for AcceptConnect {
    type Output = Result<(), AcmError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            AcceptState::Refused(err) => Poll::Ready(Err(err.take().unwrap_or_else(|| {
                AcmError::parameter("accept_connect: its outcome was already told")
            }))),
            AcceptState::Handed(answer) => {
                let answer = ready!(Pin::new(answer).poll(cx));
                self.0 = AcceptState::Refused(None);
                Poll::Ready(match answer {
                    Ok(Ok(())) => Ok(()),
                    // The link has left the session idle (`AcceptReply`).
                    Ok(Err(_)) | Err(_) => Err(AcmError::parameter(
                        "token: the request is no longer pending (the requester gave up or the link ended)",
                    )),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Device, DeviceConfig};

    fn on_a_link() -> SessionState {
        let (commands, _) = tokio::sync::mpsc::channel(1);
        let tablet = DeviceId::new("tablet").unwrap();
        SessionState::Connected {
            link: LinkHandle::new(crate::runtime::link_task::LinkRef {
                id: 1,
                peer: tablet.clone(),
                dialer: tablet,
                commands,
                shared: std::sync::Weak::new(),
            }),
            channel: 1,
        }
    }

    #[tokio::test]
    async fn a_connected_session_is_found_by_what_sess3_compares_until_destroyed() {
        let network = acm_transport_mock::MockNetwork::new(1);
        let transport = network.add_device(DeviceId::new("phone").unwrap()).unwrap();
        let device = Device::new(transport, DeviceConfig::default());
        let context = Context::new("com.example", "entry", "EntryAbility");
        let app = device.manager(&context);
        let tablet = PeerInfo::new("tablet", "com.example", "entry", "EntryAbility");
        let session = |service: &str| {
            app.create_ability_connection_session(
                service,
                &context,
                tablet.clone(),
                ConnectOptions::default(),
            )
            .unwrap()
        };
        let (idle, connected, other) = (session("chat"), session("chat"), session("files"));
        let local = PeerInfo::new("phone", "com.example", "entry", "EntryAbility");
        let found = |service: &str| app.app.has_connected(&local, &tablet, service);
        assert!(!found("chat"));

        app.session(connected).unwrap().set_state(on_a_link());
        assert!(found("chat"));
        assert!(!found("files"));
        let elsewhere = PeerInfo::new("watch", "com.example", "entry", "EntryAbility");
        assert!(!app.app.has_connected(&local, &elsewhere, "chat"));

        app.destroy_ability_connection_session(idle).unwrap();
        assert!(found("chat"));
        app.destroy_ability_connection_session(connected).unwrap();
        assert!(!found("chat"));
        app.destroy_ability_connection_session(other).unwrap();
        assert!(lock(&app.app.by_service).is_empty());
    }
}
