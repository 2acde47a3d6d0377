//! Reassembly of data transfers (SPEC section 6): transfers are delivered whole and exact, or
//! not at all; every malformed fragment is refused with its rule and channel; memory stays
//! within the limits and is given back when a transfer fails or its session ends.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use acm_wire::pb::SessionError;
use acm_wire::{
    DataFragment, Fragmenter, Frame, Limits, MAX_FRAME_SIZE, Reassembler, ReassemblyError,
};
use bytes::Bytes;
use common::*;
use proptest::prelude::*;

/// `len` bytes that differ from transfer to transfer (`seed`) and along the transfer.
fn pattern(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The fragments of a transfer as a receiver reads them: cut by [`Fragmenter`] into frames of
/// at most `max_frame_size` bytes, each decoded and parsed.
fn fragments_of(
    channel: u32,
    transfer_id: u32,
    data: &Bytes,
    max_frame_size: u32,
) -> Vec<DataFragment> {
    let fragmenter = Fragmenter::new(VERSION, channel, transfer_id, data.clone(), max_frame_size)
        .expect("room for data");
    let count = fragmenter.len();
    let fragments: Vec<_> = fragmenter
        .map(|wire| {
            assert!(wire.len() <= max_frame_size as usize);
            let frame =
                Frame::decode_exact(wire, max_frame_size, Some(VERSION)).expect("valid frame");
            DataFragment::parse(&frame).expect("valid fragment")
        })
        .collect();
    assert_eq!(fragments.len(), count, "the fragmenter knows its length");
    fragments
}

/// Pushes fragments that must all be taken without delivering anything.
fn push_all_pending(reassembler: &mut Reassembler, fragments: &[DataFragment]) {
    for fragment in fragments {
        assert_eq!(reassembler.push(fragment.clone()), Ok(None), "{fragment:?}");
    }
}

/// Asserts that `fragment` is refused with `expected`, which enforces `rule`, names the
/// fragment's channel, and closes the session with the error SPEC section 6.3 gives the rule.
fn assert_refused(
    reassembler: &mut Reassembler,
    fragment: DataFragment,
    expected: ReassemblyError,
    rule: &str,
) {
    let session_error = match rule {
        "DATA-6" | "DATA-7" => SessionError::LimitExceeded,
        _ => SessionError::ProtocolError,
    };
    assert_eq!(expected.rule(), rule, "{expected:?}");
    assert_eq!(expected.channel(), fragment.channel, "{expected:?}");
    assert_eq!(expected.session_error(), session_error, "{expected:?}");
    assert_eq!(reassembler.push(fragment), Err(expected));
}

/// [`assert_refused`], and the transfer the fragment belongs to is dropped: no memory is held
/// for it and its later fragments are refused as fragments of an unknown transfer, so none of
/// it can ever be delivered.
fn assert_refused_and_dropped(
    reassembler: &mut Reassembler,
    refused: DataFragment,
    expected: ReassemblyError,
    rule: &str,
) {
    let (channel, transfer_id) = (refused.channel, refused.transfer_id);
    let next = refused.index.saturating_add(1);
    assert_refused(reassembler, refused, expected, rule);
    assert_eq!(reassembler.reserved_bytes(), 0);
    assert_eq!(reassembler.buffered_bytes(), 0);
    assert_eq!(reassembler.transfers_in_progress(), 0);
    for last in [false, true] {
        assert_eq!(
            reassembler.push(fragment(channel, transfer_id, next, None, last, b"more")),
            Err(ReassemblyError::UnknownTransfer {
                channel,
                transfer_id,
                index: next
            })
        );
    }
}

/// A reassembler holding transfer 5 of channel 3, declared 10 bytes, with fragment 0 (4 bytes)
/// received.
fn with_transfer_in_progress() -> Reassembler {
    let mut reassembler = Reassembler::new(Limits::default());
    push_all_pending(
        &mut reassembler,
        &[fragment(3, 5, 0, Some(10), false, b"abcd")],
    );
    assert_eq!(reassembler.reserved_bytes(), 10);
    assert_eq!(reassembler.buffered_bytes(), 4);
    assert_eq!(reassembler.transfers_in_progress(), 1);
    reassembler
}

#[test]
fn interleaved_transfers_across_channels_are_delivered_whole() {
    let transfers = [
        (1, 1, pattern(1, 1000)),
        (2, 1, pattern(2, 333)),
        (1, 2, pattern(3, 517)),
        (9, 40, pattern(4, 190)),
    ];
    let mut queues: Vec<Vec<DataFragment>> = transfers
        .iter()
        .map(|(channel, id, data)| fragments_of(*channel, *id, data, 128))
        .collect();
    assert!(
        queues.iter().all(|q| q.len() > 1),
        "every transfer is split"
    );
    for queue in &mut queues {
        queue.reverse();
    }

    let mut reassembler = Reassembler::new(Limits::default());
    let mut delivered = BTreeMap::new();
    // Round robin: one fragment of each transfer in turn.
    while queues.iter().any(|q| !q.is_empty()) {
        for queue in &mut queues {
            let Some(fragment) = queue.pop() else {
                continue;
            };
            let key = (fragment.channel, fragment.transfer_id);
            let last = fragment.last;
            let result = reassembler.push(fragment).expect("valid fragment");
            assert_eq!(
                result.is_some(),
                last,
                "delivered exactly at the LAST fragment"
            );
            if let Some(data) = result {
                assert!(delivered.insert(key, data).is_none(), "delivered once");
            }
        }
    }
    assert_eq!(delivered.len(), transfers.len());
    for (channel, id, data) in &transfers {
        assert_eq!(delivered[&(*channel, *id)], *data);
    }
    assert_eq!(reassembler.reserved_bytes(), 0);
    assert_eq!(reassembler.buffered_bytes(), 0);
    assert_eq!(reassembler.transfers_in_progress(), 0);
}

#[test]
fn single_fragment_transfer_is_delivered_without_copying() {
    let data = pattern(7, 200);
    let wire = Fragmenter::new(VERSION, 4, 1, data.clone(), 1024)
        .expect("room")
        .next()
        .expect("one frame");
    let frame = Frame::decode_exact(wire.clone(), 1024, Some(VERSION)).expect("valid");
    let fragment = DataFragment::parse(&frame).expect("valid");
    assert_eq!(fragment.total_length, Some(200));
    assert!(fragment.last);

    let mut reassembler = Reassembler::new(Limits::default());
    let delivered = reassembler.push(fragment).expect("valid").expect("whole");
    assert_eq!(delivered, data);
    assert!(
        within(delivered.as_ptr_range(), &wire.as_ptr_range()),
        "the delivered bytes are the received frame's"
    );
    assert_eq!(reassembler.reserved_bytes(), 0);
}

#[test]
fn zero_length_transfer_is_one_first_and_last_fragment_delivered_empty() {
    let fragments = fragments_of(2, 1, &Bytes::new(), 128);
    assert_eq!(fragments.len(), 1);
    assert_eq!(fragments[0], fragment(2, 1, 0, Some(0), true, b""));
    let mut reassembler = Reassembler::new(Limits::default());
    assert_eq!(
        reassembler.push(fragments[0].clone()),
        Ok(Some(Bytes::new()))
    );
    assert_eq!(reassembler.reserved_bytes(), 0);
}

#[test]
fn transfer_may_end_with_an_empty_last_fragment() {
    let mut reassembler = Reassembler::new(Limits::default());
    push_all_pending(
        &mut reassembler,
        &[
            fragment(1, 1, 0, Some(5), false, b"abc"),
            fragment(1, 1, 1, None, false, b"de"),
        ],
    );
    assert_eq!(
        reassembler.push(fragment(1, 1, 2, None, true, b"")),
        Ok(Some(Bytes::from_static(b"abcde")))
    );
    assert_eq!(reassembler.reserved_bytes(), 0);
}

#[test]
fn data_1_payload_shorter_than_its_data_header_is_refused() {
    let frame = |flags: u8, len: usize| Frame {
        flags,
        ..Frame::new(
            VERSION,
            acm_wire::pb::FrameType::Data,
            6,
            Bytes::from(vec![0; len]),
        )
    };
    for (flags, needed) in [(0, 8), (acm_wire::FLAG_LAST, 8), (acm_wire::FLAG_FIRST, 16)] {
        for len in [0, 1, needed - 1] {
            let err = DataFragment::parse(&frame(flags, len)).expect_err("too short");
            assert_eq!(
                err,
                ReassemblyError::ShortHeader {
                    channel: 6,
                    len,
                    needed
                }
            );
            assert_eq!(err.rule(), "DATA-1");
            assert_eq!(err.channel(), 6);
            assert_eq!(err.session_error(), SessionError::ProtocolError);
        }
        let parsed = DataFragment::parse(&frame(flags, needed)).expect("long enough");
        assert!(parsed.chunk.is_empty());
    }
}

#[test]
fn data_2_first_fragment_with_an_index_other_than_zero_is_refused() {
    let mut reassembler = Reassembler::new(Limits::default());
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 1, 1, Some(10), false, b"abcd"),
        ReassemblyError::FirstIndexNotZero {
            channel: 3,
            transfer_id: 1,
            index: 1,
        },
        "DATA-2",
    );
}

