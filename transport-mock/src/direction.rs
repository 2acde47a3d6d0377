//! One direction of a link: the frames in flight from one device to the other, the faults that
//! act on them, and the counters.

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::time::Duration;

use acm_transport::FrameBuf;
use tokio::time::Instant;

use crate::fault::{Fault, Mangler};
use crate::rng::SplitMix64;

/// Counters for one direction of a link, from [`LinkHandle::stats`](crate::LinkHandle::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionStats {
    /// Frames the sender handed to the link.
    pub frames_sent: u64,
    /// Bytes the sender handed to the link, as sent (before any fault).
    pub bytes_sent: u64,
    /// Frames the receiver has taken from the link.
    pub frames_delivered: u64,
    /// Bytes the receiver has taken from the link, as delivered (after any fault).
    pub bytes_delivered: u64,
    /// Frames that vanished through a fault ([`Fault::DropFrames`] or [`Fault::DropBytes`]).
    pub frames_dropped: u64,
    /// Frames discarded in flight because the link ended without them being delivered.
    pub frames_discarded: u64,
    /// Frames in flight now: sent, not dropped, not yet delivered.
    pub frames_in_flight: usize,
    /// Bytes in flight now; the sender waits while these would pass the link's buffer size.
    pub bytes_in_flight: usize,
}

/// A frame on its way.
#[derive(Debug)]
struct InFlight {
    frame: FrameBuf,
    due: Due,
}

/// When a frame in flight can be delivered, once the ones before it are.
#[derive(Debug, Clone, Copy)]
enum Due {
    /// At once: the direction has neither latency nor a bandwidth cap (no clock is read).
    Now,
    At(Instant),
    /// Sent into a stalled direction; it has not yet started to cross.
    Held,
}

/// What the receiving end can do next.
#[derive(Debug)]
pub(crate) enum Next {
    /// Take this frame.
    Frame(FrameBuf),
    /// The next frame arrives at this instant.
    At(Instant),
    /// Frames are held by a stall.
    Stalled,
    /// Nothing is in flight.
    Empty,
}

/// One direction of a link.
#[derive(Debug)]
pub(crate) struct Direction {
    queue: VecDeque<InFlight>,
    /// Bytes in `queue`.
    queued_bytes: usize,
    /// The most bytes in flight before the sender waits.
    buffer: usize,
    max_frame_size: usize,
    stalled: bool,
    latency: Duration,
    bandwidth: Option<NonZeroU64>,
    /// When the last frame finished crossing (for the bandwidth cap).
    last_finish: Option<Instant>,
    /// When the last frame can be delivered (to keep the order).
    last_ready: Option<Instant>,
    mangler: Mangler,
    rng: SplitMix64,
    stats: DirectionStats,
}

impl Direction {
    /// An empty, healthy direction.
    pub(crate) fn new(max_frame_size: usize, buffer: usize, rng: SplitMix64) -> Self {
        Self {
            queue: VecDeque::new(),
            queued_bytes: 0,
            buffer,
            max_frame_size,
            stalled: false,
            latency: Duration::ZERO,
            bandwidth: None,
            last_finish: None,
            last_ready: None,
            mangler: Mangler::default(),
            rng,
            stats: DirectionStats::default(),
        }
    }

