//! One app of a device as the runtime sees it: its handle, its abilities' handlers, and its
//! calls on its sessions, each of which locks the device's state, calls the engine, wakes the
//! driver that has work, and, when it must wait, leaves its waker in the state.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;

use acm_engine::device::{LinkId, SessionId, SessionState};
use acm_engine::{ConnectOutcome, EngineError, Token};
use acm_wire::pb;
use bytes::Bytes;

use super::device::Device;
use super::state::{ConnectWait, Registered, Shared, State, TransferWait, now};
use crate::events::Listeners;
use crate::types::{CollaborateHandler, DisconnectReason};

/// The control frames a link may hold before calls that queue more wait for the link to take
/// them (the backpressure of `send_message`).
pub(crate) const MAX_QUEUED_CONTROL: usize = 256;

/// An app of a device, as long as one of its handles lives. When the last goes, the app counts
/// as ended: its sessions are destroyed, and the connected ones end with PEER_APP_EXIT at the
/// peers (SPEC `DISC-1`).
pub(crate) struct AppInner {
    device: Device,
    bundle: String,
}

impl std::fmt::Debug for AppInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("bundle", &self.bundle)
            .finish_non_exhaustive()
    }
}

impl Drop for AppInner {
    fn drop(&mut self) {
        let shared = self.shared().clone();
        let (wakers, handlers) = {
            let mut state = shared.lock();
            let ids: Vec<SessionId> = state.engine.sessions_of_app(&self.bundle).collect();
            let mut wakers = Vec::new();
            for id in ids {
                wakers.extend(destroy(&mut state, id));
            }
            // Unless a new handle of the app was made meanwhile.
            let handlers = match state.apps.get(&self.bundle) {
                Some(app) if app.handle.strong_count() == 0 => state.apps.remove(&self.bundle),
                _ => None,
            };
            (wakers, handlers)
        };
        super::state::wake_all(wakers);
        drop(handlers);
    }
}

impl AppInner {
    /// The app with bundle `bundle` on `device`: the one that lives, or a new one.
    pub(crate) fn of(device: &Device, bundle: &str) -> Arc<Self> {
        let mut state = device.shared().lock();
        let entry = state.apps.entry(bundle.to_string()).or_default();
        if let Some(app) = entry.handle.upgrade() {
            return app;
        }
        let app = Arc::new(Self {
            device: device.clone(),
            bundle: bundle.to_string(),
        });
        entry.handle = Arc::downgrade(&app);
        app
    }

