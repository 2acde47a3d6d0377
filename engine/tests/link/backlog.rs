//! A peer that does not read what it is sent (SPEC `LINK-13`): what the engine queues in answer
//! is bounded, and a link whose peer takes nothing for three keepalive intervals is closed.

use std::time::Duration;

use acm_engine::{Closer, EngineConfig, EngineEvent};
use acm_wire::Control;
use acm_wire::pb::{self, FrameType, LinkCloseReason};

use crate::harness::*;

fn ping(value: u64) -> bytes::Bytes {
    frame(Control::Ping(pb::Ping { value }), 0)
}

fn closed_by_us_with(events: &[EngineEvent]) -> Option<(LinkCloseReason, String)> {
    events.iter().find_map(|e| match e {
        EngineEvent::LinkClosed {
            by: Closer::Local,
            reason,
            detail,
        } => Some((*reason, detail.clone())),
        _ => None,
    })
}

#[test]
fn link_13_a_peer_that_pings_and_reads_nothing_is_closed_once_its_answers_fill_the_queue() {
    let config = EngineConfig::default().with_max_queued_answers(100);
    let mut pair = Pair::up_with(config, EngineConfig::default(), 65_535);
    let now = pair.now;
    // B pings and never takes A's frames: A's PONGs pile up until the bound.
    for value in 0..10_000 {
        pair.a.handle_message(now, ping(value));
        assert!(
            pair.a.queued_control_frames() <= 101,
            "A queued {} frames after {value} pings",
            pair.a.queued_control_frames()
        );
    }
    assert!(pair.a.is_closed());
    let events = events(&mut pair.a);
    let (reason, detail) = closed_by_us_with(&events).expect("A closed the link");
    assert_eq!(reason, LinkCloseReason::ResourceExhausted);
    assert!(detail.starts_with("LINK-13"), "{detail}");
    // What was queued is dropped; only LINK_CLOSE is left to try.
    let frames = drain_frames(&mut pair.a, now);
    assert_eq!(frames.len(), 1);
    assert_eq!(
        link_close(&frames).map(|c| c.reason()),
        Some(LinkCloseReason::ResourceExhausted)
    );
}

#[test]
fn link_13_answers_taken_as_they_come_never_close_the_link() {
    let config = EngineConfig::default().with_max_queued_answers(100);
    let mut pair = Pair::up_with(config, EngineConfig::default(), 65_535);
    let now = pair.now;
    for value in 0..10_000 {
        pair.a.handle_message(now, ping(value));
        if value % 50 == 0 {
            let pongs = drain_frames(&mut pair.a, now);
            assert!(pongs.iter().all(|f| f.type_code() == FrameType::Pong as u8));
        }
    }
    assert!(pair.a.is_up());
    assert_eq!(pair.a.queued_answers(), 49);
}

#[test]
fn link_13_frames_the_peer_takes_none_of_for_three_intervals_close_the_link() {
    let mut pair = Pair::up();
    let (a_channel, _) = pair.connected();
    let start = pair.now;
    // From now on A's frames are never taken; B still sends (a PING every 10 s), so A does
    // hear from it and LINK-6's silence never comes.
    pair.a.send_message(a_channel, "stuck").expect("queued");
    let mut value = 0;
    while !pair.a.is_closed() {
        let next = pair.a.poll_timeout().expect("a deadline");
        let step = pair.now + Duration::from_secs(10);
        if step <= next {
            pair.now = step;
            value += 1;
            pair.a.handle_message(pair.now, ping(value));
        } else {
            pair.now = next;
            pair.a.handle_timeout(next);
        }
        assert!(pair.now - start <= Duration::from_secs(46), "still open");
    }
    assert_eq!(pair.now - start, Duration::from_secs(45));
    let events = events(&mut pair.a);
    let (reason, detail) = closed_by_us_with(&events).expect("A closed the link");
    assert_eq!(reason, LinkCloseReason::ResourceExhausted);
    assert!(detail.starts_with("LINK-13"), "{detail}");
    assert_eq!(
        drain_frames(&mut pair.a, pair.now).len(),
        1,
        "LINK_CLOSE alone"
    );
}

#[test]
fn link_13_a_quiet_link_whose_frames_are_taken_stays_up() {
    let mut pair = Pair::up();
    // Both sides ping each other and take every frame: nothing waits for long.
    pair.advance(Duration::from_secs(3_600));
    assert!(pair.a.is_up() && pair.b.is_up());
}
