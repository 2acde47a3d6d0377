//! Who reads a link's next frame: its driver task, or a caller that waits for the peer's answer
//! to its connect and reads the link itself meanwhile.
//!
//! The link's receive is always polled with one waker, the link's [`ReceiveRoute`]. When a frame
//! arrives, the route wakes the caller that waits on the link, if one does, and the driver task
//! otherwise. The waiting caller then reads what has arrived under the driver's state, in its own
//! task, as the driver task would have; the answer to its connect is among it. This spares every
//! connect a trip through the requester's driver task: the frame that answers it wakes the
//! caller directly, as an answer on a plain socket would, instead of waking the driver task,
//! which then wakes the caller.
//!
//! A caller becomes the reader before it sends its request, so that no frame that comes after
//! the request, the answer least of all, wakes the task instead. A wake routed to a caller that
//! leaves without reading the link (its answer came another way) is passed on to the driver
//! task, so no frame waits unread.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};

use tokio::sync::oneshot;

use crate::api::events::lock;

use super::link_task::{LinkShared, in_app_code};

/// Where the waker of a link's receive sends its wakes.
#[derive(Debug, Default)]
pub(crate) struct ReceiveRoute {
    state: Mutex<RouteState>,
}

#[derive(Debug, Default)]
struct RouteState {
    /// The driver task's waker, once it runs.
    task: Option<Waker>,
    /// The caller that reads the link while it waits, if any.
    waiter: Option<Waker>,
    /// Whether a wake went to the waiter since it last read the link.
    missed: bool,
}

impl ReceiveRoute {
    /// Sends the wakes to `task` while no caller waits.
    pub(crate) fn set_task(&self, task: Waker) {
        lock(&self.state).task = Some(task);
    }

    /// Makes the caller with `waker` the one that reads the link, unless another caller is;
    /// returns whether it is now.
    fn join(&self, waker: &Waker) -> bool {
        let mut state = lock(&self.state);
        if state.waiter.is_some() {
            return false;
        }
        state.waiter = Some(waker.clone());
        true
    }

    /// The waiting caller's waker is now `waker`.
    fn rejoin(&self, waker: &Waker) {
        let mut state = lock(&self.state);
        if let Some(waiter) = &mut state.waiter
            && !waiter.will_wake(waker)
        {
            waiter.clone_from(waker);
        }
    }

    /// Whether the waiting caller was woken to read the link since it last did; clears it.
    fn take_missed(&self) -> bool {
        std::mem::take(&mut lock(&self.state).missed)
    }

    /// The waiting caller stops reading the link; a wake it did not act on goes to the task.
    fn leave(&self) {
        let task = {
            let mut state = lock(&self.state);
            state.waiter = None;
            if std::mem::take(&mut state.missed) {
                state.task.clone()
            } else {
                None
            }
        };
        if let Some(task) = task {
            task.wake();
        }
    }
}

impl Wake for ReceiveRoute {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Woken outside the lock: the waker may run code that reaches this route again.
        let target = {
            let mut state = lock(&self.state);
            match &state.waiter {
                Some(waiter) => {
                    let waiter = waiter.clone();
                    state.missed = true;
                    Some(waiter)
                }
                None => state.task.clone(),
            }
        };
        if let Some(target) = target {
            target.wake();
        }
    }
}

/// The answer to a connect, from `answer`; meanwhile the caller reads the link's frames itself
/// when it can (see the module docs). It can when no other caller does, it is not app code that
/// a driver runs, and it runs on the runtime of the link's driver task, whose timers and I/O the
/// link's receive may use.
pub(crate) struct Answer<T> {
    answer: oneshot::Receiver<T>,
    link: Weak<LinkShared>,
    /// Whether this caller is the link's waiting reader.
    reading: bool,
}

impl<T> Answer<T> {
    pub(crate) fn new(answer: oneshot::Receiver<T>, link: Weak<LinkShared>) -> Self {
        Self {
            answer,
            link,
            reading: false,
        }
    }

    /// Makes this caller the link's reader from now on, when it can be, so that the frames that
    /// arrive while it sends its request already wake it. Call it in the task that awaits this.
    pub(super) async fn read_from_now(&mut self) {
        std::future::poll_fn(|cx| {
            if !self.reading
                && let Some(link) = self.readable_link()
            {
                self.reading = link.route().join(cx.waker());
            }
            Poll::Ready(())
        })
        .await;
    }

