//! The mock link: the two ends a transport hands out, and the state they share.

use std::fmt;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use acm_transport::{CloseReason, Closure, DeviceId, FrameBuf, Link, Role, TransportError};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use crate::direction::{Direction, Next};
use crate::rng::SplitMix64;

/// One side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The side that dialed.
    Dialer,
    /// The side that accepted.
    Acceptor,
}

impl Side {
    /// The index of this side's device, and of the direction it sends in.
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Dialer => 0,
            Self::Acceptor => 1,
        }
    }

    /// The other side.
    fn other(self) -> Self {
        match self {
            Self::Dialer => Self::Acceptor,
            Self::Acceptor => Self::Dialer,
        }
    }
}

/// How one device of a new link takes part in it.
#[derive(Debug, Clone)]
pub(crate) struct EndConfig {
    /// The device's id.
    pub(crate) device: DeviceId,
    /// The largest frame the device's transport carries.
    pub(crate) max_frame_size: usize,
    /// The most bytes in flight towards the device.
    pub(crate) receive_buffer: usize,
}

/// The mutable state of a link.
#[derive(Debug)]
pub(crate) struct LinkState {
    /// `directions[i]` carries the frames sent by side `i`.
    pub(crate) directions: [Direction; 2],
    /// How the link ended for each side; both are set together.
    pub(crate) closure: [Option<Closure>; 2],
    /// `arrived[i]`: the receivers of direction `i`, waiting for a frame to be put in flight
    /// there.
    arrived: [Waiters; 2],
    /// `room[i]`: the senders of direction `i`, waiting for a frame to leave it. Each end waits
    /// on only what concerns it, so one end's traffic never wakes the other end for nothing.
    room: [Waiters; 2],
}

/// The tasks waiting for one thing on a link. They register while holding the link's state, in
/// the same hold in which they found that they must wait, so no change made meanwhile is missed;
/// whoever makes the change takes them in its own hold and wakes them once it lets go.
#[derive(Debug, Default)]
struct Waiters {
    /// The first waiter: there is seldom more than one, and it costs no allocation.
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Waiters {
    /// Adds `waker`'s task, unless it waits already.
    fn register(&mut self, waker: &Waker) {
        match &mut self.first {
            Some(first) if first.will_wake(waker) => {}
            Some(_) => {
                if !self.more.iter().any(|w| w.will_wake(waker)) {
                    self.more.push(waker.clone());
                }
            }
            None => self.first = Some(waker.clone()),
        }
    }

    /// Takes every waiter, to wake once the state is let go of.
    fn take(&mut self) -> Woken {
        Woken {
            first: self.first.take(),
            more: std::mem::take(&mut self.more),
        }
    }
}

/// Waiters taken from a link's state, woken when this is dropped: after the state is let go of,
/// when it is dropped after the guard.
#[derive(Debug, Default)]
#[must_use = "the waiters are woken when this is dropped"]
struct Woken {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Woken {
    /// Adds `other`'s waiters to these.
    fn and(mut self, mut other: Woken) -> Self {
        self.more.extend(other.first.take());
        self.more.append(&mut other.more);
        self
    }
}

impl Drop for Woken {
    fn drop(&mut self) {
        if let Some(first) = self.first.take() {
            first.wake();
        }
        for waker in self.more.drain(..) {
            waker.wake();
        }
    }
}

/// What both ends of a link, and its handles, share.
#[derive(Debug)]
pub(crate) struct LinkShared {
    /// The link's creation index on its network.
    pub(crate) index: u64,
    /// The dialer's and the acceptor's device ids.
    pub(crate) devices: [DeviceId; 2],
    state: Mutex<LinkState>,
}

impl LinkShared {
    /// A new open link, the `index`th of a network seeded with `seed`.
    pub(crate) fn new(index: u64, seed: u64, dialer: EndConfig, acceptor: EndConfig) -> Self {
        let max = dialer.max_frame_size.min(acceptor.max_frame_size);
        let stream = index.wrapping_mul(2);
        let directions = [
            Direction::new(
                max,
                acceptor.receive_buffer,
                SplitMix64::stream(seed, stream),
            ),
            Direction::new(
                max,
                dialer.receive_buffer,
                SplitMix64::stream(seed, stream.wrapping_add(1)),
            ),
        ];
        Self {
            index,
            devices: [dialer.device, acceptor.device],
            state: Mutex::new(LinkState {
                directions,
                closure: [None, None],
                arrived: Default::default(),
                room: Default::default(),
            }),
        }
    }

