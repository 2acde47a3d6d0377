//! The transport suite against transport-mock, transport-tcp and segmented mock links, one test
//! per case; and the
//! suite itself: its cases cite known rules, and it fails, rather than hangs, on transports
//! that break the contract.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use acm_conformance::Verdict;
use acm_conformance::transport_suite::factories::{
    MockFactory, SegmentedMockFactory, TcpLoopbackFactory,
};
use acm_conformance::transport_suite::{
    FactoryError, SuiteOptions, TransportFactory, TransportPair, cases, run_transport_case,
};
use acm_transport::{
    Capabilities, CloseReason, Closure, DeviceId, DeviceInfo, Link, Role, Transport, TransportError,
};
use acm_transport_mock::{MockNetwork, MockTransport};
use async_trait::async_trait;
use bytes::Bytes;

fn id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("a valid device id")
}

acm_conformance::transport_suite!(mock, MockFactory);
acm_conformance::transport_suite!(tcp, TcpLoopbackFactory);
acm_conformance::transport_suite!(segmented_mock, SegmentedMockFactory);

#[test]
fn the_macro_writes_a_test_for_every_case_in_order() {
    let ids: Vec<&str> = cases().iter().map(|case| case.case.id).collect();
    assert_eq!(mock::CASE_IDS, ids.as_slice());
    assert_eq!(tcp::CASE_IDS, ids.as_slice());
    assert_eq!(segmented_mock::CASE_IDS, ids.as_slice());
}

#[test]
fn case_ids_are_unique_and_cite_rules_of_the_spec() {
    let all = cases();
    let mut ids: Vec<&str> = all.iter().map(|case| case.case.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "duplicate case ids");
    for case in &all {
        assert!(case.case.id.starts_with("transport/"), "{}", case.case.id);
        assert!(
            !case.case.rules.is_empty(),
            "{} cites no rule",
            case.case.id
        );
        for rule in case.case.rules {
            assert!(
                acm_conformance::rules::text(rule).is_some(),
                "{}: unknown rule {rule}",
                case.case.id
            );
        }
    }
}

/// What a [`Faulty`] transport's links do wrong.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `send` drops every tenth frame, and says it sent it.
    LoseEveryTenthFrame,
    /// `recv` never returns.
    RecvHangs,
    /// `close` panics.
    ClosePanics,
}

/// A mock transport whose links break the contract as `fault` says.
struct Faulty {
    inner: MockTransport,
    fault: Fault,
}

#[async_trait]
impl Transport for Faulty {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn discover(&self) -> Result<Vec<DeviceInfo>, TransportError> {
        self.inner.discover().await
    }
    async fn dial(&self, device: &DeviceId) -> Result<Box<dyn Link>, TransportError> {
        let inner = self.inner.dial(device).await?;
        Ok(Box::new(FaultyLink::new(inner, self.fault)))
    }
    async fn accept(&self) -> Result<Box<dyn Link>, TransportError> {
        let inner = self.inner.accept().await?;
        Ok(Box::new(FaultyLink::new(inner, self.fault)))
    }
}

#[derive(Debug)]
struct FaultyLink {
    inner: Box<dyn Link>,
    fault: Fault,
    sent: AtomicU64,
}

impl FaultyLink {
    fn new(inner: Box<dyn Link>, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            sent: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl Link for FaultyLink {
    fn local_device(&self) -> &DeviceId {
        self.inner.local_device()
    }
    fn peer_device(&self) -> &DeviceId {
        self.inner.peer_device()
    }
    fn role(&self) -> Role {
        self.inner.role()
    }
    fn max_frame_size(&self) -> usize {
        self.inner.max_frame_size()
    }
    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        let n = self.sent.fetch_add(1, Ordering::SeqCst);
        if matches!(self.fault, Fault::LoseEveryTenthFrame) && n % 10 == 9 {
            return Ok(());
        }
        self.inner.send(frame).await
    }
    async fn recv(&self) -> Result<Bytes, TransportError> {
        if matches!(self.fault, Fault::RecvHangs) {
            std::future::pending::<()>().await;
        }
        self.inner.recv().await
    }
    async fn close(&self, reason: CloseReason) {
        assert!(!matches!(self.fault, Fault::ClosePanics), "close is broken");
        self.inner.close(reason).await;
    }
    fn closure(&self) -> Option<Closure> {
        self.inner.closure()
    }
}

/// Mock pairs whose links all have `fault`, with a short time limit per case.
struct FaultyFactory(Fault);

#[async_trait]
impl TransportFactory for FaultyFactory {
    fn options(&self) -> SuiteOptions {
        SuiteOptions::new().with_case_time_limit(Duration::from_secs(2))
    }

    async fn pair(&self) -> Result<TransportPair, FactoryError> {
        let network = MockNetwork::new(1);
        let first = Faulty {
            inner: network.add_device(id("phone"))?,
            fault: self.0,
        };
        let second = Faulty {
            inner: network.add_device(id("tablet"))?,
            fault: self.0,
        };
        Ok(TransportPair::new(first, second, id("tablet")))
    }
}

/// The verdict of case `id` against `factory`.
async fn verdict(factory: &dyn TransportFactory, id: &str) -> Verdict {
    run_transport_case(factory, id)
        .await
        .expect("the case exists")
        .verdict
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_that_loses_frames_fails_the_delivery_and_order_cases() {
    let factory = FaultyFactory(Fault::LoseEveryTenthFrame);
    for case in [
        "transport/delivery/nothing-lost-or-duplicated",
        "transport/order/frames-arrive-in-order",
    ] {
        match verdict(&factory, case).await {
            Verdict::Fail { expected, actual } => {
                assert!(expected.contains("frame 9 of stream"), "{case}: {expected}");
                assert!(actual.contains("frame 10 of stream"), "{case}: {actual}");
            }
            other => panic!("{case}: expected a failure, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_whose_recv_hangs_fails_within_the_time_limit_naming_the_step() {
    let factory = FaultyFactory(Fault::RecvHangs);
    match verdict(&factory, "transport/order/frames-arrive-in-order").await {
        Verdict::Fail { expected, actual } => {
            assert!(expected.contains("within 2s"), "{expected}");
            assert!(actual.contains("it hung") && actual.contains("waiting for frame 0"));
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_that_panics_fails_the_case_with_the_panic_message() {
    let factory = FaultyFactory(Fault::ClosePanics);
    match verdict(
        &factory,
        "transport/close/then-send-and-recv-fail-with-closed",
    )
    .await
    {
        Verdict::Fail { actual, .. } => assert!(actual.contains("close is broken"), "{actual}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_factory_that_fails_fails_every_case_without_running_it() {
    let factory = || async { Err::<TransportPair, FactoryError>("no radio".into()) };
    let report = acm_conformance::transport_suite::run_transport_suite(&factory).await;
    assert_eq!(report.results.len(), cases().len());
    assert_eq!(report.failures().count(), cases().len());
    assert!(report.summary().contains("the factory failed: no radio"));
}
