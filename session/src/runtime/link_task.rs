//! The task that runs one link: a driver that owns the [`LinkEngine`], receives and sends the
//! link's frames itself, wakes the engine on time, and turns its events into the apps' events.
//! Doing the link's I/O in the same task, rather than in a reader and a writer of their own,
//! spares every frame two task wake-ups. A caller whose command has nothing queued before it
//! runs it at once in its own task ([`LinkHandle::call`]) and hands the frames it queued to the
//! link itself, which spares it the two wake-ups of a trip through the driver task. A caller
//! that waits for the answer to its connect reads the link itself meanwhile
//! ([`super::receive`]), which spares the answer the same trip.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use acm_transport::{CloseReason, DeviceId, FrameBuf, Link, Role, TransportError};
use acm_wire::pb;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant as TokioInstant;
use tracing::Instrument;

use crate::HashMap;
use crate::api::events::{Event, Held, StreamRoom, lock};
use crate::api::session::{SessionShared, SessionState};
use crate::api::types::{CollaborateEventInfo, CollaborateEventType, DisconnectReason};
use crate::engine::{
    Closer, ConnectOutcome, EngineConfig, EngineError, EngineEvent, LinkEngine, Token,
};

use super::device::DeviceInner;
use super::progress::{FragmentInfo, TransferProgress, fragment_info};
use super::receive::{Answer, ReceiveRoute};

/// Calls waiting for the driver.
const COMMAND_QUEUE: usize = 64;
/// Control frames the engine may hold before the driver stops taking calls (backpressure).
const MAX_QUEUED_CONTROL: usize = 256;
/// The most frames a caller that waits for an answer reads for the link in one go.
const READ_AT_ONCE: usize = 16;

/// How long a link that lost the LINK-8 preference may stay open without sessions.
const RETIRE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

static NEXT_LINK_ID: AtomicU64 = AtomicU64::new(1);

/// A call for the driver of one link.
pub(crate) enum LinkCommand {
    Connect {
        token: Token,
        session: Arc<SessionShared>,
        reply: oneshot::Sender<Result<ConnectOutcome, EngineError>>,
    },
    Accept {
        channel: u32,
        reply: AcceptReply,
    },
    Reject {
        channel: u32,
        code: pb::ConnectErrorCode,
        reason: String,
    },
    Message {
        channel: u32,
        text: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Data {
        channel: u32,
        data: Bytes,
        /// `Ok(true)` once sent whole, `Ok(false)` if the session or link ended first.
        reply: oneshot::Sender<Result<bool, EngineError>>,
        /// Where to count the bytes handed to the link, if the caller wants to know.
        progress: Option<watch::Sender<u64>>,
    },
    CollaborateEvent {
        channel: u32,
        event_type: pb::CollaborateEventType,
        message: String,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Disconnect {
        channel: u32,
        reason: pb::DisconnectReason,
    },
    Close,
    /// Another link to the same device is preferred (SPEC `LINK-8`): close this one once it
    /// carries no session.
    Retire,
}

/// Where the outcome of an `accept_connect` goes. The session is connecting until then; a refused
/// accept, or one whose call is dropped before it ran (the link ended first), leaves it idle
/// whether or not anyone awaits the outcome.
pub(crate) struct AcceptReply {
    session: Arc<SessionShared>,
    reply: Option<oneshot::Sender<Result<(), EngineError>>>,
}

impl AcceptReply {
    pub(crate) fn new(
        session: Arc<SessionShared>,
        reply: oneshot::Sender<Result<(), EngineError>>,
    ) -> Self {
        Self {
            session,
            reply: Some(reply),
        }
    }

    fn send(mut self, result: Result<(), EngineError>) {
        if result.is_err() {
            self.session.set_state(SessionState::Idle);
        }
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(result);
        }
    }
}

impl Drop for AcceptReply {
    fn drop(&mut self) {
        if self.reply.is_some() {
            self.session.set_state(SessionState::Idle);
        }
    }
}

/// How the rest of the runtime reaches a link. Its copies (each session and request on the link
/// holds one) share one [`LinkRef`].
#[derive(Clone, Debug)]
pub(crate) struct LinkHandle(Arc<LinkRef>);

/// What a [`LinkHandle`] names.
#[derive(Debug)]
pub(crate) struct LinkRef {
    pub(crate) id: u64,
    pub(crate) peer: DeviceId,
    /// The device that dialed the link (SPEC `LINK-8` prefers the lower id's).
    pub(crate) dialer: DeviceId,
    pub(crate) commands: mpsc::Sender<LinkCommand>,
    /// The driver's state, while its task runs.
    pub(crate) shared: Weak<LinkShared>,
}

/// What the driver task of a link and the callers that run a command at once share.
pub(crate) struct LinkShared {
    driver: Mutex<Driver>,
    link: Arc<dyn Link>,
    /// Where the wakes of the link's receive go (see [`super::receive`]), and a waker for it.
    route: Arc<ReceiveRoute>,
    route_waker: Waker,
    /// The runtime the driver task runs on.
    runtime: tokio::runtime::Id,
    /// Set, with the driver task woken through its stored waker, when a caller has left it
    /// something to do; the task clears it as it takes it. A flag costs the task's every turn
    /// one atomic swap, where a wait on a `Notify` would register with the `Notify` again.
    nudged: AtomicBool,
}

impl std::fmt::Debug for LinkShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkShared").finish_non_exhaustive()
    }
}

