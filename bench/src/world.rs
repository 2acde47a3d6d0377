//! Devices on one mock network, each with one app, for the measures that go through the whole
//! stack.

use acm::segmented::Segmented;
use acm::transport::DeviceId;
use acm::{
    AbilityConnectionManager, AcceptConnect, CollaborateRequest, CollaborateResult, ConnectOptions,
    Context, Device, DeviceConfig, Event, EventStream, PeerInfo, Security, SessionId,
};
use acm_transport_mock::{DeviceOptions, MockNetwork};
use tokio::sync::mpsc;

/// The bundle of every app.
pub const BUNDLE: &str = "com.example.bench";

/// The context of every app.
pub fn context() -> Context {
    Context::new(BUNDLE, "entry", "EntryAbility")
}

/// The app on `device`.
pub fn peer_of(device: &str) -> PeerInfo {
    PeerInfo::new(device, BUNDLE, "entry", "EntryAbility")
}

/// One device and its app.
pub struct Side {
    /// The device runtime, held so that it runs as long as the side is in use.
    _device: Device,
    /// Its app.
    pub app: AbilityConnectionManager,
}

/// The configuration of the devices of the measures of the protocol stack, over the mock and
/// over TCP: plain links, so that against their baselines (a duplex pipe, raw frames, raw TCP)
/// they measure the stack alone; the secure layer's cost is measured against plain links by the `secure-*`
/// measures (`secure.rs`).
pub fn plain() -> DeviceConfig {
    DeviceConfig::default().with_security(Security::Insecure)
}

/// Adds device `id` to `network` with `options`, and its app.
pub fn side(network: &MockNetwork, id: &str, options: DeviceOptions) -> Side {
    let transport = network
        .add_device_with(DeviceId::new(id).expect("a valid id"), options)
        .expect("a new device");
    Side::on(Device::new(transport, plain()))
}

/// Adds device `id` to `network` with `options`, its transport segmented (SPEC section 16), and
/// its app.
pub fn segmented_side(network: &MockNetwork, id: &str, options: DeviceOptions) -> Side {
    let transport = network
        .add_device_with(DeviceId::new(id).expect("a valid id"), options)
        .expect("a new device");
    Side::on(Device::new(Segmented::new(transport), plain()))
}

impl Side {
    /// `device` and its app.
    pub fn on(device: Device) -> Self {
        let app = device.manager(&context());
        Self {
            _device: device,
            app,
        }
    }
}

/// What an accepting app reports of each request it took.
#[derive(Debug)]
pub struct Accepted {
    /// Its session.
    pub session: SessionId,
    /// The session's events, when they were asked for.
    pub events: Option<EventStream>,
    /// How the acceptance ends.
    pub outcome: AcceptConnect,
}

/// Makes `app` accept every request as the reference's example does, in its `onCollaborate`
/// handler: it creates a session for the requester and calls `accept_connect`, then reports the
/// session (with its event stream if `with_events`) and the acceptance's outcome.
pub fn accept_all(
    app: &AbilityConnectionManager,
    with_events: bool,
) -> mpsc::UnboundedReceiver<Accepted> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (manager, context) = (app.clone(), context());
    app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            // The request is the app's to keep: its parts go to the session as they are.
            let service = request.peer_info.service_name.clone();
            let session = manager
                .create_ability_connection_session(
                    &service,
                    &context,
                    request.peer_info,
                    request.connect_options,
                )
                .expect("a valid request");
            let events = with_events.then(|| manager.events(session).expect("the session"));
            let outcome = manager.accept_connect(session, &request.token);
            let _ = tx.send(Accepted {
                session,
                events,
                outcome,
            });
            CollaborateResult::Accept
        },
    );
    rx
}

/// The next session `accepted` reports, once its acceptance has succeeded: its id and events.
pub async fn next_accepted(
    accepted: &mut mpsc::UnboundedReceiver<Accepted>,
) -> (SessionId, Option<EventStream>) {
    let one = accepted.recv().await.expect("the peer took a request");
    one.outcome.await.expect("the peer accepted");
    (one.session, one.events)
}

/// Creates a session of `app` with the app on `peer` for `service` and connects it.
pub async fn connect(app: &AbilityConnectionManager, peer: &str, service: &str) -> SessionId {
    let session = app
        .create_ability_connection_session(
            service,
            &context(),
            peer_of(peer),
            ConnectOptions::default(),
        )
        .expect("a valid session");
    let result = app.connect(session).await.expect("a known session");
    assert!(result.is_connected, "connect failed: {result:?}");
    session
}

/// Two devices, `a` and `b`, on `network`, both with `options`, and a session from `a`'s app
/// to `b`'s for `service`, connected: `a`, `b`, `a`'s session id and the events of `b`'s end.
pub async fn connected_pair(
    network: &MockNetwork,
    [a, b]: [&str; 2],
    options: DeviceOptions,
    service: &str,
) -> (Side, Side, SessionId, EventStream) {
    let a_side = side(network, a, options.clone());
    let b_side = side(network, b, options);
    connect_sides(a_side, b_side, b, service).await
}

/// As [`connected_pair`], with both transports segmented (SPEC section 16).
pub async fn connected_segmented_pair(
    network: &MockNetwork,
    [a, b]: [&str; 2],
    options: DeviceOptions,
    service: &str,
) -> (Side, Side, SessionId, EventStream) {
    let a_side = segmented_side(network, a, options.clone());
    let b_side = segmented_side(network, b, options);
    connect_sides(a_side, b_side, b, service).await
}

/// Connects a session from `a_side`'s app to the app of `b_side` (device `b`) for `service`:
/// both sides, the session and the events of `b`'s end.
pub async fn connect_sides(
    a_side: Side,
    b_side: Side,
    b: &str,
    service: &str,
) -> (Side, Side, SessionId, EventStream) {
    let mut accepted = accept_all(&b_side.app, true);
    let session = connect(&a_side.app, b, service).await;
    let events = next_accepted(&mut accepted)
        .await
        .1
        .expect("the events were asked for");
    (a_side, b_side, session, events)
}

/// Waits for the next data event of `events` and returns its length.
pub async fn next_data(events: &mut EventStream) -> usize {
    loop {
        match events.next().await.expect("the session is open") {
            Event::Data { data, .. } => return data.len(),
            Event::Disconnect { reason, .. } => panic!("the session ended: {reason:?}"),
            _ => {}
        }
    }
}
