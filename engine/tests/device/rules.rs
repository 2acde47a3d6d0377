//! The device's rules: sessions over links, token routing, and what spans links.

use std::time::Duration;

use acm_engine::EngineError;
use acm_engine::device::{DeviceEvent, RETIRE_GRACE, SessionState};
use acm_wire::pb::{ConnectErrorCode, DisconnectReason, LinkCloseReason};
use bytes::Bytes;

use crate::harness::*;

#[test]
fn a_session_connects_exchanges_and_disconnects_between_two_devices() {
    let mut net = Net::new(&["phone", "tablet"]);
    let (link, _) = net.link("phone", "tablet");
    net.take("phone");
    net.take("tablet");
    let ours = net.session("phone", "tablet", "chat");
    assert_eq!(net.connect("phone", ours, 1), link);
    let requests = Net::requests(&net.take("tablet"));
    assert_eq!(requests.len(), 1);
    // The requester's service is the one the request names.
    assert_eq!(requests[0].source.service_name, "chat");
    assert_eq!(requests[0].source.device_id, "phone");
    let theirs = net.accept("tablet", &requests[0]);
    assert_eq!(
        net.take("phone"),
        [DeviceEvent::Connected {
            session: ours,
            channel: 1
        }]
    );
    assert_eq!(
        net.take("tablet"),
        [DeviceEvent::Connected {
            session: theirs,
            channel: 1
        }]
    );

    let now = net.now;
    net.device("phone")
        .send_message(ours, "hello", now)
        .unwrap();
    let data = Bytes::from(vec![9u8; 200_000]);
    let transfer = net
        .device("phone")
        .send_data(ours, data.clone(), now)
        .unwrap();
    net.pump();
    let phone = net.take("phone");
    assert!(
        phone.contains(&DeviceEvent::TransferSent(transfer)),
        "{phone:?}"
    );
    assert!(phone.contains(&DeviceEvent::DataSent {
        transfer,
        sent: 200_000,
        total: 200_000
    }));
    let tablet = net.take("tablet");
    assert_eq!(
        tablet.first(),
        Some(&DeviceEvent::Message {
            session: theirs,
            text: "hello".into()
        })
    );
    assert_eq!(
        &tablet[tablet.len() - 2..],
        [
            DeviceEvent::DataProgress {
                session: theirs,
                received: 200_000,
                total: 200_000
            },
            DeviceEvent::Data {
                session: theirs,
                data
            }
        ]
    );

    net.device("phone")
        .disconnect(ours, DisconnectReason::PeerAppCloseCollaboration, now)
        .unwrap();
    net.pump();
    // Its own disconnect is not reported to the app that made it.
    assert_eq!(net.take("phone"), []);
    assert_eq!(
        net.take("tablet"),
        [DeviceEvent::Disconnected {
            session: theirs,
            reason: DisconnectReason::PeerAppCloseCollaboration
        }]
    );
    assert_eq!(
        net.device("phone").session_state(ours),
        Some(SessionState::Idle)
    );
    assert_eq!(
        net.device("tablet").session_state(theirs),
        Some(SessionState::Idle)
    );
    // Idle sessions can connect again.
    net.connect("phone", ours, 2);
    assert_eq!(Net::requests(&net.take("tablet")).len(), 1);
}

#[test]
fn a_connect_without_a_link_that_is_up_asks_for_one() {
    let mut net = Net::new(&["phone", "tablet"]);
    let session = net.session("phone", "tablet", "chat");
    let now = net.now;
    assert_eq!(
        net.device("phone").connect(session, [1; 16], now),
        Err(EngineError::NoLink("tablet".into()))
    );
    // A link dialed but not up yet is no better.
    net.dial("phone", "tablet");
    assert_eq!(
        net.device("phone").connect(session, [1; 16], now),
        Err(EngineError::NoLink("tablet".into()))
    );
    net.pump();
    assert!(net.device("phone").connect(session, [1; 16], now).is_ok());
    assert_eq!(
        net.device("phone").connect(session, [2; 16], now),
        Err(EngineError::NotIdle)
    );
}

#[test]
fn sess3_a_second_session_between_the_same_apps_and_service_is_refused_at_once() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let first = net.session("phone", "tablet", "chat");
    net.connect("phone", first, 1);
    let second = net.session("phone", "tablet", "chat");
    let now = net.now;
    assert_eq!(
        net.device("phone").connect(second, [2; 16], now),
        Err(EngineError::SessionExists)
    );
    // Another service is another session.
    let other = net.session("phone", "tablet", "files");
    assert!(net.device("phone").connect(other, [3; 16], now).is_ok());
}

