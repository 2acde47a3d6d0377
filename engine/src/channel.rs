//! The sessions of a link: their channels, states, keys, deadlines and remembered tokens.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use acm_transport::Role;

use crate::{HashMap, HashSet};

use super::event::Token;
use super::names::{KeyHashed, SessionKey};

/// Where a session's handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// This side sent CONNECT_REQUEST and awaits the answer until the deadline.
    Requested { deadline: Instant },
    /// The peer's request waits for this side's app until the deadline.
    Incoming { deadline: Instant },
    /// Both sides are connected.
    Connected,
}

#[derive(Debug)]
pub(crate) struct Channel {
    pub(crate) key: SessionKey,
    pub(crate) token: Token,
    pub(crate) state: State,
    /// The last transfer id this side began on the channel.
    pub(crate) last_transfer: u32,
}

/// The sessions of one link.
#[derive(Debug)]
pub(crate) struct Channels {
    role: Role,
    open: HashMap<u32, Channel>,
    /// The channel a key names, and how many open channels share that key (more than one only
    /// after crossing requests, SPEC `SESS-7`).
    by_key: std::collections::HashMap<SessionKey, (u32, usize), KeyHashed>,
    deadlines: BTreeSet<(Instant, u32)>,
    /// The next channel id this side opens; `None` once they are used up.
    next_local: Option<u32>,
    highest_local: u32,
    highest_peer: u32,
    /// Tokens of the peer's requests: every open one and the most recent ended ones.
    seen_tokens: HashSet<Token>,
    ended_tokens: VecDeque<Token>,
    remembered: usize,
}

