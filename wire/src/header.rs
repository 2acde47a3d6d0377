//! The fixed 12-byte frame header (SPEC section 3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  magic = 0xAC |  magic = 0x4D |    version    |     type      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     flags     |           payload length (24 bits)            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      channel id (32 bits)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! All fields are big-endian. The header layout is the same in every protocol version.

use bytes::BufMut;

use crate::error::FrameError;

/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = [0xAC, 0x4D];

/// The length of the frame header in bytes.
pub const HEADER_LEN: usize = 12;

/// The largest payload the 24-bit length field can describe.
pub const MAX_PAYLOAD_LEN: u32 = 0x00FF_FFFF;

/// Flag of DATA frames: the first fragment of a transfer (SPEC `DATA-2`).
pub const FLAG_FIRST: u8 = 0x01;

/// Flag of DATA frames: the last fragment of a transfer (SPEC `DATA-5`).
pub const FLAG_LAST: u8 = 0x02;

/// Flag of session control frames (CONNECT_REQUEST, CONNECT_RESPONSE, MESSAGE, DISCONNECT,
/// COLLABORATE_EVENT): the body continues in the next frame (SPEC `FRAME-10`).
pub const FLAG_MORE: u8 = 0x01;

/// A parsed frame header. Parsing checks only the magic; what the other fields may hold is
/// checked by [`crate::FrameDecoder`] and [`crate::Frame::decode_exact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameHeader {
    /// The protocol version the frame is written in.
    pub version: u8,
    /// The frame type code (see [`crate::pb::FrameType`]).
    pub frame_type: u8,
    /// Flags; which bits are defined depends on the frame type.
    pub flags: u8,
    /// The payload length in bytes, at most [`MAX_PAYLOAD_LEN`].
    pub length: u32,
    /// The channel: 0 for link frames, a session's channel otherwise.
    pub channel: u32,
}

impl FrameHeader {
    /// Parses the first [`HEADER_LEN`] bytes of `src`. Fails with
    /// [`FrameError::Incomplete`] if `src` is shorter and with [`FrameError::BadMagic`] if the
    /// magic is wrong.
    pub fn parse(src: &[u8]) -> Result<Self, FrameError> {
        let Some(head) = src.first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Incomplete { have: src.len() });
        };
        let [
            m0,
            m1,
            version,
            frame_type,
            flags,
            l0,
            l1,
            l2,
            c0,
            c1,
            c2,
            c3,
        ] = *head;
        if [m0, m1] != MAGIC {
            return Err(FrameError::BadMagic([m0, m1]));
        }
        Ok(Self {
            version,
            frame_type,
            flags,
            length: u32::from_be_bytes([0, l0, l1, l2]),
            channel: u32::from_be_bytes([c0, c1, c2, c3]),
        })
    }

    /// The header's bytes. The length field keeps only the low 24 bits; callers check
    /// `length <= MAX_PAYLOAD_LEN` first (the encoder does).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let [_, l0, l1, l2] = self.length.to_be_bytes();
        let [c0, c1, c2, c3] = self.channel.to_be_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            self.version,
            self.frame_type,
            self.flags,
            l0,
            l1,
            l2,
            c0,
            c1,
            c2,
            c3,
        ]
    }

    /// Appends the header's bytes to `dst`.
    pub fn put(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self.to_bytes());
    }

    /// The whole frame's length: header and payload.
    pub fn frame_len(&self) -> usize {
        // A u32 payload length always fits beside the header in usize on 32- and 64-bit targets.
        HEADER_LEN.saturating_add(self.length as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_are_big_endian_in_the_drawn_order() {
        let header = FrameHeader {
            version: 1,
            frame_type: 8,
            flags: FLAG_FIRST | FLAG_LAST,
            length: 0x01_0203,
            channel: 0x0A0B_0C0D,
        };
        assert_eq!(
            header.to_bytes(),
            [
                0xAC, 0x4D, 1, 8, 3, 0x01, 0x02, 0x03, 0x0A, 0x0B, 0x0C, 0x0D
            ]
        );
        assert_eq!(FrameHeader::parse(&header.to_bytes()), Ok(header));
    }

    #[test]
    fn parse_needs_twelve_bytes() {
        assert_eq!(
            FrameHeader::parse(&[0xAC, 0x4D, 1]),
            Err(FrameError::Incomplete { have: 3 })
        );
    }
}
