//! The reassembly target: arbitrary sequences of data fragments into the reassembler, checked
//! against a model of SPEC section 6.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::Input;
use acm_wire::data::{DATA_HEADER_LEN, DataFragment, FIRST_DATA_HEADER_LEN, Fragmenter};
use acm_wire::error::ReassemblyError;
use acm_wire::frame::{Frame, FrameKind};
use acm_wire::header::{FLAG_FIRST, FLAG_LAST, HEADER_LEN};
use acm_wire::limits::{Limits, MAX_FRAME_SIZE};
use acm_wire::pb::{FrameType, SessionError};
use acm_wire::reassembly::Reassembler;

/// Operation codes: the low two bits of an operation's first byte.
pub(super) const OP_FRAGMENT: u8 = 0;
pub(super) const OP_RAW: u8 = 1;
pub(super) const OP_ABORT: u8 = 2;
pub(super) const OP_FRAGMENTER: u8 = 3;

/// Bits 4 and 5 of an operation's first byte: FIRST and LAST for fragments, "the whole channel"
/// (bit 4) for aborts, and the frame size for fragmenter transfers.
pub(super) const OP_FIRST: u8 = 0x10;
pub(super) const OP_LAST: u8 = 0x20;

/// `max_frame_size` of fragmenter transfers. 28 leaves no room for data.
pub(super) const FRAGMENTER_FRAME_SIZES: [u32; 4] = [
    (HEADER_LEN + FIRST_DATA_HEADER_LEN) as u32,
    (HEADER_LEN + FIRST_DATA_HEADER_LEN + 1) as u32,
    200,
    1500,
];

/// The most fragments of a fragmenter transfer, to keep each run short: its length is at most
/// this many times the room in a frame.
const FRAGMENTER_MAX_FRAGMENTS: u64 = 16;

/// What the reassembler may allocate for a transfer ahead of its bytes (SPEC `DATA-7`: 64 KiB
/// in the reference implementation).
const AHEAD: usize = 64 * 1024;

/// The configuration byte: bits 0-1 pick `max_data_size`, bits 2-3 the reassembly budget as a
/// multiple of it, bits 4-5 `max_transfers`.
fn limits(byte: u8) -> Limits {
    let data = [16, 1000, 100 << 20, u64::MAX][usize::from(byte & 3)];
    let budget = match (byte >> 2) & 3 {
        3 => u64::MAX,
        factor => data.saturating_mul(u64::from(factor).saturating_add(1)),
    };
    let transfers = [1, 2, 3, 32][usize::from((byte >> 4) & 3)];
    let limits = Limits::default()
        .with_max_frame_size(MAX_FRAME_SIZE)
        .with_max_data_size(data)
        .with_max_reassembly_bytes(budget)
        .with_max_transfers(transfers);
    assert_eq!(limits.validate(), Ok(()));
    limits
}

#[derive(Debug)]
struct Partial {
    declared: u64,
    next_index: u32,
    data: Vec<u8>,
}

/// What the model expects of one fragment.
#[derive(Debug)]
enum Expect {
    /// Taken; with the transfer's bytes when it completes one.
    Accept(Option<Vec<u8>>),
    /// Refused for breaking any of these rules.
    Refuse(Vec<&'static str>),
}

/// The reassembly rules of SPEC section 6, on a link whose sessions are closed (and their
/// channels forgotten) on their first error, as section 6.3 requires.
#[derive(Debug)]
struct Model {
    limits: Limits,
    partials: BTreeMap<(u32, u32), Partial>,
    last_begun: BTreeMap<u32, u32>,
}

impl Model {
    fn reserved(&self) -> u128 {
        self.partials.values().map(|p| u128::from(p.declared)).sum()
    }

    fn buffered(&self) -> u64 {
        self.partials.values().map(|p| p.data.len() as u64).sum()
    }

