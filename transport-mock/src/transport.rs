//! The transport of one mock device.

use std::fmt;
use std::pin::pin;
use std::sync::Arc;

use acm_transport::{Capabilities, DeviceId, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;

use crate::device::Device;
use crate::network::NetworkInner;

/// The [`Transport`] of one device on a [`MockNetwork`](crate::MockNetwork), from
/// [`MockNetwork::add_device`](crate::MockNetwork::add_device). Cheap to clone: clones are the
/// same device.
///
/// * `discover` lists the other devices on the network that this one can reach, each with the
///   address `mock://<id>`, in the order of their ids.
/// * `dial` fails with [`TransportError::Unreachable`] for a device that is not on the network,
///   cannot be reached, or is this one; with [`TransportError::Refused`] for one that does not
///   accept links or whose backlog is full.
/// * Once the device has been removed from the network, every method that talks to the
///   network fails with [`TransportError::Shutdown`].
#[derive(Clone)]
pub struct MockTransport {
    network: Arc<NetworkInner>,
    device: Arc<Device>,
}

impl MockTransport {
    /// The transport of `device` on `network`.
    pub(crate) fn new(network: Arc<NetworkInner>, device: Arc<Device>) -> Self {
        Self { network, device }
    }
}

impl fmt::Debug for MockTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockTransport")
            .field("device", &self.device.id)
            .finish()
    }
}

#[async_trait]
impl Transport for MockTransport {
    fn local_device(&self) -> &DeviceId {
        &self.device.id
    }

    fn capabilities(&self) -> Capabilities {
        let options = &self.device.options;
        Capabilities::new(options.max_frame_size)
            .with_carries_data(options.carries_data)
            .with_discovery(options.discovery)
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        if !self.device.options.discovery {
            return Err(TransportError::Unsupported("discovery"));
        }
        self.network.discover(&self.device)
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let link = self.network.dial(&self.device, device)?;
        Ok(Box::new(link))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        loop {
            let mut incoming = pin!(self.device.incoming.notified());
            incoming.as_mut().enable();
            {
                let mut state = self.device.lock();
                if state.removed {
                    return Err(TransportError::Shutdown);
                }
                if let Some(link) = state.backlog.pop_front() {
                    return Ok(Box::new(link));
                }
            }
            incoming.await;
        }
    }
}
