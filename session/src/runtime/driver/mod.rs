//! The driver of one link: the only task that reads and writes the link. Each turn it hands the
//! frames that arrived to the engine and runs the deadlines that passed, under the device's
//! lock; takes the link's events and the frames to send; then, with the lock let go, wakes the
//! calls that waited, runs the apps' code for the events in order, and sends.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use acm_engine::device::{DeviceEvent, LinkId, RoutedRequest};
use acm_engine::{Closer, ConnectOutcome};
use acm_transport::{CloseReason, FrameBuf, Link, TransportError};
use acm_wire::pb;
use tracing::Instrument;

mod events;

use super::app::token_to_string;
use super::state::{Shared, State, now, wake_all};
use crate::events::{Event, Held, Listeners, StreamRoom};
use crate::types::{
    CollaborateEventInfo, CollaborateEventType, CollaborateHandler, CollaborateRequest,
    CollaborateResult, ConnectOptions, DisconnectReason, PeerInfo,
};

/// The most frames the driver receives before the engine takes them.
const READ_BATCH: usize = 32;
/// The most frames the driver takes from the engine ahead of the link.
const OUTBOX: usize = 16;
/// The most bytes the driver takes from the engine ahead of the link (one frame more when it
/// is larger). The engine counts a frame as sent when the driver takes it (`LINK-13`'s clock:
/// a peer that takes nothing for three keepalive intervals is closed), and what the driver
/// took is sent in one call once the link is full: on a slow link (Bluetooth LE carries some
/// tens of KiB a second) sixteen frames of 64 KiB would take longer than that, so that a peer
/// reading slowly but steadily would be closed as one that reads nothing.
const OUTBOX_BYTES: usize = 64 * 1024;
/// The turns a driver takes in one poll before it lets other tasks run.
const TURNS: usize = 32;
/// The bytes a driver receives in one poll before it lets other tasks run: a link that floods
/// the device (with data a secure link must decrypt as it is received) holds up the device's
/// other links for no longer than this takes. Each frame counts as [`FRAME_CHARGE`] bytes at
/// least, as small frames cost more than their bytes (a record opened, a turn of the engine,
/// often an answer to send): 64 frames at most a poll, a few hundred microseconds of work,
/// which a quiet link's every round trip may wait behind while links flood.
///
/// A driver that used its whole allowance ([`TURNS`] or these bytes) with work left floods the
/// device: it works again only in its turn ([`Shared::flood_turns`]). The runtime's queue then
/// holds as many flooding drivers as the runtime has workers, however many links flood, and
/// the other links' tasks (a dialer's handshake, a request, the apps) wait behind one
/// allowance, not behind one allowance per flooding link.
const POLL_BYTES: usize = 512 * 1024;
/// The least a received frame counts for in [`POLL_BYTES`].
const FRAME_CHARGE: usize = 8192;
/// The answers to the peer's frames (PONG, CONNECT_RESPONSE, DISCONNECT for a session error)
/// that may wait to be sent before the driver stops reading the link: a peer that sends frames
/// calling for answers and reads none of them is then held back by the transport's flow
/// control, and the engine closes the link once it has taken nothing for three keepalive
/// intervals (SPEC `LINK-13`). Well below the engine's own bound
/// ([`acm_engine::EngineConfig::max_queued_answers`]), which a batch of [`READ_BATCH`] frames
/// cannot reach from here.
const MAX_QUEUED_ANSWERS: usize = 256;

/// A receive or a send on the link, in progress.
type LinkIo<T> = Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send>>;
/// A wait for room in a full event stream.
type Room = Pin<Box<dyn Future<Output = Option<StreamRoom>> + Send>>;
/// The transport's close of the link.
type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Starts the driver of `link`, which the device's engine knows as `id`.
pub(super) fn spawn(shared: Arc<Shared>, id: LinkId, link: Arc<dyn Link>, span: tracing::Span) {
    tokio::spawn(Driver::new(shared, id, link).instrument(span));
}

impl Driver {
    /// The driver of `link`, which the device's engine knows as `id`; it runs once polled.
    pub(super) fn new(shared: Arc<Shared>, id: LinkId, link: Arc<dyn Link>) -> Self {
        Self {
            receiving: Some(receive(&link)),
            shared,
            id,
            link,
            received: Vec::new(),
            received_bytes: 0,
            lost: None,
            sending: None,
            outbox: VecDeque::new(),
            timer: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            timer_at: None,
            fired: false,
            held: VecDeque::new(),
            room: None,
            close_reason: CloseReason::normal(),
            closing: None,
            flush_by: None,
            answers_waiting: false,
            abandon: false,
            work: Vec::new(),
            spare: Vec::new(),
            flooding: false,
            streak: 0,
        }
    }
}

