//! The segments target: arbitrary link messages and cut frames into a [`Desegmenter`], checked
//! against a model of SPEC section 16.

use bytes::Bytes;

use crate::Input;
use acm_wire::segment::{
    Desegmenter, MORE, SEGMENT_HEADER_LEN, SegmentError, parse_segment, segment_room, segments,
};

/// Operation codes: the low two bits of an operation's byte.
pub(super) const OP_RAW: u8 = 0;
pub(super) const OP_FRAME: u8 = 1;
pub(super) const OP_PARSE: u8 = 2;

/// The receiver's largest frame, by bits 0-2 of the configuration byte.
pub(super) const MAX_FRAMES: [usize; 8] = [1, 2, 12, 100, 244, 1000, 65_535, 16_777_227];

/// The link's largest message for a cut frame, by bits 2-4 of its operation byte.
pub(super) const MAX_MESSAGES: [usize; 8] = [0, 1, 2, 3, 29, 244, 1000, 65_536];

/// The longest frame a cut frame operation makes, to keep each run short.
const LONGEST_CUT: usize = 70_000;

/// The most segments a cut frame makes, to keep each run short.
const MOST_SEGMENTS: usize = 64;

/// The length of a frame to cut into segments of `room` bytes, from a varint.
fn cut_length(input: &mut Input<'_>, room: usize) -> usize {
    let longest = room
        .saturating_mul(MOST_SEGMENTS)
        .clamp(1, LONGEST_CUT)
        .saturating_add(1);
    let longest = u64::try_from(longest).unwrap_or(u64::MAX);
    usize::try_from(input.varint().checked_rem(longest).unwrap_or(0)).unwrap_or(0)
}

/// SPEC section 16 as a model: the frame being rebuilt, and what each segment gives.
struct Model {
    max_frame: usize,
    partial: Option<Vec<u8>>,
}

