//! The network: which devices are present, which pairs can reach each other, and the links
//! between them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use acm_transport::{DeviceId, DeviceInfo, TransportError};
use tokio::sync::Notify;

use crate::device::{Device, DeviceOptions};
use crate::error::MockError;
use crate::handle::LinkHandle;
use crate::link::{LinkShared, MockLink, Side};
use crate::transport::MockTransport;

/// An in-memory network of devices. Each device gets a [`MockTransport`]; the network decides
/// who can reach whom, and hands tests a [`LinkHandle`] on every link to inject faults.
///
/// Cheap to clone: clones share the same network. Everything that needs chance (which byte a
/// fault corrupts, where it truncates) comes from the seed, so the same seed and the same
/// operations give the same results.
#[derive(Clone)]
pub struct MockNetwork {
    inner: Arc<NetworkInner>,
}

/// What the clones of a network share.
pub(crate) struct NetworkInner {
    seed: u64,
    state: Mutex<NetState>,
    /// Woken when a link is dialed.
    link_added: Notify,
}

/// The network's mutable state.
#[derive(Default)]
struct NetState {
    devices: BTreeMap<DeviceId, Arc<Device>>,
    /// The pairs that cannot reach each other, each ordered (smaller id first).
    unreachable: BTreeSet<(DeviceId, DeviceId)>,
    /// The links that may still be alive, in creation order.
    links: Vec<Weak<LinkShared>>,
    next_link: u64,
}

impl NetState {
    /// Whether `a` and `b` can reach each other.
    fn reachable(&self, a: &DeviceId, b: &DeviceId) -> bool {
        !self.unreachable.contains(&pair(a, b))
    }

    /// Whether `device` is still on the network (and not an older device with the same id).
    fn is_present(&self, device: &Arc<Device>) -> bool {
        self.devices
            .get(&device.id)
            .is_some_and(|present| Arc::ptr_eq(present, device))
    }

    /// The links that are still alive, in creation order.
    fn live_links(&self) -> impl Iterator<Item = Arc<LinkShared>> + '_ {
        self.links.iter().filter_map(Weak::upgrade)
    }
}

/// `a` and `b`, smaller id first.
fn pair(a: &DeviceId, b: &DeviceId) -> (DeviceId, DeviceId) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

impl MockNetwork {
    /// An empty network whose faults draw their chance from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(NetworkInner {
                seed,
                state: Mutex::new(NetState::default()),
                link_added: Notify::new(),
            }),
        }
    }

    /// The seed the network was made with.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// Adds a device with the default [`DeviceOptions`] and returns its transport. Fails if a
    /// device with this id is already on the network.
    pub fn add_device(&self, id: DeviceId) -> Result<MockTransport, MockError> {
        self.add_device_with(id, DeviceOptions::new())
    }

    /// Adds a device that behaves as `options` say and returns its transport. Fails if a device
    /// with this id is already on the network.
    pub fn add_device_with(
        &self,
        id: DeviceId,
        options: DeviceOptions,
    ) -> Result<MockTransport, MockError> {
        let mut state = self.inner.lock();
        if state.devices.contains_key(&id) {
            return Err(MockError::DeviceExists(id));
        }
        let device = Arc::new(Device::new(id.clone(), options));
        state.devices.insert(id, Arc::clone(&device));
        Ok(MockTransport::new(Arc::clone(&self.inner), device))
    }

    /// Takes a device off the network, as if it had been switched off: its open links end with
    /// [`Closure::Lost`](acm_transport::Closure::Lost) on both sides, its transport's `accept`
    /// (waiting or future), `dial` and `discover` fail with [`TransportError::Shutdown`], and
    /// dials to it fail with [`TransportError::Unreachable`]. The id can be added again as a
    /// new device. Returns `false` if no device had this id.
    pub fn remove_device(&self, id: &DeviceId) -> bool {
        let (device, links, backlog) = {
            let mut state = self.inner.lock();
            let Some(device) = state.devices.remove(id) else {
                return false;
            };
            let backlog = {
                let mut device_state = device.lock();
                device_state.removed = true;
                std::mem::take(&mut device_state.backlog)
            };
            let links: Vec<_> = state
                .live_links()
                .filter(|link| link.side_of(id).is_some())
                .collect();
            (device, links, backlog)
        };
        let what = format!("device {id} left the network");
        for link in links {
            link.lose(&what);
        }
        drop(backlog);
        device.incoming.notify_waiters();
        true
    }

    /// Sets whether `a` and `b` can reach each other. An unreachable pair cannot dial each
    /// other ([`TransportError::Unreachable`]) nor discover each other; the links already open
    /// between them are not affected (break them with [`LinkHandle::lose`]). Pairs are
    /// reachable by default, and the setting outlives the devices' presence.
    pub fn set_reachable(&self, a: &DeviceId, b: &DeviceId, reachable: bool) {
        let mut state = self.inner.lock();
        if reachable {
            state.unreachable.remove(&pair(a, b));
        } else {
            state.unreachable.insert(pair(a, b));
        }
    }

    /// Handles on the open links between `a` and `b`, whichever of them dialed, in the order
    /// they were dialed.
    pub fn links(&self, a: &DeviceId, b: &DeviceId) -> Vec<LinkHandle> {
        self.inner
            .lock()
            .live_links()
            .filter(|link| a != b && link.side_of(a).is_some() && link.side_of(b).is_some())
            .filter(|link| !link.is_closed())
            .map(LinkHandle::new)
            .collect()
    }

    /// A stream of handles on the links dialed from now on, so that a test can inject faults
    /// into links that code it does not control opened.
    pub fn link_events(&self) -> LinkEvents {
        LinkEvents {
            next_index: self.inner.lock().next_link,
            network: Arc::clone(&self.inner),
        }
    }
}

