//! A step taken: the devices' engines act on it, and what they do is checked against the
//! properties as it comes out.

use super::*;

impl World {
    /// Takes `step`, then every frame the devices have to send, then every event, checking
    /// each against the properties.
    pub fn apply(&mut self, step: Step) -> Result<(), Violation> {
        self.note_cut(step);
        self.delivered = None;
        self.ending = None;
        self.step = Some(step);
        let now = self.now;
        match step {
            Step::Create { device, peer } => {
                let id = self.devices[device].create_session(
                    app(device),
                    app(peer),
                    pb::ConnectOptions::default(),
                );
                self.creates[device] += 1;
                self.sessions[device].insert(
                    id,
                    Session {
                        peer,
                        known: Known::Idle,
                        destroyed: false,
                    },
                );
            }
            Step::Connect { device, session } => {
                let number = self.next_token + 1;
                if self.connect(device, session, number) {
                    self.next_token = number;
                    self.requests.insert(number, Request::default());
                }
            }
            Step::Replay { device, session } => {
                if let Some(number) = self.last_token[device] {
                    self.connect(device, session, number);
                }
            }
            Step::Accept { device, token } => self.accept(device, token),
            Step::Reject { device, token } => {
                if let Some(at) = self.routed[device].iter().position(|r| r.number == token) {
                    let r = self.routed[device][at];
                    let code = ConnectErrorCode::PeerAppRejected;
                    if self.devices[device]
                        .reject(&r.token, BUNDLE, code, "no", now)
                        .is_ok()
                    {
                        self.routed[device].remove(at);
                    }
                }
            }
            Step::Message { device, session } => self.send(device, session, Kind::Message),
            Step::Data { device, session } => self.send(device, session, Kind::Data),
            Step::Event { device, session } => self.send(device, session, Kind::Event),
            Step::Disconnect { device, session } => {
                if self.sessions[device]
                    .get(&session)
                    .is_some_and(|s| matches!(s.known, Known::Connecting { .. }))
                {
                    self.witness(Witness::Withdrawn);
                }
                let reason = DisconnectReason::PeerAppCloseCollaboration;
                self.note_cause(device, session, reason);
                if self.devices[device]
                    .disconnect(session, reason, now)
                    .is_ok()
                    && let Some(s) = self.sessions[device].get_mut(&session)
                    && matches!(s.known, Known::Connected { .. })
                {
                    s.known = Known::Idle;
                }
            }
            Step::Destroy { device, session } => {
                self.note_cause(device, session, DisconnectReason::PeerAppExit);
                if self.devices[device].destroy_session(session, now).is_ok()
                    && let Some(s) = self.sessions[device].get_mut(&session)
                {
                    if matches!(s.known, Known::Connecting { .. }) {
                        s.destroyed = true;
                    } else {
                        self.sessions[device].remove(&session);
                    }
                }
            }
            Step::Deliver { wire, from } => self.deliver(wire, from, None)?,
            Step::Tamper { wire, from, how } => self.deliver(wire, from, Some(how))?,
            Step::Lose { wire } => {
                self.losses += 1;
                self.wires[wire].lost = true;
                for e in 0..2 {
                    let end = &mut self.wires[wire].ends[e];
                    end.queue.clear();
                    let (device, link) = (end.device, end.link);
                    self.devices[device].handle_link_lost(link, now, "lost");
                }
            }
            Step::Advance { ms } => {
                self.advances += 1;
                self.now += Duration::from_millis(ms);
            }
            Step::Fire { device, wire } => {
                let e = usize::from(self.wires[wire].ends[1].device == device);
                let link = self.wires[wire].ends[e].link;
                self.devices[device].handle_timeout(link, now);
                let timeout = self.devices[device].config().responder_timeout;
                let before = self.routed[device].len();
                self.routed[device].retain(|r| r.wire != wire || r.at + timeout > now);
                if self.routed[device].len() < before {
                    self.witness(Witness::ResponderTimeout);
                }
            }
        }
        self.drain()?;
        self.collect()?;
        if let Step::Fire { device, wire } = step {
            self.check_fired(device, wire)?;
        }
        self.check_state()
    }