/// Tablet dials phone (link 1) and a session connects over it; then phone dials tablet
/// (link 2), which LINK-8 prefers ("phone" < "tablet"); link 1 stays for its session.
fn two_links_one_session() -> (Net, [acm_engine::device::LinkId; 4], u64) {
    let mut net = Net::new(&["phone", "tablet"]);
    let (t1, p1) = net.link("tablet", "phone");
    let session = net.session("tablet", "phone", "chat");
    net.connect("tablet", session, 9);
    let request = Net::requests(&net.take("phone")).remove(0);
    net.accept("phone", &request);
    let (p2, t2) = net.link("phone", "tablet");
    net.take("phone");
    net.take("tablet");
    assert_eq!(net.device("phone").preferred_link("tablet"), Some(p2));
    assert_eq!(net.device("tablet").preferred_link("phone"), Some(t2));
    (net, [t1, p1, p2, t2], session)
}

#[test]
fn sess3_a_request_for_a_session_connected_on_another_link_is_refused() {
    let (mut net, [_, _, p2, _], _) = two_links_one_session();
    // Link 1 stops carrying frames: the phone's app leaves, but the tablet never hears it.
    net.wires[0].cut = true;
    let now = net.now;
    let phone_session = net.device("phone").sessions_of_app(BUNDLE).next().unwrap();
    net.device("phone")
        .destroy_session(phone_session, now)
        .unwrap();
    // The phone's new request for the same apps and service goes on link 2.
    let again = net.session("phone", "tablet", "chat");
    assert_eq!(net.connect("phone", again, 1), p2);
    assert_eq!(
        net.take("tablet"),
        [],
        "no request reaches the tablet's app"
    );
    assert!(matches!(
        net.take("phone")[..],
        [DeviceEvent::ConnectFailed {
            session,
            code: ConnectErrorCode::ConnectedSessionExists,
            ..
        }] if session == again
    ));
}

#[test]
fn sess7_requests_that_cross_on_two_links_leave_one_session() {
    for (tablet_token, phone_token) in [(9, 3), (3, 9)] {
        let mut net = Net::new(&["phone", "tablet"]);
        // The tablet's link comes up first and carries its request; the phone's link comes up
        // while that request is on its way, and carries the phone's.
        let (t1, _) = net.link("tablet", "phone");
        let tablet_session = net.session("tablet", "phone", "chat");
        let now = net.now;
        net.device("tablet")
            .connect(tablet_session, [tablet_token; 16], now)
            .unwrap();
        net.wires[0].cut = true;
        let (p2, _) = net.link("phone", "tablet");
        let phone_session = net.session("phone", "tablet", "chat");
        assert_eq!(net.connect("phone", phone_session, phone_token), p2);
        net.wires[0].cut = false;
        net.pump();
        // Each app accepts what reaches it.
        for name in ["phone", "tablet"] {
            let events = net.take(name);
            for request in Net::requests(&events) {
                net.accept(name, &request);
            }
        }
        let connected = |net: &Net, name: &str| {
            let d = net.index(name);
            let device = &net.devices[d];
            device
                .sessions_of_app(BUNDLE)
                .filter(|s| {
                    matches!(
                        device.session_state(*s),
                        Some(SessionState::Connected { .. })
                    )
                })
                .count()
        };
        assert_eq!(
            connected(&net, "phone"),
            1,
            "tokens {tablet_token}/{phone_token}"
        );
        assert_eq!(
            connected(&net, "tablet"),
            1,
            "tokens {tablet_token}/{phone_token}"
        );
        // The greater token's session is the one that connected.
        let winner_connected = if tablet_token > phone_token {
            net.devices[net.index("tablet")].session_state(tablet_session)
        } else {
            net.devices[net.index("phone")].session_state(phone_session)
        };
        assert!(matches!(
            winner_connected,
            Some(SessionState::Connected { .. })
        ));
        let _ = t1;
    }
}

#[test]
fn link8_the_other_link_retires_once_its_grace_is_over_and_it_carries_no_session() {
    let (mut net, [t1, p1, p2, t2], session) = two_links_one_session();
    // The grace is over, but link 1 still carries the session; its end is not a deadline that
    // has passed (a runtime would wake for it again and again).
    net.advance(RETIRE_GRACE + Duration::from_secs(1));
    assert!(net.device("tablet").is_up(t1));
    let now = net.now;
    assert!(
        net.device("tablet")
            .poll_timeout(t1)
            .is_none_or(|due| due > now)
    );
    // Once the session ends, link 1 closes, on both sides; link 2 stays.
    let now = net.now;
    net.device("tablet")
        .disconnect(session, DisconnectReason::PeerAppCloseCollaboration, now)
        .unwrap();
    net.pump();
    for (name, old, new) in [("tablet", t1, t2), ("phone", p1, p2)] {
        assert!(net.device(name).is_closed(old), "{name}'s old link");
        assert!(net.device(name).is_up(new), "{name}'s new link");
    }
    let closed: Vec<_> = net
        .take("tablet")
        .into_iter()
        .filter(|e| matches!(e, DeviceEvent::LinkClosed { .. }))
        .collect();
    assert!(matches!(
        &closed[..],
        [DeviceEvent::LinkClosed { reason: LinkCloseReason::Normal, detail, .. }] if detail.starts_with("LINK-8")
    ));
}

