//! Handshakes, messages, data and closes of sessions.

use std::time::Duration;

use acm_engine::{ConnectOutcome, EngineConfig, EngineError, EngineEvent, IncomingRequest};
use acm_wire::pb::{
    self, CollaborateEventType, ConnectErrorCode, DisconnectReason, FrameType, SessionError,
    connect_response,
};
use acm_wire::{Control, DataFragment, Limits};
use bytes::Bytes;

use crate::harness::*;

fn failed(events: &[EngineEvent], channel: u32) -> Option<(ConnectErrorCode, String)> {
    events.iter().find_map(|e| match e {
        EngineEvent::ConnectResult {
            channel: c,
            outcome: ConnectOutcome::Failed { code, reason },
        } if *c == channel => Some((*code, reason.clone())),
        _ => None,
    })
}

fn session_closed(
    events: &[EngineEvent],
    channel: u32,
) -> Option<(DisconnectReason, SessionError)> {
    events.iter().find_map(|e| match e {
        EngineEvent::SessionClosed {
            channel: c,
            reason,
            error,
            ..
        } if *c == channel => Some((*reason, *error)),
        _ => None,
    })
}

#[test]
fn an_accepted_request_connects_both_sides_on_odd_and_matching_channels() {
    let mut pair = Pair::up();
    let (a, b) = pair.connected();
    assert_eq!((a, b), (1, 1), "LINK-11: the dialer's first channel is 1");
    let (a2, _) = {
        let mut other = request(2);
        other.source.bundle_name = "com.example.other".into();
        pair.request(other)
    };
    assert_eq!(a2, 3, "LINK-11: channel ids increase by two");
}

#[test]
fn the_incoming_request_carries_the_requesters_peer_info_options_and_token() {
    let mut pair = Pair::up();
    let mut req = request(7);
    req.options.need_send_data = Some(false);
    req.options.parameters.insert("k".into(), "v".into());
    let channel = pair.a.connect(pair.now, req.clone()).unwrap();
    pair.pump();
    let (_, b_events) = pair.take_events();
    assert_eq!(
        b_events,
        vec![EngineEvent::IncomingRequest(Box::new(IncomingRequest {
            channel,
            token: req.token,
            source: req.source,
            target: req.target,
            options: req.options,
        }))]
    );
}

#[test]
fn a_rejection_reaches_the_requester_with_its_reason() {
    let mut pair = Pair::up();
    let (a, b) = pair.request(request(1));
    pair.b
        .reject(b, ConnectErrorCode::PeerAppRejected, "busy editing")
        .unwrap();
    pair.pump();
    let (a_events, _) = pair.take_events();
    assert_eq!(
        failed(&a_events, a),
        Some((ConnectErrorCode::PeerAppRejected, "busy editing".into()))
    );
    assert_eq!(pair.a.session_count(), 0);
    assert_eq!(pair.b.session_count(), 0);
}

#[test]
fn sess_3_a_second_session_between_the_same_apps_is_refused() {
    let mut pair = Pair::up();
    pair.connected();
    assert_eq!(
        pair.a.connect(pair.now, request(2)),
        Err(EngineError::SessionExists)
    );
    // From the other side too: B asks for the same session A already has.
    let channel = pair.b.connect(pair.now, reverse_request(3));
    assert_eq!(channel, Err(EngineError::SessionExists));
}

#[test]
fn sess_3_a_duplicate_request_on_the_wire_gets_connected_session_exists() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    let wire_request = |seed: u8| {
        let req = request(seed);
        Control::ConnectRequest(pb::ConnectRequest {
            token: Bytes::copy_from_slice(&req.token),
            source: Some(req.source),
            target: Some(req.target),
            options: Some(req.options),
        })
    };
    engine.handle_message(now, frame(wire_request(1), 1));
    engine.accept(1).unwrap();
    engine.handle_message(now, frame(wire_request(2), 3));
    let sent = drain_frames(&mut engine, now);
    let responses = bodies(&sent, FrameType::ConnectResponse);
    let Some(Control::ConnectResponse(second)) = responses.last() else {
        panic!("no response: {sent:?}");
    };
    let Some(connect_response::Result::Rejected(rejected)) = &second.result else {
        panic!("second request not rejected");
    };
    assert_eq!(rejected.code(), ConnectErrorCode::ConnectedSessionExists);
}

