//! A whole frame: header fields and payload, the header rules every receiver checks, and the
//! encoder.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{EncodeError, FrameError};
use crate::header::{FLAG_FIRST, FLAG_LAST, FLAG_MORE, FrameHeader, HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::pb::FrameType;

/// The first extension frame type code: codes from here to 0xFF may be ignored (SPEC `FRAME-7`).
pub const FIRST_EXTENSION_TYPE: u8 = 0x80;

/// What a frame's type code means to this implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// A type this version defines.
    Known(FrameType),
    /// An extension type (0x80..=0xFF) this version does not define; the receiver ignores the
    /// frame (SPEC `FRAME-7`).
    Extension(u8),
}

impl FrameKind {
    /// Classifies a type code, or says which rule it breaks.
    pub fn from_code(code: u8) -> Result<Self, FrameError> {
        if code == 0 {
            return Err(FrameError::TypeZero);
        }
        match FrameType::try_from(i32::from(code)) {
            Ok(known) => Ok(Self::Known(known)),
            Err(_) if code >= FIRST_EXTENSION_TYPE => Ok(Self::Extension(code)),
            Err(_) => Err(FrameError::UnknownCriticalType(code)),
        }
    }
}

/// Whether a frame type belongs to the link (channel 0) or to a session (channel > 0).
pub fn is_link_frame(frame_type: FrameType) -> bool {
    matches!(
        frame_type,
        FrameType::Hello | FrameType::LinkClose | FrameType::Ping | FrameType::Pong
    )
}

/// The flag bits a frame type defines; every other bit is reserved (SPEC `FRAME-4`).
pub fn defined_flags(frame_type: FrameType) -> u8 {
    match frame_type {
        FrameType::Data => FLAG_FIRST | FLAG_LAST,
        FrameType::ConnectRequest
        | FrameType::ConnectResponse
        | FrameType::Message
        | FrameType::Disconnect
        | FrameType::CollaborateEvent => FLAG_MORE,
        FrameType::Unspecified
        | FrameType::Hello
        | FrameType::LinkClose
        | FrameType::Ping
        | FrameType::Pong => 0,
    }
}

/// The type code of a known frame type.
pub fn type_code(frame_type: FrameType) -> u8 {
    // Every FrameType value is below 0x80 by construction of the proto file; a value that were
    // not would be caught by the round-trip tests.
    u8::try_from(i32::from(frame_type)).unwrap_or(0)
}

/// Checks a parsed header against the rules of SPEC section 3.5, in this order: size, version
/// zero, type, negotiated version, flags, channel.
///
/// `negotiated` is the link's version once HELLOs have been exchanged; before that, any
/// non-zero version passes here and the link layer decides (SPEC `LINK-2`).
pub fn check_header(
    header: &FrameHeader,
    max_frame_size: u32,
    negotiated: Option<u8>,
) -> Result<FrameKind, FrameError> {
    let len = u64::from(header.length).saturating_add(HEADER_LEN as u64);
    if len > u64::from(max_frame_size) {
        return Err(FrameError::TooLarge {
            len,
            max: max_frame_size,
        });
    }
    if header.version == 0 {
        return Err(FrameError::VersionZero);
    }
    let kind = FrameKind::from_code(header.frame_type)?;
    // Extension frames too must carry the negotiated version; only HELLO and LINK_CLOSE may not.
    if let Some(negotiated) = negotiated
        && header.version != negotiated
        && !matches!(
            kind,
            FrameKind::Known(FrameType::Hello | FrameType::LinkClose)
        )
    {
        return Err(FrameError::VersionMismatch {
            got: header.version,
            negotiated,
        });
    }
    let FrameKind::Known(frame_type) = kind else {
        return Ok(kind);
    };
    let reserved = header.flags & !defined_flags(frame_type);
    if reserved != 0 {
        return Err(FrameError::ReservedFlags {
            frame_type: header.frame_type,
            flags: reserved,
        });
    }
    if is_link_frame(frame_type) != (header.channel == 0) {
        return Err(FrameError::BadChannel {
            frame_type: header.frame_type,
            channel: header.channel,
        });
    }
    Ok(kind)
}

