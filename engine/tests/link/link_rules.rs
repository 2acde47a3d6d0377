//! Link setup, keepalive and link-level errors.

use std::time::Duration;

use acm_engine::{Closer, ConnectOutcome, EngineConfig, EngineEvent, LinkEngine};
use acm_transport::Role;
use acm_wire::pb::{self, DisconnectReason, FrameType, LinkCloseReason};
use acm_wire::{Control, FrameHeader};
use bytes::Bytes;

use crate::harness::*;

fn closed_with(events: &[EngineEvent]) -> Option<(Closer, LinkCloseReason)> {
    events.iter().find_map(|e| match e {
        EngineEvent::LinkClosed { by, reason, .. } => Some((*by, *reason)),
        _ => None,
    })
}

#[test]
fn link_1_both_sides_send_hello_first_and_agree_on_version_1() {
    let mut pair = Pair::new(EngineConfig::default(), EngineConfig::default(), 65_535);
    pair.pump();
    let first_a = pair.wire.iter().find(|(from_a, _)| *from_a).unwrap();
    let first_b = pair.wire.iter().find(|(from_a, _)| !*from_a).unwrap();
    for (_, frame) in [first_a, first_b] {
        assert_eq!(frame.type_code(), FrameType::Hello as u8);
        assert!(frame.encoded_len() <= 128, "LINK-1: HELLO over 128 bytes");
    }
    assert!(pair.a_events.contains(&EngineEvent::LinkUp {
        version: 1,
        peer_device: B.into()
    }));
    assert!(pair.b_events.contains(&EngineEvent::LinkUp {
        version: 1,
        peer_device: A.into()
    }));
}

#[test]
fn link_2_a_frame_before_hello_closes_the_link() {
    let now = std::time::Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Acceptor,
        B,
        None,
        65_535,
        [0; 16],
        EngineConfig::default(),
    );
    let ping = frame(Control::Ping(pb::Ping { value: 1 }), 0);
    engine.handle_message(now, ping);
    let sent = drain_frames(&mut engine, now);
    let close = link_close(&sent).expect("LINK_CLOSE sent");
    assert_eq!(close.reason(), LinkCloseReason::ProtocolError);
    assert!(close.message.starts_with("LINK-2"), "{}", close.message);
    assert!(engine.is_finished());
}

#[test]
fn link_2_a_second_hello_closes_the_link() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    engine.handle_message(now, hello_frame(A, 1, 1));
    let close = link_close(&drain_frames(&mut engine, now)).unwrap();
    assert_eq!(close.reason(), LinkCloseReason::ProtocolError);
    assert!(close.message.starts_with("LINK-2"));
}

#[test]
fn link_3_an_invalid_hello_closes_the_link() {
    let now = std::time::Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Acceptor,
        B,
        None,
        65_535,
        [0; 16],
        EngineConfig::default(),
    );
    let mut bad = hello(A, 1, 1);
    bad.nonce = Bytes::from_static(&[1; 3]);
    engine.handle_message(now, frame(Control::Hello(bad), 0));
    let close = link_close(&drain_frames(&mut engine, now)).unwrap();
    assert_eq!(close.reason(), LinkCloseReason::ProtocolError);
    assert!(close.message.starts_with("LINK-3"), "{}", close.message);
}

#[test]
fn link_3_a_hello_from_another_device_than_the_transport_reached_closes_the_link() {
    let now = std::time::Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Acceptor,
        B,
        Some(A.into()),
        65_535,
        [0; 16],
        EngineConfig::default(),
    );
    engine.handle_message(now, hello_frame("impostor", 1, 1));
    let close = link_close(&drain_frames(&mut engine, now)).unwrap();
    assert!(close.message.starts_with("LINK-3"), "{}", close.message);
    assert!(!engine.is_up());
}

#[test]
fn link_4_no_common_version_closes_with_its_reason() {
    let now = std::time::Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Acceptor,
        B,
        None,
        65_535,
        [0; 16],
        EngineConfig::default(),
    );
    engine.handle_message(now, hello_frame(A, 2, 3));
    let sent = drain_frames(&mut engine, now);
    let close = link_close(&sent).unwrap();
    assert_eq!(close.reason(), LinkCloseReason::NoCommonVersion);
    assert!(close.message.contains("1..=1") && close.message.contains("2..=3"));
    assert_eq!(
        closed_with(&events(&mut engine)),
        Some((Closer::Local, LinkCloseReason::NoCommonVersion))
    );
}