#[test]
fn sess_3_need_send_data_over_a_peer_that_cannot_carry_data_is_peer_wifi_not_open() {
    let no_data = EngineConfig::default().with_carries_data(false);
    let mut pair = Pair::up_with(EngineConfig::default(), no_data, 65_535);
    let mut req = request(1);
    req.options.need_send_data = Some(true);
    let channel = pair.a.connect(pair.now, req).unwrap();
    pair.pump();
    let (a_events, b_events) = pair.take_events();
    assert!(b_events.is_empty(), "B's app never sees the request");
    assert_eq!(
        failed(&a_events, channel).map(|f| f.0),
        Some(ConnectErrorCode::PeerWifiNotOpen)
    );
}

#[test]
fn sess_3_need_send_data_over_a_local_transport_without_data_is_refused_before_sending() {
    let no_data = EngineConfig::default().with_carries_data(false);
    let mut pair = Pair::up_with(no_data, EngineConfig::default(), 65_535);
    let mut req = request(1);
    req.options.need_send_data = Some(true);
    pair.wire.clear();
    assert_eq!(
        pair.a.connect(pair.now, req),
        Err(EngineError::LocalCannotCarryData)
    );
    pair.pump();
    assert!(pair.wire.is_empty());
}

#[test]
fn sess_5_no_answer_in_time_fails_the_connect_and_cancels_the_peers_request() {
    let mut pair = Pair::up();
    let (a, b) = pair.request(request(1));
    pair.advance(Duration::from_secs(10));
    let (a_events, b_events) = pair.take_events();
    let (code, reason) = failed(&a_events, a).expect("connect failed");
    assert_eq!(code, ConnectErrorCode::SystemInternalError);
    assert!(reason.starts_with("SESS-5"), "{reason}");
    assert!(b_events.contains(&EngineEvent::RequestCancelled { channel: b }));
    assert_eq!(
        pair.b.accept(b),
        Err(EngineError::WrongState {
            channel: b,
            expected: "incoming"
        })
    );
}

#[test]
fn sess_7_crossing_requests_leave_one_session_the_same_on_both_sides() {
    for (a_seed, b_seed) in [(9u8, 4u8), (4, 9)] {
        let mut pair = Pair::up();
        let a_channel = pair.a.connect(pair.now, request(a_seed)).unwrap();
        let b_channel = pair.b.connect(pair.now, reverse_request(b_seed)).unwrap();
        pair.pump();
        let (a_events, b_events) = pair.take_events();
        // The request with the greater token goes on; the other gets CONNECTED_SESSION_EXISTS.
        let (winner_incoming, loser_events, loser_channel) = if a_seed > b_seed {
            (&b_events, &b_events, b_channel)
        } else {
            (&a_events, &a_events, a_channel)
        };
        assert_eq!(
            failed(loser_events, loser_channel).map(|f| f.0),
            Some(ConnectErrorCode::ConnectedSessionExists),
            "seeds {a_seed} {b_seed}"
        );
        let incoming: Vec<_> = winner_incoming
            .iter()
            .filter(|e| matches!(e, EngineEvent::IncomingRequest(_)))
            .collect();
        assert_eq!(incoming.len(), 1, "exactly one side's app is asked");
        let other_side = if a_seed > b_seed {
            &a_events
        } else {
            &b_events
        };
        assert!(
            !other_side
                .iter()
                .any(|e| matches!(e, EngineEvent::IncomingRequest(_))),
            "the losing request never reaches an app"
        );
    }
}

#[test]
fn sess_1_a_replayed_token_is_refused() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    let make = |bundle: &str| {
        let mut req = request(5);
        req.source.bundle_name = bundle.into();
        req.target.bundle_name = bundle.into();
        Control::ConnectRequest(pb::ConnectRequest {
            token: Bytes::copy_from_slice(&req.token),
            source: Some(req.source),
            target: Some(req.target),
            options: Some(req.options),
        })
    };
    engine.handle_message(now, frame(make("com.a"), 1));
    engine
        .reject(1, ConnectErrorCode::PeerAppRejected, "no")
        .unwrap();
    let _ = events(&mut engine);
    // Same token again, for another app on a new channel.
    engine.handle_message(now, frame(make("com.b"), 3));
    assert!(events(&mut engine).is_empty(), "no app sees the replay");
    let sent = drain_frames(&mut engine, now);
    let Some(Control::ConnectResponse(answer)) = bodies(&sent, FrameType::ConnectResponse).pop()
    else {
        panic!("no answer");
    };
    let Some(connect_response::Result::Rejected(rejected)) = answer.result else {
        panic!("replay accepted");
    };
    assert_eq!(rejected.code(), ConnectErrorCode::SystemInternalError);
    assert!(rejected.reason.starts_with("SESS-1"));
}

