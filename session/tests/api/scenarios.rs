//! Every function's success and error paths, every ConnectErrorCode and DisconnectReason.

use std::time::Duration;

use acm::transport::{Closure, DeviceId};
use acm::{
    AcmError, Capability, CollaborateEventInfo, CollaborateEventType, CollaborateResult,
    ConnectErrorCode, ConnectOptions, Context, DeviceConfig, DisconnectReason, Event, EventType,
    Invalid, PeerInfo, Permission, TokenRefusal,
};
use acm_transport_mock::{DeviceOptions, Fault};
use bytes::Bytes;

use crate::harness::*;

#[tokio::test(start_paused = true)]
async fn connect_accept_message_data_and_disconnect() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut b_events = world.b.app.events(b).unwrap();
    let mut a_events = world.a.app.events(a).unwrap();
    world.a.app.send_message(a, "hello").await.unwrap();
    assert_eq!(
        next(&mut b_events).await,
        Event::Message {
            session_id: b,
            msg: "hello".into()
        }
    );
    let data = Bytes::from(vec![9u8; 1 << 20]);
    world.b.app.send_data(b, data.clone()).await.unwrap();
    assert_eq!(
        next(&mut a_events).await,
        Event::Data {
            session_id: a,
            data
        }
    );
    world.a.app.disconnect(a).unwrap();
    assert_eq!(
        next(&mut b_events).await,
        Event::Disconnect {
            session_id: b,
            reason: DisconnectReason::PeerAppCloseCollaboration
        }
    );
}

#[tokio::test(start_paused = true)]
async fn device_close_returns_once_the_link_has_closed_after_everything_sent_before() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut b_events = world.b.app.events(b).unwrap();
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    let links = world.network.links(&phone, &tablet);
    assert!(!links.is_empty());
    world.a.app.send_message(a, "last words").await.unwrap();
    world.a.app.disconnect(a).unwrap();
    world.a.device.close().await;
    for link in &links {
        assert!(
            matches!(link.closure(&phone), Ok(Some(Closure::Local(_)))),
            "close returned before the link closed: {:?}",
            link.closure(&phone)
        );
    }
    assert_eq!(
        next(&mut b_events).await,
        Event::Message {
            session_id: b,
            msg: "last words".into()
        }
    );
    assert_eq!(
        next(&mut b_events).await,
        Event::Disconnect {
            session_id: b,
            reason: DisconnectReason::PeerAppCloseCollaboration
        }
    );
}

#[tokio::test(start_paused = true)]
async fn session_ids_are_above_100_and_never_reused() {
    let world = World::new();
    let first = world.a_session();
    assert!(first.get() > 100);
    world
        .a
        .app
        .destroy_ability_connection_session(first)
        .unwrap();
    let second = world.a_session();
    assert!(second > first, "ids are not reused after destroy");
    assert_eq!(world.a.app.get_peer_info_by_id(first), None);
    let peer = world.a.app.get_peer_info_by_id(second).unwrap();
    assert_eq!(peer.device_id, "tablet");
    assert_eq!(peer.service_name, SERVICE);
}

#[tokio::test(start_paused = true)]
async fn create_requires_each_of_the_four_permissions() {
    let world = World::new();
    for permission in Permission::REQUIRED {
        let err = world
            .a
            .app
            .create_ability_connection_session(
                SERVICE,
                &context().without(permission),
                peer_of("tablet"),
                ConnectOptions::default(),
            )
            .unwrap_err();
        assert!(
            matches!(err, AcmError::PermissionDenied(p) if p == permission),
            "{err:?}"
        );
        assert_eq!(err.code(), 201);
    }
}

