//! The body of the `device` fuzz target: three devices' [`DeviceEngine`]s, joined by perfect
//! wires that the input opens (two between the same devices at times, as `LINK-8` allows), lose
//! and drains, with the apps' calls and the clock in between. It reaches what spans links: the
//! routing of requests and tokens, SESS-1, SESS-3 and SESS-7 across links, a link's retirement,
//! and the sessions that move from link to link.
//!
//! After every operation it checks every device's events against its own account of the apps'
//! sessions: a connect ends once, with `Connected` or `ConnectFailed` on the link and channel of
//! its request; messages, data, events and disconnects come only for sessions connected on that
//! link; a request is routed only to its target device, from its link's peer. And it checks
//! that the engine's state of each session is the account's. At the end, once everything sent
//! has arrived and the clock has passed every timer, no connect is still waiting, no request is
//! still pending, and, if no link was lost, every connected session has its twin connected on
//! the other device.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use acm_engine::EngineConfig;
use acm_engine::device::{DeviceEngine, DeviceEvent, LinkId, RoutedRequest, SessionId};
use acm_transport::Role;
use acm_wire::pb::{self, ConnectErrorCode, DisconnectReason};
use bytes::Bytes;

use crate::Input;

mod seeds;

pub use seeds::seeds;

const DEVICES: [&str; 3] = ["phone", "tablet", "watch"];
const SERVICES: [&str; 3] = ["chat", "files", "sync"];
const BUNDLE: &str = "com.example";

/// The most operations one input runs, and the most links and sessions it opens.
const MAX_OPS: usize = 400;
const MAX_WIRES: usize = 12;
const MAX_SESSIONS: usize = 64;

/// The fuzz target `device`: runs the operations of `data` and panics on any broken invariant.
pub fn device(data: &[u8]) {
    let mut input = Input::new(data);
    let mut world = World::new(input.byte());
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        world.step(&mut input);
        world.check_states();
    }
    world.finish();
}

/// What an app of one device knows of one of its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Idle,
    Connecting(LinkId, u32),
    /// Connected; `false` until the engine's `Connected` event for it has come.
    Connected(LinkId, u32, bool),
}

#[derive(Debug, Clone, Copy)]
struct Account {
    peer: usize,
    service: usize,
    known: Known,
    /// Destroyed while its request waited: gone for the app, its answer still to come.
    destroyed: bool,
}

#[derive(Debug, Clone, Copy)]
struct Wire {
    ends: [(usize, LinkId); 2],
    lost: bool,
}

struct World {
    now: Instant,
    devices: Vec<DeviceEngine>,
    wires: Vec<Wire>,
    /// Each device's sessions, in order of creation.
    accounts: Vec<BTreeMap<SessionId, Account>>,
    /// Each device's requests routed to its app and not answered by it.
    requests: Vec<Vec<RoutedRequest>>,
    next_token: u64,
    lost_any: bool,
}