impl std::ops::Deref for LinkHandle {
    type Target = LinkRef;

    fn deref(&self) -> &LinkRef {
        &self.0
    }
}

impl LinkShared {
    pub(super) fn route(&self) -> &ReceiveRoute {
        &self.route
    }

    /// Whether the calling thread runs on the driver task's runtime.
    pub(super) fn on_this_runtime(&self) -> bool {
        tokio::runtime::Handle::try_current().is_ok_and(|runtime| runtime.id() == self.runtime)
    }

    /// Reads the frames that have arrived on the link and acts on them, as the driver task
    /// would, for a caller that waits for an answer (see [`super::receive`]). It reads at most
    /// [`READ_AT_ONCE`] frames and leaves the rest to the task; so too when the apps' streams
    /// are full, which the task waits out. Call it outside app code.
    pub(super) fn read_arrived(&self) {
        let mut driver = lock(&self.driver);
        let task = match &driver.waker {
            Some(waker) if !driver.stopped => waker.clone(),
            _ => return,
        };
        let mut cx = Context::from_waker(&self.route_waker);
        let mut wake = false;
        let mut read = 0;
        loop {
            if !driver.held.is_empty() {
                // The task waits for room in the streams, then reads on. It was woken when the
                // streams filled: by `flush`, if this read filled them.
                break;
            }
            if read == READ_AT_ONCE {
                // The task reads the rest.
                wake = true;
                break;
            }
            match driver.receive_one(&self.link, &mut cx) {
                Poll::Ready(()) => {
                    read += 1;
                    wake |= driver.flush(&self.link, &task);
                }
                // The route is woken for the next frame.
                Poll::Pending => break,
            }
        }
        self.let_go(driver, wake, &task);
    }

    /// Lets go of the driver's state after a caller used it: wakes the task if `wake` (it has
    /// something to do), then tells the callers of the connects that were answered.
    fn let_go(&self, mut driver: MutexGuard<'_, Driver>, wake: bool, task: &Waker) {
        // Most calls answer no connect: the list keeps its room for the task.
        let mut answered = if driver.answered.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut driver.answered)
        };
        drop(driver);
        if wake {
            self.nudged.store(true, Ordering::Release);
            task.wake_by_ref();
        }
        answer(&mut answered);
    }
}

impl LinkHandle {
    pub(crate) fn new(link: LinkRef) -> Self {
        Self(Arc::new(link))
    }

    /// Waits for `answer`, the answer to a connect on this link, reading the link meanwhile
    /// when this caller can (see [`super::receive`]).
    pub(crate) fn answer<T>(&self, answer: oneshot::Receiver<T>) -> Answer<T> {
        Answer::new(answer, self.shared.clone())
    }

    pub(crate) fn is_open(&self) -> bool {
        !self.commands.is_closed()
    }

    /// Hands a call to the link: at once, in the caller's task, when no earlier call waits in
    /// the queue and the driver is not busy; through the driver task otherwise. Either way calls
    /// take effect in the order they were made. Fails when the link's driver has ended.
    pub(crate) async fn call(&self, command: LinkCommand) -> Result<(), LinkCommand> {
        match self.run_now(command) {
            Ok(()) => Ok(()),
            Err(command) => self.commands.send(command).await.map_err(|e| e.0),
        }
    }

    /// As [`call`](Self::call), for a connect whose caller waits for `answer`: the caller reads
    /// the link from before the call runs at once (see [`super::receive`]), and not while the
    /// call waits for room in the queue, which the task makes whether or not frames are read.
    pub(crate) async fn call_reading<T>(
        &self,
        command: LinkCommand,
        answer: &mut Answer<T>,
    ) -> Result<(), LinkCommand> {
        answer.read_from_now().await;
        match self.run_now(command) {
            Ok(()) => Ok(()),
            Err(command) => {
                answer.stop_reading();
                self.commands.send(command).await.map_err(|e| e.0)
            }
        }
    }

    /// Runs `command` on the driver's state in the caller's task and sends the frames it
    /// queued, if nothing may come before it: no call waits in the queue (the driver takes
    /// calls from the queue while it holds its state, so a call it has taken is done) and the
    /// engine is not holding back calls. Gives the command back otherwise.
    ///
    /// When the driver task holds the state, the caller waits for it rather than queueing: the
    /// task holds it only for what it does at once (never across an await), and a queued call
    /// would cost the task another turn, scheduled while it runs, which the multi-thread
    /// runtime hands to another worker (with the link's state moving between them).
    ///
    /// A call made from app code that a driver runs (a callback, an ability's handler) never
    /// waits: the state it would wait for may be the one held around it. When that driver is
    /// this link's, the driver runs the call as soon as the app code returns, before anything
    /// else ([`AppCode`]); an ability's handler that accepts the request it is handed answers
    /// it in the same turn of the link.
    fn run_now(&self, command: LinkCommand) -> Result<(), LinkCommand> {
        if !self.queue_empty() {
            return Err(command);
        }
        let command = match defer_to_driver(self.id, command) {
            AppCall::Deferred => return Ok(()),
            AppCall::NotDeferred(command) => command,
        };
        let Some(shared) = self.shared.upgrade() else {
            return Err(command);
        };
        let mut driver = if in_app_code() {
            // Perhaps under another driver's state whose holder waits for this one.
            let Ok(driver) = shared.driver.try_lock() else {
                return Err(command);
            };
            driver
        } else {
            lock(&shared.driver)
        };
        let waker = match &driver.waker {
            Some(waker) if !driver.stopped && self.queue_empty() && driver.takes_calls() => {
                waker.clone()
            }
            _ => return Err(command),
        };
        driver.command(command);
        let wake = driver.flush(&shared.link, &waker);
        shared.let_go(driver, wake, &waker);
        Ok(())
    }

