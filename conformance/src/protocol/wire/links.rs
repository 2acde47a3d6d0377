//! The suite's side of the links to the target: a transport that dials the target for every
//! link, links the suite can cut as a lost radio would, and the runtime the suite's device runs
//! on.

use std::future::Future;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use acm::transport::DeviceId;
use acm_transport::{Capabilities, CloseReason, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;
use bytes::Bytes;

use crate::wire::WireTarget;

/// A link the suite can cut, as a lost radio would cut it.
#[derive(Debug)]
pub(super) struct Cuttable {
    inner: Box<dyn Link>,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Cuttable {
    pub(super) fn is_open(&self) -> bool {
        !*self.cut.borrow() && self.inner.closure().is_none()
    }

    pub(super) async fn cut(&self) {
        self.cut.send_replace(true);
        self.inner.close(CloseReason::new(0, "")).await;
    }

    fn gone() -> TransportError {
        TransportError::Io(std::io::Error::other("the suite cut the link"))
    }
}

/// The suite's handle on a [`Cuttable`], as the device holds it.
#[derive(Debug)]
pub(super) struct CutLink(Arc<Cuttable>);

#[async_trait]
impl Link for CutLink {
    fn local_device(&self) -> &DeviceId {
        self.0.inner.local_device()
    }

    fn peer_device(&self) -> &DeviceId {
        self.0.inner.peer_device()
    }

    fn role(&self) -> acm_transport::Role {
        self.0.inner.role()
    }

    fn max_frame_size(&self) -> usize {
        self.0.inner.max_frame_size()
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        if *self.0.cut.borrow() {
            return Err(Cuttable::gone());
        }
        self.0.inner.send(frame).await
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut cut = self.0.cut.subscribe();
        tokio::select! {
            frame = self.0.inner.recv() => frame,
            _ = cut.wait_for(|cut| *cut) => Err(Cuttable::gone()),
        }
    }

    async fn close(&self, reason: CloseReason) {
        self.0.inner.close(reason).await;
    }

    fn closure(&self) -> Option<acm_transport::Closure> {
        self.0.inner.closure()
    }
}

/// The suite's transport: every link it dials is a new link to the target.
pub(super) struct SuiteTransport {
    pub(super) id: DeviceId,
    pub(super) target: Arc<dyn WireTarget>,
    pub(super) links: Arc<Mutex<Vec<Arc<Cuttable>>>>,
}

#[async_trait]
impl Transport for SuiteTransport {
    fn local_device(&self) -> &DeviceId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(1 << 20).with_discovery(false)
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        Ok(Vec::new())
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        if device.as_str() != self.target.device_id() {
            return Err(TransportError::Unreachable(device.clone()));
        }
        let link = self.target.open().await?;
        let (cut, _) = tokio::sync::watch::channel(false);
        let link = Arc::new(Cuttable { inner: link, cut });
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links.retain(|l| l.is_open());
        links.push(link.clone());
        Ok(Box::new(CutLink(link)))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        // The target cannot reach the suite: every link is the suite's.
        std::future::pending().await
    }
}

/// The runtime of the suite's device, on a thread of its own.
pub(super) struct Background {
    pub(super) handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub(super) fn start() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("acm-wire-scenario".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `future` on the suite's runtime and waits for its output, for at most `patience`.
    pub(super) fn run<T: Send + 'static>(
        &self,
        patience: Duration,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv_timeout(patience).ok()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
