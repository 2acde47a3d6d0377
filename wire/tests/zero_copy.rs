//! Data bytes are copied as little as possible on their way in: a frame's chunk taken with
//! `DataFragment::from_frame` is the frame's own buffer, and the reassembler keeps large chunks
//! that own their buffer instead of copying them, copying the transfer once when it is whole.
//! Whatever path the bytes take, the transfer is delivered exact (SPEC section 6.3).

mod common;

use acm_wire::reassembly::MIN_KEPT_CHUNK;
use acm_wire::{
    BufferPool, DataFragment, FLAG_FIRST, FLAG_LAST, Fragmenter, Frame, Limits, Reassembler,
};
use bytes::{BufMut, Bytes, BytesMut};
use common::*;

/// `len` bytes that differ along the transfer.
fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// A DATA frame as a transport that carries one frame per message delivers it: decoded from
/// its own buffer, which nothing else holds.
fn received(transfer_id: u32, index: u32, total: Option<u64>, last: bool, chunk: &[u8]) -> Frame {
    let mut wire = BytesMut::new();
    let fragment = DataFragment {
        channel: 3,
        transfer_id,
        index,
        total_length: total,
        last,
        chunk: Bytes::copy_from_slice(chunk),
    };
    fragment.encode(VERSION, &mut wire).expect("encodes");
    Frame::decode_exact(wire.freeze(), 1 << 20, Some(VERSION)).expect("decodes")
}

/// The chunks of a transfer cut as `sizes` say, as frames.
fn frames_of(data: &Bytes, sizes: &[usize]) -> Vec<Frame> {
    assert_eq!(sizes.iter().sum::<usize>(), data.len());
    let mut at = 0;
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let total = (i == 0).then_some(data.len() as u64);
            let last = i + 1 == sizes.len();
            let frame = received(1, i as u32, total, last, &data[at..at + size]);
            at += size;
            frame
        })
        .collect()
}

#[test]
fn from_frame_reads_what_parse_reads_and_takes_the_frames_buffer() {
    for (total, last) in [(Some(40_000), false), (None, false), (None, true)] {
        let frame = received(9, u32::from(total.is_none()), total, last, &[7; 300]);
        let parsed = DataFragment::parse(&frame).expect("valid");
        let payload = frame.payload.as_ptr_range();
        let taken = DataFragment::from_frame(frame.clone()).expect("valid");
        assert_eq!(taken, parsed);
        assert!(within(taken.chunk.as_ptr_range(), &payload));
        assert_eq!(
            taken.flags(),
            (u8::from(total.is_some()) * FLAG_FIRST) | (u8::from(last) * FLAG_LAST)
        );
    }
}

#[test]
fn data_1_from_frame_refuses_a_short_data_header_as_parse_does() {
    let mut frame = received(1, 0, Some(10), true, &[1; 10]);
    frame.payload = frame.payload.slice(..15);
    let err = DataFragment::from_frame(frame.clone()).unwrap_err();
    assert_eq!(Err(err.clone()), DataFragment::parse(&frame));
    assert_eq!(err.rule(), "DATA-1");
}

#[test]
fn a_transfer_in_large_chunks_is_delivered_exact_with_one_copy() {
    let data = pattern(1, 3 * MIN_KEPT_CHUNK + 500);
    let sizes = [MIN_KEPT_CHUNK, MIN_KEPT_CHUNK + 500, MIN_KEPT_CHUNK];
    let mut reassembler = Reassembler::new(Limits::default());
    let mut delivered = None;
    for frame in frames_of(&data, &sizes) {
        let fragment = DataFragment::from_frame(frame).expect("valid");
        delivered = reassembler.push(fragment).expect("in order");
        if delivered.is_none() {
            assert!(reassembler.buffered_bytes() <= data.len() as u64);
        }
    }
    assert_eq!(delivered, Some(data));
    assert_eq!(reassembler.reserved_bytes(), 0);
    assert_eq!(reassembler.buffered_bytes(), 0);
}

#[test]
fn large_and_small_chunks_mixed_keep_their_order() {
    let small = 100;
    let sizes = [
        small,
        MIN_KEPT_CHUNK + 1,
        small,
        small,
        MIN_KEPT_CHUNK * 2,
        small,
    ];
    let data = pattern(2, sizes.iter().sum());
    let mut reassembler = Reassembler::new(Limits::default());
    let mut delivered = None;
    let mut received_so_far = 0;
    for (frame, size) in frames_of(&data, &sizes).into_iter().zip(sizes) {
        let fragment = DataFragment::from_frame(frame).expect("valid");
        delivered = reassembler.push(fragment).expect("in order");
        received_so_far += size;
        if delivered.is_none() {
            assert_eq!(reassembler.buffered_bytes(), received_so_far as u64);
        }
    }
    assert_eq!(delivered, Some(data));
}

