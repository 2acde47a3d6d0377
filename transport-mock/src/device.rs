//! The options of a mock device, and the state the network keeps for it.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use acm_transport::DeviceId;
use tokio::sync::Notify;

use crate::link::{EndConfig, MockLink};

/// How a mock device behaves, for [`MockNetwork::add_device_with`](crate::MockNetwork::add_device_with).
///
/// ```
/// use acm_transport::{DeviceId, Transport};
/// use acm_transport_mock::{DeviceOptions, MockNetwork};
///
/// let network = MockNetwork::new(1);
/// let watch = DeviceOptions::new()
///     .name("Watch")
///     .max_frame_size(244)
///     .carries_data(false);
/// let watch = network.add_device_with(DeviceId::new("watch").unwrap(), watch).unwrap();
/// assert_eq!(watch.capabilities().max_frame_size, 244);
/// assert!(!watch.capabilities().carries_data);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceOptions {
    pub(crate) name: Option<String>,
    pub(crate) max_frame_size: usize,
    pub(crate) carries_data: bool,
    pub(crate) discovery: bool,
    pub(crate) accepts_links: bool,
    pub(crate) receive_buffer: usize,
    pub(crate) accept_backlog: usize,
}

impl DeviceOptions {
    /// The largest frame by default, in bytes.
    pub const DEFAULT_MAX_FRAME_SIZE: usize = 65_535;
    /// The bytes in flight towards a device on one link by default: 1 MiB.
    pub const DEFAULT_RECEIVE_BUFFER: usize = 1 << 20;
    /// The links waiting for `accept` by default.
    pub const DEFAULT_ACCEPT_BACKLOG: usize = 64;

    /// The defaults: named after its id, frames of up to 65535 bytes, carries data, discovers,
    /// accepts links, a 1 MiB receive buffer and a backlog of 64 links.
    pub fn new() -> Self {
        Self {
            name: None,
            max_frame_size: Self::DEFAULT_MAX_FRAME_SIZE,
            carries_data: true,
            discovery: true,
            accepts_links: true,
            receive_buffer: Self::DEFAULT_RECEIVE_BUFFER,
            accept_backlog: Self::DEFAULT_ACCEPT_BACKLOG,
        }
    }

    /// Sets the name other devices discover; the device's id by default.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the largest frame the device's transport carries. A link carries the smaller of its
    /// two devices' sizes.
    #[must_use]
    pub fn max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Sets whether the device's transport says it carries bulk data.
    #[must_use]
    pub fn carries_data(mut self, carries_data: bool) -> Self {
        self.carries_data = carries_data;
        self
    }

    /// Sets whether the device's transport can discover; without it, `discover` fails with
    /// [`TransportError::Unsupported`](acm_transport::TransportError::Unsupported).
    #[must_use]
    pub fn discovery(mut self, discovery: bool) -> Self {
        self.discovery = discovery;
        self
    }

    /// Sets whether the device takes links; dials to one that does not fail with
    /// [`TransportError::Refused`](acm_transport::TransportError::Refused).
    #[must_use]
    pub fn accepts_links(mut self, accepts_links: bool) -> Self {
        self.accepts_links = accepts_links;
        self
    }

    /// Sets how many bytes may be in flight towards the device on each of its links before the
    /// sender waits (a single frame larger than this still goes through an empty link).
    #[must_use]
    pub fn receive_buffer(mut self, bytes: usize) -> Self {
        self.receive_buffer = bytes;
        self
    }

    /// Sets how many dialed links may wait for the device's `accept`; dials beyond it fail
    /// with [`TransportError::Refused`](acm_transport::TransportError::Refused).
    #[must_use]
    pub fn accept_backlog(mut self, links: usize) -> Self {
        self.accept_backlog = links;
        self
    }
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What a device's waiting links and its presence look like.
#[derive(Debug, Default)]
pub(crate) struct DeviceState {
    /// Whether the device has left the network.
    pub(crate) removed: bool,
    /// The links dialed to the device that `accept` has not taken yet.
    pub(crate) backlog: VecDeque<MockLink>,
}

/// A device on the network.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) id: DeviceId,
    pub(crate) options: DeviceOptions,
    state: Mutex<DeviceState>,
    /// Woken when a link arrives or the device leaves.
    pub(crate) incoming: Notify,
}

impl Device {
    /// A present device with no waiting links.
    pub(crate) fn new(id: DeviceId, options: DeviceOptions) -> Self {
        Self {
            id,
            options,
            state: Mutex::new(DeviceState::default()),
            incoming: Notify::new(),
        }
    }

    /// Locks the state; a panic elsewhere while it was held leaves it usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, DeviceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name other devices discover.
    pub(crate) fn name(&self) -> String {
        self.options
            .name
            .clone()
            .unwrap_or_else(|| self.id.to_string())
    }

    /// How it takes part in a new link.
    pub(crate) fn end_config(&self) -> EndConfig {
        EndConfig {
            device: self.id.clone(),
            max_frame_size: self.options.max_frame_size,
            receive_buffer: self.options.receive_buffer,
        }
    }
}