/// App code to run for an event, with the lock let go.
enum Work {
    /// An event for a session's listeners.
    Deliver(Arc<Listeners>, Event),
    /// A request for an ability's `onCollaborate` handler.
    Request {
        handler: CollaborateHandler,
        token: acm_engine::Token,
        bundle: String,
        request: CollaborateRequest,
    },
}

pub(super) struct Driver {
    shared: Arc<Shared>,
    id: LinkId,
    link: Arc<dyn Link>,
    /// The receive of the next frame; `None` once the link has failed.
    receiving: Option<LinkIo<FrameBuf>>,
    /// Frames received, for the engine at the next turn.
    received: Vec<FrameBuf>,
    /// The bytes received in this poll (see [`POLL_BYTES`]).
    received_bytes: usize,
    /// How the link failed, for the engine at the next turn.
    lost: Option<String>,
    /// The send under way: at most one, so that frames keep their order.
    sending: Option<LinkIo<()>>,
    /// Frames taken from the engine, to send after `sending`.
    outbox: VecDeque<FrameBuf>,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The deadline the timer is set for, if it is set.
    timer_at: Option<Instant>,
    /// Whether the timer went off, for the engine at the next turn.
    fired: bool,
    /// Events waiting for room in a full stream, in order. While any waits, the driver reads
    /// nothing from the link (the peer's sends wait: backpressure, not loss).
    held: VecDeque<Held>,
    /// The wait for room for the first held event.
    room: Option<Room>,
    /// What the transport's close tells the peer.
    close_reason: CloseReason,
    closing: Option<Closing>,
    /// Once the link has ended with frames still waiting to be sent: when they are given up
    /// unless the link takes one before (see [`Driver::flush_or_give_up`]).
    flush_by: Option<Instant>,
    /// Whether [`MAX_QUEUED_ANSWERS`] answers wait to be sent: the driver reads nothing until
    /// fewer do.
    answers_waiting: bool,
    /// Set once the engine closed the link because the peer does not read (SPEC `LINK-13`):
    /// what waits to be sent is dropped and the link closed at once.
    abandon: bool,
    /// App code to run this turn, and an empty list to swap in (their room is kept).
    work: Vec<Work>,
    spare: Vec<Work>,
    /// Whether the link floods the device: from a poll that used its whole allowance until one
    /// that does not. It then works only in its turns (see [`POLL_BYTES`]).
    flooding: bool,
    /// The bytes received (as [`POLL_BYTES`] counts them) in the polls that caught up with the
    /// link since the last that received nothing: a link whose peer sends without pause, though
    /// never a whole allowance between two polls, floods the device all the same once this
    /// reaches [`POLL_BYTES`] while another link does too (`FloodTurns::streaking`).
    streak: usize,
}

/// What a turn under the lock found.
struct Turn {
    /// Whether it did anything: another turn may find more.
    busy: bool,
    /// Calls to wake.
    wakers: Vec<Waker>,
    /// When the engine must hear the time again.
    deadline: Option<Instant>,
    /// Whether the link has ended and every frame has been taken out.
    finished: bool,
    /// Whether the link has ended, whether or not frames wait to be taken out.
    closed: bool,
    /// The keepalive interval this device announces.
    keepalive: Duration,
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Woken by its turn, or by anything else: a flooding link waits for its turn all the same.
        if this.flooding && !this.shared.flood_turns.has_turn(this.id.get(), cx.waker()) {
            return Poll::Pending;
        }
        this.received_bytes = 0;
        for _ in 0..TURNS {
            if let Some(closing) = &mut this.closing {
                if closing.as_mut().poll(cx).is_pending() {
                    this.caught_up();
                    return Poll::Pending;
                }
                this.remove();
                return Poll::Ready(());
            }
            let mut busy = this.poll_room(cx);
            busy |= this.poll_receive(cx);
            let mut sent = this.poll_send(cx);
            let turn = this.turn(cx);
            busy |= turn.busy;
            wake_all(turn.wakers);
            busy |= this.run_app_code();
            sent |= this.poll_send(cx);
            busy |= sent;
            let mut deadline = turn.deadline;
            if turn.closed && !this.abandon {
                deadline = this.flush_or_give_up(sent, turn.keepalive).or(deadline);
                // Given up: the engine's last frames are taken out, and dropped, next turn.
                busy |= this.abandon;
            }
            busy |= this.arm(deadline, cx);
            if turn.finished && this.abandon {
                // The peer does not read: what it would not take is dropped, with the send
                // under way, and the transport's close bounds the time spent on the rest.
                this.outbox.clear();
                this.sending = None;
            }
            if turn.finished && this.outbox.is_empty() && this.sending.is_none() {
                // The receive is let go first: a transport reads on after its close to
                // discard what the peer still sends (TCP does, so that a peer whose sends
                // wait sees the end at once), which a receive it holds would stop.
                this.receiving = None;
                let (link, reason) = (this.link.clone(), this.close_reason.clone());
                this.closing = Some(Box::pin(async move { link.close(reason).await }));
                continue;
            }
            if !busy {
                // Every source is waiting with this task's waker: the link's receive and send,
                // the timer, room in a stream, and the calls (the waker is in the state). The
                // link has caught up with its peer for now. A poll that received nothing ends
                // its flood. But a link whose peer sends without pause, though never a whole
                // allowance between two polls, floods the device all the same once it has
                // received an allowance's worth: while other links do too, or take turns, it
                // works again only in its turn; alone, it goes on as it likes.
                let received = this.received_bytes;
                if received == 0 {
                    this.calm();
                    this.caught_up();
                    return Poll::Pending;
                }
                this.streak = this.streak.saturating_add(received);
                if this.streak < POLL_BYTES || !this.shared.flood_turns.streaking(this.id.get()) {
                    this.caught_up();
                    return Poll::Pending;
                }
                break;
            }
            if this.received_bytes >= POLL_BYTES {
                break;
            }
        }
        // Let the other tasks run, and the next flooding link; this one goes on in its turn.
        this.flooding = true;
        this.shared
            .flood_turns
            .wait_for_turn(this.id.get(), cx.waker());
        Poll::Pending
    }
}