    /// The largest frame the sender may send.
    pub(crate) fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// Whether a frame of `len` bytes fits now. An empty direction takes any frame, so that a
    /// frame larger than the buffer can still be sent.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        self.queue.is_empty() || self.queued_bytes.saturating_add(len) <= self.buffer
    }

    /// Takes a frame from the sender: applies the pending faults and puts what is left in
    /// flight. A frame in two parts stays in two parts unless a fault changes its bytes.
    pub(crate) fn push(&mut self, frame: FrameBuf, now: impl FnOnce() -> Instant) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(frame.len() as u64);
        let frame = if self.mangler.is_idle() {
            frame
        } else {
            let Some(frame) = self.mangler.apply(frame.into_bytes(), &mut self.rng) else {
                self.stats.frames_dropped += 1;
                return;
            };
            frame.into()
        };
        let due = if self.stalled {
            Due::Held
        } else {
            self.due(frame.len(), now)
        };
        self.queued_bytes += frame.len();
        self.queue.push_back(InFlight { frame, due });
    }

    /// When a frame of `len` bytes that starts to cross now can be delivered. Frames leave in
    /// order, so one that is due at once still waits for those before it.
    fn due(&mut self, len: usize, now: impl FnOnce() -> Instant) -> Due {
        if self.latency.is_zero() && self.bandwidth.is_none() {
            Due::Now
        } else {
            Due::At(self.schedule(len, now()))
        }
    }

    /// When a frame of `len` bytes that starts to cross at `now` can be delivered.
    fn schedule(&mut self, len: usize, now: Instant) -> Instant {
        let start = self.last_finish.map_or(now, |last| last.max(now));
        let finish = later(start, self.crossing_time(len));
        self.last_finish = Some(finish);
        let ready = later(finish, self.latency);
        let ready = self.last_ready.map_or(ready, |last| last.max(ready));
        self.last_ready = Some(ready);
        ready
    }

    /// How long `len` bytes take to cross under the bandwidth cap.
    fn crossing_time(&self, len: usize) -> Duration {
        let Some(bandwidth) = self.bandwidth else {
            return Duration::ZERO;
        };
        let bandwidth = u128::from(bandwidth.get());
        let nanos = (len as u128 * 1_000_000_000).div_ceil(bandwidth);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// What the receiver can do now; takes the frame off the link if one is ready. `now` is
    /// read only when the next frame is due at some instant.
    pub(crate) fn next(&mut self, now: impl FnOnce() -> Instant) -> Next {
        let Some(due) = self.queue.front().map(|head| head.due) else {
            return Next::Empty;
        };
        match due {
            _ if self.stalled => Next::Stalled,
            Due::At(at) if at > now() => Next::At(at),
            _ => match self.queue.pop_front() {
                Some(InFlight { frame, .. }) => {
                    self.queued_bytes = self.queued_bytes.saturating_sub(frame.len());
                    self.stats.frames_delivered += 1;
                    self.stats.bytes_delivered = self
                        .stats
                        .bytes_delivered
                        .saturating_add(frame.len() as u64);
                    Next::Frame(frame)
                }
                None => Next::Empty,
            },
        }
    }

    /// Discards every frame in flight.
    pub(crate) fn discard(&mut self) {
        self.stats.frames_discarded += self.queue.len() as u64;
        self.queue.clear();
        self.queued_bytes = 0;
    }

    /// Applies `fault`, injected at `now`.
    pub(crate) fn inject(&mut self, fault: Fault, now: Instant) {
        if self.mangler.add(&fault) {
            return;
        }
        match fault {
            Fault::Stall => self.stalled = true,
            Fault::Unstall => self.unstall(now),
            Fault::Latency(latency) => self.latency = latency,
            Fault::Bandwidth(bandwidth) => self.bandwidth = bandwidth,
            Fault::MaxFrameSize(max) => self.max_frame_size = max,
            Fault::Heal => {
                self.mangler = Mangler::default();
                self.latency = Duration::ZERO;
                self.bandwidth = None;
                self.unstall(now);
            }
            // Counted faults went to the mangler above.
            _ => {}
        }
    }

    /// Lets held frames flow: those that never started to cross start now.
    fn unstall(&mut self, now: Instant) {
        self.stalled = false;
        let mut queue = std::mem::take(&mut self.queue);
        for held in queue.iter_mut().filter(|f| matches!(f.due, Due::Held)) {
            held.due = self.due(held.frame.len(), || now);
        }
        self.queue = queue;
    }

    /// The counters, with what is in flight now.
    pub(crate) fn stats(&self) -> DirectionStats {
        DirectionStats {
            frames_in_flight: self.queue.len(),
            bytes_in_flight: self.queued_bytes,
            ..self.stats
        }
    }
}

/// `at + delay`, or as late as can be told if that overflows.
fn later(at: Instant, delay: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    at.checked_add(delay)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}
