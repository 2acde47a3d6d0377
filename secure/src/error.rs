//! What goes wrong in the secure layer, and the close reasons it sends (SPEC section 17.9).

use acm_transport::{CloseReason, Closure, TransportError};

/// Why a secure link closes: each has its own close code, carried by the binding's close
/// (SPEC section 17.9, `SEC-11`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// The peer offers no security: it sent a plain acm frame where a handshake message was
    /// due (`SEC-2`).
    SecurityRequired,
    /// A handshake message was malformed, failed to decrypt, or broke the commitment
    /// (`SEC-4`, `SEC-5`).
    HandshakeFailed,
    /// A handshake message did not arrive in time (`SEC-4`).
    HandshakeTimeout,
    /// The peer's device id is trusted with another key (`SEC-7`).
    Impersonation,
    /// The peer is not known and this side pairs only with known devices (`SEC-8`).
    UnknownDevice,
    /// The owner of this device refused to pair, or no one was there to ask (`SEC-8`).
    PairingRejected,
    /// The pairing was not answered in time, here or by the peer (`SEC-8`).
    PairingTimeout,
    /// A record failed to decrypt, was malformed, replayed or reordered, or a plain frame came
    /// where a record was due (`SEC-9`).
    RecordFailed,
}

impl CloseCode {
    /// Every close code, in the order of their numbers.
    pub const ALL: [CloseCode; 8] = [
        Self::SecurityRequired,
        Self::HandshakeFailed,
        Self::HandshakeTimeout,
        Self::Impersonation,
        Self::UnknownDevice,
        Self::PairingRejected,
        Self::PairingTimeout,
        Self::RecordFailed,
    ];

    /// The code's number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            Self::SecurityRequired => 0x5EC1,
            Self::HandshakeFailed => 0x5EC2,
            Self::HandshakeTimeout => 0x5EC3,
            Self::Impersonation => 0x5EC4,
            Self::UnknownDevice => 0x5EC5,
            Self::PairingRejected => 0x5EC6,
            Self::PairingTimeout => 0x5EC7,
            Self::RecordFailed => 0x5EC8,
        }
    }

    /// The code with this number, if it is one of the secure layer's.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The code's name as SPEC writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SecurityRequired => "SECURITY_REQUIRED",
            Self::HandshakeFailed => "HANDSHAKE_FAILED",
            Self::HandshakeTimeout => "HANDSHAKE_TIMEOUT",
            Self::Impersonation => "IMPERSONATION",
            Self::UnknownDevice => "UNKNOWN_DEVICE",
            Self::PairingRejected => "PAIRING_REJECTED",
            Self::PairingTimeout => "PAIRING_TIMEOUT",
            Self::RecordFailed => "RECORD_FAILED",
        }
    }

    /// A close reason with this code and a text that starts with the code's name.
    pub fn reason(self, detail: &str) -> CloseReason {
        CloseReason::new(self.code(), format!("{}: {detail}", self.name()))
    }

    /// The secure layer's close code in a link's closure, whichever side closed it.
    pub fn of_closure(closure: &Closure) -> Option<Self> {
        match closure {
            Closure::Local(reason) | Closure::Peer(reason) => Self::from_code(reason.code),
            _ => None,
        }
    }

    /// The secure layer's close code in a transport error, if the error is a closed link.
    pub fn of_error(error: &TransportError) -> Option<Self> {
        match error {
            TransportError::Closed(closure) => Self::of_closure(closure),
            _ => None,
        }
    }
}

/// A failure of the secure layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecureError {
    /// The peer broke the secure layer's rules, or a check of this side failed; the link was
    /// (or is to be) closed with this code.
    #[error("{}: {detail}", code.name())]
    Refused {
        /// The close code.
        code: CloseCode,
        /// What happened.
        detail: String,
    },
    /// The Noise library refused an operation.
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    /// The operating system's random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
    /// A key or trust store file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A key or trust store file holds something else than this crate writes.
    #[error("{path}: {detail}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The link under the secure layer failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl SecureError {
    /// A refusal with `code`.
    pub fn refused(code: CloseCode, detail: impl Into<String>) -> Self {
        Self::Refused {
            code,
            detail: detail.into(),
        }
    }

    /// The close code this error closes a link with, if it is a refusal.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            Self::Transport(error) => CloseCode::of_error(error),
            _ => None,
        }
    }
}

impl From<SecureError> for TransportError {
    /// A refusal becomes the closed link it leaves (closed here, with its reason); a failed
    /// link stays what it was; anything else becomes an I/O error that says what happened.
    fn from(error: SecureError) -> Self {
        match error {
            SecureError::Refused { code, detail } => {
                TransportError::Closed(Closure::Local(code.reason(&detail)))
            }
            SecureError::Transport(error) => error,
            other => TransportError::Io(std::io::Error::other(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_are_distinct_and_round_trip() {
        for (i, code) in CloseCode::ALL.into_iter().enumerate() {
            assert_eq!(CloseCode::from_code(code.code()), Some(code));
            for other in &CloseCode::ALL[i + 1..] {
                assert_ne!(code.code(), other.code());
            }
        }
        assert_eq!(CloseCode::from_code(0), None);
        let reason = CloseCode::Impersonation.reason("tablet");
        assert_eq!(reason.code, 0x5EC4);
        assert_eq!(reason.message, "IMPERSONATION: tablet");
    }
}