    fn push(&mut self, fragment: &DataFragment) -> Expect {
        let key = (fragment.channel, fragment.transfer_id);
        let len = fragment.chunk.len() as u64;
        let mut broken = Vec::new();
        let mut rule = |ok: bool, rule: &'static str| {
            if !ok {
                broken.push(rule);
            }
        };
        match fragment.total_length {
            Some(declared) => {
                rule(fragment.index == 0, "DATA-2");
                let fresh = self
                    .last_begun
                    .get(&fragment.channel)
                    .is_none_or(|&last| fragment.transfer_id > last);
                rule(fresh, "DATA-3");
                rule(declared <= self.limits.max_data_size, "DATA-6");
                rule(len <= declared, "DATA-5");
                rule(!fragment.last || len == declared, "DATA-5");
                rule(fragment.last || len > 0, "DATA-4");
                if !fragment.last {
                    // The transfer stays unfinished: it must fit the link's budget.
                    rule(self.partials.len() < self.limits.max_transfers, "DATA-7");
                    let total = self.reserved().saturating_add(u128::from(declared));
                    rule(
                        total <= u128::from(self.limits.max_reassembly_bytes),
                        "DATA-7",
                    );
                }
                if !broken.is_empty() {
                    return Expect::Refuse(broken);
                }
                self.last_begun
                    .insert(fragment.channel, fragment.transfer_id);
                if fragment.last {
                    return Expect::Accept(Some(fragment.chunk.to_vec()));
                }
                self.partials.insert(
                    key,
                    Partial {
                        declared,
                        next_index: 1,
                        data: fragment.chunk.to_vec(),
                    },
                );
                Expect::Accept(None)
            }
            None => {
                let Some(partial) = self.partials.get_mut(&key) else {
                    // Not in progress; at index 0 it is also a first fragment without FIRST.
                    let mut rules = vec!["DATA-4"];
                    if fragment.index == 0 {
                        rules.push("DATA-2");
                    }
                    return Expect::Refuse(rules);
                };
                rule(fragment.index == partial.next_index, "DATA-4");
                rule(fragment.last || len > 0, "DATA-4");
                let received = (partial.data.len() as u64).saturating_add(len);
                rule(received <= partial.declared, "DATA-5");
                rule(!fragment.last || received == partial.declared, "DATA-5");
                if fragment.index == 0 {
                    broken.push("DATA-2");
                }
                if !broken.is_empty() {
                    return Expect::Refuse(broken);
                }
                partial.data.extend_from_slice(&fragment.chunk);
                partial.next_index = partial.next_index.saturating_add(1);
                if !fragment.last {
                    return Expect::Accept(None);
                }
                let done = self.partials.remove(&key).map(|p| p.data);
                Expect::Accept(done)
            }
        }
    }

    fn abort(&mut self, channel: u32, transfer_id: u32) {
        self.partials.remove(&(channel, transfer_id));
    }

    fn abort_channel(&mut self, channel: u32) {
        self.partials.retain(|&(c, _), _| c != channel);
        self.last_begun.remove(&channel);
    }
}

struct Harness {
    reassembler: Reassembler,
    model: Model,
}

impl Harness {
    /// What a receiver does with an error: close the session of the error's channel.
    fn close_session(&mut self, err: &ReassemblyError, channel: u32) {
        assert_eq!(err.channel(), channel, "{err:?} is for another channel");
        let limit = matches!(err.rule(), "DATA-6" | "DATA-7");
        let session_error = if limit {
            SessionError::LimitExceeded
        } else {
            SessionError::ProtocolError
        };
        assert_eq!(err.session_error(), session_error, "{err:?}");
        assert!(!err.to_string().is_empty());
        self.reassembler.abort_channel(channel);
        self.model.abort_channel(channel);
    }

