//! The invariants that hold whatever the faults: per session, nothing is delivered twice, out of
//! order, before `connect` or after `disconnect` or `destroy`, and nothing that was not sent
//! arrives, beyond what corruptions changed.

use std::collections::HashMap;

use super::implementation::{Call, Side};
use super::model::Model;
use super::payload::Content;
use super::transition::{Ended, Handle, Key, Seen};

/// A broken invariant: what, what was expected, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub what: String,
    /// What SPEC.md (or the model) calls for.
    pub expected: String,
    /// What the implementation did.
    pub actual: String,
}

impl Failure {
    /// A failure.
    pub fn new(
        what: impl Into<String>,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Self {
        Self {
            what: what.into(),
            expected: expected.into(),
            actual: actual.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Sent {
    from: Side,
    handle: Handle,
    content: Content,
}

#[derive(Debug, Clone, Default)]
struct Life {
    connected: bool,
    destroyed: bool,
    /// Connect events seen, and `connect` calls that resolved connected.
    connects: u32,
    connected_calls: u32,
}

/// What the suite sent and what each session has seen, for the invariants.
#[derive(Debug, Default)]
pub struct Checker {
    sent: HashMap<u64, Sent>,
    by_content: HashMap<Content, Vec<u64>>,
    delivered: HashMap<u64, u32>,
    last_on_pair: HashMap<(Handle, Handle), u64>,
    mangled: [u64; 2],
    lives: HashMap<Handle, Life>,
    /// Calls started and not yet ended.
    pub outstanding: usize,
}

impl Checker {
    /// Records a payload the suite sent on `handle` of `from`.
    pub fn sent(&mut self, id: u64, from: Side, handle: Handle, content: Content) {
        self.by_content.entry(content.clone()).or_default().push(id);
        self.sent.insert(
            id,
            Sent {
                from,
                handle,
                content,
            },
        );
    }

    /// Names what `to` received: the payload `hint` when it is that, else a payload the other
    /// side sent with these contents (one not delivered yet first), else [`Seen::Mangled`].
    pub fn identify(&self, to: Side, content: Content, hint: Option<u64>) -> Seen {
        let seen = |id: u64| match content {
            Content::Message(_) => Seen::Message(id),
            Content::Data(_) => Seen::Data(id),
            Content::Event(_) => Seen::Collaborate(id),
        };
        let from_peer = |id: &u64| self.sent.get(id).is_some_and(|s| s.from == to.other());
        if let Some(id) = hint
            && from_peer(&id)
            && self.sent.get(&id).is_some_and(|s| s.content == content)
        {
            return seen(id);
        }
        let candidates: Vec<u64> = self
            .by_content
            .get(&content)
            .map(|ids| ids.iter().copied().filter(from_peer).collect())
            .unwrap_or_default();
        let fresh = candidates
            .iter()
            .copied()
            .find(|id| !self.delivered.contains_key(id));
        match fresh.or(candidates.first().copied()) {
            Some(id) => seen(id),
            None => Seen::Mangled,
        }
    }

    /// The app created a session.
    pub fn created(&mut self, handle: Handle) {
        self.lives.entry(handle).or_default();
    }

    /// `disconnect` succeeded: the session is no longer connected.
    pub fn disconnected(&mut self, handle: Handle) {
        self.lives.entry(handle).or_default().connected = false;
    }

    /// `destroy` succeeded.
    pub fn destroyed(&mut self, handle: Handle) {
        let life = self.lives.entry(handle).or_default();
        life.connected = false;
        life.destroyed = true;
    }

    /// Checks one observation against the invariants and takes it into account.
    pub fn observe(&mut self, key: Key, seen: &Seen, model: &Model) -> Result<(), Failure> {
        let Key::Session(handle) = key else {
            return Ok(());
        };
        if let Seen::Done(..) = seen {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        let life = self.lives.entry(handle).or_default().clone();
        let fail = |what: &str, expected: &str| {
            Err(Failure::new(
                format!("session {handle}: {what}"),
                expected,
                format!("{seen:?}"),
            ))
        };
        if life.destroyed && !matches!(seen, Seen::Done(..)) {
            return fail(
                "an event after the app destroyed the session",
                "no event once the session is destroyed",
            );
        }
        match seen {
            Seen::Connect if life.connected => {
                return fail("connected twice", "one connect event per connection");
            }
            Seen::Connect => {
                let life = self.lives.entry(handle).or_default();
                life.connected = true;
                life.connects += 1;
            }
            Seen::Disconnect(_) if !life.connected => {
                return fail(
                    "a disconnect event while not connected",
                    "no disconnect event",
                );
            }
            Seen::Disconnect(_) => self.set_connected(handle, false),
            Seen::Message(_) | Seen::Data(_) | Seen::Collaborate(_) | Seen::Mangled
                if !life.connected =>
            {
                return fail(
                    "a delivery on a session that is not connected (SESS-6, DISC-2)",
                    "nothing before connect or after disconnect",
                );
            }
            Seen::Message(id) | Seen::Data(id) | Seen::Collaborate(id) => {
                self.delivery(handle, *id)?;
            }
            Seen::Mangled => {
                let side = model.sessions.get(&handle).map_or(Side::A, |s| s.side);
                let from = side.other().index();
                self.mangled[from] += 1;
                if self.mangled[from] > model.corruptions[from] {
                    return fail(
                        "a delivery that was never sent (MSG-2, DATA-5)",
                        &format!(
                            "at most {} changed deliveries, one per corrupted frame",
                            model.corruptions[from]
                        ),
                    );
                }
            }
            Seen::Done(Call::Connect, Ended::Connected) => {
                if life.connected_calls >= life.connects && !life.destroyed {
                    return fail(
                        "connect resolved connected without a connect event",
                        "the connect event first",
                    );
                }
                self.lives.entry(handle).or_default().connected_calls += 1;
            }
            Seen::Done(..) | Seen::Request(_) => {}
        }
        Ok(())
    }

    fn set_connected(&mut self, handle: Handle, connected: bool) {
        self.lives.entry(handle).or_default().connected = connected;
    }

    /// A payload arrived on `handle`: once, after the earlier payloads of its sender.
    fn delivery(&mut self, handle: Handle, id: u64) -> Result<(), Failure> {
        let count = self.delivered.entry(id).or_default();
        *count += 1;
        if *count > 1 {
            return Err(Failure::new(
                format!("session {handle}: payload {id} delivered {count} times (MSG-2)"),
                "each payload delivered at most once",
                format!("{count} deliveries"),
            ));
        }
        let Some(sender) = self.sent.get(&id).map(|s| s.handle) else {
            return Ok(());
        };
        let last = self.last_on_pair.entry((sender, handle)).or_default();
        if *last > id {
            return Err(Failure::new(
                format!("session {handle}: payloads of session {sender} out of order (MSG-2)"),
                format!("payload {id} before payload {last}"),
                format!("payload {last} before payload {id}"),
            ));
        }
        *last = id;
        Ok(())
    }
}
