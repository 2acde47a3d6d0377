//! How the apps' calls reach a link: each takes effect in the device's engine when it is made
//! (or first polled, for an async call), whatever becomes of its future, and always in the
//! order the calls were made; the link's task sends what they queued.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Waker};

use acm::transport::DeviceId;
use acm::{
    AbilityConnectionManager, CollaborateRequest, CollaborateResult, ConnectOptions, SessionId,
};
use acm_transport_mock::{DeviceOptions, LinkHandle};
use tokio::sync::mpsc;

use crate::harness::*;

fn the_link(world: &World) -> LinkHandle {
    let (phone, tablet) = (
        DeviceId::new("phone").unwrap(),
        DeviceId::new("tablet").unwrap(),
    );
    world
        .network
        .links(&phone, &tablet)
        .pop()
        .expect("the link is up")
}

/// A session of `app` with the app on `peer` for a service other than the harness's.
fn session_for_another_service(app: &AbilityConnectionManager, peer: &str) -> SessionId {
    app.create_ability_connection_session(
        "second-service",
        &context(),
        peer_of(peer),
        ConnectOptions::default(),
    )
    .unwrap()
}

fn frames_sent_by(link: &LinkHandle, device: &str) -> u64 {
    link.stats(&DeviceId::new(device).unwrap())
        .unwrap()
        .frames_sent
}

/// Over a link that is up, A connects a second session to B, whose app keeps the request's
/// token unanswered: A's connect under way, and the token.
async fn second_request_kept_by_b(
    world: &World,
) -> (tokio::task::JoinHandle<acm::ConnectResult>, String) {
    world.connected().await;
    let (tokens, mut requests) = mpsc::unbounded_channel();
    world.b.app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let _ = tokens.send(request.token);
            CollaborateResult::Accept
        },
    );
    let second = session_for_another_service(&world.a.app, "tablet");
    let connecting = tokio::spawn({
        let app = world.a.app.clone();
        async move { app.connect(second).await.unwrap() }
    });
    let token = requests.recv().await.expect("the request arrived");
    (connecting, token)
}

#[tokio::test(start_paused = true)]
async fn a_connect_polled_once_has_sent_its_request_even_if_it_is_then_dropped() {
    let world = World::new();
    world.connected().await;
    let (tokens, mut requests) = mpsc::unbounded_channel();
    world.b.app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let _ = tokens.send(request.token);
            CollaborateResult::Accept
        },
    );
    let second = session_for_another_service(&world.a.app, "tablet");
    let mut ours = world.a.app.events(second).unwrap();
    {
        let mut connect = pin!(world.a.app.connect(second));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(connect.as_mut().poll(&mut cx).is_pending());
    }
    let token = requests.recv().await.expect("the request arrived");
    let theirs = session_for_another_service(&world.b.app, "phone");
    world.b.app.accept_connect(theirs, &token).await.unwrap();
    // The dropped connect's session is connected all the same.
    assert!(matches!(next(&mut ours).await, acm::Event::Connect { .. }));
    world.b.app.send_message(theirs, "accepted").await.unwrap();
    assert!(matches!(next(&mut ours).await, acm::Event::Message { msg, .. } if msg == "accepted"));
}

#[tokio::test(start_paused = true)]
async fn a_connect_takes_effect_at_its_first_poll() {
    let world = World::new();
    world.connected().await;
    let second = session_for_another_service(&world.a.app, "tablet");
    let mut connect = pin!(world.a.app.connect(second));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(connect.as_mut().poll(&mut cx).is_pending());
    // The request is made: connecting the session again is refused at once.
    let again = world.a.app.connect(second).await.unwrap();
    assert_eq!(
        again.error_code,
        Some(acm::ConnectErrorCode::ConnectedSessionExists),
        "{again:?}"
    );
    assert!(connect.await.unwrap().is_connected);
}

