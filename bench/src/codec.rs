//! The wire alone: the stream decoder on 64 KiB DATA frames, and a ConnectRequest encoded and
//! decoded.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use acm_wire::bare_pb;
use acm_wire::pb::{self, FrameType};
use acm_wire::{Control, DataFragment, Fragmenter, Frame, FrameDecoder, encode_control};
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use tokio_util::codec::{Decoder as _, LengthDelimitedCodec};

use crate::alloc::Snapshot;
use crate::harness::{Pairs, Plan, pairs_sync, repeat};
use crate::report::{Figure, Row};

/// The largest frame a link accepts by default (SPEC section 10): the "64 KiB" frame.
const FRAME: u32 = 65_535;

/// Frames in the stream one decoding pass goes through.
const FRAMES_PER_PASS: usize = 64;

/// A byte stream of `frames` full-size DATA frames of one transfer.
fn data_stream(frames: usize) -> Bytes {
    let payload = (FRAME as usize - 12 - 8) * frames - 8;
    let data = Bytes::from((0..payload).map(|i| i as u8).collect::<Vec<u8>>());
    let mut stream = BytesMut::new();
    for frame in Fragmenter::new(1, 1, 1, data, FRAME).expect("frame size is valid") {
        assert_eq!(frame.len(), FRAME as usize);
        stream.extend_from_slice(&frame);
    }
    stream.freeze()
}

/// The length-delimited codec set up for acm's header: a 24-bit big-endian length at offset 5
/// that counts the payload after the 4-byte channel id.
fn length_delimited() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(5)
        .length_field_length(3)
        .length_adjustment(4)
        .max_frame_length(FRAME as usize)
        .new_codec()
}

/// Cuts every frame out of `buf` with every header rule checked, as the codec does without
/// them. The frames go to `sink` (so that freeing them is not timed).
fn decode_frames_only(buf: &mut BytesMut, sink: &mut Vec<Frame>) {
    let mut decoder = FrameDecoder::new(FRAME);
    decoder.set_negotiated_version(1);
    while let Some(frame) = decoder.decode(buf).expect("valid stream") {
        sink.push(frame);
    }
}

/// Decodes every frame of `buf` as the session does: header checks, then the data header.
/// The fragments go to `sink`.
fn decode_ours(buf: &mut BytesMut, sink: &mut Vec<DataFragment>) {
    let mut decoder = FrameDecoder::new(FRAME);
    decoder.set_negotiated_version(1);
    while let Some(frame) = decoder.decode(buf).expect("valid stream") {
        sink.push(DataFragment::from_frame(frame).expect("valid fragment"));
    }
}

fn decode_baseline(buf: &mut BytesMut, sink: &mut Vec<BytesMut>) {
    let mut codec = length_delimited();
    while let Some(frame) = codec.decode(buf).expect("valid stream") {
        sink.push(frame);
    }
}

/// Times `decode` on fresh copies of `stream` into `sink`, leaving the copying and the freeing
/// out of the time. Each copy is decoded right after it is made, while it is still in the
/// cache, as a receive buffer is just after the transport filled it.
fn timed_pass<T>(
    stream: &Bytes,
    reps: u64,
    sink: &mut Vec<T>,
    mut decode: impl FnMut(&mut BytesMut, &mut Vec<T>),
) -> Duration {
    let mut took = Duration::ZERO;
    for _ in 0..reps {
        let mut buf = BytesMut::from(&stream[..]);
        let start = Instant::now();
        decode(&mut buf, sink);
        took += start.elapsed();
        black_box(&sink);
        sink.clear();
    }
    took
}

