//! The Rust-shaped core: owned sessions, connect as a `Result`, requests as values.

use std::time::Duration;

use acm::{
    CollaborateResult, ConnectError, ConnectErrorCode, ConnectOptions, DisconnectReason, Event,
    IncomingRequest,
};
use bytes::Bytes;

use crate::harness::*;

/// The phone's session with the tablet's app, owned.
fn a_session(world: &World) -> acm::Session {
    world
        .a
        .app
        .create_session(
            SERVICE,
            &context(),
            peer_of("tablet"),
            ConnectOptions::default(),
        )
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn owned_sessions_connect_talk_and_are_destroyed_when_dropped() {
    let world = World::new();
    let mut requests = world.b.app.incoming("entry", "EntryAbility");
    let tablet = tokio::spawn(async move {
        let request = requests.next().await.unwrap();
        assert_eq!(request.peer_info().device_id, "phone");
        assert_eq!(request.peer_info().service_name, SERVICE);
        request.accept(&context()).unwrap()
    });
    let session = a_session(&world);
    let mut events = session.events().unwrap();
    session.connect().await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Connect {
            session_id: session.id()
        }
    );
    let (theirs, mut their_events) = tablet.await.unwrap();
    // Their stream was taken before the session was connected: it begins with `connect`.
    assert_eq!(
        next(&mut their_events).await,
        Event::Connect {
            session_id: theirs.id()
        }
    );
    session.send_message("hello").await.unwrap();
    session
        .send_data(Bytes::from_static(b"bytes"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut their_events).await,
        Event::Message {
            session_id: theirs.id(),
            msg: "hello".into()
        }
    );
    assert_eq!(
        next(&mut their_events).await,
        Event::Data {
            session_id: theirs.id(),
            data: Bytes::from_static(b"bytes")
        }
    );
    theirs.send_message("hi").await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Message {
            session_id: session.id(),
            msg: "hi".into()
        }
    );
    // Dropping the handle destroys the session: the peer hears PEER_APP_EXIT.
    let id = session.id();
    drop(session);
    assert!(world.a.app.get_peer_info_by_id(id).is_none());
    assert_eq!(events.next().await, None);
    assert_eq!(
        next(&mut their_events).await,
        Event::Disconnect {
            session_id: theirs.id(),
            reason: DisconnectReason::PeerAppExit
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejected_connect_is_an_error_with_the_code_and_the_reason() {
    let world = World::new();
    let mut requests = world.b.app.incoming("entry", "EntryAbility");
    tokio::spawn(async move {
        let request = requests.next().await.unwrap();
        request.reject("not now").unwrap();
    });
    let err = a_session(&world).connect().await.unwrap_err();
    assert_eq!(
        err,
        ConnectError {
            code: ConnectErrorCode::PeerAppRejected,
            reason: Some("not now".into())
        }
    );
    assert_eq!(
        err.to_string(),
        "connect failed with PEER_APP_REJECTED: not now"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_dropped_unanswered_is_rejected_at_once() {
    let world = World::new();
    let mut requests = world.b.app.incoming("entry", "EntryAbility");
    tokio::spawn(async move {
        drop(requests.next().await);
    });
    let started = tokio::time::Instant::now();
    let err = a_session(&world).connect().await.unwrap_err();
    assert_eq!(err.code, ConnectErrorCode::PeerAppRejected);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_of_requests_unregisters_the_ability() {
    let world = World::new();
    drop(world.b.app.incoming("entry", "EntryAbility"));
    let err = a_session(&world).connect().await.unwrap_err();
    assert_eq!(err.code, ConnectErrorCode::PeerAbilityNoOncollaborate);
}

#[tokio::test(start_paused = true)]
async fn a_handler_registered_later_replaces_the_stream_which_ends() {
    let world = World::new();
    let mut requests = world.b.app.incoming("entry", "EntryAbility");
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", |_| CollaborateResult::Reject {
            reason: "handler".into(),
        });
    assert!(requests.next().await.is_none());
    let err = a_session(&world).connect().await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("handler"));
    // And dropping the ended stream leaves the new handler registered.
    drop(requests);
    let err = a_session(&world).connect().await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("handler"));
}

#[tokio::test(start_paused = true)]
async fn a_request_from_the_handler_form_is_answered_from_another_task() {
    let world = World::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let manager = world.b.app.clone();
    world
        .b
        .app
        .register_ability("entry", "EntryAbility", move |request| {
            let _ = tx.send(IncomingRequest::new(&manager, request));
            CollaborateResult::Accept
        });
    let tablet = tokio::spawn(async move {
        let request = rx.recv().await.unwrap();
        request.accept(&context()).unwrap()
    });
    let session = a_session(&world);
    session.connect().await.unwrap();
    let (theirs, _) = tablet.await.unwrap();
    assert_eq!(theirs.peer_info().unwrap().device_id, "phone");
    // The handler holds a manager: shut the device down to let it go.
    world.b.device.shutdown();
}

#[tokio::test(start_paused = true)]
async fn a_session_given_up_as_its_id_lives_on_for_the_reference_functions() {
    let world = World::new();
    let mut accepted = world.b_accepts();
    let session = a_session(&world);
    session.connect().await.unwrap();
    let b = accepted.recv().await.unwrap();
    let id = session.into_id();
    let mut events = world.b.app.events(b).unwrap();
    world.a.app.send_message(id, "still here").await.unwrap();
    assert_eq!(
        next(&mut events).await,
        Event::Message {
            session_id: b,
            msg: "still here".into()
        }
    );
    // And the manager can own it again.
    drop(world.a.app.session(id).unwrap());
    assert!(world.a.app.get_peer_info_by_id(id).is_none());
}
