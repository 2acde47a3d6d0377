//! Watches one engine from outside: every event, call result and frame is checked against what
//! the engine was told and what SPEC.md allows, and after every step its counters against the
//! watcher's own account of the link and its sessions.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use acm_transport::Role;
use acm_wire::pb;
use acm_wire::{Control, MIN_FRAME_SIZE};
use bytes::Bytes;

use super::shadow::Arrival;

mod events;
use super::transmit::{Context, Sent};
use acm_engine::{Closer, EngineConfig, EngineEvent, LinkEngine, OutgoingRequest, Token};

/// What made the events of a step.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cause<'a> {
    Arrival(&'a Arrival),
    Timeout,
    LinkLost,
    Call,
    Transmit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    service: String,
    local: [String; 3],
    remote: [String; 3],
}

fn app(peer: &pb::PeerInfo) -> [String; 3] {
    [
        peer.bundle_name.clone(),
        peer.module_name.clone(),
        peer.ability_name.clone(),
    ]
}

impl Key {
    pub(super) fn new(local: &pb::PeerInfo, remote: &pb::PeerInfo, service: &str) -> Self {
        Self {
            service: service.into(),
            local: app(local),
            remote: app(remote),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Requested,
    Incoming,
    Connected,
    Closed,
}

#[derive(Debug, Clone)]
pub(super) struct Session {
    pub(super) state: State,
    key: Key,
    pub(super) token: Token,
    deadline: Option<Instant>,
    connected_ever: bool,
    /// Messages, events and transfers delivered to the app.
    pub(super) delivered: usize,
    /// Messages, events and transfers the app queued.
    pub(super) sent: usize,
}

/// The peer's side of the link, from its HELLO.
#[derive(Debug, Clone)]
pub(super) struct Up {
    device: String,
    pub(super) max_frame: u32,
    pub(super) max_data: u64,
    pub(super) keepalive: Duration,
}

#[derive(Debug)]
pub(super) struct Observer {
    pub(super) name: &'static str,
    role: Role,
    pub(super) config: EngineConfig,
    pub(super) local_device: String,
    link_max_frame: u32,
    created: Instant,
    pub(super) up: Option<Up>,
    pub(super) closed: Option<Closer>,
    pub(super) sessions: BTreeMap<u32, Session>,
    next_local: u64,
    ended_tokens: VecDeque<Token>,
    pub(super) last_transfer: BTreeMap<u32, u32>,
    last_rx: Instant,
    last_tx: Instant,
    pub(super) sent: Sent,
}

impl Observer {
    pub(super) fn new(
        name: &'static str,
        role: Role,
        local_device: &str,
        link_max_frame: u32,
        config: EngineConfig,
        now: Instant,
    ) -> Self {
        Self {
            name,
            role,
            config,
            local_device: local_device.into(),
            link_max_frame,
            created: now,
            up: None,
            closed: None,
            sessions: BTreeMap::new(),
            next_local: if role == Role::Dialer { 1 } else { 2 },
            ended_tokens: VecDeque::new(),
            last_transfer: BTreeMap::new(),
            last_rx: now,
            last_tx: now,
            sent: Sent::default(),
        }
    }

    pub(super) fn is_open(&self) -> bool {
        self.up.is_some() && self.closed.is_none()
    }

    /// The largest frame the engine accepts and the version frames must carry.
    pub(super) fn accepts(&self) -> (u32, Option<u8>) {
        let max = self.config.limits.max_frame_size.min(self.link_max_frame);
        (max.max(MIN_FRAME_SIZE), self.up.as_ref().map(|_| 1))
    }

    pub(super) fn state(&self, channel: u32) -> Option<State> {
        self.sessions.get(&channel).map(|s| s.state)
    }

    fn is_local(&self, channel: u32) -> bool {
        (channel % 2 == 1) == (self.role == Role::Dialer)
    }

    fn open_sessions(&self) -> impl Iterator<Item = (&u32, &Session)> {
        self.sessions
            .iter()
            .filter(|(_, s)| s.state != State::Closed)
    }

    /// The channel the next `connect` opens.
    pub(super) fn next_local(&self) -> u64 {
        self.next_local
    }

    pub(super) fn key_in_use(&self, key: &Key) -> bool {
        self.open_sessions().any(|(_, s)| s.key == *key)
    }

    pub(super) fn session_count(&self) -> usize {
        self.open_sessions().count()
    }

    /// Records a request the app made and the engine took.
    pub(super) fn requested(&mut self, now: Instant, channel: u32, request: &OutgoingRequest) {
        assert_eq!(
            u64::from(channel),
            self.next_local,
            "{}: channel",
            self.name
        );
        self.next_local = self.next_local.saturating_add(2);
        let key = Key::new(
            &request.source,
            &request.target,
            &request.target.service_name,
        );
        self.sessions.insert(
            channel,
            Session {
                state: State::Requested,
                key,
                token: request.token,
                deadline: now.checked_add(self.config.handshake_timeout),
                connected_ever: false,
                delivered: 0,
                sent: 0,
            },
        );
        let body = Control::ConnectRequest(pb::ConnectRequest {
            token: Bytes::copy_from_slice(&request.token),
            source: Some(request.source.clone()),
            target: Some(request.target.clone()),
            options: Some(request.options.clone()),
        });
        self.expect_body(channel, body);
    }

    /// Records a body the app asked for, which must go out on `channel`.
    pub(super) fn expect_body(&mut self, channel: u32, body: Control) {
        if matches!(body, Control::Message(_) | Control::CollaborateEvent(_))
            && let Some(session) = self.sessions.get_mut(&channel)
        {
            session.sent += 1;
        }
        self.sent
            .expected
            .entry(channel)
            .or_default()
            .push_back(body);
    }

    /// Moves a session to `state` on a call the app made.
    pub(super) fn set_state(&mut self, channel: u32, state: State) {
        let local = self.is_local(channel);
        let session = self.sessions.get_mut(&channel).expect("a known session");
        session.state = state;
        if state == State::Connected {
            session.connected_ever = true;
        }
        if state == State::Closed && !local {
            let token = session.token;
            self.end_token(token);
        }
    }

    fn end_token(&mut self, token: Token) {
        if self.ended_tokens.contains(&token) {
            return;
        }
        self.ended_tokens.push_back(token);
        while self.ended_tokens.len() > self.config.remembered_tokens {
            self.ended_tokens.pop_front();
        }
    }

    /// Records a transfer the app queued.
    pub(super) fn queued_transfer(&mut self, channel: u32, transfer_id: u32, data: Bytes) {
        self.last_transfer.insert(channel, transfer_id);
        if let Some(session) = self.sessions.get_mut(&channel) {
            session.sent += 1;
        }
        self.sent.data.insert((channel, transfer_id), data);
    }

    /// Checks one frame the engine handed out at `now`.
    pub(super) fn transmitted(&mut self, now: Instant, frame: &Bytes) -> Option<(u32, Control)> {
        self.last_tx = now;
        let max_frame = self
            .up
            .as_ref()
            .map_or(MIN_FRAME_SIZE, |up| up.max_frame)
            .min(self.link_max_frame);
        let sessions = &self.sessions;
        let role = self.role;
        let cx = Context {
            name: self.name,
            max_frame,
            version: self.up.as_ref().map(|_| 1),
            up: self.up.is_some(),
            local_device: &self.local_device,
            is_local: &|c| (c % 2 == 1) == (role == Role::Dialer),
            connected: &|c| sessions.get(&c).is_some_and(|s| s.connected_ever),
            token: &|c| sessions.get(&c).map(|s| s.token),
        };
        self.sent.frame(frame, &cx)
    }

    /// Notes a frame handed to the engine at `now`.
    pub(super) fn received(&mut self, now: Instant) {
        if self.closed.is_none() {
            self.last_rx = now;
        }
    }

    /// Drains the engine's events and checks them and the engine's state after a step that may
    /// have queued at most `allowance` more control frames than `queued_before`. Returns how
    /// many events there were.
    pub(super) fn after(
        &mut self,
        engine: &mut LinkEngine,
        now: Instant,
        cause: Cause<'_>,
        queued_before: usize,
        allowance: usize,
    ) -> usize {
        let name = self.name;
        let mut events = 0;
        let mut deliveries = 0;
        let mut incoming = false;
        while let Some(event) = engine.poll_event() {
            assert!(self.closed.is_none(), "{name}: {event:?} after LinkClosed");
            if matches!(
                event,
                EngineEvent::Message { .. }
                    | EngineEvent::Data { .. }
                    | EngineEvent::CollaborateEvent { .. }
            ) {
                deliveries += 1;
                assert!(deliveries <= 1, "{name}: one frame, two deliveries");
            }
            incoming |= matches!(event, EngineEvent::IncomingRequest(_));
            events += 1;
            self.event(now, event, cause);
        }
        if let Cause::Arrival(Arrival::Request { request, .. }) = cause
            && !incoming
            && self.closed.is_none()
            && let Ok(token) = Token::try_from(&request.token[..])
            && !self
                .open_sessions()
                .any(|(c, s)| !self.is_local(*c) && s.token == token)
        {
            self.end_token(token); // refused at once: remembered (SESS-1)
        }
        self.sent.finished.clear();
        let queued = engine.queued_control_frames();
        assert!(
            queued <= queued_before.saturating_add(allowance),
            "{name}: {queued_before} control frames became {queued} ({cause:?})"
        );
        self.check_state(engine);
        events
    }

    fn check_state(&self, engine: &LinkEngine) {
        let name = self.name;
        assert_eq!(
            engine.session_count(),
            self.session_count(),
            "{name}: sessions"
        );
        assert!(engine.session_count() <= self.config.max_sessions, "{name}");
        assert_eq!(engine.queued_transfers(), self.sent.data.len(), "{name}");
        for (channel, _) in self.sent.data.keys() {
            assert_eq!(
                self.state(*channel),
                Some(State::Connected),
                "{name}: a transfer queued on a session that is not connected"
            );
        }
        assert!(
            engine.reassembly_bytes() <= self.config.limits.max_reassembly_bytes,
            "{name}: reassembly holds {} bytes (DATA-7)",
            engine.reassembly_bytes()
        );
        assert_eq!(engine.is_closed(), self.closed.is_some(), "{name}: closed");
        assert_eq!(engine.is_up(), self.is_open(), "{name}: up");
        assert_eq!(engine.version().is_some(), self.is_open(), "{name}");
        if matches!(self.closed, Some(Closer::Peer | Closer::Transport)) {
            assert!(
                !engine.wants_transmit(),
                "{name}: sends after the link ended"
            );
        }
    }

    /// The checks after `handle_timeout(now)`: every deadline that has passed was acted on, and
    /// the next one is ahead.
    pub(super) fn after_timeout(&self, engine: &LinkEngine, now: Instant) {
        let name = self.name;
        if let Some(next) = engine.poll_timeout() {
            assert!(
                next > now,
                "{name}: poll_timeout in the past after handle_timeout"
            );
        }
        if self.closed.is_some() {
            return;
        }
        let Some(up) = &self.up else {
            let due = self.created.checked_add(self.config.hello_timeout);
            assert!(
                due.is_none_or(|due| now < due),
                "{name}: no LINK-10 timeout"
            );
            return;
        };
        let silence = up.keepalive.saturating_mul(3);
        let due = self.last_rx.checked_add(silence);
        assert!(
            due.is_none_or(|d| now < d),
            "{name}: silence not closed (LINK-6)"
        );
        let ping = self.last_tx.checked_add(up.keepalive);
        assert!(
            ping.is_none_or(|d| now < d) || engine.wants_transmit(),
            "{name}: no PING after a keepalive interval (LINK-6)"
        );
        for (channel, session) in self.open_sessions() {
            if let Some(deadline) = session.deadline
                && session.state != State::Connected
            {
                assert!(now < deadline, "{name}: channel {channel} outlived SESS-5");
            }
        }
    }

    /// Checks that `poll_timeout` is no later than any deadline the observer knows of.
    pub(super) fn check_poll_timeout(&self, engine: &LinkEngine) {
        if self.closed.is_some() {
            return;
        }
        let next = engine.poll_timeout();
        let mut due = Vec::new();
        match &self.up {
            None => due.push(self.created.checked_add(self.config.hello_timeout)),
            Some(up) => {
                due.push(self.last_rx.checked_add(up.keepalive.saturating_mul(3)));
                if !engine.wants_transmit() {
                    due.push(self.last_tx.checked_add(up.keepalive));
                }
                for session in self.open_sessions().map(|(_, s)| s) {
                    if session.state != State::Connected {
                        due.push(session.deadline);
                    }
                }
            }
        }
        for deadline in due.into_iter().flatten() {
            assert!(
                next.is_some_and(|next| next <= deadline),
                "{}: poll_timeout {next:?} is after a deadline {deadline:?}",
                self.name
            );
        }
    }
}
