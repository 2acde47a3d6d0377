//! What a reassembler holds is what the device's budget counts (SPEC `LIMIT-1`): a transfer
//! that ends in a short chunk after large ones is not held in a buffer of its own for its last
//! bytes.

mod common;

use acm_wire::{DataFragment, Frame, Limits, Reassembler};
use bytes::{Bytes, BytesMut};
use common::*;

/// `len` bytes that differ along the transfer.
fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// A DATA frame in a buffer of its own, as a transport that carries one frame per message (or
/// a secure link, opening each record) delivers it.
fn own_fragment(index: u32, total: Option<u64>, last: bool, chunk: &[u8]) -> DataFragment {
    let mut wire = BytesMut::new();
    DataFragment {
        channel: 3,
        transfer_id: 1,
        index,
        total_length: total,
        last,
        chunk: Bytes::copy_from_slice(chunk),
    }
    .encode(VERSION, &mut wire)
    .expect("encodes");
    let frame = Frame::decode_exact(wire.freeze(), 1 << 20, Some(VERSION)).expect("decodes");
    DataFragment::from_frame(frame).expect("valid")
}

#[test]
fn a_transfer_ending_in_a_short_chunk_after_kept_ones_is_held_in_no_other_buffer() {
    let mut reassembler = Reassembler::new(Limits::default());
    let data = pattern(5, 3 * 40_000 + 100);
    let cuts = [0, 40_000, 80_000, 120_000, data.len()];
    let declared = Some(data.len() as u64);
    let mut delivered = None;
    for i in 0..4 {
        let fragment = own_fragment(
            i as u32,
            declared.filter(|_| i == 0),
            i == 3,
            &data[cuts[i]..cuts[i + 1]],
        );
        delivered = reassembler.push(fragment).expect("in order");
    }
    let delivered = delivered.expect("whole");
    assert_eq!(delivered, data);
    assert_eq!(
        reassembler.pool().kept_buffers(),
        0,
        "no buffer was left over for the last 100 bytes"
    );
    drop(delivered);
    assert_eq!(
        reassembler.pool().kept_buffers(),
        1,
        "the one it was delivered in"
    );
}
