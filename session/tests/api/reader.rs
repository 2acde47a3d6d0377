//! A connect's caller reads the answer from the link itself, with whatever else arrives before
//! it: the link's task need not run for a connect to finish. Each device runs on a runtime of
//! its own, with one worker, which a test can hold busy.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use acm::{
    CollaborateRequest, CollaborateResult, ConnectOptions, DeviceConfig, Event, PeerInfo, SessionId,
};
use acm_transport_mock::{DeviceOptions, MockNetwork};
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

#[test]
fn a_connect_finishes_while_its_links_task_cannot_run_and_what_came_first_is_delivered() {
    let network = MockNetwork::new(21);
    let mut tablet = tablet(&network);
    let (phone_runtime, phone) = device(&network, "phone");
    let phone_app = phone.app.clone();

    // A session connected the usual way brings the link up.
    let (ours, theirs) = phone_runtime.block_on(async {
        let ours = phone_app
            .create_ability_connection_session(
                SERVICE,
                &context(),
                peer_of("tablet"),
                ConnectOptions::default(),
            )
            .unwrap();
        assert!(phone_app.connect(ours).await.unwrap().is_connected);
        (ours, phone_app.events(ours).unwrap())
    });
    let theirs_id = tablet
        .runtime
        .block_on(tablet.accepted.recv())
        .expect("the tablet accepted");
    let mut our_events = theirs;

    // From now on the phone's link task cannot run.
    let release = hold_worker(phone_runtime.handle());
    let later = phone_app
        .create_ability_connection_session(
            "later-service",
            &context(),
            PeerInfo::new("tablet", BUNDLE, "entry", "LaterAbility"),
            ConnectOptions::default(),
        )
        .unwrap();
    let handle = phone_runtime.handle().clone();
    let app = phone_app.clone();
    let (result_tx, result_rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        let _ = result_tx.send(handle.block_on(app.connect(later)));
    });

    // The tablet's app takes its time: first a message on the first session, then the answer.
    let request = tablet
        .later
        .recv_timeout(STUCK)
        .expect("the request reached the tablet");
    let tablet_app = tablet.side.app.clone();
    tablet
        .runtime
        .block_on(tablet_app.send_message(theirs_id, "before the answer"))
        .unwrap();
    let accepting = tablet.runtime.block_on(async {
        let session = session_for(&tablet_app, &request);
        tablet_app.accept_connect(session, &request.token).await
    });
    accepting.expect("the tablet accepted the later request");

    let result = result_rx
        .recv_timeout(STUCK)
        .expect("the connect finished with the phone's link task held")
        .unwrap();
    assert!(result.is_connected, "{result:?}");
    // The message came before the answer: the caller read it on the way and delivered it.
    assert_eq!(
        ready_event(&mut our_events),
        Some(Event::Message {
            session_id: ours,
            msg: "before the answer".into()
        })
    );

    // Once the worker is free, the link's task reads on: a message after the answer arrives.
    drop(release);
    tablet
        .runtime
        .block_on(tablet_app.send_message(theirs_id, "after the answer"))
        .unwrap();
    let after = phone_runtime.block_on(async {
        tokio::time::timeout(STUCK, our_events.next())
            .await
            .expect("the message after the answer arrived")
    });
    assert_eq!(
        after,
        Some(Event::Message {
            session_id: ours,
            msg: "after the answer".into()
        })
    );
}

/// The next event of `stream` if it already holds one, without waiting.
fn ready_event(stream: &mut acm::EventStream) -> Option<Event> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let next = std::pin::pin!(stream.next());
    match std::future::Future::poll(next, &mut cx) {
        std::task::Poll::Ready(event) => event,
        std::task::Poll::Pending => None,
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