#[tokio::test(start_paused = true)]
async fn create_refuses_each_bad_parameter_with_401_naming_the_field_and_what_is_wrong() {
    let world = World::new();
    let create = |service: &str, context: &Context, peer: PeerInfo, options: ConnectOptions| {
        world
            .a
            .app
            .create_ability_connection_session(service, context, peer, options)
    };
    let ok = ConnectOptions::default;
    let mut many = ConnectOptions::default();
    for i in 0..65 {
        many.parameters.insert(format!("k{i}"), "v".into());
    }
    let mut long_value = ConnectOptions::default();
    long_value.parameters.insert("k".into(), "v".repeat(1024));
    let too_long = |len| Invalid::TooLong { len, max: 256 };
    let cases: Vec<(&str, Invalid, Result<acm::SessionId, AcmError>)> = vec![
        (
            "serviceName",
            Invalid::Empty,
            create("", &context(), peer_of("tablet"), ok()),
        ),
        (
            "serviceName",
            too_long(257),
            create(&"s".repeat(257), &context(), peer_of("tablet"), ok()),
        ),
        (
            "peerInfo.deviceId",
            Invalid::Empty,
            create(SERVICE, &context(), peer_of(""), ok()),
        ),
        (
            "peerInfo.deviceId",
            Invalid::TooLong { len: 65, max: 64 },
            create(SERVICE, &context(), peer_of(&"d".repeat(65)), ok()),
        ),
        (
            "peerInfo.bundleName",
            Invalid::Empty,
            create(
                SERVICE,
                &context(),
                PeerInfo::new("tablet", "", "entry", "Ability"),
                ok(),
            ),
        ),
        (
            "peerInfo.moduleName",
            Invalid::ControlCharacter,
            create(
                SERVICE,
                &context(),
                PeerInfo::new("tablet", BUNDLE, "en\ntry", "Ability"),
                ok(),
            ),
        ),
        (
            "peerInfo.abilityName",
            Invalid::Empty,
            create(
                SERVICE,
                &context(),
                PeerInfo::new("tablet", BUNDLE, "entry", ""),
                ok(),
            ),
        ),
        (
            "context",
            Invalid::OtherApp {
                given: "com.other".into(),
                manager: BUNDLE.into(),
            },
            create(
                SERVICE,
                &Context::new("com.other", "entry", "A"),
                peer_of("tablet"),
                ok(),
            ),
        ),
        (
            "peerInfo.serviceName",
            Invalid::DiffersFrom("serviceName"),
            create(
                SERVICE,
                &context(),
                peer_of("tablet").with_service_name("other"),
                ok(),
            ),
        ),
        (
            "connectOptions.parameters",
            Invalid::TooMany { count: 65, max: 64 },
            create(SERVICE, &context(), peer_of("tablet"), many),
        ),
        (
            "connectOptions.parameters value",
            Invalid::TooLong {
                len: 1024,
                max: 1023,
            },
            create(SERVICE, &context(), peer_of("tablet"), long_value),
        ),
    ];
    for (field, reason, result) in cases {
        match result {
            Err(AcmError::InvalidField { which, why }) => {
                assert_eq!((which, &why), (field, &reason));
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_call_with_an_unknown_session_id_is_401() {
    let world = World::new();
    let app = &world.a.app;
    let (callback, _) = recorder();
    let unknown = acm::SessionId::from(7);
    let results = [
        app.destroy_ability_connection_session(unknown),
        app.connect(unknown).await.map(|_| ()),
        app.accept_connect(unknown, &"0".repeat(32)).await,
        app.disconnect(unknown),
        app.send_message(unknown, "x").await,
        app.send_data(unknown, Bytes::from_static(b"x")).await,
        app.on(EventType::Connect, unknown, callback.clone()),
        app.off(EventType::Connect, unknown, None),
        app.events(unknown).map(|_| ()),
        app.send_collaborate_event(unknown, CollaborateEventType::SendFailure, "x")
            .await,
    ];
    for result in results {
        let err = result.unwrap_err();
        assert!(
            matches!(err, AcmError::UnknownSession(id) if id == unknown),
            "{err:?}"
        );
        assert_eq!(err.code(), 401);
    }
}

#[tokio::test(start_paused = true)]
async fn calls_that_need_a_connected_session_are_401_before_connect() {
    let world = World::new();
    let a = world.a_session();
    let results = [
        world.a.app.send_message(a, "x").await,
        world.a.app.send_data(a, Bytes::from_static(b"x")).await,
        world.a.app.disconnect(a),
    ];
    for result in results {
        let err = result.unwrap_err();
        assert!(
            matches!(err, AcmError::NotConnected(id) if id == a),
            "{err:?}"
        );
        assert_eq!(err.code(), 401);
    }
}

#[tokio::test(start_paused = true)]
async fn send_message_over_1024_bytes_is_401_and_1024_bytes_arrive() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let err = world
        .a
        .app
        .send_message(a, &"x".repeat(1025))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AcmError::MessageTooLong {
                len: 1025,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), 401);
    let mut events = world.b.app.events(b).unwrap();
    let longest = "é".repeat(512);
    world.a.app.send_message(a, &longest).await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Message {
            session_id: b,
            msg: longest
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_session_to_the_same_service_and_peer_is_connected_session_exists() {
    let world = World::new();
    world.connected().await;
    let second = world.a_session();
    let result = world.a.app.connect(second).await.unwrap();
    assert!(!result.is_connected);
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::ConnectedSessionExists)
    );
}

#[tokio::test(start_paused = true)]
async fn connecting_a_connected_session_again_is_connected_session_exists() {
    let world = World::new();
    let (a, _) = world.connected().await;
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::ConnectedSessionExists)
    );
}

