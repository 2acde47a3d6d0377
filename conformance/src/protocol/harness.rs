//! The state machine test: applies each transition to the implementation, under a paused
//! clock, and checks after every step that it observed what the model says (exactly while the
//! link keeps its contract) and that the invariants hold (always).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::time::Duration;

use acm::{CollaborateEventType, ConnectErrorCode};
use proptest_state_machine::StateMachineTest;

use super::checks::{Checker, Failure};
use super::generate::ModelMachine;
use super::implementation::{
    ABILITY, Factory, GHOST_ABILITY, LinkFault, Observation, Outcome, ProtocolImplementation,
    RequestRef, SERVICES, SessionEvent, SessionRef, Side,
};
use super::model::{MARGIN_MS, Model, REJECT_REASON};
use super::payload::{self, Content};
use super::profile::Property;
use super::realtime::{Handshakes, Voided};
use super::transition::{AcceptInto, Chan, Ended, Handle, Key, Seen, Transition};

/// Tasks a link may keep alive: a reader, a writer and a driver on each device.
pub const TASKS_PER_LINK: usize = 6;
/// A request no implementation reported.
const NO_REQUEST: RequestRef = RequestRef::MAX;

thread_local! {
    static FACTORY: RefCell<Option<Factory>> = const { RefCell::new(None) };
}

/// Makes `factory` the one [`Harness`] uses on this thread until the guard is dropped.
pub struct FactoryGuard;

impl FactoryGuard {
    /// Installs `factory`.
    pub fn set(factory: Factory) -> Self {
        FACTORY.with(|f| *f.borrow_mut() = Some(factory));
        Self
    }
}

impl Drop for FactoryGuard {
    fn drop(&mut self) {
        FACTORY.with(|f| *f.borrow_mut() = None);
    }
}

/// The state machine test of property `P`.
pub struct Harness<P>(PhantomData<P>);

/// The implementation under test, with the runtime it runs on.
pub struct Sut {
    runtime: tokio::runtime::Runtime,
    world: World,
}

/// The implementation and what the suite knows of it.
pub struct World {
    imp: Box<dyn ProtocolImplementation>,
    sessions: BTreeMap<Handle, (Side, SessionRef)>,
    handles: HashMap<(Side, SessionRef), Handle>,
    requests: HashMap<Chan, RequestRef>,
    checker: Checker,
    step: usize,
    base_tasks: Option<usize>,
    handshakes: Handshakes,
}

fn fail(step: usize, transition: &Transition, failure: Failure) -> ! {
    panic!(
        "step {step}, {transition:?}: {}\nexpected: {}\nactual: {}",
        failure.what, failure.expected, failure.actual
    )
}

impl World {
    fn session(&self, handle: Handle) -> (Side, SessionRef) {
        self.sessions[&handle]
    }

    fn create(
        &mut self,
        handle: Handle,
        side: Side,
        service: usize,
        ghost: bool,
    ) -> Result<(), u32> {
        let ability = if ghost { GHOST_ABILITY } else { ABILITY };
        let session = self.imp.create_session(side, SERVICES[service], ability)?;
        self.sessions.insert(handle, (side, session));
        self.handles.insert((side, session), handle);
        self.checker.created(handle);
        Ok(())
    }

    /// Records payload `id` as sent on `handle`, by a call under way.
    fn sending(&mut self, handle: Handle, id: u64, content: Content) -> (Side, SessionRef) {
        let (side, session) = self.session(handle);
        self.checker.sent(id, side, handle, content);
        self.checker.outstanding += 1;
        (side, session)
    }

