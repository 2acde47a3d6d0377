//! The typed errors of the wire. Each names the SPEC.md rule it enforces ([`FrameError::rule`]
//! and friends), so that logs, tests and conformance reports can cite it.

use crate::pb::{LinkCloseReason, SessionError};

/// A frame that breaks the framing rules. Every one of these is fatal to the link: the receiver
/// closes it with [`FrameError::close_reason`] (SPEC section 3.5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Fewer than 12 bytes were given where a whole header was required.
    #[error("a frame header needs 12 bytes, {have} given")]
    Incomplete {
        /// How many bytes there were.
        have: usize,
    },
    /// The first two bytes are not `AC 4D`.
    #[error("bad magic {:02X} {:02X}, expected AC 4D", .0[0], .0[1])]
    BadMagic([u8; 2]),
    /// Version 0, which no frame may carry.
    #[error("protocol version 0 is reserved")]
    VersionZero,
    /// A frame other than HELLO or LINK_CLOSE written in a version other than the negotiated one.
    #[error("frame written in version {got}, but the link uses version {negotiated}")]
    VersionMismatch {
        /// The frame's version.
        got: u8,
        /// The link's negotiated version.
        negotiated: u8,
    },
    /// A payload length that would make the frame larger than the receiver accepts.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The whole frame's length as the header announces it.
        len: u64,
        /// The receiver's maximum frame size.
        max: u32,
    },
    /// Frame type 0.
    #[error("frame type 0 is reserved")]
    TypeZero,
    /// A type code in the critical range 0x01..=0x7F that this version does not define.
    #[error("unknown critical frame type {0:#04X}")]
    UnknownCriticalType(u8),
    /// Flag bits set that the frame's type does not define.
    #[error("frame type {frame_type} has reserved flag bits {flags:#04X} set")]
    ReservedFlags {
        /// The frame type.
        frame_type: u8,
        /// The reserved bits that were set.
        flags: u8,
    },
    /// A link frame off channel 0, or a session frame on channel 0.
    #[error("frame type {frame_type} may not be sent on channel {channel}")]
    BadChannel {
        /// The frame type.
        frame_type: u8,
        /// The channel it came on.
        channel: u32,
    },
    /// A frame other than the continuation of the control body in progress (SPEC `FRAME-10`).
    #[error("frame type {frame_type} on channel {channel} interrupts a control body in progress")]
    Interleaved {
        /// The interrupting frame's type.
        frame_type: u8,
        /// Its channel.
        channel: u32,
    },
    /// A control body, joined from frames with MORE, over the limit.
    #[error("control body of {len} bytes exceeds the maximum of {max}")]
    ControlBodyTooLarge {
        /// The body's length so far.
        len: u64,
        /// [`crate::limits::MAX_CONTROL_BODY`].
        max: u64,
    },
    /// A link message whose length is not the header's length plus the payload length.
    #[error("link message of {got} bytes holds a frame of {expected} bytes")]
    LengthMismatch {
        /// The length the header announces, header included.
        expected: u64,
        /// The link message's length.
        got: usize,
    },
}

impl FrameError {
    /// The SPEC.md rule this error enforces.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Incomplete { .. } | Self::LengthMismatch { .. } => "FRAME-9",
            Self::BadMagic(_) => "FRAME-2",
            Self::VersionZero | Self::VersionMismatch { .. } => "FRAME-3",
            Self::TooLarge { .. } => "FRAME-5",
            Self::TypeZero => "FRAME-6",
            Self::UnknownCriticalType(_) => "FRAME-7",
            Self::ReservedFlags { .. } => "FRAME-4",
            Self::BadChannel { .. } => "FRAME-8",
            Self::Interleaved { .. } | Self::ControlBodyTooLarge { .. } => "FRAME-10",
        }
    }

    /// The reason the receiver closes the link with.
    pub fn close_reason(&self) -> LinkCloseReason {
        match self {
            Self::TooLarge { .. } | Self::ControlBodyTooLarge { .. } => {
                LinkCloseReason::FrameTooLarge
            }
            _ => LinkCloseReason::ProtocolError,
        }
    }
}