impl Drop for Driver {
    /// A driver that ends, or is dropped with its runtime, hands its turn on.
    fn drop(&mut self) {
        self.calm();
        self.caught_up();
    }
}

impl Driver {
    /// The link's streak is over (see [`Driver::streak`]).
    fn calm(&mut self) {
        if std::mem::take(&mut self.streak) >= POLL_BYTES {
            self.shared.flood_turns.calm(self.id.get());
        }
    }

    /// The link no longer floods: its turn goes to the next flooding link.
    fn caught_up(&mut self) {
        if std::mem::take(&mut self.flooding) {
            self.shared.flood_turns.leave(self.id.get());
        }
    }

    /// Bounds the wait for a link that has ended with frames still waiting to be sent (a
    /// DISCONNECT, the LINK_CLOSE, what the apps sent before): as long as the link takes one
    /// frame a keepalive interval they go out, but a peer that takes none for that long has
    /// them given up, as `LINK-13` gives up on a link that is still up, so that the close
    /// (`LINK-7`) never waits for such a peer without end. `sent` says whether the link took a
    /// frame this turn. Returns when to look again.
    fn flush_or_give_up(&mut self, sent: bool, keepalive: Duration) -> Option<Instant> {
        if self.outbox.is_empty() && self.sending.is_none() {
            self.flush_by = None;
            return None;
        }
        let now = now();
        match self.flush_by {
            Some(by) if !sent && now >= by => {
                tracing::debug!(
                    waiting = self.outbox.len() + usize::from(self.sending.is_some()),
                    "the peer took nothing for a keepalive interval after the link ended: what waited is given up"
                );
                self.abandon = true;
                self.flush_by = None;
                self.outbox.clear();
                self.sending = None;
                None
            }
            Some(by) if !sent => Some(by),
            _ => {
                let by = now + keepalive;
                self.flush_by = Some(by);
                Some(by)
            }
        }
    }

