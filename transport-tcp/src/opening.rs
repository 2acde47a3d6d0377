//! The connections an acceptor is opening (SPEC `TCP-5`, `LIMIT-2`): bounded in number and per
//! address, the oldest giving way to a new one, and waited for less long while many are open.
//!
//! A place for every connection would let a few sockets that never send their OPEN (or send it
//! a byte a second) hold every place for as long as they like, and keep every other device out.
//! Here a new connection always gets a place: when the connections from its address, or all of
//! them, already fill their places, the oldest of those is dropped for it. An attacker can
//! still drop openings by opening connections faster than a dialer sends its OPEN (one round
//! trip), but can no longer hold places against newcomers by being slow.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::AbortHandle;

/// The connections in their OPEN exchange, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Openings {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    /// By age: the task answering each connection, and its address.
    open: BTreeMap<u64, (AbortHandle, IpAddr)>,
    /// How many of `open` come from each address.
    per_address: HashMap<IpAddr, usize>,
}

impl State {
    fn remove(&mut self, id: u64) -> Option<AbortHandle> {
        let (task, address) = self.open.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
        Some(task)
    }

    /// The oldest opening, from `address` if given.
    fn oldest(&self, address: Option<IpAddr>) -> Option<u64> {
        self.open
            .iter()
            .find(|(_, (_, from))| address.is_none_or(|a| a == *from))
            .map(|(id, _)| *id)
    }
}

/// A place taken by one connection: given back when dropped (the exchange ended, or its task
/// was aborted to make room).
#[derive(Debug)]
pub(crate) struct Place {
    state: Arc<Mutex<State>>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        lock(&self.state).remove(self.id);
    }
}

/// How an opening is to be waited for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections in their OPEN exchange at once.
    pub(crate) total: usize,
    /// Of those, from one address.
    pub(crate) per_address: usize,
    /// The wait for an OPEN.
    pub(crate) wait: Duration,
    /// The wait for an OPEN of a connection that came while more than half the places were
    /// taken.
    pub(crate) pressed_wait: Duration,
}

impl Openings {
    /// Takes a place for a connection from `address`, dropping the oldest opening from that
    /// address, or the oldest of all, when their places are full, and starts the connection's
    /// task with `start`, given the place (to hold until the exchange ends) and how long to wait
    /// for the OPEN. The task is started under the lock, so that it is known before its place
    /// can be given back.
    pub(crate) fn admit(
        &self,
        address: IpAddr,
        limits: Limits,
        start: impl FnOnce(Place, Duration) -> AbortHandle,
    ) {
        let mut state = lock(&self.state);
        let from_address = state.per_address.get(&address).copied().unwrap_or(0);
        let victim = if from_address >= limits.per_address.max(1) {
            state.oldest(Some(address))
        } else if state.open.len() >= limits.total.max(1) {
            state.oldest(None)
        } else {
            None
        };
        if let Some(task) = victim.and_then(|id| state.remove(id)) {
            task.abort();
        }
        let wait = if state.open.len().saturating_mul(2) >= limits.total {
            limits.pressed_wait.min(limits.wait)
        } else {
            limits.wait
        };
        let id = state.next;
        state.next = state.next.wrapping_add(1);
        let place = Place {
            state: self.state.clone(),
            id,
        };
        let task = start(place, wait);
        state.open.insert(id, (task, address));
        *state.per_address.entry(address).or_insert(0) += 1;
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}