    /// Whether no call waits in the queue for the driver task.
    fn queue_empty(&self) -> bool {
        self.commands.capacity() == self.commands.max_capacity()
    }

    /// Hands a call to the link without waiting: runs it at once when [`run_now`](Self::run_now)
    /// can, and queues it otherwise ([`send_now`](Self::send_now)). Its answer, if it has one,
    /// comes on its reply channel; a call the link can no longer take is dropped, and so is its
    /// reply channel.
    pub(crate) fn hand(&self, command: LinkCommand) {
        // run_now has already offered it to a driver running app code.
        if let Err(command) = self.run_now(command) {
            self.enqueue(command);
        }
    }

    /// Sends a call that needs no answer, without waiting: from `Drop` and sync API calls. From
    /// app code that this link's driver runs, the driver runs it once that code returns.
    pub(crate) fn send_now(&self, command: LinkCommand) {
        let command = if self.queue_empty() {
            match defer_to_driver(self.id, command) {
                AppCall::Deferred => return,
                AppCall::NotDeferred(command) => command,
            }
        } else {
            command
        };
        self.enqueue(command);
    }

    /// Puts a call in the driver task's queue without waiting: when the queue is full, a task of
    /// its own waits for room (a call whose link is gone is dropped).
    fn enqueue(&self, command: LinkCommand) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            let commands = self.commands.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = commands.send(command).await;
                });
            }
        }
    }
}

/// App code (a callback, an ability's handler) that the driver of link `link` runs while it holds
/// its state, and the calls that code made on that same link, for the driver to run once the
/// code returns.
struct AppScope {
    link: u64,
    calls: Vec<LinkCommand>,
}

thread_local! {
    /// The app code this thread is running under a driver's state, if any (see [`AppCode`]).
    static APP_CODE: RefCell<Option<AppScope>> = const { RefCell::new(None) };
}

/// Whether this thread is running app code (a callback, an ability's handler) that a driver
/// called while holding its state. A call made from there must not wait for a driver's state:
/// it may be the one held around it, or one whose holder waits for that one.
pub(super) fn in_app_code() -> bool {
    APP_CODE.with_borrow(Option::is_some)
}

/// What became of a call made from app code.
enum AppCall {
    /// The driver that runs the app code runs it once the code returns.
    Deferred,
    /// Not app code of this link's driver, or it has left as many calls as it may.
    NotDeferred(LinkCommand),
}

/// Leaves `command` for the driver of link `link` when this thread runs app code under that
/// driver's state. At most [`COMMAND_QUEUE`] calls wait so for one return of app code; more go
/// through the queue, behind them, where the driver's backpressure applies.
fn defer_to_driver(link: u64, command: LinkCommand) -> AppCall {
    APP_CODE.with_borrow_mut(|scope| match scope {
        Some(scope) if scope.link == link && scope.calls.len() < COMMAND_QUEUE => {
            scope.calls.push(command);
            AppCall::Deferred
        }
        _ => AppCall::NotDeferred(command),
    })
}

/// Marks this thread as running app code under the state of link `link`'s driver, until
/// [`AppCode::leave`] (or a drop, even by a panic, which discards the calls the code made: their
/// callers hear that the link is gone).
struct AppCode {
    outer: Option<AppScope>,
    left: bool,
}

impl AppCode {
    /// Enters app code of link `link`'s driver; `calls` (empty) takes the calls it makes.
    fn enter(link: u64, calls: Vec<LinkCommand>) -> Self {
        let scope = AppScope { link, calls };
        Self {
            outer: APP_CODE.replace(Some(scope)),
            left: false,
        }
    }

    /// Ends the app code; returns the calls it made on the driver's link, in order.
    fn leave(mut self) -> Vec<LinkCommand> {
        self.left = true;
        APP_CODE
            .replace(self.outer.take())
            .map(|scope| scope.calls)
            .unwrap_or_default()
    }
}

impl Drop for AppCode {
    fn drop(&mut self) {
        if !self.left {
            drop(APP_CODE.replace(self.outer.take()));
        }
    }
}

/// A receive or a send on the link, in progress; it lives across the driver's turns.
type LinkIo<'a, T> = Pin<Box<dyn Future<Output = Result<T, TransportError>> + Send + 'a>>;

/// A send of `frame` on `link` that owns what it needs (a share of the link), so that it can be
/// left to the driver task to finish.
fn send(link: &Arc<dyn Link>, frame: FrameBuf) -> LinkIo<'static, ()> {
    let link = link.clone();
    Box::pin(async move { link.send_buf(frame).await })
}

