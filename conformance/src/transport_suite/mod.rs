//! The transport suite: does a [`Transport`] keep the contract of `acm_transport` that acm
//! relies on? Frames arrive whole, once and in order, of every size up to the link's maximum;
//! what a link cannot carry is refused; a graceful close reaches the peer with its reason after
//! every earlier frame; links are independent; a slow reader holds the sender back without
//! losing anything; a link that has ended stays ended.
//!
//! An implementer describes how to make two transports that reach each other (a
//! [`TransportFactory`]) and runs every case, either at once with [`run_transport_suite`] or
//! as one test per case with the [`transport_suite!`](crate::transport_suite!) macro. Each case
//! makes a fresh pair of transports, runs under a time limit ([`SuiteOptions`]) and turns a
//! hang or a panic into a failure naming the step it was at.
//!
//! The frames the suite sends are acm frames in shape (a 12-byte header whose payload length
//! gives the bytes after it, with an extension type), so that transports over byte streams,
//! which delimit frames by their headers (SPEC section 3.6), can carry them: the smallest frame
//! the suite sends is 12 bytes.
//!
//! ```
//! use acm_conformance::transport_suite::{run_transport_suite, FactoryError, TransportPair};
//! use acm_transport::DeviceId;
//! use acm_transport_mock::MockNetwork;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A factory can be a closure that makes a fresh pair each time it is called.
//! let factory = || async {
//!     let network = MockNetwork::new(7);
//!     let phone = network.add_device(DeviceId::new("phone")?)?;
//!     let tablet = network.add_device(DeviceId::new("tablet")?)?;
//!     Ok::<_, FactoryError>(TransportPair::new(phone, tablet, DeviceId::new("tablet")?))
//! };
//! let report = run_transport_suite(&factory).await;
//! assert_eq!(report.failures().count(), 0, "{}", report.summary());
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use acm_transport::{DeviceId, Transport};
use async_trait::async_trait;

use crate::report::{Case, CaseResult, Report, Verdict};

mod cases;
pub mod factories;
mod frames;
mod links;
mod steps;

pub use cases::cases;

/// Why a factory could not make a pair of transports.
pub type FactoryError = Box<dyn std::error::Error + Send + Sync>;

/// Two fresh transports that can reach each other: the first dials the second by
/// `second_id`, the second accepts.
pub struct TransportPair {
    /// The transport that dials.
    pub first: Arc<dyn Transport>,
    /// The transport that accepts.
    pub second: Arc<dyn Transport>,
    /// The id the first transport dials to reach the second.
    pub second_id: DeviceId,
}

impl TransportPair {
    /// A pair of `first`, which dials, and `second`, which the first reaches as `second_id`.
    pub fn new(
        first: impl Transport + 'static,
        second: impl Transport + 'static,
        second_id: DeviceId,
    ) -> Self {
        Self {
            first: Arc::new(first),
            second: Arc::new(second),
            second_id,
        }
    }
}

impl std::fmt::Debug for TransportPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportPair")
            .field("first", self.first.local_device())
            .field("second", self.second.local_device())
            .field("second_id", &self.second_id)
            .finish()
    }
}

/// Makes the transports the suite tests: a fresh pair for every case.
///
/// Any `Fn() -> impl Future<Output = Result<TransportPair, FactoryError>>` is a factory with
/// the default name and options.
#[async_trait]
pub trait TransportFactory: Send + Sync {
    /// What is tested, for reports.
    fn name(&self) -> String {
        "transport under test".into()
    }

    /// How the suite runs against this transport.
    fn options(&self) -> SuiteOptions {
        SuiteOptions::new()
    }

    /// Makes two fresh transports that can reach each other.
    async fn pair(&self) -> Result<TransportPair, FactoryError>;
}

#[async_trait]
impl<F, Fut> TransportFactory for F
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = Result<TransportPair, FactoryError>> + Send,
{
    async fn pair(&self) -> Result<TransportPair, FactoryError> {
        self().await
    }
}