#[test]
fn sess_4_a_response_with_a_forged_token_fails_the_handshake() {
    let mut pair = Pair::up();
    let channel = pair.a.connect(pair.now, request(1)).unwrap();
    let _ = drain_frames(&mut pair.a, pair.now);
    let forged = Control::ConnectResponse(pb::ConnectResponse {
        token: Bytes::copy_from_slice(&token(66)),
        result: Some(connect_response::Result::Accepted(pb::Accepted {})),
    });
    pair.a.handle_message(pair.now, frame(forged, channel));
    let sent = drain_frames(&mut pair.a, pair.now);
    let events = events(&mut pair.a);
    let (code, reason) = failed(&events, channel).unwrap();
    assert_eq!(code, ConnectErrorCode::SystemInternalError);
    assert!(reason.starts_with("SESS-4"));
    let (c, d) = disconnects(&sent).pop().unwrap();
    assert_eq!((c, d.error()), (channel, SessionError::ProtocolError));
}

#[test]
fn sess_6_a_message_before_accept_closes_the_session() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    let req = request(1);
    engine.handle_message(
        now,
        frame(
            Control::ConnectRequest(pb::ConnectRequest {
                token: Bytes::copy_from_slice(&req.token),
                source: Some(req.source),
                target: Some(req.target),
                options: None,
            }),
            1,
        ),
    );
    let _ = events(&mut engine);
    engine.handle_message(
        now,
        frame(
            Control::Message(pb::Message {
                text: "early".into(),
            }),
            1,
        ),
    );
    let events = events(&mut engine);
    assert_eq!(events, vec![EngineEvent::RequestCancelled { channel: 1 }]);
    let (_, d) = disconnects(&drain_frames(&mut engine, now)).pop().unwrap();
    assert_eq!(d.error(), SessionError::ProtocolError);
    assert!(d.detail.starts_with("SESS-6"));
}

#[test]
fn link_11_a_request_on_the_wrong_parity_closes_the_link() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    let req = request(1);
    let body = Control::ConnectRequest(pb::ConnectRequest {
        token: Bytes::copy_from_slice(&req.token),
        source: Some(req.source),
        target: Some(req.target),
        options: None,
    });
    engine.handle_message(now, frame(body, 2));
    let close = link_close(&drain_frames(&mut engine, now)).unwrap();
    assert!(close.message.starts_with("LINK-11"), "{}", close.message);
}

#[test]
fn link_11_frames_on_a_closed_channel_are_discarded() {
    let mut pair = Pair::up();
    let (a, b) = pair.connected();
    pair.a
        .disconnect(a, DisconnectReason::PeerAppCloseCollaboration)
        .unwrap();
    pair.pump();
    pair.take_events();
    // B sends on the closed channel (it may have crossed the DISCONNECT).
    pair.b.handle_message(
        pair.now,
        frame(
            Control::Message(pb::Message {
                text: "late".into(),
            }),
            b,
        ),
    );
    pair.a.handle_message(
        pair.now,
        frame(
            Control::Message(pb::Message {
                text: "late".into(),
            }),
            a,
        ),
    );
    pair.pump();
    let (a_events, _) = pair.take_events();
    assert!(a_events.is_empty());
    assert!(pair.a.is_up());
}

#[test]
fn disc_1_each_local_ending_gives_the_peer_its_reason() {
    for reason in [
        DisconnectReason::PeerAppCloseCollaboration,
        DisconnectReason::PeerAppExit,
    ] {
        let mut pair = Pair::up();
        let (a, b) = pair.connected();
        pair.a.disconnect(a, reason).unwrap();
        pair.pump();
        let (a_events, b_events) = pair.take_events();
        assert!(a_events.is_empty(), "the side that ends is not told");
        assert_eq!(
            session_closed(&b_events, b),
            Some((reason, SessionError::None))
        );
    }
}

