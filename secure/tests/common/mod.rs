//! What the secure layer's tests share: ids, frames, mock link pairs, and a tap that keeps a
//! copy of every byte a transport's links send.
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acm_secure::{SecureConfig, SecureError, SecureLink, establish};
use acm_transport::{
    Capabilities, CloseReason, Closure, DeviceId, DeviceInfo, Link, Role, Transport, TransportError,
};
use acm_transport_mock::MockNetwork;
use async_trait::async_trait;
use bytes::Bytes;

pub fn id(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

/// Runs `test`, failing it if it takes more than `seconds`: a hang is a failure, not a stall.
pub async fn within<T>(seconds: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), test)
        .await
        .expect("the test hung")
}

/// An acm-shaped frame (12-byte header, channel 0, extension type 0x80) carrying `payload`.
pub fn frame(payload: &[u8]) -> Bytes {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![0xAC, 0x4D, 1, 0x80, 0, len[1], len[2], len[3], 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame.into()
}

/// A plain HELLO header, as a peer without the secure layer sends first.
pub fn plain_hello() -> Bytes {
    Bytes::from_static(b"\xAC\x4D\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00")
}

/// A link from `dialer` to `acceptor` on a mock network, both ends raw.
pub async fn raw_pair(
    network: &MockNetwork,
    dialer: &str,
    acceptor: &str,
) -> (Box<dyn Link>, Box<dyn Link>) {
    let a = network.add_device(id(dialer)).unwrap();
    let b = network.add_device(id(acceptor)).unwrap();
    let dialed = a.dial(&id(acceptor)).await.unwrap();
    let accepted = b.accept().await.unwrap();
    (dialed, accepted)
}

/// Both ends of a mock link run the secure opening, "phone" dialing "tablet".
pub async fn secure_pair(
    phone: &SecureConfig,
    tablet: &SecureConfig,
) -> (
    Result<SecureLink, SecureError>,
    Result<SecureLink, SecureError>,
) {
    let network = MockNetwork::new(7);
    let (dialed, accepted) = raw_pair(&network, "phone", "tablet").await;
    tokio::join!(establish(dialed, phone), establish(accepted, tablet))
}

/// A transport whose links keep a copy of every byte they send, in `seen`.
pub struct Tap<T> {
    pub inner: T,
    pub seen: Arc<Mutex<Vec<u8>>>,
}

impl<T> Tap<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            seen: Arc::default(),
        }
    }

    /// Whether `needle` appears anywhere in what the links sent.
    pub fn saw(seen: &Mutex<Vec<u8>>, needle: &[u8]) -> bool {
        seen.lock()
            .unwrap()
            .windows(needle.len())
            .any(|window| window == needle)
    }
}

#[derive(Debug)]
struct TapLink {
    inner: Box<dyn Link>,
    seen: Arc<Mutex<Vec<u8>>>,
}

#[async_trait]
impl Link for TapLink {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }
    fn peer_device(&self) -> &DeviceId {
        self.inner.peer_device()
    }
    fn role(&self) -> Role {
        self.inner.role()
    }
    fn max_frame_size(&self) -> usize {
        self.inner.max_frame_size()
    }
    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        self.seen.lock().unwrap().extend_from_slice(&frame);
        self.inner.send(frame).await
    }
    async fn recv(&self) -> Result<Bytes, TransportError> {
        self.inner.recv().await
    }
    async fn close(&self, reason: CloseReason) {
        self.inner.close(reason).await
    }
    fn closure(&self) -> Option<Closure> {
        self.inner.closure()
    }
    fn opening(&self) -> Bytes {
        self.inner.opening()
    }
}

#[async_trait]
impl<T: Transport> Transport for Tap<T> {
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
        let inner = self.inner.dial(device).await?;
        Ok(Box::new(TapLink {
            inner,
            seen: self.seen.clone(),
        }))
    }
    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let inner = self.inner.accept().await?;
        Ok(Box::new(TapLink {
            inner,
            seen: self.seen.clone(),
        }))
    }
}