#[test]
fn data_3_repeated_or_lower_transfer_id_is_stale() {
    let mut reassembler = Reassembler::new(Limits::default());
    assert_eq!(
        reassembler.push(fragment(3, 5, 0, Some(2), true, b"ok")),
        Ok(Some(Bytes::from_static(b"ok")))
    );
    for id in [5, 4, 0] {
        assert_refused(
            &mut reassembler,
            fragment(3, id, 0, Some(2), true, b"no"),
            ReassemblyError::StaleTransferId {
                channel: 3,
                transfer_id: id,
                last: 5,
            },
            "DATA-3",
        );
    }
    // Ids are per channel: another channel may use any id, and a higher id goes on.
    assert_eq!(
        reassembler.push(fragment(4, 1, 0, Some(1), true, b"x")),
        Ok(Some(Bytes::from_static(b"x")))
    );
    assert_eq!(
        reassembler.push(fragment(3, 6, 0, Some(1), true, b"y")),
        Ok(Some(Bytes::from_static(b"y")))
    );
    assert_eq!(reassembler.reserved_bytes(), 0);
}

#[test]
fn data_3_repeated_first_fragment_of_a_transfer_in_progress_drops_it() {
    let mut reassembler = with_transfer_in_progress();
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 5, 0, Some(10), false, b"abcd"),
        ReassemblyError::StaleTransferId {
            channel: 3,
            transfer_id: 5,
            last: 5,
        },
        "DATA-3",
    );
}