    /// Makes the calls of `transition`; returns the result of a synchronous one.
    fn perform(&mut self, model: &Model, transition: &Transition) -> Option<Result<(), u32>> {
        match transition {
            Transition::Create {
                side,
                handle,
                service,
                ghost,
            } => return Some(self.create(*handle, *side, *service, *ghost)),
            Transition::Connect { handle, .. } => {
                let (side, session) = self.session(*handle);
                self.checker.outstanding += 1;
                self.imp.connect(side, session);
            }
            Transition::Accept { chan, into } => {
                let c = &model.chans[chan];
                let side = c.responder();
                let handle = match into {
                    AcceptInto::Fresh(handle) => {
                        if let Err(code) = self.create(*handle, side, c.service, false) {
                            return Some(Err(code));
                        }
                        *handle
                    }
                    AcceptInto::Existing(handle) => *handle,
                };
                let request = self.requests.get(chan).copied().unwrap_or(NO_REQUEST);
                self.checker.outstanding += 1;
                self.imp.accept(side, request, self.session(handle).1);
            }
            Transition::Reject { chan } => {
                let side = model.chans[chan].responder();
                let request = self.requests.get(chan).copied().unwrap_or(NO_REQUEST);
                return Some(self.imp.reject(side, request, REJECT_REASON));
            }
            Transition::SendMessage { handle, id, len } => {
                let text = payload::message(*id, *len);
                let (side, session) = self.sending(*handle, *id, Content::Message(text.clone()));
                self.imp.send_message(side, session, text);
            }
            Transition::SendData { handle, id, len } => {
                let data = payload::data(*id, *len);
                let (side, session) = self.sending(*handle, *id, Content::Data(data.clone()));
                self.imp.send_data(side, session, data);
            }
            Transition::SendEvent { handle, id } => {
                let text = payload::event(*id);
                let (side, session) = self.sending(*handle, *id, Content::Event(text.clone()));
                let event = CollaborateEventType::SendFailure;
                self.imp.send_event(side, session, event, text);
            }
            Transition::Disconnect { handle } => {
                let (side, session) = self.session(*handle);
                let result = self.imp.disconnect(side, session);
                if result.is_ok() {
                    self.checker.disconnected(*handle);
                }
                return Some(result);
            }
            Transition::Destroy { handle } => {
                let (side, session) = self.session(*handle);
                let result = self.imp.destroy(side, session);
                if result.is_ok() {
                    self.checker.destroyed(*handle);
                }
                return Some(result);
            }
            Transition::Fault(fault) => self.imp.inject(*fault),
            Transition::Advance { .. } => {}
        }
        None
    }

    /// The suite's name of a session the implementation reported on.
    fn handle(&self, device: Side, session: SessionRef) -> Result<Handle, Failure> {
        self.handles
            .get(&(device, session))
            .copied()
            .ok_or_else(|| {
                Failure::new(
                    "an observation of a session",
                    "sessions the suite created",
                    format!("session {session} on {device}"),
                )
            })
    }

    /// What the observations of one step say, by observer, in order.
    fn sort(
        &mut self,
        model: &Model,
        observations: Vec<Observation>,
    ) -> Result<BTreeMap<Key, Vec<Seen>>, Failure> {
        let mut seen: BTreeMap<Key, Vec<Seen>> = BTreeMap::new();
        for observation in observations {
            let (key, item) = match observation {
                Observation::Event {
                    device,
                    session,
                    event,
                } => {
                    let key = Key::Session(self.handle(device, session)?);
                    let index = seen.get(&key).map_or(0, |items| events(items).count());
                    let hint = hint(model, key, index);
                    let item = match event {
                        SessionEvent::Connect => Seen::Connect,
                        SessionEvent::Disconnect(reason) => Seen::Disconnect(reason),
                        SessionEvent::Message(text) => {
                            self.checker.identify(device, Content::Message(text), hint)
                        }
                        SessionEvent::Data(data) => {
                            self.checker.identify(device, Content::Data(data), hint)
                        }
                        SessionEvent::Collaborate(CollaborateEventType::SendFailure, text) => {
                            let text = Content::Event(text.unwrap_or_default());
                            self.checker.identify(device, text, hint)
                        }
                        SessionEvent::Collaborate(..) => Seen::Mangled,
                    };
                    (key, item)
                }
                Observation::Done {
                    device,
                    session,
                    call,
                    outcome,
                } => {
                    let key = Key::Session(self.handle(device, session)?);
                    (key, Seen::Done(call, ended(outcome)))
                }
                Observation::Request {
                    device,
                    request,
                    service,
                    peer_ability,
                } => {
                    let key = Key::App(device);
                    let index = seen.get(&key).map_or(0, Vec::len);
                    let chan = match model.expected.get(&key).and_then(|e| e.get(index)) {
                        Some(Seen::Request(chan))
                            if SERVICES[model.chans[chan].service] == service
                                && peer_ability == ABILITY =>
                        {
                            self.requests.insert(*chan, request);
                            *chan
                        }
                        _ => 0,
                    };
                    (key, Seen::Request(chan))
                }
            };
            seen.entry(key).or_default().push(item);
        }
        Ok(seen)
    }