#[test]
fn a_transfer_held_in_one_kept_chunk_is_delivered_without_a_copy() {
    let data = pattern(3, MIN_KEPT_CHUNK * 2);
    let frames = frames_of(&data, &[data.len(), 0]);
    let mut reassembler = Reassembler::new(Limits::default());
    let mut frames = frames.into_iter();
    let first = frames.next().expect("two frames");
    let payload = first.payload.as_ptr_range();
    assert_eq!(
        reassembler.push(DataFragment::from_frame(first).expect("valid")),
        Ok(None)
    );
    let last = DataFragment::from_frame(frames.next().expect("two frames")).expect("valid");
    let delivered = reassembler.push(last).expect("valid").expect("whole");
    assert_eq!(delivered, data);
    assert!(
        within(delivered.as_ptr_range(), &payload),
        "the delivered bytes are the first frame's"
    );
}

#[test]
fn a_chunk_that_shares_its_buffer_is_copied_not_kept() {
    // Frames cut from one receive buffer (a byte stream) share it: keeping a chunk would keep
    // the whole buffer alive, so the chunk is copied.
    const FRAME: u32 = 20_000;
    let data = pattern(4, MIN_KEPT_CHUNK * 3);
    let mut stream = BytesMut::new();
    for frame in Fragmenter::new(VERSION, 3, 1, data.clone(), FRAME).expect("fits") {
        stream.put_slice(&frame);
    }
    let stream = stream.freeze();
    let mut reassembler = Reassembler::new(Limits::default());
    let mut delivered = None;
    let mut rest = stream.clone();
    while !rest.is_empty() {
        let len = 12 + u32::from_be_bytes([0, rest[5], rest[6], rest[7]]) as usize;
        let frame = Frame::decode_exact(rest.split_to(len), FRAME, Some(VERSION)).expect("ok");
        delivered = reassembler
            .push(DataFragment::from_frame(frame).expect("valid"))
            .expect("in order");
    }
    let delivered = delivered.expect("whole");
    assert_eq!(delivered, data);
    assert!(
        !within(delivered.as_ptr_range(), &stream.as_ptr_range()),
        "the delivered bytes are a copy, not a window on the shared receive buffer"
    );
}

#[test]
fn data_4_a_kept_chunk_does_not_survive_a_refused_fragment() {
    let data = pattern(5, MIN_KEPT_CHUNK * 3);
    let frames = frames_of(&data, &[MIN_KEPT_CHUNK, MIN_KEPT_CHUNK, MIN_KEPT_CHUNK]);
    let mut reassembler = Reassembler::new(Limits::default());
    let mut frames = frames.into_iter();
    let first = DataFragment::from_frame(frames.next().expect("3")).expect("valid");
    assert_eq!(reassembler.push(first), Ok(None));
    let _skipped = frames.next();
    let third = DataFragment::from_frame(frames.next().expect("3")).expect("valid");
    let err = reassembler.push(third).unwrap_err();
    assert_eq!(err.rule(), "DATA-4");
    assert_eq!(reassembler.transfers_in_progress(), 0);
    assert_eq!(reassembler.buffered_bytes(), 0);
    assert_eq!(reassembler.reserved_bytes(), 0);
}

#[test]
fn a_transfer_reuses_the_buffer_an_earlier_one_was_delivered_in_once_the_app_dropped_it() {
    let mut reassembler = Reassembler::new(Limits::default());
    let first = pattern(6, 300_000);
    let delivered = reassemble(&mut reassembler, shared_fragments(1, &first));
    assert_eq!(delivered, first);
    let at = delivered.as_ptr();

    // While the app holds the first transfer, the next gets a buffer of its own.
    let second = pattern(7, 250_000);
    let held = reassemble(&mut reassembler, shared_fragments(2, &second));
    assert_eq!(held, second);
    assert_ne!(held.as_ptr(), at);
    assert_eq!(reassembler.pool().kept_buffers(), 0);

    drop(delivered);
    assert_eq!(reassembler.pool().kept_buffers(), 1);
    let third = pattern(8, 290_000);
    let reused = reassemble(&mut reassembler, shared_fragments(3, &third));
    assert_eq!(reused, third, "a reused buffer holds only the new transfer");
    assert_eq!(
        reused.as_ptr(),
        at,
        "the first transfer's buffer, filled again"
    );
    assert_eq!(reassembler.pool().kept_buffers(), 0);
    drop((held, reused));
    assert_eq!(reassembler.pool().kept_buffers(), 2);
}