/// A control frame body that does not decode or breaks a rule on its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The body is not a valid protobuf encoding of the frame type's message.
    #[error("{message} body does not decode: {detail}")]
    Decode {
        /// The message that was expected.
        message: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// A required enum field holds its UNSPECIFIED zero.
    #[error("{field} is unspecified")]
    Unspecified {
        /// The field, as `Message.field`.
        field: &'static str,
    },
    /// A required string field is empty.
    #[error("{field} is empty")]
    Empty {
        /// The field, as `Message.field`.
        field: &'static str,
    },
    /// A field is longer than its limit.
    #[error("{field} is {len} bytes long; the maximum is {max}")]
    TooLong {
        /// The field, as `Message.field`.
        field: &'static str,
        /// Its length in bytes (or entries, for maps).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string field holds a control character where none is allowed.
    #[error("{field} contains a control character")]
    ControlCharacter {
        /// The field, as `Message.field`.
        field: &'static str,
    },
    /// A field of fixed length has another length.
    #[error("{field} is {len} bytes long; it must be {expected}")]
    WrongLength {
        /// The field, as `Message.field`.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The required length.
        expected: usize,
    },
    /// A number outside its allowed range.
    #[error("{field} is {value}; it must be in {min}..={max}")]
    OutOfRange {
        /// The field, as `Message.field`.
        field: &'static str,
        /// The value sent.
        value: u64,
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// `Hello.max_version` is below `Hello.min_version`.
    #[error("version range {min}..={max} is empty")]
    EmptyVersionRange {
        /// `Hello.min_version`.
        min: u32,
        /// `Hello.max_version`.
        max: u32,
    },
    /// A ConnectResponse with neither `accepted` nor `rejected`.
    #[error("ConnectResponse carries no result")]
    MissingResult,
    /// A required message field is absent.
    #[error("{field} is missing")]
    Missing {
        /// The field, as `Message.field`.
        field: &'static str,
    },
}

impl ControlError {
    /// The SPEC.md rule this error enforces.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Decode { .. } => "CTRL-1",
            Self::Unspecified { .. } => "CTRL-3",
            Self::Empty { field }
            | Self::TooLong { field, .. }
            | Self::ControlCharacter { field }
            | Self::Missing { field }
            | Self::WrongLength { field, .. }
            | Self::OutOfRange { field, .. } => field_rule(field),
            Self::EmptyVersionRange { .. } => "LINK-3",
            Self::MissingResult => "SESS-4",
        }
    }
}

/// The rule that governs the contents of a message, by the message the field belongs to.
fn field_rule(field: &str) -> &'static str {
    if field == "ConnectResponse.rejected.reason" {
        // A free text, like the other reasons and details.
        "CTRL-4"
    } else if field.starts_with("Hello.") {
        "LINK-3"
    } else if field.starts_with("ConnectRequest.") {
        "SESS-2"
    } else if field.starts_with("ConnectResponse.") {
        "SESS-4"
    } else if field.starts_with("Message.") {
        "MSG-1"
    } else {
        "CTRL-4"
    }
}

