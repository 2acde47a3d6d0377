//! The transport: a device on a Bluetooth LE controller that dials, accepts and discovers.

use acm_transport::{Capabilities, DeviceId, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;
use tokio::sync::oneshot;

use crate::air::AirReport;
use crate::config::BleConfig;
use crate::error::BleError;
use crate::host::{self, Command, Host};

/// The largest frame a BLE link carries: the largest L2CAP SDU.
pub const MAX_FRAME_SIZE: usize = crate::binding::SDU_MTU as usize;

/// acm's [`Transport`] over Bluetooth LE L2CAP channels, with the trouble-host stack driving an
/// HCI controller. See the crate docs.
///
/// The stack runs on a thread of its own; the transport and its links may be used from any
/// Tokio runtime that has its time driver enabled. Dropping the transport stops the thread and
/// ends every link it made as lost.
pub struct BleTransport {
    device: DeviceId,
    host: Host,
}

impl BleTransport {
    /// Connects to the controller, initialises it and, if `config.accept` is set, starts
    /// advertising.
    pub async fn start(config: BleConfig) -> Result<Self, BleError> {
        let device = config.device.clone();
        let host = host::start(config).await?;
        Ok(Self { device, host })
    }

    /// A handle on what this transport's connections run with (PHY, data length, interval),
    /// by peer device; it stays usable after the transport has been handed on.
    pub fn air_report(&self) -> AirReport {
        self.host.report.clone()
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, TransportError>>) -> Command,
    ) -> Result<T, TransportError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.host
            .commands
            .send(command(reply_tx))
            .await
            .map_err(|_| TransportError::Shutdown)?;
        reply_rx.await.map_err(|_| TransportError::Shutdown)?
    }
}

impl std::fmt::Debug for BleTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BleTransport")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Transport for BleTransport {
    fn local_device(&self) -> &DeviceId {
        &self.device
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(MAX_FRAME_SIZE)
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.ask(Command::Discover).await
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let device = device.clone();
        let link = self.ask(|reply| Command::Dial(device, reply)).await?;
        Ok(Box::new(link))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let mut accepted = self.host.accepted.lock().await;
        match accepted.recv().await {
            Some(link) => Ok(Box::new(link)),
            None => Err(TransportError::Shutdown),
        }
    }
}