impl Model {
    fn push(&mut self, segment: &[u8]) -> Result<Option<Vec<u8>>, SegmentError> {
        let result = self.take(segment);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    fn take(&mut self, segment: &[u8]) -> Result<Option<Vec<u8>>, SegmentError> {
        let Some((&header, data)) = segment.split_first() else {
            return Err(SegmentError::Empty);
        };
        if header & !MORE != 0 {
            return Err(SegmentError::ReservedBits { header });
        }
        if data.is_empty() {
            return Err(SegmentError::NoData);
        }
        let held = self.partial.as_ref().map_or(0, Vec::len);
        let len = held.saturating_add(data.len());
        if len > self.max_frame {
            return Err(SegmentError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        let mut frame = self.partial.take().unwrap_or_default();
        frame.extend_from_slice(data);
        if header & MORE != 0 {
            self.partial = Some(frame);
            Ok(None)
        } else {
            Ok(Some(frame))
        }
    }
}

/// Pushes one segment into both and compares what they say and hold.
fn push(desegmenter: &mut Desegmenter, model: &mut Model, segment: Bytes) {
    let expected = model.push(&segment);
    let got = desegmenter.push(segment);
    match (&got, &expected) {
        (Ok(got), Ok(expected)) => {
            assert_eq!(got.as_deref(), expected.as_deref(), "a different frame");
        }
        (Err(got), Err(expected)) => assert_eq!(got, expected, "a different error"),
        _ => panic!("desegmenter said {got:?}, the model {expected:?}"),
    }
    let held = model.partial.as_ref().map_or(0, Vec::len);
    assert_eq!(
        desegmenter.buffered(),
        held,
        "held bytes differ from the model"
    );
    assert!(held <= model.max_frame);
}

/// Arbitrary segments into a desegmenter and a model of SPEC section 16 together: both take or
/// refuse each alike (the same error, naming `SEG-2` or `SEG-3`), give the same frames, and
/// hold the same bytes, never more than the limit. Frames cut by [`segments`] fit their link's
/// messages, are full but for the last, and come back whole.
pub fn segments_target(data: &[u8]) {
    let mut input = Input::new(data);
    let max_frame = MAX_FRAMES[usize::from(input.byte() & 7)];
    let mut desegmenter = Desegmenter::new(max_frame);
    assert_eq!(desegmenter.max_frame(), max_frame);
    let mut model = Model {
        max_frame,
        partial: None,
    };
    while !input.is_empty() {
        let op = input.byte();
        match op & 3 {
            OP_RAW => {
                let len = usize::from(input.byte());
                let segment = Bytes::copy_from_slice(input.bytes(len));
                push(&mut desegmenter, &mut model, segment);
            }
            OP_FRAME => {
                let max_message = MAX_MESSAGES[usize::from((op >> 2) & 7)];
                let len = cut_length(&mut input, segment_room(max_message));
                let fill = input.byte();
                let frame: Bytes = (0..len)
                    .map(|i| fill.wrapping_add(i as u8))
                    .collect::<Vec<_>>()
                    .into();
                let cut: Vec<Bytes> = segments(&frame, max_message).collect();
                let room = segment_room(max_message);
                if len == 0 || room == 0 {
                    assert!(cut.is_empty(), "segments of nothing");
                    continue;
                }
                assert_eq!(cut.len(), len.div_ceil(room));
                let mut carried = Vec::with_capacity(len);
                for (i, segment) in cut.iter().enumerate() {
                    let (bytes, more) = parse_segment(segment).expect("a valid segment");
                    assert!(segment.len() <= max_message);
                    assert_eq!(
                        more,
                        i.saturating_add(1) < cut.len(),
                        "MORE on all but the last"
                    );
                    if more {
                        assert_eq!(bytes.len(), room, "a short segment before the last");
                    }
                    carried.extend_from_slice(&bytes);
                }
                assert_eq!(carried, frame[..], "the segments carry the frame");
                let clean = model.partial.is_none();
                for segment in cut {
                    push(&mut desegmenter, &mut model, segment);
                }
                if clean && len <= max_frame {
                    assert_eq!(desegmenter.buffered(), 0, "a whole frame left bytes behind");
                }
            }
            OP_PARSE => {
                let len = usize::from(input.byte());
                let segment = Bytes::copy_from_slice(input.bytes(len));
                let parsed = parse_segment(&segment);
                match segment.split_first() {
                    None => assert_eq!(parsed, Err(SegmentError::Empty)),
                    Some((&header, rest)) if header & !MORE == 0 && !rest.is_empty() => {
                        let (bytes, more) = parsed.expect("a valid segment");
                        assert_eq!(bytes, rest);
                        assert_eq!(more, header & MORE != 0);
                        assert_eq!(
                            bytes.len().saturating_add(SEGMENT_HEADER_LEN),
                            segment.len()
                        );
                    }
                    Some(_) => assert!(parsed.is_err()),
                }
            }
            _ => {
                // A frame that fits, cut and pushed as a whole with a fresh desegmenter: it
                // comes back exactly.
                let max_message = MAX_MESSAGES[usize::from((op >> 2) & 7)];
                let len = cut_length(&mut input, segment_room(max_message));
                let frame = Bytes::copy_from_slice(input.bytes(len));
                let mut fresh = Desegmenter::new(max_frame);
                let mut got = Vec::new();
                for segment in segments(&frame, max_message) {
                    match fresh.push(segment) {
                        Ok(Some(frame)) => got.push(frame),
                        Ok(None) => {}
                        Err(err) => {
                            assert!(frame.len() > max_frame, "{err} for a frame that fits");
                            assert_eq!(err.rule(), "SEG-3");
                            break;
                        }
                    }
                }
                if !frame.is_empty() && segment_room(max_message) > 0 && frame.len() <= max_frame {
                    assert_eq!(got, [frame], "the frame did not come back whole");
                } else {
                    assert!(got.is_empty());
                }
            }
        }
    }
}