impl fmt::Debug for MockNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MockNetwork")
            .field("seed", &self.inner.seed)
            .field("devices", &state.devices.keys().collect::<Vec<_>>())
            .field("links_dialed", &state.next_link)
            .finish()
    }
}

impl NetworkInner {
    /// Locks the state; a panic elsewhere while it was held leaves it usable.
    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The devices `from` can dial now, by id.
    pub(crate) fn discover(&self, from: &Arc<Device>) -> Result<Vec<DeviceInfo>, TransportError> {
        let state = self.lock();
        if !state.is_present(from) {
            return Err(TransportError::Shutdown);
        }
        Ok(state
            .devices
            .values()
            .filter(|device| device.id != from.id && state.reachable(&from.id, &device.id))
            .map(|device| {
                let address = format!("mock://{}", device.id);
                DeviceInfo::new(device.id.clone(), device.name(), address)
            })
            .collect())
    }

    /// Dials `to` from `from`: makes a link, queues its far end for `to`'s `accept`, and
    /// returns the near end.
    pub(crate) fn dial(
        &self,
        from: &Arc<Device>,
        to: &DeviceId,
    ) -> Result<MockLink, TransportError> {
        let (link, target) = {
            let mut state = self.lock();
            if !state.is_present(from) {
                return Err(TransportError::Shutdown);
            }
            let target = match state.devices.get(to) {
                Some(target) if *to != from.id && state.reachable(&from.id, to) => {
                    Arc::clone(target)
                }
                _ => return Err(TransportError::Unreachable(to.clone())),
            };
            let mut target_state = target.lock();
            if !target.options.accepts_links
                || target_state.backlog.len() >= target.options.accept_backlog
            {
                return Err(TransportError::Refused(to.clone()));
            }
            let index = state.next_link;
            state.next_link += 1;
            let shared = Arc::new(LinkShared::new(
                index,
                self.seed,
                from.end_config(),
                target.end_config(),
            ));
            state.links.retain(|link| link.strong_count() > 0);
            state.links.push(Arc::downgrade(&shared));
            let far = MockLink::new(Arc::clone(&shared), Side::Acceptor);
            target_state.backlog.push_back(far);
            drop(target_state);
            (MockLink::new(shared, Side::Dialer), target)
        };
        target.incoming.notify_waiters();
        self.link_added.notify_waiters();
        Ok(link)
    }
}

/// The links dialed on a network after [`MockNetwork::link_events`] was called, one
/// [`LinkHandle`] each, in the order they were dialed. A link that is gone (both its ends
/// dropped) before it is asked for is skipped.
pub struct LinkEvents {
    network: Arc<NetworkInner>,
    /// The creation index of the next link to report.
    next_index: u64,
}

impl LinkEvents {
    /// Waits for the next link.
    pub async fn next(&mut self) -> LinkHandle {
        let network = Arc::clone(&self.network);
        loop {
            let mut added = pin!(network.link_added.notified());
            added.as_mut().enable();
            if let Some(link) = self.try_next() {
                return link;
            }
            added.await;
        }
    }

    /// The next link if one has been dialed, without waiting.
    pub fn try_next(&mut self) -> Option<LinkHandle> {
        let link = self
            .network
            .lock()
            .live_links()
            .find(|link| link.index >= self.next_index)?;
        self.next_index = link.index + 1;
        Some(LinkHandle::new(link))
    }
}

impl fmt::Debug for LinkEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkEvents")
            .field("next_index", &self.next_index)
            .finish()
    }
}