#[tokio::test(start_paused = true)]
async fn a_connect_right_after_a_disconnect_comes_after_it() {
    let world = World::new();
    let (a, _) = world.connected().await;
    for _ in 0..3 {
        // The disconnect waits in the link's queue; the connect must not overtake it, or the
        // session would still be connected when the request is made.
        world.a.app.disconnect(a).unwrap();
        let result = world.a.app.connect(a).await.unwrap();
        assert!(result.is_connected, "{result:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn send_data_polled_once_and_dropped_still_sends_the_whole_transfer() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    let data = bytes::Bytes::from(vec![7u8; 200_000]);
    {
        let mut send = pin!(world.a.app.send_data(a, data.clone()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(send.as_mut().poll(&mut cx).is_pending());
    }
    loop {
        if let acm::Event::Data { data: got, .. } = next(&mut events).await {
            assert_eq!(got, data);
            break;
        }
    }
}

/// The data of the next `Data` event of `events`.
async fn next_data(events: &mut acm::EventStream) -> bytes::Bytes {
    loop {
        if let acm::Event::Data { data, .. } = next(events).await {
            return data;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_received_transfer_fills_the_buffer_an_earlier_one_left_once_the_app_dropped_it() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    let first = bytes::Bytes::from(vec![1u8; 300_000]);
    world.a.app.send_data(a, first.clone()).await.unwrap();
    let got = next_data(&mut events).await;
    assert_eq!(got, first);
    let memory = got.as_ptr();
    assert_eq!(
        world.b.device.receive_pool().kept_buffers(),
        0,
        "the app holds it"
    );
    drop(got);
    assert_eq!(world.b.device.receive_pool().kept_buffers(), 1);
    let second = bytes::Bytes::from(vec![2u8; 280_000]);
    world.a.app.send_data(a, second.clone()).await.unwrap();
    let got = next_data(&mut events).await;
    assert_eq!(got, second, "only the second transfer's bytes");
    assert_eq!(got.as_ptr(), memory, "in the first one's buffer");
}

#[tokio::test(start_paused = true)]
async fn with_no_receive_pool_transfers_arrive_whole_and_nothing_is_kept() {
    let world = World::with(
        acm_transport_mock::DeviceOptions::new(),
        acm_transport_mock::DeviceOptions::new(),
        acm::DeviceConfig::default().with_receive_pool_bytes(0),
    );
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    for fill in 1..=3u8 {
        let data = bytes::Bytes::from(vec![fill; 300_000]);
        world.a.app.send_data(a, data.clone()).await.unwrap();
        assert_eq!(next_data(&mut events).await, data);
        assert_eq!(world.b.device.receive_pool().kept_bytes(), 0);
    }
}

#[tokio::test]
async fn a_callback_that_makes_a_call_on_its_own_link_at_once_does_not_wait_for_itself() {
    // Callbacks run in the link's task; a call from one on its own link must not wait for
    // that task.
    let world = World::new();
    let (a, b) = world.connected().await;
    let app = world.b.app.clone();
    let callback: acm::Callback = Arc::new(move |event: &acm::Event| {
        if let acm::Event::Message { msg, .. } = event {
            let reply = bytes::Bytes::from(format!("echo: {msg}"));
            // Polled once and dropped: the call is handed to the link either way. Waiting for
            // the state held around this callback would never end (the test would hang).
            let mut call = pin!(app.send_data(b, reply));
            let mut cx = Context::from_waker(Waker::noop());
            let _ = call.as_mut().poll(&mut cx);
        }
    });
    world
        .b
        .app
        .on(acm::EventType::ReceiveMessage, b, callback)
        .unwrap();
    let mut events = world.a.app.events(a).unwrap();
    world.a.app.send_message(a, "hi").await.unwrap();
    assert_eq!(next_data(&mut events).await, "echo: hi");
}

#[tokio::test(start_paused = true)]
async fn accept_connect_answers_when_called_even_if_its_future_is_never_polled() {
    let world = World::new();
    let (connecting, token) = second_request_kept_by_b(&world).await;
    let theirs = session_for_another_service(&world.b.app, "phone");
    let link = the_link(&world);
    let before = frames_sent_by(&link, "tablet");
    // As the reference's promise: the acceptance happens with the call, not with a poll.
    drop(world.b.app.accept_connect(theirs, &token));
    assert!(connecting.await.unwrap().is_connected);
    assert_eq!(frames_sent_by(&link, "tablet"), before + 1);
    world.b.app.send_message(theirs, "accepted").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_ability_handler_can_accept_in_oncollaborate_as_the_reference_example_does() {
    let world = World::new();
    let (accepted, mut handed) = mpsc::unbounded_channel();
    let manager = world.b.app.clone();
    world.b.app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            // No task of its own: the session, then the acceptance, in the handler.
            let session = session_for(&manager, &request);
            let events = manager.events(session).unwrap();
            let outcome = manager.accept_connect(session, &request.token);
            let _ = accepted.send((session, events, outcome));
            CollaborateResult::Accept
        },
    );
    let a = world.a_session();
    let result = world.a.app.connect(a).await.unwrap();
    assert!(result.is_connected, "{result:?}");
    let (b, mut events, outcome) = handed.recv().await.expect("the handler ran");
    outcome.await.unwrap();
    assert!(
        matches!(next(&mut events).await, acm::Event::Connect { session_id } if session_id == b)
    );
    let mut a_events = world.a.app.events(a).unwrap();
    world.b.app.send_message(b, "hello").await.unwrap();
    assert!(matches!(next(&mut a_events).await, acm::Event::Message { msg, .. } if msg == "hello"));
}

#[tokio::test(start_paused = true)]
async fn a_connect_callback_that_calls_on_its_own_link_at_once_does_not_wait_for_itself() {
    // The acceptor's connect event comes right after accept_connect; a callback's call on that
    // link must not wait for the task that runs the callback.
    let world = World::new();
    let (sessions, mut accepted) = mpsc::unbounded_channel();
    let manager = world.b.app.clone();
    world.b.app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let (manager, sessions) = (manager.clone(), sessions.clone());
            tokio::spawn(async move {
                let session = session_for(&manager, &request);
                let app = manager.clone();
                let welcome: acm::Callback = Arc::new(move |_: &acm::Event| {
                    let mut call = pin!(app.send_data(session, bytes::Bytes::from("welcome")));
                    let mut cx = Context::from_waker(Waker::noop());
                    let _ = call.as_mut().poll(&mut cx);
                });
                manager
                    .on(acm::EventType::Connect, session, welcome)
                    .unwrap();
                manager
                    .accept_connect(session, &request.token)
                    .await
                    .unwrap();
                let _ = sessions.send(session);
            });
            CollaborateResult::Accept
        },
    );
    let a = world.a_session();
    let mut a_events = world.a.app.events(a).unwrap();
    assert!(world.a.app.connect(a).await.unwrap().is_connected);
    accepted.recv().await.expect("B accepted");
    assert_eq!(next_data(&mut a_events).await, "welcome");
}

#[tokio::test(start_paused = true)]
async fn send_data_longer_than_the_link_holds_is_done_once_its_last_fragment_goes() {
    // The link holds about two frames: the link's task sends the fragments as the peer reads,
    // several at once in some of its turns. The caller hears that the transfer is done once
    // the last one has gone.
    let world = World::with(
        DeviceOptions::new().receive_buffer(150_000),
        DeviceOptions::new().receive_buffer(150_000),
        acm::DeviceConfig::default(),
    );
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    for round in 0..3u8 {
        let data = bytes::Bytes::from(vec![round; 1_000_000]);
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            world.a.app.send_data(a, data.clone()),
        )
        .await
        .expect("send_data is done in time")
        .unwrap();
        assert_eq!(next_data(&mut events).await, data);
    }
}

/// A and B connected, B's stream of the session's events holding at most `stream_bytes` bytes
/// of unread data, and B's end of the link holding 16 KiB in flight.
async fn with_small_stream(stream_bytes: usize) -> (World, SessionId, acm::EventStream) {
    let world = World::with(
        DeviceOptions::new(),
        DeviceOptions::new().receive_buffer(16 * 1024),
        acm::DeviceConfig::default().with_stream_data_bytes(stream_bytes),
    );
    let (a, b) = world.connected().await;
    let events = world.b.app.events(b).unwrap();
    (world, a, events)
}

/// `count` transfers of 48 KiB, each of its own byte.
fn blobs(count: u8) -> Vec<bytes::Bytes> {
    (0..count)
        .map(|i| bytes::Bytes::from(vec![i; 48 * 1024]))
        .collect()
}

/// Sends `blobs` from A's session `a`, one after the other, in a task of its own.
fn send_all(world: &World, a: SessionId, blobs: &[bytes::Bytes]) -> tokio::task::JoinHandle<()> {
    let (app, blobs) = (world.a.app.clone(), blobs.to_vec());
    tokio::spawn(async move {
        for blob in blobs {
            assert!(app.send_data(a, blob).await.is_ok());
        }
    })
}

#[tokio::test(start_paused = true)]
async fn a_stream_holds_at_most_its_data_bytes_unread_and_then_the_peer_waits() {
    let (world, a, mut events) = with_small_stream(64 * 1024).await;
    let blobs = blobs(6);
    let sending = send_all(&world, a, &blobs);
    // B reads nothing: its stream takes the first transfer (48 of 64 KiB), the second waits
    // for room, and the link stops reading. The third fills the link, the fourth waits in A's
    // send, and A's sends wait from the fifth on.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let into_b = the_link(&world)
        .stats(&DeviceId::new("phone").unwrap())
        .unwrap();
    assert_eq!(into_b.frames_in_flight, 1, "{into_b:?}");
    assert!(
        !sending.is_finished(),
        "A sent it all while B's stream was full"
    );
    // Once B reads, every transfer arrives, whole and in order.
    for blob in &blobs {
        assert_eq!(next_data(&mut events).await, blob);
    }
    sending.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_transfer_larger_than_a_streams_room_arrives_alone() {
    let (world, a, mut events) = with_small_stream(16 * 1024).await;
    let blobs = blobs(3);
    let sending = send_all(&world, a, &blobs);
    for blob in &blobs {
        assert_eq!(next_data(&mut events).await, blob);
    }
    sending.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_full_stream_dropped_by_its_app_no_longer_holds_the_link_back() {
    let (world, a, events) = with_small_stream(64 * 1024).await;
    let blobs = blobs(6);
    let sending = send_all(&world, a, &blobs);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(!sending.is_finished());
    // The event waiting for room goes with the stream, and the link reads again.
    drop(events);
    tokio::time::timeout(std::time::Duration::from_secs(10), sending)
        .await
        .expect("A's sends go on once the stream is gone")
        .unwrap();
}

/// The keepalive interval of both devices, in seconds.
const KEEPALIVE_S: u64 = 1;

#[tokio::test(start_paused = true)]
async fn a_peer_that_reads_slowly_but_steadily_is_never_closed_for_not_reading() {
    // B's app reads one transfer of 60 KiB every 300 ms and its stream holds one unread, so
    // B's link takes about one frame from A each 300 ms: slowly, but steadily. With keepalive
    // intervals of 1 s, A closes a link that takes nothing for 3 s (LINK-13); forty transfers
    // queued at once take 12 s to go, and none of their frames may wait 3 s behind others.
    let keepalive = acm::DeviceConfig::default().with_stream_data_bytes(64 * 1024);
    let mut config = keepalive.clone();
    config.engine = config
        .engine
        .with_keepalive_interval(std::time::Duration::from_secs(KEEPALIVE_S));
    let world = World::with(
        DeviceOptions::new(),
        DeviceOptions::new().receive_buffer(64 * 1024),
        config,
    );
    let (a, b) = world.connected().await;
    let mut events = world.b.app.events(b).unwrap();
    let blobs: Vec<bytes::Bytes> = (0..40u8)
        .map(|i| bytes::Bytes::from(vec![i; 60 * 1024]))
        .collect();
    let sends: Vec<_> = blobs
        .iter()
        .map(|blob| {
            let (app, blob) = (world.a.app.clone(), blob.clone());
            tokio::spawn(async move { app.send_data(a, blob).await })
        })
        .collect();
    for blob in &blobs {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(&next_data(&mut events).await, blob);
    }
    for send in sends {
        assert!(send.await.unwrap().is_ok());
    }
}
