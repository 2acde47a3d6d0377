//! The link a transport hands out, and the state it shares with the host thread.

use std::fmt;
use std::sync::{Arc, Mutex};

use acm_transport::{CloseReason, Closure, DeviceId, Link, Role, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::binding;

/// Frames waiting to be handed to the host thread, per link.
const OUTBOUND_QUEUE: usize = 4;
/// Frames received and waiting for the reader, per link.
const INBOUND_QUEUE: usize = 8;

/// What the link asks the host thread to send.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One frame, as one SDU.
    Frame(Bytes),
    /// Close gracefully; the sender is dropped when the link is down.
    Close(CloseReason, oneshot::Sender<()>),
}

/// What both halves of a link share.
#[derive(Debug, Default)]
pub(crate) struct LinkShared {
    closure: Mutex<Option<Closure>>,
    /// Signalled once this side has closed the link.
    pub(crate) closed_locally: Notify,
}

impl LinkShared {
    /// Ends the link with `closure` unless it has already ended; says whether it did.
    pub(crate) fn end(&self, closure: Closure) -> bool {
        let mut slot = self.closure.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return false;
        }
        let local = matches!(closure, Closure::Local(_));
        *slot = Some(closure);
        drop(slot);
        if local {
            self.closed_locally.notify_one();
        }
        true
    }

    /// How the link ended, if it has.
    pub(crate) fn closure(&self) -> Option<Closure> {
        self.closure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether frames arriving now are to be thrown away: this side closed, or the link failed.
    pub(crate) fn discards(&self) -> bool {
        matches!(self.closure(), Some(Closure::Local(_) | Closure::Lost(_)))
    }
}

/// What the host thread says about itself to its links: why it stopped, once it has.
#[derive(Debug)]
pub(crate) struct HostStatus(Mutex<String>);

impl Default for HostStatus {
    fn default() -> Self {
        Self(Mutex::new("the transport shut down".into()))
    }
}

impl HostStatus {
    /// Records why the host stopped.
    pub(crate) fn stopped(&self, why: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Why the host stopped (or will have, when a link is dropped with it).
    pub(crate) fn why(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The host thread's half of a link. Dropped before the link has ended (the host stopped), it
/// ends it as lost.
#[derive(Debug)]
pub(crate) struct HostEnd {
    pub(crate) shared: Arc<LinkShared>,
    pub(crate) outbound: mpsc::Receiver<Outbound>,
    pub(crate) inbound: mpsc::Sender<Bytes>,
    status: Arc<HostStatus>,
}

impl Drop for HostEnd {
    fn drop(&mut self) {
        self.shared.end(Closure::Lost(self.status.why()));
    }
}

/// Who is on either end of a new link, and what it carries.
#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub(crate) local: DeviceId,
    pub(crate) peer: DeviceId,
    pub(crate) role: Role,
    pub(crate) max_frame_size: usize,
    pub(crate) peer_address: String,
}

/// A new link's two halves.
pub(crate) fn pair(info: LinkInfo, status: &Arc<HostStatus>) -> (BleLink, HostEnd) {
    let shared = Arc::new(LinkShared::default());
    let (outbound_tx, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let link = BleLink {
        info,
        shared: shared.clone(),
        outbound: outbound_tx,
        inbound: tokio::sync::Mutex::new(inbound_rx),
    };
    let host = HostEnd {
        shared,
        outbound: outbound_rx,
        inbound: inbound_tx,
        status: status.clone(),
    };
    (link, host)
}

/// One end of an L2CAP channel carrying acm frames, from
/// [`BleTransport`](crate::BleTransport)'s `dial` or `accept`.
///
/// How a link ends:
///
/// * [`Link::close`] sends the binding's CLOSE SDU after the frames already sent, then waits
///   (up to the configured close timeout) for the peer to take the channel down. This end sees
///   [`Closure::Local`] at once, and frames still arriving are discarded; the peer receives
///   every frame sent before the close and then sees [`Closure::Peer`] with the reason.
/// * A peer's CLOSE ends the link with [`Closure::Peer`]: frames already received are still
///   returned by `recv`, then the closure.
/// * A channel or connection that goes down without a CLOSE, a controller that stops
///   answering, dropping an end that is still open, or dropping the transport ends the link
///   with [`Closure::Lost`]; `recv` returns the closure at once. L2CAP delivers whole SDUs
///   only, so no partial frame is ever returned.
pub struct BleLink {
    info: LinkInfo,
    shared: Arc<LinkShared>,
    outbound: mpsc::Sender<Outbound>,
    inbound: tokio::sync::Mutex<mpsc::Receiver<Bytes>>,
}

impl BleLink {
    /// The peer's Bluetooth address, as `XX:XX:XX:XX:XX:XX`.
    pub fn peer_address(&self) -> &str {
        &self.info.peer_address
    }

    fn closed(&self) -> TransportError {
        TransportError::Closed(
            self.shared
                .closure()
                .unwrap_or_else(|| Closure::Lost("the Bluetooth host stopped".into())),
        )
    }
}

impl fmt::Debug for BleLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BleLink")
            .field("local", &self.info.local)
            .field("peer", &self.info.peer)
            .field("role", &self.info.role)
            .field("peer_address", &self.info.peer_address)
            .finish()
    }
}

impl Drop for BleLink {
    fn drop(&mut self) {
        // The host thread sees the queues close and takes the channel down without a CLOSE.
        self.shared
            .end(Closure::Lost("this end of the link was dropped".into()));
    }
}

#[async_trait]
impl Link for BleLink {
    fn local_device(&self) -> &DeviceId {
        &self.info.local
    }

    fn peer_device(&self) -> &DeviceId {
        &self.info.peer
    }

    fn role(&self) -> Role {
        self.info.role
    }

    fn max_frame_size(&self) -> usize {
        self.info.max_frame_size
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        if frame.is_empty() {
            return Err(TransportError::EmptyFrame);
        }
        if frame.len() > self.info.max_frame_size {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                max: self.info.max_frame_size,
            });
        }
        if binding::is_reserved(&frame) {
            return Err(TransportError::Unsupported(
                "a frame beginning AC 4D 00 (reserved for the BLE binding's own SDUs)",
            ));
        }
        if self.shared.closure().is_some() {
            return Err(self.closed());
        }
        self.outbound
            .send(Outbound::Frame(frame))
            .await
            .map_err(|_| self.closed())
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut inbound = self.inbound.lock().await;
        if self.shared.discards() {
            return Err(self.closed());
        }
        match inbound.recv().await {
            Some(frame) if !self.shared.discards() => Ok(frame),
            _ => Err(self.closed()),
        }
    }

    async fn close(&self, reason: CloseReason) {
        if !self.shared.end(Closure::Local(reason.clone())) {
            return;
        }
        let (done_tx, done_rx) = oneshot::channel();
        if self
            .outbound
            .send(Outbound::Close(reason, done_tx))
            .await
            .is_ok()
        {
            // Resolves when the host thread drops the sender: the channel is down.
            let _ = done_rx.await;
        }
    }

    fn closure(&self) -> Option<Closure> {
        self.shared.closure()
    }

    /// The dialer's OPEN SDU, then the acceptor's (`BLE-5`), as each was sent.
    fn opening(&self) -> Bytes {
        let (dialer, acceptor) = self
            .info
            .role
            .dialer_first(&self.info.local, &self.info.peer);
        [binding::open(dialer), binding::open(acceptor)]
            .concat()
            .into()
    }
}