#[test]
fn messages_data_and_events_cross_in_both_directions() {
    let mut pair = Pair::up();
    let (a, b) = pair.connected();
    pair.a.send_message(a, "hello").unwrap();
    pair.b.send_message(b, "hi").unwrap();
    let data = Bytes::from((0..300_000u32).map(|i| i as u8).collect::<Vec<_>>());
    let transfer = pair.a.send_data(a, data.clone()).unwrap();
    pair.b
        .send_collaborate_event(b, CollaborateEventType::SendFailure, "disk full")
        .unwrap();
    pair.pump();
    let (a_events, b_events) = pair.take_events();
    assert!(b_events.contains(&EngineEvent::Message {
        channel: b,
        text: "hello".into()
    }));
    assert!(a_events.contains(&EngineEvent::Message {
        channel: a,
        text: "hi".into()
    }));
    assert!(b_events.contains(&EngineEvent::Data { channel: b, data }));
    assert!(a_events.contains(&EngineEvent::TransferSent {
        channel: a,
        transfer_id: transfer
    }));
    assert!(a_events.contains(&EngineEvent::CollaborateEvent {
        channel: a,
        event_type: CollaborateEventType::SendFailure,
        message: "disk full".into()
    }));
}

#[test]
fn transfers_of_several_sessions_interleave_and_each_arrives_whole_in_order() {
    let mut pair = Pair::up_with(EngineConfig::default(), EngineConfig::default(), 244);
    let mut sessions = Vec::new();
    for i in 0..3u8 {
        let mut req = request(i + 1);
        req.source.bundle_name = format!("com.example.app{i}");
        req.target.bundle_name = format!("com.example.app{i}");
        let (a, b) = pair.request(req);
        pair.b.accept(b).unwrap();
        sessions.push((a, b));
    }
    pair.pump();
    pair.take_events();
    let mut expected = Vec::new();
    for (n, (a, b)) in sessions.iter().enumerate() {
        for k in 0..2u8 {
            let data = Bytes::from(vec![n as u8 * 10 + k; 5_000 + n * 1_000]);
            pair.a.send_data(*a, data.clone()).unwrap();
            expected.push((*b, data));
        }
    }
    pair.pump();
    // The frames of different sessions alternated on the wire.
    let data_channels: Vec<u32> = pair
        .wire
        .iter()
        .filter(|(from_a, f)| *from_a && f.type_code() == FrameType::Data as u8)
        .map(|(_, f)| f.channel)
        .collect();
    assert!(data_channels.windows(2).any(|w| w[0] != w[1]));
    let (_, b_events) = pair.take_events();
    for (b, _) in &sessions {
        let got: Vec<&Bytes> = b_events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Data { channel, data } if channel == b => Some(data),
                _ => None,
            })
            .collect();
        let want: Vec<&Bytes> = expected
            .iter()
            .filter(|(c, _)| c == b)
            .map(|(_, d)| d)
            .collect();
        assert_eq!(got, want, "session {b}: whole, once, in order");
    }
}

#[test]
fn data_6_data_over_the_peers_maximum_is_refused_before_sending() {
    let small = EngineConfig::default().with_limits(
        Limits::default()
            .with_max_data_size(1_000)
            .with_max_reassembly_bytes(1_000),
    );
    let mut pair = Pair::up_with(EngineConfig::default(), small, 65_535);
    let (a, _) = pair.connected();
    assert_eq!(
        pair.a.send_data(a, Bytes::from(vec![0; 1_001])),
        Err(EngineError::DataTooLarge {
            len: 1_001,
            max: 1_000
        })
    );
    assert!(pair.a.send_data(a, Bytes::from(vec![0; 1_000])).is_ok());
}

#[test]
fn data_4_a_duplicate_fragment_closes_the_session_and_delivers_nothing_partial() {
    let mut pair = Pair::up_with(EngineConfig::default(), EngineConfig::default(), 244);
    let (a, b) = pair.connected();
    pair.a.send_data(a, Bytes::from(vec![3; 1_000])).unwrap();
    let frames: Vec<Bytes> = std::iter::from_fn(|| pair.a.poll_transmit(pair.now)).collect();
    pair.b.handle_message(pair.now, frames[0].clone());
    pair.b.handle_message(pair.now, frames[1].clone());
    pair.b.handle_message(pair.now, frames[1].clone());
    let b_events = events(&mut pair.b);
    assert!(
        !b_events
            .iter()
            .any(|e| matches!(e, EngineEvent::Data { .. }))
    );
    assert_eq!(
        session_closed(&b_events, b),
        Some((
            DisconnectReason::NetworkDisconnected,
            SessionError::ProtocolError
        ))
    );
    assert_eq!(pair.b.reassembly_bytes(), 0);
    // A is told why.
    pair.pump();
    let (a_events, _) = pair.take_events();
    assert_eq!(
        session_closed(&a_events, a),
        Some((
            DisconnectReason::NetworkDisconnected,
            SessionError::ProtocolError
        ))
    );
}

