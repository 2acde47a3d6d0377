//! The TCP binding's numbers and its own messages, independent of any socket (SPEC.md section 14,
//! rules `TCP-1` to `TCP-9`).
//!
//! A link is one TCP connection. Frames follow each other on the stream with nothing between
//! them, each delimited by the payload length in its 12-byte header (SPEC.md section 3.6). The
//! binding adds messages of its own in the same layout, told apart by the version byte 0, which
//! no acm frame carries:
//!
//! ```text
//! AC 4D 00 kind | 00 length(24 bits) | 00 00 00 00 | payload (length bytes)
//! ```
//!
//! * `OPEN` (kind 1): the sender's device id. The dialer sends it first; the acceptor answers
//!   with its own.
//! * `CLOSE` (kind 2): a close code (32 bits, big-endian) and a UTF-8 message of at most
//!   [`MAX_CLOSE_MESSAGE`] bytes. The last message of a side that closes on purpose.
//!
//! ```
//! use acm_transport::{CloseReason, DeviceId};
//! use acm_transport_tcp::binding::{self, Header, Kind};
//!
//! let open = binding::open(&DeviceId::new("phone").unwrap());
//! assert_eq!(&open[..], b"\xAC\x4D\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00phone");
//! let header = Header::parse(open[..12].try_into().unwrap()).unwrap();
//! assert_eq!(header, Header::Binding { kind: Kind::Open, payload_len: 5 });
//!
//! let close = binding::close(&CloseReason::new(7, "done"));
//! let reason = binding::parse_close(&close[12..]).unwrap();
//! assert_eq!(reason, CloseReason::new(7, "done"));
//! ```

use std::time::Duration;

use acm_transport::{CloseReason, DeviceId};
use bytes::{BufMut, Bytes, BytesMut};

/// The length of a header, of a frame or of a binding message.
pub const HEADER_LEN: usize = 12;

/// The first two bytes of every header.
pub const MAGIC: [u8; 2] = [0xAC, 0x4D];

/// The largest frame the header can describe: 12 bytes of header and 2²⁴ − 1 of payload.
pub const LARGEST_FRAME: usize = HEADER_LEN + 0x00FF_FFFF;

/// The maximum frame size a link uses unless configured otherwise: the default
/// `max_frame_size` of SPEC.md section 10.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 65_535;

/// The smallest maximum frame size a side may use: a HELLO must fit (`LINK-1`).
pub const SMALLEST_MAX_FRAME_SIZE: usize = 128;

/// The longest close message carried, in bytes (`CTRL-4`'s limit on free texts).
pub const MAX_CLOSE_MESSAGE: usize = 1024;

/// The longest OPEN payload: a device id of at most 64 bytes.
pub const MAX_OPEN_PAYLOAD: usize = DeviceId::MAX_LEN;

/// The longest CLOSE payload: the code and the longest message.
pub const MAX_CLOSE_PAYLOAD: usize = 4 + MAX_CLOSE_MESSAGE;

/// How long a side waits for the peer's OPEN.
pub const OPEN_WAIT: Duration = Duration::from_secs(10);

/// How long a side that closed waits for the connection to wind down before it drops it.
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The kind of a binding message: the type byte of a header whose version byte is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OPEN (1): the sender's device id.
    Open,
    /// CLOSE (2): a code and a message.
    Close,
    /// A kind this version does not know: the message is skipped.
    Other(u8),
}

impl Kind {
    /// The kind's type byte.
    pub fn code(self) -> u8 {
        match self {
            Self::Open => 1,
            Self::Close => 2,
            Self::Other(code) => code,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Open,
            2 => Self::Close,
            other => Self::Other(other),
        }
    }
}

/// What a header says follows it on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// An acm frame of `size` bytes, header included.
    Frame {
        /// The frame's whole length: 12 + its payload length.
        size: usize,
    },
    /// A binding message (version byte 0).
    Binding {
        /// Its kind.
        kind: Kind,
        /// The length of its payload.
        payload_len: usize,
    },
}

/// A binding message that breaks the layout, or a frame the receiver refuses; either ends the
/// link as lost (`TCP-3`, `TCP-4`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// A binding message with flags or a channel other than zero.
    #[error("binding message with non-zero flags or channel")]
    NotZero,
    /// A binding message longer than its kind allows.
    #[error("binding message of kind {kind} with a payload of {len} bytes; at most {max} allowed")]
    PayloadLength {
        /// The kind's type byte.
        kind: u8,
        /// The payload length the header gives.
        len: usize,
        /// The most the kind allows.
        max: usize,
    },
    /// An OPEN whose payload is not a device id.
    #[error("OPEN does not carry a valid device id")]
    BadDeviceId,
    /// A CLOSE shorter than its code, or whose message is not UTF-8.
    #[error("CLOSE is malformed: {0}")]
    BadClose(&'static str),
    /// A frame larger than the receiver's maximum frame size.
    #[error("frame of {size} bytes exceeds this side's maximum of {max} bytes")]
    FrameTooLarge {
        /// The frame's size as its header gives it.
        size: usize,
        /// The receiver's maximum.
        max: usize,
    },
}

