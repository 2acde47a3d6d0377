//! What a device's link drivers and its apps' calls share: the device engine and the runtime's
//! bookkeeping beside it, behind one lock.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

use acm_engine::ConnectOutcome;
use acm_engine::device::{DeviceEngine, LinkId, SessionId, TransferRef};
use acm_transport::Transport;
use acm_wire::{BufferPool, MemoryBudget};
use tokio::task::JoinHandle;

use super::app::AppInner;
use super::device::DeviceConfig;
use super::turns::FloodTurns;
use crate::events::Listeners;
use crate::types::{CollaborateHandler, DisconnectReason};
use crate::{HashMap, lock};

/// What a device's tasks share; the state behind its lock.
pub(crate) struct Shared {
    state: Mutex<State>,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) config: DeviceConfig,
    /// The buffers every link's received transfers are delivered in, kept for reuse.
    pub(crate) receive_pool: BufferPool,
    /// The memory budget every link's data is charged against.
    pub(crate) memory: MemoryBudget,
    /// Held while dialing, so that concurrent connects to one device share one link.
    pub(crate) dialing: tokio::sync::Mutex<()>,
    /// Random bytes for tokens and nonces, drawn in batches.
    pub(crate) random: Mutex<RandomBatch>,
    /// The task that accepts links, while it runs.
    pub(crate) accept_task: Mutex<Option<JoinHandle<()>>>,
    /// The turns of the links that flood the device (see [`FloodTurns`]).
    pub(crate) flood_turns: FloodTurns,
}

impl Shared {
    pub(crate) fn new(transport: Arc<dyn Transport>, config: DeviceConfig) -> Self {
        let receive_pool = BufferPool::new(config.receive_pool_bytes);
        let memory = MemoryBudget::new(config.memory_budget);
        let engine = DeviceEngine::new(transport.local_device().as_str(), config.engine)
            .with_memory_budget(memory.clone())
            .with_buffer_pool(receive_pool.clone());
        Self {
            state: Mutex::new(State {
                engine,
                links: HashMap::default(),
                sessions: HashMap::default(),
                ended: HashMap::default(),
                connects: HashMap::default(),
                transfers: HashMap::default(),
                apps: HashMap::default(),
                closing: false,
            }),
            transport,
            config,
            receive_pool,
            memory,
            dialing: tokio::sync::Mutex::new(()),
            random: Mutex::new(RandomBatch::new()),
            accept_task: Mutex::new(None),
            flood_turns: FloodTurns::new(flood_turns()),
        }
    }

    /// The device's state. Held only for what is done at once: never across an await, never
    /// while app code runs.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// 16 bytes from the operating system's CSPRNG (SPEC `SESS-1`, `LINK-3`), drawn in batches.
    pub(crate) fn random16(&self) -> Result<[u8; 16], String> {
        lock(&self.random).next()
    }
}

/// How many flooding links work at once: one per worker of the runtime the device is made in
/// (one outside a runtime, and on a current-thread runtime).
fn flood_turns() -> usize {
    tokio::runtime::Handle::try_current()
        .map(|runtime| runtime.metrics().num_workers())
        .unwrap_or(1)
        .max(1)
}

/// The device's state.
pub(crate) struct State {
    /// The protocol: links, sessions, requests.
    pub(crate) engine: DeviceEngine,
    /// What the runtime keeps for each link.
    pub(crate) links: HashMap<LinkId, LinkEntry>,
    /// The listeners of each session.
    pub(crate) sessions: HashMap<SessionId, Arc<Listeners>>,
    /// Why each session that ended since it was created last ended: the reason of its last
    /// `disconnect` event, or what this side told the peer. Kept until the session is
    /// destroyed, for the `send_data` calls its end cut short.
    pub(crate) ended: HashMap<SessionId, DisconnectReason>,
    /// Connects waiting for their answer, by session.
    pub(crate) connects: HashMap<SessionId, ConnectWait>,
    /// `send_data` calls waiting for their transfer to leave.
    pub(crate) transfers: HashMap<TransferRef, TransferWait>,
    /// The apps of the device, by bundle.
    pub(crate) apps: HashMap<String, AppEntry>,
    /// Set once the device shuts down: links that open from then on are closed at once.
    pub(crate) closing: bool,
}

/// What the runtime keeps for one link.
#[derive(Default)]
pub(crate) struct LinkEntry {
    /// The driver's waker, stored at each of its turns.
    pub(crate) driver: Option<Waker>,
    /// Callers waiting for something of the link: that it comes up or ends, room in its
    /// queue, its removal. Woken whenever one of those may have changed; each looks again.
    pub(crate) waiters: Vec<Waker>,
    /// Why the link ended, once it has.
    pub(crate) ended: Option<String>,
    /// Set while the driver runs the app code of its turn, after which it takes another turn:
    /// a call made meanwhile (from that app code, mostly) need not wake it.
    pub(crate) in_app_code: bool,
}

