//! What the device tests share.

use acm::transport::{Capabilities, DeviceId, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;

/// Makes the link a test watches out of a transport's link.
pub type Wrap = Box<dyn Fn(Box<dyn Link>) -> Box<dyn Link> + Send + Sync>;

/// A transport whose links, dialed or accepted, are handed out wrapped by `wrap`.
pub struct Wrapped<T> {
    pub inner: T,
    pub wrap: Wrap,
}

#[async_trait]
impl<T: Transport> Transport for Wrapped<T> {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }
    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        Ok((self.wrap)(self.inner.dial(device).await?))
    }
    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        Ok((self.wrap)(self.inner.accept().await?))
    }
}