/// A data fragment that cannot be reassembled. The transfer it belongs to is dropped; the
/// receiver closes the session on [`ReassemblyError::channel`] with
/// [`ReassemblyError::session_error`] (SPEC section 6.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// The DATA payload is shorter than its fixed data header.
    #[error("DATA payload of {len} bytes is shorter than its {needed}-byte data header")]
    ShortHeader {
        /// The channel.
        channel: u32,
        /// The payload's length.
        len: usize,
        /// The data header's length.
        needed: usize,
    },
    /// A FIRST fragment whose index is not 0.
    #[error("first fragment of transfer {transfer_id} has index {index}, not 0")]
    FirstIndexNotZero {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// Its index.
        index: u32,
    },
    /// A FIRST fragment whose transfer id is not above every earlier one on the channel.
    #[error("transfer id {transfer_id} is not above {last}, the last one begun")]
    StaleTransferId {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The highest transfer id begun before on this channel.
        last: u32,
    },
    /// A fragment of a transfer that was never begun, or has ended.
    #[error("fragment {index} belongs to transfer {transfer_id}, which is not in progress")]
    UnknownTransfer {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The fragment's index.
        index: u32,
    },
    /// A fragment whose index was already received.
    #[error("duplicate fragment {got} of transfer {transfer_id}; expected {expected}")]
    DuplicateFragment {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The index that was due.
        expected: u32,
        /// The index that came.
        got: u32,
    },
    /// A fragment whose index is ahead of the one due: fragments are missing before it or it
    /// came out of order.
    #[error("fragment {got} of transfer {transfer_id} is out of order; expected {expected}")]
    OutOfOrder {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The index that was due.
        expected: u32,
        /// The index that came.
        got: u32,
    },
    /// A fragment that is neither the last nor carries any byte.
    #[error("fragment {index} of transfer {transfer_id} is empty but not the last")]
    EmptyFragment {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The fragment's index.
        index: u32,
    },
    /// Fragments carrying more bytes than the transfer declared.
    #[error("transfer {transfer_id} overruns its declared {declared} bytes")]
    Overrun {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The declared length.
        declared: u64,
    },
    /// The LAST fragment came before the declared number of bytes: data is missing.
    #[error("transfer {transfer_id} ended after {received} of its declared {declared} bytes")]
    Incomplete {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The declared length.
        declared: u64,
        /// The bytes received.
        received: u64,
    },
    /// A transfer declared larger than the receiver accepts.
    #[error("transfer {transfer_id} declares {declared} bytes; the maximum is {max}")]
    TooLarge {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The declared length.
        declared: u64,
        /// The receiver's `max_data_size`.
        max: u64,
    },
    /// Beginning the transfer would take the link's unfinished transfers over
    /// `max_reassembly_bytes`, or the device over its memory budget
    /// ([`MemoryBudget`](crate::budget::MemoryBudget)).
    #[error("transfer {transfer_id} needs {declared} bytes but only {available} are free")]
    OverBudget {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The declared length.
        declared: u64,
        /// What was left of the budget.
        available: u64,
    },
    /// Beginning the transfer would exceed `max_transfers` unfinished transfers on the link.
    #[error("transfer {transfer_id} would exceed {max} unfinished transfers")]
    TooManyTransfers {
        /// The channel.
        channel: u32,
        /// The transfer.
        transfer_id: u32,
        /// The receiver's `max_transfers`.
        max: usize,
    },
}

impl ReassemblyError {
    /// The SPEC.md rule this error enforces.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::ShortHeader { .. } => "DATA-1",
            Self::FirstIndexNotZero { .. } => "DATA-2",
            Self::StaleTransferId { .. } => "DATA-3",
            Self::UnknownTransfer { .. }
            | Self::DuplicateFragment { .. }
            | Self::OutOfOrder { .. }
            | Self::EmptyFragment { .. } => "DATA-4",
            Self::Overrun { .. } | Self::Incomplete { .. } => "DATA-5",
            Self::TooLarge { .. } => "DATA-6",
            Self::OverBudget { .. } | Self::TooManyTransfers { .. } => "DATA-7",
        }
    }

    /// The channel whose session the error closes.
    pub fn channel(&self) -> u32 {
        match self {
            Self::ShortHeader { channel, .. }
            | Self::FirstIndexNotZero { channel, .. }
            | Self::StaleTransferId { channel, .. }
            | Self::UnknownTransfer { channel, .. }
            | Self::DuplicateFragment { channel, .. }
            | Self::OutOfOrder { channel, .. }
            | Self::EmptyFragment { channel, .. }
            | Self::Overrun { channel, .. }
            | Self::Incomplete { channel, .. }
            | Self::TooLarge { channel, .. }
            | Self::OverBudget { channel, .. }
            | Self::TooManyTransfers { channel, .. } => *channel,
        }
    }

    /// How the receiver reports the failure in the Disconnect it sends.
    pub fn session_error(&self) -> SessionError {
        match self {
            Self::TooLarge { .. } | Self::OverBudget { .. } | Self::TooManyTransfers { .. } => {
                SessionError::LimitExceeded
            }
            _ => SessionError::ProtocolError,
        }
    }
}

/// A frame that cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The payload is longer than the 24-bit length field can describe, or than the frame size
    /// allowed.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The whole frame's length.
        len: u64,
        /// The maximum.
        max: u64,
    },
    /// The maximum frame size leaves no room for data after the headers.
    #[error("a maximum frame size of {0} leaves no room for data")]
    FrameSizeTooSmall(u32),
}
