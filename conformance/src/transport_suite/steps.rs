//! What the cases are made of: the case's context, the step it is at (for a hang), and the
//! moves every case makes: open a link, send frames, expect frames, expect a closure.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use acm_transport::{Closure, Link, TransportError};
use bytes::Bytes;

use super::frames::{describe, frame};
use super::{SuiteOptions, TransportPair};
use crate::report::Verdict;

/// How a case or a step ends: `Err` holds a failure, or what the transport does not support.
pub(crate) type Step<T = ()> = Result<T, Verdict>;

/// The future of one case, run on a task of its own.
pub(crate) type CaseFuture = Pin<Box<dyn Future<Output = Step> + Send>>;

/// A failure with what was expected and what happened.
pub(crate) fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

/// What a case works with.
pub(crate) struct Ctx {
    pub(crate) pair: TransportPair,
    pub(crate) options: SuiteOptions,
    pub(crate) progress: Progress,
}

/// Where each lane of a case (a sender, a reader) is, so that a hang says where it hung.
#[derive(Clone, Default)]
pub(crate) struct Progress(Arc<Mutex<BTreeMap<&'static str, String>>>);

impl Progress {
    /// Records that `lane` is now doing `what`.
    pub(crate) fn at(&self, lane: &'static str, what: impl Into<String>) {
        let mut lanes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lanes.insert(lane, what.into());
    }

    /// Every lane's last step.
    pub(crate) fn describe(&self) -> String {
        let lanes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if lanes.is_empty() {
            return "before its first step (making the transports)".into();
        }
        lanes
            .iter()
            .map(|(lane, what)| format!("{lane} {what}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The two ends of a link: `dialer` from the first transport, `acceptor` from the second.
pub(crate) struct Ends {
    pub(crate) dialer: Box<dyn Link>,
    pub(crate) acceptor: Box<dyn Link>,
}

impl Ctx {
    /// Dials the second transport from the first while the second accepts.
    pub(crate) async fn open(&self) -> Step<Ends> {
        self.open_raw().await.or_else(|error| {
            fail(
                "a link dialed by the first transport and accepted by the second",
                error.to_string(),
            )
        })
    }

    /// [`Ctx::open`], failing with the transport's error.
    pub(crate) async fn open_raw(&self) -> Result<Ends, TransportError> {
        self.progress.at("setup:", "dialing and accepting a link");
        let pair = &self.pair;
        let (dialed, accepted) =
            tokio::join!(pair.first.dial(&pair.second_id), pair.second.accept());
        let ends = Ends {
            dialer: dialed?,
            acceptor: accepted?,
        };
        self.progress.at("setup:", "link open");
        Ok(ends)
    }
}

/// Sends each frame on `link`, in order.
pub(crate) async fn send_all(
    progress: &Progress,
    lane: &'static str,
    link: &dyn Link,
    frames: impl IntoIterator<Item = Bytes>,
) -> Step {
    for (i, frame) in frames.into_iter().enumerate() {
        progress.at(
            lane,
            format!("sending its frame #{i}, {}", describe(&frame)),
        );
        if let Err(error) = link.send(frame.clone()).await {
            return fail(
                format!("{} to be sent", describe(&frame)),
                format!("send failed: {error}"),
            );
        }
    }
    progress.at(lane, "done sending");
    Ok(())
}

/// Receives one frame on `link` and checks that it is `expected`.
pub(crate) async fn expect_frame(
    progress: &Progress,
    lane: &'static str,
    link: &dyn Link,
    expected: &Bytes,
) -> Step {
    progress.at(lane, format!("waiting for {}", describe(expected)));
    match link.recv().await {
        Ok(got) if got == *expected => Ok(()),
        Ok(got) => fail(describe(expected), describe(&got)),
        Err(error) => fail(describe(expected), format!("recv failed: {error}")),
    }
}

/// Receives the frames on `link` and checks that they are `expected`, in order.
pub(crate) async fn expect_all(
    progress: &Progress,
    lane: &'static str,
    link: &dyn Link,
    expected: impl IntoIterator<Item = Bytes>,
) -> Step {
    for frame in expected {
        expect_frame(progress, lane, link, &frame).await?;
    }
    progress.at(lane, "done reading");
    Ok(())
}

/// Whether `got` is the closure `expected` describes: equal, or both a loss (whatever its
/// text).
pub(crate) fn same_closure(expected: &Closure, got: &Closure) -> bool {
    match (expected, got) {
        (Closure::Lost(_), Closure::Lost(_)) => true,
        (expected, got) => expected == got,
    }
}

/// How a closure reads in a report.
fn show(closure: &Closure) -> String {
    match closure {
        Closure::Lost(_) => "Closed(Lost(..))".into(),
        other => format!("Closed({other:?})"),
    }
}

/// Checks that `result`, from `what` on a link, is a failure with the closure `expected`
/// (a success comes described).
fn expect_closed(what: &str, result: Result<String, TransportError>, expected: &Closure) -> Step {
    let expected_text = format!("{what} to fail with {}", show(expected));
    match result {
        Err(TransportError::Closed(got)) if same_closure(expected, &got) => Ok(()),
        Err(TransportError::Closed(got)) => {
            fail(expected_text, format!("it failed with {}", show(&got)))
        }
        Err(other) => fail(expected_text, format!("it failed with {other:?}")),
        Ok(success) => fail(expected_text, format!("it returned {success}")),
    }
}

/// Checks that a frame sent on `link` is refused with the closure `expected`.
pub(crate) async fn expect_send_closed(side: &str, link: &dyn Link, expected: &Closure) -> Step {
    let result = link
        .send(frame(0x7F, 0, 12))
        .await
        .map(|()| "Ok(())".to_owned());
    expect_closed(&format!("send on the {side}'s link"), result, expected)
}

/// Checks that `recv` on `link` fails with the closure `expected`.
pub(crate) async fn expect_recv_closed(side: &str, link: &dyn Link, expected: &Closure) -> Step {
    let result = link.recv().await.map(|got| describe(&got));
    expect_closed(&format!("recv on the {side}'s link"), result, expected)
}

/// Checks that `link.closure()` says `expected`.
pub(crate) fn expect_closure(side: &str, link: &dyn Link, expected: &Closure) -> Step {
    match link.closure() {
        Some(got) if same_closure(expected, &got) => Ok(()),
        got => fail(
            format!("the {side}'s closure() to be Some({expected:?})"),
            format!("it is {got:?}"),
        ),
    }
}