#[tokio::test(start_paused = true)]
async fn reject_gives_peer_app_rejected_with_the_reason() {
    let world = World::new();
    let manager = world.b.app.clone();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", move |request| {
            manager.reject(&request.token, "busy editing").unwrap();
            CollaborateResult::Accept
        });
    let a = world.a_session();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(result.error_code, Some(ConnectErrorCode::PeerAppRejected));
    assert_eq!(result.reason.as_deref(), Some("busy editing"));
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_returns_reject_gives_peer_app_rejected() {
    let world = World::new();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", |_| CollaborateResult::Reject {
            reason: "not now".into(),
        });
    let a = world.a_session();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(result.error_code, Some(ConnectErrorCode::PeerAppRejected));
    assert_eq!(result.reason.as_deref(), Some("not now"));
}

#[tokio::test(start_paused = true)]
async fn no_registered_ability_gives_peer_ability_no_oncollaborate() {
    let world = World::new();
    let a = world.a_session();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::PeerAbilityNoOncollaborate)
    );
}

#[tokio::test(start_paused = true)]
async fn requests_go_to_the_handler_of_their_ability_until_it_is_unregistered() {
    let world = World::new();
    let reject = |why: &'static str| move |_| CollaborateResult::Reject { reason: why.into() };
    let b = &world.b.app;
    b.register_ability("entry", "OtherAbility", reject("other ability"));
    b.register_ability("other", "EntryAbility", reject("other module"));
    b.register_ability("entry", "EntryAbility", reject("first"));
    b.register_ability("entry", "EntryAbility", reject("second"));
    let a = world.a_session();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(result.reason.as_deref(), Some("second"));

    b.unregister_ability("entry", "EntryAbility");
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::PeerAbilityNoOncollaborate)
    );
    b.unregister_ability("entry", "OtherAbility");
    b.register_ability("entry", "EntryAbility", reject("third"));
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(result.reason.as_deref(), Some("third"));
}

#[tokio::test(start_paused = true)]
async fn need_send_data_over_a_local_transport_without_data_is_local_wifi_not_open() {
    let world = World::with(
        DeviceOptions::new().carries_data(false),
        DeviceOptions::new(),
        DeviceConfig::default(),
    );
    world.b_accepts();
    let options = ConnectOptions {
        need_send_data: Some(true),
        ..ConnectOptions::default()
    };
    let a = world
        .a
        .app
        .create_ability_connection_session(SERVICE, &context(), peer_of("tablet"), options)
        .unwrap();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(result.error_code, Some(ConnectErrorCode::LocalWifiNotOpen));
}