    /// Checks one step: its synchronous result, its observations, the invariants.
    fn check(
        &mut self,
        model: &Model,
        call: Option<Result<(), u32>>,
        observations: Vec<Observation>,
    ) -> Result<(), Failure> {
        if model.exact
            && let Some(expected) = model.call_result
            && call != Some(expected)
        {
            return Err(Failure::new(
                "the call's result",
                format!("{expected:?}"),
                format!("{call:?}"),
            ));
        }
        let seen = self.sort(model, observations)?;
        for (key, items) in &seen {
            for item in items {
                self.checker.observe(*key, item, model)?;
            }
        }
        if model.exact {
            let keys: std::collections::BTreeSet<&Key> =
                seen.keys().chain(model.expected.keys()).collect();
            for key in keys {
                let expected = model.expected.get(key).map_or(&[][..], Vec::as_slice);
                let actual = seen.get(key).map_or(&[][..], Vec::as_slice);
                let same = events(expected).eq(events(actual)) && dones(expected).eq(dones(actual));
                if !same {
                    return Err(Failure::new(
                        format!("what {key:?} observed"),
                        format!("{expected:?}"),
                        format!("{actual:?}"),
                    ));
                }
            }
        }
        self.check_resources(model)
    }

    /// Sessions as the apps hold them, links, and tasks, within bounds.
    fn check_resources(&self, model: &Model) -> Result<(), Failure> {
        let resources = self.imp.resources();
        let live = Side::BOTH.map(|side| {
            model
                .sessions
                .values()
                .filter(|s| s.side == side && !s.destroyed)
                .count()
        });
        if resources.sessions != live {
            return Err(Failure::new(
                "sessions the apps hold (A, B)",
                format!("{live:?}"),
                format!("{:?}", resources.sessions),
            ));
        }
        let links = usize::from(model.link.is_some()).max(self.imp.links_at_rest());
        if (model.exact && resources.links != links) || resources.links > 2 {
            return Err(Failure::new(
                "links between the devices (LINK-8)",
                format!("{links}"),
                format!("{}", resources.links),
            ));
        }
        if let (Some(tasks), Some(base)) = (resources.tasks, self.base_tasks) {
            let bound = base + TASKS_PER_LINK * resources.links + self.checker.outstanding;
            if tasks > bound {
                return Err(Failure::new(
                    "tasks alive",
                    format!(
                        "at most {bound}: {base} at rest, {TASKS_PER_LINK} per link, one per call under way"
                    ),
                    format!("{tasks}"),
                ));
            }
        }
        Ok(())
    }
}

/// The events among observations: all but the ends of calls, which come when the caller's
/// task runs, in no set order with the session's events.
fn events(items: &[Seen]) -> impl Iterator<Item = &Seen> {
    items.iter().filter(|s| !matches!(s, Seen::Done(..)))
}

/// The ends of calls among observations.
fn dones(items: &[Seen]) -> impl Iterator<Item = &Seen> {
    items.iter().filter(|s| matches!(s, Seen::Done(..)))
}

/// The payload the model expects at `index` of `key`'s events, if any.
fn hint(model: &Model, key: Key, index: usize) -> Option<u64> {
    match events(model.expected.get(&key)?).nth(index)? {
        Seen::Message(id) | Seen::Data(id) | Seen::Collaborate(id) => Some(*id),
        _ => None,
    }
}

fn ended(outcome: Outcome) -> Ended {
    match outcome {
        Outcome::Ok => Ended::Ok,
        Outcome::Error(code) => Ended::Error(code),
        Outcome::Connect(result) if result.is_connected => Ended::Connected,
        Outcome::Connect(result) => {
            let code = result.error_code;
            let reason = match code {
                Some(ConnectErrorCode::PeerAppRejected) => result.reason,
                Some(_) => None,
                None => Some("no error code".into()),
            };
            Ended::Refused(
                code.unwrap_or(ConnectErrorCode::SystemInternalError),
                reason,
            )
        }
    }
}

