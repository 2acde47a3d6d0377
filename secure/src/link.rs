//! [`SecureLink`]: a link whose frames travel as records.

use std::sync::Mutex;

use acm_transport::{
    CloseReason, Closure, DeviceId, FrameBuf, Link, PeerAddress, Role, TransportError,
};
use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{CloseCode, SecureError};
use crate::handshake::Established;
use crate::identity::PublicKey;
use crate::pairing::PairingCode;
use crate::record::{Counter, MAX_FRAME_LEN, RECORD_OVERHEAD, Records};

/// A link that carries each frame as one record over another link (SPEC section 17.7). Made by
/// [`Secure`](crate::Secure) or [`establish`](crate::establish) once the handshake and the
/// pairing are through.
///
/// Sends are served one record at a time, in the order of their record numbers, and so are
/// receives; a send and a receive run at once. The first record that fails to open closes the
/// link with `RECORD_FAILED` (`SEC-9`). A send cancelled after its record was sealed leaves
/// the peer waiting for a record that may never come: the link then counts as failed.
#[derive(Debug)]
pub struct SecureLink {
    inner: Box<dyn Link>,
    records: Records,
    sending: tokio::sync::Mutex<Counter>,
    receiving: tokio::sync::Mutex<Counter>,
    /// Set when this side failed the link.
    failed: Mutex<Option<Closure>>,
    peer_key: PublicKey,
    code: PairingCode,
    handshake_hash: [u8; 32],
}

/// Fails the link if a send is dropped after sealing its record and before the link took it.
struct Sealed<'a> {
    link: &'a SecureLink,
    armed: bool,
}

impl Drop for Sealed<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.link.fail(Closure::Lost(
                "a send was cancelled after its record was sealed".into(),
            ));
        }
    }
}

impl SecureLink {
    pub(crate) fn new(inner: Box<dyn Link>, established: Established) -> Self {
        Self {
            inner,
            records: established.records,
            sending: tokio::sync::Mutex::new(Counter::default()),
            receiving: tokio::sync::Mutex::new(Counter::default()),
            failed: Mutex::new(None),
            peer_key: established.peer_key,
            code: established.code,
            handshake_hash: established.handshake_hash,
        }
    }

    /// Rekeys every `interval` records (see [`Records::with_rekey_interval`]); tests only.
    #[doc(hidden)]
    #[must_use]
    pub fn with_rekey_interval(mut self, interval: u64) -> Self {
        self.records = self.records.with_rekey_interval(interval);
        self
    }

    /// The peer's static key, as the handshake proved it.
    pub fn peer_key(&self) -> PublicKey {
        self.peer_key
    }

    /// The pairing code of this link's handshake.
    pub fn pairing_code(&self) -> PairingCode {
        self.code
    }

    /// The final Noise handshake hash: the same on both ends, a channel binding.
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// The link the records travel on. Sending on it directly breaks the record sequence: the
    /// peer then closes the link (the conformance suite does it on purpose).
    pub fn inner(&self) -> &dyn Link {
        &*self.inner
    }

    /// Seals `frame` as this side's next record without sending it, for tests that send
    /// records out of order, twice or changed on [`SecureLink::inner`].
    pub async fn seal(&self, frame: &[u8]) -> Result<Bytes, SecureError> {
        let mut counter = self.sending.lock().await;
        self.records.seal(&mut counter, frame)
    }

