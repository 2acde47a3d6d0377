//! A link's task is the only reader of the link: a connect's answer reaches its caller through
//! it, after whatever arrived before it, in order, wherever the caller waits. Each device runs on
//! a runtime of its own, with one worker, which a test can hold busy.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use acm::transport::DeviceId;
use acm::{
    CollaborateRequest, CollaborateResult, ConnectOptions, DeviceConfig, Event, EventStream,
    PeerInfo, SessionId,
};
use acm_transport_mock::{DeviceOptions, Fault, MockNetwork};
use tokio::runtime::{Builder, Handle, Runtime};

use crate::harness::*;

/// How long a step may take before the test calls it stuck.
const STUCK: Duration = Duration::from_secs(20);

fn one_worker() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Keeps the only worker of `runtime` busy until the returned sender is dropped: its tasks,
/// the links' tasks among them, cannot run meanwhile.
fn hold_worker(runtime: &Handle) -> std_mpsc::Sender<()> {
    let (started, running) = std_mpsc::channel();
    let (release, released) = std_mpsc::channel::<()>();
    runtime.spawn(async move {
        started.send(()).unwrap();
        let _ = released.recv();
    });
    running
        .recv_timeout(STUCK)
        .expect("the worker took the task");
    release
}

/// Runs `work` on a thread of its own and returns its result, or fails the test when it has not
/// finished after [`STUCK`].
fn finishes<T: Send + 'static>(what: &str, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std_mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    result
        .recv_timeout(STUCK)
        .unwrap_or_else(|_| panic!("{what} did not finish"))
}

/// The tablet's app, on a runtime of its own: "EntryAbility" accepts every request, and
/// "LaterAbility" hands its requests to the test, which answers them.
struct Tablet {
    runtime: Runtime,
    side: Side,
    accepted: tokio::sync::mpsc::UnboundedReceiver<SessionId>,
    later: std_mpsc::Receiver<CollaborateRequest>,
}

/// Device `id`, on a runtime of its own.
fn device(network: &MockNetwork, id: &str) -> (Runtime, Side) {
    let runtime = one_worker();
    let side = runtime
        .block_on(async { side(network, id, DeviceOptions::new(), DeviceConfig::default()) });
    (runtime, side)
}

fn tablet(network: &MockNetwork) -> Tablet {
    let (runtime, side) = device(network, "tablet");
    let accepted = accept_all(&side.app);
    let (hand, later) = std_mpsc::channel();
    side.app.register_ability(
        "entry",
        "LaterAbility",
        move |request: CollaborateRequest| {
            let _ = hand.send(request);
            CollaborateResult::Accept
        },
    );
    Tablet {
        runtime,
        side,
        accepted,
        later,
    }
}

/// The phone and the tablet, each on its runtime, with a connected session between their apps;
/// the phone listens to its end.
struct Scene {
    network: MockNetwork,
    tablet: Tablet,
    phone_runtime: Runtime,
    phone: Side,
    ours: SessionId,
    theirs: SessionId,
    our_events: EventStream,
}

impl Scene {
    fn new(seed: u64) -> Self {
        let network = MockNetwork::new(seed);
        let mut tablet = tablet(&network);
        let (phone_runtime, phone) = device(&network, "phone");
        let app = phone.app.clone();
        let (ours, our_events) = phone_runtime.block_on(async {
            let ours = app
                .create_ability_connection_session(
                    SERVICE,
                    &context(),
                    peer_of("tablet"),
                    ConnectOptions::default(),
                )
                .unwrap();
            assert!(app.connect(ours).await.unwrap().is_connected);
            (ours, app.events(ours).unwrap())
        });
        let theirs = tablet
            .runtime
            .block_on(tablet.accepted.recv())
            .expect("the tablet accepted");
        Self {
            network,
            tablet,
            phone_runtime,
            phone,
            ours,
            theirs,
            our_events,
        }
    }

    /// Connects a session of the phone to the tablet's "LaterAbility" from a thread of its own,
    /// waiting on the phone's runtime; its result comes on the returned channel.
    fn connect_later(&self) -> std_mpsc::Receiver<Result<acm::ConnectResult, acm::AcmError>> {
        let app = self.phone.app.clone();
        let later = app
            .create_ability_connection_session(
                "later-service",
                &context(),
                PeerInfo::new("tablet", BUNDLE, "entry", "LaterAbility"),
                ConnectOptions::default(),
            )
            .unwrap();
        let runtime = self.phone_runtime.handle().clone();
        let (result, results) = std_mpsc::channel();
        std::thread::spawn(move || {
            let _ = result.send(runtime.block_on(app.connect(later)));
        });
        results
    }

    /// The tablet's "LaterAbility" takes its request.
    fn later_request(&self) -> CollaborateRequest {
        self.tablet
            .later
            .recv_timeout(STUCK)
            .expect("the request reached the tablet")
    }

