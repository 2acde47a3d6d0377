//! The turns of the links that flood a device.
//!
//! A link's driver lets other tasks run after an allowance of work a poll (see the driver's
//! `POLL_BYTES`). With many links flooding, that alone is not enough: each flooding driver
//! would be back in the runtime's queue at once, so that every other task (a dialer's
//! handshake, a request on another link, an app) would wait behind one allowance per flooding
//! link; and a queue that never empties leaves the runtime's I/O driver to be polled only now
//! and then, so that a quiet link's frames are not even seen as they arrive.
//!
//! So a driver that used its whole allowance with work left queues here for a turn, and works
//! again only once it has one. As many links have a turn at once as the runtime has workers,
//! in the order they asked; the others wait, and are not in the runtime's queue. A turn is
//! handed on with tokio's deferred wake-up: the next flooding driver runs once the runtime has
//! run the tasks already queued and polled its I/O and timer drivers. A quiet link's task thus
//! waits behind one allowance of one flooding link, however many flood.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::task::{Context, Waker};

use crate::lock;

/// A link, as the device's engine numbers it (`LinkId::get`).
type LinkId = u64;

/// The turns of a device's flooding links.
pub(crate) struct FloodTurns {
    inner: Mutex<Queue>,
}

struct Queue {
    /// How many links work at once.
    turns: usize,
    /// The links whose turn it is: at most `turns`.
    working: Vec<LinkId>,
    /// The links waiting for a turn, in the order they asked. A link that left while waiting
    /// stays here until it comes to the front, where it is passed over (it has no waker).
    order: VecDeque<LinkId>,
    /// The driver to wake of each link waiting.
    waiting: HashMap<LinkId, Waker>,
    /// The links whose peers have sent without pause for an allowance's worth or more, over
    /// polls that each received something (the driver's streak).
    streaking: HashSet<LinkId>,
}

impl FloodTurns {
    /// Turns for `turns` links at once (at least one).
    pub(crate) fn new(turns: usize) -> Self {
        Self {
            inner: Mutex::new(Queue {
                turns: turns.max(1),
                working: Vec::new(),
                order: VecDeque::new(),
                waiting: HashMap::new(),
                streaking: HashSet::new(),
            }),
        }
    }

    /// For a driver whose poll used its whole allowance with work left: gives up `link`'s turn,
    /// if it had one, and asks for another behind the links already waiting. `waker` is woken,
    /// deferred, when the turn comes: at once, deferred, when no other link waits.
    pub(crate) fn wait_for_turn(&self, link: LinkId, waker: &Waker) {
        let mut queue = lock(&self.inner);
        queue.working.retain(|l| *l != link);
        if queue.waiting.insert(link, waker.clone()).is_none() {
            queue.order.push_back(link);
        }
        queue.hand_out();
    }

    /// Whether it is `link`'s turn. When it is not, `waker` is the one its turn will wake.
    /// A link that never asked, or has left, may always work.
    pub(crate) fn has_turn(&self, link: LinkId, waker: &Waker) -> bool {
        let mut queue = lock(&self.inner);
        match queue.waiting.get_mut(&link) {
            Some(waiting) => {
                if !waiting.will_wake(waker) {
                    waiting.clone_from(waker);
                }
                false
            }
            None => true,
        }
    }

    /// Notes that `link`'s peer has sent without pause for an allowance's worth or more, and
    /// says whether another link does too, or has or waits for a turn: then `link` floods the
    /// device along with others and must take its turns; alone, it may work as it likes.
    pub(crate) fn streaking(&self, link: LinkId) -> bool {
        let mut queue = lock(&self.inner);
        queue.streaking.insert(link);
        queue.streaking.len() > 1
            || queue.working.iter().any(|l| *l != link)
            || queue.waiting.keys().any(|l| *l != link)
    }

    /// `link` received nothing in a poll, or has ended: its streak is over.
    pub(crate) fn calm(&self, link: LinkId) {
        lock(&self.inner).streaking.remove(&link);
    }

    /// `link` no longer floods (it caught up) or has ended: its turn, or its place in the
    /// queue, goes to the next link.
    pub(crate) fn leave(&self, link: LinkId) {
        let mut queue = lock(&self.inner);
        queue.working.retain(|l| *l != link);
        queue.waiting.remove(&link);
        queue.hand_out();
    }

    /// How many links have a turn and how many wait, for tests.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (usize, usize) {
        let queue = lock(&self.inner);
        (queue.working.len(), queue.waiting.len())
    }
}

impl Queue {
    /// Gives the free turns to the links at the front of the queue.
    fn hand_out(&mut self) {
        while self.working.len() < self.turns {
            let Some(link) = self.order.pop_front() else {
                break;
            };
            // Passed over when it left while waiting.
            if let Some(waker) = self.waiting.remove(&link) {
                self.working.push(link);
                defer_wake(&waker);
            }
        }
        // Links that left while waiting are dropped from the order once they outnumber those
        // still waiting, so that the order never grows beyond twice the links waiting.
        if self.order.len() > 2 * self.waiting.len() + 16 {
            let waiting = &self.waiting;
            self.order.retain(|link| waiting.contains_key(link));
        }
    }
}

