//! How the model checker reads each event a device reports (`DeviceEvent`): what it may say
//! at that point, and what becomes of each request (`SESS-7`).

use super::*;

/// What became of a request, for `SESS-7`.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// It was handed to the peer's app.
    ReachedApp,
    /// It was refused with `CONNECTED_SESSION_EXISTS`.
    RefusedExists,
}

impl World {
    pub(super) fn event(
        &mut self,
        d: usize,
        link: LinkId,
        event: DeviceEvent,
    ) -> Result<(), Violation> {
        let name = DEVICES[d];
        let Some((w, e)) = self.end_of(d, link) else {
            return Ok(());
        };
        let delivered = self.delivered.filter(|x| x.wire == w && x.from != e);
        match event {
            DeviceEvent::LinkUp { .. }
            | DeviceEvent::DataSent { .. }
            | DeviceEvent::TransferSent(_)
            | DeviceEvent::TransferAborted(_) => {}
            DeviceEvent::LinkClosed { .. } => {
                for (id, s) in &self.sessions[d] {
                    if matches!(s.known, Known::Connected { link: l, .. } | Known::Connecting { link: l, .. } if l == link)
                    {
                        return broken(
                            Property::OneResult,
                            format!("{name}: session {id} outlives its link"),
                        );
                    }
                }
                self.routed[d].retain(|r| r.wire != w);
            }
            DeviceEvent::IncomingRequest(request) => {
                if delivered.is_some_and(|x| x.replayed) {
                    return broken(
                        Property::ReplayRefused,
                        format!(
                            "{name}: a request with a token used before on the link reached the app"
                        ),
                    );
                }
                let number = crate::world::token_number(&request.token);
                let from = DEVICES
                    .iter()
                    .position(|n| *n == request.source.device_id)
                    .unwrap_or(0);
                self.routed[d].push(crate::world::Routed {
                    number,
                    token: request.token,
                    from,
                    wire: w,
                    channel: delivered.map_or(0, |x| x.channel),
                    at: self.now,
                });
                self.note_fate(number, Fate::ReachedApp)?;
            }
            DeviceEvent::Connected { session, channel } => {
                let known = self.sessions[d].get(&session).copied();
                let ok = match known.map(|s| s.known) {
                    Some(Known::Connecting {
                        link: l,
                        channel: c,
                        ..
                    }) => (l, c) == (link, channel),
                    Some(Known::Connected {
                        link: l,
                        channel: c,
                        announced: false,
                    }) => (l, c) == (link, channel),
                    _ => false,
                };
                if !ok || known.is_some_and(|s| s.destroyed) {
                    return broken(
                        Property::OneResult,
                        format!("{name}: Connected for session {session} that was {known:?}"),
                    );
                }
                if delivered
                    .is_some_and(|x| x.tamper == Some(Tamper::ForgeToken) && x.channel == channel)
                {
                    return broken(
                        Property::ForgedResponseRefused,
                        format!(
                            "{name}: session {session} connected by a response with another token"
                        ),
                    );
                }
                if let Some(s) = self.sessions[d].get_mut(&session) {
                    s.known = Known::Connected {
                        link,
                        channel,
                        announced: true,
                    };
                }
                self.witness(Witness::Connected);
            }
            DeviceEvent::ConnectFailed {
                session,
                channel,
                code,
                ..
            } => {
                let known = self.sessions[d].get(&session).copied();
                let Some(Known::Connecting {
                    link: l,
                    channel: c,
                    token,
                    ..
                }) = known.map(|s| s.known)
                else {
                    return broken(
                        Property::OneResult,
                        format!("{name}: ConnectFailed for session {session} that was {known:?}"),
                    );
                };
                if (l, c) != (link, channel) {
                    return broken(
                        Property::OneResult,
                        format!("{name}: ConnectFailed for session {session} on another channel"),
                    );
                }
                if delivered
                    .is_some_and(|x| x.tamper == Some(Tamper::ForgeToken) && x.channel == channel)
                    && code != ConnectErrorCode::SystemInternalError
                {
                    return broken(
                        Property::ForgedResponseRefused,
                        format!(
                            "{name}: a forged response failed the connect with {}",
                            code.as_str_name()
                        ),
                    );
                }
                match code {
                    ConnectErrorCode::PeerAppRejected => self.witness(Witness::Rejected),
                    ConnectErrorCode::ConnectedSessionExists => {
                        self.witness(Witness::RefusedAsExisting);
                    }
                    ConnectErrorCode::SystemInternalError
                        if matches!(self.step, Some(Step::Fire { .. })) =>
                    {
                        self.witness(Witness::HandshakeTimeout);
                    }
                    ConnectErrorCode::SystemInternalError
                        if delivered.is_some_and(|x| x.tamper == Some(Tamper::ForgeToken)) =>
                    {
                        self.witness(Witness::ForgedRefused);
                    }
                    _ => {}
                }
                if code == ConnectErrorCode::ConnectedSessionExists {
                    self.note_fate(token, Fate::RefusedExists)?;
                }
                if known.is_some_and(|s| s.destroyed) {
                    self.sessions[d].remove(&session);
                } else if let Some(s) = self.sessions[d].get_mut(&session) {
                    s.known = Known::Idle;
                }
            }
            DeviceEvent::Message { session, text } => {
                if delivered.is_some_and(|x| x.tamper == Some(Tamper::Overlong)) {
                    return broken(
                        Property::MessageLimit,
                        format!(
                            "{name}: a message of {} bytes reached the app of {session}",
                            text.len()
                        ),
                    );
                }
                self.arrived(d, link, session, Kind::Message, Bytes::from(text))?;
            }
            DeviceEvent::CollaborateEvent {
                session, message, ..
            } => self.arrived(d, link, session, Kind::Event, Bytes::from(message))?,
            DeviceEvent::Data { session, data } => {
                self.arrived(d, link, session, Kind::Data, data)?;
                self.witness(Witness::DataWhole);
            }
            DeviceEvent::DataProgress { session, .. } => {
                self.connected_on(d, link, session, "data progress")?;
            }
            DeviceEvent::Disconnected { session, reason } => {
                let channel = self.connected_on(d, link, session, "Disconnected")?;
                let expected = match delivered {
                    Some(x) if x.disconnect && x.channel == channel => self
                        .causes
                        .get(&(w, 1 - e, channel))
                        .copied()
                        .unwrap_or(DisconnectReason::NetworkDisconnected),
                    _ => DisconnectReason::NetworkDisconnected,
                };
                if reason != expected {
                    return broken(
                        Property::DisconnectReason,
                        format!(
                            "{name}: session {session} ended with {}, its cause gives {}",
                            reason.as_str_name(),
                            expected.as_str_name()
                        ),
                    );
                }
                if let Some(s) = self.sessions[d].get_mut(&session) {
                    s.known = Known::Idle;
                }
                match (reason, self.step) {
                    (DisconnectReason::NetworkDisconnected, Some(Step::Lose { .. })) => {
                        self.witness(Witness::LostWithSessions);
                    }
                    (DisconnectReason::NetworkDisconnected, _)
                        if delivered.is_some_and(|x| x.tamper == Some(Tamper::Overlong)) =>
                    {
                        self.witness(Witness::OverlongRefused);
                    }
                    (DisconnectReason::NetworkDisconnected, _) => {}
                    _ => self.witness(Witness::DisconnectSeen),
                }
            }
        }
        Ok(())
    }

