//! Two (or more) devices on one mock network, each with an app.

use std::sync::Arc;
use std::time::Duration;

use acm::transport::DeviceId;
use acm::{
    AbilityConnectionManager, CollaborateRequest, CollaborateResult, ConnectOptions, Context,
    Device, DeviceConfig, Event, EventStream, PeerInfo, SessionId,
};
use acm_transport_mock::{DeviceOptions, MockNetwork, MockTransport};
use tokio::sync::mpsc;

pub const BUNDLE: &str = "com.example.notes";
pub const SERVICE: &str = "notes-sync";

pub fn context() -> Context {
    Context::new(BUNDLE, "entry", "EntryAbility")
}

pub fn peer_of(device: &str) -> PeerInfo {
    PeerInfo::new(device, BUNDLE, "entry", "EntryAbility")
}

pub struct Side {
    pub device: Device,
    pub app: AbilityConnectionManager,
}

pub fn side(network: &MockNetwork, id: &str, options: DeviceOptions, config: DeviceConfig) -> Side {
    let transport: MockTransport = network
        .add_device_with(DeviceId::new(id).unwrap(), options)
        .unwrap();
    let device = Device::new(transport, config);
    let app = device.manager(&context());
    Side { device, app }
}

pub struct World {
    pub network: MockNetwork,
    pub a: Side,
    pub b: Side,
}

impl World {
    pub fn new() -> Self {
        Self::with(
            DeviceOptions::new(),
            DeviceOptions::new(),
            DeviceConfig::default(),
        )
    }

    pub fn with(a: DeviceOptions, b: DeviceOptions, config: DeviceConfig) -> Self {
        let network = MockNetwork::new(11);
        let a = side(&network, "phone", a, config.clone());
        let b = side(&network, "tablet", b, config);
        Self { network, a, b }
    }

    /// B's ability accepts every request by creating a session and calling accept_connect;
    /// the accepted session ids arrive on the returned channel.
    pub fn b_accepts(&self) -> mpsc::UnboundedReceiver<SessionId> {
        accept_all(&self.b.app)
    }

    /// A session on A towards B's app, not connected yet.
    pub fn a_session(&self) -> SessionId {
        self.a
            .app
            .create_ability_connection_session(
                SERVICE,
                &context(),
                peer_of("tablet"),
                ConnectOptions::default(),
            )
            .unwrap()
    }

    /// A connected pair of sessions: (A's id, B's id).
    pub async fn connected(&self) -> (SessionId, SessionId) {
        let mut accepted = self.b_accepts();
        let a = self.a_session();
        let result = self.a.app.connect(a).await.unwrap();
        assert!(result.is_connected, "{result:?}");
        let b = tokio::time::timeout(Duration::from_secs(1), accepted.recv())
            .await
            .expect("B accepted")
            .expect("B's handler ran");
        (a, b)
    }
}

/// Registers a handler on `app` that accepts every request.
pub fn accept_all(app: &AbilityConnectionManager) -> mpsc::UnboundedReceiver<SessionId> {
    accept_where(app, |_| true)
}

/// Registers a handler on `app` that accepts the requests `answer` picks and takes the others
/// without ever answering them; the accepted session ids arrive on the returned channel.
pub fn accept_where(
    app: &AbilityConnectionManager,
    answer: impl Fn(&CollaborateRequest) -> bool + Send + Sync + 'static,
) -> mpsc::UnboundedReceiver<SessionId> {
    let (tx, rx) = mpsc::unbounded_channel();
    let manager = app.clone();
    app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            if !answer(&request) {
                return CollaborateResult::Accept;
            }
            let manager = manager.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let session = session_for(&manager, &request);
                manager
                    .accept_connect(session, &request.token)
                    .await
                    .unwrap();
                let _ = tx.send(session);
            });
            CollaborateResult::Accept
        },
    );
    rx
}

/// A session of `app` towards the app of device `peer`, for `service`, not connected yet.
pub fn session_towards(app: &AbilityConnectionManager, peer: &str, service: &str) -> SessionId {
    app.create_ability_connection_session(
        service,
        &context(),
        peer_of(peer),
        ConnectOptions::default(),
    )
    .unwrap()
}

/// A session of `app` for the requester and service of `request`.
pub fn session_for(app: &AbilityConnectionManager, request: &CollaborateRequest) -> SessionId {
    app.create_ability_connection_session(
        &request.peer_info.service_name,
        &context(),
        request.peer_info.clone(),
        request.connect_options.clone(),
    )
    .unwrap()
}

/// The next event of a stream, within a (paused-clock) second.
pub async fn next(stream: &mut EventStream) -> Event {
    tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
}

/// A handler that records callback events.
pub fn recorder() -> (acm::Callback, Arc<std::sync::Mutex<Vec<Event>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let callback: acm::Callback = Arc::new(move |event: &Event| {
        sink.lock().unwrap().push(event.clone());
    });
    (callback, seen)
}