#[test]
fn data_2_first_flag_on_a_later_fragment_drops_the_transfer() {
    let mut reassembler = with_transfer_in_progress();
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 5, 1, Some(10), false, b"efgh"),
        ReassemblyError::FirstIndexNotZero {
            channel: 3,
            transfer_id: 5,
            index: 1,
        },
        "DATA-2",
    );
}

#[test]
fn data_4_fragment_of_an_unknown_transfer_is_refused() {
    let mut reassembler = with_transfer_in_progress();
    // Another transfer id, and the same id on another channel.
    for (channel, id) in [(3, 6), (4, 5)] {
        assert_refused(
            &mut reassembler,
            fragment(channel, id, 1, None, false, b"zz"),
            ReassemblyError::UnknownTransfer {
                channel,
                transfer_id: id,
                index: 1,
            },
            "DATA-4",
        );
    }
    // The transfer in progress is not disturbed.
    assert_eq!(reassembler.reserved_bytes(), 10);
    assert_eq!(
        reassembler.push(fragment(3, 5, 1, None, true, b"efghij")),
        Ok(Some(Bytes::from_static(b"abcdefghij")))
    );
}

#[test]
fn data_4_duplicate_fragment_is_refused_and_the_transfer_dropped() {
    let mut reassembler = with_transfer_in_progress();
    push_all_pending(&mut reassembler, &[fragment(3, 5, 1, None, false, b"ef")]);
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 5, 1, None, false, b"ef"),
        ReassemblyError::DuplicateFragment {
            channel: 3,
            transfer_id: 5,
            expected: 2,
            got: 1,
        },
        "DATA-4",
    );
}

