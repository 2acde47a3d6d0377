//! What the model checks: each frame a device sends, each event it reports, the state of every
//! session after each step, the links' timers after they fire, and everything once the network
//! is quiet.

use std::collections::BTreeMap;

use acm_engine::device::{DeviceEvent, LinkId, SessionState};
use acm_wire::Control;
use acm_wire::pb::{ConnectErrorCode, DisconnectReason, LinkCloseReason, SessionError};
use bytes::Bytes;

use crate::network::parse;
use crate::property::{Property, Violation, Witness, broken};
use crate::step::{DEVICES, Step, Tamper};
use crate::world::{Kind, Known, World, silence};

mod events;

impl World {
    /// What end `e` of wire `w` sends: nothing after LINK_CLOSE or on a channel after its
    /// DISCONNECT, and no sign that a rule was broken.
    pub(crate) fn check_sent(
        &mut self,
        w: usize,
        e: usize,
        frame: &Bytes,
    ) -> Result<(), Violation> {
        let name = DEVICES[self.wires[w].ends[e].device];
        let end = &mut self.wires[w].ends[e];
        let Some((kind, channel, control)) = parse(frame) else {
            return broken(
                Property::NoRuleBroken,
                format!("{name} sent a frame that does not parse"),
            );
        };
        if end.sent_close {
            return broken(
                Property::NothingAfterClose,
                format!("{name} sent {kind:?} on wire {w} after its LINK_CLOSE"),
            );
        }
        if end.got_close {
            return broken(
                Property::NothingAfterClose,
                format!("{name} sent {kind:?} on wire {w} after receiving LINK_CLOSE"),
            );
        }
        if channel != 0 && end.done.contains(&channel) {
            return broken(
                Property::NothingAfterClose,
                format!("{name} sent {kind:?} on channel {channel} after its DISCONNECT"),
            );
        }
        match control {
            Some(Control::Disconnect(d)) => {
                let end = &mut self.wires[w].ends[e];
                end.done.insert(channel);
                let (device, link) = (end.device, end.link);
                let cause = self.cause(w, e, device, link, channel);
                self.causes.insert((w, e, channel), cause);
                let error = SessionError::try_from(d.error).unwrap_or(SessionError::None);
                let rule_broken = matches!(
                    error,
                    SessionError::ProtocolError | SessionError::LimitExceeded
                );
                if rule_broken && !self.exempt.contains(&(w, e, channel)) {
                    return broken(
                        Property::NoRuleBroken,
                        format!(
                            "{name} ended channel {channel} with {}: {}",
                            error.as_str_name(),
                            d.detail
                        ),
                    );
                }
            }
            Some(Control::LinkClose(close)) => {
                self.wires[w].ends[e].sent_close = true;
                let reason =
                    LinkCloseReason::try_from(close.reason).unwrap_or(LinkCloseReason::Unspecified);
                if reason == LinkCloseReason::Timeout {
                    self.witness(if close.message.starts_with("LINK-10") {
                        Witness::HelloTimeout
                    } else {
                        Witness::KeepaliveClose
                    });
                }
                if matches!(
                    reason,
                    LinkCloseReason::ProtocolError | LinkCloseReason::FrameTooLarge
                ) {
                    return broken(
                        Property::NoRuleBroken,
                        format!(
                            "{name} closed wire {w} with {}: {}",
                            reason.as_str_name(),
                            close.message
                        ),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Why end `e` of wire `w` (`device`'s `link`) ends `channel` in the step under way: its
    /// app's call, the answer to a request of a session its app destroyed, or a failure.
    fn cause(
        &mut self,
        w: usize,
        e: usize,
        device: usize,
        link: LinkId,
        channel: u32,
    ) -> DisconnectReason {
        if let Some((d, l, c, reason)) = self.ending
            && (d, l, c) == (device, link, channel)
        {
            return reason;
        }
        let answered = self
            .delivered
            .is_some_and(|x| x.wire == w && x.from != e && x.response && x.channel == channel);
        let destroyed = self.sessions[device].values().any(|s| {
            s.destroyed
                && matches!(s.known, Known::Connecting { link: l, channel: c, .. } if (l, c) == (link, channel))
        });
        if answered && destroyed {
            self.witness(Witness::DestroyedAnswered);
            DisconnectReason::PeerAppExit
        } else {
            DisconnectReason::NetworkDisconnected
        }
    }

    /// Takes every device's events, link by link, and checks each.
    pub(crate) fn collect(&mut self) -> Result<(), Violation> {
        for d in 0..self.devices.len() {
            let mut links: Vec<LinkId> = self.devices[d].link_ids().collect();
            links.sort();
            for link in links {
                while let Some(event) = self.devices[d].poll_event(link) {
                    self.event(d, link, event)?;
                }
            }
        }
        Ok(())
    }

    /// After every step: the engine's state of each session is the account's; no device has
    /// two sessions connected for the same apps and service; the requests waiting for each app
    /// are the ones the account has.
    pub(crate) fn check_state(&self) -> Result<(), Violation> {
        for (d, sessions) in self.sessions.iter().enumerate() {
            let name = DEVICES[d];
            let mut connected: BTreeMap<usize, usize> = BTreeMap::new();
            for (id, s) in sessions {
                let state = self.devices[d].session_state(*id);
                let expected = match s.known {
                    _ if s.destroyed => None,
                    Known::Idle => Some(SessionState::Idle),
                    Known::Connecting { link, channel, .. } => {
                        Some(SessionState::Connecting { link, channel })
                    }
                    Known::Connected { link, channel, .. } => {
                        *connected.entry(s.peer).or_default() += 1;
                        Some(SessionState::Connected { link, channel })
                    }
                };
                if state != expected {
                    return broken(
                        Property::OneResult,
                        format!("{name}: session {id} is {state:?}, its events said {expected:?}"),
                    );
                }
            }
            if let Some((peer, _)) = connected.iter().find(|(_, n)| **n > 1) {
                return broken(
                    Property::OneSession,
                    format!("{name} has two sessions connected with {}", DEVICES[*peer]),
                );
            }
            let pending = self.devices[d].pending_requests();
            if pending != self.routed[d].len() {
                return broken(
                    Property::Timers,
                    format!(
                        "{name} holds {pending} requests for its apps, {} were neither answered, withdrawn nor timed out",
                        self.routed[d].len()
                    ),
                );
            }
        }
        Ok(())
    }

    /// After `device` handled its link's deadlines on `wire`: none is left behind, no
    /// handshake outlived its timer, and a link silent for three keepalive intervals closed.
    pub(crate) fn check_fired(&self, device: usize, wire: usize) -> Result<(), Violation> {
        let name = DEVICES[device];
        let e = usize::from(self.wires[wire].ends[1].device == device);
        let end = &self.wires[wire].ends[e];
        let engine = &self.devices[device];
        if engine
            .poll_timeout(end.link)
            .is_some_and(|due| due <= self.now)
        {
            return broken(
                Property::Timers,
                format!("{name}: a deadline on wire {wire} left behind"),
            );
        }
        let handshake = engine.config().handshake_timeout;
        for (id, s) in &self.sessions[device] {
            if let Known::Connecting { link, at, .. } = s.known
                && link == end.link
                && at + handshake <= self.now
            {
                return broken(
                    Property::Timers,
                    format!("{name}: the connect of session {id} outlived its handshake timer"),
                );
            }
        }
        let hello = engine.config().hello_timeout;
        if !engine.is_up(end.link) && !engine.is_closed(end.link) && self.start + hello <= self.now
        {
            return broken(
                Property::Timers,
                format!("{name}: wire {wire} still waits for a HELLO after its timer"),
            );
        }
        if end.last_rx + silence(engine.config()) <= self.now && !engine.is_closed(end.link) {
            return broken(
                Property::Timers,
                format!("{name}: wire {wire} stayed open after three silent keepalive intervals"),
            );
        }
        Ok(())
    }

    /// Whether the network is quiet: nothing to deliver and no deadline passed.
    fn quiet(&self) -> bool {
        let enabled = self.enabled_network();
        enabled.is_empty()
    }

    /// The deliveries and timers possible now, in a fixed order.
    fn enabled_network(&self) -> Vec<Step> {
        let mut all = self.enabled();
        all.retain(|s| matches!(s, Step::Deliver { .. } | Step::Fire { .. }));
        all
    }

    /// Whether something still waits: a connect for its result, a request for its answer.
    fn waiting(&self) -> bool {
        self.sessions
            .iter()
            .flat_map(|s| s.values())
            .any(|s| matches!(s.known, Known::Connecting { .. }))
            || self.devices.iter().any(|d| d.pending_requests() > 0)
    }

    /// Lets the network deliver everything and time pass until nothing waits, with no app
    /// acting, appending the steps taken to `trail`; then checks the quiet network.
    pub fn settle(&mut self, trail: &mut Vec<Step>) -> Result<(), Violation> {
        for _ in 0..64 {
            while let Some(step) = self.enabled_network().first().copied() {
                trail.push(step);
                self.apply(step)?;
            }
            let Some(ms) = self.deadlines().first().copied() else {
                break;
            };
            if !self.waiting() {
                break;
            }
            let step = Step::Advance { ms };
            trail.push(step);
            self.apply(step)?;
        }
        debug_assert!(self.quiet());
        self.check_quiet()
    }

    /// The network is quiet: nothing waits, and each session connected on a link has its twin
    /// connected at the other end, on the same channel.
    fn check_quiet(&self) -> Result<(), Violation> {
        for (d, sessions) in self.sessions.iter().enumerate() {
            for (id, s) in sessions {
                if matches!(s.known, Known::Connecting { .. }) {
                    return broken(
                        Property::EventuallyAnswered,
                        format!("{}: the connect of session {id} never ended", DEVICES[d]),
                    );
                }
            }
            if self.devices[d].pending_requests() > 0 {
                return broken(
                    Property::EventuallyAnswered,
                    format!("{}: a request was never answered nor dropped", DEVICES[d]),
                );
            }
        }
        for (w, wire) in self.wires.iter().enumerate() {
            let channels = |e: usize| -> Vec<u32> {
                let end = &wire.ends[e];
                self.sessions[end.device]
                    .values()
                    .filter_map(|s| match s.known {
                        Known::Connected { link, channel, .. } if link == end.link => Some(channel),
                        _ => None,
                    })
                    .collect::<std::collections::BTreeSet<u32>>()
                    .into_iter()
                    .collect()
            };
            let (a, b) = (channels(0), channels(1));
            if a != b {
                return broken(
                    Property::Twins,
                    format!(
                        "wire {w}: {} has sessions connected on channels {a:?}, {} on {b:?}",
                        DEVICES[wire.ends[0].device], DEVICES[wire.ends[1].device]
                    ),
                );
            }
        }
        Ok(())
    }
}
