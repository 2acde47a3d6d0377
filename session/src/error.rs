//! The errors of the API, with the reference's codes.

use crate::types::Permission;

/// An API call that failed. [`AcmError::code`] gives the reference's error code (201, 401 or
/// 801); the message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcmError {
    /// 201: the context lacks a permission the call requires.
    #[error("201 Permission denied: the context lacks {0}")]
    PermissionDenied(Permission),
    /// 401: a parameter is missing, empty, too long, unknown or otherwise wrong.
    #[error("401 Parameter error: {0}")]
    Parameter(String),
    /// 801: the device cannot do what the call needs.
    #[error("801 Capability not supported: {0}")]
    CapabilityNotSupported(String),
}

impl AcmError {
    /// The reference's error code: 201, 401 or 801.
    pub fn code(&self) -> u32 {
        match self {
            Self::PermissionDenied(_) => 201,
            Self::Parameter(_) => 401,
            Self::CapabilityNotSupported(_) => 801,
        }
    }

    pub(crate) fn parameter(what: impl Into<String>) -> Self {
        Self::Parameter(what.into())
    }
}
