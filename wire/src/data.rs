//! DATA frames: the fixed binary data header and the fragmenter (SPEC section 6).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                      transfer id (32 bits)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    fragment index (32 bits)                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            total length (64 bits, FIRST fragments only)       |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  data bytes (to the end of the frame)         |
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{EncodeError, ReassemblyError};
use crate::frame::{Frame, FrameKind, type_code};
use crate::header::{FLAG_FIRST, FLAG_LAST, FrameHeader, HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::limits::MAX_FRAME_SIZE;
use crate::pb::FrameType;

/// The length of the data header of a fragment that is not the first.
pub const DATA_HEADER_LEN: usize = 8;

/// The length of the data header of a FIRST fragment, which adds the total length.
pub const FIRST_DATA_HEADER_LEN: usize = 16;

/// One DATA frame, parsed. The chunk shares the frame's buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataFragment {
    /// The session's channel.
    pub channel: u32,
    /// The transfer the fragment belongs to.
    pub transfer_id: u32,
    /// The fragment's place in its transfer, from 0.
    pub index: u32,
    /// The transfer's whole length: `Some` exactly on FIRST fragments.
    pub total_length: Option<u64>,
    /// Whether this is the transfer's last fragment.
    pub last: bool,
    /// The data bytes the fragment carries.
    pub chunk: Bytes,
}

impl DataFragment {
    /// Parses the payload of a DATA frame (the caller has checked the frame's type).
    pub fn parse(frame: &Frame) -> Result<Self, ReassemblyError> {
        Self::from_parts(frame.channel, frame.flags, frame.payload.clone())
    }

    /// Like [`DataFragment::parse`], taking the frame: the chunk is then the only reference to
    /// the frame's buffer when the frame was, which lets the [`crate::Reassembler`] keep it
    /// without copying.
    pub fn from_frame(frame: Frame) -> Result<Self, ReassemblyError> {
        Self::from_parts(frame.channel, frame.flags, frame.payload)
    }

    /// The fragment of a DATA frame that arrived in two parts, from the frame that
    /// [`Frame::decode_data_headers`] made of the first and `chunk`, the second: the chunk is
    /// taken as it is.
    pub fn from_split_frame(frame: Frame, chunk: Bytes) -> Result<Self, ReassemblyError> {
        let mut fragment = Self::from_frame(frame)?;
        if fragment.chunk.is_empty() {
            fragment.chunk = chunk;
        } else if !chunk.is_empty() {
            let mut joined =
                BytesMut::with_capacity(fragment.chunk.len().saturating_add(chunk.len()));
            joined.extend_from_slice(&fragment.chunk);
            joined.extend_from_slice(&chunk);
            fragment.chunk = joined.freeze();
        }
        Ok(fragment)
    }

    fn from_parts(channel: u32, flags: u8, mut payload: Bytes) -> Result<Self, ReassemblyError> {
        let first = flags & FLAG_FIRST != 0;
        let needed = if first {
            FIRST_DATA_HEADER_LEN
        } else {
            DATA_HEADER_LEN
        };
        let short = || ReassemblyError::ShortHeader {
            channel,
            len: payload.len(),
            needed,
        };
        let head = payload.get(..needed).ok_or_else(short)?;
        let (ids, rest) = head
            .split_first_chunk::<DATA_HEADER_LEN>()
            .ok_or_else(short)?;
        let [t0, t1, t2, t3, i0, i1, i2, i3] = *ids;
        let total_length = match rest.first_chunk::<8>() {
            Some(total) if first => Some(u64::from_be_bytes(*total)),
            _ => None,
        };
        let (transfer_id, index) = (
            u32::from_be_bytes([t0, t1, t2, t3]),
            u32::from_be_bytes([i0, i1, i2, i3]),
        );
        payload.advance(needed);
        Ok(Self {
            channel,
            transfer_id,
            index,
            total_length,
            last: flags & FLAG_LAST != 0,
            chunk: payload,
        })
    }

