//! The reference implementation as the suite drives it: two [`acm::Device`]s on an
//! [`acm_transport_mock::MockNetwork`], under the clock of the tokio runtime they run on.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use acm::transport::DeviceId;
use acm::{
    AbilityConnectionManager, AcmError, CollaborateEventType, CollaborateRequest,
    CollaborateResult, ConnectOptions, Context, Device, DeviceConfig, Event, EventType, PeerInfo,
};
use acm_transport_mock::{DeviceOptions, Fault, MockNetwork, MockTransport};
use bytes::Bytes;

use crate::mutant::{Mutant, Mutation};

use super::implementation::{
    ABILITY, BUNDLE, Call, HANDLER_REASON, LinkFault, MODULE, Observation, Outcome,
    ProtocolImplementation, RequestRef, Resources, SERVICES, SessionEvent, SessionRef, Side,
};

/// The largest frame of the mock devices by default: small, so that messages are split across
/// frames (SPEC `FRAME-10`) and data across many fragments.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 512;

/// What the handlers, callbacks and call tasks record, shared with them.
#[derive(Default)]
struct Shared {
    observations: Vec<Observation>,
    tokens: [HashMap<RequestRef, String>; 2],
    next_request: RequestRef,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Two acm devices, `alpha` (A) and `beta` (B), on a mock network, each with the suite's app.
/// Create it inside a tokio runtime (the devices spawn their tasks at once).
pub struct ReferenceImplementation {
    network: MockNetwork,
    ids: [DeviceId; 2],
    apps: [AbilityConnectionManager; 2],
    /// Keeps the devices running.
    _devices: [Device; 2],
    shared: SharedRef,
    created: [Vec<SessionRef>; 2],
}

impl ReferenceImplementation {
    /// Two devices on a network seeded with `seed` (which byte a corruption changes), whose
    /// transports carry frames of at most `max_frame_size` bytes.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(seed: u64, max_frame_size: usize) -> Self {
        Self::with_config(seed, max_frame_size, DeviceConfig::default())
    }

    /// As [`ReferenceImplementation::new`], with both devices configured by `config`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn with_config(seed: u64, max_frame_size: usize, config: DeviceConfig) -> Self {
        Self::build(seed, max_frame_size, |transport| {
            Device::new(transport, config.clone())
        })
    }

    /// As [`ReferenceImplementation::with_config`] with plain links, both devices carrying
    /// `mutation`'s defect ([`crate::mutant`]; its rewrites need the frames in the clear).
    pub fn mutated(seed: u64, max_frame_size: usize, mutation: Mutation) -> Self {
        Self::build(seed, max_frame_size, |transport| {
            let plain = DeviceConfig::default().with_security(acm::Security::Insecure);
            Device::new(Mutant::new(transport, mutation), plain)
        })
    }

    fn build(seed: u64, max_frame_size: usize, device: impl Fn(MockTransport) -> Device) -> Self {
        let network = MockNetwork::new(seed);
        let shared = SharedRef::default();
        let ids = Side::BOTH.map(|side| DeviceId::new(side.device_id()).expect("a valid id"));
        let devices = ids.clone().map(|id| {
            let options = DeviceOptions::new().max_frame_size(max_frame_size);
            device(network.add_device_with(id, options).expect("a new device"))
        });
        let apps = [0, 1].map(|i| devices[i].manager(&context()));
        for side in Side::BOTH {
            register(&apps[side.index()], side, &shared);
        }
        Self {
            network,
            ids,
            apps,
            _devices: devices,
            shared,
            created: [Vec::new(), Vec::new()],
        }
    }

    fn app(&self, device: Side) -> AbilityConnectionManager {
        self.apps[device.index()].clone()
    }

    /// Runs `call` on a task and records its outcome.
    fn spawn<F>(&self, device: Side, session: SessionRef, call: Call, future: F)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let outcome = future.await;
            lock(&shared).observations.push(Observation::Done {
                device,
                session,
                call,
                outcome,
            });
        });
    }

    fn token(&self, device: Side, request: RequestRef) -> String {
        lock(&self.shared).tokens[device.index()]
            .get(&request)
            .cloned()
            // A well-formed token that no request carries.
            .unwrap_or_else(|| "0".repeat(32))
    }
}

fn context() -> Context {
    Context::new(BUNDLE, MODULE, ABILITY)
}

/// The app's `onCollaborate`: it reports the request and keeps it for a later answer, except
/// for the refused service, which it rejects at once.
fn register(app: &AbilityConnectionManager, side: Side, shared: &SharedRef) {
    let shared = shared.clone();
    app.register_ability(MODULE, ABILITY, move |request: CollaborateRequest| {
        let mut shared = lock(&shared);
        let id = shared.next_request;
        shared.next_request += 1;
        shared.tokens[side.index()].insert(id, request.token.clone());
        let service = request.peer_info.service_name.clone();
        shared.observations.push(Observation::Request {
            device: side,
            request: id,
            service: service.clone(),
            peer_ability: request.peer_info.ability_name.clone(),
        });
        if service == SERVICES[2] {
            CollaborateResult::Reject {
                reason: HANDLER_REASON.into(),
            }
        } else {
            CollaborateResult::Accept
        }
    });
}

/// How a call that returns nothing ended.
pub(super) fn outcome(result: Result<(), AcmError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(err) => Outcome::Error(err.code()),
    }
}