#[test]
fn data_4_out_of_order_or_missing_fragment_is_refused_and_the_transfer_dropped() {
    for got in [2, 3, u32::MAX] {
        let mut reassembler = with_transfer_in_progress();
        assert_refused_and_dropped(
            &mut reassembler,
            fragment(3, 5, got, None, false, b"ef"),
            ReassemblyError::OutOfOrder {
                channel: 3,
                transfer_id: 5,
                expected: 1,
                got,
            },
            "DATA-4",
        );
    }
}

#[test]
fn data_4_empty_fragment_that_is_not_last_is_refused() {
    let mut reassembler = with_transfer_in_progress();
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 5, 1, None, false, b""),
        ReassemblyError::EmptyFragment {
            channel: 3,
            transfer_id: 5,
            index: 1,
        },
        "DATA-4",
    );

    // An empty FIRST fragment that is not LAST begins nothing.
    let mut reassembler = Reassembler::new(Limits::default());
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 1, 0, Some(4), false, b""),
        ReassemblyError::EmptyFragment {
            channel: 3,
            transfer_id: 1,
            index: 0,
        },
        "DATA-4",
    );
}

#[test]
fn data_5_bytes_beyond_the_declared_length_are_an_overrun() {
    // In the first fragment.
    let mut reassembler = Reassembler::new(Limits::default());
    for last in [false, true] {
        let id = u32::from(last) + 1;
        assert_refused_and_dropped(
            &mut reassembler,
            fragment(3, id, 0, Some(3), last, b"abcd"),
            ReassemblyError::Overrun {
                channel: 3,
                transfer_id: id,
                declared: 3,
            },
            "DATA-5",
        );
    }
    // In a later fragment, last or not.
    for last in [false, true] {
        let mut reassembler = with_transfer_in_progress();
        assert_refused_and_dropped(
            &mut reassembler,
            fragment(3, 5, 1, None, last, b"efghijk"),
            ReassemblyError::Overrun {
                channel: 3,
                transfer_id: 5,
                declared: 10,
            },
            "DATA-5",
        );
    }
}

#[test]
fn data_5_last_fragment_before_the_declared_length_is_incomplete() {
    let mut reassembler = with_transfer_in_progress();
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 5, 1, None, true, b"efghi"),
        ReassemblyError::Incomplete {
            channel: 3,
            transfer_id: 5,
            declared: 10,
            received: 9,
        },
        "DATA-5",
    );

    // A single fragment that is both FIRST and LAST.
    let mut reassembler = Reassembler::new(Limits::default());
    assert_refused_and_dropped(
        &mut reassembler,
        fragment(3, 1, 0, Some(10), true, b"abc"),
        ReassemblyError::Incomplete {
            channel: 3,
            transfer_id: 1,
            declared: 10,
            received: 3,
        },
        "DATA-5",
    );
}