    /// The header flags of the frame carrying this fragment.
    pub fn flags(&self) -> u8 {
        let first = if self.total_length.is_some() {
            FLAG_FIRST
        } else {
            0
        };
        let last = if self.last { FLAG_LAST } else { 0 };
        first | last
    }

    fn data_header_len(&self) -> usize {
        if self.total_length.is_some() {
            FIRST_DATA_HEADER_LEN
        } else {
            DATA_HEADER_LEN
        }
    }

    /// Appends the whole encoded frame (frame header, data header, chunk) to `dst`.
    pub fn encode(&self, version: u8, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.reserve(self.data_header_len().saturating_add(self.chunk.len()));
        self.encode_headers(version, dst)?;
        dst.put_slice(&self.chunk);
        Ok(())
    }

    /// Appends the frame header and the data header to `dst`, as [`DataFragment::encode`]
    /// does, but not the chunk: the frame is these bytes followed by the chunk's.
    pub fn encode_headers(&self, version: u8, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let payload_len = self.data_header_len().saturating_add(self.chunk.len());
        let length = u32::try_from(payload_len)
            .ok()
            .filter(|len| *len <= MAX_PAYLOAD_LEN)
            .ok_or(EncodeError::TooLarge {
                len: (payload_len as u64).saturating_add(HEADER_LEN as u64),
                max: u64::from(MAX_FRAME_SIZE),
            })?;
        let header = FrameHeader {
            version,
            frame_type: type_code(FrameType::Data),
            flags: self.flags(),
            length,
            channel: self.channel,
        };
        dst.reserve(HEADER_LEN.saturating_add(self.data_header_len()));
        header.put(dst);
        dst.put_u32(self.transfer_id);
        dst.put_u32(self.index);
        if let Some(total) = self.total_length {
            dst.put_u64(total);
        }
        Ok(())
    }

    /// The frame carrying this fragment.
    pub fn to_frame(&self, version: u8) -> Result<Frame, EncodeError> {
        let mut payload = BytesMut::new();
        self.encode(version, &mut payload)?;
        let payload = payload.freeze().slice(HEADER_LEN..);
        Ok(Frame {
            version,
            kind: FrameKind::Known(FrameType::Data),
            flags: self.flags(),
            channel: self.channel,
            payload,
        })
    }
}

/// Cuts one transfer into encoded DATA frames that each fit `max_frame_size`, ready to send.
///
/// As an iterator it builds each frame in one buffer with its headers, so every data byte is
/// copied once, into the frame; [`Fragmenter::next_parts`] gives each frame as its headers and
/// a slice of the data instead, copying no data byte. A transfer of 0 bytes is one fragment that
/// is both FIRST and LAST.
///
/// ```
/// use acm_wire::{Fragmenter, Reassembler, Limits, Frame, DataFragment};
/// use bytes::Bytes;
///
/// let data = Bytes::from(vec![7u8; 1000]);
/// let frames: Vec<Bytes> = Fragmenter::new(1, 3, 1, data.clone(), 244).unwrap().collect();
/// assert_eq!(frames.len(), 5);
///
/// let mut reassembler = Reassembler::new(Limits::default());
/// let mut delivered = None;
/// for bytes in frames {
///     assert!(bytes.len() <= 244);
///     let frame = Frame::decode_exact(bytes, 244, Some(1)).unwrap();
///     delivered = reassembler.push(DataFragment::parse(&frame).unwrap()).unwrap();
/// }
/// assert_eq!(delivered, Some(data));
/// ```
#[derive(Debug, Clone)]
pub struct Fragmenter {
    version: u8,
    channel: u32,
    transfer_id: u32,
    data: Bytes,
    total: u64,
    next_index: u32,
    room_first: usize,
    room: usize,
    done: bool,
}