    /// Locks the state; a panic elsewhere while it was held leaves it usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `change` on the state, then wakes every waiting end.
    pub(crate) fn change<T>(&self, change: impl FnOnce(&mut LinkState) -> T) -> T {
        let woken;
        let out = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let out = change(state);
            let [a, b] = &mut state.arrived;
            let [c, d] = &mut state.room;
            woken = a.take().and(b.take()).and(c.take()).and(d.take());
            out
        };
        drop(woken);
        out
    }

    /// The side of `device` on this link, if it is one of its two devices.
    pub(crate) fn side_of(&self, device: &DeviceId) -> Option<Side> {
        if self.devices[0] == *device {
            Some(Side::Dialer)
        } else if self.devices[1] == *device {
            Some(Side::Acceptor)
        } else {
            None
        }
    }

    /// Whether the link has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closure[0].is_some()
    }

    /// Ends the link with `closures` for the dialer and the acceptor, discarding the frames in
    /// flight towards the sides in `discard_towards`. Does nothing if it has already ended.
    fn end(&self, closures: [Closure; 2], discard_towards: &[Side]) {
        self.change(|state| {
            if state.closure[0].is_some() {
                return;
            }
            state.closure = closures.map(Some);
            for side in discard_towards {
                state.directions[side.other().index()].discard();
            }
        });
    }

    /// `side` closes the link gracefully: the other side gets what was sent to it, then sees
    /// [`Closure::Peer`].
    fn close_from(&self, side: Side, reason: CloseReason) {
        let mut closures = [Closure::Peer(reason.clone()), Closure::Peer(reason.clone())];
        closures[side.index()] = Closure::Local(reason);
        self.end(closures, &[side]);
    }

    /// Closes the link gracefully for both sides, as if each one's peer had closed it.
    pub(crate) fn close_both(&self, reason: CloseReason) {
        self.end([Closure::Peer(reason.clone()), Closure::Peer(reason)], &[]);
    }

    /// Ends the link abruptly: both sides see [`Closure::Lost`] and frames in flight vanish.
    pub(crate) fn lose(&self, what: &str) {
        let lost = Closure::Lost(what.to_owned());
        self.end([lost.clone(), lost], &[Side::Dialer, Side::Acceptor]);
    }
}

/// One end of a mock link, as handed out by [`MockTransport`](crate::MockTransport)'s `dial`
/// and `accept`.
///
/// How a link ends:
///
/// * [`Link::close`] ends it at once for both ends: this end sees [`Closure::Local`] and
///   drops the frames on their way to it; the peer's [`Link::closure`] says
///   [`Closure::Peer`] right away, its `send` fails, and its `recv` returns the frames sent
///   before the close (waiting for them if they are delayed or stalled) and then the closure.
/// * [`LinkHandle::close`](crate::LinkHandle::close) does the same for both ends, each seeing
///   [`Closure::Peer`].
/// * [`LinkHandle::lose`](crate::LinkHandle::lose), removing a device from the network, or
///   dropping an end that is still open (as a reset connection would) end it with
///   [`Closure::Lost`] on both ends and discard every frame in flight.
///
/// A link that has ended stays as it ended: closing or losing it again does nothing.
pub struct MockLink {
    shared: Arc<LinkShared>,
    side: Side,
}

impl MockLink {
    /// The end of `shared` on `side`.
    pub(crate) fn new(shared: Arc<LinkShared>, side: Side) -> Self {
        Self { shared, side }
    }
}

/// What [`MockLink::take_arrived`] found.
enum Arrival {
    Frame(FrameBuf),
    /// The next frame is due then.
    At(Instant),
    /// No frame is on its way, or the ones on their way are stalled.
    Nothing,
}

impl MockLink {
    /// Takes the next frame sent to this end if it has arrived; fails once the link has ended
    /// for this end and nothing sent before a graceful close is left. When it returns no frame,
    /// `waker` is woken at the next change (a frame sent, a fault, the link's end).
    fn take_arrived(&self, waker: &Waker) -> Result<Arrival, TransportError> {
        let direction = self.side.other().index();
        let woken;
        let arrival = {
            let mut state = self.shared.lock();
            let closure = &state.closure[self.side.index()];
            if let Some(closure @ (Closure::Local(_) | Closure::Lost(_))) = closure {
                return Err(TransportError::Closed(closure.clone()));
            }
            let arrival = match state.directions[direction].next(Instant::now) {
                Next::Frame(frame) => Arrival::Frame(frame),
                Next::At(at) => Arrival::At(at),
                Next::Stalled => Arrival::Nothing,
                Next::Empty => match &state.closure[self.side.index()] {
                    Some(closure) => return Err(TransportError::Closed(closure.clone())),
                    None => Arrival::Nothing,
                },
            };
            woken = match arrival {
                // Room for the sender.
                Arrival::Frame(_) => state.room[direction].take(),
                _ => {
                    state.arrived[direction].register(waker);
                    Woken::default()
                }
            };
            arrival
        };
        drop(woken);
        Ok(arrival)
    }

