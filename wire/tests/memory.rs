//! What a reassembler holds is what the device's budget counts (SPEC `LIMIT-1`): the buffers
//! its pool keeps for reuse count in the budget and give way to transfers, a reused buffer
//! larger than its transfer keeps the difference charged, and a transfer that ends in a short
//! chunk after large ones is not held in a buffer of its own for its last bytes.

mod common;

use acm_wire::{BufferPool, DataFragment, Frame, Limits, MemoryBudget, Reassembler};
use bytes::{Bytes, BytesMut};
use common::*;

const MIB: u64 = 1 << 20;

/// `len` bytes that differ along the transfer.
fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn charged(budget: &MemoryBudget) -> Reassembler {
    Reassembler::with_pool(Limits::default(), BufferPool::new(16 * MIB as usize))
        .with_budget(budget.clone())
}

#[test]
fn limit_1_buffers_kept_for_reuse_count_in_the_budget_and_give_way_to_a_transfer() {
    let budget = MemoryBudget::new(MIB);
    let mut reassembler = charged(&budget);
    let data = pattern(1, 300_000);
    let delivered = reassemble(&mut reassembler, shared_fragments(1, &data));
    assert_eq!(delivered, data);
    assert_eq!(
        budget.used(),
        300_000,
        "the transfer, while the app holds it"
    );
    drop(delivered);
    let kept = reassembler.pool().kept_bytes() as u64;
    assert!(kept >= 300_000, "its buffer is kept for reuse");
    assert_eq!(budget.used(), kept, "and counts in the budget");

    // A transfer that fits only if the kept buffer is freed: it is.
    let declared = MIB - 100_000;
    let first = DataFragment {
        channel: 5,
        transfer_id: 1,
        index: 0,
        total_length: Some(declared),
        last: false,
        chunk: Bytes::from(vec![1; 1000]),
    };
    assert_eq!(reassembler.push(first), Ok(None));
    assert_eq!(reassembler.pool().kept_bytes(), 0);
    assert_eq!(budget.used(), declared);
    reassembler.abort_channel(5);
    assert_eq!(
        budget.used(),
        reassembler.pool().kept_bytes() as u64,
        "the aborted transfer's buffer, kept"
    );
}

#[test]
fn limit_1_a_buffer_is_not_kept_when_the_budget_has_no_room_for_it() {
    let budget = MemoryBudget::new(MIB);
    let mut reassembler = charged(&budget);
    let delivered = reassemble(&mut reassembler, shared_fragments(1, &pattern(2, 300_000)));
    let sending = budget.charge(800_000);
    drop(delivered);
    assert_eq!(reassembler.pool().kept_buffers(), 0, "freed, not kept");
    assert_eq!(budget.used(), 800_000);
    drop(sending);
    assert_eq!(budget.used(), 0);
}

#[test]
fn limit_1_a_reused_buffer_larger_than_its_transfer_keeps_the_difference_charged() {
    let budget = MemoryBudget::new(4 * MIB);
    let mut reassembler = charged(&budget);
    drop(reassemble(
        &mut reassembler,
        shared_fragments(1, &pattern(3, 300_000)),
    ));
    let capacity = reassembler.pool().kept_bytes() as u64;
    assert_eq!(budget.used(), capacity);

    let smaller = pattern(4, 100_000);
    let delivered = reassemble(&mut reassembler, shared_fragments(2, &smaller));
    assert_eq!(delivered, smaller);
    assert_eq!(
        reassembler.pool().kept_buffers(),
        0,
        "the kept buffer was reused"
    );
    assert_eq!(
        budget.used(),
        capacity,
        "the transfer's 100 000 bytes and the rest of the buffer it is in"
    );
    drop(delivered);
    assert_eq!(reassembler.pool().kept_bytes() as u64, capacity);
    assert_eq!(budget.used(), capacity);
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