    pub(crate) fn bundle(&self) -> &str {
        &self.bundle
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    fn shared(&self) -> &Arc<Shared> {
        self.device.shared()
    }

    /// Registers (or replaces) the handler of the app's ability `module`/`ability`.
    pub(crate) fn register(&self, module: &str, ability: &str, handler: CollaborateHandler) {
        let replaced = {
            let mut state = self.shared().lock();
            let app = state.apps.entry(self.bundle.clone()).or_default();
            match app
                .handlers
                .iter_mut()
                .find(|r| r.module == module && r.ability == ability)
            {
                Some(registered) => Some(std::mem::replace(&mut registered.handler, handler)),
                None => {
                    app.handlers.push(Registered {
                        module: module.to_string(),
                        ability: ability.to_string(),
                        handler,
                    });
                    None
                }
            }
        };
        // Outside the lock: a handler may hold a manager.
        drop(replaced);
    }

    /// Removes the handler of the app's ability `module`/`ability`; with `only`, only if it is
    /// that one (and not one registered since).
    pub(crate) fn unregister(
        &self,
        module: &str,
        ability: &str,
        only: Option<&CollaborateHandler>,
    ) {
        let removed = {
            let mut state = self.shared().lock();
            state.apps.get_mut(&self.bundle).map(|app| {
                let (gone, kept) = std::mem::take(&mut app.handlers)
                    .into_iter()
                    .partition(|r| {
                        r.module == module
                            && r.ability == ability
                            && only.is_none_or(|handler| Arc::ptr_eq(handler, &r.handler))
                    });
                app.handlers = kept;
                gone
            })
        };
        drop::<Option<Vec<Registered>>>(removed);
    }

    /// A new session of this app with `peer` (both with the session's service).
    pub(crate) fn create_session(
        &self,
        local: pb::PeerInfo,
        peer: pb::PeerInfo,
        options: pb::ConnectOptions,
    ) -> SessionId {
        let mut state = self.shared().lock();
        let id = state.engine.create_session(local, peer, options);
        state.sessions.insert(id, Arc::new(Listeners::default()));
        id
    }

    /// Destroys session `id`: its streams end, and the peer hears PEER_APP_EXIT if it was
    /// connected (or asked for). Nothing more reaches the app about it.
    pub(crate) fn destroy_session(&self, id: SessionId) -> Result<(), EngineError> {
        let waker = {
            let mut state = self.shared().lock();
            self.owned(&state, id)?;
            destroy(&mut state, id)
        };
        super::state::wake_all(waker);
        Ok(())
    }

    /// The apps of session `id`, this one's and the peer's.
    pub(crate) fn apps_of(&self, id: SessionId) -> Option<(pb::PeerInfo, pb::PeerInfo)> {
        let state = self.shared().lock();
        self.owned(&state, id).ok()?;
        state
            .engine
            .session_apps(id)
            .map(|(local, peer)| (local.clone(), peer.clone()))
    }

    /// Where session `id` stands.
    pub(crate) fn state_of(&self, id: SessionId) -> Result<SessionState, EngineError> {
        let state = self.shared().lock();
        self.owned(&state, id)
    }

    /// The listeners of session `id`.
    pub(crate) fn listeners(&self, id: SessionId) -> Result<Arc<Listeners>, EngineError> {
        let state = self.shared().lock();
        self.owned(&state, id)?;
        state
            .sessions
            .get(&id)
            .cloned()
            .ok_or(EngineError::UnknownSession(id))
    }

    /// Sends session `id`'s request, dialing its peer device first if no link to it is up,
    /// and waits for the answer (or the handshake timeout, which the engine keeps). `Err` is
    /// for calls the engine refused at once.
    pub(crate) async fn connect(&self, id: SessionId) -> Result<ConnectOutcome, EngineError> {
        let shared = self.shared().clone();
        let mut dialed = false;
        let on = loop {
            let token = match shared.random16() {
                Ok(token) => token,
                Err(why) => return Ok(failed(why)),
            };
            let attempt = {
                let mut state = shared.lock();
                self.owned(&state, id)?;
                let attempt = state.engine.connect(id, token, now());
                if let Ok(on) = attempt {
                    state.connects.insert(
                        id,
                        ConnectWait {
                            on,
                            outcome: None,
                            waker: None,
                        },
                    );
                }
                attempt.map(|on| (on, state.driver(on.0)))
            };
            match attempt {
                Ok((on, driver)) => {
                    super::state::wake_all(driver);
                    break on;
                }
                Err(EngineError::NoLink(peer)) if !dialed => {
                    dialed = true;
                    if let Err(why) = shared.link_to(&peer).await {
                        return Ok(failed(why));
                    }
                }
                Err(EngineError::NoLink(_)) => return Ok(failed("the link ended".into())),
                Err(err) => return Err(err),
            }
        };
        // Forgets the wait however the call ends, dropped included.
        let wait = Forget {
            shared: &shared,
            forget: |state: &mut State| {
                if state.connects.get(&id).is_some_and(|w| w.on == on) {
                    state.connects.remove(&id);
                }
            },
        };
        let outcome = poll_fn(|cx| {
            let mut state = shared.lock();
            match state.connects.get_mut(&id) {
                Some(wait) if wait.on == on => match wait.outcome.take() {
                    Some(outcome) => Poll::Ready(outcome),
                    None => {
                        wait.waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                },
                _ => Poll::Ready(failed("the connect was forgotten".into())),
            }
        })
        .await;
        drop(wait);
        Ok(outcome)
    }

    /// Accepts the request with `token` on session `id` (see [`DeviceEngine::accept`]).
    ///
    /// [`DeviceEngine::accept`]: acm_engine::device::DeviceEngine::accept
    pub(crate) fn accept(&self, id: SessionId, token: &Token) -> Result<(), EngineError> {
        let driver = {
            let mut state = self.shared().lock();
            self.owned(&state, id)?;
            let link = state.engine.accept(id, token, &self.bundle, now())?;
            state.driver(link)
        };
        super::state::wake_all(driver);
        Ok(())
    }

    /// Rejects the request with `token`: its requester gets PEER_APP_REJECTED with `reason`.
    pub(crate) fn reject(&self, token: &Token, reason: &str) -> Result<(), EngineError> {
        let driver = {
            let mut state = self.shared().lock();
            let code = pb::ConnectErrorCode::PeerAppRejected;
            let link = state
                .engine
                .reject(token, &self.bundle, code, reason, now())?;
            state.driver(link)
        };
        super::state::wake_all(driver);
        Ok(())
    }

    /// Ends connected session `id`; the peer hears PEER_APP_CLOSE_COLLABORATION.
    pub(crate) fn disconnect(&self, id: SessionId) -> Result<(), EngineError> {
        let driver = {
            let mut state = self.shared().lock();
            if !matches!(self.owned(&state, id)?, SessionState::Connected { .. }) {
                return Err(EngineError::NotConnected);
            }
            let reason = pb::DisconnectReason::PeerAppCloseCollaboration;
            let link = state.engine.disconnect(id, reason, now())?;
            state
                .ended
                .insert(id, DisconnectReason::PeerAppCloseCollaboration);
            state.driver(link)
        };
        super::state::wake_all(driver);
        Ok(())
    }

    /// Queues a message on connected session `id`, once its link holds fewer than
    /// [`MAX_QUEUED_CONTROL`] control frames.
    pub(crate) async fn send_message(&self, id: SessionId, text: &str) -> Result<(), EngineError> {
        self.queue_control(id, |state, now| state.engine.send_message(id, text, now))
            .await
    }

    /// Queues a collaboration event on connected session `id`, as
    /// [`send_message`](Self::send_message) queues a message.
    pub(crate) async fn send_collaborate_event(
        &self,
        id: SessionId,
        event_type: pb::CollaborateEventType,
        message: &str,
    ) -> Result<(), EngineError> {
        self.queue_control(id, |state, now| {
            state
                .engine
                .send_collaborate_event(id, event_type, message, now)
        })
        .await
    }

    /// Makes a call that queues a control frame on session `id`'s link, waiting while the link
    /// holds [`MAX_QUEUED_CONTROL`] of them.
    async fn queue_control(
        &self,
        id: SessionId,
        mut call: impl FnMut(&mut State, std::time::Instant) -> Result<LinkId, EngineError>,
    ) -> Result<(), EngineError> {
        let shared = self.shared().clone();
        let driver = poll_fn(|cx| {
            let mut state = shared.lock();
            let link = match self.owned(&state, id) {
                Ok(SessionState::Connected { link, .. }) => link,
                Ok(_) => return Poll::Ready(Err(EngineError::NotConnected)),
                Err(err) => return Poll::Ready(Err(err)),
            };
            if state.engine.queued_control_frames(link) >= MAX_QUEUED_CONTROL
                && state.wait_on(link, cx.waker())
            {
                return Poll::Pending;
            }
            Poll::Ready(call(&mut state, now()).map(|link| state.driver(link)))
        })
        .await?;
        super::state::wake_all(driver);
        Ok(())
    }

    /// Sends `data` on connected session `id` and waits until every fragment has been handed
    /// out for the link: `Ok(Ok(()))`, or `Ok(Err(reason))` when the session or link ended
    /// first, with the reason the session ended. `on_sent` hears the bytes handed out so far
    /// as they grow, short of the whole.
    pub(crate) async fn send_data(
        &self,
        id: SessionId,
        data: Bytes,
        mut on_sent: Option<impl FnMut(u64)>,
    ) -> Result<Result<(), DisconnectReason>, EngineError> {
        let shared = self.shared().clone();
        let total = data.len() as u64;
        let (transfer, driver) = {
            let mut state = shared.lock();
            self.owned(&state, id)?;
            let transfer = state.engine.send_data(id, data, now())?;
            state.transfers.insert(
                transfer,
                TransferWait {
                    progress: on_sent.is_some(),
                    ..TransferWait::default()
                },
            );
            (transfer, state.driver(transfer.link))
        };
        super::state::wake_all(driver);
        let wait = Forget {
            shared: &shared,
            forget: move |state: &mut State| {
                state.transfers.remove(&transfer);
            },
        };
        let mut reported = 0;
        let done = poll_fn(|cx| {
            let (sent, done) = {
                let mut state = shared.lock();
                let Some(wait) = state.transfers.get_mut(&transfer) else {
                    return Poll::Ready(false);
                };
                if wait.done.is_none() {
                    wait.waker = Some(cx.waker().clone());
                }
                (wait.sent, wait.done)
            };
            if let Some(report) = on_sent.as_mut()
                && sent > reported
                && sent < total
            {
                reported = sent;
                report(sent);
            }
            match done {
                Some(done) => Poll::Ready(done),
                None => Poll::Pending,
            }
        })
        .await;
        drop(wait);
        if done {
            return Ok(Ok(()));
        }
        // A session destroyed here told its peer PEER_APP_EXIT.
        let state = shared.lock();
        let reason = state.ended.get(&id).copied();
        Ok(Err(reason.unwrap_or(DisconnectReason::PeerAppExit)))
    }

    /// Where session `id` stands, if it is this app's.
    fn owned(&self, state: &State, id: SessionId) -> Result<SessionState, EngineError> {
        match state.engine.session_apps(id) {
            Some((local, _)) if local.bundle_name == self.bundle => state
                .engine
                .session_state(id)
                .ok_or(EngineError::UnknownSession(id)),
            _ => Err(EngineError::UnknownSession(id)),
        }
    }
}

/// Destroys session `id` under the lock: its listeners are forgotten and its streams end.
/// Returns the waker of the driver that has the DISCONNECT to send.
fn destroy(state: &mut State, id: SessionId) -> Option<std::task::Waker> {
    if let Some(listeners) = state.sessions.remove(&id) {
        listeners.clear();
    }
    state.ended.remove(&id);
    let link = state.engine.destroy_session(id, now()).ok().flatten()?;
    state.driver(link)
}

fn failed(reason: String) -> ConnectOutcome {
    ConnectOutcome::Failed {
        code: pb::ConnectErrorCode::SystemInternalError,
        reason,
    }
}

/// Runs `forget` on the device's state when dropped: a call that waited leaves nothing behind,
/// whether it finished or was dropped.
struct Forget<'a, F: FnMut(&mut State)> {
    shared: &'a Shared,
    forget: F,
}

impl<F: FnMut(&mut State)> Drop for Forget<'_, F> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        (self.forget)(&mut state);
    }
}

