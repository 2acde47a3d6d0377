//! `send_data` and its variant that reports progress.

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

use super::error::AcmError;
use super::manager::AbilityConnectionManager;
use super::types::SessionId;
use crate::runtime::link_task::LinkCommand;

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
    /// memory. Errors: 401 for an unknown or unconnected session, data over the limit, or a
    /// session that ended before all was sent; 801 when the transport cannot carry data.
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
        if !self.app.device.transport.capabilities().carries_data {
            return Err(AcmError::CapabilityNotSupported(
                "sendData: this device's transport cannot carry data".into(),
            ));
        }
        let (link, channel) = self.connected(session_id)?;
        let total = data.len() as u64;
        let (reply, mut answer) = oneshot::channel();
        let (progress, mut sent) = watch::channel(0);
        let command = LinkCommand::Data {
            channel,
            data,
            reply,
            progress: on_progress.is_some().then_some(progress),
        };
        if link.call(command).await.is_err() {
            return Err(AcmError::parameter(
                "sessionId: the session's link has ended",
            ));
        }
        let mut reported = 0;
        let mut watching = on_progress.is_some();
        let answer = loop {
            tokio::select! {
                biased;
                answer = &mut answer => break answer,
                changed = sent.changed(), if watching => {
                    let now = *sent.borrow_and_update();
                    // Once the link task forgets the transfer, wait for the answer alone.
                    if changed.is_err() {
                        watching = false;
                    } else if let Some(report) = on_progress.as_mut()
                        && now > reported && now < total
                    {
                        reported = now;
                        report(SendProgress { sent: now, total });
                    }
                }
            }
        };
        match answer {
            Ok(Ok(true)) => {
                if let Some(report) = on_progress.as_mut() {
                    report(SendProgress { sent: total, total });
                }
                Ok(())
            }
            Ok(Ok(false)) | Err(_) => Err(AcmError::parameter(
                "sessionId: the session ended before all the data was sent",
            )),
            Ok(Err(err)) => Err(AcmError::parameter(format!("data: {err}"))),
        }
    }
}