impl Fragmenter {
    /// Prepares to send `data` as transfer `transfer_id` on `channel`, in frames of at most
    /// `max_frame_size` bytes (the peer's announced maximum, capped by the link's).
    pub fn new(
        version: u8,
        channel: u32,
        transfer_id: u32,
        data: Bytes,
        max_frame_size: u32,
    ) -> Result<Self, EncodeError> {
        let frame = max_frame_size.min(MAX_FRAME_SIZE) as usize;
        let room_first = frame.saturating_sub(HEADER_LEN + FIRST_DATA_HEADER_LEN);
        let room = frame.saturating_sub(HEADER_LEN + DATA_HEADER_LEN);
        if room_first == 0 {
            return Err(EncodeError::FrameSizeTooSmall(max_frame_size));
        }
        let later = data.len().saturating_sub(room_first);
        let fragments = 1usize.saturating_add(later.div_ceil(room));
        if u32::try_from(fragments).is_err() {
            return Err(EncodeError::TooLarge {
                len: data.len() as u64,
                max: u64::from(u32::MAX).saturating_mul(room as u64),
            });
        }
        Ok(Self {
            version,
            channel,
            transfer_id,
            total: data.len() as u64,
            data,
            next_index: 0,
            room_first,
            room,
            done: false,
        })
    }

    /// The transfer's whole length in bytes.
    pub fn total_len(&self) -> u64 {
        self.total
    }

    /// The bytes of the transfer handed out in fragments so far.
    pub fn sent_len(&self) -> u64 {
        self.total.saturating_sub(self.data.len() as u64)
    }

    /// How many frames are still to come.
    pub fn remaining_frames(&self) -> usize {
        if self.done {
            return 0;
        }
        if self.next_index == 0 {
            let later = self.data.len().saturating_sub(self.room_first);
            return 1usize.saturating_add(later.div_ceil(self.room));
        }
        self.data.len().div_ceil(self.room)
    }

    /// The next fragment, parsed rather than encoded.
    pub fn next_fragment(&mut self) -> Option<DataFragment> {
        if self.done {
            return None;
        }
        let first = self.next_index == 0;
        let room = if first { self.room_first } else { self.room };
        let take = room.min(self.data.len());
        let chunk = self.data.split_to(take);
        let last = self.data.is_empty();
        let fragment = DataFragment {
            channel: self.channel,
            transfer_id: self.transfer_id,
            index: self.next_index,
            total_length: first.then_some(self.total),
            last,
            chunk,
        };
        self.done = last;
        // Cannot overflow: `new` checked that the fragment count fits in u32.
        self.next_index = self.next_index.saturating_add(1);
        Some(fragment)
    }

    /// The next frame as two parts that make it when sent back to back: its frame and data
    /// headers in a buffer of their own, then its chunk of the data, which shares the data's
    /// buffer.
    ///
    /// ```
    /// use acm_wire::Fragmenter;
    /// use bytes::Bytes;
    ///
    /// let data = Bytes::from(vec![7u8; 1000]);
    /// let mut parts = Fragmenter::new(1, 3, 1, data.clone(), 244).unwrap();
    /// let whole: Vec<Bytes> = Fragmenter::new(1, 3, 1, data, 244).unwrap().collect();
    /// for frame in whole {
    ///     let (headers, chunk) = parts.next_parts().unwrap();
    ///     assert_eq!([&headers[..], &chunk[..]].concat(), frame);
    /// }
    /// assert!(parts.next_parts().is_none());
    /// ```
    pub fn next_parts(&mut self) -> Option<(Bytes, Bytes)> {
        let fragment = self.next_fragment()?;
        let mut headers = BytesMut::new();
        // Cannot fail: every fragment fits the frame size checked in `new`.
        fragment.encode_headers(self.version, &mut headers).ok()?;
        Some((headers.freeze(), fragment.chunk))
    }
}

impl Iterator for Fragmenter {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let fragment = self.next_fragment()?;
        let mut frame = BytesMut::new();
        // Cannot fail: every fragment fits the frame size checked in `new`.
        fragment.encode(self.version, &mut frame).ok()?;
        Some(frame.freeze())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining_frames();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Fragmenter {}
