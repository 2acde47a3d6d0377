use bytes::Bytes;

use acm::{DisconnectReason, Event};

use crate::harness::*;

#[tokio::test(start_paused = true)]
async fn connect_accept_message_data_and_disconnect() {
    let world = World::new();
    let (a, b) = world.connected().await;
    let mut b_events = world.b.app.events(b).unwrap();
    let mut a_events = world.a.app.events(a).unwrap();
    world.a.app.send_message(a, "hello").await.unwrap();
    assert_eq!(next(&mut b_events).await, Event::Message { session_id: b, msg: "hello".into() });
    let data = Bytes::from(vec![9u8; 1 << 20]);
    world.b.app.send_data(b, data.clone()).await.unwrap();
    assert_eq!(next(&mut a_events).await, Event::Data { session_id: a, data });
    world.a.app.disconnect(a).unwrap();
    assert_eq!(
        next(&mut b_events).await,
        Event::Disconnect { session_id: b, reason: DisconnectReason::PeerAppCloseCollaboration }
    );
}