#[test]
fn link_10_no_hello_in_time_closes_with_timeout() {
    let now = std::time::Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Dialer,
        A,
        None,
        65_535,
        [0; 16],
        EngineConfig::default(),
    );
    let _ = drain_frames(&mut engine, now);
    let deadline = engine.poll_timeout().unwrap();
    assert_eq!(deadline - now, Duration::from_secs(10));
    engine.handle_timeout(deadline - Duration::from_millis(1));
    assert!(!engine.is_closed());
    engine.handle_timeout(deadline);
    let close = link_close(&drain_frames(&mut engine, deadline)).unwrap();
    assert_eq!(close.reason(), LinkCloseReason::Timeout);
}

#[test]
fn link_6_an_idle_side_pings_and_the_peer_answers() {
    let mut pair = Pair::up();
    pair.wire.clear();
    pair.advance(Duration::from_secs(15));
    let pings = pair
        .wire
        .iter()
        .filter(|(_, f)| f.type_code() == FrameType::Ping as u8)
        .count();
    let pongs = pair
        .wire
        .iter()
        .filter(|(_, f)| f.type_code() == FrameType::Pong as u8)
        .count();
    assert!(pings >= 1, "no PING after an idle interval");
    assert_eq!(pings, pongs, "every PING is answered");
    // A link that keeps pinging stays up for as long as we like.
    pair.advance(Duration::from_secs(600));
    assert!(pair.a.is_up() && pair.b.is_up());
}

#[test]
fn link_6_three_silent_intervals_close_the_link_and_end_its_sessions() {
    let mut pair = Pair::up();
    let (a_channel, _) = pair.connected();
    // B goes silent: A hears nothing from now on.
    let start = pair.now;
    loop {
        let next = pair.a.poll_timeout().unwrap();
        pair.now = next;
        pair.a.handle_timeout(next);
        let _ = drain_frames(&mut pair.a, next);
        if pair.a.is_closed() {
            break;
        }
    }
    assert_eq!(pair.now - start, Duration::from_secs(45));
    let events = events(&mut pair.a);
    assert!(events.contains(&EngineEvent::SessionClosed {
        channel: a_channel,
        reason: DisconnectReason::NetworkDisconnected,
        error: pb::SessionError::None,
        detail: "the link ended".into(),
    }));
    assert_eq!(
        closed_with(&events),
        Some((Closer::Local, LinkCloseReason::Timeout))
    );
}

#[test]
fn link_6_keepalive_uses_the_smaller_interval_of_the_two() {
    let fast = EngineConfig::default().with_keepalive_interval(Duration::from_secs(2));
    let mut pair = Pair::up_with(EngineConfig::default(), fast, 65_535);
    pair.wire.clear();
    pair.advance(Duration::from_secs(2));
    assert!(
        pair.wire
            .iter()
            .any(|(from_a, f)| *from_a && f.type_code() == FrameType::Ping as u8),
        "A pings at B's 2 s interval"
    );
}

#[test]
fn link_7_link_close_from_the_peer_ends_every_session_with_network_disconnected() {
    let mut pair = Pair::up();
    let (a_channel, b_channel) = pair.connected();
    pair.a.close(LinkCloseReason::Normal, "shutting down");
    pair.pump();
    let (a_events, b_events) = pair.take_events();
    assert_eq!(
        closed_with(&a_events),
        Some((Closer::Local, LinkCloseReason::Normal))
    );
    assert_eq!(
        closed_with(&b_events),
        Some((Closer::Peer, LinkCloseReason::Normal))
    );
    for (events, channel) in [(&a_events, a_channel), (&b_events, b_channel)] {
        assert!(events.iter().any(|e| matches!(e,
            EngineEvent::SessionClosed { channel: c, reason: DisconnectReason::NetworkDisconnected, .. } if *c == channel)));
    }
    assert!(pair.a.is_finished() && pair.b.is_finished());
}

#[test]
fn a_lost_link_ends_sessions_aborts_transfers_and_fails_pending_connects() {
    let mut pair = Pair::up();
    let (a_channel, _) = pair.connected();
    let transfer = pair
        .a
        .send_data(a_channel, Bytes::from(vec![1; 200_000]))
        .unwrap();
    let pending = pair.a.connect(pair.now, reverse_like_request()).unwrap();
    pair.a.handle_link_lost("connection reset");
    let events = events(&mut pair.a);
    assert!(events.contains(&EngineEvent::TransferAborted {
        channel: a_channel,
        transfer_id: transfer
    }));
    assert!(events.iter().any(|e| matches!(e,
        EngineEvent::SessionClosed { channel, reason: DisconnectReason::NetworkDisconnected, .. } if *channel == a_channel)));
    assert!(events.iter().any(|e| matches!(e,
        EngineEvent::ConnectResult { channel, outcome: ConnectOutcome::Failed { code: pb::ConnectErrorCode::SystemInternalError, .. } } if *channel == pending)));
    assert_eq!(closed_with(&events).map(|c| c.0), Some(Closer::Transport));
    assert!(
        pair.a.poll_transmit(pair.now).is_none(),
        "nothing is sent after the loss"
    );
}