impl Channels {
    pub(crate) fn new(role: Role, remembered: usize) -> Self {
        Self {
            role,
            open: HashMap::default(),
            by_key: std::collections::HashMap::default(),
            deadlines: BTreeSet::new(),
            next_local: Some(match role {
                Role::Dialer => 1,
                Role::Acceptor => 2,
            }),
            highest_local: 0,
            highest_peer: 0,
            seen_tokens: HashSet::default(),
            ended_tokens: VecDeque::new(),
            remembered,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether the peer opens `channel` (SPEC `LINK-11`: the dialer's are odd).
    pub(crate) fn is_peers(&self, channel: u32) -> bool {
        let odd = channel % 2 == 1;
        odd == (self.role == Role::Acceptor)
    }

    /// Whether `channel` was ever opened on this link, by either side.
    pub(crate) fn was_opened(&self, channel: u32) -> bool {
        if self.is_peers(channel) {
            channel <= self.highest_peer
        } else {
            channel <= self.highest_local
        }
    }

    /// Whether the peer may open `channel` now: only its next channel, since each side opens
    /// its channels in order, without gaps (SPEC `LINK-11`). So `highest_peer` alone tells
    /// which of the peer's channels were ever opened.
    pub(crate) fn peer_may_open(&self, channel: u32) -> bool {
        let next = match (self.highest_peer, self.role) {
            (0, Role::Acceptor) => Some(1),
            (0, Role::Dialer) => Some(2),
            (highest, _) => highest.checked_add(2),
        };
        next == Some(channel)
    }

    /// Records that the peer opened `channel` (whether or not the request is accepted).
    pub(crate) fn note_peer_opened(&mut self, channel: u32) {
        self.highest_peer = self.highest_peer.max(channel);
    }

    /// The channel id this side will open next.
    pub(crate) fn peek_next(&self) -> Option<u32> {
        self.next_local
    }

    /// Takes the next channel id for this side.
    pub(crate) fn allocate(&mut self) -> Option<u32> {
        let channel = self.next_local?;
        self.next_local = channel.checked_add(2);
        self.highest_local = channel;
        Some(channel)
    }

    pub(crate) fn get(&self, channel: u32) -> Option<&Channel> {
        self.open.get(&channel)
    }

    pub(crate) fn get_mut(&mut self, channel: u32) -> Option<&mut Channel> {
        self.open.get_mut(&channel)
    }

    pub(crate) fn by_key(&self, key: &SessionKey) -> Option<(u32, &Channel)> {
        let (channel, _) = *self.by_key.get(key)?;
        self.open.get(&channel).map(|c| (channel, c))
    }

    /// Whether the peer already used `token` in a request this side remembers (SPEC `SESS-1`).
    pub(crate) fn token_seen(&self, token: &Token) -> bool {
        self.seen_tokens.contains(token)
    }

    /// Remembers a token of the peer's that ended at once (a refused request).
    pub(crate) fn remember_ended(&mut self, token: Token) {
        if self.seen_tokens.insert(token) {
            self.push_ended(token);
        }
    }

    fn push_ended(&mut self, token: Token) {
        self.ended_tokens.push_back(token);
        while self.ended_tokens.len() > self.remembered {
            if let Some(old) = self.ended_tokens.pop_front() {
                self.seen_tokens.remove(&old);
            }
        }
    }

    pub(crate) fn insert(&mut self, channel: u32, channel_state: Channel) {
        if self.is_peers(channel) {
            self.seen_tokens.insert(channel_state.token);
        }
        if let Some(deadline) = deadline_of(channel_state.state) {
            self.deadlines.insert((deadline, channel));
        }
        let (named, sharing) = self
            .by_key
            .entry(channel_state.key.clone())
            .or_insert((channel, 0));
        *named = channel;
        *sharing = sharing.saturating_add(1);
        if let Some(replaced) = self.open.insert(channel, channel_state) {
            self.forget_key(channel, &replaced.key);
        }
    }

    /// Moves a session to `state`, keeping the deadlines in step.
    pub(crate) fn set_state(&mut self, channel: u32, state: State) {
        let Some(entry) = self.open.get_mut(&channel) else {
            return;
        };
        if let Some(old) = deadline_of(entry.state) {
            self.deadlines.remove(&(old, channel));
        }
        entry.state = state;
        if let Some(new) = deadline_of(state) {
            self.deadlines.insert((new, channel));
        }
    }

    pub(crate) fn remove(&mut self, channel: u32) -> Option<Channel> {
        let entry = self.open.remove(&channel)?;
        if let Some(deadline) = deadline_of(entry.state) {
            self.deadlines.remove(&(deadline, channel));
        }
        self.forget_key(channel, &entry.key);
        if self.is_peers(channel) {
            self.push_ended(entry.token);
        }
        Some(entry)
    }

    /// Takes `channel`, which has left `open`, off the count of its key, naming another open
    /// channel with the same key if there is one.
    fn forget_key(&mut self, channel: u32, key: &SessionKey) {
        let Some((named, count)) = self.by_key.get_mut(key) else {
            return;
        };
        if *count <= 1 {
            self.by_key.remove(key);
            return;
        }
        *count -= 1;
        if *named == channel {
            // After crossing requests (SESS-7) two sessions may share the key: the other one
            // is still there.
            match self.open.iter().find(|(_, c)| c.key == *key) {
                Some((&other, _)) => *named = other,
                None => {
                    self.by_key.remove(key);
                }
            }
        }
    }

    /// The earliest handshake deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// The first session whose deadline has passed.
    pub(crate) fn expired(&self, now: Instant) -> Option<u32> {
        self.deadlines
            .first()
            .filter(|(deadline, _)| *deadline <= now)
            .map(|(_, channel)| *channel)
    }

    /// Every open channel, for ending them all.
    pub(crate) fn drain(&mut self) -> Vec<(u32, Channel)> {
        self.deadlines.clear();
        self.by_key.clear();
        let mut all: Vec<_> = self.open.drain().collect();
        all.sort_by_key(|(channel, _)| *channel);
        all
    }
}

fn deadline_of(state: State) -> Option<Instant> {
    match state {
        State::Requested { deadline } | State::Incoming { deadline } => Some(deadline),
        State::Connected => None,
    }
}

#[cfg(test)]
mod tests {
    use acm_wire::pb::PeerInfo;

    use super::*;

    /// The key of a request this side sends, as the engine makes it on a link to the target.
    fn outgoing(source: &PeerInfo, target: &PeerInfo) -> SessionKey {
        SessionKey::new(&target.service_name, source, target)
    }

    fn app(device: &str, service: &str) -> PeerInfo {
        PeerInfo {
            device_id: device.into(),
            bundle_name: "com.example".into(),
            module_name: "entry".into(),
            ability_name: "EntryAbility".into(),
            service_name: service.into(),
        }
    }

    fn channel(key: &SessionKey, token: u8, state: State) -> Channel {
        Channel {
            key: key.clone(),
            token: [token; 16],
            state,
            last_transfer: 0,
        }
    }

    /// A dialer's channels after crossing requests (SESS-7): its own request on 1 and the
    /// peer's on 2, both for one key.
    fn crossed() -> (Channels, SessionKey) {
        let key = outgoing(&app("phone", "chat"), &app("tablet", "chat"));
        let mut channels = Channels::new(Role::Dialer, 4);
        let deadline = Instant::now();
        channels.insert(1, channel(&key, 1, State::Requested { deadline }));
        channels.insert(2, channel(&key, 2, State::Incoming { deadline }));
        (channels, key)
    }

    #[test]
    fn a_key_names_the_other_crossing_session_once_one_ends() {
        let (mut channels, key) = crossed();
        assert_eq!(channels.by_key(&key).map(|(c, _)| c), Some(2));
        channels.remove(2);
        assert_eq!(channels.by_key(&key).map(|(c, _)| c), Some(1));
        channels.remove(1);
        assert!(channels.by_key(&key).is_none());

        let (mut channels, key) = crossed();
        channels.remove(1);
        assert_eq!(channels.by_key(&key).map(|(c, _)| c), Some(2));
        channels.remove(2);
        assert!(channels.by_key(&key).is_none());
    }

    #[test]
    fn keys_of_the_same_apps_and_service_are_equal_and_hash_alike() {
        let (phone, tablet) = (app("phone", "chat"), app("tablet", "chat"));
        let sent = outgoing(&phone, &tablet);
        // The same session, as the tablet's request would be seen on this side.
        let received = SessionKey::incoming(&tablet, &phone);
        assert_eq!(sent, received);
        let hasher = std::hash::RandomState::new();
        let hash = |key: &SessionKey| std::hash::BuildHasher::hash_one(&hasher, key);
        assert_eq!(hash(&sent), hash(&received));
        let mut other_app = tablet.clone();
        other_app.ability_name = "OtherAbility".into();
        assert_ne!(sent, outgoing(&phone, &other_app));
        assert_ne!(sent, outgoing(&phone, &app("tablet", "files")));
    }

    #[test]
    fn a_key_is_free_again_once_its_sessions_end() {
        let (mut channels, key) = crossed();
        channels.remove(2);
        channels.remove(1);
        let deadline = Instant::now();
        channels.allocate();
        channels.insert(3, channel(&key, 3, State::Requested { deadline }));
        assert_eq!(channels.by_key(&key).map(|(c, _)| c), Some(3));
        channels.remove(3);
        assert!(channels.by_key(&key).is_none());
        assert!(channels.by_key.is_empty());
    }
}
