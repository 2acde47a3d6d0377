//! Segmentation: acm frames over links whose messages are smaller than a frame (SPEC section
//! 16, rules `SEG-1` to `SEG-3`).
//!
//! A frame travels as one or more segments, in order, each one link message: a header byte
//! ([`MORE`] set on every segment but the frame's last, the other bits zero) and then at least
//! one byte of the frame. [`segments`] cuts a frame; a [`Desegmenter`] puts frames back
//! together, holding at most its limit of bytes.
//!
//! ```
//! use acm_wire::segment::{Desegmenter, segments};
//! use bytes::Bytes;
//!
//! let frame = Bytes::from(vec![7u8; 600]);
//! let mut rebuilt = Desegmenter::new(65_535);
//! let mut frames = Vec::new();
//! for segment in segments(&frame, 244) {
//!     assert!(segment.len() <= 244);
//!     frames.extend(rebuilt.push(segment).unwrap());
//! }
//! assert_eq!(frames, [frame]);
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// The bytes a segment adds to the frame bytes it carries.
pub const SEGMENT_HEADER_LEN: usize = 1;

/// Header bit 0: more segments of this frame follow this one.
pub const MORE: u8 = 0x01;

/// The header bits this version defines; the others are reserved and zero.
const DEFINED: u8 = MORE;

/// A segment that breaks `SEG-2` or a frame that breaks `SEG-3`: the receiver fails the link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// A link message with no header byte.
    #[error("an empty link message is not a segment")]
    Empty,
    /// A header with reserved bits set.
    #[error("segment header {header:#04x} has reserved bits set")]
    ReservedBits {
        /// The header byte.
        header: u8,
    },
    /// A header with no frame bytes after it.
    #[error("a segment carries no frame bytes")]
    NoData,
    /// The frame being rebuilt would exceed the receiver's limit.
    #[error("a segmented frame of more than {max} bytes (at least {len})")]
    TooLarge {
        /// The frame's length so far, with this segment.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
}

impl SegmentError {
    /// The SPEC.md rule this error enforces.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Empty | Self::ReservedBits { .. } | Self::NoData => "SEG-2",
            Self::TooLarge { .. } => "SEG-3",
        }
    }
}

/// The frame bytes one segment holds when link messages hold `max_message` bytes: 0 when a
/// segment cannot hold any.
pub fn segment_room(max_message: usize) -> usize {
    max_message.saturating_sub(SEGMENT_HEADER_LEN)
}

/// Cuts `frame` into segments of at most `max_message` bytes, each as full as it can be but the
/// last (`SEG-1`, `SEG-2`). Yields nothing for an empty frame or when `max_message` leaves no
/// room for frame bytes.
pub fn segments(frame: &Bytes, max_message: usize) -> impl Iterator<Item = Bytes> + '_ {
    let room = segment_room(max_message);
    let chunks = if room == 0 {
        [].chunks(1)
    } else {
        frame.chunks(room)
    };
    let last = frame.len().checked_sub(1).and_then(|i| i.checked_div(room));
    chunks.enumerate().map(move |(i, chunk)| {
        let mut segment = BytesMut::with_capacity(SEGMENT_HEADER_LEN.saturating_add(chunk.len()));
        segment.put_u8(if Some(i) == last { 0 } else { MORE });
        segment.put_slice(chunk);
        segment.freeze()
    })
}

/// Reads a segment's header: the frame bytes it carries and whether more follow.
pub fn parse_segment(segment: &Bytes) -> Result<(Bytes, bool), SegmentError> {
    let (&header, data) = segment.split_first().ok_or(SegmentError::Empty)?;
    if header & !DEFINED != 0 {
        return Err(SegmentError::ReservedBits { header });
    }
    if data.is_empty() {
        return Err(SegmentError::NoData);
    }
    Ok((segment.slice(SEGMENT_HEADER_LEN..), header & MORE != 0))
}

/// Puts segmented frames back together (`SEG-3`): it holds the frame being rebuilt, never more
/// than its limit of bytes, and hands out each frame whole.
#[derive(Debug)]
pub struct Desegmenter {
    max_frame: usize,
    partial: BytesMut,
}