    /// Receives the frames that have arrived, unless the apps' streams are full.
    fn poll_receive(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.held.is_empty() || self.answers_waiting {
            return false;
        }
        let mut got = false;
        while self.received.len() < READ_BATCH && self.received_bytes < POLL_BYTES {
            let Some(io) = &mut self.receiving else {
                break;
            };
            match io.as_mut().poll(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(frame)) => {
                    self.received_bytes = self
                        .received_bytes
                        .saturating_add(frame.len().max(FRAME_CHARGE));
                    self.received.push(frame);
                    self.receiving = Some(receive(&self.link));
                    got = true;
                }
                Poll::Ready(Err(err)) => {
                    self.receiving = None;
                    self.lost.get_or_insert_with(|| err.to_string());
                    got = true;
                }
            }
        }
        got
    }

    /// Finishes the send under way and sends the frames taken out, in order, until the link
    /// takes no more for now.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> bool {
        let mut sent = false;
        loop {
            if let Some(io) = &mut self.sending {
                match io.as_mut().poll(cx) {
                    Poll::Pending => return sent,
                    Poll::Ready(result) => {
                        self.sending = None;
                        sent = true;
                        if let Err(err) = result {
                            self.send_failed(&err);
                            return true;
                        }
                    }
                }
            }
            let Some(frame) = self.outbox.pop_front() else {
                return sent;
            };
            match self.link.try_send_buf(frame) {
                Ok(None) => sent = true,
                Ok(Some(frame)) => {
                    // The link has no room now: this frame and those taken out behind it go
                    // together, in one call that a transport may write at once.
                    let mut frames = Vec::with_capacity(1 + self.outbox.len());
                    frames.push(frame);
                    frames.extend(self.outbox.drain(..));
                    let link = self.link.clone();
                    self.sending = Some(Box::pin(async move { link.send_bufs(frames).await }));
                }
                Err(err) => {
                    self.send_failed(&err);
                    return true;
                }
            }
        }
    }

    fn send_failed(&mut self, err: &TransportError) {
        tracing::debug!(%err, "link send failed");
        self.outbox.clear();
        self.lost
            .get_or_insert_with(|| format!("sending failed: {err}"));
    }

    /// Sets the timer for `deadline` and polls it. A timer already set no later is left as it
    /// is: deadlines move later with nearly every frame (keepalives), and a timer that goes off
    /// early costs a turn that finds nothing due, where moving it costs every turn.
    fn arm(&mut self, deadline: Option<Instant>, cx: &mut Context<'_>) -> bool {
        match (deadline, self.timer_at) {
            (None, _) => self.timer_at = None,
            (Some(due), Some(set)) if set <= due => {}
            (Some(due), _) => {
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::from_std(due));
                self.timer_at = Some(due);
            }
        }
        if self.timer_at.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            self.timer_at = None;
            self.fired = true;
            return true;
        }
        false
    }

    /// Hands the events held back by full streams to them as room appears, in order.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> bool {
        let mut delivered = false;
        while let Some((stream, event)) = self.held.front() {
            let room = self
                .room
                .get_or_insert_with(|| Box::pin(stream.room_for(event)));
            let Poll::Ready(room) = room.as_mut().poll(cx) else {
                return delivered;
            };
            self.room = None;
            // A stream whose reader is gone drops the event with it.
            if let Some((_, event)) = self.held.pop_front()
                && let Some(room) = room
            {
                room.send(event);
            }
            delivered = true;
        }
        delivered
    }

    /// One turn under the device's lock: the frames received, the link's failure and the
    /// deadlines go to the engine; the link's events and frames come out.
    fn turn(&mut self, cx: &mut Context<'_>) -> Turn {
        let shared = self.shared.clone();
        let mut state = shared.lock();
        let now = now();
        let id = self.id;
        if let Some(entry) = state.links.get_mut(&id) {
            entry.in_app_code = false;
            if !entry
                .driver
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                entry.driver = Some(cx.waker().clone());
            }
        }
        let mut busy = !self.received.is_empty();
        for frame in self.received.drain(..) {
            state.engine.handle_message(id, now, frame);
        }
        if let Some(detail) = self.lost.take() {
            state.engine.handle_link_lost(id, now, detail);
            busy = true;
        }
        if std::mem::take(&mut self.fired) {
            state.engine.handle_timeout(id, now);
            busy = true;
        }
        let mut wakers = Vec::new();
        let mut changed = false;
        loop {
            while let Some(event) = state.engine.poll_event(id) {
                changed |= self.on_event(&mut state, event, &mut wakers, now);
            }
            let mut ahead: usize = self.outbox.iter().map(FrameBuf::len).sum();
            while self.sending.is_none() && self.outbox.len() < OUTBOX && ahead < OUTBOX_BYTES {
                let Some(frame) = state.engine.poll_transmit(id, now) else {
                    break;
                };
                ahead += frame.len();
                self.outbox.push_back(frame);
                changed = true;
            }
            if !state.engine.has_events(id) {
                break;
            }
        }
        self.answers_waiting = state.engine.queued_answers(id) >= MAX_QUEUED_ANSWERS;
        if let Some(entry) = state.links.get_mut(&id) {
            if changed {
                wakers.append(&mut entry.waiters);
            }
            // The app code of this turn runs next, and another turn after it.
            entry.in_app_code = !self.work.is_empty();
        }
        Turn {
            busy: busy || changed || !self.work.is_empty(),
            wakers,
            deadline: state.engine.poll_timeout(id),
            finished: state.engine.is_finished(id),
            closed: state.engine.is_closed(id),
            keepalive: Duration::from_millis(state.engine.config().keepalive_ms().into()),
        }
    }

    /// The link has closed: the device forgets it, and the calls that waited on it look again.
    fn remove(&mut self) {
        let waiters = {
            let mut state = self.shared.lock();
            state.engine.remove_link(self.id, now());
            state
                .links
                .remove(&self.id)
                .map(|entry| entry.waiters)
                .unwrap_or_default()
        };
        wake_all(waiters);
    }
}

/// A receive of the next frame on `link` that owns what it needs.
fn receive(link: &Arc<dyn Link>) -> LinkIo<FrameBuf> {
    let link = link.clone();
    Box::pin(async move { link.recv_buf().await })
}
