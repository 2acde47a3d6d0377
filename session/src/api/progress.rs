//! `send_data` and its variant that reports progress.

use bytes::Bytes;

use super::manager::{AbilityConnectionManager, session_error};
use crate::error::{AcmError, Capability};
use crate::types::SessionId;

/// How far an outgoing transfer has got: bytes handed to the link out of the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendProgress {
    /// Bytes handed to the link so far.
    pub sent: u64,
    /// The transfer's whole length.
    pub total: u64,
}

impl AbilityConnectionManager {
    /// Sends bytes of any size up to the peer's limit (100 MiB by default); resolves once every
    /// fragment has been handed to the link, so a slow link slows the caller instead of filling
    /// memory. Errors: [`AcmError::UnknownSession`], [`AcmError::NotConnected`],
    /// [`AcmError::DataTooLarge`] over the peer's limit, or [`AcmError::SessionEnded`] with the
    /// session's disconnect reason when it ended before all was sent (all 401);
    /// [`AcmError::CapabilityNotSupported`] (801) when the transport cannot carry data.
    pub async fn send_data(&self, session_id: SessionId, data: Bytes) -> Result<(), AcmError> {
        self.send(session_id, data, None::<fn(SendProgress)>).await
    }

    /// Like [`AbilityConnectionManager::send_data`], calling `on_progress` in the caller's task
    /// as fragments are handed to the link (not in the reference). The reports only grow; the
    /// last one, made only when the call succeeds, has `sent == total`. A session or link that
    /// ends mid-transfer ends the reports without that last one, and the call fails.
    pub async fn send_data_with_progress(
        &self,
        session_id: SessionId,
        data: Bytes,
        on_progress: impl FnMut(SendProgress),
    ) -> Result<(), AcmError> {
        self.send(session_id, data, Some(on_progress)).await
    }

    async fn send(
        &self,
        session_id: SessionId,
        data: Bytes,
        mut on_progress: Option<impl FnMut(SendProgress)>,
    ) -> Result<(), AcmError> {
        let carries_data = self
            .app
            .device()
            .shared()
            .transport
            .capabilities()
            .carries_data;
        if !carries_data {
            return Err(AcmError::CapabilityNotSupported(Capability::SendData));
        }
        if !self.is_connected(session_id)? {
            return Err(AcmError::NotConnected(session_id));
        }
        let total = data.len() as u64;
        let report = on_progress
            .as_mut()
            .map(|report| move |sent| report(SendProgress { sent, total }));
        let sent = self.app.send_data(session_id.get(), data, report).await;
        match sent {
            Ok(Ok(())) => {
                if let Some(report) = on_progress.as_mut() {
                    report(SendProgress { sent: total, total });
                }
                Ok(())
            }
            Ok(Err(reason)) => Err(AcmError::SessionEnded { session_id, reason }),
            Err(err) => Err(session_error(session_id, err)),
        }
    }
}