/// A receive of the next frame on `link` that owns what it needs, so that whoever reads the
/// link next can finish it.
fn receive(link: &Arc<dyn Link>) -> LinkIo<'static, FrameBuf> {
    let link = link.clone();
    Box::pin(async move { link.recv_buf().await })
}

/// Waits for `io` to finish; never, when there is none.
async fn finished<T>(io: &mut Option<LinkIo<'_, T>>) -> Result<T, TransportError> {
    match io {
        Some(io) => io.await,
        None => std::future::pending().await,
    }
}

/// Starts the task of a new link. The returned receiver says when HELLOs have been exchanged
/// (or why the link ended first).
pub(crate) fn spawn_link(
    device: &Arc<DeviceInner>,
    link: Box<dyn Link>,
    config: EngineConfig,
    nonce: [u8; 16],
) -> (LinkHandle, oneshot::Receiver<Result<(), String>>) {
    let link: Arc<dyn Link> = Arc::from(link);
    let role = link.role();
    let peer = link.peer_device().clone();
    let dialer = match role {
        Role::Dialer => link.local_device().clone(),
        Role::Acceptor => peer.clone(),
    };
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let id = NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed);
    let (up_tx, up_rx) = oneshot::channel();
    let now = TokioInstant::now().into_std();
    let engine = LinkEngine::new(
        now,
        role,
        link.local_device().as_str(),
        Some(peer.to_string()),
        link.max_frame_size(),
        nonce,
        config,
    )
    .with_buffer_pool(device.receive_pool.clone());
    let route = Arc::new(ReceiveRoute::default());
    let shared = Arc::new_cyclic(|shared| {
        let handle = LinkHandle::new(LinkRef {
            id,
            peer: peer.clone(),
            dialer,
            commands,
            shared: shared.clone(),
        });
        let driver = Driver {
            device: Arc::downgrade(device),
            handle,
            engine,
            sessions: HashMap::default(),
            connects: HashMap::default(),
            transfers: HashMap::default(),
            up: Some(up_tx),
            close_reason: CloseReason::normal(),
            retire_after: None,
            held: VecDeque::new(),
            progress: TransferProgress::default(),
            waker: None,
            handoff: None,
            receiving: None,
            sending: false,
            armed: None,
            request_deadline: None,
            answered: Vec::new(),
            app_calls: VecDeque::new(),
            app_call_room: Vec::new(),
            stopped: false,
        };
        LinkShared {
            driver: Mutex::new(driver),
            link,
            route_waker: Waker::from(route.clone()),
            route,
            runtime: tokio::runtime::Handle::current().id(),
            nudged: AtomicBool::new(false),
        }
    });
    let handle = lock(&shared.driver).handle.clone();
    let span = tracing::info_span!("link", peer = %peer, ?role, id = handle.id);
    tokio::spawn(run(shared, command_rx).instrument(span));
    (handle, up_rx)
}

struct Driver {
    device: Weak<DeviceInner>,
    handle: LinkHandle,
    engine: LinkEngine,
    sessions: HashMap<u32, Arc<SessionShared>>,
    connects: HashMap<u32, ConnectReply>,
    transfers: HashMap<(u32, u32), oneshot::Sender<Result<bool, EngineError>>>,
    up: Option<oneshot::Sender<Result<(), String>>>,
    close_reason: CloseReason,
    /// When a retiring link may close, once it carries no session (SPEC `LINK-8`).
    retire_after: Option<TokioInstant>,
    /// Events waiting for room in a full stream, in order.
    held: VecDeque<Held>,
    /// The progress of data transfers, both ways.
    progress: TransferProgress,
    /// The driver task's waker, once it runs: a send that a caller starts is polled with it,
    /// so that the task hears when the send finishes.
    waker: Option<Waker>,
    /// A send that a caller started and that did not finish at once, for the task to finish.
    handoff: Option<LinkIo<'static, ()>>,
    /// The receive of the next frame, while the link is open: always polled with the link's
    /// [`ReceiveRoute`], by the task or by a caller that waits for an answer.
    receiving: Option<LinkIo<'static, FrameBuf>>,
    /// Whether a send is in flight: at most one is, so that frames keep their order.
    sending: bool,
    /// The deadline the driver task sleeps until.
    armed: Option<TokioInstant>,
    /// The handshake deadline of the latest request this side sent, answered or not, while it
    /// is ahead. The task sleeps no later than it: the next request's deadline is no earlier,
    /// so a caller that sends a request need not wake the task to sleep less (it costs one
    /// turn of the task once it passes).
    request_deadline: Option<TokioInstant>,
    /// Connects whose answer came, to tell their callers once the state is let go of.
    answered: Vec<(ConnectReply, ConnectOutcome)>,
    /// Calls that app code it ran made on this link, to run before anything else.
    app_calls: VecDeque<LinkCommand>,
    /// An empty list, kept for the next app code's calls (its room is reused).
    app_call_room: Vec<LinkCommand>,
    /// Whether the driver task has ended.
    stopped: bool,
}