/// need_send_data states a need for a transport that carries data, checked at connect; it does
/// not limit what the session may send.
#[tokio::test(start_paused = true)]
async fn need_send_data_false_or_unset_does_not_stop_send_data() {
    for need in [Some(false), None] {
        let world = World::new();
        let mut accepted = world.b_accepts();
        let options = ConnectOptions {
            need_send_data: need,
            ..ConnectOptions::default()
        };
        let a = world
            .a
            .app
            .create_ability_connection_session(SERVICE, &context(), peer_of("tablet"), options)
            .unwrap();
        assert!(world.a.app.connect(a).await.unwrap().is_connected);
        let b = accepted.recv().await.unwrap();
        let mut events = world.b.app.events(b).unwrap();
        world
            .a
            .app
            .send_data(a, Bytes::from_static(b"sent all the same"))
            .await
            .unwrap();
        assert_eq!(
            next(&mut events).await,
            Event::Data {
                session_id: b,
                data: Bytes::from_static(b"sent all the same")
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn need_send_data_over_a_peer_transport_without_data_is_peer_wifi_not_open() {
    let world = World::with(
        DeviceOptions::new(),
        DeviceOptions::new().carries_data(false),
        DeviceConfig::default(),
    );
    world.b_accepts();
    let options = ConnectOptions {
        need_send_data: Some(true),
        ..ConnectOptions::default()
    };
    let a = world
        .a
        .app
        .create_ability_connection_session(SERVICE, &context(), peer_of("tablet"), options)
        .unwrap();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(result.error_code, Some(ConnectErrorCode::PeerWifiNotOpen));
}

#[tokio::test(start_paused = true)]
async fn send_data_over_a_transport_without_data_is_801() {
    let world = World::with(
        DeviceOptions::new().carries_data(false),
        DeviceOptions::new(),
        DeviceConfig::default(),
    );
    let (a, _) = world.connected().await;
    let err = world
        .a
        .app
        .send_data(a, Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AcmError::CapabilityNotSupported(Capability::SendData)),
        "{err:?}"
    );
    assert_eq!(err.code(), 801);
    // Messages still work.
    world.a.app.send_message(a, "text is fine").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_request_times_out_with_system_internal_error_after_10_s() {
    let world = World::new();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", |_| CollaborateResult::Accept);
    let a = world.a_session();
    times_out_after_10_s(&world, a).await;
}

/// Connects `session` of A's app and checks that, unanswered, it fails with
/// SYSTEM_INTERNAL_ERROR after exactly 10 s (SPEC `SESS-5`).
async fn times_out_after_10_s(world: &World, session: acm::SessionId) {
    let started = tokio::time::Instant::now();
    let result = world.a.app.connect(session).await.unwrap();
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::SystemInternalError)
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
}

/// After A and B have connected once and then `idle` has passed, B's app takes requests but
/// never answers them: a new request of A's times out after 10 s.
async fn a_later_request_times_out_after_10_s(idle: Duration) {
    let world = World::new();
    world.connected().await;
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", |_| CollaborateResult::Accept);
    tokio::time::sleep(idle).await;
    let a = world
        .a
        .app
        .create_ability_connection_session(
            "unanswered",
            &context(),
            peer_of("tablet"),
            ConnectOptions::default(),
        )
        .unwrap();
    times_out_after_10_s(&world, a).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_soon_after_an_answered_one_times_out_after_10_s_too() {
    a_later_request_times_out_after_10_s(Duration::from_secs(3)).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_between_keepalives_times_out_after_10_s_too() {
    // Past the first keepalive (15 s): the link's task now sleeps until the next one (30 s),
    // later than this request's deadline (26 s), so the connect must wake it to sleep less.
    a_later_request_times_out_after_10_s(Duration::from_secs(16)).await;
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_device_is_system_internal_error() {
    let world = World::new();
    let a = world
        .a
        .app
        .create_ability_connection_session(
            SERVICE,
            &context(),
            peer_of("watch"),
            ConnectOptions::default(),
        )
        .unwrap();
    let result = world.a.app.connect(a).await.unwrap();
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::SystemInternalError)
    );
    assert!(result.reason.unwrap().contains("watch"));
}

#[tokio::test(start_paused = true)]
async fn destroying_a_session_gives_the_peer_peer_app_exit() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    world.a.app.destroy_ability_connection_session(a).unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Disconnect {
            session_id: b,
            reason: DisconnectReason::PeerAppExit
        }
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_manager_gives_the_peer_peer_app_exit() {
    let world = World::new();
    let (_, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    let World {
        a,
        b: b_side,
        network,
    } = world;
    drop(a.app);
    assert_eq!(
        next(&mut events).await,
        Event::Disconnect {
            session_id: b,
            reason: DisconnectReason::PeerAppExit
        }
    );
    drop((b_side, network));
}

#[tokio::test(start_paused = true)]
async fn a_lost_link_gives_network_disconnected_on_both_sides() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut a_events = world.a.app.events(a).unwrap();
    let mut b_events = world.b.app.events(b).unwrap();
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    world.network.links(&phone, &tablet)[0].lose("radio gone");
    for (events, id) in [(&mut a_events, a), (&mut b_events, b)] {
        assert_eq!(
            next(events).await,
            Event::Disconnect {
                session_id: id,
                reason: DisconnectReason::NetworkDisconnected
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn missed_keepalives_give_network_disconnected_on_both_sides() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut a_events = world.a.app.events(a).unwrap();
    let mut b_events = world.b.app.events(b).unwrap();
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    let link = &world.network.links(&phone, &tablet)[0];
    link.inject(&phone, Fault::Stall).unwrap();
    link.inject(&tablet, Fault::Stall).unwrap();
    let started = tokio::time::Instant::now();
    for (events, id) in [(&mut a_events, a), (&mut b_events, b)] {
        assert_eq!(
            next(events).await,
            Event::Disconnect {
                session_id: id,
                reason: DisconnectReason::NetworkDisconnected
            }
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(45));
}

#[tokio::test(start_paused = true)]
async fn crossing_connects_leave_one_session_connected_on_both_sides() {
    let world = World::new();
    let mut a_accepted = accept_all(&world.a.app);
    let mut b_accepted = world.b_accepts();
    let a = world.a_session();
    let b = world
        .b
        .app
        .create_ability_connection_session(
            SERVICE,
            &context(),
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    let (ra, rb) = tokio::join!(world.a.app.connect(a), world.b.app.connect(b));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.is_connected != rb.is_connected, "{ra:?} {rb:?}");
    let loser = if ra.is_connected { &rb } else { &ra };
    assert_eq!(
        loser.error_code,
        Some(ConnectErrorCode::ConnectedSessionExists)
    );
    // The winner's request was accepted by the loser's handler: one accepted session there.
    let accepted = if ra.is_connected {
        b_accepted.recv().await
    } else {
        a_accepted.recv().await
    };
    assert!(accepted.is_some());
}

#[tokio::test(start_paused = true)]
async fn another_apps_token_is_refused_and_the_request_still_waits_for_its_own_app() {
    let world = World::new();
    let (tx, mut tokens) = tokio::sync::mpsc::unbounded_channel();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", move |request| {
            let _ = tx.send(request);
            CollaborateResult::Accept
        });
    let other_context = Context::new("com.example.other", "entry", "EntryAbility");
    let other = world.b.device.manager(&other_context);
    let a = world.a_session();
    let app_a = world.a.app.clone();
    let connecting = tokio::spawn(async move { app_a.connect(a).await });
    let request = tokens.recv().await.unwrap();
    let theirs = other
        .create_ability_connection_session(
            SERVICE,
            &other_context,
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    let err = other
        .accept_connect(theirs, &request.token)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AcmError::TokenRefused(TokenRefusal::OtherApp)),
        "{err:?}"
    );
    let err = other.reject(&request.token, "not mine").unwrap_err();
    assert!(
        matches!(err, AcmError::TokenRefused(TokenRefusal::OtherApp)),
        "{err:?}"
    );
    // The request is still there for the app it was for.
    let ours = session_for(&world.b.app, &request);
    world
        .b
        .app
        .accept_connect(ours, &request.token)
        .await
        .unwrap();
    assert!(connecting.await.unwrap().unwrap().is_connected);
}

#[tokio::test(start_paused = true)]
async fn a_token_used_twice_forged_or_for_another_session_is_refused() {
    let world = World::new();
    let (tx, mut tokens) = tokio::sync::mpsc::unbounded_channel();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", move |request| {
            let _ = tx.send(request.token);
            CollaborateResult::Accept
        });
    let a = world.a_session();
    let app_a = world.a.app.clone();
    let connecting = tokio::spawn(async move { app_a.connect(a).await });
    let token = tokens.recv().await.unwrap();
    // A session for another service cannot take the token.
    let other = world
        .b
        .app
        .create_ability_connection_session(
            "other",
            &context(),
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    let err = world.b.app.accept_connect(other, &token).await.unwrap_err();
    assert!(
        matches!(
            err,
            AcmError::TokenRefused(TokenRefusal::OtherPeer("service"))
        ),
        "{err:?}"
    );
    // Nor can one whose peer is another app: the error names the part that differs.
    for (peer, part) in [
        (
            PeerInfo::new("laptop", BUNDLE, "entry", "EntryAbility"),
            "device",
        ),
        (
            PeerInfo::new("phone", "com.example.other", "entry", "EntryAbility"),
            "bundle",
        ),
        (
            PeerInfo::new("phone", BUNDLE, "settings", "EntryAbility"),
            "module",
        ),
        (
            PeerInfo::new("phone", BUNDLE, "entry", "OtherAbility"),
            "ability",
        ),
    ] {
        let wrong = world
            .b
            .app
            .create_ability_connection_session(SERVICE, &context(), peer, ConnectOptions::default())
            .unwrap();
        let err = world.b.app.accept_connect(wrong, &token).await.unwrap_err();
        assert!(
            matches!(err, AcmError::TokenRefused(TokenRefusal::OtherPeer(p)) if p == part),
            "{err:?}"
        );
        world
            .b
            .app
            .destroy_ability_connection_session(wrong)
            .unwrap();
    }
    // A forged token.
    let right = world
        .b
        .app
        .create_ability_connection_session(
            SERVICE,
            &context(),
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    let forged = "0123456789abcdef0123456789abcdef";
    assert!(matches!(
        world.b.app.accept_connect(right, forged).await,
        Err(AcmError::TokenRefused(TokenRefusal::Unknown))
    ));
    assert!(matches!(
        world.b.app.accept_connect(right, "xyz").await,
        Err(AcmError::TokenRefused(TokenRefusal::Malformed))
    ));
    // The right session with the right token, once.
    world.b.app.accept_connect(right, &token).await.unwrap();
    assert!(connecting.await.unwrap().unwrap().is_connected);
    let again = world
        .b
        .app
        .create_ability_connection_session(
            SERVICE,
            &context(),
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    let replay = world.b.app.accept_connect(again, &token).await.unwrap_err();
    assert!(
        matches!(replay, AcmError::TokenRefused(TokenRefusal::Unknown)),
        "{replay:?}"
    );
    assert_eq!(replay.code(), 401);
    assert!(matches!(
        world.b.app.reject(&token, "late"),
        Err(AcmError::TokenRefused(TokenRefusal::Unknown))
    ));
}

#[tokio::test(start_paused = true)]
async fn callbacks_see_their_events_and_stop_after_off() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let (callback, seen) = recorder();
    let (other, other_seen) = recorder();
    world
        .b
        .app
        .on(EventType::ReceiveMessage, b, callback.clone())
        .unwrap();
    world
        .b
        .app
        .on(EventType::ReceiveMessage, b, other.clone())
        .unwrap();
    let mut stream = world.b.app.events(b).unwrap();
    world.a.app.send_message(a, "one").await.unwrap();
    next(&mut stream).await;
    world
        .b
        .app
        .off(EventType::ReceiveMessage, b, Some(&callback))
        .unwrap();
    world.a.app.send_message(a, "two").await.unwrap();
    next(&mut stream).await;
    world.b.app.off(EventType::ReceiveMessage, b, None).unwrap();
    world.a.app.send_message(a, "three").await.unwrap();
    next(&mut stream).await;
    let texts = |seen: &std::sync::Mutex<Vec<Event>>| -> Vec<String> {
        seen.lock()
            .unwrap()
            .iter()
            .filter_map(|e| e.callback_info().msg)
            .collect()
    };
    assert_eq!(texts(&seen), ["one"]);
    assert_eq!(texts(&other_seen), ["one", "two"]);
}

#[tokio::test(start_paused = true)]
async fn the_connect_event_fires_on_both_sides() {
    let world = World::new();
    let mut accepted = world.b_accepts();
    let a = world.a_session();
    let (callback, seen) = recorder();
    world.a.app.on(EventType::Connect, a, callback).unwrap();
    assert!(world.a.app.connect(a).await.unwrap().is_connected);
    let b = accepted.recv().await.unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        [Event::Connect { session_id: a }]
    );
    assert!(world.b.app.get_peer_info_by_id(b).is_some());
}

#[tokio::test(start_paused = true)]
async fn collaborate_events_reach_the_peer() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut stream = world.b.app.events(b).unwrap();
    world
        .a
        .app
        .send_collaborate_event(a, CollaborateEventType::ColorSpaceConversionFailure, "hdr")
        .await
        .unwrap();
    assert_eq!(
        next(&mut stream).await,
        Event::Collaborate {
            session_id: b,
            info: CollaborateEventInfo {
                event_type: CollaborateEventType::ColorSpaceConversionFailure,
                event_msg: Some("hdr".into())
            }
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_disconnected_session_can_connect_again() {
    let world = World::new();
    let (a, _) = world.connected().await;
    world.a.app.disconnect(a).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let result = world.a.app.connect(a).await.unwrap();
    assert!(result.is_connected, "{result:?}");
}

#[tokio::test(start_paused = true)]
async fn available_devices_lists_the_other_devices_or_is_801_without_discovery() {
    let world = World::with(
        DeviceOptions::new(),
        DeviceOptions::new().discovery(false),
        DeviceConfig::default(),
    );
    let seen = world.a.device.available_devices().await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id.as_str(), "tablet");
    let err = world.b.device.available_devices().await.unwrap_err();
    assert!(
        matches!(
            err,
            AcmError::CapabilityNotSupported(Capability::Transport(_))
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), 801);
}

#[tokio::test(start_paused = true)]
async fn send_data_over_the_peers_maximum_is_data_too_large_with_both_sizes() {
    let mut small = DeviceConfig::default();
    small.engine.limits.max_data_size = 1000;
    let network = acm_transport_mock::MockNetwork::new(11);
    let a = side(
        &network,
        "phone",
        DeviceOptions::new(),
        DeviceConfig::default(),
    );
    let b = side(&network, "tablet", DeviceOptions::new(), small);
    let world = World { network, a, b };
    let (a, _) = world.connected().await;
    let err = world
        .a
        .app
        .send_data(a, Bytes::from(vec![0; 1001]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AcmError::DataTooLarge {
                len: 1001,
                max: 1000
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), 401);
    world
        .a
        .app
        .send_data(a, Bytes::from(vec![0; 1000]))
        .await
        .unwrap();
}

/// Slows the phone's side of its link to the tablet to 1 MiB/s and sends 8 MiB on session `a`
/// of the phone: the transfer is in flight for seconds. The link, and the send.
fn slow_transfer(
    world: &World,
    a: acm::SessionId,
) -> (
    acm_transport_mock::LinkHandle,
    tokio::task::JoinHandle<Result<(), AcmError>>,
) {
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    let link = world.network.links(&phone, &tablet)[0].clone();
    link.inject(&phone, Fault::Bandwidth(std::num::NonZeroU64::new(1 << 20)))
        .unwrap();
    let sender = world.a.app.clone();
    let sending =
        tokio::spawn(async move { sender.send_data(a, Bytes::from(vec![1; 8 << 20])).await });
    (link, sending)
}

/// A send_data cut short by the end of its session says why the session ended: the peer's
/// reason, or what this side told the peer when it ended the session itself.
#[tokio::test(start_paused = true)]
async fn send_data_cut_short_by_the_session_ending_says_why_it_ended() {
    for (who, call, reason) in [
        (
            "peer",
            "disconnect",
            DisconnectReason::PeerAppCloseCollaboration,
        ),
        ("peer", "destroy", DisconnectReason::PeerAppExit),
        (
            "sender",
            "disconnect",
            DisconnectReason::PeerAppCloseCollaboration,
        ),
        ("sender", "destroy", DisconnectReason::PeerAppExit),
    ] {
        let world = World::new();
        let (a, b) = world.connected().await;
        let (_, sending) = slow_transfer(&world, a);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (app, id) = match who {
            "peer" => (&world.b.app, b),
            _ => (&world.a.app, a),
        };
        match call {
            "disconnect" => app.disconnect(id).unwrap(),
            _ => app.destroy_ability_connection_session(id).unwrap(),
        }
        let err = sending.await.unwrap().unwrap_err();
        assert!(
            matches!(err, AcmError::SessionEnded { session_id, reason: r } if session_id == a && r == reason),
            "{who} {call}: {err:?}"
        );
        assert_eq!(err.code(), 401);
    }
}

#[tokio::test(start_paused = true)]
async fn a_100_mib_transfer_arrives_intact() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    let data: Bytes = (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let sender = world.a.app.clone();
    let sent = data.clone();
    let sending = tokio::spawn(async move { sender.send_data(a, sent).await });
    let Event::Data { data: got, .. } = next(&mut events).await else {
        panic!("expected data");
    };
    sending.await.unwrap().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "100 MiB differ");
}

#[tokio::test(start_paused = true)]
async fn messages_and_data_of_several_sessions_keep_their_order_per_session() {
    let world = World::new();
    let mut accepted = world.b_accepts();
    let mut pairs = Vec::new();
    for service in ["alpha", "beta", "gamma"] {
        let a = world
            .a
            .app
            .create_ability_connection_session(
                service,
                &context(),
                peer_of("tablet"),
                ConnectOptions::default(),
            )
            .unwrap();
        assert!(world.a.app.connect(a).await.unwrap().is_connected);
        let b = accepted.recv().await.unwrap();
        pairs.push((a, b, world.b.app.events(b).unwrap()));
    }
    let mut senders = Vec::new();
    for (n, (a, _, _)) in pairs.iter().enumerate() {
        let app = world.a.app.clone();
        let a = *a;
        senders.push(tokio::spawn(async move {
            for k in 0..20u32 {
                if k % 3 == 0 {
                    let blob = Bytes::from(vec![(n as u8) ^ (k as u8); 10_000 + k as usize * 700]);
                    app.send_data(a, blob).await.unwrap();
                } else {
                    app.send_message(a, &format!("{n}:{k}")).await.unwrap();
                }
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    for (n, (_, b, events)) in pairs.iter_mut().enumerate() {
        for k in 0..20u32 {
            match next(events).await {
                Event::Message { session_id, msg } => {
                    assert_eq!(session_id, *b);
                    assert_eq!(msg, format!("{n}:{k}"), "session {n} out of order");
                }
                Event::Data { session_id, data } => {
                    assert_eq!(session_id, *b);
                    assert_eq!(k % 3, 0, "session {n}: data where message {k} was due");
                    assert_eq!(data.len(), 10_000 + k as usize * 700);
                    assert!(data.iter().all(|x| *x == (n as u8) ^ (k as u8)));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_link_dropped_mid_transfer_delivers_nothing_partial() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut b_events = world.b.app.events(b).unwrap();
    let mut a_events = world.a.app.events(a).unwrap();
    let (link, sending) = slow_transfer(&world, a);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(link.stats(&DeviceId::new("tablet").unwrap()).is_ok());
    link.lose("walked out of range");
    let err = sending.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            AcmError::SessionEnded {
                session_id,
                reason: DisconnectReason::NetworkDisconnected
            } if session_id == a
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), 401);
    assert_eq!(
        next(&mut b_events).await,
        Event::Disconnect {
            session_id: b,
            reason: DisconnectReason::NetworkDisconnected
        },
        "the partial transfer is never delivered"
    );
    assert_eq!(
        next(&mut a_events).await,
        Event::Disconnect {
            session_id: a,
            reason: DisconnectReason::NetworkDisconnected
        }
    );
}

#[tokio::test(start_paused = true)]
async fn send_data_waits_while_the_link_is_stalled() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    let link = world.network.links(&phone, &tablet)[0].clone();
    link.inject(&phone, Fault::Stall).unwrap();
    let sender = world.a.app.clone();
    let mut sending =
        tokio::spawn(async move { sender.send_data(a, Bytes::from(vec![5; 16 << 20])).await });
    // Five seconds later the link's buffer is full and the call has not returned.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), &mut sending)
            .await
            .is_err(),
        "send_data returned while nothing could leave"
    );
    let in_flight = link.stats(&phone).unwrap().bytes_in_flight;
    assert!(
        in_flight <= 2 << 20,
        "{in_flight} bytes queued: the sender was not held back"
    );
    link.inject(&phone, Fault::Unstall).unwrap();
    sending.await.unwrap().unwrap();
    let Event::Data { data, .. } = next(&mut events).await else {
        panic!("expected data");
    };
    assert_eq!(data.len(), 16 << 20);
}

#[tokio::test(start_paused = true)]
async fn link_8_of_two_links_between_two_devices_the_other_one_retires() {
    let world = World::new();
    let _a_accepted = accept_all(&world.a.app);
    let _b_accepted = world.b_accepts();
    let a = world.a_session();
    let b = world
        .b
        .app
        .create_ability_connection_session(
            "other",
            &context(),
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    // Both devices dial at once: two links.
    let (ra, rb) = tokio::join!(world.a.app.connect(a), world.b.app.connect(b));
    assert!(ra.unwrap().is_connected && rb.unwrap().is_connected);
    let phone = DeviceId::new("phone").unwrap();
    let tablet = DeviceId::new("tablet").unwrap();
    let links = world.network.links(&phone, &tablet);
    assert_eq!(links.len(), 2, "both dialed");
    // Once the sessions on the link the tablet dialed end, that link closes.
    world.a.app.destroy_ability_connection_session(a).unwrap();
    world.b.app.destroy_ability_connection_session(b).unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let left = world.network.links(&phone, &tablet);
    assert_eq!(left.len(), 1, "one link remains");
    assert_eq!(left[0].dialer(), &phone, "the one the lower id dialed");
}

#[tokio::test(start_paused = true)]
async fn an_app_that_answers_every_message_keeps_up_with_a_flood() {
    // The echoing app waits for each send_message while more than a stream's worth of events
    // (1024) arrives: the runtime must go on serving its calls meanwhile.
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut b_events = world.b.app.events(b).unwrap();
    let echo = world.b.app.clone();
    tokio::spawn(async move {
        while let Some(Event::Message { msg, .. }) = b_events.next().await {
            echo.send_message(b, &msg).await.unwrap();
        }
    });
    let mut a_events = world.a.app.events(a).unwrap();
    let sender = world.a.app.clone();
    tokio::spawn(async move {
        for i in 0..3000 {
            sender.send_message(a, &format!("m{i}")).await.unwrap();
        }
    });
    for i in 0..3000 {
        let event = tokio::time::timeout(Duration::from_secs(30), a_events.next())
            .await
            .expect("the echo keeps flowing")
            .unwrap();
        assert_eq!(
            event,
            Event::Message {
                session_id: a,
                msg: format!("m{i}")
            }
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_destroyed_while_connecting_reports_system_internal_error() {
    let world = World::new();
    let (tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", move |request| {
            let _ = tx.send(request);
            CollaborateResult::Accept
        });
    let a = world.a_session();
    let app = world.a.app.clone();
    let connecting = tokio::spawn(async move { app.connect(a).await });
    let request = requests.recv().await.unwrap();
    // A's app destroys the session while B's app has not answered yet; then B accepts.
    world.a.app.destroy_ability_connection_session(a).unwrap();
    let b = world
        .b
        .app
        .create_ability_connection_session(
            SERVICE,
            &context(),
            peer_of("phone"),
            ConnectOptions::default(),
        )
        .unwrap();
    let mut b_events = world.b.app.events(b).unwrap();
    world.b.app.accept_connect(b, &request.token).await.unwrap();
    let result = connecting.await.unwrap().unwrap();
    assert!(!result.is_connected, "{result:?}");
    assert_eq!(
        result.error_code,
        Some(ConnectErrorCode::SystemInternalError)
    );
    // B sees the app on A leave.
    let mut reason = None;
    while let Some(event) = b_events.next().await {
        if let Event::Disconnect { reason: r, .. } = event {
            reason = Some(r);
            break;
        }
    }
    assert_eq!(reason, Some(DisconnectReason::PeerAppExit));
}
