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
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use acm::transport::DeviceId;
use acm::{
    AbilityConnectionManager, AcmError, CollaborateEventType, ConnectOptions, Context, Device,
    DeviceConfig, PeerInfo, Security, SessionId,
};
use bytes::Bytes;

use super::implementation::{
    ABILITY, Call, LinkFault, Observation, Outcome, ProtocolImplementation, RequestRef, Resources,
    SessionRef, Side,
};
use super::reference::{listen, outcome};
use crate::driver::{DRIVER, DRIVER_SERVICE, SCENARIO, hash};
use crate::profile::{self, BUNDLE, MODULE, SUITE_ABILITY, Timers};
use crate::wire::WireTarget;
use links::{Background, Cuttable, SuiteTransport};
use reports::{Kind, SharedRef, lock, read_driver, register};

mod links;
mod reports;

/// How long the suite waits for the answer to a command, and for what a step must bring.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The error code the suite reports for a command the target never answered.
pub const NO_ANSWER: u32 = 0;

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