    /// Records what became of request `number`; of two requests that crossed (SPEC `SESS-7`),
    /// the one with the greater token goes on to the peer's app and the other is refused, so
    /// both may not meet the same fate.
    fn note_fate(&mut self, number: u64, fate: Fate) -> Result<(), Violation> {
        let Some(request) = self.requests.get_mut(&number) else {
            return Ok(());
        };
        match fate {
            Fate::ReachedApp => request.reached_app = true,
            Fate::RefusedExists => request.refused_exists = true,
        }
        let met = |r: &crate::world::Request| match fate {
            Fate::ReachedApp => r.reached_app,
            Fate::RefusedExists => r.refused_exists,
        };
        let crossed = request.crossed;
        match crossed {
            Some(other)
                if self
                    .requests
                    .get(&other)
                    .is_some_and(|o| o.crossed == Some(number) && met(o)) =>
            {
                broken(
                    Property::Crossing,
                    format!("crossing requests #{other} and #{number} were both {fate:?}"),
                )
            }
            _ => Ok(()),
        }
    }

    /// The channel of `session`, which must be connected on `link` and announced.
    fn connected_on(
        &self,
        d: usize,
        link: LinkId,
        session: u64,
        what: &str,
    ) -> Result<u32, Violation> {
        match self.sessions[d].get(&session).map(|s| s.known) {
            Some(Known::Connected {
                link: l,
                channel,
                announced: true,
            }) if l == link => Ok(channel),
            other => broken(
                Property::ConnectedOnly,
                format!(
                    "{}: {what} for session {session}, which was {other:?}",
                    DEVICES[d]
                ),
            ),
        }
    }

    /// A message, transfer or event arrived on `session`: it must be the next the peer sent on
    /// the session's channel that has not arrived (some may have been lost with the session).
    fn arrived(
        &mut self,
        d: usize,
        link: LinkId,
        session: u64,
        kind: Kind,
        content: Bytes,
    ) -> Result<(), Violation> {
        let what = format!("{kind:?}");
        let channel = self.connected_on(d, link, session, &what)?;
        let Some((w, e)) = self.end_of(d, link) else {
            return Ok(());
        };
        let queue = self.sent.entry((w, 1 - e, channel, kind)).or_default();
        while let Some(next) = queue.pop_front() {
            if next == content {
                return Ok(());
            }
        }
        let property = match kind {
            Kind::Data => Property::WholeData,
            Kind::Message | Kind::Event => Property::ConnectedOnly,
        };
        broken(
            property,
            format!(
                "{}: {kind:?} of {} bytes on session {session} is not what the peer sent next",
                DEVICES[d],
                content.len()
            ),
        )
    }
}