#[test]
fn link8_a_link_that_is_not_preferred_stays_through_its_grace() {
    let mut net = Net::new(&["phone", "tablet"]);
    let (t1, _) = net.link("tablet", "phone");
    net.link("phone", "tablet");
    net.advance(RETIRE_GRACE - Duration::from_millis(1));
    assert!(net.device("tablet").is_up(t1));
    net.advance(Duration::from_millis(1));
    assert!(net.device("tablet").is_closed(t1));
}

#[test]
fn a_token_routes_to_its_request_and_a_wrong_answer_leaves_it_waiting() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let ours = net.session("phone", "tablet", "chat");
    net.connect("phone", ours, 1);
    let request = Net::requests(&net.take("tablet")).remove(0);
    let now = net.now;
    let tablet = net.device("tablet");
    let session = tablet.create_session(
        app("tablet", "chat"),
        request.source.clone(),
        request.options.clone(),
    );
    assert_eq!(
        tablet.accept(session, &[0; 16], BUNDLE, now),
        Err(EngineError::UnknownToken)
    );
    assert_eq!(
        tablet.accept(session, &request.token, "com.other", now),
        Err(EngineError::UnknownSession(session)),
        "the session is not the other app's"
    );
    let mut stranger = app("tablet", "chat");
    stranger.bundle_name = "com.other".into();
    let other_apps =
        tablet.create_session(stranger, request.source.clone(), request.options.clone());
    assert_eq!(
        tablet.accept(other_apps, &request.token, "com.other", now),
        Err(EngineError::OtherApp)
    );
    let for_files = tablet.create_session(
        app("tablet", "files"),
        app("phone", "files"),
        request.options.clone(),
    );
    assert_eq!(
        tablet.accept(for_files, &request.token, BUNDLE, now),
        Err(EngineError::OtherPeer("service"))
    );
    assert_eq!(
        tablet.reject(
            &request.token,
            "com.other",
            ConnectErrorCode::PeerAppRejected,
            "",
            now
        ),
        Err(EngineError::OtherApp)
    );
    assert_eq!(tablet.pending_requests(), 1);
    assert!(tablet.accept(session, &request.token, BUNDLE, now).is_ok());
    assert_eq!(tablet.pending_requests(), 0);
    assert_eq!(
        tablet.accept(session, &request.token, BUNDLE, now),
        Err(EngineError::UnknownToken),
        "a token is used once"
    );
}

#[test]
fn a_rejected_request_fails_the_connect_with_the_code_and_reason() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let ours = net.session("phone", "tablet", "chat");
    net.connect("phone", ours, 1);
    let request = Net::requests(&net.take("tablet")).remove(0);
    let now = net.now;
    net.device("tablet")
        .reject(
            &request.token,
            BUNDLE,
            ConnectErrorCode::PeerAppRejected,
            "busy",
            now,
        )
        .unwrap();
    net.pump();
    assert_eq!(
        net.take("phone"),
        [DeviceEvent::ConnectFailed {
            session: ours,
            channel: 1,
            code: ConnectErrorCode::PeerAppRejected,
            reason: "busy".into()
        }]
    );
    assert_eq!(
        net.device("phone").session_state(ours),
        Some(SessionState::Idle)
    );
}

#[test]
fn a_session_destroyed_while_connecting_ends_at_once_when_its_request_is_accepted() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let ours = net.session("phone", "tablet", "chat");
    net.connect("phone", ours, 1);
    let request = Net::requests(&net.take("tablet")).remove(0);
    let now = net.now;
    net.device("phone").destroy_session(ours, now).unwrap();
    net.pump();
    // Gone for its app at once; its request goes on.
    assert_eq!(net.device("phone").session_state(ours), None);
    assert_eq!(
        net.device("phone").destroy_session(ours, now),
        Err(EngineError::UnknownSession(ours))
    );
    assert_eq!(net.take("phone"), []);
    assert_eq!(net.device("tablet").pending_requests(), 1);
    // A second session for the same apps and service waits until the answer.
    let again = net.session("phone", "tablet", "chat");
    assert_eq!(
        net.device("phone").connect(again, [2; 16], now),
        Err(EngineError::SessionExists)
    );
    let theirs = net.accept("tablet", &request);
    assert!(matches!(
        net.take("phone")[..],
        [DeviceEvent::ConnectFailed { session, code: ConnectErrorCode::SystemInternalError, .. }] if session == ours
    ));
    let tablet = net.take("tablet");
    assert_eq!(
        tablet.last(),
        Some(&DeviceEvent::Disconnected {
            session: theirs,
            reason: DisconnectReason::PeerAppExit
        })
    );
    assert!(net.device("phone").connect(again, [2; 16], now).is_ok());
}