/// A step that ends clear of every timer, before `next` can run: the shortest wait that does.
fn wait_before(model: &Model, next: &Transition) -> Option<Transition> {
    let duration = Model::duration(next);
    if model.ends_clear(model.now + duration) {
        return None;
    }
    let doom_end = model
        .link
        .as_ref()
        .and_then(super::model::LinkModel::doom)
        .map_or(0, |(_, to)| to.saturating_sub(model.now));
    (1..)
        .map(|k: u64| k * (2 * MARGIN_MS + 1))
        .chain(std::iter::once(doom_end + 2 * MARGIN_MS))
        .take(64)
        .find(|ms| model.ends_clear(model.now + ms) && model.ends_clear(model.now + ms + duration))
        .map(|ms| Transition::Advance { ms })
}

impl<P: Property> Harness<P> {
    fn run_step(mut sut: Sut, model: &Model, transition: Transition) -> Sut {
        let world = &mut sut.world;
        world.step += 1;
        let duration = Duration::from_millis(Model::duration(&transition));
        world.handshakes.before_step(model);
        let call = sut.runtime.block_on(async {
            let call = world.perform(model, &transition);
            world.imp.advance(duration).await;
            let expected = model.expected.values().map(Vec::len).sum();
            world.imp.settle(expected).await;
            call
        });
        let observations = world.imp.drain();
        world.handshakes.after_step(model);
        // Inside the runtime, so that the implementation can count its tasks.
        let _runtime = sut.runtime.enter();
        if let Err(failure) = world.check(model, call, observations) {
            if let Some(why) = world.handshakes.overrun() {
                std::panic::panic_any(Voided(format!("step {}: {why}", world.step)));
            }
            fail(world.step, &transition, failure);
        }
        sut
    }

    fn teardown_step(sut: Sut, model: Model, transition: Transition) -> (Sut, Model) {
        let (mut sut, mut model) = (sut, model);
        if let Some(wait) = wait_before(&model, &transition) {
            model = model.step(&wait);
            sut = Self::run_step(sut, &model, wait);
        }
        model = model.step(&transition);
        sut = Self::run_step(sut, &model, transition);
        (sut, model)
    }
}

impl<P: Property> StateMachineTest for Harness<P> {
    type SystemUnderTest = Sut;
    type Reference = ModelMachine<P>;

    fn init_test(_model: &Model) -> Sut {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a tokio runtime");
        let factory = FACTORY
            .with(|f| f.borrow().clone())
            .expect("the suite installs a factory before it runs");
        let mut imp = runtime.block_on(async {
            let mut imp = factory();
            imp.advance(Duration::from_millis(1)).await;
            imp
        });
        let base_tasks = runtime.block_on(async { imp.resources().tasks });
        let handshakes = Handshakes::new(imp.handshake_limit());
        imp.drain();
        Sut {
            runtime,
            world: World {
                imp,
                sessions: BTreeMap::new(),
                handles: HashMap::new(),
                requests: HashMap::new(),
                checker: Checker::default(),
                step: 0,
                base_tasks,
                handshakes,
            },
        }
    }

    fn apply(sut: Sut, model: &Model, transition: Transition) -> Sut {
        Self::run_step(sut, model, transition)
    }

    /// Loses the link, destroys every session and waits: then nothing may remain but what the
    /// devices held at the start.
    fn teardown(sut: Sut, model: Model) {
        let (mut sut, mut model) =
            Self::teardown_step(sut, model, Transition::Fault(LinkFault::Lose));
        for handle in model.live_sessions() {
            (sut, model) = Self::teardown_step(sut, model, Transition::Destroy { handle });
        }
        (sut, model) = Self::teardown_step(sut, model, Transition::Advance { ms: 1_000 });
        let world = &sut.world;
        let resources = sut.runtime.block_on(async { world.imp.resources() });
        let at_rest = (resources.links, world.checker.outstanding, resources.tasks);
        let expected = (world.imp.links_at_rest(), 0, world.base_tasks);
        if at_rest != expected {
            fail(
                world.step,
                &Transition::Advance { ms: 1_000 },
                Failure::new(
                    "what remains once every session is destroyed and the link lost (links, calls under way, tasks)",
                    format!("{expected:?}"),
                    format!("{at_rest:?}"),
                ),
            );
        }
        drop(model);
    }
}
