//! Errors of starting a transport.

/// Why a [`BleTransport`](crate::BleTransport) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BleError {
    /// The controller could not be reached.
    #[error("cannot open the HCI controller: {0}")]
    Open(#[source] std::io::Error),
    /// The device id is too long to advertise.
    #[error("device id {0:?} is longer than the {max} bytes an advertisement carries", max = crate::binding::MAX_ADVERTISED_ID_LEN)]
    IdTooLong(String),
    /// The host stack stopped before it was ready: the controller closed, refused the
    /// initialisation, or is not a Bluetooth LE controller.
    #[error("the Bluetooth host did not start: {0}")]
    Start(String),
    /// The HCI log file could not be created.
    #[error("cannot create the HCI log {}: {source}", path.display())]
    HciLog {
        /// The file asked for.
        path: std::path::PathBuf,
        /// Why it could not be created.
        source: std::io::Error,
    },
    /// The thread that runs the host stack could not be started.
    #[error("cannot start the host thread: {0}")]
    Thread(#[source] std::io::Error),
}
