//! Frames in two parts (`poll_transmit_buf`, `handle_message_buf`): a DATA frame leaves as its
//! headers and a slice of the app's bytes, and a receiver takes a frame split anywhere exactly
//! as it takes the whole.

use acm_engine::{EngineConfig, EngineEvent};
use acm_transport::FrameBuf;
use acm_wire::pb::CollaborateEventType;
use bytes::Bytes;

use crate::harness::{Pair, drain_frames, link_close};

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (inner, outer) = (inner.as_ptr_range(), outer.as_ptr_range());
    outer.start <= inner.start && inner.end <= outer.end
}

#[test]
fn a_data_frame_leaves_with_the_apps_bytes_and_arrives_without_a_copy() {
    let mut pair = Pair::up();
    let (a, b) = pair.connected();
    let data = Bytes::from(vec![5u8; 40_000]);
    pair.a.send_data(a, data.clone()).unwrap();
    let frame = pair.a.poll_transmit_buf(pair.now).expect("a DATA frame");
    assert!(
        within(frame.body(), &data),
        "the chunk is a slice of the app's bytes"
    );
    assert_eq!(frame.body().len(), data.len());
    pair.b.handle_message_buf(pair.now, frame);
    let delivered = std::iter::from_fn(|| pair.b.poll_event())
        .find_map(|event| match event {
            EngineEvent::Data { channel, data } if channel == b => Some(data),
            _ => None,
        })
        .expect("the transfer, whole");
    assert_eq!(delivered, data);
    assert_eq!(delivered.as_ptr(), data.as_ptr(), "delivered with no copy");
}

/// Runs one conversation from A to B twice, B taking every frame whole in the first run and
/// split by `split(index, frame length)` in the second; returns B's events and frames of both.
fn both_ways(split: impl Fn(usize, usize) -> usize) -> [(Vec<EngineEvent>, Vec<String>); 2] {
    [false, true].map(|in_parts| {
        let mut pair = Pair::up_with(EngineConfig::default(), EngineConfig::default(), 2_000);
        let (a, _) = pair.connected();
        pair.a.send_message(a, &"m".repeat(1_000)).unwrap();
        pair.a
            .send_data(a, (0..30_000u32).map(|i| i as u8).collect())
            .unwrap();
        pair.a.send_data(a, Bytes::from_static(b"small")).unwrap();
        pair.a
            .send_collaborate_event(a, CollaborateEventType::SendFailure, "late")
            .unwrap();
        let mut index = 0;
        while let Some(frame) = pair.a.poll_transmit_buf(pair.now) {
            let whole = frame.into_bytes();
            if in_parts {
                let at = split(index, whole.len()).min(whole.len());
                let parts = FrameBuf::new(whole.slice(..at), whole.slice(at..));
                pair.b.handle_message_buf(pair.now, parts);
            } else {
                pair.b.handle_message(pair.now, whole);
            }
            index += 1;
        }
        let events = std::iter::from_fn(|| pair.b.poll_event()).collect();
        let sent = drain_frames(&mut pair.b, pair.now)
            .iter()
            .map(|f| format!("{f:?}"))
            .collect();
        (events, sent)
    })
}

#[test]
fn a_frame_split_anywhere_is_taken_as_the_whole_frame() {
    let splits: [fn(usize, usize) -> usize; 7] = [
        |_, _| 0,
        |_, len| len,
        |_, _| 5,
        |_, _| 12,
        |_, _| 20,
        |_, _| 28,
        |i, len| (i * 7_919) % (len + 1),
    ];
    for split in splits {
        let [whole, parts] = both_ways(split);
        assert!(
            whole
                .0
                .iter()
                .any(|e| matches!(e, EngineEvent::Data { data, .. } if data.len() == 30_000)),
            "the conversation carried its transfer: {:?}",
            whole.0
        );
        assert_eq!(parts, whole);
    }
}

#[test]
fn a_data_frame_in_parts_that_lies_about_its_length_fails_the_link_as_the_whole_would() {
    let outcomes = [false, true].map(|in_parts| {
        let mut pair = Pair::up();
        let (a, _) = pair.connected();
        pair.a.send_data(a, Bytes::from(vec![1u8; 3_000])).unwrap();
        let (head, body) = pair.a.poll_transmit_buf(pair.now).unwrap().into_parts();
        let mut head = head.to_vec();
        head[7] = head[7].wrapping_add(1); // the payload length's lowest byte
        let frame = FrameBuf::new(head.into(), body);
        if in_parts {
            pair.b.handle_message_buf(pair.now, frame);
        } else {
            pair.b.handle_message(pair.now, frame.into_bytes());
        }
        assert!(pair.b.is_closed());
        link_close(&drain_frames(&mut pair.b, pair.now)).expect("a LINK_CLOSE")
    });
    assert_eq!(outcomes[0], outcomes[1]);
}