/// Measure 1: 64 KiB DATA frames from a byte stream, against tokio-util's
/// `LengthDelimitedCodec` on the same bytes and against a copy of them.
pub fn decode_frames(plan: Plan) -> Vec<Row> {
    let stream = data_stream(FRAMES_PER_PASS);
    let gb = |seconds: f64| stream.len() as f64 / seconds / 1e9;

    // Zero copies: every chunk points into the buffer it was decoded from, and decoding
    // allocates nothing in proportion to the payload.
    let mut probe = BytesMut::from(&stream[..]);
    let within = probe.as_ptr() as usize..probe.as_ptr() as usize + stream.len();
    let mut fragments = Vec::with_capacity(FRAMES_PER_PASS);
    let counting = crate::alloc::count();
    let before = Snapshot::now();
    decode_ours(&mut probe, &mut fragments);
    let after = Snapshot::now();
    drop(counting);
    let allocated_per_frame = after.allocated_since(&before) as f64 / FRAMES_PER_PASS as f64;
    let allocations = after.allocations_since(&before);
    let shared = fragments.len() == FRAMES_PER_PASS
        && fragments
            .iter()
            .all(|f| within.contains(&(f.chunk.as_ptr() as usize)));
    fragments.clear();

    let (mut ours, mut theirs) = (Vec::with_capacity(FRAMES_PER_PASS), Vec::new());
    let against_codec = pairs_sync(
        plan,
        |reps| timed_pass(&stream, reps, &mut ours, decode_frames_only),
        |reps| timed_pass(&stream, reps, &mut theirs, decode_baseline),
    );
    let mut copy = vec![0u8; stream.len()];
    let against_copy = pairs_sync(
        plan,
        |reps| timed_pass(&stream, reps, &mut fragments, decode_ours),
        |reps| {
            repeat(reps, || {
                copy.copy_from_slice(black_box(&stream));
                black_box(&copy);
            })
        },
    );

    let throughput = |pairs: &Pairs| pairs.time_ratio().inverse();
    let codec_ratio = throughput(&against_codec);
    let copy_ratio = throughput(&against_copy);
    vec![
        Row {
            measure: "decode 64 KiB DATA frames from a stream".into(),
            ours: Figure::new(gb(against_codec.ours_median()), "GB/s"),
            baseline: Some((
                "LengthDelimitedCodec".into(),
                Figure::new(gb(against_codec.baseline_median()), "GB/s"),
            )),
            ratio: Some(codec_ratio),
            target: "≥ 1.0× LengthDelimitedCodec".into(),
            met: Some(codec_ratio.median >= 1.0),
            note: format!(
                "{FRAMES_PER_PASS} frames of {FRAME} bytes per pass, each pass just copied into \
                 the receive buffer (untimed); FrameDecoder checks every header rule of SPEC 3.5, \
                 the codec only splits"
            ),
        },
        Row {
            measure: "decode 64 KiB DATA frames: payload copies".into(),
            ours: Figure::new(gb(against_copy.ours_median()), "GB/s"),
            baseline: Some((
                "memcpy".into(),
                Figure::new(gb(against_copy.baseline_median()), "GB/s"),
            )),
            ratio: Some(copy_ratio),
            target: "no copy of the payload".into(),
            met: Some(shared && allocated_per_frame < 64.0),
            note: format!(
                "FrameDecoder and the data header (DataFragment::from_frame) against a copy of \
                 the same bytes; every chunk points into the receive buffer: {}; \
                 allocations while decoding {FRAMES_PER_PASS} frames: {allocations} \
                 ({allocated_per_frame:.0} bytes per frame)",
                if shared { "yes" } else { "NO" }
            ),
        },
    ]
}

/// A request as full as the API allows in practice: every PeerInfo field, both start options,
/// and a dozen parameters; as prost alone generates its types.
fn full_request() -> bare_pb::ConnectRequest {
    let peer = |device: &str| bare_pb::PeerInfo {
        device_id: device.into(),
        bundle_name: "com.example.collaborative.notes".into(),
        module_name: "entry".into(),
        ability_name: "EntryAbility".into(),
        service_name: "notes-sync-service".into(),
    };
    let parameters: BTreeMap<String, String> = (0..12)
        .map(|i| {
            (
                format!("parameter-key-{i}"),
                format!("parameter value number {i}"),
            )
        })
        .collect();
    bare_pb::ConnectRequest {
        token: Bytes::from_static(&[0x5A; 16]),
        source: Some(peer("phone-0123456789abcdef")),
        target: Some(peer("tablet-0123456789abcdef")),
        options: Some(bare_pb::ConnectOptions {
            need_send_data: Some(true),
            start_options: bare_pb::StartOptionParams::StartInForeground.into(),
            parameters,
        }),
    }
}

/// Measure 2: one ConnectRequest frame encoded and decoded (with its header checks and the
/// SPEC checks of its fields), against bare prost on the same message: its types as prost
/// alone generates them (`bare_pb`), where the crate's own `pb::PeerInfo` is written out.
pub fn connect_request(plan: Plan) -> Vec<Row> {
    let message = full_request();
    // The same message in the crate's types: the two encode the same bytes.
    let ours_message =
        pb::ConnectRequest::decode(&message.encode_to_vec()[..]).expect("the same message");
    assert_eq!(ours_message.encode_to_vec(), message.encode_to_vec());
    let control = Control::ConnectRequest(ours_message);
    let ours = || {
        let mut frames = encode_control(black_box(&control), 1, 3, FRAME).expect("encodes");
        // The receiver owns the frame's bytes, as a transport hands them over.
        let frame = Frame::decode_exact(frames.swap_remove(0), FRAME, Some(1)).expect("decodes");
        let decoded = Control::decode(FrameType::ConnectRequest, &frame.payload)
            .expect("a control body")
            .expect("valid");
        black_box(decoded);
    };
    let baseline = || {
        let bytes = black_box(&message).encode_to_vec();
        let decoded = bare_pb::ConnectRequest::decode(&bytes[..]).expect("decodes");
        black_box(decoded);
    };
    let pairs = pairs_sync(
        plan,
        |reps| repeat(reps, ours),
        |reps| repeat(reps, baseline),
    );
    let ratio = pairs.time_ratio();
    vec![Row {
        measure: "encode + decode one ConnectRequest frame".into(),
        ours: Figure::new(pairs.ours_median() * 1e6, "µs"),
        baseline: Some((
            "prost".into(),
            Figure::new(pairs.baseline_median() * 1e6, "µs"),
        )),
        ratio: Some(ratio),
        target: "≤ 1.2× prost".into(),
        met: Some(ratio.median <= 1.2),
        note: format!(
            "a {}-byte body: full PeerInfo both ways, 12 parameters; ours adds the frame header, \
             its checks and the SPEC checks of every field",
            message.encoded_len()
        ),
    }]
}
