//! The hand-off between the apps' calls and a link's driver, on a schedule the test sets: the
//! phone's one link's driver is polled by hand, with wakers that count their wakes, and the
//! calls are polled by hand between its polls. A wake-up lost anywhere (a call that leaves work
//! without waking the driver's latest waker, a driver that keeps an old waker, a wait for room
//! or an answer that nobody ends) fails an assertion here rather than hanging a program.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use acm_transport::DeviceId;
use acm_transport_mock::{DeviceOptions, Fault, MockNetwork};

use super::app::MAX_QUEUED_CONTROL;
use super::device::add_link;
use super::driver::Driver;
use crate::{
    CollaborateRequest, CollaborateResult, ConnectOptions, Context as AppContext, Device,
    DeviceConfig, PeerInfo,
};

/// A waker that counts its wakes.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counting {
    fn waker() -> (Arc<Self>, Waker) {
        let counting = Arc::new(Self::default());
        (counting.clone(), Waker::from(counting))
    }

    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn poll<F: Future + ?Sized>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

/// Lets the other tasks (the tablet's) run until they wait.
async fn let_others_run() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn context() -> AppContext {
    AppContext::new("com.example", "entry", "EntryAbility")
}

#[tokio::test(start_paused = true)]
async fn every_call_that_leaves_work_wakes_the_driver_of_its_latest_poll() {
    let network = MockNetwork::new(9);
    let id = |name: &str| DeviceId::new(name).unwrap();
    // The tablet is a whole device whose app accepts every request in its handler; it holds
    // 4 KiB from the phone in flight.
    let options = DeviceOptions::new().receive_buffer(4096);
    let tablet = Device::new(
        network.add_device_with(id("tablet"), options).unwrap(),
        DeviceConfig::default(),
    );
    let on_tablet = tablet.manager(&context());
    let manager = on_tablet.clone();
    on_tablet.register_ability("entry", "EntryAbility", move |r: CollaborateRequest| {
        let session = manager
            .create_ability_connection_session(
                &r.peer_info.service_name.clone(),
                &context(),
                r.peer_info,
                r.connect_options,
            )
            .unwrap();
        drop(manager.accept_connect(session, &r.token));
        CollaborateResult::Accept
    });
    // The phone's link to the tablet has a driver polled by hand.
    let phone = Device::new(
        network.add_device(id("phone")).unwrap(),
        DeviceConfig::default(),
    );
    let shared = phone.shared().clone();
    let link = shared.transport.dial(&id("tablet")).await.unwrap();
    let (link_id, link) = add_link(&shared, link).unwrap();
    let mut driver = pin!(Driver::new(shared.clone(), link_id, link));

    // The link comes up.
    let (_, w0) = Counting::waker();
    for _ in 0..10 {
        assert!(poll(driver.as_mut(), &w0).is_pending());
        let_others_run().await;
    }
    assert!(shared.lock().engine.is_up(link_id));

    // A connect: its first poll sends its request, which wakes the waker of the driver's
    // latest poll, and no older one.
    let app = phone.manager(&context());
    let tablet_app = PeerInfo::new("tablet", "com.example", "entry", "EntryAbility");
    let session = app
        .create_ability_connection_session(
            "chat",
            &context(),
            tablet_app,
            ConnectOptions::default(),
        )
        .unwrap();
    let (older, w1) = Counting::waker();
    let (latest, w2) = Counting::waker();
    assert!(poll(driver.as_mut(), &w1).is_pending());
    assert!(poll(driver.as_mut(), &w2).is_pending());
    let mut connect = pin!(app.connect(session));
    let (answered, c) = Counting::waker();
    assert!(poll(connect.as_mut(), &c).is_pending());
    assert_eq!((older.wakes(), latest.wakes()), (0, 1));

    // The driver sends the request; the tablet answers; the driver's next turns take the
    // answer and wake the connect.
    for _ in 0..10 {
        let _ = poll(driver.as_mut(), &w2);
        let_others_run().await;
    }
    assert_eq!(answered.wakes(), 1, "the answer woke the connect");
    match poll(connect.as_mut(), &c) {
        Poll::Ready(Ok(result)) => assert!(result.is_connected, "{result:?}"),
        other => panic!("the connect is not answered: {other:?}"),
    }

    // Backpressure: with the tablet no longer reading, the phone's sends wait, then its
    // messages fill the link's queue, and a message beyond waits for room.
    let phone_id = id("phone");
    network.links(&phone_id, &id("tablet"))[0]
        .inject(&phone_id, Fault::Stall)
        .unwrap();
    let (w3_count, w3) = Counting::waker();
    let mut queued = 0;
    let waiting = loop {
        let _ = poll(driver.as_mut(), &w3);
        let mut send = Box::pin(app.send_message(session, "x"));
        let (room, m) = Counting::waker();
        match poll(send.as_mut(), &m) {
            Poll::Ready(result) => {
                result.unwrap();
                queued += 1;
            }
            Poll::Pending => break (send, room, m),
        }
        assert!(queued <= 10 * MAX_QUEUED_CONTROL, "the queue never filled");
    };
    let (mut send, room, m) = waiting;
    assert!(queued >= MAX_QUEUED_CONTROL);
    assert!(w3_count.wakes() > 0, "the queued messages woke the driver");
    assert_eq!(room.wakes(), 0);
    // The tablet reads again: the driver's turns send, which makes room, which wakes the
    // message that waited; it then goes.
    network.links(&phone_id, &id("tablet"))[0]
        .inject(&phone_id, Fault::Unstall)
        .unwrap();
    for _ in 0..20 {
        let _ = poll(driver.as_mut(), &w3);
        let_others_run().await;
        if room.wakes() > 0 {
            break;
        }
    }
    assert!(
        room.wakes() > 0,
        "room in the queue woke the waiting message"
    );
    assert!(matches!(poll(send.as_mut(), &m), Poll::Ready(Ok(()))));
}