#[test]
fn an_aborted_transfer_gives_its_reused_buffer_back() {
    let mut reassembler = Reassembler::new(Limits::default());
    drop(reassemble(
        &mut reassembler,
        shared_fragments(1, &pattern(9, 200_000)),
    ));
    let kept = reassembler.pool().kept_bytes();
    assert!(kept >= 200_000);
    let mut fragments = shared_fragments(2, &pattern(10, 200_000)).into_iter();
    assert_eq!(reassembler.push(fragments.next().expect("many")), Ok(None));
    assert_eq!(reassembler.pool().kept_bytes(), 0, "the transfer took it");
    reassembler.abort_channel(3);
    assert_eq!(reassembler.pool().kept_bytes(), kept);
}

#[test]
fn a_pool_of_no_bytes_keeps_nothing_and_transfers_still_arrive_whole() {
    let mut reassembler = Reassembler::with_pool(Limits::default(), BufferPool::new(0));
    for id in 1..=2 {
        let data = pattern(id as u8, 150_000);
        assert_eq!(
            reassemble(&mut reassembler, shared_fragments(id, &data)),
            data
        );
    }
    assert_eq!(reassembler.pool().kept_bytes(), 0);
}

#[test]
fn a_data_frame_in_two_parts_gives_its_chunk_without_a_copy_only_when_split_at_its_headers() {
    let data = pattern(11, 5_000);
    for first in [true, false] {
        let fragment = DataFragment {
            channel: 3,
            transfer_id: 1,
            index: u32::from(!first),
            total_length: first.then_some(9_000),
            last: false,
            chunk: data.clone(),
        };
        let mut head = BytesMut::new();
        fragment.encode_headers(VERSION, &mut head).expect("fits");
        let head = head.freeze();
        let frame = Frame::decode_data_headers(&head, data.len(), 65_535, Some(VERSION))
            .expect("split at its headers");
        let taken = DataFragment::from_split_frame(frame, data.clone()).expect("valid");
        assert_eq!(taken, fragment);
        assert_eq!(taken.chunk.as_ptr(), data.as_ptr(), "the body itself");

        let none = |head: &Bytes, len| Frame::decode_data_headers(head, len, 65_535, Some(VERSION));
        assert!(
            none(&head, data.len() + 1).is_none(),
            "a length the parts do not hold"
        );
        assert!(
            none(&head.slice(..head.len() - 1), data.len() + 1).is_none(),
            "split early"
        );
        assert!(none(&head, data.len()).is_some());
        let small = Frame::decode_data_headers(&head, data.len(), 1_000, Some(VERSION));
        assert!(small.is_none(), "over the largest frame accepted");
    }
    let message = acm_wire::Control::Message(acm_wire::pb::Message { text: "hi".into() })
        .to_frame(VERSION, 3)
        .to_bytes()
        .expect("encodes");
    let (head, body) = (message.slice(..12), message.len() - 12);
    assert!(Frame::decode_data_headers(&head, body, 65_535, Some(VERSION)).is_none());
}

#[test]
fn a_control_body_in_one_frame_is_read_where_the_frame_holds_it() {
    use acm_wire::{Control, ControlAssembler, ControlBody, HEADER_LEN, encode_control, pb};
    let control = Control::Message(pb::Message {
        text: "x".repeat(1000),
    });
    // In one frame: the body is the decoded frame's own payload, in the received buffer.
    let whole = encode_control(&control, 1, 3, 65_535).unwrap();
    let received = whole[0].clone();
    let frame = Frame::decode_exact(received.clone(), 65_535, Some(1)).unwrap();
    assert_eq!(frame.payload.as_ptr(), received[HEADER_LEN..].as_ptr());
    let mut assembler = ControlAssembler::new();
    match assembler.push_borrowed(&frame).unwrap() {
        Some((_, 3, ControlBody::Whole(body))) => assert!(std::ptr::eq(body, &frame.payload)),
        other => panic!("expected the frame's own payload, got {other:?}"),
    }
    // In several frames: the payloads joined.
    let split = encode_control(&control, 1, 3, 256).unwrap();
    assert!(split.len() > 1);
    let mut joined = None;
    for bytes in split {
        let frame = Frame::decode_exact(bytes, 256, Some(1)).unwrap();
        if let Some((_, _, body)) = assembler.push_borrowed(&frame).unwrap() {
            assert!(matches!(body, ControlBody::Joined(_)));
            joined = Some(body.into_bytes());
        }
    }
    let body = joined.expect("the last frame ends the body");
    assert_eq!(
        Control::decode(pb::FrameType::Message, &body),
        Some(Ok(control))
    );
}