/// A decoded frame. The payload shares the receive buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The protocol version the frame is written in.
    pub version: u8,
    /// The frame's type.
    pub kind: FrameKind,
    /// The header flags.
    pub flags: u8,
    /// The channel.
    pub channel: u32,
    /// The payload: a control body, a data fragment, or an extension's bytes.
    pub payload: Bytes,
}

impl Frame {
    /// A frame of a known type.
    pub fn new(version: u8, frame_type: FrameType, channel: u32, payload: Bytes) -> Self {
        Self {
            version,
            kind: FrameKind::Known(frame_type),
            flags: 0,
            channel,
            payload,
        }
    }

    /// The type code.
    pub fn type_code(&self) -> u8 {
        match self.kind {
            FrameKind::Known(frame_type) => type_code(frame_type),
            FrameKind::Extension(code) => code,
        }
    }

    /// The header this frame is sent with. Its length is the payload's, which
    /// [`Frame::encode`] checks against [`MAX_PAYLOAD_LEN`].
    pub fn header(&self) -> FrameHeader {
        FrameHeader {
            version: self.version,
            frame_type: self.type_code(),
            flags: self.flags,
            length: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
            channel: self.channel,
        }
    }

    /// The encoded length: header and payload.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload.len())
    }

    /// Appends the encoded frame to `dst`. Fails if the payload is longer than
    /// [`MAX_PAYLOAD_LEN`].
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if self.payload.len() > MAX_PAYLOAD_LEN as usize {
            return Err(EncodeError::TooLarge {
                len: self.encoded_len() as u64,
                max: u64::from(crate::limits::MAX_FRAME_SIZE),
            });
        }
        dst.reserve(self.encoded_len());
        self.header().put(dst);
        dst.put_slice(&self.payload);
        Ok(())
    }

    /// The encoded frame as one buffer, ready for a link that carries one frame per message.
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut dst)?;
        Ok(dst.freeze())
    }

    /// Decodes one link message that must hold exactly one frame (SPEC `FRAME-9`), checking the
    /// header as [`check_header`] does. The payload is a slice of `message` (no copy).
    pub fn decode_exact(
        message: Bytes,
        max_frame_size: u32,
        negotiated: Option<u8>,
    ) -> Result<Self, FrameError> {
        let header = FrameHeader::parse(&message)?;
        let kind = check_header(&header, max_frame_size, negotiated)?;
        let expected = header.frame_len();
        if message.len() != expected {
            return Err(FrameError::LengthMismatch {
                expected: expected as u64,
                got: message.len(),
            });
        }
        // Moved past the header rather than sliced: a slice of a buffer that has one owner
        // makes it shared, which costs an allocation.
        let mut payload = message;
        payload.advance(HEADER_LEN);
        Ok(Self::from_parts(&header, kind, payload))
    }

    /// For a DATA frame that arrived in two parts, `head` holding exactly its frame header and
    /// data header and the other part its `chunk_len` data bytes: the frame, checked as
    /// [`Frame::decode_exact`] checks the whole, with a payload of the data header only. The
    /// data bytes stay where they are, to become the fragment's chunk without a copy (see
    /// [`DataFragment::from_split_frame`](crate::DataFragment::from_split_frame)).
    ///
    /// `None` when the parts are split otherwise, the frame is not DATA, or anything in the
    /// header is wrong: the caller then joins the parts and decodes the whole, which reports
    /// what is wrong.
    pub fn decode_data_headers(
        head: &Bytes,
        chunk_len: usize,
        max_frame_size: u32,
        negotiated: Option<u8>,
    ) -> Option<Self> {
        let header = FrameHeader::parse(head).ok()?;
        let kind = check_header(&header, max_frame_size, negotiated).ok()?;
        if kind != FrameKind::Known(FrameType::Data) {
            return None;
        }
        let data_header = if header.flags & FLAG_FIRST != 0 {
            crate::data::FIRST_DATA_HEADER_LEN
        } else {
            crate::data::DATA_HEADER_LEN
        };
        let exact = head.len() == HEADER_LEN.saturating_add(data_header)
            && header.frame_len() == head.len().saturating_add(chunk_len);
        exact.then(|| Self::from_parts(&header, kind, head.slice(HEADER_LEN..)))
    }

    pub(crate) fn from_parts(header: &FrameHeader, kind: FrameKind, payload: Bytes) -> Self {
        Self {
            version: header.version,
            kind,
            flags: header.flags,
            channel: header.channel,
            payload,
        }
    }
}