#[test]
fn data_6_transfer_over_max_data_size_is_refused() {
    let limits = Limits::default().with_max_data_size(100);
    let mut reassembler = Reassembler::new(limits);
    for last in [false, true] {
        let id = u32::from(last) + 1;
        assert_refused_and_dropped(
            &mut reassembler,
            fragment(3, id, 0, Some(101), last, b"abc"),
            ReassemblyError::TooLarge {
                channel: 3,
                transfer_id: id,
                declared: 101,
                max: 100,
            },
            "DATA-6",
        );
    }
    // Exactly the maximum is admitted.
    push_all_pending(
        &mut reassembler,
        &[fragment(3, 3, 0, Some(100), false, &[1; 60])],
    );
    assert_eq!(
        reassembler.push(fragment(3, 3, 1, None, true, &[1; 40])),
        Ok(Some(Bytes::from(vec![1; 100])))
    );
}

#[test]
fn data_7_transfers_over_the_reassembly_budget_are_refused() {
    let limits = Limits::default()
        .with_max_data_size(100)
        .with_max_reassembly_bytes(150);
    let mut reassembler = Reassembler::new(limits);
    push_all_pending(
        &mut reassembler,
        &[
            fragment(1, 1, 0, Some(100), false, b"a"),
            fragment(2, 1, 0, Some(50), false, b"b"),
        ],
    );
    assert_eq!(reassembler.reserved_bytes(), 150);

    // The budget counts declared lengths, not bytes received: nothing is left for one byte.
    assert_refused(
        &mut reassembler,
        fragment(3, 1, 0, Some(2), false, b"c"),
        ReassemblyError::OverBudget {
            channel: 3,
            transfer_id: 1,
            declared: 2,
            available: 0,
        },
        "DATA-7",
    );
    assert_eq!(reassembler.reserved_bytes(), 150);
    assert_eq!(reassembler.transfers_in_progress(), 2);

    // A single-fragment transfer needs no reservation and still goes through.
    assert_eq!(
        reassembler.push(fragment(3, 2, 0, Some(3), true, b"one")),
        Ok(Some(Bytes::from_static(b"one")))
    );

    // Finishing a transfer gives its share back.
    assert_eq!(
        reassembler.push(fragment(2, 1, 1, None, true, &[b'b'; 49])),
        Ok(Some(Bytes::from([&b"b"[..], &[b'b'; 49]].concat())))
    );
    assert_eq!(reassembler.reserved_bytes(), 100);
    assert_refused(
        &mut reassembler,
        fragment(3, 3, 0, Some(51), false, b"c"),
        ReassemblyError::OverBudget {
            channel: 3,
            transfer_id: 3,
            declared: 51,
            available: 50,
        },
        "DATA-7",
    );
    push_all_pending(
        &mut reassembler,
        &[fragment(3, 4, 0, Some(50), false, b"c")],
    );
    assert_eq!(reassembler.reserved_bytes(), 150);
}

#[test]
fn data_7_too_many_unfinished_transfers_are_refused() {
    let mut reassembler = Reassembler::new(Limits::default().with_max_transfers(2));
    push_all_pending(
        &mut reassembler,
        &[
            fragment(1, 1, 0, Some(10), false, b"a"),
            fragment(1, 2, 0, Some(10), false, b"b"),
        ],
    );
    assert_refused(
        &mut reassembler,
        fragment(2, 1, 0, Some(10), false, b"c"),
        ReassemblyError::TooManyTransfers {
            channel: 2,
            transfer_id: 1,
            max: 2,
        },
        "DATA-7",
    );
    assert_eq!(reassembler.reserved_bytes(), 20);
    assert_eq!(reassembler.transfers_in_progress(), 2);
    // Single-fragment transfers are not unfinished transfers.
    assert_eq!(
        reassembler.push(fragment(2, 2, 0, Some(1), true, b"c")),
        Ok(Some(Bytes::from_static(b"c")))
    );
    // Once one ends, another may begin.
    reassembler.abort(1, 1);
    assert_eq!(reassembler.reserved_bytes(), 10);
    push_all_pending(
        &mut reassembler,
        &[fragment(2, 3, 0, Some(10), false, b"c")],
    );
    assert_eq!(reassembler.transfers_in_progress(), 2);
}