/// A token as the API shows it: 32 lowercase hexadecimal digits (SPEC section 9).
pub(crate) fn token_to_string(token: &Token) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(token.len() * 2);
    for byte in token {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A token from the text [`token_to_string`] makes (in either case); `None` for any other.
pub(crate) fn parse_token(text: &str) -> Option<Token> {
    let digit = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let (pairs, []) = text.as_bytes().as_chunks::<2>() else {
        return None;
    };
    if pairs.len() != 16 {
        return None;
    }
    let mut token = [0u8; 16];
    for (byte, [high, low]) in token.iter_mut().zip(pairs) {
        *byte = digit(*high).zip(digit(*low)).map(|(h, l)| h << 4 | l)?;
    }
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_shown_as_32_lowercase_hex_digits_and_read_back() {
        let token: Token = [
            0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff, 0x12, 0x34, 0x56, 0x78,
            0x9a, 0xbc,
        ];
        let text = token_to_string(&token);
        assert_eq!(text, "00010f107f80abcdefff123456789abc");
        assert_eq!(parse_token(&text), Some(token));
        assert_eq!(parse_token(&text.to_uppercase()), Some(token));
        assert!(parse_token(&text[1..]).is_none());
        for bad in [
            String::new(),
            format!("{text}0"),
            format!("{text}00"),
            format!("g{}", &text[1..]),
            // A sign is not a digit, though u8::from_str_radix takes one.
            format!("+f{}", &text[2..]),
            format!("é{}", &text[2..]),
        ] {
            assert!(parse_token(&bad).is_none(), "{bad:?}");
        }
    }
}
