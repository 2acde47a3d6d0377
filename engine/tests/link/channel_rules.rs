//! Channel allocation (SPEC `LINK-11`) and the bound on sessions per link (SPEC `SESS-8`).

use acm_engine::{EngineConfig, EngineEvent};
use acm_wire::pb::{self, ConnectErrorCode, FrameType, connect_response};
use acm_wire::{Control, Frame};

use crate::harness::*;

/// The requests the engine was handed, by channel.
fn incoming_channels(events: &[EngineEvent]) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::IncomingRequest(request) => Some(request.channel),
            _ => None,
        })
        .collect()
}

/// A request from A's notes app for service `service`, with token `seed`.
fn request_for(seed: u8, service: &str) -> acm_engine::OutgoingRequest {
    let mut req = request(seed);
    req.target.service_name = service.into();
    req
}

#[test]
fn link_11_the_peers_channels_are_consecutive_and_a_skipped_one_closes_the_link() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    engine.handle_message(now, request_frame(request_for(1, "one"), 1));
    engine.handle_message(now, request_frame(request_for(2, "two"), 3));
    assert_eq!(incoming_channels(&events(&mut engine)), [1, 3]);
    assert!(link_close(&drain_frames(&mut engine, now)).is_none());
    // Channel 5 is skipped: 7 is not the peer's next channel.
    engine.handle_message(now, request_frame(request_for(3, "three"), 7));
    let close = link_close(&drain_frames(&mut engine, now)).expect("the link closes");
    assert_eq!(close.reason(), pb::LinkCloseReason::ProtocolError);
    assert!(close.message.starts_with("LINK-11"), "{}", close.message);
    assert!(incoming_channels(&events(&mut engine)).is_empty());
}

#[test]
fn link_11_the_peers_first_channel_is_1_and_no_other() {
    for first in [3, 5, 0x7FFF_FFFF, u32::MAX] {
        let (now, mut engine) = lone_engine(EngineConfig::default());
        engine.handle_message(now, request_frame(request(1), first));
        let close = link_close(&drain_frames(&mut engine, now));
        assert!(
            close.is_some_and(|c| c.message.starts_with("LINK-11")),
            "a first request on channel {first} closes the link"
        );
    }
}

#[test]
fn link_11_a_message_on_a_channel_between_two_opened_ones_cannot_occur() {
    // In version 0.1 a peer could open 1 and 5; a MESSAGE on 3 was then discarded instead of
    // closing the link. Now 5 itself is refused, so channel 3 is never skipped.
    let (now, mut engine) = lone_engine(EngineConfig::default());
    engine.handle_message(now, request_frame(request_for(1, "one"), 1));
    engine.handle_message(now, request_frame(request_for(2, "two"), 5));
    let close = link_close(&drain_frames(&mut engine, now)).expect("the link closes");
    assert!(close.message.starts_with("LINK-11"), "{}", close.message);
    assert!(engine.is_closed());
}

fn answer(frames: &[Frame], channel: u32) -> Option<pb::ConnectResponse> {
    frames
        .iter()
        .filter(|f| f.channel == channel)
        .find_map(
            |f| match Control::decode(FrameType::ConnectResponse, &f.payload) {
                Some(Ok(Control::ConnectResponse(r))) => Some(r),
                _ => None,
            },
        )
}

#[test]
fn sess_8_one_request_past_the_bound_is_refused_naming_the_rule_and_the_link_goes_on() {
    let config = EngineConfig::default().with_max_sessions(3);
    let (now, mut engine) = lone_engine(config);
    for (i, service) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let seed = u8::try_from(i).unwrap() + 1;
        engine.handle_message(
            now,
            request_frame(request_for(seed, service), 2 * seed as u32 - 1),
        );
    }
    assert_eq!(incoming_channels(&events(&mut engine)), [1, 3, 5]);
    let frames = drain_frames(&mut engine, now);
    let refused = answer(&frames, 7).expect("the fourth request is answered");
    match refused.result {
        Some(connect_response::Result::Rejected(rejected)) => {
            assert_eq!(rejected.code(), ConnectErrorCode::SystemInternalError);
            assert!(rejected.reason.starts_with("SESS-8"), "{}", rejected.reason);
        }
        other => panic!("{other:?}"),
    }
    assert!(link_close(&frames).is_none());
    // A session that ends makes room.
    engine
        .reject(1, ConnectErrorCode::PeerAppRejected, "no")
        .unwrap();
    engine.handle_message(now, request_frame(request_for(9, "e"), 9));
    assert_eq!(incoming_channels(&events(&mut engine)), [9]);
}