    /// The link, if this caller can read it now: it is not app code that a driver runs (which
    /// must not wait for a driver's state), and it runs on the link task's runtime. Held only
    /// while it is used: a driver that ends must be able to drop its state, and with it the
    /// answer's sender.
    fn readable_link(&self) -> Option<Arc<LinkShared>> {
        if in_app_code() {
            return None;
        }
        self.link.upgrade().filter(|link| link.on_this_runtime())
    }

    /// This caller no longer reads the link, until it next waits for its answer.
    pub(super) fn stop_reading(&mut self) {
        if std::mem::take(&mut self.reading)
            && let Some(link) = self.link.upgrade()
        {
            link.route().leave();
        }
    }
}

impl<T> Future for Answer<T> {
    type Output = Result<T, oneshot::error::RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
            this.stop_reading();
            return Poll::Ready(answer);
        }
        let Some(link) = this.readable_link() else {
            // The task reads for it.
            this.stop_reading();
            return Poll::Pending;
        };
        let route = link.route();
        if this.reading {
            route.rejoin(cx.waker());
        } else {
            // A frame that arrived before this is the task's to read, and it was woken for it.
            this.reading = route.join(cx.waker());
            return Poll::Pending;
        }
        if route.take_missed() {
            link.read_arrived();
            if let Poll::Ready(answer) = Pin::new(&mut this.answer).poll(cx) {
                drop(link);
                this.stop_reading();
                return Poll::Ready(answer);
            }
        }
        Poll::Pending
    }
}

impl<T> Drop for Answer<T> {
    fn drop(&mut self) {
        self.stop_reading();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count::default());
        (count.clone(), Waker::from(count))
    }

    fn wakes(count: &Count) -> usize {
        count.0.load(Ordering::Relaxed)
    }

    fn route_with_task() -> (Arc<ReceiveRoute>, Waker, Arc<Count>) {
        let route = Arc::new(ReceiveRoute::default());
        let (task, task_waker) = counting();
        route.set_task(task_waker);
        let waker = Waker::from(route.clone());
        (route, waker, task)
    }

    #[test]
    fn wakes_go_to_the_task_while_no_caller_reads() {
        let (_route, waker, task) = route_with_task();
        waker.wake_by_ref();
        waker.wake();
        assert_eq!(wakes(&task), 2);
    }

    #[test]
    fn wakes_go_to_the_one_caller_that_reads_and_are_remembered_for_it() {
        let (route, waker, task) = route_with_task();
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        assert!(route.join(&first_waker));
        assert!(!route.join(&second_waker), "one caller reads at a time");
        waker.wake_by_ref();
        assert_eq!((wakes(&task), wakes(&first), wakes(&second)), (0, 1, 0));
        assert!(route.take_missed());
        assert!(!route.take_missed(), "taking the wake clears it");
        // The caller's waker changed between polls.
        let (moved, moved_waker) = counting();
        route.rejoin(&moved_waker);
        waker.wake_by_ref();
        assert_eq!((wakes(&first), wakes(&moved)), (1, 1));
    }

    #[test]
    fn a_caller_that_leaves_passes_a_wake_it_did_not_act_on_to_the_task() {
        let (route, waker, task) = route_with_task();
        let (reader, reader_waker) = counting();
        assert!(route.join(&reader_waker));
        waker.wake_by_ref();
        route.leave();
        assert_eq!((wakes(&reader), wakes(&task)), (1, 1));
        // Wakes go to the task again, and another caller may read.
        waker.wake_by_ref();
        assert_eq!(wakes(&task), 2);
        assert!(route.join(&reader_waker));
    }

    #[test]
    fn a_caller_that_acted_on_its_wakes_leaves_without_waking_the_task() {
        let (route, waker, task) = route_with_task();
        let (_reader, reader_waker) = counting();
        assert!(route.join(&reader_waker));
        waker.wake_by_ref();
        assert!(route.take_missed());
        route.leave();
        assert_eq!(wakes(&task), 0);
    }
}