fn reverse_like_request() -> acm_engine::OutgoingRequest {
    let mut other = request(9);
    other.source.bundle_name = "com.example.other".into();
    other
}

#[test]
fn frame_errors_close_the_link_with_the_rule_and_reason() {
    let cases: Vec<(Bytes, LinkCloseReason, &str)> = vec![
        (
            Bytes::from_static(&[0xAB; 12]),
            LinkCloseReason::ProtocolError,
            "FRAME-2",
        ),
        (
            oversized_header(),
            LinkCloseReason::FrameTooLarge,
            "FRAME-5",
        ),
        (
            Control::Message(pb::Message { text: "x".into() })
                .encode_frame(1, 0)
                .unwrap(),
            LinkCloseReason::ProtocolError,
            "FRAME-8",
        ),
        (truncated_frame(), LinkCloseReason::ProtocolError, "FRAME-9"),
    ];
    for (bytes, reason, rule) in cases {
        let (now, mut engine) = lone_engine(EngineConfig::default());
        engine.handle_message(now, bytes);
        let close = link_close(&drain_frames(&mut engine, now)).expect("closes");
        assert_eq!(close.reason(), reason, "{rule}");
        assert!(close.message.starts_with(rule), "{rule}: {}", close.message);
    }
}

fn oversized_header() -> Bytes {
    let header = FrameHeader {
        version: 1,
        frame_type: FrameType::Message as u8,
        flags: 0,
        length: 1_000_000,
        channel: 1,
    };
    Bytes::copy_from_slice(&header.to_bytes())
}

fn truncated_frame() -> Bytes {
    let whole = frame(Control::Ping(pb::Ping { value: 77 }), 0);
    whole.slice(..whole.len() - 1)
}

#[test]
fn frame_7_extension_frames_are_ignored_and_keep_the_link_alive() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    let header = FrameHeader {
        version: 1,
        frame_type: 0x90,
        flags: 0xFF,
        length: 3,
        channel: 77,
    };
    let mut bytes = header.to_bytes().to_vec();
    bytes.extend_from_slice(b"abc");
    engine.handle_message(now, Bytes::from(bytes));
    assert!(drain_frames(&mut engine, now).is_empty());
    assert!(engine.is_up());
}

#[test]
fn frame_10_a_long_message_crosses_a_link_of_small_frames() {
    let mut pair = Pair::up_with(EngineConfig::default(), EngineConfig::default(), 128);
    let (a_channel, b_channel) = pair.connected();
    let text = "é".repeat(512);
    pair.a.send_message(a_channel, &text).unwrap();
    pair.pump();
    assert!(pair.wire.iter().all(|(_, f)| f.encoded_len() <= 128));
    let (_, b_events) = pair.take_events();
    assert!(b_events.contains(&EngineEvent::Message {
        channel: b_channel,
        text
    }));
}

#[test]
fn link_1_hello_still_goes_out_first_when_the_link_fails_before_it_was_sent() {
    let now = std::time::Instant::now();
    let mut engine = LinkEngine::new(
        now,
        Role::Acceptor,
        B,
        None,
        65_535,
        [0; 16],
        EngineConfig::default(),
    );
    // The peer's HELLO (no common version) arrives before this side's HELLO left.
    engine.handle_message(now, hello_frame(A, 2, 3));
    let sent = drain_frames(&mut engine, now);
    let types: Vec<u8> = sent.iter().map(|f| f.type_code()).collect();
    assert_eq!(
        types,
        [FrameType::Hello as u8, FrameType::LinkClose as u8],
        "HELLO first, then LINK_CLOSE"
    );
}

#[test]
fn frame_5_a_link_close_is_cut_to_fit_the_peers_frame_size() {
    let now = std::time::Instant::now();
    let config = EngineConfig::default();
    let mut engine = LinkEngine::new(now, Role::Acceptor, B, None, 65_535, [0; 16], config);
    let mut small = hello(A, 1, 1);
    small.max_frame_size = 128;
    engine.handle_message(now, frame(Control::Hello(small), 0));
    engine.close(LinkCloseReason::Normal, "a long reason ".repeat(40));
    let last = std::iter::from_fn(|| engine.poll_transmit(now))
        .last()
        .unwrap();
    assert!(last.len() <= 128, "a LINK_CLOSE of {} bytes", last.len());
    let frame = acm_wire::Frame::decode_exact(last, 128, Some(1)).unwrap();
    let close = link_close(&[frame]).unwrap();
    assert!(close.message.starts_with("a long reason"), "{close:?}");
}