    /// Puts `frame` in flight if the link has room for it, and gives it back if not; then
    /// `waker`, if given, is woken at the next change (a frame delivered, a fault, the end).
    fn try_send_with(
        &self,
        frame: FrameBuf,
        waker: Option<&Waker>,
    ) -> Result<Option<FrameBuf>, TransportError> {
        if frame.is_empty() {
            return Err(TransportError::EmptyFrame);
        }
        let sending = self.side.index();
        let woken = {
            let mut state = self.shared.lock();
            if let Some(closure) = &state.closure[sending] {
                return Err(TransportError::Closed(closure.clone()));
            }
            let direction = &mut state.directions[sending];
            let max = direction.max_frame_size();
            if frame.len() > max {
                return Err(TransportError::FrameTooLarge {
                    len: frame.len(),
                    max,
                });
            }
            if !direction.has_room(frame.len()) {
                if let Some(waker) = waker {
                    state.room[sending].register(waker);
                }
                return Ok(Some(frame));
            }
            direction.push(frame, Instant::now);
            state.arrived[sending].take()
        };
        drop(woken);
        Ok(None)
    }
}

impl fmt::Debug for MockLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockLink")
            .field("index", &self.shared.index)
            .field("local", self.local_device())
            .field("peer", self.peer_device())
            .field("role", &self.role())
            .finish()
    }
}

impl Drop for MockLink {
    fn drop(&mut self) {
        self.shared.lose("the peer dropped its end of the link");
    }
}

#[async_trait]
impl Link for MockLink {
    fn local_device(&self) -> &DeviceId {
        &self.shared.devices[self.side.index()]
    }

    fn peer_device(&self) -> &DeviceId {
        &self.shared.devices[self.side.other().index()]
    }

    fn role(&self) -> Role {
        match self.side {
            Side::Dialer => Role::Dialer,
            Side::Acceptor => Role::Acceptor,
        }
    }

    fn max_frame_size(&self) -> usize {
        self.shared.lock().directions[self.side.index()].max_frame_size()
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        self.send_buf(frame.into()).await
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        self.recv_buf().await.map(FrameBuf::into_bytes)
    }

    /// Carries the two parts as they are, without joining them: the receiver's
    /// [`Link::recv_buf`] gets them so.
    async fn send_buf(&self, frame: FrameBuf) -> Result<(), TransportError> {
        let mut frame = Some(frame);
        poll_fn(|cx| match frame.take() {
            Some(next) => match self.try_send_with(next, Some(cx.waker()))? {
                None => Poll::Ready(Ok(())),
                Some(back) => {
                    frame = Some(back);
                    Poll::Pending
                }
            },
            None => Poll::Ready(Ok(())),
        })
        .await
    }

    fn try_send_buf(&self, frame: FrameBuf) -> Result<Option<FrameBuf>, TransportError> {
        self.try_send_with(frame, None)
    }

    async fn recv_buf(&self) -> Result<FrameBuf, TransportError> {
        // Made only when a latency or bandwidth fault delays a frame.
        let mut due: Option<Pin<Box<Sleep>>> = None;
        poll_fn(|cx| {
            loop {
                match self.take_arrived(cx.waker())? {
                    Arrival::Frame(frame) => return Poll::Ready(Ok(frame)),
                    Arrival::Nothing => return Poll::Pending,
                    Arrival::At(at) => {
                        let sleep =
                            due.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                        if sleep.deadline() != at {
                            sleep.as_mut().reset(at);
                        }
                        if sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        // Due: look again.
                    }
                }
            }
        })
        .await
    }

    async fn close(&self, reason: CloseReason) {
        self.shared.close_from(self.side, reason);
    }

    fn closure(&self) -> Option<Closure> {
        self.shared.lock().closure[self.side.index()].clone()
    }
}