impl Desegmenter {
    /// A desegmenter for frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self {
            max_frame,
            partial: BytesMut::new(),
        }
    }

    /// The largest frame it rebuilds.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// The bytes of a frame received in part and held.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Takes the next segment: a whole frame when this segment ends one. On an error the partial
    /// frame is dropped; the link is to be failed.
    pub fn push(&mut self, segment: Bytes) -> Result<Option<Bytes>, SegmentError> {
        let result = self.take(segment);
        if result.is_err() {
            self.partial = BytesMut::new();
        }
        result
    }

    fn take(&mut self, segment: Bytes) -> Result<Option<Bytes>, SegmentError> {
        let (data, more) = parse_segment(&segment)?;
        let len = self.partial.len().saturating_add(data.len());
        if len > self.max_frame {
            return Err(SegmentError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if !more && self.partial.is_empty() {
            // A frame in one segment: no copy.
            return Ok(Some(data));
        }
        if self.partial.is_empty() {
            // Room for the whole frame at once would be a guess the peer controls: grow as
            // segments come, up to the limit.
            self.partial
                .reserve(data.len().saturating_mul(4).min(self.max_frame));
        }
        self.partial.put_slice(&data);
        if more {
            Ok(None)
        } else {
            Ok(Some(std::mem::take(&mut self.partial).freeze()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(len: usize) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(3))
            .collect::<Vec<_>>()
            .into()
    }

    #[test]
    fn seg_1_a_frame_is_cut_into_full_segments_and_rebuilt_whole() {
        for (len, max) in [(1, 2), (243, 244), (244, 244), (65_535, 244), (1000, 29)] {
            let frame = bytes(len);
            let cut: Vec<Bytes> = segments(&frame, max).collect();
            assert_eq!(cut.len(), len.div_ceil(max - 1), "{len} at {max}");
            for (i, segment) in cut.iter().enumerate() {
                assert!(segment.len() <= max);
                let last = i + 1 == cut.len();
                assert_eq!(segment[0], if last { 0 } else { MORE });
                if !last {
                    assert_eq!(segment.len(), max, "only the last segment is short");
                }
            }
            let mut rebuilt = Desegmenter::new(65_535);
            let frames: Vec<Bytes> = cut
                .into_iter()
                .filter_map(|s| rebuilt.push(s).unwrap())
                .collect();
            assert_eq!(frames, [frame]);
            assert_eq!(rebuilt.buffered(), 0);
        }
    }

    #[test]
    fn seg_1_nothing_comes_of_an_empty_frame_or_a_link_without_room() {
        assert_eq!(segments(&Bytes::new(), 244).count(), 0);
        assert_eq!(segments(&bytes(10), 1).count(), 0);
        assert_eq!(segments(&bytes(10), 0).count(), 0);
        assert_eq!(segment_room(1), 0);
        assert_eq!(segment_room(244), 243);
    }

    #[test]
    fn seg_2_empty_messages_reserved_bits_and_empty_segments_are_errors() {
        let mut d = Desegmenter::new(100);
        assert_eq!(d.push(Bytes::new()), Err(SegmentError::Empty));
        assert_eq!(
            d.push(Bytes::from_static(&[0x02, 1])),
            Err(SegmentError::ReservedBits { header: 0x02 })
        );
        assert_eq!(
            d.push(Bytes::from_static(&[0x80, 1])),
            Err(SegmentError::ReservedBits { header: 0x80 })
        );
        assert_eq!(
            d.push(Bytes::from_static(&[MORE])),
            Err(SegmentError::NoData)
        );
        assert_eq!(d.push(Bytes::from_static(&[0])), Err(SegmentError::NoData));
        for err in [
            SegmentError::Empty,
            SegmentError::ReservedBits { header: 2 },
            SegmentError::NoData,
        ] {
            assert_eq!(err.rule(), "SEG-2");
        }
    }

    #[test]
    fn seg_3_a_frame_over_the_limit_is_refused_before_it_is_held() {
        let mut d = Desegmenter::new(10);
        assert_eq!(
            d.push(Bytes::from_static(&[MORE, 1, 2, 3, 4, 5, 6])),
            Ok(None)
        );
        assert_eq!(d.buffered(), 6);
        let err = d
            .push(Bytes::from_static(&[0, 7, 8, 9, 10, 11]))
            .unwrap_err();
        assert_eq!(err, SegmentError::TooLarge { len: 11, max: 10 });
        assert_eq!(err.rule(), "SEG-3");
        assert_eq!(d.buffered(), 0, "the partial frame is dropped");
        assert!(d.partial.capacity() <= 10);
        // One segment alone over the limit.
        assert!(matches!(
            d.push(Bytes::from(vec![0u8; 12])),
            Err(SegmentError::TooLarge { len: 11, max: 10 })
        ));
        // Exactly the limit is fine.
        let frame = bytes(10);
        let got: Vec<_> = segments(&frame, 4)
            .filter_map(|s| d.push(s).unwrap())
            .collect();
        assert_eq!(got, [frame]);
    }

    #[test]
    fn seg_2_an_error_drops_the_partial_frame_and_the_next_frame_starts_clean() {
        let mut d = Desegmenter::new(100);
        assert_eq!(d.push(Bytes::from_static(&[MORE, 1, 2])), Ok(None));
        assert!(d.push(Bytes::from_static(&[0x40, 3])).is_err());
        assert_eq!(d.buffered(), 0);
        assert_eq!(
            d.push(Bytes::from_static(&[0, 9])),
            Ok(Some(Bytes::from_static(&[9])))
        );
    }

    #[test]
    fn a_frame_in_one_segment_is_not_copied() {
        let segment = Bytes::from(vec![0u8, 1, 2, 3]);
        let mut d = Desegmenter::new(100);
        let frame = d.push(segment.clone()).unwrap().unwrap();
        assert_eq!(frame.as_ptr(), segment[1..].as_ptr());
    }
}
