//! The errors of making a transport.

use std::net::SocketAddr;

/// Why a [`TcpTransport`](crate::TcpTransport) could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpError {
    /// A setting is outside the range it allows.
    #[error("{setting} is {value}; it must be between {min} and {max}")]
    OutOfRange {
        /// The setting's name in [`TcpConfig`](crate::TcpConfig).
        setting: &'static str,
        /// The value given.
        value: usize,
        /// The smallest value allowed.
        min: usize,
        /// The largest value allowed.
        max: usize,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
}
