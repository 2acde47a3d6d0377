//! The sessions of the device's apps and the apps' calls on them: create, connect, accept,
//! reject, disconnect, destroy, and what a connected session sends.

use std::collections::BTreeSet;
use std::time::Instant;

use acm_wire::pb::{
    CollaborateEventType, ConnectErrorCode, ConnectOptions, DisconnectReason, PeerInfo,
};
use bytes::Bytes;

use crate::event::{EngineError, Token};
use crate::names::SessionKey;

use super::{DeviceEngine, DeviceEvent, LinkId, SessionId, SessionState, TransferRef};

/// A session of one of the device's apps.
#[derive(Debug)]
pub(super) struct Session {
    /// The app on this device, with the session's service.
    pub(super) local: PeerInfo,
    /// The app on the peer device, with the session's service.
    pub(super) peer: PeerInfo,
    pub(super) options: ConnectOptions,
    /// What makes sessions the same (SPEC `SESS-3`).
    pub(super) key: SessionKey,
    pub(super) state: SessionState,
    /// The token of this side's latest request for the session.
    pub(super) token: Option<Token>,
    /// Whether its app destroyed it while its request waited for the answer: it is gone for
    /// the app, and the answer ends it.
    pub(super) destroyed: bool,
}

/// A peer's request waiting for an app of this device.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) link: LinkId,
    pub(super) channel: u32,
    /// The session it asks for.
    pub(super) key: SessionKey,
    /// The bundle of the app it is for.
    pub(super) bundle: String,
}

impl DeviceEngine {
    /// Creates a session of the app `local` (this device's id, the app's bundle, module and
    /// ability, and the session's service) with the app `peer` (its device, bundle, module and
    /// ability, and the same service), with `options` for its request. Nothing is sent.
    pub fn create_session(
        &mut self,
        local: PeerInfo,
        peer: PeerInfo,
        options: ConnectOptions,
    ) -> SessionId {
        let id = self.next_session;
        self.next_session = self.next_session.saturating_add(1);
        let key = SessionKey::new(&local.service_name, &local, &peer);
        self.apps
            .entry(local.bundle_name.clone())
            .or_default()
            .insert(id);
        self.sessions.insert(
            id,
            Session {
                local,
                peer,
                options,
                key,
                state: SessionState::Idle,
                token: None,
                destroyed: false,
            },
        );
        id
    }