    fn fail(&self, closure: Closure) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if failed.is_none() {
            *failed = Some(closure);
        }
    }

    fn failed(&self) -> Option<Closure> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends this side's pairing confirmation: an empty record, the first (`SEC-8`).
    pub(crate) async fn send_confirmation(&self) -> Result<(), SecureError> {
        let mut counter = self.sending.lock().await;
        let record = self.records.seal(&mut counter, &[])?;
        self.inner.send(record).await?;
        Ok(())
    }

    /// Receives the peer's pairing confirmation: its first record, which must be empty.
    pub(crate) async fn receive_confirmation(&self) -> Result<(), SecureError> {
        let mut counter = self.receiving.lock().await;
        let record = self.inner.recv().await?;
        let opened = self.records.open(&mut counter, &record)?;
        if !opened.is_empty() {
            return Err(SecureError::refused(
                CloseCode::RecordFailed,
                "the peer's first record is not an empty confirmation",
            ));
        }
        Ok(())
    }

    /// Closes the link with `error`'s close reason, if it has one.
    pub(crate) async fn refuse(&self, error: &SecureError) {
        refuse(&*self.inner, error).await;
    }
}

/// Closes `link` because of `error`: with its close code where it is a refusal of this side's;
/// a link the peer closed or that failed is left as it is.
pub(crate) async fn refuse(link: &dyn Link, error: &SecureError) {
    if let SecureError::Refused { code, detail } = error {
        link.close(code.reason(detail)).await;
    } else if link.closure().is_none() {
        link.close(CloseCode::HandshakeFailed.reason(&error.to_string()))
            .await;
    }
}

#[async_trait]
impl Link for SecureLink {
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
        self.inner
            .max_frame_size()
            .saturating_sub(RECORD_OVERHEAD)
            .min(MAX_FRAME_LEN)
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        if frame.is_empty() {
            return Err(TransportError::EmptyFrame);
        }
        let max = self.max_frame_size();
        if frame.len() > max {
            return Err(TransportError::FrameTooLarge {
                len: frame.len(),
                max,
            });
        }
        if let Some(closure) = self.failed() {
            return Err(TransportError::Closed(closure));
        }
        let mut counter = self.sending.lock().await;
        let record = self.records.seal(&mut counter, &frame).map_err(|e| {
            self.fail(Closure::Lost(e.to_string()));
            TransportError::from(e)
        })?;
        let mut sealed = Sealed {
            link: self,
            armed: true,
        };
        let sent = self.inner.send(record).await;
        if let Err(e) = &sent {
            // The peer now waits for a record that never came: nothing more can follow it. A link
            // the peer closed keeps the peer's reason.
            let closure = match e {
                TransportError::Closed(closure) => closure.clone(),
                other => Closure::Lost(format!("a sealed record was not sent: {other}")),
            };
            self.fail(closure);
        }
        sealed.armed = false;
        sent
    }

    async fn send_buf(&self, frame: FrameBuf) -> Result<(), TransportError> {
        self.send(frame.into_bytes()).await
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        if let Some(closure) = self.failed() {
            return Err(TransportError::Closed(closure));
        }
        let mut counter = self.receiving.lock().await;
        let record = self.inner.recv().await?;
        match self.records.open(&mut counter, &record) {
            Ok(frame) if !frame.is_empty() => Ok(frame),
            Ok(_) => Err(self
                .fail_recv(SecureError::refused(
                    CloseCode::RecordFailed,
                    "an empty record after the confirmation",
                ))
                .await),
            Err(e) => Err(self.fail_recv(e).await),
        }
    }

    async fn close(&self, reason: CloseReason) {
        self.inner.close(reason).await;
    }

    fn closure(&self) -> Option<Closure> {
        self.failed().or_else(|| self.inner.closure())
    }

    fn opening(&self) -> Bytes {
        self.inner.opening()
    }

    fn peer_address(&self) -> Option<PeerAddress> {
        self.inner.peer_address()
    }
}

impl SecureLink {
    /// The peer sent something that is not its next record: close the link with the reason and
    /// fail every later call.
    async fn fail_recv(&self, error: SecureError) -> TransportError {
        let reason = match &error {
            SecureError::Refused { code, detail } => code.reason(detail),
            other => CloseCode::RecordFailed.reason(&other.to_string()),
        };
        self.fail(Closure::Local(reason.clone()));
        self.inner.close(reason.clone()).await;
        TransportError::Closed(Closure::Local(reason))
    }
}
