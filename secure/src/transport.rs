//! [`Secure`]: a transport whose links are all secure links.

use std::sync::Arc;

use acm_transport::{Capabilities, DeviceId, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;
use tokio::sync::{Mutex, Semaphore, mpsc};

use crate::config::SecureConfig;
use crate::establish::establish;
use crate::link::SecureLink;
use crate::pairing::PairingRequests;
use crate::record::{MAX_FRAME_LEN, RECORD_OVERHEAD};

/// How many accepted links may be in their handshake or pairing at once; links beyond that are
/// dropped (as a busy listener drops connections), so that a peer cannot make this side hold
/// an unbounded number of half-open links.
pub const OPENING_LINKS: usize = 16;

/// A transport whose links run the secure layer (SPEC section 17) over `T`'s links: every link
/// it dials or accepts is a [`SecureLink`], handed out once its handshake and pairing are done.
///
/// Accepted links open concurrently, so that a pairing that waits for its owner holds up no
/// other link; dialing waits for its own link's pairing.
pub struct Secure<T> {
    inner: Arc<T>,
    config: SecureConfig,
    opened: Mutex<mpsc::UnboundedReceiver<SecureLink>>,
    opened_tx: mpsc::UnboundedSender<SecureLink>,
    opening: Arc<Semaphore>,
}

impl<T> std::fmt::Debug for Secure<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("identity", &self.config.identity)
            .finish_non_exhaustive()
    }
}

impl<T: Transport + 'static> Secure<T> {
    /// Wraps `inner`, securing its links as `config` says.
    pub fn new(inner: T, config: SecureConfig) -> Self {
        let (opened_tx, opened) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(inner),
            config,
            opened: Mutex::new(opened),
            opened_tx,
            opening: Arc::new(Semaphore::new(OPENING_LINKS)),
        }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The configuration.
    pub fn config(&self) -> &SecureConfig {
        &self.config
    }

    /// The pairing requests (see [`SecureConfig::pairing_requests`]).
    pub fn pairing_requests(&self) -> Option<PairingRequests> {
        self.config.pairing_requests()
    }

    /// Opens `link` in a task of its own and hands it to `accept` when it is up.
    fn open_accepted(&self, link: Box<dyn Link>) {
        let Ok(permit) = Arc::clone(&self.opening).try_acquire_owned() else {
            drop(link);
            return;
        };
        let config = self.config.clone();
        let opened = self.opened_tx.clone();
        tokio::spawn(async move {
            let peer = link.peer_device().clone();
            match establish(link, &config).await {
                Ok(link) => {
                    let _ = opened.send(link);
                }
                Err(error) => tracing::warn!(%peer, %error, "refused a link"),
            }
            drop(permit);
        });
    }
}

#[async_trait]
impl<T: Transport + 'static> Transport for Secure<T> {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.inner.capabilities();
        capabilities.max_frame_size = capabilities
            .max_frame_size
            .saturating_sub(RECORD_OVERHEAD)
            .min(MAX_FRAME_LEN);
        capabilities
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let link = self.inner.dial(device).await?;
        match establish(link, &self.config).await {
            Ok(link) => Ok(Box::new(link)),
            Err(error) => {
                tracing::warn!(peer = %device, %error, "refused a link");
                Err(error.into())
            }
        }
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut opened = self.opened.lock().await;
        loop {
            tokio::select! {
                Some(link) = opened.recv() => return Ok(Box::new(link)),
                link = self.inner.accept() => self.open_accepted(link?),
            }
        }
    }
}
