//! The device runtime: it owns the transport and the links to other devices, as OpenHarmony's
//! system service does, and routes incoming requests to the apps registered on it.

use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::task::Poll;

use acm_engine::EngineConfig;
pub use acm_engine::device::DEFAULT_MEMORY_BUDGET;
use acm_engine::device::LinkId;
use acm_transport::{DeviceId, DeviceInfo, Link, Transport, TransportError};
use acm_wire::BufferPool;
use acm_wire::pb::LinkCloseReason;

use super::driver;
use super::state::{LinkEntry, Shared, now, wake_all};
use crate::error::AcmError;
use crate::lock;

/// Settings of a device runtime.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeviceConfig {
    /// The protocol engine's settings, for every link. Whether the transport carries data is
    /// taken from the transport's capabilities.
    pub engine: EngineConfig,
    /// The most bytes of buffers that received data transfers leave behind, once their apps
    /// have dropped them, the device keeps for the next transfers of any link to fill (see
    /// [`acm_wire::BufferPool`]). They count in [`DeviceConfig::memory_budget`], and a
    /// transfer that finds no room has them freed first. 0 keeps none. Default 16 MiB
    /// ([`acm_wire::pool::DEFAULT_POOL_BYTES`]); a watch may want far less. An app that
    /// receives larger transfers one after another gains by keeping about two of them: a
    /// transfer that finds no buffer kept fills fresh memory, whose page faults can cost more
    /// than moving its bytes over a fast link.
    pub receive_pool_bytes: usize,
    /// The most bytes of received data an app's event stream holds unread ([`Event::Data`]
    /// events it has not taken yet), besides one transfer larger than that on its own. Once a
    /// stream holds that much, the link stops reading from the peer until the app reads (the
    /// peer's sends then wait: backpressure, not loss). Default 64 MiB
    /// ([`DEFAULT_STREAM_DATA_BYTES`]).
    ///
    /// [`Event::Data`]: crate::Event::Data
    pub stream_data_bytes: usize,
    /// The most bytes of data the device holds for all its links together (SPEC `LIMIT-1`):
    /// transfers being received (their declared lengths), received data its apps have not
    /// dropped yet (in event streams or anywhere else), data waiting to be sent, and the
    /// buffers kept for reuse ([`DeviceConfig::receive_pool_bytes`]), which give way to
    /// transfers. A transfer that would not fit is refused, and its session closed with
    /// `LIMIT_EXCEEDED`, whichever link it comes on; data an app sends is never refused, but
    /// leaves less room. Default 256 MiB ([`DEFAULT_MEMORY_BUDGET`]), which fits a phone.
    ///
    /// The budget counts the bytes the device holds, not what the allocator keeps around them:
    /// with glibc, a device on several runtime worker threads frees memory into each thread's
    /// arena, and its resident memory under a full budget was up to 35 MiB above it, against
    /// 14 MiB on one thread (README, "Hostile peers"). `MALLOC_ARENA_MAX=2` in the process's
    /// environment, or a current-thread runtime, keeps it closer.
    pub memory_budget: u64,
    /// Whether and how links are secured (SPEC section 17): secure by default, with a random
    /// identity per device and trust on first use (see [`crate::security`]).
    pub security: crate::Security,
}

/// The default of [`DeviceConfig::stream_data_bytes`]: 64 MiB.
pub const DEFAULT_STREAM_DATA_BYTES: usize = 64 << 20;

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            engine: EngineConfig::default(),
            receive_pool_bytes: acm_wire::pool::DEFAULT_POOL_BYTES,
            stream_data_bytes: DEFAULT_STREAM_DATA_BYTES,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            security: crate::Security::default(),
        }
    }
}

impl DeviceConfig {
    /// Sets the engine's settings.
    #[must_use]
    pub fn with_engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the most bytes of received transfers' buffers kept for reuse.
    #[must_use]
    pub fn with_receive_pool_bytes(mut self, bytes: usize) -> Self {
        self.receive_pool_bytes = bytes;
        self
    }

    /// Sets how links are secured.
    #[must_use]
    pub fn with_security(mut self, security: crate::Security) -> Self {
        self.security = security;
        self
    }