    /// Pushes one fragment into both the reassembler and the model and compares what they do.
    /// Returns whether the fragment was taken.
    fn push(&mut self, fragment: DataFragment) -> bool {
        let channel = fragment.channel;
        let expected = self.model.push(&fragment);
        let got = self.reassembler.push(fragment.clone());
        match (expected, got) {
            (Expect::Accept(None), Ok(None)) => true,
            (Expect::Accept(Some(expected)), Ok(Some(delivered))) => {
                assert!(
                    delivered[..] == expected[..],
                    "delivered {} bytes that are not the {} bytes sent",
                    delivered.len(),
                    expected.len()
                );
                true
            }
            (Expect::Refuse(rules), Err(err)) => {
                assert!(
                    rules.contains(&err.rule()),
                    "{err:?} names {}, but {fragment:?} breaks only {rules:?}",
                    err.rule()
                );
                self.close_session(&err, channel);
                false
            }
            (expected, got) => {
                panic!(
                    "{fragment:?}: the model expects {expected:?}, the reassembler gives {got:?}"
                )
            }
        }
    }

    /// The accounting matches the model and stays within the limits.
    fn check(&self) {
        let limits = &self.model.limits;
        let r = &self.reassembler;
        assert_eq!(r.transfers_in_progress(), self.model.partials.len());
        assert!(r.transfers_in_progress() <= limits.max_transfers);
        assert_eq!(u128::from(r.reserved_bytes()), self.model.reserved());
        assert!(r.reserved_bytes() <= limits.max_reassembly_bytes);
        assert_eq!(r.buffered_bytes(), self.model.buffered());
        assert!(r.buffered_bytes() <= r.reserved_bytes());
        for (len, capacity) in r.buffers() {
            // Growing by doubling, never ahead of the bytes by more than the first allocation.
            assert!(
                capacity <= AHEAD.max(len.saturating_mul(2)),
                "{capacity} bytes allocated for {len} bytes received"
            );
        }
    }
}

/// A fragment travels as a DATA frame: encoded, decoded and parsed back unchanged.
fn through_the_wire(fragment: &DataFragment) -> DataFragment {
    let mut wire = BytesMut::new();
    fragment.encode(1, &mut wire).expect("a fragment encodes");
    let frame = Frame::decode_exact(wire.freeze(), MAX_FRAME_SIZE, Some(1)).expect("it decodes");
    assert_eq!(frame.kind, FrameKind::Known(FrameType::Data));
    let parsed = DataFragment::parse(&frame).expect("it parses");
    assert_eq!(&parsed, fragment);
    parsed
}

