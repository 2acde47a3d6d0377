//! The host's LE connections, at most one per peer: every link to a peer is an L2CAP channel on
//! that peer's one connection (a controller makes no second connection to a device it is
//! connected to). A connection stays up while a link uses it; when its last link ends, it is
//! taken down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acm_transport::DeviceId;
use tokio::sync::Notify;
use trouble_host::prelude::{Address, Connection};

use crate::air::AirParameters;
use crate::pool::HeapPool;

/// What a connection runs with, shared by the host thread and the connection's links.
pub(crate) type SharedAir = Arc<Mutex<AirParameters>>;

/// One LE connection and the links on it.
pub(crate) struct Entry<'a> {
    /// The connection, until its last link ends.
    connection: RefCell<Option<Connection<'a, HeapPool>>>,
    /// The device at the other end, once a link's OPEN has named it.
    peer: RefCell<Option<DeviceId>>,
    links: Cell<usize>,
    ever_linked: Cell<bool>,
    /// Signalled when the last link ends.
    idle: Notify,
    /// Signalled (to every waiter) when the connection is retired.
    retired: Notify,
    /// What the connection runs with.
    air: SharedAir,
    /// Signalled (to every waiter) when `air` changes.
    air_changed: Notify,
    /// The SDU bytes the links on the connection carried, both ways.
    carried: Cell<u64>,
    /// Set when a link is added, until the connection's pacing sees it.
    opened: Cell<bool>,
    /// Set once the peer asked for connection parameters of its own.
    peer_paced: Cell<bool>,
}

impl<'a> Entry<'a> {
    /// A hold for one more link on this connection, unless it is down or retired.
    pub(crate) fn hold(self: &Rc<Self>) -> Option<Hold<'a>> {
        let connection = self.connection.borrow().clone()?;
        if !connection.is_connected() {
            return None;
        }
        self.links.set(self.links.get() + 1);
        self.ever_linked.set(true);
        self.opened.set(true);
        Some(Hold {
            entry: self.clone(),
            connection,
        })
    }

    /// A handle on the connection, unless it is retired.
    pub(crate) fn connection(&self) -> Option<Connection<'a, HeapPool>> {
        self.connection.borrow().clone()
    }

    /// Records the device a link's OPEN named.
    pub(crate) fn name(&self, peer: &DeviceId) {
        *self.peer.borrow_mut() = Some(peer.clone());
    }

    /// Resolves when the connection has no link left: at once after its last link ended, or
    /// after `grace` for a connection that never had one.
    pub(crate) async fn until_idle(&self, grace: Duration) {
        loop {
            if self.links.get() == 0 {
                if self.ever_linked.get() {
                    return;
                }
                tokio::time::sleep(grace).await;
                if self.links.get() == 0 {
                    return;
                }
            }
            self.idle.notified().await;
        }
    }

    /// Forgets the connection: no new link goes on it, and it goes down once the handles still
    /// out are dropped.
    pub(crate) fn retire(&self) {
        self.connection.borrow_mut().take();
        self.retired.notify_waiters();
    }

    /// Resolves once the connection is retired.
    pub(crate) async fn until_retired(&self) {
        let retired = self.retired.notified();
        if self.connection.borrow().is_none() {
            return;
        }
        retired.await;
    }

    /// What the connection runs with, for its links.
    pub(crate) fn air(&self) -> SharedAir {
        self.air.clone()
    }

    /// What the connection runs with now.
    pub(crate) fn air_now(&self) -> AirParameters {
        *self.air.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes what the connection runs with.
    pub(crate) fn update_air(&self, change: impl FnOnce(&mut AirParameters)) {
        change(&mut self.air.lock().unwrap_or_else(|e| e.into_inner()));
        self.air_changed.notify_waiters();
    }

    /// Resolves at the next change of what the connection runs with.
    pub(crate) async fn air_change(&self) {
        self.air_changed.notified().await;
    }

    /// Counts `bytes` carried by a link on the connection.
    pub(crate) fn carried(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.carried.set(self.carried.get().saturating_add(bytes));
    }

    /// Records that the peer asked for connection parameters of its own.
    pub(crate) fn peer_paced(&self) {
        self.peer_paced.set(true);
    }

    /// Whether the peer asked for connection parameters of its own.
    pub(crate) fn is_peer_paced(&self) -> bool {
        self.peer_paced.get()
    }

    /// The bytes carried so far, and whether a link was added since the last call.
    pub(crate) fn traffic(&self) -> (u64, bool) {
        (self.carried.get(), self.opened.replace(false))
    }

    fn is_to(&self, device: &DeviceId, address: Option<&Address>) -> bool {
        let Some(connection) = self.connection.borrow().clone() else {
            return false;
        };
        self.peer.borrow().as_ref() == Some(device)
            || address.is_some_and(|a| connection.peer_address().addr == a.addr)
    }
}

/// A link's hold on its connection: the connection stays up while a hold exists.
pub(crate) struct Hold<'a> {
    entry: Rc<Entry<'a>>,
    /// The connection the link's channel is on.
    pub(crate) connection: Connection<'a, HeapPool>,
}

impl<'a> Hold<'a> {
    /// The connection's entry.
    pub(crate) fn entry(&self) -> &Rc<Entry<'a>> {
        &self.entry
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        let links = self.entry.links.get().saturating_sub(1);
        self.entry.links.set(links);
        if links == 0 {
            self.entry.retire();
            self.entry.idle.notify_one();
        }
    }
}

/// The connections of one host.
#[derive(Default)]
pub(crate) struct Connections<'a> {
    entries: RefCell<Vec<Rc<Entry<'a>>>>,
}

impl<'a> Connections<'a> {
    /// Records a new connection, running with `air`, with no link on it yet.
    pub(crate) fn add(
        &self,
        connection: Connection<'a, HeapPool>,
        air: AirParameters,
    ) -> Rc<Entry<'a>> {
        let entry = Rc::new(Entry {
            connection: RefCell::new(Some(connection)),
            peer: RefCell::new(None),
            links: Cell::new(0),
            ever_linked: Cell::new(false),
            idle: Notify::new(),
            retired: Notify::new(),
            air: Arc::new(Mutex::new(air)),
            air_changed: Notify::new(),
            carried: Cell::new(0),
            opened: Cell::new(false),
            peer_paced: Cell::new(false),
        });
        let mut entries = self.entries.borrow_mut();
        entries.retain(|entry| {
            entry
                .connection
                .borrow()
                .as_ref()
                .is_some_and(Connection::is_connected)
        });
        entries.push(entry.clone());
        entry
    }

    /// A hold on the connection up to `device` (known by the id a link on it named, or by
    /// `address`), if there is one that is up.
    pub(crate) fn hold_to(&self, device: &DeviceId, address: Option<&Address>) -> Option<Hold<'a>> {
        let entries = self.entries.borrow();
        entries
            .iter()
            .filter(|entry| entry.is_to(device, address))
            .find_map(Entry::hold)
    }
}