/// What a session reports to the suite, of an event.
pub(super) fn event_of(event: &Event) -> Option<SessionEvent> {
    Some(match event {
        Event::Connect { .. } => SessionEvent::Connect,
        Event::Disconnect { reason, .. } => SessionEvent::Disconnect(*reason),
        Event::Message { msg, .. } => SessionEvent::Message(msg.clone()),
        Event::Data { data, .. } => SessionEvent::Data(data.clone()),
        Event::Collaborate { info, .. } => {
            SessionEvent::Collaborate(info.event_type, info.event_msg.clone())
        }
        _ => return None,
    })
}

/// Registers callbacks that hand every event of `session` on `device` to `record`.
pub(super) fn listen(
    app: &AbilityConnectionManager,
    device: Side,
    session: acm::SessionId,
    record: impl Fn(Observation) + Clone + Send + Sync + 'static,
) -> Result<(), AcmError> {
    let id = session.get();
    for event_type in [
        EventType::Connect,
        EventType::Disconnect,
        EventType::ReceiveMessage,
        EventType::ReceiveData,
        EventType::CollaborateEvent,
    ] {
        let record = record.clone();
        let callback: acm::Callback = Arc::new(move |event: &Event| {
            if let Some(event) = event_of(event) {
                record(Observation::Event {
                    device,
                    session: id,
                    event,
                });
            }
        });
        app.on(event_type, session, callback)?;
    }
    Ok(())
}

impl ProtocolImplementation for ReferenceImplementation {
    fn name(&self) -> String {
        "acm reference implementation over the mock transport".into()
    }

    fn create_session(
        &mut self,
        device: Side,
        service: &str,
        peer_ability: &str,
    ) -> Result<SessionRef, u32> {
        let app = self.app(device);
        let peer = PeerInfo::new(device.other().device_id(), BUNDLE, MODULE, peer_ability);
        let id = app
            .create_ability_connection_session(service, &context(), peer, ConnectOptions::default())
            .map_err(|e| e.code())?;
        let shared = self.shared.clone();
        listen(&app, device, id, move |o| {
            lock(&shared).observations.push(o)
        })
        .map_err(|e| e.code())?;
        self.created[device.index()].push(id.get());
        Ok(id.get())
    }

    fn connect(&mut self, device: Side, session: SessionRef) {
        let app = self.app(device);
        self.spawn(device, session, Call::Connect, async move {
            match app.connect(session.into()).await {
                Ok(result) => Outcome::Connect(result),
                Err(err) => Outcome::Error(err.code()),
            }
        });
    }

    fn accept(&mut self, device: Side, request: RequestRef, session: SessionRef) {
        let app = self.app(device);
        let token = self.token(device, request);
        self.spawn(device, session, Call::Accept, async move {
            outcome(app.accept_connect(session.into(), &token).await)
        });
    }

    fn reject(&mut self, device: Side, request: RequestRef, reason: &str) -> Result<(), u32> {
        let token = self.token(device, request);
        self.app(device)
            .reject(&token, reason)
            .map_err(|e| e.code())
    }

    fn send_message(&mut self, device: Side, session: SessionRef, text: String) {
        let app = self.app(device);
        self.spawn(device, session, Call::SendMessage, async move {
            outcome(app.send_message(session.into(), &text).await)
        });
    }

    fn send_data(&mut self, device: Side, session: SessionRef, data: Bytes) {
        let app = self.app(device);
        self.spawn(device, session, Call::SendData, async move {
            outcome(app.send_data(session.into(), data).await)
        });
    }

    fn send_event(
        &mut self,
        device: Side,
        session: SessionRef,
        event: CollaborateEventType,
        message: String,
    ) {
        let app = self.app(device);
        self.spawn(device, session, Call::SendEvent, async move {
            outcome(
                app.send_collaborate_event(session.into(), event, &message)
                    .await,
            )
        });
    }

    fn disconnect(&mut self, device: Side, session: SessionRef) -> Result<(), u32> {
        self.app(device)
            .disconnect(session.into())
            .map_err(|e| e.code())
    }

    fn destroy(&mut self, device: Side, session: SessionRef) -> Result<(), u32> {
        self.app(device)
            .destroy_ability_connection_session(session.into())
            .map_err(|e| e.code())
    }

    fn inject(&mut self, fault: LinkFault) {
        let [a, b] = &self.ids;
        for link in self.network.links(a, b) {
            let (from, fault) = match fault {
                LinkFault::Stall(side) => (side, Fault::Stall),
                LinkFault::Unstall(side) => (side, Fault::Unstall),
                LinkFault::DropFrames(side, n) => (side, Fault::DropFrames(n)),
                LinkFault::CorruptFrames(side, n) => (side, Fault::CorruptFrames(n)),
                LinkFault::Lose => {
                    link.lose("the protocol suite broke the link");
                    continue;
                }
            };
            // Both devices are on every link between them.
            let _ = link.inject(&self.ids[from.index()], fault);
        }
    }

    fn advance(&mut self, by: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(tokio::time::sleep(by.max(Duration::from_millis(1))))
    }

    fn drain(&mut self) -> Vec<Observation> {
        std::mem::take(&mut lock(&self.shared).observations)
    }

    fn resources(&self) -> Resources {
        let sessions = Side::BOTH.map(|side| {
            let app = &self.apps[side.index()];
            self.created[side.index()]
                .iter()
                .filter(|id| app.get_peer_info_by_id((**id).into()).is_some())
                .count()
        });
        let [a, b] = &self.ids;
        Resources {
            sessions,
            links: self.network.links(a, b).len(),
            tasks: tokio::runtime::Handle::try_current()
                .ok()
                .map(|runtime| runtime.metrics().num_alive_tasks()),
        }
    }
}