/// Wakes `waker` once the runtime has run the tasks already in its queue and polled its I/O
/// and timer drivers (the deferral of tokio's `yield_now`); at once outside a runtime.
pub(crate) fn defer_wake(waker: &Waker) {
    let mut cx = Context::from_waker(waker);
    let mut yielding = std::pin::pin!(tokio::task::yield_now());
    let _ = yielding.as_mut().poll(&mut cx);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counted() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    fn link(n: u64) -> LinkId {
        n
    }

    #[test]
    fn a_link_that_streaks_alone_is_let_be_and_with_others_takes_turns() {
        let turns = FloodTurns::new(1);
        assert!(!turns.streaking(link(1)), "alone");
        assert!(!turns.streaking(link(1)), "still alone");
        assert!(turns.streaking(link(2)), "another streaks too");
        assert!(turns.streaking(link(1)));
        turns.calm(link(2));
        assert!(!turns.streaking(link(1)), "alone again");
        let (_, waker) = counted();
        turns.wait_for_turn(link(3), &waker);
        assert!(turns.streaking(link(1)), "another link has a turn");
        turns.leave(link(3));
        assert!(!turns.streaking(link(1)));
    }

    #[test]
    fn one_turn_goes_round_the_flooding_links_in_order() {
        // Outside a runtime the deferred wake is an immediate one, which the counts see.
        let turns = FloodTurns::new(1);
        let (a_count, a) = counted();
        let (b_count, b) = counted();
        let (c_count, c) = counted();
        turns.wait_for_turn(link(1), &a);
        assert_eq!(
            woken(&a_count),
            1,
            "alone, a link has its turn again at once"
        );
        assert!(turns.has_turn(link(1), &a));
        turns.wait_for_turn(link(2), &b);
        turns.wait_for_turn(link(3), &c);
        assert_eq!((woken(&b_count), woken(&c_count)), (0, 0));
        assert!(!turns.has_turn(link(2), &b));
        assert!(!turns.has_turn(link(3), &c));
        assert_eq!(turns.counts(), (1, 2));
        // Link 1 used its allowance again: link 2's turn, then link 3's, then link 1's.
        turns.wait_for_turn(link(1), &a);
        assert_eq!(woken(&b_count), 1);
        assert!(turns.has_turn(link(2), &b));
        assert!(!turns.has_turn(link(1), &a));
        turns.wait_for_turn(link(2), &b);
        assert_eq!(woken(&c_count), 1);
        assert!(turns.has_turn(link(3), &c));
        turns.wait_for_turn(link(3), &c);
        assert_eq!(woken(&a_count), 2);
        assert!(turns.has_turn(link(1), &a));
        assert_eq!(turns.counts(), (1, 2));
    }

    #[test]
    fn a_link_that_leaves_hands_its_turn_on_and_is_passed_over_while_waiting() {
        let turns = FloodTurns::new(1);
        let (_, a) = counted();
        let (b_count, b) = counted();
        let (c_count, c) = counted();
        turns.wait_for_turn(link(1), &a);
        turns.wait_for_turn(link(2), &b);
        turns.wait_for_turn(link(3), &c);
        // Link 2 ends while it waits; link 1 catches up: link 3 is next.
        turns.leave(link(2));
        assert!(
            turns.has_turn(link(2), &b),
            "a link that left is not held back"
        );
        turns.leave(link(1));
        assert_eq!((woken(&b_count), woken(&c_count)), (0, 1));
        assert!(turns.has_turn(link(3), &c));
        turns.leave(link(3));
        assert_eq!(turns.counts(), (0, 0));
    }

    #[test]
    fn as_many_links_work_at_once_as_there_are_turns() {
        let turns = FloodTurns::new(2);
        let counts: Vec<_> = (0..4).map(|_| counted()).collect();
        for (n, (_, waker)) in counts.iter().enumerate() {
            turns.wait_for_turn(link(n as u64), waker);
        }
        let working: Vec<bool> = counts
            .iter()
            .enumerate()
            .map(|(n, (_, waker))| turns.has_turn(link(n as u64), waker))
            .collect();
        assert_eq!(working, [true, true, false, false]);
        assert_eq!(turns.counts(), (2, 2));
    }

    #[test]
    fn the_order_stays_bounded_when_waiting_links_keep_leaving() {
        let turns = FloodTurns::new(1);
        let (_, a) = counted();
        turns.wait_for_turn(link(0), &a);
        for n in 1..10_000 {
            turns.wait_for_turn(link(n), &a);
            turns.leave(link(n));
        }
        let queue = lock(&turns.inner);
        assert!(queue.order.len() <= 2 * queue.waiting.len() + 17);
    }
}