/// How the suite runs: time limits and volumes, to suit fast and slow transports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SuiteOptions {
    /// How long one case may take, making its transports included, before it fails as hung.
    /// 30 s by default.
    pub case_time_limit: Duration,
    /// How many frames each side sends in the case that counts them. 2000 by default.
    pub many_frames: usize,
    /// How many bytes the backpressure case offers a peer that does not read: more than the
    /// transport may buffer between the two. 64 MiB by default.
    pub backpressure_bytes: usize,
    /// The size of the frames the backpressure case sends (at most the link's maximum).
    /// 65 535 bytes by default.
    pub backpressure_frame: usize,
    /// How long the backpressure case watches a sender make no progress before it takes it as
    /// held back. A transport that is merely slow may look held back: that weakens the case,
    /// never fails it. 250 ms by default.
    pub stall: Duration,
}

impl SuiteOptions {
    /// The defaults, for transports on one machine.
    pub fn new() -> Self {
        Self {
            case_time_limit: Duration::from_secs(30),
            many_frames: 2000,
            backpressure_bytes: 64 << 20,
            backpressure_frame: 65_535,
            stall: Duration::from_millis(250),
        }
    }

    /// Sets the time limit of each case.
    #[must_use]
    pub fn with_case_time_limit(mut self, limit: Duration) -> Self {
        self.case_time_limit = limit;
        self
    }

    /// Sets how many frames each side sends in the counting case.
    #[must_use]
    pub fn with_many_frames(mut self, frames: usize) -> Self {
        self.many_frames = frames;
        self
    }

    /// Sets the bytes and the frame size of the backpressure case.
    #[must_use]
    pub fn with_backpressure(mut self, bytes: usize, frame: usize) -> Self {
        self.backpressure_bytes = bytes;
        self.backpressure_frame = frame;
        self
    }

    /// Sets how long a sender must make no progress to count as held back.
    #[must_use]
    pub fn with_stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs every case against `factory`'s transports, one after the other.
pub async fn run_transport_suite<F: TransportFactory + ?Sized>(factory: &F) -> Report {
    let mut report = Report::new(factory.name());
    for case in cases() {
        report.results.push(run_case(factory, &case).await);
    }
    report
}

/// Runs the case with id `id`, or returns `None` if there is none.
pub async fn run_transport_case<F: TransportFactory + ?Sized>(
    factory: &F,
    id: &str,
) -> Option<CaseResult> {
    let case = cases().into_iter().find(|case| case.case.id == id)?;
    Some(run_case(factory, &case).await)
}

/// Runs the case with id `id` and panics, with what was expected and what happened, unless
/// it passes or is unsupported: the body of each test [`transport_suite!`](crate::transport_suite!)
/// writes.
pub async fn assert_transport_case<F: TransportFactory + ?Sized>(factory: &F, id: &str) {
    let Some(result) = run_transport_case(factory, id).await else {
        panic!("no transport case has the id {id}");
    };
    match &result.verdict {
        Verdict::Pass | Verdict::Informational(_) => {}
        Verdict::Unsupported(why) => eprintln!("{id}: unsupported: {why}"),
        Verdict::Fail { .. } => {
            let report = Report {
                target: factory.name(),
                results: vec![result],
            };
            panic!("{}", report.summary());
        }
    }
}

/// One case of the transport suite.
#[derive(Clone, Copy)]
pub struct TransportCase {
    /// Its id, rules and title.
    pub case: Case,
    run: fn(steps::Ctx) -> steps::CaseFuture,
}

impl std::fmt::Debug for TransportCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportCase")
            .field("case", &self.case)
            .finish()
    }
}

/// Runs `case` on a fresh pair from `factory`, within the time limit, on a task of its own so
/// that a panic fails the case and a hang leaves nothing running.
async fn run_case<F: TransportFactory + ?Sized>(factory: &F, case: &TransportCase) -> CaseResult {
    let options = factory.options();
    let limit = options.case_time_limit;
    let progress = steps::Progress::default();
    let started = tokio::time::Instant::now();
    let run = async {
        let pair = factory.pair().await.map_err(|error| {
            Verdict::fail(
                "a fresh pair of transports",
                format!("the factory failed: {error}"),
            )
        })?;
        let ctx = steps::Ctx {
            pair,
            options,
            progress: progress.clone(),
        };
        let task = tokio::spawn((case.run)(ctx));
        let abort = task.abort_handle();
        let _abort_on_timeout = AbortOnDrop(abort);
        match task.await {
            Ok(outcome) => outcome,
            Err(error) => Err(Verdict::fail(
                "the case to run to its end",
                format!("it panicked: {}", panic_message(error)),
            )),
        }
    };
    let verdict = match tokio::time::timeout(limit, run).await {
        Ok(Ok(())) => Verdict::Pass,
        Ok(Err(verdict)) => verdict,
        Err(_) => Verdict::fail(
            format!("the case to finish within {limit:?}"),
            format!("it hung: {}", progress.describe()),
        ),
    };
    CaseResult {
        case: case.case,
        verdict,
        elapsed: started.elapsed(),
        reproduce: None,
        logs: String::new(),
    }
}