/// Runs a link: waits for its frames, the calls, the sends and the deadlines, and acts on each
/// while holding the driver's state.
async fn run(shared: Arc<LinkShared>, mut commands: mpsc::Receiver<LinkCommand>) {
    let link = shared.link.clone();
    let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    shared.route.set_task(waker.clone());
    {
        let mut driver = lock(&shared.driver);
        driver.waker = Some(waker);
        // One receive waits while the link is open and the apps' streams have room, and at
        // most one send is in flight: frames go out in the order the engine hands them out,
        // and a send that waits for room (backpressure) does not stop the driver from
        // receiving.
        driver.receiving = Some(receive(&link));
    }
    let mut commands_open = true;
    let mut sending: Option<LinkIo<'static, ()>> = None;
    // One timer for the task's life, moved when the deadline moves, rather than one made and
    // registered with the runtime's timer at every turn.
    let mut timer = std::pin::pin!(tokio::time::sleep_until(TokioInstant::now()));
    let mut timer_at: Option<TokioInstant> = None;
    // Each turn swaps this emptied list with the state's list of answered connects, so that
    // both keep their room.
    let mut answered = Vec::new();
    loop {
        let step = {
            let mut driver = lock(&shared.driver);
            driver.dispatch_events();
            let retire_due = driver
                .retire_after
                .is_some_and(|due| TokioInstant::now() >= due);
            if retire_due && driver.engine.session_count() == 0 && !driver.engine.is_closed() {
                driver.engine.close(
                    pb::LinkCloseReason::Normal,
                    "LINK-8: another link to this device is preferred",
                );
                continue;
            }
            if sending.is_none() {
                sending = driver.handoff.take();
            }
            // After the events: handling them may have queued frames (answers, closes).
            if sending.is_none() {
                sending = driver.send_at_once(&link);
            }
            driver.sending = sending.is_some();
            if driver.engine.has_events() {
                // Frames sent at once may have ended transfers: their senders hear it now.
                continue;
            }
            // Told once the state is let go of, below.
            std::mem::swap(&mut driver.answered, &mut answered);
            if driver.engine.is_finished() && sending.is_none() {
                driver.stopped = true;
                Err(driver.close_reason.clone())
            } else {
                let engine_deadline = driver.engine.poll_timeout().map(TokioInstant::from_std);
                // The end of the retiring grace wakes the task once. Past it, the link closes
                // when its last session ends, an event that wakes the task anyway: a deadline
                // left in the past would wake it at every turn while sessions remain (LINK-8).
                let retire_wake = driver.retire_after.filter(|_| !retire_due);
                let wanted = earliest(
                    earliest(engine_deadline, driver.request_deadline),
                    retire_wake,
                );
                // The timer moves only to an earlier deadline. Deadlines move later with
                // nearly every frame (keepalives); a timer left earlier fires, finds nothing
                // due and is set again, once per deadline, where moving it would cost every
                // turn a trip through the runtime's timer.
                let deadline = match (wanted, timer_at) {
                    (Some(wanted), Some(set)) if set <= wanted => Some(set),
                    (wanted, _) => wanted,
                };
                driver.armed = deadline;
                let take_calls = commands_open && driver.takes_calls();
                let held = driver.held.front().cloned();
                Ok((deadline, take_calls, held))
            }
        };
        // The callers of the connects this turn answered run while the task waits; woken with
        // the state still held, a caller on another worker would meet it held at its next call.
        answer(&mut answered);
        let (deadline, take_calls, held) = match step {
            Ok(step) => step,
            Err(reason) => {
                link.close(reason).await;
                break;
            }
        };
        if let Some(deadline) = deadline
            && timer_at != Some(deadline)
        {
            timer.as_mut().reset(deadline);
            timer_at = Some(deadline);
        }
        tokio::select! {
            open = std::future::poll_fn(|cx| take_command(&shared, &mut commands, cx)), if take_calls => {
                commands_open = open;
            },
            room = room_for(held.clone()), if held.is_some() => {
                let mut driver = lock(&shared.driver);
                if let Some((_, event)) = driver.held.pop_front()
                    && let Some(room) = room
                {
                    room.send(event);
                }
            },
            () = std::future::poll_fn(|_| {
                // Polled with the route, which wakes this task unless a caller reads instead.
                let mut cx = Context::from_waker(&shared.route_waker);
                lock(&shared.driver).receive_one(&link, &mut cx)
            }), if held.is_none() => {},
            sent = finished(&mut sending), if sending.is_some() => {
                sending = None;
                let mut driver = lock(&shared.driver);
                driver.sending = false;
                if let Err(err) = sent {
                    driver.send_failed(&err);
                }
            },
            () = timer.as_mut(), if deadline.is_some() => {
                // Fired: set again at the next turn, even for the same deadline.
                timer_at = None;
                let now = TokioInstant::now();
                let mut driver = lock(&shared.driver);
                // The timer is never set later than this deadline: it ends here.
                driver.request_deadline = driver.request_deadline.filter(|due| *due > now);
                driver.engine.handle_timeout(now.into_std());
            },
            () = std::future::poll_fn(|_| {
                // The waker that nudges is the task's own, stored when it started.
                if shared.nudged.swap(false, Ordering::AcqRel) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }) => {}
        }
    }
    let mut driver = lock(&shared.driver);
    driver.stopped = true;
    if let Some(device) = driver.device.upgrade() {
        device.forget_link(&driver.handle);
    }
}