    /// Sets the most bytes of data the device holds for all its links together.
    #[must_use]
    pub fn with_memory_budget(mut self, bytes: u64) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Sets the most bytes of received data an event stream holds unread.
    #[must_use]
    pub fn with_stream_data_bytes(mut self, bytes: usize) -> Self {
        self.stream_data_bytes = bytes;
        self
    }
}

/// A device: the runtime that owns a transport and the links to other devices, and hands each
/// app its [`AbilityConnectionManager`](crate::AbilityConnectionManager)
/// ([`Device::manager`]). Cloning gives another handle to the same device; when the last handle
/// (a device's apps' managers hold one each) is dropped, the device shuts down.
///
/// It needs a tokio runtime: [`Device::new`] spawns the task that accepts links, and each link
/// gets a task of its own.
#[derive(Clone)]
pub struct Device {
    pub(crate) inner: Arc<DeviceRef>,
}

/// What a [`Device`]'s handles share: the last one to go shuts the device down.
pub(crate) struct DeviceRef {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for DeviceRef {
    fn drop(&mut self) {
        shut_down(&self.shared, "the device is shutting down");
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", self.id())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Starts a device on `transport`: it accepts links from other devices at once.
    pub fn new(transport: impl Transport + 'static, config: DeviceConfig) -> Self {
        let mut config = config;
        let (transport, security) = crate::security::secure(transport, config.security);
        config.security = security;
        config.engine.carries_data = transport.capabilities().carries_data;
        let shared = Arc::new(Shared::new(transport, config));
        let task = tokio::spawn(accept_links(Arc::downgrade(&shared)));
        *lock(&shared.accept_task) = Some(task);
        Self {
            inner: Arc::new(DeviceRef { shared }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The requests to pair with unknown devices, for the device's owner to answer, when its
    /// secure layer asks (see [`crate::security`]); to the first caller only.
    pub fn pairing_requests(&self) -> Option<acm_secure::PairingRequests> {
        self.shared().config.security.pairing_requests()
    }

    /// This device's id.
    pub fn id(&self) -> &DeviceId {
        self.shared().transport.local_device()
    }

    /// The devices that can be reached now (OpenHarmony's `getAvailableDeviceListSync`).
    /// Fails with 801: [`AcmError::CapabilityNotSupported`] when the transport cannot
    /// discover, [`AcmError::Transport`] when its discovery failed.
    pub async fn available_devices(&self) -> Result<Vec<DeviceInfo>, AcmError> {
        self.shared()
            .transport
            .discover()
            .await
            .map_err(AcmError::from)
    }

    /// The buffers received transfers leave behind, kept for the next ones to fill (see
    /// [`DeviceConfig::receive_pool_bytes`]): how many bytes it keeps now tells what memory
    /// the device holds on to between transfers.
    pub fn receive_pool(&self) -> &BufferPool {
        &self.shared().receive_pool
    }

    /// The bytes charged now against the device's memory budget
    /// ([`DeviceConfig::memory_budget`]): data, and the buffers kept for reuse.
    pub fn memory_in_use(&self) -> u64 {
        self.shared().memory.used()
    }

    /// Closes every link gracefully and waits until each has closed: what the apps sent before
    /// (a DISCONNECT from `disconnect`, messages, data) goes out first, then LINK_CLOSE, then
    /// the transport's own close. Then the device is as after [`Device::shutdown`]. A program
    /// about to exit awaits this so that nothing it sent is lost with the process. A peer that
    /// takes nothing of it for one keepalive interval has what waits for it given up (SPEC
    /// `LINK-13`); beyond that, how long it takes is bounded by the transports' close (BLE
    /// waits up to its `close_timeout` for the peer), so put a timeout around it to bound it
    /// further.
    pub async fn close(&self) {
        self.shutdown();
        let shared = self.shared().clone();
        poll_fn(|cx| {
            let mut state = shared.lock();
            let links: Vec<LinkId> = state.links.keys().copied().collect();
            if links.is_empty() {
                return Poll::Ready(());
            }
            for link in links {
                state.wait_on(link, cx.waker());
            }
            Poll::Pending
        })
        .await;
    }

    /// Closes every link (its sessions end with NETWORK_DISCONNECTED at the peers), stops
    /// accepting new ones, and forgets every app's registered abilities, so that handlers
    /// holding managers no longer keep the device and its transport alive: once the last
    /// handle is dropped, the transport is too.
    pub fn shutdown(&self) {
        shut_down(self.shared(), "the device closed the link");
    }
}

/// Stops accepting links, closes every link with `why`, and forgets the apps' handlers (dropped
/// once the lock is let go: a handler may hold a manager, whose drop locks the state).
fn shut_down(shared: &Shared, why: &str) {
    if let Some(task) = lock(&shared.accept_task).take() {
        task.abort();
    }
    let (drivers, handlers) = {
        let mut state = shared.lock();
        state.closing = true;
        let links: Vec<LinkId> = state.links.keys().copied().collect();
        let now = now();
        for link in &links {
            state
                .engine
                .close_link(*link, now, LinkCloseReason::Normal, why);
        }
        let drivers: Vec<_> = links.iter().filter_map(|l| state.driver(*l)).collect();
        let handlers: Vec<_> = state
            .apps
            .values_mut()
            .flat_map(|app| std::mem::take(&mut app.handlers))
            .collect();
        (drivers, handlers)
    };
    wake_all(drivers);
    drop(handlers);
}

async fn accept_links(shared: Weak<Shared>) {
    loop {
        let Some(transport) = shared.upgrade().map(|s| s.transport.clone()) else {
            return;
        };
        let link = match transport.accept().await {
            Ok(link) => link,
            // A transport that only dials (a TCP client) never accepts: nothing to say.
            Err(TransportError::Unsupported(_)) => return,
            Err(err) => {
                tracing::info!(%err, "no longer accepting links");
                return;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        tracing::debug!(peer = %link.peer_device(), "link accepted");
        if let Err(why) = start_link(&shared, link) {
            tracing::error!(%why, "link refused");
        }
    }
}

/// Adds `link`, opened by the transport, to the device and starts its driver.
fn start_link(shared: &Arc<Shared>, link: Box<dyn Link>) -> Result<LinkId, String> {
    let (id, link) = add_link(shared, link)?;
    let span =
        tracing::info_span!("link", peer = %link.peer_device(), role = ?link.role(), id = id.get());
    driver::spawn(shared.clone(), id, link, span);
    Ok(id)
}

/// Adds `link`, opened by the transport, to the device's engine and state: its driver is to be
/// started.
pub(super) fn add_link(
    shared: &Arc<Shared>,
    link: Box<dyn Link>,
) -> Result<(LinkId, Arc<dyn Link>), String> {
    let nonce = shared.random16()?;
    let link: Arc<dyn Link> = Arc::from(link);
    let role = link.role();
    let peer = link.peer_device().clone();
    let id = {
        let mut state = shared.lock();
        let now = now();
        let id = state
            .engine
            .add_link(now, role, peer.as_str(), link.max_frame_size(), nonce);
        state.links.insert(id, LinkEntry::default());
        if state.closing {
            state.engine.close_link(
                id,
                now,
                LinkCloseReason::Normal,
                "the device is shutting down",
            );
        }
        id
    };
    Ok((id, link))
}

impl Shared {
    /// A link to device `peer` that is up: the preferred one, or a new one dialed for it.
    pub(crate) async fn link_to(self: &Arc<Self>, peer: &str) -> Result<LinkId, String> {
        if let Some(link) = self.lock().engine.preferred_link(peer) {
            return Ok(link);
        }
        let _dialing = self.dialing.lock().await;
        if let Some(link) = self.lock().engine.preferred_link(peer) {
            return Ok(link);
        }
        let id = DeviceId::new(peer).map_err(|e| format!("device {peer:?}: {e}"))?;
        let link = self
            .transport
            .dial(&id)
            .await
            .map_err(|e| format!("cannot reach device {id}: {e}"))?;
        let link = start_link(self, link)?;
        // Until its HELLOs are exchanged, or it ends first.
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.engine.is_up(link) {
                return Poll::Ready(Ok(link));
            }
            if state.engine.is_closed(link) || !state.wait_on(link, cx.waker()) {
                let why = state
                    .links
                    .get(&link)
                    .and_then(|entry| entry.ended.clone())
                    .unwrap_or_else(|| "it was closed".into());
                return Poll::Ready(Err(format!("the link ended before it was up: {why}")));
            }
            Poll::Pending
        })
        .await
    }
}
