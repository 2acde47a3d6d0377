//! The whole session API (`acm::Device` and `AbilityConnectionManager`) between two devices on
//! Bluetooth LE transports on one Rootcanal medium: connect, accept, a message, 1 MiB of data,
//! and every way a session ends. Run with `--ignored` (see `.ci/ble`).

mod common;

use std::time::Duration;

use acm::{
    AbilityConnectionManager, CollaborateRequest, CollaborateResult, ConnectOptions, Context,
    Device, DeviceConfig, DisconnectReason, Event, EventStream, PeerInfo, SessionId,
};
use bytes::Bytes;
use common::{ControllerProcess, or_skip, rootcanal, transport, within};
use tokio::sync::mpsc;

const BUNDLE: &str = "com.example.notes";
const SERVICE: &str = "notes-sync";

fn context() -> Context {
    Context::new(BUNDLE, "entry", "EntryAbility")
}

/// One device with its app.
struct Side {
    _device: Device,
    app: AbilityConnectionManager,
}

async fn side(controller: &ControllerProcess, id: &str) -> Side {
    let device = Device::new(
        transport(id, controller.hci(0)).await,
        DeviceConfig::default(),
    );
    let app = device.manager(&context());
    Side {
        _device: device,
        app,
    }
}

/// Registers an ability on `app` that accepts every request; accepted sessions arrive on the
/// returned channel.
fn accept_all(app: &AbilityConnectionManager) -> mpsc::UnboundedReceiver<SessionId> {
    let (tx, rx) = mpsc::unbounded_channel();
    let manager = app.clone();
    app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let manager = manager.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let session = manager
                    .create_ability_connection_session(
                        &request.peer_info.service_name,
                        &context(),
                        request.peer_info.clone(),
                        request.connect_options.clone(),
                    )
                    .expect("the acceptor's session");
                manager
                    .accept_connect(session, &request.token)
                    .await
                    .expect("accept_connect works");
                let _ = tx.send(session);
            });
            CollaborateResult::Accept
        },
    );
    rx
}

/// The phone and the tablet, each on its own controller of `controller`'s medium, with a
/// session connected from the phone to the tablet: (phone, tablet, phone's id, tablet's id).
async fn connected(controller: &ControllerProcess) -> (Side, Side, SessionId, SessionId) {
    let phone = side(controller, "phone").await;
    let tablet = side(controller, "tablet").await;
    let mut accepted = accept_all(&tablet.app);
    let peer = PeerInfo::new("tablet", BUNDLE, "entry", "EntryAbility");
    let a = phone
        .app
        .create_ability_connection_session(SERVICE, &context(), peer, ConnectOptions::default())
        .expect("the phone's session");
    let result = phone.app.connect(a).await.expect("connect works");
    assert!(result.is_connected, "{result:?}");
    let b = accepted.recv().await.expect("the tablet accepted");
    (phone, tablet, a, b)
}

/// The next event of a stream.
async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

/// A megabyte of bytes that differ from their neighbours.
fn mebibyte() -> Bytes {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn sessions_connect_carry_a_message_and_1_mib_and_disconnect_as_peer_app_close_collaboration()
{
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(180, async {
        let (phone, tablet, a, b) = connected(&controller).await;
        let mut a_events = phone.app.events(a).unwrap();
        let mut b_events = tablet.app.events(b).unwrap();

        phone.app.send_message(a, "hello tablet").await.unwrap();
        assert_eq!(
            next(&mut b_events).await,
            Event::Message {
                session_id: b,
                msg: "hello tablet".into()
            }
        );

        let data = mebibyte();
        let sending = phone.app.send_data(a, data.clone());
        let (sent, got) = tokio::join!(sending, next(&mut b_events));
        sent.expect("send_data works");
        let Event::Data {
            session_id,
            data: got,
        } = got
        else {
            panic!("expected the data, got {got:?}");
        };
        assert_eq!(session_id, b);
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the mebibyte arrived altered");

        tablet.app.send_message(b, "got it").await.unwrap();
        assert_eq!(
            next(&mut a_events).await,
            Event::Message {
                session_id: a,
                msg: "got it".into()
            }
        );

        phone.app.disconnect(a).unwrap();
        assert_eq!(
            next(&mut b_events).await,
            Event::Disconnect {
                session_id: b,
                reason: DisconnectReason::PeerAppCloseCollaboration
            }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn destroying_a_session_over_ble_gives_the_peer_peer_app_exit() {
    let Some(controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (phone, tablet, a, b) = connected(&controller).await;
        let mut b_events = tablet.app.events(b).unwrap();
        phone.app.destroy_ability_connection_session(a).unwrap();
        assert_eq!(
            next(&mut b_events).await,
            Event::Disconnect {
                session_id: b,
                reason: DisconnectReason::PeerAppExit
            }
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a virtual controller; run by .ci/ble"]
async fn a_killed_controller_gives_network_disconnected_on_both_sides() {
    let Some(mut controller) = or_skip("rootcanal", rootcanal()) else {
        return;
    };
    within(120, async {
        let (phone, tablet, a, b) = connected(&controller).await;
        let mut a_events = phone.app.events(a).unwrap();
        let mut b_events = tablet.app.events(b).unwrap();
        controller.kill();
        for (events, id) in [(&mut a_events, a), (&mut b_events, b)] {
            assert_eq!(
                next(events).await,
                Event::Disconnect {
                    session_id: id,
                    reason: DisconnectReason::NetworkDisconnected
                }
            );
        }
    })
    .await;
}