type ConnectReply = oneshot::Sender<Result<ConnectOutcome, EngineError>>;

fn answer(answered: &mut Vec<(ConnectReply, ConnectOutcome)>) {
    for (reply, outcome) in answered.drain(..) {
        let _ = reply.send(Ok(outcome));
    }
}

/// Takes the next call from the queue and runs it while holding the driver's state, so that a
/// caller that finds the queue empty knows that every earlier call is done. `false` once the
/// queue has closed: the device is shutting down, and so is the link.
fn take_command(
    shared: &LinkShared,
    commands: &mut mpsc::Receiver<LinkCommand>,
    cx: &mut Context<'_>,
) -> Poll<bool> {
    let mut driver = lock(&shared.driver);
    match commands.poll_recv(cx) {
        Poll::Ready(Some(command)) => {
            driver.command(command);
            Poll::Ready(true)
        }
        Poll::Ready(None) => {
            driver
                .engine
                .close(pb::LinkCloseReason::Normal, "the device is shutting down");
            Poll::Ready(false)
        }
        Poll::Pending => Poll::Pending,
    }
}

impl Driver {
    /// Whether the driver takes calls: not while the engine holds too many control frames
    /// (the backpressure of `send_message`).
    fn takes_calls(&self) -> bool {
        self.engine.queued_control_frames() < MAX_QUEUED_CONTROL
    }

    fn send_failed(&mut self, err: &TransportError) {
        tracing::debug!(%err, "link send failed");
        self.engine
            .handle_link_lost(format!("sending failed: {err}"));
    }

