//! The errors of the mock network's own API (the transport's errors are
//! [`TransportError`](acm_transport::TransportError)s).

use std::fmt;

use acm_transport::DeviceId;

/// A request to the mock network that cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MockError {
    /// A device with this id is already on the network.
    DeviceExists(DeviceId),
    /// This device is not one of the two devices of the link.
    NotOnLink(DeviceId),
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DeviceExists(id) => write!(f, "device {id} is already on the network"),
            Self::NotOnLink(id) => write!(f, "device {id} is not on this link"),
        }
    }
}

impl std::error::Error for MockError {}