/// Aborts a case's task when the case is given up.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The text of a panic, where it has one.
fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return error.to_string();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Writes one `#[tokio::test]` per case of the transport suite, in a module `$name`, each
/// running the case against the [`TransportFactory`](crate::transport_suite::TransportFactory)
/// that `$factory` evaluates to and failing with what was expected and what happened.
///
/// The tests run on a multi-threaded tokio runtime: the crate that uses the macro needs tokio
/// with the `macros` and `rt-multi-thread` features (as a dev-dependency).
///
/// ```
/// use acm_conformance::transport_suite::{FactoryError, TransportPair};
/// use acm_transport::DeviceId;
/// use acm_transport_mock::MockNetwork;
///
/// /// Two devices on a fresh mock network.
/// async fn mock_pair() -> Result<TransportPair, FactoryError> {
///     let network = MockNetwork::new(7);
///     let phone = network.add_device(DeviceId::new("phone")?)?;
///     let tablet = network.add_device(DeviceId::new("tablet")?)?;
///     Ok(TransportPair::new(phone, tablet, DeviceId::new("tablet")?))
/// }
///
/// // `cargo test mock::` runs mock::order_frames_arrive_in_order, mock::close_..., ...
/// acm_conformance::transport_suite!(mock, mock_pair);
/// assert_eq!(mock::CASE_IDS[0], "transport/open/ids-and-roles");
/// ```
#[macro_export]
macro_rules! transport_suite {
    ($name:ident, $factory:expr) => {
        $crate::__transport_suite_cases!($name, $factory;
            open_ids_and_roles => "transport/open/ids-and-roles",
            order_frames_arrive_in_order => "transport/order/frames-arrive-in-order",
            delivery_nothing_lost_or_duplicated => "transport/delivery/nothing-lost-or-duplicated",
            size_every_size_up_to_the_maximum => "transport/size/every-size-up-to-the-maximum",
            size_over_the_maximum_is_refused => "transport/size/over-the-maximum-is-refused",
            size_empty_frame_is_refused => "transport/size/empty-frame-is-refused",
            reserved_version_0_prefix => "transport/reserved/version-0-prefix",
            close_by_the_dialer_after_earlier_frames => "transport/close/by-the-dialer-after-earlier-frames",
            close_by_the_acceptor_after_earlier_frames => "transport/close/by-the-acceptor-after-earlier-frames",
            close_then_send_and_recv_fail_with_closed => "transport/close/then-send-and-recv-fail-with-closed",
            loss_dropped_link_is_lost_without_partial_frames => "transport/loss/dropped-link-is-lost-without-partial-frames",
            links_several_at_once_are_independent => "transport/links/several-at-once-are-independent",
            backpressure_slow_reader_holds_the_sender_back => "transport/backpressure/slow-reader-holds-the-sender-back",
            parts_frames_sent_in_two_parts_arrive_whole => "transport/parts/frames-sent-in-two-parts-arrive-whole",
            parts_frames_tried_at_once_keep_their_order => "transport/parts/frames-tried-at-once-keep-their-order",
        );
    };
}

/// The expansion of [`transport_suite!`](crate::transport_suite!): one test per case, and the
/// list of the case ids it covers.
#[doc(hidden)]
#[macro_export]
macro_rules! __transport_suite_cases {
    ($name:ident, $factory:expr; $($test:ident => $id:literal),+ $(,)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// The ids of the cases this module tests.
            #[allow(dead_code)]
            pub const CASE_IDS: &[&str] = &[$($id),+];

            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let factory = $factory;
                    $crate::transport_suite::assert_transport_case(&factory, $id).await;
                }
            )+
        }
    };
}