#[test]
fn msg_1_a_message_over_1024_bytes_is_refused_at_the_api_and_on_the_wire() {
    let mut pair = Pair::up();
    let (a, b) = pair.connected();
    assert_eq!(
        pair.a.send_message(a, &"x".repeat(1025)),
        Err(EngineError::MessageTooLong(1025))
    );
    pair.b.handle_message(
        pair.now,
        frame(
            Control::Message(pb::Message {
                text: "x".repeat(1025),
            }),
            b,
        ),
    );
    assert_eq!(
        session_closed(&events(&mut pair.b), b),
        Some((
            DisconnectReason::NetworkDisconnected,
            SessionError::LimitExceeded
        ))
    );
}

#[test]
fn a_data_fragment_survives_only_as_a_whole_transfer_when_the_peer_disconnects_mid_way() {
    let mut pair = Pair::up_with(EngineConfig::default(), EngineConfig::default(), 244);
    let (a, b) = pair.connected();
    pair.a.send_data(a, Bytes::from(vec![1; 10_000])).unwrap();
    let first = pair.a.poll_transmit(pair.now).unwrap();
    pair.b.handle_message(pair.now, first.clone());
    let parsed = acm_wire::Frame::decode_exact(first, u32::MAX, None).unwrap();
    assert!(DataFragment::parse(&parsed).unwrap().total_length.is_some());
    pair.a.disconnect(a, DisconnectReason::PeerAppExit).unwrap();
    pair.pump();
    let (a_events, b_events) = pair.take_events();
    assert!(
        a_events
            .iter()
            .any(|e| matches!(e, EngineEvent::TransferAborted { .. }))
    );
    assert!(
        !b_events
            .iter()
            .any(|e| matches!(e, EngineEvent::Data { .. }))
    );
    assert_eq!(
        session_closed(&b_events, b),
        Some((DisconnectReason::PeerAppExit, SessionError::None))
    );
    assert_eq!(pair.b.reassembly_bytes(), 0);
}

#[test]
fn sess_3_a_request_awaiting_its_answer_still_blocks_its_key_after_a_crossing_one_ends() {
    let (now, mut engine) = lone_engine(EngineConfig::default());
    let own = engine.connect(now, reverse_request(4)).unwrap();
    engine.handle_message(now, request_frame(request(9), 1));
    let incoming = events(&mut engine);
    assert!(
        matches!(incoming[..], [EngineEvent::IncomingRequest(_)]),
        "SESS-7"
    );
    engine
        .reject(1, ConnectErrorCode::PeerAppRejected, "no")
        .unwrap();
    assert_eq!(
        engine.connect(now, reverse_request(5)),
        Err(EngineError::SessionExists),
        "channel {own} still awaits its answer"
    );
}

#[test]
fn sess_1_tokens_are_remembered_up_to_the_bound_and_then_forgotten() {
    let mut config = EngineConfig::default();
    config.remembered_tokens = 2;
    let (now, mut engine) = lone_engine(config);
    // Three of the peer's requests, each refused by the app: their tokens end.
    for (seed, channel) in [(10, 1), (11, 3), (12, 5)] {
        engine.handle_message(now, request_frame(request(seed), channel));
        engine
            .reject(channel, ConnectErrorCode::PeerAppRejected, "no")
            .unwrap();
        let _ = events(&mut engine);
        let _ = drain_frames(&mut engine, now);
    }
    // The newest two are still refused as replays; the oldest is forgotten, so that what the
    // engine keeps stays bounded, and a request with it is an app's again.
    engine.handle_message(now, request_frame(request(12), 7));
    assert!(
        events(&mut engine).is_empty(),
        "a remembered token is refused"
    );
    let _ = drain_frames(&mut engine, now);
    engine.handle_message(now, request_frame(request(10), 9));
    let incoming = events(&mut engine);
    assert!(
        incoming
            .iter()
            .any(|e| matches!(e, EngineEvent::IncomingRequest(r) if r.channel == 9)),
        "{incoming:?}"
    );
}
