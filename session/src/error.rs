//! The errors of the API: one variant per way a call fails, each with the reference's code.

use std::sync::Arc;

use acm_engine::EngineError;
use acm_transport::TransportError;

use crate::types::{DisconnectReason, Permission, SessionId};

/// An API call that failed: what went wrong, as a value to match on. [`AcmError::code`] gives
/// the reference's error code for it (201, 401 or 801); `Display` says it in words, starting
/// with the code.
///
/// ```
/// use acm::{AcmError, Invalid};
///
/// fn explain(err: &AcmError) -> String {
///     match err {
///         AcmError::MessageTooLong { len, max } => format!("shorten it: {len} > {max} bytes"),
///         AcmError::SessionEnded { reason, .. } => format!("the session ended: {reason}"),
///         AcmError::InvalidField { which, why: Invalid::Empty } => format!("fill in {which}"),
///         other => format!("error {}: {other}", other.code()),
///     }
/// }
/// let err = AcmError::MessageTooLong { len: 1025, max: 1024 };
/// assert_eq!(err.code(), 401);
/// assert_eq!(explain(&err), "shorten it: 1025 > 1024 bytes");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AcmError {
    /// 201: the context lacks a permission the call requires.
    #[error("201 Permission denied: the context lacks {0}")]
    PermissionDenied(Permission),
    /// 401: an argument is empty, too long or otherwise wrong; `which` is the reference's name
    /// of it (`serviceName`, `peerInfo.deviceId`, `reason`, ...).
    #[error("401 Parameter error: {which}: {why}")]
    InvalidField {
        /// The argument or field, as the reference names it.
        which: &'static str,
        /// What is wrong with it.
        why: Invalid,
    },
    /// 401: no session of this app has the id (never created, or destroyed).
    #[error("401 Parameter error: sessionId: no session {0}")]
    UnknownSession(SessionId),
    /// 401: the call needs a connected session, and this one is not (not yet, or no longer).
    #[error("401 Parameter error: sessionId: session {0} is not connected")]
    NotConnected(SessionId),
    /// 401: the call needs a session that is neither connected nor connecting.
    #[error("401 Parameter error: sessionId: session {0} is already connected or connecting")]
    AlreadyConnected(SessionId),
    /// 401: the session ended while the call was under way (a `send_data` whose session the
    /// peer closed, or whose link was lost, before all was sent); `reason` is the reason of its
    /// `disconnect` event, or what this side told the peer when it ended the session itself.
    #[error("401 Parameter error: sessionId: session {session_id} ended ({reason})")]
    SessionEnded {
        /// The session.
        session_id: SessionId,
        /// Why it ended.
        reason: DisconnectReason,
    },
    /// 401: a message longer than the protocol carries.
    #[error("401 Parameter error: msg: {len} bytes, at most {max}")]
    MessageTooLong {
        /// The message's length in bytes of UTF-8.
        len: usize,
        /// The most a message may have: 1024.
        max: usize,
    },
    /// 401: more data than the peer accepts in one transfer (it says how much in its HELLO).
    #[error("401 Parameter error: data: {len} bytes, the peer accepts at most {max}")]
    DataTooLarge {
        /// The data's length.
        len: u64,
        /// The peer's maximum.
        max: u64,
    },
    /// 401: the token given to `accept_connect` or `reject` does not name a request this app
    /// may answer.
    #[error("401 Parameter error: token: {0}")]
    TokenRefused(TokenRefusal),
    /// 401: the protocol engine refused the call for a reason none of the variants above
    /// names (the source says which).
    #[error("401 Parameter error: the protocol refused the call")]
    Protocol(#[source] EngineError),
    /// 801: the device cannot do what the call needs.
    #[error("801 Capability not supported: {0}")]
    CapabilityNotSupported(Capability),
    /// 801: the transport failed at what the call asked of it (the source says how): the
    /// reference reports a device that cannot do what is asked as 801.
    #[error("801 Capability not supported: the transport failed")]
    Transport(#[source] Arc<TransportError>),
}

impl AcmError {
    /// The reference's error code: 201, 401 or 801.
    pub fn code(&self) -> u32 {
        match self {
            Self::PermissionDenied(_) => 201,
            Self::InvalidField { .. }
            | Self::UnknownSession(_)
            | Self::NotConnected(_)
            | Self::AlreadyConnected(_)
            | Self::SessionEnded { .. }
            | Self::MessageTooLong { .. }
            | Self::DataTooLarge { .. }
            | Self::TokenRefused(_)
            | Self::Protocol(_) => 401,
            Self::CapabilityNotSupported(_) | Self::Transport(_) => 801,
        }
    }

    pub(crate) fn invalid(which: &'static str, why: Invalid) -> Self {
        Self::InvalidField { which, why }
    }
}

impl From<TransportError> for AcmError {
    fn from(err: TransportError) -> Self {
        match err {
            TransportError::Unsupported(what) => {
                Self::CapabilityNotSupported(Capability::Transport(what))
            }
            other => Self::Transport(Arc::new(other)),
        }
    }
}

/// What is wrong with an argument ([`AcmError::InvalidField`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// It is empty, and must not be.
    #[error("empty")]
    Empty,
    /// It is longer than allowed.
    #[error("{len} bytes, at most {max}")]
    TooLong {
        /// Its length in bytes of UTF-8.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// It holds a control character, which names may not.
    #[error("contains a control character")]
    ControlCharacter,
    /// It has more entries than allowed.
    #[error("{count} entries, at most {max}")]
    TooMany {
        /// How many it has.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// It names another app than the manager's (a context of another bundle).
    #[error("belongs to {given:?}, not to this manager's {manager:?}")]
    OtherApp {
        /// The bundle it names.
        given: String,
        /// The manager's bundle.
        manager: String,
    },
    /// It differs from another argument it must equal (`peerInfo.serviceName` and
    /// `serviceName`); the other one's name.
    #[error("differs from {0}")]
    DiffersFrom(&'static str),
}

/// Why a token was refused ([`AcmError::TokenRefused`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// It is not a token: a token is 32 hexadecimal digits.
    #[error("expected 32 hexadecimal digits")]
    Malformed,
    /// No pending request has it: never sent, already answered, or expired.
    #[error("no pending request has this token (unknown, already used, or expired)")]
    Unknown,
    /// The request is no longer pending: the requester gave up, or its link ended.
    #[error("the request is no longer pending (the requester gave up or the link ended)")]
    Withdrawn,
    /// The request is for another app of this device.
    #[error("the request is for another application")]
    OtherApp,
    /// The request comes from another app or for another service than the session names: the
    /// first of `"device"`, `"bundle"`, `"module"`, `"ability"` and `"service"` that differs.
    #[error("the request comes from another {0} than the session's peer")]
    OtherPeer(&'static str),
}

/// What a device cannot do ([`AcmError::CapabilityNotSupported`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Capability {
    /// Its transport carries no data transfers (`send_data`), only messages.
    #[error("sendData: this device's transport cannot carry data")]
    SendData,
    /// Its transport does not support an operation; the transport's name of it.
    #[error("{0} is not supported by this device's transport")]
    Transport(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_reference_code_and_says_it_first() {
        let cases = [
            (AcmError::PermissionDenied(Permission::Internet), 201),
            (AcmError::invalid("serviceName", Invalid::Empty), 401),
            (AcmError::UnknownSession(7.into()), 401),
            (AcmError::NotConnected(101.into()), 401),
            (AcmError::AlreadyConnected(101.into()), 401),
            (
                AcmError::SessionEnded {
                    session_id: 101.into(),
                    reason: DisconnectReason::PeerAppExit,
                },
                401,
            ),
            (
                AcmError::MessageTooLong {
                    len: 1025,
                    max: 1024,
                },
                401,
            ),
            (AcmError::DataTooLarge { len: 2, max: 1 }, 401),
            (AcmError::TokenRefused(TokenRefusal::Malformed), 401),
            (AcmError::Protocol(EngineError::ChannelsExhausted), 401),
            (AcmError::CapabilityNotSupported(Capability::SendData), 801),
            (TransportError::Shutdown.into(), 801),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code, "{err:?}");
            assert!(err.to_string().starts_with(&code.to_string()), "{err}");
        }
    }

    #[test]
    fn a_transport_error_is_kept_as_the_source_and_unsupported_is_a_capability() {
        let err = AcmError::from(TransportError::TimedOut("discovering"));
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("timed out while discovering"));
        assert!(matches!(
            AcmError::from(TransportError::Unsupported("discovery")),
            AcmError::CapabilityNotSupported(Capability::Transport("discovery"))
        ));
    }
}
