//! What the runtime knows of one session of one app.

use std::sync::{Mutex, OnceLock};

use super::events::{Listeners, lock};
use acm_wire::pb;

use super::types::SessionId;
use crate::engine::names::SessionKey;
use crate::runtime::link_task::LinkHandle;

/// Where a session stands.
#[derive(Debug, Clone)]
pub(crate) enum SessionState {
    /// Not connected: new, disconnected, or failed to connect. `connect` may be called.
    Idle,
    /// `connect` is waiting for the peer's answer.
    Connecting,
    /// Connected on `channel` of `link`.
    Connected { link: LinkHandle, channel: u32 },
}

/// A session, shared by its app's manager and the driver of the link it is on.
#[derive(Debug)]
pub(crate) struct SessionShared {
    pub(crate) id: SessionId,
    /// The app on the other device, with the session's service. The apps and the options are kept as the wire carries
    /// them: a connect encodes its request from them without copying them.
    pub(crate) peer: pb::PeerInfo,
    /// The app on this device.
    pub(crate) local: pb::PeerInfo,
    pub(crate) options: pb::ConnectOptions,
    pub(crate) listeners: Listeners,
    state: Mutex<SessionState>,
    /// What compares the session with others across links, made at its first `connect`.
    connect_key: OnceLock<SessionKey>,
}

impl SessionShared {
    pub(crate) fn new(
        id: SessionId,
        peer: pb::PeerInfo,
        local: pb::PeerInfo,
        options: pb::ConnectOptions,
    ) -> Self {
        Self {
            id,
            peer,
            local,
            options,
            listeners: Listeners::default(),
            state: Mutex::new(SessionState::Idle),
            connect_key: OnceLock::new(),
        }
    }

    /// The session as SPEC `SESS-3` and `SESS-7` compare it across every link to the peer.
    pub(crate) fn connect_key(&self) -> &SessionKey {
        self.connect_key
            .get_or_init(|| SessionKey::new(self.service_name(), &self.local, &self.peer))
    }

    /// The session's service (both apps' `service_name`).
    pub(crate) fn service_name(&self) -> &str {
        &self.local.service_name
    }

    pub(crate) fn state(&self) -> SessionState {
        lock(&self.state).clone()
    }

    pub(crate) fn set_state(&self, state: SessionState) {
        *lock(&self.state) = state;
    }

    /// Moves to `state` only if the session is still on `channel` of `link` (it may have been
    /// disconnected and connected again elsewhere meanwhile).
    pub(crate) fn set_state_if_on(&self, link: &LinkHandle, channel: u32, state: SessionState) {
        let mut current = lock(&self.state);
        if let SessionState::Connected {
            link: on,
            channel: c,
        } = &*current
            && on.id == link.id
            && *c == channel
        {
            *current = state;
        }
    }

    /// Moves from Idle to Connecting; false if the session was not idle.
    pub(crate) fn begin_connecting(&self) -> bool {
        let mut current = lock(&self.state);
        if matches!(*current, SessionState::Idle) {
            *current = SessionState::Connecting;
            return true;
        }
        false
    }
}