    /// Session `id`, unless it is unknown or destroyed.
    pub(super) fn live(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id).filter(|s| !s.destroyed)
    }

    /// Where session `id` stands, or `None` for an id the device does not have (or no longer
    /// has: destroyed).
    pub fn session_state(&self, id: SessionId) -> Option<SessionState> {
        self.live(id).map(|s| s.state)
    }

    /// The apps of session `id`: this device's and the peer's, each with the service.
    pub fn session_apps(&self, id: SessionId) -> Option<(&PeerInfo, &PeerInfo)> {
        self.live(id).map(|s| (&s.local, &s.peer))
    }

    /// The sessions of the app with bundle `bundle`, in order of id.
    pub fn sessions_of_app(&self, bundle: &str) -> impl Iterator<Item = SessionId> + '_ {
        self.apps.get(bundle).into_iter().flatten().copied()
    }

    /// Destroys session `id`. A connected session ends with `PEER_APP_EXIT` at the peer (SPEC
    /// `DISC-1`). A request still waiting for its answer goes on: if the peer accepts it, the
    /// session ends at once in the same way; either way its connect fails
    /// ([`DeviceEvent::ConnectFailed`]), with `SYSTEM_INTERNAL_ERROR` if it was accepted. Returns
    /// the link that has frames to send, if any.
    pub fn destroy_session(
        &mut self,
        id: SessionId,
        now: Instant,
    ) -> Result<Option<LinkId>, EngineError> {
        let session = self.live(id).ok_or(EngineError::UnknownSession(id))?;
        let bundle = session.local.bundle_name.clone();
        let link = match session.state {
            SessionState::Connecting { .. } => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.destroyed = true;
                }
                None
            }
            state => {
                let link = self.end_by_app(id, state, DisconnectReason::PeerAppExit, "", now);
                self.sessions.remove(&id);
                link
            }
        };
        if let Some(ids) = self.apps.get_mut(&bundle) {
            ids.remove(&id);
            if ids.is_empty() {
                self.apps.remove(&bundle);
            }
        }
        Ok(link)
    }

    /// The answer to the request of session `id`, which its app destroyed meanwhile, came on
    /// `channel` of `link`: an accepted session ends at once. The session is forgotten.
    pub(super) fn answered_destroyed(
        &mut self,
        id: SessionId,
        link: LinkId,
        channel: u32,
        accepted: bool,
    ) {
        if accepted && let Some(slot) = self.links.get_mut(&link) {
            let _ = slot
                .engine
                .disconnect(channel, DisconnectReason::PeerAppExit);
        }
        self.end_on_link(id, link, channel);
        self.sessions.remove(&id);
    }

    /// Sends session `id`'s request (SPEC section 5) with `token` (16 bytes from a CSPRNG) on
    /// the preferred link to its peer device, and returns the link and the request's channel.
    /// Refused with [`EngineError::NoLink`] while no link to the peer is up: the runtime dials
    /// one and calls again. The answer comes as [`DeviceEvent::Connected`] or [`DeviceEvent::ConnectFailed`].
    pub fn connect(
        &mut self,
        id: SessionId,
        token: Token,
        now: Instant,
    ) -> Result<(LinkId, u32), EngineError> {
        let session = self
            .sessions
            .get(&id)
            .ok_or(EngineError::UnknownSession(id))?;
        if session.state != SessionState::Idle {
            return Err(EngineError::NotIdle);
        }
        // SESS-3: another session between the same apps for the same service is under way.
        if self.active.get(&session.key).is_some_and(|a| !a.is_empty()) {
            return Err(EngineError::SessionExists);
        }
        let link = self
            .preferred_link(&session.peer.device_id)
            .ok_or_else(|| EngineError::NoLink(session.peer.device_id.clone()))?;
        let slot = self.links.get_mut(&link).ok_or(EngineError::LinkClosed)?;
        let channel = slot.engine.connect_with(
            now,
            token,
            session.key.clone(),
            &session.local,
            &session.peer,
            &session.options,
        )?;
        slot.channels.insert(channel, id);
        if let Some(session) = self.sessions.get_mut(&id) {
            session.token = Some(token);
        }
        self.set_state(id, SessionState::Connecting { link, channel });
        self.pump(link, now);
        Ok((link, channel))
    }

    /// Accepts, on session `id` of the app with bundle `bundle`, the peer's request with
    /// `token`: the session is connected ([`DeviceEvent::Connected`] on the request's link),
    /// and the link answers the requester. Refused, with the request still waiting, when the
    /// token is unknown or another app's, the session is not the app's or not idle, or the
    /// request comes from another app or service than the session names.
    pub fn accept(
        &mut self,
        id: SessionId,
        token: &Token,
        bundle: &str,
        now: Instant,
    ) -> Result<LinkId, EngineError> {
        let session = self
            .live(id)
            .filter(|s| s.local.bundle_name == bundle)
            .ok_or(EngineError::UnknownSession(id))?;
        let pending = self.pending.get(token).ok_or(EngineError::UnknownToken)?;
        if pending.bundle != bundle {
            return Err(EngineError::OtherApp);
        }
        pending
            .key
            .with_remote(&session.local.service_name, &session.peer)
            .map_err(EngineError::OtherPeer)?;
        if session.state != SessionState::Idle {
            return Err(EngineError::NotIdle);
        }
        let (link, channel) = self.take_request(token)?;
        let slot = self.links.get_mut(&link).ok_or(EngineError::LinkClosed)?;
        slot.engine.accept(channel)?;
        slot.channels.insert(channel, id);
        self.set_state(id, SessionState::Connected { link, channel });
        self.push(
            link,
            DeviceEvent::Connected {
                session: id,
                channel,
            },
        );
        self.pump(link, now);
        Ok(link)
    }

    /// Refuses the peer's request with `token`, for the app with bundle `bundle`: the
    /// requester's connect fails with `code` and `reason`.
    pub fn reject(
        &mut self,
        token: &Token,
        bundle: &str,
        code: ConnectErrorCode,
        reason: &str,
        now: Instant,
    ) -> Result<LinkId, EngineError> {
        let pending = self.pending.get(token).ok_or(EngineError::UnknownToken)?;
        if pending.bundle != bundle {
            return Err(EngineError::OtherApp);
        }
        let (link, channel) = self.take_request(token)?;
        let slot = self.links.get_mut(&link).ok_or(EngineError::LinkClosed)?;
        slot.engine.reject(channel, code, reason)?;
        self.pump(link, now);
        Ok(link)
    }

    /// Ends session `id` for its app, telling the peer `reason` (SPEC `DISC-1`): a connected
    /// session, or a request still waiting for its answer, whose connect then fails. The session
    /// is idle again and may connect again.
    pub fn disconnect(
        &mut self,
        id: SessionId,
        reason: DisconnectReason,
        now: Instant,
    ) -> Result<LinkId, EngineError> {
        let state = self
            .session_state(id)
            .ok_or(EngineError::UnknownSession(id))?;
        self.end_by_app(
            id,
            state,
            reason,
            "the session was closed before the peer answered",
            now,
        )
        .ok_or(EngineError::NotConnected)
    }

    /// Queues a text message on connected session `id` (SPEC `MSG-1`).
    pub fn send_message(
        &mut self,
        id: SessionId,
        text: &str,
        now: Instant,
    ) -> Result<LinkId, EngineError> {
        let (link, channel) = self.connected(id)?;
        let slot = self.links.get_mut(&link).ok_or(EngineError::LinkClosed)?;
        slot.engine.send_message(channel, text)?;
        self.pump(link, now);
        Ok(link)
    }

    /// Queues a collaboration event on connected session `id` (SPEC `EVT-1`).
    pub fn send_collaborate_event(
        &mut self,
        id: SessionId,
        event_type: CollaborateEventType,
        message: &str,
        now: Instant,
    ) -> Result<LinkId, EngineError> {
        let (link, channel) = self.connected(id)?;
        let slot = self.links.get_mut(&link).ok_or(EngineError::LinkClosed)?;
        slot.engine
            .send_collaborate_event(channel, event_type, message)?;
        self.pump(link, now);
        Ok(link)
    }

    /// Queues a data transfer on connected session `id` (SPEC section 6); its end comes as
    /// [`DeviceEvent::TransferSent`] or [`DeviceEvent::TransferAborted`].
    pub fn send_data(
        &mut self,
        id: SessionId,
        data: Bytes,
        now: Instant,
    ) -> Result<TransferRef, EngineError> {
        let (link, channel) = self.connected(id)?;
        let slot = self.links.get_mut(&link).ok_or(EngineError::LinkClosed)?;
        let transfer_id = slot.engine.send_data(channel, data)?;
        self.pump(link, now);
        Ok(TransferRef {
            link,
            channel,
            transfer_id,
        })
    }

    // ---- shared with the links' half ----

    /// Moves session `id` to `state`, keeping the index of active sessions in step.
    pub(super) fn set_state(&mut self, id: SessionId, state: SessionState) {
        let Some(session) = self.sessions.get_mut(&id) else {
            return;
        };
        let was_idle = session.state == SessionState::Idle;
        session.state = state;
        let now_idle = state == SessionState::Idle;
        if was_idle == now_idle {
            return;
        }
        if now_idle {
            if let Some(ids) = self.active.get_mut(&session.key) {
                self.work = self.work.saturating_add(ids.len() as u64);
                ids.retain(|other| *other != id);
                if ids.is_empty() {
                    self.active.remove(&session.key);
                }
            }
        } else {
            self.active.entry(session.key.clone()).or_default().push(id);
        }
    }

    /// Session `id` has left `channel` of `link`: idle again.
    pub(super) fn end_on_link(&mut self, id: SessionId, link: LinkId, channel: u32) {
        if let Some(slot) = self.links.get_mut(&link) {
            slot.channels.remove(&channel);
        }
        self.set_state(id, SessionState::Idle);
    }

    /// Ends session `id`, in `state`, at its app's wish, telling the peer `reason`. A request
    /// waiting for its answer is withdrawn and its connect fails with `withdrawn` as the reason.
    /// Returns the link the DISCONNECT goes on, if the session was on one.
    fn end_by_app(
        &mut self,
        id: SessionId,
        state: SessionState,
        reason: DisconnectReason,
        withdrawn: &str,
        now: Instant,
    ) -> Option<LinkId> {
        let (link, channel) = match state {
            SessionState::Idle => return None,
            SessionState::Connecting { link, channel }
            | SessionState::Connected { link, channel } => (link, channel),
        };
        if let Some(slot) = self.links.get_mut(&link) {
            // Refused only when the link has ended, which has ended the session too.
            let _ = slot.engine.disconnect(channel, reason);
        }
        self.end_on_link(id, link, channel);
        if matches!(state, SessionState::Connecting { .. }) {
            self.push(
                link,
                DeviceEvent::ConnectFailed {
                    session: id,
                    channel,
                    code: ConnectErrorCode::SystemInternalError,
                    reason: withdrawn.to_string(),
                },
            );
        }
        self.pump(link, now);
        Some(link)
    }

    /// The link and channel of connected session `id`.
    fn connected(&self, id: SessionId) -> Result<(LinkId, u32), EngineError> {
        match self.session_state(id) {
            Some(SessionState::Connected { link, channel }) => Ok((link, channel)),
            Some(_) => Err(EngineError::NotConnected),
            None => Err(EngineError::UnknownSession(id)),
        }
    }

    /// Takes the request with `token` off the waiting ones: its link and channel.
    fn take_request(&mut self, token: &Token) -> Result<(LinkId, u32), EngineError> {
        let pending = self
            .pending
            .remove(token)
            .ok_or(EngineError::UnknownToken)?;
        if let Some(slot) = self.links.get_mut(&pending.link) {
            slot.requests.remove(&pending.channel);
        }
        Ok((pending.link, pending.channel))
    }
}

/// The sessions of each app, by bundle.
pub(super) type Apps = crate::HashMap<String, BTreeSet<SessionId>>;