#[test]
fn a_session_destroyed_while_connecting_hears_a_refusal_as_it_was() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let ours = net.session("phone", "tablet", "chat");
    net.connect("phone", ours, 1);
    let request = Net::requests(&net.take("tablet")).remove(0);
    let now = net.now;
    net.device("phone").destroy_session(ours, now).unwrap();
    net.device("tablet")
        .reject(
            &request.token,
            BUNDLE,
            ConnectErrorCode::PeerAppRejected,
            "no",
            now,
        )
        .unwrap();
    net.pump();
    assert!(matches!(
        &net.take("phone")[..],
        [DeviceEvent::ConnectFailed { code: ConnectErrorCode::PeerAppRejected, reason, .. }] if reason == "no"
    ));
}

#[test]
fn the_requests_of_a_lost_link_are_forgotten_and_their_sessions_end() {
    let mut net = Net::new(&["phone", "tablet", "watch"]);
    let (p, t) = net.link("phone", "tablet");
    net.link("watch", "tablet");
    for service in ["a", "b", "c"] {
        let session = net.session("phone", "tablet", service);
        net.connect("phone", session, service.as_bytes()[0]);
    }
    let watch = net.session("watch", "tablet", "a");
    net.connect("watch", watch, 7);
    assert_eq!(net.device("tablet").pending_requests(), 4);
    let now = net.now;
    net.device("tablet").handle_link_lost(t, now, "gone");
    net.device("phone").handle_link_lost(p, now, "gone");
    net.collect();
    assert_eq!(
        net.device("tablet").pending_requests(),
        1,
        "the watch's stays"
    );
    let failed = net
        .take("phone")
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                DeviceEvent::ConnectFailed {
                    code: ConnectErrorCode::SystemInternalError,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 3);
    net.device("tablet").remove_link(t, now);
    assert_eq!(net.device("tablet").link(t).map(|_| ()), None);
}

#[test]
fn sess1_a_token_another_waiting_request_has_is_refused_whichever_link_brings_it() {
    let mut net = Net::new(&["phone", "tablet", "watch"]);
    net.link("phone", "tablet");
    net.link("watch", "tablet");
    let from_phone = net.session("phone", "tablet", "chat");
    net.connect("phone", from_phone, 5);
    let from_watch = net.session("watch", "tablet", "chat");
    net.connect("watch", from_watch, 5);
    assert_eq!(Net::requests(&net.take("tablet")).len(), 1);
    assert!(matches!(
        net.take("watch")[..],
        [DeviceEvent::ConnectFailed { code: ConnectErrorCode::SystemInternalError, ref reason, .. }] if reason.starts_with("SESS-1")
    ));
}

#[test]
fn an_unanswered_request_expires_and_is_forgotten() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let ours = net.session("phone", "tablet", "chat");
    net.connect("phone", ours, 1);
    // The requester gives up first (10 s), withdrawing its request.
    net.advance(Duration::from_secs(10));
    assert!(matches!(
        net.take("phone")[..],
        [DeviceEvent::ConnectFailed {
            code: ConnectErrorCode::SystemInternalError,
            ..
        }]
    ));
    assert_eq!(net.device("tablet").pending_requests(), 0);
}

#[test]
fn events_of_sessions_on_one_link_keep_the_order_of_its_frames() {
    let mut net = Net::new(&["phone", "tablet"]);
    net.link("phone", "tablet");
    let mut pairs = Vec::new();
    for (i, service) in ["a", "b"].into_iter().enumerate() {
        let ours = net.session("phone", "tablet", service);
        net.connect("phone", ours, i as u8 + 1);
        let request = Net::requests(&net.take("tablet")).remove(0);
        pairs.push((ours, net.accept("tablet", &request)));
    }
    net.take("tablet");
    let now = net.now;
    for i in 0..10 {
        let (ours, _) = pairs[i % 2];
        net.device("phone")
            .send_message(ours, &format!("m{i}"), now)
            .unwrap();
    }
    net.pump();
    let got: Vec<(u64, String)> = net
        .take("tablet")
        .into_iter()
        .filter_map(|e| match e {
            DeviceEvent::Message { session, text } => Some((session, text)),
            _ => None,
        })
        .collect();
    let expected: Vec<(u64, String)> = (0..10).map(|i| (pairs[i % 2].1, format!("m{i}"))).collect();
    assert_eq!(got, expected);
}
