//! The protocol suite over the wire: device A is the suite's own acm device, on real links to
//! an implementation under test; device B is the scenario app on that implementation, driven
//! through the profile's scenario driver (SPEC section 15.1).
//!
//! The suite's device runs on a runtime of its own, on a thread of its own, with a running
//! clock: the suite's steps wait on it, and the implementation under test answers in real time.
//! Over the wire no time passes on purpose (the scenarios have no stalls and no waits, so that
//! no timer of the model is near): after each step the suite waits until the observations the
//! model expects have arrived, then asks the target for a `drive:sync` so that what it sent
//! besides arrives too.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

use acm::transport::DeviceId;
use acm::{
    AbilityConnectionManager, AcmError, CollaborateEventType, CollaborateRequest,
    CollaborateResult, ConnectErrorCode, ConnectOptions, ConnectResult, Context, Device,
    DeviceConfig, DisconnectReason, Event, PeerInfo, Security, SessionId,
};
use acm_transport::{Capabilities, CloseReason, DeviceInfo, Link, Transport, TransportError};
use async_trait::async_trait;
use bytes::Bytes;

use super::implementation::{
    ABILITY, Call, HANDLER_REASON, LinkFault, Observation, Outcome, ProtocolImplementation,
    RequestRef, Resources, SERVICES, SessionEvent, SessionRef, Side,
};
use super::reference::{listen, outcome};
use crate::driver::{DRIVER, DRIVER_SERVICE, ERROR, OK, SCENARIO, hash};
use crate::profile::{self, BUNDLE, MODULE, SUITE_ABILITY, Timers};
use crate::wire::WireTarget;

/// How long the suite waits for the answer to a command, and for what a step must bring.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The error code the suite reports for a command the target never answered.
pub const NO_ANSWER: u32 = 0;

/// The kinds of payloads, as reports name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Message,
    Data,
    Event,
}

/// What the suite's device records and the driver session's reader reports, shared with them.
#[derive(Default)]
struct Shared {
    observations: Vec<Observation>,
    /// Tokens of the requests A's app received.
    tokens: HashMap<RequestRef, String>,
    next_request: RequestRef,
    /// What A sent, by kind, length and hash: how the suite names what B reports.
    sent: HashMap<(Kind, usize, String), Bytes>,
    /// Reports the target made that do not follow `PROF-3`.
    malformed: Vec<String>,
    /// Whether the reset's answer came: reports before it belong to an earlier scenario.
    ready: bool,
}

type SharedRef = Arc<Mutex<Shared>>;

fn lock(shared: &SharedRef) -> MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A link the suite can cut, as a lost radio would cut it.
#[derive(Debug)]
struct Cuttable {
    inner: Box<dyn Link>,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Cuttable {
    fn is_open(&self) -> bool {
        !*self.cut.borrow() && self.inner.closure().is_none()
    }

    async fn cut(&self) {
        self.cut.send_replace(true);
        self.inner.close(CloseReason::new(0, "")).await;
    }

    fn gone() -> TransportError {
        TransportError::Io(std::io::Error::other("the suite cut the link"))
    }
}

/// The suite's handle on a [`Cuttable`], as the device holds it.
#[derive(Debug)]
struct CutLink(Arc<Cuttable>);

#[async_trait]
impl Link for CutLink {
    fn local_device(&self) -> &DeviceId {
        self.0.inner.local_device()
    }

    fn peer_device(&self) -> &DeviceId {
        self.0.inner.peer_device()
    }

    fn role(&self) -> acm_transport::Role {
        self.0.inner.role()
    }

    fn max_frame_size(&self) -> usize {
        self.0.inner.max_frame_size()
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        if *self.0.cut.borrow() {
            return Err(Cuttable::gone());
        }
        self.0.inner.send(frame).await
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut cut = self.0.cut.subscribe();
        tokio::select! {
            frame = self.0.inner.recv() => frame,
            _ = cut.wait_for(|cut| *cut) => Err(Cuttable::gone()),
        }
    }