impl Header {
    /// Reads a header. Checks only what the binding needs: the version byte that tells a
    /// binding message from a frame, and a binding message's flags, channel and length.
    /// Whether a frame is good acm (magic, type, flags, channel) is for the layer above.
    pub fn parse(header: &[u8; HEADER_LEN]) -> Result<Self, BindingError> {
        let payload_len =
            usize::from(header[5]) << 16 | usize::from(header[6]) << 8 | usize::from(header[7]);
        if !is_reserved(header) {
            return Ok(Self::Frame {
                size: HEADER_LEN + payload_len,
            });
        }
        if header[4] != 0 || header[8..12] != [0; 4] {
            return Err(BindingError::NotZero);
        }
        let kind = Kind::from_code(header[3]);
        let max = match kind {
            Kind::Open => Some(MAX_OPEN_PAYLOAD),
            Kind::Close => Some(MAX_CLOSE_PAYLOAD),
            Kind::Other(_) => None,
        };
        if let Some(max) = max.filter(|max| payload_len > *max) {
            return Err(BindingError::PayloadLength {
                kind: kind.code(),
                len: payload_len,
                max,
            });
        }
        Ok(Self::Binding { kind, payload_len })
    }

    /// The bytes that follow the header.
    pub fn payload_len(&self) -> usize {
        match *self {
            Self::Frame { size } => size - HEADER_LEN,
            Self::Binding { payload_len, .. } => payload_len,
        }
    }
}

/// Whether `bytes` begin `AC 4D 00`: a binding message, which a link never sends as a frame
/// (`TCP-9`).
pub fn is_reserved(bytes: &[u8]) -> bool {
    bytes.len() >= 3 && bytes[..2] == MAGIC && bytes[2] == 0
}

/// Why a link refuses to send a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is empty.
    #[error("an empty frame cannot be sent")]
    Empty,
    /// The frame is larger than the link's maximum.
    #[error("frame of {len} bytes exceeds the link's maximum of {max} bytes")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The link's maximum.
        max: usize,
    },
    /// The frame is shorter than a header.
    #[error("a frame shorter than its 12-byte header")]
    NoHeader,
    /// The header's payload length is not the length of the bytes after it.
    #[error("frame header gives {declared} payload bytes but {actual} follow it")]
    LengthMismatch {
        /// What the header says.
        declared: usize,
        /// What follows.
        actual: usize,
    },
    /// The frame begins `AC 4D 00`, the prefix of the binding's own messages.
    #[error("a frame beginning AC 4D 00 (reserved for the binding's own messages)")]
    Reserved,
}

/// Checks that `frame` can travel on a stream whose frames are at most `max` bytes: not
/// empty, not too large, a header whose length delimits it exactly (`TCP-2`), and not a
/// binding message (`TCP-9`).
pub fn check_frame(frame: &[u8], max: usize) -> Result<(), FrameError> {
    check_frame_start(frame, frame.len(), max)
}

/// [`check_frame`] for a frame of `len` bytes of which only the first are at hand: `start`
/// holds at least its header, or all of it when it is shorter.
pub fn check_frame_start(start: &[u8], len: usize, max: usize) -> Result<(), FrameError> {
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    let Some(header) = start.first_chunk::<HEADER_LEN>() else {
        return Err(FrameError::NoHeader);
    };
    if is_reserved(start) {
        return Err(FrameError::Reserved);
    }
    let declared = Header::parse(header)
        .map(|header| header.payload_len())
        .unwrap_or_default();
    let actual = len - HEADER_LEN;
    if declared != actual {
        return Err(FrameError::LengthMismatch { declared, actual });
    }
    Ok(())
}

/// A binding message of `kind` carrying `payload`, which the callers keep under 2²⁴ bytes.
fn message(kind: Kind, payload: &[u8]) -> Bytes {
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .min(0x00FF_FFFF);
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_slice(&MAGIC);
    out.put_slice(&[0, kind.code(), 0]);
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_bytes(0, 4);
    out.put_slice(payload);
    out.freeze()
}

/// The OPEN message naming `device`.
pub fn open(device: &DeviceId) -> Bytes {
    message(Kind::Open, device.as_str().as_bytes())
}

/// The CLOSE message for `reason`, its message cut at a character boundary to at most
/// [`MAX_CLOSE_MESSAGE`] bytes.
pub fn close(reason: &CloseReason) -> Bytes {
    let mut end = reason.message.len().min(MAX_CLOSE_MESSAGE);
    while !reason.message.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(4 + end);
    payload.extend_from_slice(&reason.code.to_be_bytes());
    payload.extend_from_slice(&reason.message.as_bytes()[..end]);
    message(Kind::Close, &payload)
}