    /// The tablet accepts `request`.
    fn accept(&self, request: &CollaborateRequest) {
        let app = &self.tablet.side.app;
        self.tablet
            .runtime
            .block_on(async {
                let session = session_for(app, request);
                app.accept_connect(session, &request.token).await
            })
            .expect("the tablet accepted the later request");
    }

    /// The tablet's end of the first session sends `text`.
    fn tablet_says(&self, text: &str) {
        self.tablet
            .runtime
            .block_on(self.tablet.side.app.send_message(self.theirs, text))
            .unwrap();
    }

    /// The next event of the phone's end of the first session, waiting on the phone's runtime.
    fn next_event(&mut self) -> Option<Event> {
        let events = &mut self.our_events;
        self.phone_runtime.block_on(async {
            tokio::time::timeout(STUCK, events.next())
                .await
                .expect("an event in time")
        })
    }

    fn message(&self, text: &str) -> Option<Event> {
        Some(Event::Message {
            session_id: self.ours,
            msg: text.into(),
        })
    }
}

/// The next event of `stream` if it already holds one, without waiting.
fn ready_event(stream: &mut EventStream) -> Option<Event> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let next = std::pin::pin!(stream.next());
    match std::future::Future::poll(next, &mut cx) {
        std::task::Poll::Ready(event) => event,
        std::task::Poll::Pending => None,
    }
}

/// Checks that the connect whose result comes on `result` succeeded.
fn connected(result: std_mpsc::Receiver<Result<acm::ConnectResult, acm::AcmError>>) {
    let result = result
        .recv_timeout(STUCK)
        .expect("the connect finished")
        .unwrap();
    assert!(result.is_connected, "{result:?}");
}

#[test]
fn a_connect_is_answered_through_its_links_task_after_what_came_first() {
    let mut scene = Scene::new(21);
    let result = scene.connect_later();
    let request = scene.later_request();
    // From now on the phone's link task cannot run. The tablet's app takes its time: first a
    // message on the first session, then the answer.
    let release = hold_worker(scene.phone_runtime.handle());
    scene.tablet_says("before the answer");
    scene.accept(&request);
    // Nobody but the link's task reads the link: the answer waits for it.
    assert!(
        result.recv_timeout(Duration::from_millis(200)).is_err(),
        "the connect finished while its link's task could not run"
    );
    assert_eq!(ready_event(&mut scene.our_events), None);
    drop(release);
    connected(result);
    // The message came before the answer, and is delivered first.
    assert_eq!(scene.next_event(), scene.message("before the answer"));
    scene.tablet_says("after the answer");
    assert_eq!(scene.next_event(), scene.message("after the answer"));
}

#[test]
fn frames_that_come_before_the_answer_all_arrive_in_order() {
    let mut scene = Scene::new(23);
    let tablet = DeviceId::new("tablet").unwrap();
    let link = scene
        .network
        .links(&DeviceId::new("phone").unwrap(), &tablet)[0]
        .clone();
    let result = scene.connect_later();
    let request = scene.later_request();
    // Held back and then let go at once: more frames than a waiting caller reads in one go
    // arrive together, the answer last.
    link.inject(&tablet, Fault::Stall).unwrap();
    let texts: Vec<String> = (0..100).map(|i| format!("message {i}")).collect();
    for text in &texts {
        scene.tablet_says(text);
    }
    scene.accept(&request);
    link.inject(&tablet, Fault::Unstall).unwrap();
    connected(result);
    for text in &texts {
        assert_eq!(scene.next_event(), scene.message(text));
    }
}

#[test]
fn a_connect_awaited_on_another_runtime_is_answered_by_the_links_task() {
    let network = MockNetwork::new(22);
    let mut tablet = tablet(&network);
    let (phone_runtime, phone) = device(&network, "phone");
    let app = phone.app.clone();
    let session = |service: &str| {
        app.create_ability_connection_session(
            service,
            &context(),
            peer_of("tablet"),
            ConnectOptions::default(),
        )
        .unwrap()
    };
    // The link comes up on the phone's runtime, where its task runs.
    let first = session("first");
    assert!(
        phone_runtime
            .block_on(app.connect(first))
            .unwrap()
            .is_connected
    );
    let later = [session("second"), session("third")];
    let app = app.clone();
    let connected = finishes("connects from another runtime", move || {
        let elsewhere = Builder::new_current_thread().enable_all().build().unwrap();
        later.map(|session| {
            elsewhere
                .block_on(app.connect(session))
                .unwrap()
                .is_connected
        })
    });
    assert_eq!(connected, [true, true]);
    for _ in 0..3 {
        tablet
            .runtime
            .block_on(tablet.accepted.recv())
            .expect("the tablet accepted");
    }
    drop(phone);
}