#[test]
fn abort_channel_frees_the_memory_of_its_transfers() {
    let mut reassembler = Reassembler::new(Limits::default());
    push_all_pending(
        &mut reassembler,
        &[
            fragment(1, 1, 0, Some(1000), false, &[1; 300]),
            fragment(1, 2, 0, Some(500), false, &[2; 200]),
            fragment(2, 1, 0, Some(100), false, &[3; 10]),
        ],
    );
    assert_eq!(reassembler.reserved_bytes(), 1600);
    assert_eq!(reassembler.buffered_bytes(), 510);
    assert_eq!(reassembler.transfers_in_progress(), 3);

    reassembler.abort_channel(1);
    assert_eq!(reassembler.reserved_bytes(), 100);
    assert_eq!(reassembler.buffered_bytes(), 10);
    assert_eq!(reassembler.transfers_in_progress(), 1);
    assert_eq!(
        reassembler.push(fragment(1, 1, 1, None, true, &[1; 700])),
        Err(ReassemblyError::UnknownTransfer {
            channel: 1,
            transfer_id: 1,
            index: 1
        })
    );
    // The channel is forgotten: a new session on it starts its transfer ids afresh.
    assert_eq!(
        reassembler.push(fragment(1, 1, 0, Some(1), true, b"n")),
        Ok(Some(Bytes::from_static(b"n")))
    );
    // The other channel's transfer is untouched.
    assert_eq!(
        reassembler.push(fragment(2, 1, 1, None, true, &[3; 90])),
        Ok(Some(Bytes::from(vec![3; 100])))
    );
    assert_eq!(reassembler.reserved_bytes(), 0);
    assert_eq!(reassembler.buffered_bytes(), 0);
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// One transfer of a property: its channel, the gap to the id before it on that channel, and
/// its data.
type TransferSpec = (u32, u32, Vec<u8>);

fn transfer_specs(max: usize) -> impl Strategy<Value = Vec<TransferSpec>> {
    proptest::collection::vec(
        (
            1u32..=3,
            1u32..1000,
            proptest::collection::vec(any::<u8>(), 0..max),
        ),
        1..6,
    )
}

/// The frames of several transfers in a random interleaving that keeps each transfer's own
/// order. Transfer ids increase on each channel in the order the FIRST fragments are sent.
fn interleaved(
    specs: &[TransferSpec],
    max_frame_size: u32,
    order: &[usize],
) -> (Vec<DataFragment>, BTreeMap<(u32, u32), Bytes>) {
    // The order of first appearance decides the ids.
    let mut seen = BTreeSet::new();
    let mut next_id: BTreeMap<u32, u32> = BTreeMap::new();
    let mut queues = vec![Vec::new(); specs.len()];
    let mut sent = BTreeMap::new();
    for &t in order {
        if !seen.insert(t) {
            continue;
        }
        let (channel, gap, data) = &specs[t];
        let id = next_id.entry(*channel).or_insert(0);
        *id += gap;
        let data = Bytes::from(data.clone());
        queues[t] = fragments_of(*channel, *id, &data, max_frame_size);
        queues[t].reverse();
        sent.insert((*channel, *id), data);
    }
    let fragments = order
        .iter()
        .map(|&t| queues[t].pop().expect("one slot per fragment"))
        .collect();
    (fragments, sent)
}

/// The interleaving strategy: each transfer's index repeated once per fragment, shuffled.
fn specs_and_order() -> impl Strategy<Value = (Vec<TransferSpec>, u32, Vec<usize>)> {
    (transfer_specs(3000), 128u32..=600).prop_flat_map(|(specs, max_frame_size)| {
        let slots: Vec<usize> = specs
            .iter()
            .enumerate()
            .flat_map(|(t, (_, _, data))| {
                let count =
                    Fragmenter::new(VERSION, 1, 1, Bytes::from(data.clone()), max_frame_size)
                        .expect("room")
                        .len();
                std::iter::repeat_n(t, count)
            })
            .collect();
        (
            Just(specs),
            Just(max_frame_size),
            Just(slots).prop_shuffle(),
        )
    })
}

/// A fragment that no real transfer sent: on a real channel, with an odd id (real ones are made
/// even below), any index and flags, and bytes of 0xEE.
fn junk_fragment() -> impl Strategy<Value = DataFragment> {
    (
        1u32..=3,
        (0u32..20).prop_map(|id| id * 2 + 1),
        0u32..4,
        proptest::option::of(0u64..400),
        any::<bool>(),
        0usize..200,
    )
        .prop_map(
            |(channel, transfer_id, index, total_length, last, len)| DataFragment {
                channel,
                transfer_id,
                index: if total_length.is_some() { 0 } else { index },
                total_length,
                last,
                chunk: Bytes::from(vec![0xEE; len]),
            },
        )
}

/// Damage done to a fragment sequence.
#[derive(Debug, Clone)]
enum Damage {
    Drop(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Swap(prop::sample::Index, prop::sample::Index),
    Insert(prop::sample::Index, DataFragment),
}

fn damage() -> impl Strategy<Value = Damage> {
    use prop::sample::Index;
    prop_oneof![
        any::<Index>().prop_map(Damage::Drop),
        any::<Index>().prop_map(Damage::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Damage::Swap(a, b)),
        (any::<Index>(), junk_fragment()).prop_map(|(at, f)| Damage::Insert(at, f)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_transfers_interleaved_at_random_frame_sizes_reassemble_exactly(
        (specs, max_frame_size, order) in specs_and_order(),
    ) {
        let (fragments, sent) = interleaved(&specs, max_frame_size, &order);
        let mut reassembler = Reassembler::new(Limits::default());
        let mut delivered = BTreeMap::new();
        for fragment in fragments {
            let key = (fragment.channel, fragment.transfer_id);
            let last = fragment.last;
            let result = reassembler.push(fragment).expect("every fragment is valid");
            prop_assert_eq!(result.is_some(), last);
            if let Some(data) = result {
                prop_assert!(delivered.insert(key, data).is_none(), "delivered twice");
            }
            prop_assert!(reassembler.buffered_bytes() <= reassembler.reserved_bytes());
        }
        prop_assert_eq!(delivered, sent);
        prop_assert_eq!(reassembler.reserved_bytes(), 0);
        prop_assert_eq!(reassembler.transfers_in_progress(), 0);
    }

    #[test]
    fn adversarial_fragment_sequences_never_deliver_unsent_data_and_stay_in_budget(
        specs in transfer_specs(1200),
        max_frame_size in 128u32..=400,
        damages in proptest::collection::vec(damage(), 0..12),
    ) {
        // Real transfers, sent one after the other, with even ids.
        let mut next_id: BTreeMap<u32, u32> = BTreeMap::new();
        let mut sent = BTreeMap::new();
        let mut sequence = Vec::new();
        for (channel, gap, data) in &specs {
            let id = next_id.entry(*channel).or_insert(0);
            *id += gap * 2;
            let data = Bytes::from(data.clone());
            sequence.extend(fragments_of(*channel, *id, &data, max_frame_size));
            sent.insert((*channel, *id), data);
        }
        for damage in damages {
            let len = sequence.len();
            match damage {
                Damage::Drop(at) if len > 0 => {
                    sequence.remove(at.index(len));
                }
                Damage::Duplicate(at) if len > 0 => {
                    let copy = sequence[at.index(len)].clone();
                    sequence.insert(at.index(len), copy);
                }
                Damage::Swap(a, b) if len > 0 => sequence.swap(a.index(len), b.index(len)),
                Damage::Insert(at, junk) => sequence.insert(at.index(len + 1), junk),
                _ => {}
            }
        }

        let limits = Limits::default()
            .with_max_data_size(1000)
            .with_max_reassembly_bytes(1500)
            .with_max_transfers(3);
        let mut reassembler = Reassembler::new(limits);
        let mut delivered = BTreeSet::new();
        for fragment in sequence {
            let key = (fragment.channel, fragment.transfer_id);
            match reassembler.push(fragment) {
                Ok(Some(data)) => {
                    if key.1 % 2 == 0 {
                        prop_assert_eq!(Some(&data), sent.get(&key), "{:?}", key);
                        prop_assert!(delivered.insert(key), "{:?} delivered twice", key);
                    } else {
                        prop_assert!(data.iter().all(|b| *b == 0xEE), "junk mixed with data");
                    }
                }
                Ok(None) => {}
                Err(err) => prop_assert_eq!(err.channel(), key.0),
            }
            prop_assert!(reassembler.reserved_bytes() <= limits.max_reassembly_bytes);
            prop_assert!(reassembler.buffered_bytes() <= reassembler.reserved_bytes());
            prop_assert!(reassembler.transfers_in_progress() <= limits.max_transfers);
        }
        for channel in 1..=3 {
            reassembler.abort_channel(channel);
        }
        prop_assert_eq!(reassembler.reserved_bytes(), 0);
        prop_assert_eq!(reassembler.buffered_bytes(), 0);
        prop_assert_eq!(reassembler.transfers_in_progress(), 0);
    }
}

#[test]
fn fragmenter_frames_fit_and_reassemble_at_the_smallest_frame_size() {
    let data = pattern(9, 5000);
    let fragments = fragments_of(1, 1, &data, acm_wire::MIN_FRAME_SIZE);
    // 100 bytes in the first frame (128 - 12 - 16), 108 in each later one (128 - 12 - 8).
    assert_eq!(fragments.len(), 1 + (5000 - 100usize).div_ceil(108));
    assert_eq!(fragments[0].chunk.len(), 100);
    assert!(fragments.iter().skip(1).all(|f| f.total_length.is_none()));
    assert!(
        fragments
            .iter()
            .enumerate()
            .all(|(i, f)| f.index as usize == i)
    );
    let mut reassembler = Reassembler::new(Limits::default());
    let (last, init) = fragments.split_last().expect("fragments");
    push_all_pending(&mut reassembler, init);
    assert_eq!(reassembler.push(last.clone()), Ok(Some(data)));
    // A frame too small for any data byte is refused.
    assert!(Fragmenter::new(VERSION, 1, 1, Bytes::new(), 28).is_err());
    assert!(Fragmenter::new(VERSION, 1, 1, Bytes::new(), MAX_FRAME_SIZE).is_ok());
}

#[test]
fn a_fragmenter_counts_what_it_handed_out_and_a_reassembler_what_arrived() {
    let data = pattern(4, 1000);
    let mut fragmenter = Fragmenter::new(VERSION, 3, 1, data.clone(), 244).unwrap();
    assert_eq!((fragmenter.sent_len(), fragmenter.total_len()), (0, 1000));
    let mut reassembler = Reassembler::new(Limits::default());
    assert_eq!(reassembler.progress(3, 1), None);
    let mut sent = 0;
    while let Some(fragment) = fragmenter.next_fragment() {
        sent += fragment.chunk.len() as u64;
        assert_eq!(fragmenter.sent_len(), sent);
        let last = fragment.last;
        let delivered = reassembler.push(fragment).unwrap();
        if last {
            assert_eq!(delivered, Some(data.clone()));
            // A finished transfer is no longer under way.
            assert_eq!(reassembler.progress(3, 1), None);
        } else {
            assert_eq!(reassembler.progress(3, 1), Some((sent, 1000)));
        }
    }
    assert_eq!(sent, 1000);
    assert_eq!(fragmenter.sent_len(), fragmenter.total_len());
}
