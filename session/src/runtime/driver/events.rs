//! What the driver does with its link's events: under the lock, it ends the calls that waited
//! and routes requests to their apps; with the lock let go, it runs the apps' code in order.

use super::*;

impl Driver {
    /// Acts on one event of the link under the lock: wakes the calls it ends, and leaves the
    /// app code it calls for to run once the lock is let go. Returns whether the link's
    /// waiters may want to look again.
    pub(super) fn on_event(
        &mut self,
        state: &mut State,
        event: DeviceEvent,
        wakers: &mut Vec<Waker>,
        now: Instant,
    ) -> bool {
        let id = self.id;
        let session_event = match event {
            DeviceEvent::LinkUp { .. } => return true,
            DeviceEvent::LinkClosed { by, reason, detail } => {
                tracing::info!(?by, reason = reason.as_str_name(), %detail, "link ended");
                if by == Closer::Local {
                    self.close_reason = CloseReason::new(reason as u32, detail.clone());
                    self.abandon = reason == pb::LinkCloseReason::ResourceExhausted;
                    if self.abandon {
                        self.outbox.clear();
                        self.sending = None;
                    }
                }
                if let Some(entry) = state.links.get_mut(&id) {
                    entry.ended = Some(detail);
                }
                return true;
            }
            DeviceEvent::IncomingRequest(request) => {
                self.on_request(state, *request, now);
                return false;
            }
            DeviceEvent::Connected { session, channel } => {
                answer(
                    state,
                    session,
                    (id, channel),
                    ConnectOutcome::Accepted,
                    wakers,
                );
                (
                    session,
                    Event::Connect {
                        session_id: session.into(),
                    },
                )
            }
            DeviceEvent::ConnectFailed {
                session,
                channel,
                code,
                reason,
            } => {
                let outcome = ConnectOutcome::Failed { code, reason };
                answer(state, session, (id, channel), outcome, wakers);
                return false;
            }
            DeviceEvent::Message { session, text } => (
                session,
                Event::Message {
                    session_id: session.into(),
                    msg: text,
                },
            ),
            DeviceEvent::Data { session, data } => (
                session,
                Event::Data {
                    session_id: session.into(),
                    data,
                },
            ),
            DeviceEvent::DataProgress {
                session,
                received,
                total,
            } => (
                session,
                Event::DataProgress {
                    session_id: session.into(),
                    received,
                    total,
                },
            ),
            DeviceEvent::CollaborateEvent {
                session,
                event_type,
                message,
            } => {
                let Some(event_type) = CollaborateEventType::from_wire(event_type) else {
                    return false;
                };
                let info = CollaborateEventInfo {
                    event_type,
                    event_msg: (!message.is_empty()).then_some(message),
                };
                (
                    session,
                    Event::Collaborate {
                        session_id: session.into(),
                        info,
                    },
                )
            }
            DeviceEvent::Disconnected { session, reason } => {
                let reason = DisconnectReason::from_wire(reason)
                    .unwrap_or(DisconnectReason::NetworkDisconnected);
                state.ended.insert(session, reason);
                (
                    session,
                    Event::Disconnect {
                        session_id: session.into(),
                        reason,
                    },
                )
            }
            DeviceEvent::DataSent { transfer, sent, .. } => {
                if let Some(wait) = state.transfers.get_mut(&transfer) {
                    wait.sent = sent;
                    if wait.progress {
                        wakers.extend(wait.waker.take());
                    }
                }
                return false;
            }
            DeviceEvent::TransferSent(transfer) | DeviceEvent::TransferAborted(transfer) => {
                let whole = matches!(event, DeviceEvent::TransferSent(_));
                if let Some(wait) = state.transfers.get_mut(&transfer) {
                    wait.done = Some(whole);
                    wakers.extend(wait.waker.take());
                }
                return false;
            }
        };
        let (session, event) = session_event;
        if let Some(listeners) = state.sessions.get(&session)
            && listeners.ever_listened()
        {
            self.work.push(Work::Deliver(listeners.clone(), event));
        }
        false
    }

    /// A peer's request: to its ability's handler, or refused at once when the app has none
    /// (PEER_ABILITY_NO_ONCOLLABORATE).
    fn on_request(&mut self, state: &mut State, request: RoutedRequest, now: Instant) {
        let RoutedRequest {
            token,
            source,
            target,
            options,
        } = request;
        let bundle = target.bundle_name;
        match state.handler(&bundle, &target.module_name, &target.ability_name) {
            Some(handler) => self.work.push(Work::Request {
                handler,
                token,
                request: CollaborateRequest {
                    peer_info: PeerInfo::from_wire(source),
                    connect_options: ConnectOptions::from_wire(options),
                    token: token_to_string(&token),
                },
                bundle,
            }),
            None => {
                let reason = format!(
                    "no onCollaborate handler for {bundle}/{}/{}",
                    target.module_name, target.ability_name
                );
                let code = pb::ConnectErrorCode::PeerAbilityNoOncollaborate;
                let _ = state.engine.reject(&token, &bundle, code, &reason, now);
            }
        }
    }

    /// Runs the app code of this turn's events, in order, with no lock held.
    pub(super) fn run_app_code(&mut self) -> bool {
        if self.work.is_empty() {
            return false;
        }
        let mut work = std::mem::replace(&mut self.work, std::mem::take(&mut self.spare));
        for item in work.drain(..) {
            match item {
                Work::Deliver(listeners, event) => {
                    let hold = !self.held.is_empty();
                    listeners.deliver(event, hold, &mut self.held);
                }
                Work::Request {
                    handler,
                    token,
                    bundle,
                    request,
                } => {
                    if let CollaborateResult::Reject { reason } = handler(request) {
                        // Unless the handler answered the request itself.
                        let code = pb::ConnectErrorCode::PeerAppRejected;
                        let mut state = self.shared.lock();
                        let _ = state.engine.reject(&token, &bundle, code, &reason, now());
                    }
                }
            }
        }
        self.spare = work;
        true
    }
}

/// Tells the connect of `session` whose request is `on` (a link and channel) how it ended.
fn answer(
    state: &mut State,
    session: u64,
    on: (LinkId, u32),
    outcome: ConnectOutcome,
    wakers: &mut Vec<Waker>,
) {
    if let Some(wait) = state.connects.get_mut(&session)
        && wait.on == on
        && wait.outcome.is_none()
    {
        wait.outcome = Some(outcome);
        wakers.extend(wait.waker.take());
    }
}