impl World {
    fn new(config: u8) -> Self {
        let mut engine = EngineConfig::default();
        if config & 1 != 0 {
            engine = engine.with_max_sessions(2);
        }
        if config & 2 != 0 {
            engine = engine.with_keepalive_interval(Duration::from_secs(1));
        }
        Self {
            now: Instant::now(),
            devices: DEVICES
                .iter()
                .map(|name| DeviceEngine::new(*name, engine))
                .collect(),
            wires: Vec::new(),
            accounts: vec![BTreeMap::new(); DEVICES.len()],
            requests: vec![Vec::new(); DEVICES.len()],
            next_token: 0,
            lost_any: false,
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.byte();
        let d = usize::from(op >> 4) % DEVICES.len();
        match op & 0x0F {
            0 => self.dial(d, input.byte()),
            1 | 2 => {
                let (wire, frames) = (input.byte(), input.byte());
                self.carry(usize::from(wire), usize::from(frames % 8) + 1);
            }
            3 => self.settle(),
            4 => self.create(d, input.byte()),
            5 => self.connect(d, input.byte()),
            6 => self.answer(d, input.byte(), input.byte()),
            7 => self.end(d, input.byte(), false),
            8 => self.end(d, input.byte(), true),
            9 => self.send(d, input.byte(), input.byte()),
            10 => self.lose(usize::from(input.byte())),
            11 => self.advance(input.byte()),
            12 => self.remove_finished(),
            _ => self.carry(usize::from(input.byte()), 64),
        }
        self.collect();
    }

    fn token(&mut self) -> [u8; 16] {
        self.next_token += 1;
        let mut token = [0x5Au8; 16];
        token[8..].copy_from_slice(&self.next_token.to_be_bytes());
        token
    }

    fn dial(&mut self, from: usize, to: u8) {
        let to = (from + 1 + usize::from(to % 2)) % DEVICES.len();
        if self.wires.len() >= MAX_WIRES {
            return;
        }
        let nonce = [self.wires.len() as u8; 16];
        let a = self.devices[from].add_link(self.now, Role::Dialer, DEVICES[to], 65_535, nonce);
        let b = self.devices[to].add_link(self.now, Role::Acceptor, DEVICES[from], 65_535, nonce);
        self.wires.push(Wire {
            ends: [(from, a), (to, b)],
            lost: false,
        });
    }

    /// Moves up to `frames` frames along wire `wire`, both ways.
    fn carry(&mut self, wire: usize, frames: usize) {
        let Some(&w) = self.wires.get(wire % self.wires.len().max(1)) else {
            return;
        };
        if w.lost {
            return;
        }
        for (from, to) in [(w.ends[0], w.ends[1]), (w.ends[1], w.ends[0])] {
            for _ in 0..frames {
                let Some(frame) = self.devices[from.0].poll_transmit(from.1, self.now) else {
                    break;
                };
                self.devices[to.0].handle_message(to.1, self.now, frame);
            }
        }
    }

    /// Carries every frame until none is left.
    fn settle(&mut self) {
        for _ in 0..1000 {
            let before: usize = self.pending_frames();
            if before == 0 {
                return;
            }
            for wire in 0..self.wires.len() {
                self.carry(wire, usize::MAX);
            }
            self.collect();
        }
    }

    fn pending_frames(&self) -> usize {
        self.wires
            .iter()
            .filter(|w| !w.lost)
            .flat_map(|w| w.ends)
            .filter(|(d, link)| self.devices[*d].wants_transmit(*link))
            .count()
    }

    fn create(&mut self, d: usize, choice: u8) {
        if self.accounts[d].len() >= MAX_SESSIONS {
            return;
        }
        let peer = (d + 1 + usize::from(choice & 1)) % DEVICES.len();
        let service = usize::from(choice >> 1) % SERVICES.len();
        let id = self.devices[d].create_session(
            app(d, service),
            app(peer, service),
            pb::ConnectOptions::default(),
        );
        let account = Account {
            peer,
            service,
            known: Known::Idle,
            destroyed: false,
        };
        assert!(
            self.accounts[d].insert(id, account).is_none(),
            "id {id} twice"
        );
    }

    /// The `choice`-th session of device `d` the app still has.
    fn pick(&self, d: usize, choice: u8) -> Option<SessionId> {
        let live: Vec<SessionId> = self.accounts[d]
            .iter()
            .filter(|(_, a)| !a.destroyed)
            .map(|(id, _)| *id)
            .collect();
        live.get(usize::from(choice) % live.len().max(1)).copied()
    }

    fn connect(&mut self, d: usize, choice: u8) {
        let Some(id) = self.pick(d, choice) else {
            return;
        };
        let token = self.token();
        let account = self.accounts[d][&id];
        match self.devices[d].connect(id, token, self.now) {
            Ok((link, channel)) => {
                assert_eq!(
                    account.known,
                    Known::Idle,
                    "{}: connect of a busy session",
                    DEVICES[d]
                );
                assert_eq!(self.devices[d].peer_of(link), Some(DEVICES[account.peer]));
                self.known(d, id, Known::Connecting(link, channel));
            }
            Err(acm_engine::EngineError::NotIdle) => {
                assert_ne!(
                    account.known,
                    Known::Idle,
                    "{}: an idle session refused",
                    DEVICES[d]
                );
            }
            Err(acm_engine::EngineError::NoLink(peer)) => {
                assert_eq!(peer, DEVICES[account.peer]);
                assert!(self.devices[d].preferred_link(&peer).is_none());
            }
            Err(_) => {}
        }
    }

    fn answer(&mut self, d: usize, choice: u8, how: u8) {
        if self.requests[d].is_empty() {
            return;
        }
        let at = usize::from(choice) % self.requests[d].len();
        let request = self.requests[d][at].clone();
        let now = self.now;
        let result = match how % 3 {
            0 => self.devices[d].reject(
                &request.token,
                BUNDLE,
                ConnectErrorCode::PeerAppRejected,
                "no",
                now,
            ),
            1 => {
                let id = self.devices[d].create_session(
                    app(d, service_of(&request.source.service_name)),
                    request.source.clone(),
                    request.options.clone(),
                );
                self.accounts[d].insert(
                    id,
                    Account {
                        peer: device_of(&request.source.device_id),
                        service: service_of(&request.source.service_name),
                        known: Known::Idle,
                        destroyed: false,
                    },
                );
                self.accept(d, id, &request)
            }
            _ => match self.pick(d, how) {
                Some(id) => self.accept(d, id, &request),
                None => return,
            },
        };
        if result.is_ok() {
            self.requests[d].remove(at);
        }
    }

    fn accept(
        &mut self,
        d: usize,
        id: SessionId,
        request: &RoutedRequest,
    ) -> Result<LinkId, acm_engine::EngineError> {
        let result = self.devices[d].accept(id, &request.token, BUNDLE, self.now);
        if let Ok(link) = result {
            let account = self.accounts[d][&id];
            assert_eq!(
                account.known,
                Known::Idle,
                "{}: accepted into a busy session",
                DEVICES[d]
            );
            assert_eq!(DEVICES[account.peer], request.source.device_id);
            assert_eq!(SERVICES[account.service], request.source.service_name);
            let Some(acm_engine::device::SessionState::Connected { channel, .. }) =
                self.devices[d].session_state(id)
            else {
                panic!("{}: accepted but not connected", DEVICES[d]);
            };
            self.known(d, id, Known::Connected(link, channel, false));
        }
        result
    }

    fn end(&mut self, d: usize, choice: u8, destroy: bool) {
        let Some(id) = self.pick(d, choice) else {
            return;
        };
        let now = self.now;
        if destroy {
            self.devices[d]
                .destroy_session(id, now)
                .expect("the app's session");
            let account = self.accounts[d].get_mut(&id).expect("an account");
            if matches!(account.known, Known::Connecting(..)) {
                account.destroyed = true;
            } else {
                self.accounts[d].remove(&id);
            }
            return;
        }
        let reason = DisconnectReason::PeerAppCloseCollaboration;
        match self.devices[d].disconnect(id, reason, now) {
            Ok(_) => {
                let account = self.accounts[d][&id];
                match account.known {
                    // The connect that waited fails, as the engine's event says.
                    Known::Connecting(..) => {}
                    Known::Connected(..) => self.known(d, id, Known::Idle),
                    Known::Idle => panic!("{}: an idle session disconnected", DEVICES[d]),
                }
            }
            Err(_) => assert_eq!(self.accounts[d][&id].known, Known::Idle),
        }
    }

    fn send(&mut self, d: usize, choice: u8, what: u8) {
        let Some(id) = self.pick(d, choice) else {
            return;
        };
        let now = self.now;
        let connected = matches!(self.accounts[d][&id].known, Known::Connected(..));
        let sent = match what % 3 {
            0 => self.devices[d].send_message(id, "hello", now).map(|_| ()),
            1 => {
                let data = Bytes::from(vec![what; usize::from(what) * 997]);
                self.devices[d].send_data(id, data, now).map(|_| ())
            }
            _ => {
                let event = pb::CollaborateEventType::SendFailure;
                self.devices[d]
                    .send_collaborate_event(id, event, "event", now)
                    .map(|_| ())
            }
        };
        assert_eq!(sent.is_ok(), connected, "{}: a send {sent:?}", DEVICES[d]);
    }

    fn lose(&mut self, wire: usize) {
        let count = self.wires.len();
        let Some(w) = self.wires.get_mut(wire % count.max(1)) else {
            return;
        };
        if w.lost {
            return;
        }
        w.lost = true;
        self.lost_any = true;
        for (d, link) in w.ends {
            self.devices[d].handle_link_lost(link, self.now, "lost");
        }
    }

    fn advance(&mut self, by: u8) {
        self.now += Duration::from_millis(u64::from(by) * 250);
        for device in &mut self.devices {
            let links: Vec<LinkId> = device.link_ids().collect();
            for link in links {
                if device.poll_timeout(link).is_some_and(|due| due <= self.now) {
                    device.handle_timeout(link, self.now);
                    assert!(
                        device.poll_timeout(link).is_none_or(|due| due > self.now),
                        "a deadline left behind"
                    );
                }
            }
        }
    }

    /// The runtime's part: links that have ended and sent everything are removed.
    fn remove_finished(&mut self) {
        for w in &mut self.wires {
            let finished = w
                .ends
                .iter()
                .all(|(d, link)| self.devices[*d].is_finished(*link));
            if finished && !w.lost {
                w.lost = true;
                for (d, link) in w.ends {
                    self.devices[d].remove_link(link, self.now);
                }
            }
        }
    }

    fn known(&mut self, d: usize, id: SessionId, known: Known) {
        if let Some(account) = self.accounts[d].get_mut(&id) {
            account.known = known;
        }
    }

    /// Takes every device's events and checks each against the accounts.
    fn collect(&mut self) {
        for d in 0..self.devices.len() {
            let links: Vec<LinkId> = self.devices[d].link_ids().collect();
            for link in links {
                while let Some(event) = self.devices[d].poll_event(link) {
                    self.event(d, link, event);
                }
            }
        }
    }

    fn event(&mut self, d: usize, link: LinkId, event: DeviceEvent) {
        let name = DEVICES[d];
        let on = |account: Option<&Account>| account.map(|a| a.known);
        match event {
            DeviceEvent::LinkUp { peer, .. } => {
                assert_eq!(self.devices[d].peer_of(link), Some(peer.as_str()));
            }
            DeviceEvent::LinkClosed { .. } => {
                for account in self.accounts[d].values() {
                    assert!(
                        !matches!(account.known, Known::Connected(l, ..) | Known::Connecting(l, _) if l == link),
                        "{name}: a session outlives its link"
                    );
                }
            }
            DeviceEvent::IncomingRequest(request) => {
                assert_eq!(request.target.device_id, name, "routed to another device");
                assert_eq!(
                    Some(request.source.device_id.as_str()),
                    self.devices[d].peer_of(link),
                    "{name}: a request from a device other than the link's peer"
                );
                assert_eq!(request.source.service_name, request.target.service_name);
                self.requests[d].push(*request);
            }
            DeviceEvent::Connected { session, channel } => {
                match on(self.accounts[d].get(&session)) {
                    Some(Known::Connecting(l, c)) if (l, c) == (link, channel) => {}
                    Some(Known::Connected(l, c, false)) if (l, c) == (link, channel) => {}
                    other => panic!("{name}: Connected for {session} that was {other:?}"),
                }
                let destroyed = self.accounts[d][&session].destroyed;
                assert!(!destroyed, "{name}: a destroyed session connected");
                self.known(d, session, Known::Connected(link, channel, true));
            }
            DeviceEvent::ConnectFailed {
                session, channel, ..
            } => {
                match on(self.accounts[d].get(&session)) {
                    Some(Known::Connecting(l, c)) if (l, c) == (link, channel) => {}
                    other => panic!("{name}: ConnectFailed for {session} that was {other:?}"),
                }
                if self.accounts[d][&session].destroyed {
                    self.accounts[d].remove(&session);
                } else {
                    self.known(d, session, Known::Idle);
                }
            }
            DeviceEvent::Message { session, .. }
            | DeviceEvent::Data { session, .. }
            | DeviceEvent::DataProgress { session, .. }
            | DeviceEvent::CollaborateEvent { session, .. } => {
                assert!(
                    matches!(on(self.accounts[d].get(&session)), Some(Known::Connected(l, _, true)) if l == link),
                    "{name}: {event:?} for a session not connected on its link"
                );
            }
            DeviceEvent::Disconnected { session, .. } => {
                assert!(
                    matches!(on(self.accounts[d].get(&session)), Some(Known::Connected(l, _, true)) if l == link),
                    "{name}: Disconnected for a session not connected on its link"
                );
                self.known(d, session, Known::Idle);
            }
            DeviceEvent::DataSent {
                transfer,
                sent,
                total,
            } => {
                assert_eq!(transfer.link, link);
                assert!(sent <= total);
            }
            DeviceEvent::TransferSent(transfer) | DeviceEvent::TransferAborted(transfer) => {
                assert_eq!(transfer.link, link);
            }
        }
    }

    /// The engine's state of every session is the account's.
    fn check_states(&self) {
        for (d, accounts) in self.accounts.iter().enumerate() {
            for (id, account) in accounts {
                let state = self.devices[d].session_state(*id);
                if account.destroyed {
                    assert_eq!(state, None, "{}: destroyed {id} still there", DEVICES[d]);
                    continue;
                }
                let expected = match account.known {
                    Known::Idle => acm_engine::device::SessionState::Idle,
                    Known::Connecting(link, channel) => {
                        acm_engine::device::SessionState::Connecting { link, channel }
                    }
                    Known::Connected(link, channel, _) => {
                        acm_engine::device::SessionState::Connected { link, channel }
                    }
                };
                assert_eq!(state, Some(expected), "{}: session {id}", DEVICES[d]);
            }
        }
    }

    /// Everything arrives and every timer passes: nothing waits any longer.
    fn finish(&mut self) {
        for _ in 0..6 {
            self.settle();
            self.advance(40);
            self.collect();
        }
        self.settle();
        self.collect();
        self.check_states();
        for (d, accounts) in self.accounts.iter().enumerate() {
            for (id, account) in accounts {
                assert!(
                    !matches!(account.known, Known::Connecting(..)),
                    "{}: the connect of {id} never ended",
                    DEVICES[d]
                );
            }
            assert_eq!(
                self.devices[d].pending_requests(),
                0,
                "{}: requests left",
                DEVICES[d]
            );
        }
        if !self.lost_any {
            self.check_twins();
        }
    }

    /// On clean wires, the connected sessions of two devices come in twins: as many from each
    /// side for each service.
    fn check_twins(&self) {
        let mut count: HashMap<(usize, usize, usize), i64> = HashMap::new();
        for (d, accounts) in self.accounts.iter().enumerate() {
            for account in accounts.values() {
                if matches!(account.known, Known::Connected(..)) {
                    let (low, high) = (d.min(account.peer), d.max(account.peer));
                    let side = if d == low { 1 } else { -1 };
                    *count.entry((low, high, account.service)).or_default() += side;
                }
            }
        }
        for (key, balance) in count {
            assert_eq!(balance, 0, "sessions without a twin between {key:?}");
        }
    }
}

/// The app of device `d` for service `service`.
fn app(d: usize, service: usize) -> pb::PeerInfo {
    pb::PeerInfo {
        device_id: DEVICES[d].into(),
        bundle_name: BUNDLE.into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: SERVICES[service].into(),
    }
}

fn device_of(name: &str) -> usize {
    DEVICES.iter().position(|d| *d == name).unwrap_or(0)
}

fn service_of(name: &str) -> usize {
    SERVICES.iter().position(|s| *s == name).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_of_every_first_bytes_pass() {
        for a in 0..=255u8 {
            device(&[a]);
            device(&[a, a.rotate_left(3), a, a ^ 0x55]);
        }
    }
}