    /// Marks [`Witness::TransferCut`] if `step` ends a session (or a link) whose side holds
    /// part of an incoming transfer.
    fn note_cut(&mut self, step: Step) {
        let ends: Vec<(usize, LinkId)> = match step {
            Step::Disconnect { device, session } | Step::Destroy { device, session } => {
                match self.sessions[device].get(&session).map(|s| s.known) {
                    Some(Known::Connected { link, .. }) => vec![(device, link)],
                    _ => Vec::new(),
                }
            }
            Step::Lose { wire } => self.wires[wire]
                .ends
                .iter()
                .map(|e| (e.device, e.link))
                .collect(),
            _ => Vec::new(),
        };
        let held = ends.iter().any(|(d, link)| {
            self.devices[*d]
                .link(*link)
                .is_some_and(|l| l.reassembly_bytes() > 0)
        });
        if held {
            self.witness(Witness::TransferCut);
        }
    }

    /// Connects `session` of `device` with token `number`; whether the request went out.
    fn connect(&mut self, device: usize, session: SessionId, number: u64) -> bool {
        let now = self.now;
        let Ok((link, channel)) = self.devices[device].connect(session, token(number), now) else {
            return false;
        };
        if let Some(s) = self.sessions[device].get_mut(&session) {
            s.known = Known::Connecting {
                link,
                channel,
                at: now,
                token: number,
            };
        }
        self.last_token[device] = Some(number);
        true
    }

    fn accept(&mut self, device: usize, number: u64) {
        let Some(at) = self.routed[device].iter().position(|r| r.number == number) else {
            return;
        };
        let r = self.routed[device][at];
        let id = self.devices[device].create_session(
            app(device),
            app(r.from),
            pb::ConnectOptions::default(),
        );
        let mut session = Session {
            peer: r.from,
            known: Known::Idle,
            destroyed: false,
        };
        if let Ok(link) = self.devices[device].accept(id, &r.token, BUNDLE, self.now) {
            session.known = Known::Connected {
                link,
                channel: r.channel,
                announced: false,
            };
            self.routed[device].remove(at);
        }
        self.sessions[device].insert(id, session);
    }

    fn send(&mut self, device: usize, session: SessionId, kind: Kind) {
        let Some(Known::Connected { link, channel, .. }) =
            self.sessions[device].get(&session).map(|s| s.known)
        else {
            return;
        };
        self.sends += 1;
        let n = self.sends;
        let now = self.now;
        let engine = &mut self.devices[device];
        let (sent, content) = match kind {
            Kind::Message => {
                let text = format!("m{n}");
                let sent = engine.send_message(session, &text, now).is_ok();
                (sent, Bytes::from(text))
            }
            Kind::Data => {
                let data = Bytes::from(vec![n as u8; DATA_LEN]);
                (engine.send_data(session, data.clone(), now).is_ok(), data)
            }
            Kind::Event => {
                let text = format!("e{n}");
                let event = CollaborateEventType::SendFailure;
                let sent = engine
                    .send_collaborate_event(session, event, &text, now)
                    .is_ok();
                (sent, Bytes::from(text))
            }
        };
        if sent && let Some((w, e)) = self.end_of(device, link) {
            self.sent
                .entry((w, e, channel, kind))
                .or_default()
                .push_back(content);
        }
    }

    /// Remembers that `device`'s app ends `session` with `reason` in this step: a DISCONNECT
    /// it sends on the session's channel has this cause.
    fn note_cause(&mut self, device: usize, session: SessionId, reason: DisconnectReason) {
        if let Some(
            Known::Connecting { link, channel, .. } | Known::Connected { link, channel, .. },
        ) = self.sessions[device].get(&session).map(|s| s.known)
        {
            self.ending = Some((device, link, channel, reason));
        }
    }
}
