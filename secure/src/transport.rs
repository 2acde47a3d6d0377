//! [`Secure`]: a transport whose links are all secure links.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use acm_transport::{Capabilities, Closure, DeviceId, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};
use tokio::task::AbortHandle;

use crate::config::SecureConfig;
use crate::error::SecureError;
use crate::establish::{establish, establish_observed};
use crate::link::SecureLink;
use crate::pairing::PairingRequests;
use crate::record::{MAX_FRAME_LEN, RECORD_OVERHEAD};

/// How many accepted links may be in their handshake or pairing at once, so that a peer cannot
/// make this side hold an unbounded number of half-open links. A link accepted while that many
/// open takes the place of the oldest that has not sent a handshake message yet, or of the
/// oldest when all have, which is dropped (SPEC `LIMIT-2`): links that never finish their
/// handshake cannot keep other devices out, and links that stall cannot push out one that
/// moves.
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
    opening: Arc<SyncMutex<Opening>>,
}

/// The accepted links in their handshake, oldest first, each with whether the peer has sent
/// a handshake message on it yet.
#[derive(Default)]
struct Opening {
    next: u64,
    tasks: BTreeMap<u64, (AbortHandle, Arc<AtomicBool>)>,
}

impl Opening {
    /// The opening to drop for a new one: the oldest that has not moved, or the oldest.
    fn victim(&self) -> Option<u64> {
        self.tasks
            .iter()
            .find(|(_, (_, moved))| !moved.load(Ordering::Acquire))
            .or_else(|| self.tasks.iter().next())
            .map(|(id, _)| *id)
    }
}

/// Forgets an opening task once it ends (or is aborted to make room).
struct Place {
    opening: Arc<SyncMutex<Opening>>,
    id: u64,
}

impl Drop for Place {
    fn drop(&mut self) {
        lock(&self.opening).tasks.remove(&self.id);
    }
}

fn lock(opening: &SyncMutex<Opening>) -> MutexGuard<'_, Opening> {
    opening.lock().unwrap_or_else(|e| e.into_inner())
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
            opening: Arc::default(),
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

    /// Opens `link` in a task of its own and hands it to `accept` when it is up; when
    /// [`OPENING_LINKS`] are opening already, the oldest of them is dropped for it.
    fn open_accepted(&self, link: Box<dyn Link>) {
        let config = self.config.clone();
        let opened = self.opened_tx.clone();
        let mut opening = lock(&self.opening);
        if opening.tasks.len() >= OPENING_LINKS
            && let Some((victim, _)) = opening.victim().and_then(|id| opening.tasks.remove(&id))
        {
            tracing::debug!("dropped a link in its handshake for a new one");
            victim.abort();
        }
        let id = opening.next;
        opening.next = opening.next.wrapping_add(1);
        let place = Place {
            opening: self.opening.clone(),
            id,
        };
        let moved = Arc::new(AtomicBool::new(false));
        let progress = moved.clone();
        // Started under the lock, so that it is known before its place can be given back.
        let task = tokio::spawn(async move {
            let peer = link.peer_device().clone();
            let progress = move || progress.store(true, Ordering::Release);
            match establish_observed(link, &config, &progress).await {
                Ok(link) => {
                    let _ = opened.send(link);
                }
                // A peer that closes gracefully before the handshake (one that only checks
                // which device answers) broke nothing.
                Err(SecureError::Transport(TransportError::Closed(Closure::Peer(reason))))
                    if reason.code == 0 =>
                {
                    tracing::debug!(%peer, "a link closed by its peer before its handshake");
                }
                Err(error) => tracing::warn!(%peer, %error, "refused a link"),
            }
            drop(place);
        });
        opening.tasks.insert(id, (task.abort_handle(), moved));
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
