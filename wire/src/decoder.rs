//! The incremental stream decoder, for byte-stream links (SPEC section 3.6).

use bytes::{Buf, BytesMut};

use crate::error::FrameError;
use crate::frame::{Frame, check_header};
use crate::header::{FrameHeader, HEADER_LEN};

/// Cuts frames out of a byte stream, in the style of tokio-util's `Decoder`: feed it the bytes
/// received so far and it returns `Ok(Some(frame))` for each whole frame, `Ok(None)` when it
/// needs more bytes, and an error for a frame that breaks a rule.
///
/// The header is checked as soon as its 12 bytes are there, so an oversized length is refused
/// before any byte of its payload is awaited or buffer space reserved for it. Payloads are split
/// off the buffer without copying.
///
/// After an error the stream cannot be trusted: every later call returns the same error, and the
/// caller closes the link with [`FrameError::close_reason`].
///
/// ```
/// use acm_wire::{Frame, FrameDecoder, pb::FrameType};
/// use bytes::{Bytes, BytesMut};
///
/// let ping = Frame::new(1, FrameType::Ping, 0, Bytes::from_static(&[8, 7]));
/// let wire = ping.to_bytes().unwrap();
///
/// let mut decoder = FrameDecoder::new(65_535);
/// let mut buf = BytesMut::new();
/// buf.extend_from_slice(&wire[..5]);
/// assert_eq!(decoder.decode(&mut buf), Ok(None)); // half a header: wait for more
/// buf.extend_from_slice(&wire[5..]);
/// assert_eq!(decoder.decode(&mut buf), Ok(Some(ping)));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_size: u32,
    negotiated: Option<u8>,
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder that accepts frames of up to `max_frame_size` bytes, header included.
    pub fn new(max_frame_size: u32) -> Self {
        Self {
            max_frame_size,
            negotiated: None,
            failed: None,
        }
    }

    /// Sets the link's negotiated version; from then on every frame other than HELLO and
    /// LINK_CLOSE must carry it (SPEC `FRAME-3`).
    pub fn set_negotiated_version(&mut self, version: u8) {
        self.negotiated = Some(version);
    }

    /// The largest frame accepted.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size
    }

    /// Decodes the next frame from the front of `src`, removing its bytes.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if src.len() < HEADER_LEN {
            return Ok(None);
        }
        let checked = FrameHeader::parse(src).and_then(|header| {
            check_header(&header, self.max_frame_size, self.negotiated).map(|kind| (header, kind))
        });
        let (header, kind) = match checked {
            Ok(parts) => parts,
            Err(err) => {
                self.failed = Some(err.clone());
                return Err(err);
            }
        };
        let frame_len = header.frame_len();
        if src.len() < frame_len {
            // Bounded by max_frame_size, which check_header enforced above.
            src.reserve(frame_len.saturating_sub(src.len()));
            return Ok(None);
        }
        // The header is dropped where it lies; the payload is split off without copying.
        src.advance(HEADER_LEN);
        let payload = src.split_to(frame_len.saturating_sub(HEADER_LEN)).freeze();
        Ok(Some(Frame::from_parts(&header, kind, payload)))
    }

    /// Like [`FrameDecoder::decode`], at the end of the stream: leftover bytes that do not make a
    /// whole frame are an error ([`FrameError::Incomplete`] for a partial header,
    /// [`FrameError::LengthMismatch`] for a partial payload).
    pub fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None if src.len() < HEADER_LEN => Err(FrameError::Incomplete { have: src.len() }),
            None => Err(FrameError::LengthMismatch {
                expected: FrameHeader::parse(src)
                    .map(|h| h.frame_len() as u64)
                    .unwrap_or(0),
                got: src.len(),
            }),
        }
    }
}