/// A connect waiting for its answer.
pub(crate) struct ConnectWait {
    /// The link and channel its request is on: an answer to an earlier request of the same
    /// session is not its answer.
    pub(crate) on: (LinkId, u32),
    pub(crate) outcome: Option<ConnectOutcome>,
    pub(crate) waker: Option<Waker>,
}

/// A `send_data` waiting for its transfer to leave.
#[derive(Default)]
pub(crate) struct TransferWait {
    /// Bytes handed out for the link so far.
    pub(crate) sent: u64,
    /// Whether the caller wants to hear of `sent`.
    pub(crate) progress: bool,
    /// `Some(true)` once sent whole, `Some(false)` once aborted.
    pub(crate) done: Option<bool>,
    pub(crate) waker: Option<Waker>,
}

/// An app of the device.
#[derive(Default)]
pub(crate) struct AppEntry {
    /// Its abilities' `onCollaborate` handlers: an app has few, looked up by module and ability.
    pub(crate) handlers: Vec<Registered>,
    /// Its handle while one lives.
    pub(crate) handle: Weak<AppInner>,
}

/// An ability's registered handler.
pub(crate) struct Registered {
    pub(crate) module: String,
    pub(crate) ability: String,
    pub(crate) handler: CollaborateHandler,
}

impl State {
    /// The waker of `link`'s driver, to wake once the lock is let go: the call left it work.
    /// `None` while the driver runs app code, since it takes another turn afterwards.
    pub(crate) fn driver(&self, link: LinkId) -> Option<Waker> {
        let entry = self.links.get(&link)?;
        if entry.in_app_code {
            return None;
        }
        entry.driver.clone()
    }

    /// Makes `waker` wait for a change of `link`; false if the link is gone already.
    pub(crate) fn wait_on(&mut self, link: LinkId, waker: &Waker) -> bool {
        match self.links.get_mut(&link) {
            Some(entry) => {
                if !entry.waiters.iter().any(|w| w.will_wake(waker)) {
                    entry.waiters.push(waker.clone());
                }
                true
            }
            None => false,
        }
    }

    /// The handler of `module`/`ability` of the app `bundle`.
    pub(crate) fn handler(
        &self,
        bundle: &str,
        module: &str,
        ability: &str,
    ) -> Option<CollaborateHandler> {
        self.apps
            .get(bundle)?
            .handlers
            .iter()
            .find(|r| r.module == module && r.ability == ability)
            .map(|r| r.handler.clone())
    }
}

/// Tokens a batch of random bytes holds: one draw from the operating system serves this many
/// requests, where a system call for each would cost a request a tenth of its own work.
const TOKENS_PER_DRAW: usize = 16;

/// Random bytes drawn from the operating system's CSPRNG ahead of use, handed out 16 at a time
/// and never twice.
pub(crate) struct RandomBatch {
    bytes: [u8; 16 * TOKENS_PER_DRAW],
    /// How many tokens of `bytes` are handed out already.
    used: usize,
}

impl RandomBatch {
    /// An empty batch: the first token draws one.
    fn new() -> Self {
        Self {
            bytes: [0; 16 * TOKENS_PER_DRAW],
            used: TOKENS_PER_DRAW,
        }
    }

    /// The next 16 bytes, drawing a batch when this one is used up.
    fn next(&mut self) -> Result<[u8; 16], String> {
        if self.used == TOKENS_PER_DRAW {
            getrandom::fill(&mut self.bytes)
                .map_err(|e| format!("the system has no randomness: {e}"))?;
            self.used = 0;
        }
        let mut token = [0u8; 16];
        let at = self.used * 16;
        token.copy_from_slice(&self.bytes[at..at + 16]);
        // Not kept once handed out.
        self.bytes[at..at + 16].fill(0);
        self.used += 1;
        Ok(token)
    }
}

/// Wakes every waker of `wakers`.
pub(crate) fn wake_all(wakers: impl IntoIterator<Item = Waker>) {
    for waker in wakers {
        waker.wake();
    }
}

/// The clock the engine runs on: tokio's, so that tests with a paused clock control it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_never_handed_out_twice_and_are_not_kept_once_handed_out() {
        let mut batch = RandomBatch::new();
        let mut seen = std::collections::HashSet::new();
        // Across three draws.
        for n in 0..3 * TOKENS_PER_DRAW {
            let token = batch.next().unwrap();
            assert!(seen.insert(token), "token {n} came twice");
            assert_ne!(token, [0; 16]);
            let used = batch.used;
            assert!(batch.bytes[..used * 16].iter().all(|b| *b == 0));
        }
    }
}