    async fn close(&self, reason: CloseReason) {
        self.0.inner.close(reason).await;
    }

    fn closure(&self) -> Option<acm_transport::Closure> {
        self.0.inner.closure()
    }
}

/// The suite's transport: every link it dials is a new link to the target.
struct SuiteTransport {
    id: DeviceId,
    target: Arc<dyn WireTarget>,
    links: Arc<Mutex<Vec<Arc<Cuttable>>>>,
}

#[async_trait]
impl Transport for SuiteTransport {
    fn local_device(&self) -> &DeviceId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(1 << 20).with_discovery(false)
    }

    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        Ok(Vec::new())
    }

    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        if device.as_str() != self.target.device_id() {
            return Err(TransportError::Unreachable(device.clone()));
        }
        let link = self.target.open().await?;
        let (cut, _) = tokio::sync::watch::channel(false);
        let link = Arc::new(Cuttable { inner: link, cut });
        let mut links = self
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links.retain(|l| l.is_open());
        links.push(link.clone());
        Ok(Box::new(CutLink(link)))
    }

    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        // The target cannot reach the suite: every link is the suite's.
        std::future::pending().await
    }
}

/// The runtime of the suite's device, on a thread of its own.
struct Background {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    fn start() -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("acm-wire-scenario".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `future` on the suite's runtime and waits for its output, for at most `patience`.
    fn run<T: Send + 'static>(
        &self,
        patience: Duration,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv_timeout(patience).ok()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Two devices for the protocol suite: A, the suite's own device, and B, the scenario app of
/// an implementation under test that runs the profile (SPEC section 15.1), on real links
/// between them. Lose cuts the links; stalls, dropped and corrupted frames cannot be made on
/// a real link and are ignored (the scenarios make none).
pub struct WireImplementation {
    name: String,
    target_id: String,
    app: AbilityConnectionManager,
    shared: SharedRef,
    links: Arc<Mutex<Vec<Arc<Cuttable>>>>,
    driver: Arc<Mutex<Option<SessionId>>>,
    driver_down: Arc<AtomicBool>,
    drivers_opened: u32,
    answers: mpsc::Receiver<Result<(), u32>>,
    answer_tx: mpsc::Sender<Result<(), u32>>,
    created: Vec<SessionRef>,
    /// B's sessions as the suite numbers them, and whether they are still held.
    b_sessions: HashMap<SessionRef, bool>,
    next_b: SessionRef,
    /// The shortest handshake timer of either device.
    handshake_limit: Duration,
    /// Keeps the device running; dropped before the runtime stops.
    device: Option<Device>,
    background: Background,
}

fn scenario_context() -> Context {
    Context::new(BUNDLE, MODULE, SCENARIO)
}

/// The suite's model calls the registered ability [`ABILITY`]; over the wire both apps are
/// [`SCENARIO`].
fn ability_on_wire(ability: &str) -> &str {
    if ability == ABILITY {
        SCENARIO
    } else {
        ability
    }
}

impl WireImplementation {
    /// Starts the suite's device, opens a driver session to `target` and resets its scenario
    /// app. Call it outside any async context, or from one whose thread may block.
    pub fn start(target: Arc<dyn WireTarget>) -> Result<Self, String> {
        let background = Background::start()?;
        let suite = DeviceId::new(target.suite_device_id()).map_err(|e| e.to_string())?;
        let target_id = target.device_id();
        let name = target.describe();
        let (suite_timers, target_timers) = (Timers::SPEC, target.timers());
        let handshake_limit = [
            suite_timers.handshake,
            suite_timers.responder,
            target_timers.handshake,
            target_timers.responder,
        ]
        .into_iter()
        .min()
        .unwrap_or(suite_timers.handshake);
        let links = Arc::new(Mutex::new(Vec::new()));
        let transport = SuiteTransport {
            id: suite,
            target,
            links: links.clone(),
        };
        let shared = SharedRef::default();
        let registered = shared.clone();
        let (device, app) = background
            .run(PATIENCE, async move {
                // The links are secure already when the target is (WireTarget::open).
                let config = DeviceConfig::default()
                    .with_engine(profile::engine_config(suite_timers))
                    .with_security(Security::Insecure);
                let device = Device::new(transport, config);
                let app = device.manager(&scenario_context());
                register(&app, &registered);
                (device, app)
            })
            .ok_or("the suite's device did not start")?;
        let (answer_tx, answers) = mpsc::channel();
        let mut wire = Self {
            name,
            target_id,
            app,
            shared,
            links,
            driver: Arc::default(),
            driver_down: Arc::new(AtomicBool::new(true)),
            drivers_opened: 0,
            answers,
            answer_tx,
            created: Vec::new(),
            b_sessions: HashMap::new(),
            next_b: 1,
            handshake_limit,
            device: Some(device),
            background,
        };
        wire.open_driver()?;
        wire.command("drive:reset", Bytes::new())
            .map_err(|code| format!("the target's scenario app refused drive:reset ({code})"))?;
        lock(&wire.shared).ready = true;
        Ok(wire)
    }

    /// Opens a new driver session (on a new link when there is none), and destroys the last.
    fn open_driver(&mut self) -> Result<(), String> {
        let old = self.driver.lock().ok().and_then(|mut d| d.take());
        self.drivers_opened += 1;
        let service = format!("{DRIVER_SERVICE}-{}", self.drivers_opened);
        let app = self.app.clone();
        let target = self.target_id.clone();
        let shared = self.shared.clone();
        let answers = self.answer_tx.clone();
        // Each driver session has its own flag: the end of an earlier one changes nothing.
        let down = Arc::new(AtomicBool::new(false));
        self.driver_down = down.clone();
        let opened = self.background.run(PATIENCE, async move {
            if let Some(old) = old {
                let _ = app.destroy_ability_connection_session(old);
            }
            let peer = PeerInfo::new(target, BUNDLE, MODULE, DRIVER);
            let context = Context::new(BUNDLE, MODULE, SUITE_ABILITY);
            let options = ConnectOptions::default();
            let id = app
                .create_ability_connection_session(&service, &context, peer, options)
                .map_err(|e| format!("cannot make a driver session: {e}"))?;
            let events = app.events(id).map_err(|e| e.to_string())?;
            tokio::spawn(read_driver(events, shared, answers, down));
            match app.connect(id).await {
                Ok(result) if result.is_connected => Ok(id),
                other => {
                    let _ = app.destroy_ability_connection_session(id);
                    Err(format!("the target refused a driver session: {other:?}"))
                }
            }
        });
        let id = opened.ok_or("the driver session did not open in time")??;
        if let Ok(mut driver) = self.driver.lock() {
            *driver = Some(id);
        }
        Ok(())
    }

    /// Opens a driver session again if the last one ended.
    fn ensure_driver(&mut self) {
        if self.driver_down.load(Ordering::SeqCst) {
            for _ in 0..3 {
                if self.open_driver().is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Sends a command (`PROF-2`) and waits for its answer: `Err(code)` when it failed,
    /// `Err(NO_ANSWER)` when none came.
    fn command(&mut self, command: &str, payload: Bytes) -> Result<(), u32> {
        self.ensure_driver();
        while self.answers.try_recv().is_ok() {}
        let Some(driver) = self.driver.lock().ok().and_then(|d| *d) else {
            return Err(NO_ANSWER);
        };
        let app = self.app.clone();
        let command = command.to_string();
        let sent = self.background.run(PATIENCE, async move {
            if command.starts_with("drive:send-") {
                let mut bytes = command.into_bytes();
                bytes.push(b'\n');
                bytes.extend_from_slice(&payload);
                app.send_data(driver, Bytes::from(bytes)).await
            } else {
                app.send_message(driver, &command).await
            }
        });
        if !matches!(sent, Some(Ok(()))) {
            return Err(NO_ANSWER);
        }
        self.answers
            .recv_timeout(PATIENCE)
            .unwrap_or(Err(NO_ANSWER))
    }

    /// A command that starts a call on B's session `session`: a failure is the call's end.
    fn start_call(&mut self, session: SessionRef, call: Call, command: &str, payload: Bytes) {
        if let Err(code) = self.command(command, payload) {
            lock(&self.shared).observations.push(Observation::Done {
                device: Side::B,
                session,
                call,
                outcome: Outcome::Error(code),
            });
        }
    }

    /// Runs an async call of A's app on the suite's runtime, and records its end.
    fn spawn<F>(&self, session: SessionRef, call: Call, future: F)
    where
        F: Future<Output = Outcome> + Send + 'static,
    {
        let shared = self.shared.clone();
        self.background.handle.spawn(async move {
            let outcome = future.await;
            lock(&shared).observations.push(Observation::Done {
                device: Side::A,
                session,
                call,
                outcome,
            });
        });
    }

    /// Runs a synchronous call of A's app on the suite's runtime.
    fn sync<T: Send + 'static>(
        &self,
        call: impl FnOnce(AbilityConnectionManager) -> Result<T, AcmError> + Send + 'static,
    ) -> Result<T, u32> {
        let app = self.app.clone();
        self.background
            .run(PATIENCE, async move { call(app).map_err(|e| e.code()) })
            .unwrap_or(Err(NO_ANSWER))
    }

    fn remember(&self, kind: Kind, bytes: Bytes) {
        let key = (kind, bytes.len(), hash(&bytes));
        lock(&self.shared).sent.insert(key, bytes);
    }

    fn token(&self, request: RequestRef) -> String {
        lock(&self.shared)
            .tokens
            .get(&request)
            .cloned()
            .unwrap_or_else(|| "0".repeat(32))
    }
}

impl Drop for WireImplementation {
    fn drop(&mut self) {
        let links: Vec<Arc<Cuttable>> = self.links.lock().map(|l| l.clone()).unwrap_or_default();
        let device = self.device.take();
        let _ = self.background.run(PATIENCE, async move {
            for link in links {
                link.cut().await;
            }
            if let Some(device) = device {
                device.shutdown();
            }
        });
    }
}

/// A's app: reports each request and keeps it for a later answer, except for the refused
/// service, which it rejects at once (as the target's scenario app does, `PROF-3`).
fn register(app: &AbilityConnectionManager, shared: &SharedRef) {
    let shared = shared.clone();
    app.register_ability(MODULE, SCENARIO, move |request: CollaborateRequest| {
        let mut shared = lock(&shared);
        let id = shared.next_request;
        shared.next_request += 1;
        shared.tokens.insert(id, request.token.clone());
        let service = request.peer_info.service_name.clone();
        let peer_ability = match request.peer_info.ability_name.as_str() {
            SCENARIO => ABILITY.to_string(),
            other => other.to_string(),
        };
        shared.observations.push(Observation::Request {
            device: Side::A,
            request: id,
            service: service.clone(),
            peer_ability,
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

/// Reads a driver session: answers go to the command waiting for them, reports become B's
/// observations.
async fn read_driver(
    mut events: acm::EventStream,
    shared: SharedRef,
    answers: mpsc::Sender<Result<(), u32>>,
    down: Arc<AtomicBool>,
) {
    while let Some(event) = events.next().await {
        match event {
            Event::Message { msg, .. } => {
                if msg == OK {
                    let _ = answers.send(Ok(()));
                } else if let Some(code) = msg.strip_prefix(ERROR) {
                    let _ = answers.send(Err(code.parse().unwrap_or(NO_ANSWER)));
                } else {
                    let mut shared = lock(&shared);
                    if !shared.ready {
                        continue;
                    }
                    match parse_report(&msg, &shared.sent) {
                        Some(observation) => shared.observations.push(observation),
                        None => shared.malformed.push(msg),
                    }
                }
            }
            Event::Disconnect { .. } => break,
            _ => {}
        }
    }
    down.store(true, Ordering::SeqCst);
}

/// B's observation in a report (`PROF-3`); `None` when the report is malformed.
fn parse_report(text: &str, sent: &HashMap<(Kind, usize, String), Bytes>) -> Option<Observation> {
    let mut words = text.splitn(4, ' ');
    let head = words.next()?;
    match head {
        "drive:request" => {
            let request = words.next()?.parse().ok()?;
            let service = words.next()?.to_string();
            let ability = words.next()?;
            let peer_ability = if ability == SCENARIO {
                ABILITY
            } else {
                ability
            };
            Some(Observation::Request {
                device: Side::B,
                request,
                service,
                peer_ability: peer_ability.to_string(),
            })
        }
        "drive:event" => {
            let session: SessionRef = words.next()?.parse().ok()?;
            let what = words.next()?;
            let rest: Vec<&str> = words.next().unwrap_or_default().split(' ').collect();
            let named = |kind: Kind, len: &str, h: &str| -> Option<Bytes> {
                let len: usize = len.parse().ok()?;
                let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
                if h.len() != 16 || !h.chars().all(hex) {
                    return None;
                }
                Some(
                    sent.get(&(kind, len, h.to_string()))
                        .cloned()
                        .unwrap_or_else(|| {
                            Bytes::from(format!("(not sent by the suite: {len} bytes, hash {h})"))
                        }),
                )
            };
            let text = |bytes: Bytes| String::from_utf8_lossy(&bytes).into_owned();
            let event = match (what, rest.as_slice()) {
                ("connect", [""]) => SessionEvent::Connect,
                ("disconnect", [n]) => {
                    SessionEvent::Disconnect(DisconnectReason::from_value(n.parse().ok()?)?)
                }
                ("message", [len, h]) => SessionEvent::Message(text(named(Kind::Message, len, h)?)),
                ("data", [len, h]) => SessionEvent::Data(named(Kind::Data, len, h)?),
                ("collaborate", [t, len, h]) => SessionEvent::Collaborate(
                    CollaborateEventType::from_value(t.parse().ok()?)?,
                    Some(text(named(Kind::Event, len, h)?)),
                ),
                _ => return None,
            };
            Some(Observation::Event {
                device: Side::B,
                session,
                event,
            })
        }
        "drive:done" => {
            let session: SessionRef = words.next()?.parse().ok()?;
            let call = words.next()?;
            let rest = words.next()?;
            let call = match call {
                "connect" => Call::Connect,
                "accept" => Call::Accept,
                "message" => Call::SendMessage,
                "data" => Call::SendData,
                "event" => Call::SendEvent,
                _ => return None,
            };
            let outcome = if rest == "ok" && call != Call::Connect {
                Outcome::Ok
            } else if let Some(code) = rest.strip_prefix("error ") {
                Outcome::Error(code.parse().ok()?)
            } else if rest == "connected" && call == Call::Connect {
                Outcome::Connect(ConnectResult {
                    is_connected: true,
                    error_code: None,
                    reason: None,
                })
            } else if let Some(refused) = rest.strip_prefix("refused ")
                && call == Call::Connect
            {
                let (code, reason) = refused.split_once(' ').unwrap_or((refused, ""));
                Outcome::Connect(ConnectResult {
                    is_connected: false,
                    error_code: Some(ConnectErrorCode::from_value(code.parse().ok()?)?),
                    reason: (!reason.is_empty()).then(|| reason.to_string()),
                })
            } else {
                return None;
            };
            Some(Observation::Done {
                device: Side::B,
                session,
                call,
                outcome,
            })
        }
        _ => None,
    }
}

impl ProtocolImplementation for WireImplementation {
    fn name(&self) -> String {
        format!("{} through the scenario driver", self.name)
    }

    fn create_session(
        &mut self,
        device: Side,
        service: &str,
        peer_ability: &str,
    ) -> Result<SessionRef, u32> {
        let ability = ability_on_wire(peer_ability).to_string();
        if device == Side::B {
            let s = self.next_b;
            self.next_b += 1;
            self.command(
                &format!("drive:create {s} {service} {ability}"),
                Bytes::new(),
            )?;
            self.b_sessions.insert(s, true);
            return Ok(s);
        }
        let peer = PeerInfo::new(self.target_id.clone(), BUNDLE, MODULE, ability);
        let service = service.to_string();
        let shared = self.shared.clone();
        let id = self.sync(move |app| {
            let id = app.create_ability_connection_session(
                &service,
                &scenario_context(),
                peer,
                ConnectOptions::default(),
            )?;
            listen(&app, Side::A, id, move |o| {
                lock(&shared).observations.push(o)
            })?;
            Ok(id.get())
        })?;
        self.created.push(id);
        Ok(id)
    }

    fn connect(&mut self, device: Side, session: SessionRef) {
        if device == Side::B {
            return self.start_call(
                session,
                Call::Connect,
                &format!("drive:connect {session}"),
                Bytes::new(),
            );
        }
        let app = self.app.clone();
        self.spawn(session, Call::Connect, async move {
            match app.connect(session.into()).await {
                Ok(result) => Outcome::Connect(result),
                Err(err) => Outcome::Error(err.code()),
            }
        });
    }

    fn accept(&mut self, device: Side, request: RequestRef, session: SessionRef) {
        if device == Side::B {
            // A request the target never reported: a number it never gave.
            let request = if request == RequestRef::MAX {
                0
            } else {
                request
            };
            let command = format!("drive:accept {session} {request}");
            return self.start_call(session, Call::Accept, &command, Bytes::new());
        }
        let app = self.app.clone();
        let token = self.token(request);
        self.spawn(session, Call::Accept, async move {
            outcome(app.accept_connect(session.into(), &token).await)
        });
    }

    fn reject(&mut self, device: Side, request: RequestRef, reason: &str) -> Result<(), u32> {
        if device == Side::B {
            let request = if request == RequestRef::MAX {
                0
            } else {
                request
            };
            return self.command(&format!("drive:reject {request} {reason}"), Bytes::new());
        }
        let token = self.token(request);
        let reason = reason.to_string();
        self.sync(move |app| app.reject(&token, &reason))
    }

    fn send_message(&mut self, device: Side, session: SessionRef, text: String) {
        if device == Side::B {
            let command = format!("drive:send-message {session}");
            return self.start_call(session, Call::SendMessage, &command, Bytes::from(text));
        }
        self.remember(Kind::Message, Bytes::from(text.clone()));
        let app = self.app.clone();
        self.spawn(session, Call::SendMessage, async move {
            outcome(app.send_message(session.into(), &text).await)
        });
    }

    fn send_data(&mut self, device: Side, session: SessionRef, data: Bytes) {
        if device == Side::B {
            let command = format!("drive:send-data {session}");
            return self.start_call(session, Call::SendData, &command, data);
        }
        self.remember(Kind::Data, data.clone());
        let app = self.app.clone();
        self.spawn(session, Call::SendData, async move {
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
        if device == Side::B {
            let command = format!("drive:send-event {session}");
            return self.start_call(session, Call::SendEvent, &command, Bytes::from(message));
        }
        self.remember(Kind::Event, Bytes::from(message.clone()));
        let app = self.app.clone();
        self.spawn(session, Call::SendEvent, async move {
            outcome(
                app.send_collaborate_event(session.into(), event, &message)
                    .await,
            )
        });
    }

    fn disconnect(&mut self, device: Side, session: SessionRef) -> Result<(), u32> {
        if device == Side::B {
            return self.command(&format!("drive:disconnect {session}"), Bytes::new());
        }
        self.sync(move |app| app.disconnect(session.into()))
    }

    fn destroy(&mut self, device: Side, session: SessionRef) -> Result<(), u32> {
        if device == Side::B {
            self.command(&format!("drive:destroy {session}"), Bytes::new())?;
            self.b_sessions.insert(session, false);
            return Ok(());
        }
        self.sync(move |app| app.destroy_ability_connection_session(session.into()))
    }

    fn inject(&mut self, fault: LinkFault) {
        if fault != LinkFault::Lose {
            return;
        }
        let links: Vec<Arc<Cuttable>> = self.links.lock().map(|l| l.clone()).unwrap_or_default();
        let _ = self.background.run(PATIENCE, async move {
            for link in links {
                link.cut().await;
            }
        });
        // The driver session ended with the link: the next one brings B's reports of it.
        self.driver_down.store(true, Ordering::SeqCst);
    }

    fn advance(&mut self, _by: Duration) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async {})
    }

    fn settle(&mut self, expected: usize) -> Pin<Box<dyn Future<Output = ()> + '_>> {
        self.ensure_driver();
        let deadline = Instant::now() + PATIENCE;
        while lock(&self.shared).observations.len() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // What the target sent besides comes before the answer to this.
        let _ = self.command("drive:sync", Bytes::new());
        Box::pin(async {})
    }

    fn drain(&mut self) -> Vec<Observation> {
        let mut shared = lock(&self.shared);
        if let Some(report) = shared.malformed.first() {
            panic!("the target's report {report:?} does not follow PROF-3");
        }
        std::mem::take(&mut shared.observations)
    }

    fn resources(&self) -> Resources {
        let created = self.created.clone();
        let a = self
            .sync(move |app| {
                Ok(created
                    .iter()
                    .filter(|id| app.get_peer_info_by_id((**id).into()).is_some())
                    .count())
            })
            .unwrap_or(usize::MAX);
        let b = self.b_sessions.values().filter(|held| **held).count();
        let links = self
            .links
            .lock()
            .map(|l| l.iter().filter(|l| l.is_open()).count())
            .unwrap_or_default();
        Resources {
            sessions: [a, b],
            links,
            tasks: None,
        }
    }

    fn handshake_limit(&self) -> Option<Duration> {
        Some(self.handshake_limit)
    }

    fn links_at_rest(&self) -> usize {
        // The driver session keeps a link open whatever the scenario does.
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_as_b_observations() {
        let mut sent = HashMap::new();
        sent.insert((Kind::Message, 3, hash(b"#1:")), Bytes::from_static(b"#1:"));
        let parsed = parse_report("drive:event 4 message 3 ".to_string().as_str(), &sent);
        assert_eq!(parsed, None);
        let message = format!("drive:event 4 message 3 {}", hash(b"#1:"));
        assert_eq!(
            parse_report(&message, &sent),
            Some(Observation::Event {
                device: Side::B,
                session: 4,
                event: SessionEvent::Message("#1:".into()),
            })
        );
        assert_eq!(
            parse_report("drive:done 2 connect refused 5 not now", &sent),
            Some(Observation::Done {
                device: Side::B,
                session: 2,
                call: Call::Connect,
                outcome: Outcome::Connect(ConnectResult {
                    is_connected: false,
                    error_code: ConnectErrorCode::from_value(5),
                    reason: Some("not now".into()),
                }),
            })
        );
        assert_eq!(
            parse_report("drive:request 1 notes ScenarioAbility", &sent),
            Some(Observation::Request {
                device: Side::B,
                request: 1,
                service: "notes".into(),
                peer_ability: ABILITY.into(),
            })
        );
        assert!(parse_report("drive:event 1 connect", &sent).is_some());
        assert_eq!(parse_report("drive:done x accept ok", &sent), None);
        assert_eq!(parse_report("nonsense", &sent), None);
    }

    #[test]
    fn both_scenario_apps_refuse_the_same_service_for_the_same_reason() {
        assert_eq!(crate::driver::REFUSED_SERVICE, SERVICES[2]);
        assert_eq!(crate::driver::REFUSED_REASON, HANDLER_REASON);
    }
}