/// Reads an OPEN payload: the sender's device id.
pub fn parse_open(payload: &[u8]) -> Result<DeviceId, BindingError> {
    let id = std::str::from_utf8(payload).map_err(|_| BindingError::BadDeviceId)?;
    DeviceId::new(id).map_err(|_| BindingError::BadDeviceId)
}

/// Reads a CLOSE payload: the code and the message.
pub fn parse_close(payload: &[u8]) -> Result<CloseReason, BindingError> {
    let Some((code, message)) = payload.split_first_chunk::<4>() else {
        return Err(BindingError::BadClose("shorter than its code"));
    };
    if message.len() > MAX_CLOSE_MESSAGE {
        return Err(BindingError::BadClose("message over 1024 bytes"));
    }
    let message =
        std::str::from_utf8(message).map_err(|_| BindingError::BadClose("message not UTF-8"))?;
    Ok(CloseReason::new(u32::from_be_bytes(*code), message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bytes: &[u8]) -> [u8; HEADER_LEN] {
        bytes.try_into().unwrap()
    }

    #[test]
    fn a_frame_header_gives_the_frame_size_whatever_else_it_says() {
        let h = header(&[0xAC, 0x4D, 1, 7, 0, 0x01, 0x00, 0x00, 0, 0, 0, 9]);
        assert_eq!(Header::parse(&h), Ok(Header::Frame { size: 12 + 65536 }));
        // A bad magic is the layer above's business (FRAME-2): the length still delimits it.
        let h = header(&[0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4]);
        assert_eq!(
            Header::parse(&h),
            Ok(Header::Frame {
                size: LARGEST_FRAME
            })
        );
    }

    #[test]
    fn binding_headers_are_checked_against_their_kind() {
        let open = open(&DeviceId::new("tablet").unwrap());
        assert_eq!(
            Header::parse(&header(&open[..12])),
            Ok(Header::Binding {
                kind: Kind::Open,
                payload_len: 6
            })
        );
        let mut flagged = header(&open[..12]);
        flagged[4] = 1;
        assert_eq!(Header::parse(&flagged), Err(BindingError::NotZero));
        let long_open = header(&[0xAC, 0x4D, 0, 1, 0, 0, 0, 65, 0, 0, 0, 0]);
        assert!(matches!(
            Header::parse(&long_open),
            Err(BindingError::PayloadLength { len: 65, .. })
        ));
        let unknown = header(&[0xAC, 0x4D, 0, 0x7E, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(
            Header::parse(&unknown),
            Ok(Header::Binding {
                kind: Kind::Other(0x7E),
                payload_len: 256
            })
        );
    }

    #[test]
    fn close_round_trips_and_cuts_long_messages_at_a_character_boundary() {
        let reason = CloseReason::new(0xDEAD_BEEF, "fin");
        assert_eq!(parse_close(&close(&reason)[12..]), Ok(reason));
        let long = CloseReason::new(1, "é".repeat(1000));
        let got = parse_close(&close(&long)[12..]).unwrap();
        assert_eq!(got.message, "é".repeat(512));
        assert!(parse_close(&[0, 0, 1]).is_err());
        assert!(parse_close(&[0, 0, 0, 1, 0xFF]).is_err());
    }

    #[test]
    fn open_refuses_ids_that_are_not_device_ids() {
        assert_eq!(parse_open(b"phone").unwrap().as_str(), "phone");
        assert_eq!(parse_open(b""), Err(BindingError::BadDeviceId));
        assert_eq!(parse_open(b"a\nb"), Err(BindingError::BadDeviceId));
        assert_eq!(parse_open(&[0xC3]), Err(BindingError::BadDeviceId));
    }

    #[test]
    fn frames_to_send_must_be_delimited_by_their_header() {
        let good = [0xAC, 0x4D, 1, 0x80, 0, 0, 0, 2, 0, 0, 0, 1, 7, 7];
        assert_eq!(check_frame(&good, 14), Ok(()));
        assert_eq!(
            check_frame(&good, 13),
            Err(FrameError::TooLarge { len: 14, max: 13 })
        );
        assert_eq!(check_frame(&[], 100), Err(FrameError::Empty));
        assert_eq!(check_frame(&good[..11], 100), Err(FrameError::NoHeader));
        assert_eq!(
            check_frame(&good[..13], 100),
            Err(FrameError::LengthMismatch {
                declared: 2,
                actual: 1
            })
        );
        let open = open(&DeviceId::new("x").unwrap());
        assert_eq!(check_frame(&open, 100), Err(FrameError::Reserved));
    }
}
