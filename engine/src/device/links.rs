//! The device's links: adding them, their frames and time, and what their engines report,
//! turned into the device's events with the rules that span links.

use std::time::Instant;

use acm_transport::{FrameBuf, Role};
use acm_wire::pb::{ConnectErrorCode, LinkCloseReason};

use crate::event::{ConnectOutcome, EngineEvent, IncomingRequest, Token};
use crate::link::LinkEngine;

use super::sessions::Pending;
use super::{
    DeviceEngine, DeviceEvent, LinkId, RETIRE_GRACE, Retire, RoutedRequest, SessionState, Slot,
};

impl DeviceEngine {
    /// Takes a link the transport opened at `now` to device `peer`, dialed by this side
    /// (`Role::Dialer`) or by the peer, whose frames are at most `link_max_frame` bytes;
    /// `nonce` comes from a CSPRNG. Its HELLO is queued at once (SPEC `LINK-1`).
    pub fn add_link(
        &mut self,
        now: Instant,
        role: Role,
        peer: &str,
        link_max_frame: usize,
        nonce: [u8; 16],
    ) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link = self.next_link.saturating_add(1);
        let engine = LinkEngine::new(
            now,
            role,
            self.local.as_str(),
            Some(peer.to_string()),
            link_max_frame,
            nonce,
            self.config,
        )
        .with_memory_budget(self.budget.clone())
        .with_buffer_pool(self.pool.clone());
        let dialer = match role {
            Role::Dialer => self.local.clone(),
            Role::Acceptor => peer.to_string(),
        };
        self.links.insert(
            id,
            Slot {
                engine,
                peer: peer.to_string(),
                dialer,
                up: false,
                retire: Retire::No,
                channels: crate::HashMap::default(),
                requests: crate::HashMap::default(),
                events: std::collections::VecDeque::new(),
            },
        );
        self.peers.entry(peer.to_string()).or_default().push(id);
        id
    }

    /// Takes one message that `link` delivered: exactly one frame (SPEC `FRAME-9`), in one
    /// part or two ([`LinkEngine::handle_message_buf`]).
    pub fn handle_message(&mut self, link: LinkId, now: Instant, message: FrameBuf) {
        if let Some(slot) = self.links.get_mut(&link) {
            slot.engine.handle_message_buf(now, message);
            self.pump(link, now);
        }
    }

    /// The transport lost `link`: its sessions end with NETWORK_DISCONNECTED.
    pub fn handle_link_lost(&mut self, link: LinkId, now: Instant, detail: impl Into<String>) {
        if let Some(slot) = self.links.get_mut(&link) {
            slot.engine.handle_link_lost(detail);
            self.pump(link, now);
        }
    }

    /// Acts on `link`'s deadlines that have passed by `now`: its engine's (HELLO wait,
    /// keepalive, handshakes) and the device's (a retiring link's grace, SPEC `LINK-8`).
    pub fn handle_timeout(&mut self, link: LinkId, now: Instant) {
        if let Some(slot) = self.links.get_mut(&link) {
            slot.engine.handle_timeout(now);
            self.pump(link, now);
        }
    }

    /// When [`DeviceEngine::handle_timeout`] must next be called for `link`.
    pub fn poll_timeout(&self, link: LinkId) -> Option<Instant> {
        let slot = self.links.get(&link)?;
        if slot.engine.is_closed() {
            return None;
        }
        let engine = slot.engine.poll_timeout();
        let retire = match slot.retire {
            Retire::After(due) => Some(due),
            Retire::No | Retire::Due => None,
        };
        match (engine, retire) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next frame to send on `link`, in order.
    pub fn poll_transmit(&mut self, link: LinkId, now: Instant) -> Option<FrameBuf> {
        let frame = self.links.get_mut(&link)?.engine.poll_transmit_buf(now)?;
        self.pump(link, now);
        Some(frame)
    }

    /// The next event of `link`.
    pub fn poll_event(&mut self, link: LinkId) -> Option<DeviceEvent> {
        self.links.get_mut(&link)?.events.pop_front()
    }

    /// Whether `link` has events waiting.
    pub fn has_events(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|s| !s.events.is_empty())
    }

    /// Whether `link` has frames waiting to be sent.
    pub fn wants_transmit(&self, link: LinkId) -> bool {
        self.links
            .get(&link)
            .is_some_and(|s| s.engine.wants_transmit())
    }

    /// The frames waiting on `link` that answer the peer's ([`LinkEngine::queued_answers`]): a
    /// runtime stops reading the link while too many wait (SPEC `LINK-13`).
    pub fn queued_answers(&self, link: LinkId) -> usize {
        self.links
            .get(&link)
            .map_or(0, |s| s.engine.queued_answers())
    }

    /// The control frames waiting on `link`: a runtime holds calls back while too many wait.
    pub fn queued_control_frames(&self, link: LinkId) -> usize {
        self.links
            .get(&link)
            .map_or(0, |s| s.engine.queued_control_frames())
    }

    /// Whether `link` is up: HELLOs exchanged and not ended.
    pub fn is_up(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|s| s.up)
    }

    /// Whether `link` has ended (or is not one of the device's).
    pub fn is_closed(&self, link: LinkId) -> bool {
        self.links.get(&link).is_none_or(|s| s.engine.is_closed())
    }

    /// Whether `link` has ended and every frame has been handed out: the transport's link can be
    /// closed and the link removed.
    pub fn is_finished(&self, link: LinkId) -> bool {
        self.links.get(&link).is_none_or(|s| s.engine.is_finished())
    }

    /// The peer device of `link`.
    pub fn peer_of(&self, link: LinkId) -> Option<&str> {
        self.links.get(&link).map(|s| s.peer.as_str())
    }

    /// Closes `link` on purpose with LINK_CLOSE (SPEC `LINK-7`); its sessions end.
    pub fn close_link(
        &mut self,
        link: LinkId,
        now: Instant,
        reason: LinkCloseReason,
        message: impl Into<String>,
    ) {
        if let Some(slot) = self.links.get_mut(&link) {
            slot.engine.close(reason, message);
            self.pump(link, now);
        }
    }

    /// Forgets `link` once the runtime is done with it (its transport link closed). A link
    /// still open is lost first, so that its sessions end.
    pub fn remove_link(&mut self, link: LinkId, now: Instant) {
        if !self.is_closed(link) {
            self.handle_link_lost(link, now, "the device removed the link");
        }
        let Some(slot) = self.links.remove(&link) else {
            return;
        };
        self.count(slot.requests.len());
        for token in slot.requests.values() {
            self.pending.remove(token);
        }
        if let Some(links) = self.peers.get_mut(&slot.peer) {
            self.work = self.work.saturating_add(links.len() as u64);
            links.retain(|l| *l != link);
            if links.is_empty() {
                self.peers.remove(&slot.peer);
            }
        }
    }

    /// The link to device `peer` that new sessions use: of the links that are up, the one the
    /// lower device id dialed, the older first (SPEC `LINK-8`). `None` when none is up.
    pub fn preferred_link(&self, peer: &str) -> Option<LinkId> {
        self.peers
            .get(peer)?
            .iter()
            // Not counted (a `&self` method): a device has one or two links to a peer, three
            // for a moment at most, and LINK-8 closes the others.
            .filter_map(|id| self.links.get(id).filter(|s| s.up).map(|s| (*id, s)))
            .min_by(|(a, sa), (b, sb)| sa.dialer.cmp(&sb.dialer).then(a.cmp(b)))
            .map(|(id, _)| id)
    }

    /// Turns what `link`'s engine reported into the device's events, applying the device's
    /// rules; then closes the link if it is retiring, due, and idle.
    pub(super) fn pump(&mut self, link: LinkId, now: Instant) {
        while let Some(event) = self
            .links
            .get_mut(&link)
            .and_then(|slot| slot.engine.poll_event())
        {
            self.count(1);
            self.on_link_event(link, now, event);
        }
        let Some(slot) = self.links.get_mut(&link) else {
            return;
        };
        if let Retire::After(due) = slot.retire
            && now >= due
        {
            slot.retire = Retire::Due;
        }
        if slot.retire == Retire::Due
            && slot.engine.session_count() == 0
            && !slot.engine.is_closed()
        {
            slot.engine.close(
                LinkCloseReason::Normal,
                "LINK-8: another link to this device is preferred",
            );
            self.pump(link, now);
        }
    }

    pub(super) fn push(&mut self, link: LinkId, event: DeviceEvent) {
        if let Some(slot) = self.links.get_mut(&link) {
            slot.events.push_back(event);
        }
    }

    /// The session on `channel` of `link`, if one of the device's sessions is there.
    fn session_on(&self, link: LinkId, channel: u32) -> Option<u64> {
        self.links.get(&link)?.channels.get(&channel).copied()
    }

    fn on_link_event(&mut self, link: LinkId, now: Instant, event: EngineEvent) {
        match event {
            EngineEvent::LinkUp {
                version,
                peer_device,
            } => {
                if let Some(slot) = self.links.get_mut(&link) {
                    slot.up = true;
                }
                self.retire_others(&peer_device, now);
                self.push(
                    link,
                    DeviceEvent::LinkUp {
                        peer: peer_device,
                        version,
                    },
                );
            }
            EngineEvent::LinkClosed { by, reason, detail } => {
                if let Some(slot) = self.links.get_mut(&link) {
                    slot.up = false;
                    let tokens: Vec<Token> = slot.requests.drain().map(|(_, t)| t).collect();
                    self.count(tokens.len());
                    for token in tokens {
                        self.pending.remove(&token);
                    }
                }
                self.push(link, DeviceEvent::LinkClosed { by, reason, detail });
            }
            EngineEvent::IncomingRequest(request) => self.route(link, *request),
            EngineEvent::RequestCancelled { channel } => {
                if let Some(token) = self
                    .links
                    .get_mut(&link)
                    .and_then(|slot| slot.requests.remove(&channel))
                {
                    self.pending.remove(&token);
                }
            }
            EngineEvent::ConnectResult { channel, outcome } => {
                let Some(session) = self.session_on(link, channel) else {
                    return;
                };
                if self.sessions.get(&session).is_some_and(|s| s.destroyed) {
                    let accepted = outcome == ConnectOutcome::Accepted;
                    self.answered_destroyed(session, link, channel, accepted);
                    let (code, reason) = match outcome {
                        ConnectOutcome::Accepted => (
                            ConnectErrorCode::SystemInternalError,
                            "the session was destroyed while it connected".to_string(),
                        ),
                        ConnectOutcome::Failed { code, reason } => (code, reason),
                    };
                    let failed = DeviceEvent::ConnectFailed {
                        session,
                        channel,
                        code,
                        reason,
                    };
                    return self.push(link, failed);
                }
                match outcome {
                    ConnectOutcome::Accepted => {
                        self.set_state(session, SessionState::Connected { link, channel });
                        self.push(link, DeviceEvent::Connected { session, channel });
                    }
                    ConnectOutcome::Failed { code, reason } => {
                        self.end_on_link(session, link, channel);
                        self.push(
                            link,
                            DeviceEvent::ConnectFailed {
                                session,
                                channel,
                                code,
                                reason,
                            },
                        );
                    }
                }
            }
            EngineEvent::SessionClosed {
                channel, reason, ..
            } => {
                if let Some(session) = self.session_on(link, channel) {
                    self.end_on_link(session, link, channel);
                    self.push(link, DeviceEvent::Disconnected { session, reason });
                }
            }
            EngineEvent::Message { channel, text } => {
                if let Some(session) = self.session_on(link, channel) {
                    self.push(link, DeviceEvent::Message { session, text });
                }
            }
            EngineEvent::Data { channel, data } => {
                if let Some(session) = self.session_on(link, channel) {
                    self.push(link, DeviceEvent::Data { session, data });
                }
            }
            EngineEvent::DataProgress {
                channel,
                received,
                total,
                ..
            } => {
                if let Some(session) = self.session_on(link, channel) {
                    self.push(
                        link,
                        DeviceEvent::DataProgress {
                            session,
                            received,
                            total,
                        },
                    );
                }
            }
            EngineEvent::CollaborateEvent {
                channel,
                event_type,
                message,
            } => {
                if let Some(session) = self.session_on(link, channel) {
                    self.push(
                        link,
                        DeviceEvent::CollaborateEvent {
                            session,
                            event_type,
                            message,
                        },
                    );
                }
            }
            EngineEvent::DataSent {
                channel,
                transfer_id,
                sent,
                total,
            } => {
                let transfer = super::TransferRef {
                    link,
                    channel,
                    transfer_id,
                };
                self.push(
                    link,
                    DeviceEvent::DataSent {
                        transfer,
                        sent,
                        total,
                    },
                );
            }
            EngineEvent::TransferSent {
                channel,
                transfer_id,
            } => {
                let transfer = super::TransferRef {
                    link,
                    channel,
                    transfer_id,
                };
                self.push(link, DeviceEvent::TransferSent(transfer));
            }
            EngineEvent::TransferAborted {
                channel,
                transfer_id,
            } => {
                let transfer = super::TransferRef {
                    link,
                    channel,
                    transfer_id,
                };
                self.push(link, DeviceEvent::TransferAborted(transfer));
            }
        }
    }

    /// `LINK-8`: once a second link to `peer` is up, the links other than the preferred one
    /// retire: they close after [`RETIRE_GRACE`], once they carry no session.
    fn retire_others(&mut self, peer: &str, now: Instant) {
        let Some(preferred) = self.preferred_link(peer) else {
            return;
        };
        let Some(links) = self.peers.get(peer) else {
            return;
        };
        self.work = self.work.saturating_add(links.len() as u64);
        for id in links {
            if *id == preferred {
                continue;
            }
            if let Some(slot) = self.links.get_mut(id)
                && slot.up
                && slot.retire == Retire::No
            {
                slot.retire = Retire::After(now.checked_add(RETIRE_GRACE).unwrap_or(now));
            }
        }
    }

    /// A request the link's engine took (it passed the link's own checks): refused at once if
    /// the device's rules say so, and otherwise handed to the runtime for the target app.
    fn route(&mut self, link: LinkId, request: IncomingRequest) {
        let IncomingRequest {
            channel,
            token,
            mut source,
            target,
            options,
        } = request;
        let Some(key) = self
            .links
            .get(&link)
            .and_then(|slot| slot.engine.session_key(channel))
            .cloned()
        else {
            return;
        };
        let refusal = if self.pending.contains_key(&token) {
            Some((
                ConnectErrorCode::SystemInternalError,
                "SESS-1: another request waiting for an answer has this token",
            ))
        } else if self.refuses_for_an_active_session(&key, link, &token) {
            Some((
                ConnectErrorCode::ConnectedSessionExists,
                "SESS-3: a session between these apps for this service exists",
            ))
        } else {
            None
        };
        if let Some((code, reason)) = refusal {
            if let Some(slot) = self.links.get_mut(&link) {
                // The link's engine holds the request as waiting: it answers and forgets it.
                let _ = slot.engine.reject(channel, code, reason);
            }
            return;
        }
        // The service is the one the request names for its target (SPEC 5.2); the source's own
        // service_name is optional.
        source.service_name.clone_from(&target.service_name);
        self.pending.insert(
            token,
            Pending {
                link,
                channel,
                key,
                bundle: target.bundle_name.clone(),
            },
        );
        if let Some(slot) = self.links.get_mut(&link) {
            slot.requests.insert(channel, token);
        }
        self.push(
            link,
            DeviceEvent::IncomingRequest(Box::new(RoutedRequest {
                token,
                source,
                target,
                options,
            })),
        );
    }

    /// SESS-3 and SESS-7 across the device's links, for a request with `token` that `link`
    /// took for the session `key` names: refused while such a session is connected, or while
    /// this device's own request for it waits on another link with a token at least as great
    /// (the greater token goes on; the link's engine has compared requests on its own link).
    fn refuses_for_an_active_session(
        &mut self,
        key: &crate::names::SessionKey,
        link: LinkId,
        token: &Token,
    ) -> bool {
        let Some(active) = self.active.get(key) else {
            return false;
        };
        self.work = self.work.saturating_add(active.len() as u64);
        active
            .iter()
            .filter_map(|id| self.sessions.get(id))
            .any(|session| match session.state {
                SessionState::Connected { .. } => true,
                SessionState::Connecting { link: on, .. } => {
                    on != link && session.token.is_some_and(|own| own >= *token)
                }
                SessionState::Idle => false,
            })
    }
}