/// Target `reassembly`: arbitrary sequences of data fragments into the reassembler.
///
/// Input: a configuration byte (see `limits`), then operations, each an operation byte and
/// its arguments (`fuzz/README.md` lists them): a fragment given by its fields, a raw DATA
/// payload, an abort, or a whole transfer cut by the [`Fragmenter`]. Every fragment goes
/// through the reassembler and a model of SPEC section 6: both must take or refuse it alike,
/// with an error naming a rule the fragment breaks; a delivered transfer must be exactly the
/// bytes its fragments carried, whole; after every operation the reserved, buffered and
/// allocated bytes and the number of transfers must match the model and stay within the limits.
pub fn reassembly(data: &[u8]) {
    let mut input = Input::new(data);
    let limits = limits(input.byte());
    let mut harness = Harness {
        reassembler: Reassembler::new(limits),
        model: Model {
            limits,
            partials: BTreeMap::new(),
            last_begun: BTreeMap::new(),
        },
    };
    while !input.is_empty() {
        let op = input.byte();
        let channel = u32::from((op >> 2) & 3).saturating_add(1);
        let first = op & OP_FIRST != 0;
        let last = op & OP_LAST != 0;
        match op & 3 {
            OP_FRAGMENT => {
                let transfer_id = input.varint() as u32;
                let index = input.varint() as u32;
                let total_length = first.then(|| input.varint());
                let len = usize::from(input.byte());
                let fragment = DataFragment {
                    channel,
                    transfer_id,
                    index,
                    total_length,
                    last,
                    chunk: Bytes::copy_from_slice(input.bytes(len)),
                };
                harness.push(through_the_wire(&fragment));
            }
            OP_RAW => {
                let len = usize::from(input.byte());
                let flags =
                    (if first { FLAG_FIRST } else { 0 }) | (if last { FLAG_LAST } else { 0 });
                let payload = Bytes::copy_from_slice(input.bytes(len));
                let frame = Frame {
                    version: 1,
                    kind: FrameKind::Known(FrameType::Data),
                    flags,
                    channel,
                    payload: payload.clone(),
                };
                let needed = if first {
                    FIRST_DATA_HEADER_LEN
                } else {
                    DATA_HEADER_LEN
                };
                match DataFragment::parse(&frame) {
                    Ok(fragment) => {
                        assert!(payload.len() >= needed);
                        assert_eq!(fragment.chunk, payload.slice(needed..));
                        assert_eq!(
                            (fragment.total_length.is_some(), fragment.last),
                            (first, last)
                        );
                        harness.push(fragment);
                    }
                    Err(err) => {
                        assert!(payload.len() < needed);
                        assert_eq!(err.rule(), "DATA-1");
                        harness.close_session(&err, channel);
                    }
                }
            }
            OP_ABORT if first => {
                harness.reassembler.abort_channel(channel);
                harness.model.abort_channel(channel);
            }
            OP_ABORT => {
                let transfer_id = input.varint() as u32;
                harness.reassembler.abort(channel, transfer_id);
                harness.model.abort(channel, transfer_id);
            }
            _ => {
                let transfer_id = input.varint() as u32;
                let frame_size = FRAGMENTER_FRAME_SIZES[usize::from((op >> 4) & 3)];
                let room =
                    u64::from(frame_size).saturating_sub((HEADER_LEN + DATA_HEADER_LEN) as u64);
                let max_len = room.saturating_mul(FRAGMENTER_MAX_FRAGMENTS);
                let len = input
                    .varint()
                    .checked_rem(max_len.saturating_add(1))
                    .unwrap_or(0);
                let fill = input.byte();
                fragmenter_transfer(&mut harness, channel, transfer_id, len, fill, frame_size);
            }
        }
        harness.check();
    }
}

/// Cuts `len` bytes into frames with the [`Fragmenter`] and pushes them until the transfer
/// completes or is refused.
fn fragmenter_transfer(
    harness: &mut Harness,
    channel: u32,
    transfer_id: u32,
    len: u64,
    fill: u8,
    frame_size: u32,
) {
    // Bytes that differ from their neighbours, so that a reordering would show.
    let pattern: Vec<u8> = (0..=255u8).map(|i| i.wrapping_add(fill)).collect();
    let mut data = Vec::new();
    while (data.len() as u64) < len {
        let take = usize::try_from(len.saturating_sub(data.len() as u64)).unwrap_or(256);
        data.extend_from_slice(&pattern[..take.min(pattern.len())]);
    }
    let data = Bytes::from(data);
    let fragmenter = match Fragmenter::new(1, channel, transfer_id, data.clone(), frame_size) {
        Ok(fragmenter) => fragmenter,
        Err(_) => {
            assert!(frame_size as usize <= HEADER_LEN + FIRST_DATA_HEADER_LEN);
            return;
        }
    };
    let count = fragmenter.len();
    let mut sent = Vec::new();
    let mut pushed = 0usize;
    for (index, wire) in fragmenter.enumerate() {
        assert!(
            wire.len() <= frame_size as usize,
            "fragment over the frame size"
        );
        let frame = Frame::decode_exact(wire, frame_size, Some(1)).expect("a fragment decodes");
        let fragment = DataFragment::parse(&frame).expect("a fragment parses");
        assert_eq!(fragment.index as usize, index);
        assert_eq!(fragment.total_length.is_some(), index == 0);
        assert_eq!(fragment.last, index.saturating_add(1) == count);
        assert!(fragment.last || !fragment.chunk.is_empty());
        sent.extend_from_slice(&fragment.chunk);
        pushed = pushed.saturating_add(1);
        if !harness.push(fragment) {
            return;
        }
    }
    assert_eq!(pushed, count, "the fragmenter's count is wrong");
    assert_eq!(sent, data, "the fragments do not carry the data");
}