    /// Takes the next frame from the link, if one has arrived, and hands it to the engine; or the
    /// link's loss. Pending when nothing has arrived (`cx` is woken then) or the link is lost.
    fn receive_one(&mut self, link: &Arc<dyn Link>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(io) = &mut self.receiving else {
            return Poll::Pending;
        };
        match io.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(frame)) => {
                self.receiving = Some(receive(link));
                // Only what progress needs: the engine must hold the frame's only reference to
                // keep large chunks without copying them.
                let fragment = fragment_info(&frame);
                self.engine.handle_message_buf(now(), frame);
                if let Some(fragment) = fragment {
                    self.data_progress(&fragment);
                }
                Poll::Ready(())
            }
            Poll::Ready(Err(err)) => {
                self.receiving = None;
                self.engine.handle_link_lost(err.to_string());
                Poll::Ready(())
            }
        }
    }

    /// Hands the engine's frames to the link while it takes them at once; returns a send of the
    /// first one it cannot take at once, to wait for. Call it only with no send under way.
    fn send_at_once(&mut self, link: &Arc<dyn Link>) -> Option<LinkIo<'static, ()>> {
        if !self.engine.wants_transmit() {
            return None;
        }
        let now = now();
        while let Some(frame) = self.engine.poll_transmit_buf(now) {
            self.progress.on_sent_frame(&frame);
            match link.try_send_buf(frame) {
                Ok(None) => {}
                Ok(Some(frame)) => return Some(send(link, frame)),
                Err(err) => self.send_failed(&err),
            }
        }
        None
    }

    /// After a caller ran a command: sends the frames it queued, each at once if the link has
    /// room, unless a send is in flight (the driver task sends them after it), and hands out the
    /// events that follow. A send that has to wait is left to the task, and so is whatever else
    /// needs it; returns whether the task must be woken for that.
    fn flush(&mut self, link: &Arc<dyn Link>, waker: &Waker) -> bool {
        let mut cx = Context::from_waker(waker);
        loop {
            self.run_app_calls();
            while !self.sending
                && let Some(mut io) = self.send_at_once(link)
            {
                match io.as_mut().poll(&mut cx) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(err)) => self.send_failed(&err),
                    Poll::Pending => {
                        self.handoff = Some(io);
                        self.sending = true;
                    }
                }
            }
            // Such as the end of a transfer whose last fragment just went: its sender hears it
            // now rather than after a trip through the task.
            if !self.engine.has_events() {
                break;
            }
            self.dispatch_events();
        }
        let deadline = self.engine.poll_timeout().map(TokioInstant::from_std);
        let earlier = match (deadline, self.armed) {
            (Some(new), Some(armed)) => new < armed,
            (new, armed) => new.is_some() && armed.is_none(),
        };
        self.handoff.is_some()
            || !self.held.is_empty()
            || self.engine.has_events()
            || self.engine.is_closed()
            || earlier
    }

    fn command(&mut self, command: LinkCommand) {
        match command {
            LinkCommand::Connect {
                token,
                session,
                reply,
            } => {
                let now = now();
                let (source, target) = (&session.local, &session.peer);
                // The session's key, made before its request was recorded with the device.
                let key = session.connect_key().clone();
                match self
                    .engine
                    .connect_with(now, token, key, source, target, &session.options)
                {
                    Ok(channel) => {
                        // The engine's deadline for the request.
                        self.request_deadline = now
                            .checked_add(self.engine.config.handshake_timeout)
                            .map(TokioInstant::from_std);
                        self.sessions.insert(channel, session);
                        self.connects.insert(channel, reply);
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
            LinkCommand::Accept { channel, reply } => {
                let result = self.engine.accept(channel);
                if result.is_ok() {
                    let session = reply.session.clone();
                    session.set_state(SessionState::Connected {
                        link: self.handle.clone(),
                        channel,
                    });
                    self.sessions.insert(channel, session.clone());
                    // The connect event comes before anything else of the session.
                    self.deliver(
                        &session,
                        Event::Connect {
                            session_id: session.id,
                        },
                    );
                }
                reply.send(result);
            }
            LinkCommand::Reject {
                channel,
                code,
                reason,
            } => {
                let _ = self.engine.reject(channel, code, &reason);
            }
            LinkCommand::Message {
                channel,
                text,
                reply,
            } => {
                let _ = reply.send(self.engine.send_message(channel, &text));
            }
            LinkCommand::Data {
                channel,
                data,
                reply,
                progress,
            } => match self.engine.send_data(channel, data) {
                Ok(transfer) => {
                    if let Some(progress) = progress {
                        self.progress.watch_sending(channel, transfer, progress);
                    }
                    self.transfers.insert((channel, transfer), reply);
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            LinkCommand::CollaborateEvent {
                channel,
                event_type,
                message,
                reply,
            } => {
                let result = self
                    .engine
                    .send_collaborate_event(channel, event_type, &message);
                let _ = reply.send(result);
            }
            LinkCommand::Disconnect { channel, reason } => {
                if self.engine.disconnect(channel, reason).is_ok()
                    && let Some(session) = self.sessions.remove(&channel)
                {
                    session.set_state_if_on(&self.handle, channel, SessionState::Idle);
                }
                if let Some(reply) = self.connects.remove(&channel) {
                    let _ = reply.send(Ok(ConnectOutcome::Failed {
                        code: pb::ConnectErrorCode::SystemInternalError,
                        reason: "the session was closed before the peer answered".into(),
                    }));
                }
            }
            LinkCommand::Close => {
                self.engine
                    .close(pb::LinkCloseReason::Normal, "the device closed the link");
            }
            LinkCommand::Retire => {
                // A grace period lets a connect that chose this link just before the other one
                // came up finish; the link closes once it is idle after that.
                if self.retire_after.is_none() {
                    self.retire_after = Some(TokioInstant::now() + RETIRE_GRACE);
                }
            }
        }
    }

    /// Hands out the engine's events: to the device, and to app code (callbacks, ability
    /// handlers), which runs under the driver's state (see [`AppCode`]); runs the calls that
    /// app code makes on this link as it returns.
    fn dispatch_events(&mut self) {
        loop {
            self.run_app_calls();
            let Some(event) = self.engine.poll_event() else {
                break;
            };
            self.dispatch(event);
        }
    }

    /// Runs the calls app code made on this link, in order, and those their own app code makes.
    fn run_app_calls(&mut self) {
        while let Some(command) = self.app_calls.pop_front() {
            self.command(command);
        }
    }

    /// Runs `code`, app code, under this driver's state (see [`AppCode`]); the calls it makes
    /// on this link wait in `app_calls`.
    fn app_code<T>(&mut self, code: impl FnOnce(&mut Self) -> T) -> T {
        let scope = AppCode::enter(self.handle.id, std::mem::take(&mut self.app_call_room));
        let out = code(self);
        let mut calls = scope.leave();
        self.app_calls.extend(calls.drain(..));
        self.app_call_room = calls;
        out
    }

    fn dispatch(&mut self, event: EngineEvent) {
        match event {
            EngineEvent::LinkUp { .. } => {
                if let Some(device) = self.device.upgrade() {
                    device.remember_link(self.handle.clone());
                }
                if let Some(up) = self.up.take() {
                    let _ = up.send(Ok(()));
                }
            }
            EngineEvent::LinkClosed { by, reason, detail } => {
                tracing::info!(
                    peer = %self.handle.peer,
                    ?by,
                    reason = reason.as_str_name(),
                    %detail,
                    "link ended"
                );
                if let Some(up) = self.up.take() {
                    let _ = up.send(Err(format!("the link ended before it was up: {detail}")));
                }
                if let Some(device) = self.device.upgrade() {
                    device.forget_link(&self.handle);
                }
                if by == Closer::Local {
                    self.close_reason = CloseReason::new(reason as u32, detail);
                }
            }
            EngineEvent::IncomingRequest(request) => {
                let channel = request.channel;
                // The key the engine made of the request: the device's checks share it.
                let key = self.engine.session_key(channel).cloned();
                let verdict = match self.device.upgrade() {
                    Some(device) => {
                        self.app_code(|driver| device.route_request(&driver.handle, *request, key))
                    }
                    None => Some((
                        pb::ConnectErrorCode::SystemInternalError,
                        "the device is shutting down".to_string(),
                    )),
                };
                if let Some((code, reason)) = verdict {
                    let _ = self.engine.reject(channel, code, &reason);
                }
            }
            EngineEvent::RequestCancelled { channel } => {
                if let Some(device) = self.device.upgrade() {
                    device.forget_request(&self.handle, channel);
                }
            }
            EngineEvent::ConnectResult { channel, outcome } => {
                if outcome == ConnectOutcome::Accepted {
                    if let Some(session) = self.sessions.get(&channel).cloned() {
                        session.set_state(SessionState::Connected {
                            link: self.handle.clone(),
                            channel,
                        });
                        self.deliver(
                            &session,
                            Event::Connect {
                                session_id: session.id,
                            },
                        );
                    }
                } else if let Some(session) = self.sessions.remove(&channel) {
                    session.set_state(SessionState::Idle);
                }
                if let Some(reply) = self.connects.remove(&channel) {
                    self.answered.push((reply, outcome));
                }
            }
            EngineEvent::Message { channel, text } => {
                self.emit(channel, |session_id| Event::Message {
                    session_id,
                    msg: text,
                });
            }
            EngineEvent::Data { channel, data } => {
                self.emit(channel, |session_id| Event::Data { session_id, data });
            }
            EngineEvent::CollaborateEvent {
                channel,
                event_type,
                message,
            } => {
                let Some(event_type) = CollaborateEventType::from_wire(event_type) else {
                    return;
                };
                let info = CollaborateEventInfo {
                    event_type,
                    event_msg: (!message.is_empty()).then_some(message),
                };
                self.emit(channel, |session_id| Event::Collaborate {
                    session_id,
                    info,
                });
            }
            EngineEvent::SessionClosed {
                channel, reason, ..
            } => {
                self.progress.forget_channel(channel);
                if let Some(session) = self.sessions.remove(&channel) {
                    session.set_state_if_on(&self.handle, channel, SessionState::Idle);
                    let reason = DisconnectReason::from_wire(reason)
                        .unwrap_or(DisconnectReason::NetworkDisconnected);
                    self.deliver(
                        &session,
                        Event::Disconnect {
                            session_id: session.id,
                            reason,
                        },
                    );
                }
            }
            EngineEvent::TransferSent {
                channel,
                transfer_id,
            } => {
                self.progress.forget_sending(channel, transfer_id);
                if let Some(reply) = self.transfers.remove(&(channel, transfer_id)) {
                    let _ = reply.send(Ok(true));
                }
            }
            EngineEvent::TransferAborted {
                channel,
                transfer_id,
            } => {
                self.progress.forget_sending(channel, transfer_id);
                if let Some(reply) = self.transfers.remove(&(channel, transfer_id)) {
                    let _ = reply.send(Ok(false));
                }
            }
        }
    }

    /// Reports the progress of an incoming transfer on a connected session, now and then.
    fn data_progress(&mut self, fragment: &FragmentInfo) {
        if !self.sessions.contains_key(&fragment.channel) || self.engine.is_closed() {
            return;
        }
        if let Some((received, total)) = self.progress.on_received(fragment) {
            self.emit(fragment.channel, |session_id| Event::DataProgress {
                session_id,
                received,
                total,
            });
        }
    }

    fn emit(&mut self, channel: u32, event: impl FnOnce(u64) -> Event) {
        if let Some(session) = self.sessions.get(&channel).cloned() {
            self.deliver(&session, event(session.id));
        }
    }

    /// Hands an event to a session's listeners without waiting: what a full stream cannot take
    /// now waits in `held`, behind anything held before, and the driver stops reading the link
    /// until it is delivered.
    fn deliver(&mut self, session: &SessionShared, event: Event) {
        if !session.listeners.ever_listened() {
            // No one to tell, and no app code to run.
            return;
        }
        let hold = !self.held.is_empty();
        self.app_code(|driver| session.listeners.deliver(event, hold, &mut driver.held));
    }
}

/// Room in its stream for the held event: a place in the queue and room for its data; `None`
/// when the stream's reader is gone (the event is dropped with the stream).
async fn room_for(held: Option<Held>) -> Option<StreamRoom> {
    let (stream, event) = held?;
    stream.room_for(&event).await
}

fn now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

fn earliest(a: Option<TokioInstant>, b: Option<TokioInstant>) -> Option<TokioInstant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connecting_session() -> Arc<SessionShared> {
        let session = Arc::new(SessionShared::new(
            101,
            pb::PeerInfo::default(),
            pb::PeerInfo::default(),
            pb::ConnectOptions::default(),
        ));
        assert!(session.begin_connecting());
        session
    }

    fn is_idle(session: &SessionShared) -> bool {
        matches!(session.state(), SessionState::Idle)
    }

    #[test]
    fn an_accept_the_link_refused_leaves_its_session_idle_and_says_so() {
        let session = connecting_session();
        let (reply, mut answer) = oneshot::channel();
        AcceptReply::new(session.clone(), reply).send(Err(EngineError::LinkNotUp));
        assert!(is_idle(&session));
        assert!(matches!(answer.try_recv(), Ok(Err(EngineError::LinkNotUp))));
    }

    #[test]
    fn an_accept_dropped_before_the_link_ran_it_leaves_its_session_idle() {
        let session = connecting_session();
        let (reply, mut answer) = oneshot::channel();
        drop(AcceptReply::new(session.clone(), reply));
        assert!(is_idle(&session));
        assert!(answer.try_recv().is_err());
    }

    #[test]
    fn an_accept_the_link_took_leaves_the_state_to_the_link() {
        let session = connecting_session();
        let (reply, mut answer) = oneshot::channel();
        AcceptReply::new(session.clone(), reply).send(Ok(()));
        assert!(matches!(session.state(), SessionState::Connecting));
        assert!(matches!(answer.try_recv(), Ok(Ok(()))));
    }
}
