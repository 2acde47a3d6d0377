//! The Rust-shaped core of the API: a [`Session`] owned by the app, whose `connect` is a
//! `Result`, whose events are a stream, and whose drop destroys it. Every method is one call
//! of the reference's functions on [`AbilityConnectionManager`], which do the work.

use bytes::Bytes;

use super::manager::AbilityConnectionManager;
use super::progress::SendProgress;
use crate::error::AcmError;
use crate::events::EventStream;
use crate::types::{
    CollaborateEventType, ConnectErrorCode, ConnectOptions, ConnectResult, Context, PeerInfo,
    SessionId,
};

/// Why a [`Session::connect`] failed: the reference's [`ConnectErrorCode`], and the peer app's
/// rejection reason or what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connect failed with {code}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
pub struct ConnectError {
    /// Why, in the reference's terms.
    pub code: ConnectErrorCode,
    /// The peer app's rejection reason, or what went wrong.
    pub reason: Option<String>,
}

impl ConnectResult {
    /// The result as a `Result`: `Ok` when connected, otherwise its code (SYSTEM_INTERNAL_ERROR
    /// if it has none) and reason.
    pub fn into_result(self) -> Result<(), ConnectError> {
        if self.is_connected {
            return Ok(());
        }
        Err(ConnectError {
            code: self
                .error_code
                .unwrap_or(ConnectErrorCode::SystemInternalError),
            reason: self.reason,
        })
    }
}

impl AbilityConnectionManager {
    /// Creates a session with the app `peer_info` for `service_name`, owned by the returned
    /// handle: [`create_ability_connection_session`](Self::create_ability_connection_session)
    /// with the same arguments and errors, whose session is destroyed when the handle is
    /// dropped.
    pub fn create_session(
        &self,
        service_name: &str,
        context: &Context,
        peer_info: PeerInfo,
        connect_options: ConnectOptions,
    ) -> Result<Session, AcmError> {
        let id = self.create_ability_connection_session(
            service_name,
            context,
            peer_info,
            connect_options,
        )?;
        Ok(Session::own(self.clone(), id))
    }

    /// Takes ownership of session `id` (one this app made with
    /// [`create_ability_connection_session`](Self::create_ability_connection_session)): the
    /// returned handle destroys it when dropped. Errors: [`AcmError::UnknownSession`] (401).
    pub fn session(&self, id: SessionId) -> Result<Session, AcmError> {
        self.get_peer_info_by_id(id)
            .ok_or(AcmError::UnknownSession(id))?;
        Ok(Session::own(self.clone(), id))
    }
}

/// A session of an app with an app on another device, owned: dropping the handle destroys the
/// session ([`AbilityConnectionManager::destroy_ability_connection_session`]), and a connected
/// one ends with PEER_APP_EXIT at the peer. Made by [`AbilityConnectionManager::create_session`]
/// on the requesting side and by [`IncomingRequest::accept`](crate::IncomingRequest::accept) on
/// the side that accepts.
///
/// ```
/// # async fn demo(session: acm::Session) -> Result<(), Box<dyn std::error::Error>> {
/// use acm::{ConnectErrorCode, ConnectError, Event};
///
/// let mut events = session.events()?; // before connecting: `connect` is the first event
/// match session.connect().await {
///     Ok(()) => {}
///     Err(ConnectError { code: ConnectErrorCode::PeerAppRejected, reason }) => {
///         return Err(format!("rejected: {reason:?}").into());
///     }
///     Err(other) => return Err(other.into()),
/// }
/// session.send_message("hello").await?;
/// while let Some(event) = events.next().await {
///     if let Event::Message { msg, .. } = event {
///         println!("{msg}");
///         break;
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Session {
    manager: AbilityConnectionManager,
    id: SessionId,
    /// Set once the handle gave the session up ([`Session::into_id`]).
    released: bool,
}

impl Session {
    fn own(manager: AbilityConnectionManager, id: SessionId) -> Self {
        Self {
            manager,
            id,
            released: false,
        }
    }

    /// The session's id, for the reference's functions on the manager.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The manager of the app the session belongs to.
    pub fn manager(&self) -> &AbilityConnectionManager {
        &self.manager
    }

    /// The app on the other end ([`AbilityConnectionManager::get_peer_info_by_id`]); `None`
    /// once the session was destroyed by its id.
    pub fn peer_info(&self) -> Option<PeerInfo> {
        self.manager.get_peer_info_by_id(self.id)
    }

    /// Connects the session ([`AbilityConnectionManager::connect`]): `Ok` once the peer app
    /// accepted, otherwise why not. Take [`Session::events`] first: the session's `connect`
    /// event, and the peer's first messages, may come before this returns.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        match self.manager.connect(self.id).await {
            Ok(result) => result.into_result(),
            // The session was destroyed by its id meanwhile.
            Err(err) => Err(ConnectError {
                code: ConnectErrorCode::SystemInternalError,
                reason: Some(err.to_string()),
            }),
        }
    }

    /// Ends the connected session ([`AbilityConnectionManager::disconnect`]); it can connect
    /// again.
    pub fn disconnect(&self) -> Result<(), AcmError> {
        self.manager.disconnect(self.id)
    }

    /// Sends a text message of at most 1024 bytes
    /// ([`AbilityConnectionManager::send_message`]).
    pub async fn send_message(&self, msg: &str) -> Result<(), AcmError> {
        self.manager.send_message(self.id, msg).await
    }

    /// Sends bytes ([`AbilityConnectionManager::send_data`]).
    pub async fn send_data(&self, data: Bytes) -> Result<(), AcmError> {
        self.manager.send_data(self.id, data).await
    }

    /// Sends bytes, telling `on_progress` how far they got
    /// ([`AbilityConnectionManager::send_data_with_progress`]).
    pub async fn send_data_with_progress(
        &self,
        data: Bytes,
        on_progress: impl FnMut(SendProgress),
    ) -> Result<(), AcmError> {
        self.manager
            .send_data_with_progress(self.id, data, on_progress)
            .await
    }

    /// Sends a collaboration event
    /// ([`AbilityConnectionManager::send_collaborate_event`]).
    pub async fn send_collaborate_event(
        &self,
        event_type: CollaborateEventType,
        message: &str,
    ) -> Result<(), AcmError> {
        self.manager
            .send_collaborate_event(self.id, event_type, message)
            .await
    }

    /// The session's events from now on, as a stream
    /// ([`AbilityConnectionManager::events`]); it ends when the session is destroyed.
    pub fn events(&self) -> Result<EventStream, AcmError> {
        self.manager.events(self.id)
    }

    /// Like [`Session::events`], with the progress of incoming transfers
    /// ([`AbilityConnectionManager::events_with_progress`]).
    pub fn events_with_progress(&self) -> Result<EventStream, AcmError> {
        self.manager.events_with_progress(self.id)
    }

    /// Gives the session up without destroying it, and returns its id: from then on it lives
    /// until [`AbilityConnectionManager::destroy_ability_connection_session`] or the app's end,
    /// as the reference's sessions do.
    pub fn into_id(mut self) -> SessionId {
        self.released = true;
        self.id
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.released {
            // Already destroyed by its id, if this fails.
            let _ = self.manager.destroy_ability_connection_session(self.id);
        }
    }
}
