//! Session events: callbacks registered with `on`/`off` as in the reference, and the same
//! events as an async stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::lock;
use crate::types::{CollaborateEventInfo, DisconnectReason, EventCallbackInfo, SessionId};

/// The events a session reports (the `type` argument of `on` and `off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// `'connect'`: the session is connected.
    Connect,
    /// `'disconnect'`: the session ended; the info carries the reason.
    Disconnect,
    /// `'receiveMessage'`: a message arrived.
    ReceiveMessage,
    /// `'receiveData'`: a data transfer arrived whole.
    ReceiveData,
    /// `'collaborateEvent'`: a collaboration event arrived.
    CollaborateEvent,
    /// `'dataProgress'` (not in the reference): part of a data transfer arrived.
    DataProgress,
}

impl EventType {
    /// The reference's name of the event type.
    pub fn name(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::ReceiveMessage => "receiveMessage",
            Self::ReceiveData => "receiveData",
            Self::CollaborateEvent => "collaborateEvent",
            Self::DataProgress => "dataProgress",
        }
    }

    /// The event type with the reference's name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Connect,
            Self::Disconnect,
            Self::ReceiveMessage,
            Self::ReceiveData,
            Self::CollaborateEvent,
            Self::DataProgress,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// One event of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The session is connected.
    Connect {
        /// The session.
        session_id: SessionId,
    },
    /// The session ended.
    Disconnect {
        /// The session.
        session_id: SessionId,
        /// Why.
        reason: DisconnectReason,
    },
    /// A message arrived.
    Message {
        /// The session.
        session_id: SessionId,
        /// The text.
        msg: String,
    },
    /// A data transfer arrived whole.
    Data {
        /// The session.
        session_id: SessionId,
        /// The bytes.
        data: Bytes,
    },
    /// A collaboration event arrived.
    Collaborate {
        /// The session.
        session_id: SessionId,
        /// The event.
        info: CollaborateEventInfo,
    },
    /// Part of a data transfer has arrived (not in the reference). Reported as fragments
    /// arrive, at most every 64 KiB or every hundredth of the transfer, whichever is larger,
    /// and once with `received == total` just before the [`Event::Data`] of the transfer. A
    /// session that ends mid-transfer reports no more progress and no data. Streams carry these
    /// events only when asked for with `AbilityConnectionManager::events_with_progress`.
    DataProgress {
        /// The session.
        session_id: SessionId,
        /// Bytes of the transfer received so far.
        received: u64,
        /// The transfer's whole length.
        total: u64,
    },
}

impl Event {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::Connect { .. } => EventType::Connect,
            Self::Disconnect { .. } => EventType::Disconnect,
            Self::Message { .. } => EventType::ReceiveMessage,
            Self::Data { .. } => EventType::ReceiveData,
            Self::Collaborate { .. } => EventType::CollaborateEvent,
            Self::DataProgress { .. } => EventType::DataProgress,
        }
    }

    /// The session the event is about.
    pub fn session_id(&self) -> SessionId {
        match self {
            Self::Connect { session_id }
            | Self::Disconnect { session_id, .. }
            | Self::Message { session_id, .. }
            | Self::Data { session_id, .. }
            | Self::Collaborate { session_id, .. }
            | Self::DataProgress { session_id, .. } => *session_id,
        }
    }

    /// The event as the reference's `EventCallbackInfo` (collaboration events carry only the
    /// session id there; their content is in [`Event::Collaborate`]).
    pub fn callback_info(&self) -> EventCallbackInfo {
        EventCallbackInfo {
            session_id: self.session_id(),
            reason: match self {
                Self::Disconnect { reason, .. } => Some(*reason),
                _ => None,
            },
            msg: match self {
                Self::Message { msg, .. } => Some(msg.clone()),
                _ => None,
            },
            data: match self {
                Self::Data { data, .. } => Some(data.clone()),
                _ => None,
            },
        }
    }
}

/// An event waiting for room in a stream.
pub(crate) type Held = (StreamTx, Event);

/// A callback for `on`. Callbacks run in the task of the session's link, with no lock held, in
/// the order of the link's frames; a callback may call the API, on its own session too. They
/// should return quickly and spawn anything long: the link reads nothing more until they
/// return. `off` recognises a callback by its `Arc`.
pub type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

/// How many events a stream holds before its session waits for the reader.
const STREAM_CAPACITY: usize = 1024;

/// The unit in which a stream counts the data bytes it holds.
const DATA_UNIT: usize = 1024;

/// The sending end of one stream, as the link that delivers a session's events holds it.
#[derive(Debug, Clone)]
pub(crate) struct StreamTx {
    tx: mpsc::Sender<Event>,
    /// Whether it wants [`Event::DataProgress`].
    progress: bool,
    /// Room for the data of [`Event::Data`] events, in [`DATA_UNIT`]s: taken when an event
    /// goes in, given back when the reader takes it out (see [`data_units`]).
    data_room: Arc<Semaphore>,
    /// The stream's whole room for data, in units.
    data_units: usize,
}

/// The room the data of `event` takes in a stream whose whole room is `all` units: none for
/// events without data, and never more than `all`, so that a transfer larger than the stream's
/// room goes in alone, once the stream holds no other data.
fn data_units(event: &Event, all: usize) -> usize {
    match event {
        Event::Data { data, .. } => data.len().div_ceil(DATA_UNIT).min(all),
        _ => 0,
    }
}

impl StreamTx {
    /// Room for `event` in this stream, if there is room now: a place in the queue and room for
    /// its data. `Err(event)` gives it back otherwise; `Ok(false)` when the reader is gone.
    fn try_send(&self, event: Event) -> Result<bool, Event> {
        let units = data_units(&event, self.data_units);
        let room = if units == 0 {
            None
        } else {
            match self.data_room.clone().try_acquire_many_owned(units as u32) {
                Ok(room) => Some(room),
                Err(tokio::sync::TryAcquireError::NoPermits) => return Err(event),
                Err(tokio::sync::TryAcquireError::Closed) => return Ok(false),
            }
        };
        match self.tx.try_send(event) {
            Ok(()) => {
                // Given back by the reader when it takes the event.
                if let Some(room) = room {
                    room.forget();
                }
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Full(event)) => Err(event),
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(false),
        }
    }

    /// Waits until the stream has room for `event`, and takes it: `None` when the reader is
    /// gone. Send the event with [`StreamRoom::send`]. The wait holds nothing of the event.
    pub(crate) fn room_for(
        &self,
        event: &Event,
    ) -> impl std::future::Future<Output = Option<StreamRoom>> + Send + 'static {
        let units = data_units(event, self.data_units);
        let stream = self.clone();
        async move {
            let data = if units == 0 {
                None
            } else {
                Some(
                    stream
                        .data_room
                        .acquire_many_owned(units as u32)
                        .await
                        .ok()?,
                )
            };
            let place = stream.tx.reserve_owned().await.ok()?;
            Some(StreamRoom { place, data })
        }
    }
}

/// Room taken in a stream for one event ([`StreamTx::room_for`]).
pub(crate) struct StreamRoom {
    place: mpsc::OwnedPermit<Event>,
    data: Option<OwnedSemaphorePermit>,
}

impl StreamRoom {
    /// Puts `event` in the room taken for it.
    pub(crate) fn send(self, event: Event) {
        if let Some(data) = self.data {
            // Given back by the reader when it takes the event.
            data.forget();
        }
        self.place.send(event);
    }
}

/// The listeners of one session.
#[derive(Default)]
pub(crate) struct Listeners {
    callbacks: Mutex<Vec<(EventType, Callback)>>,
    streams: Mutex<Vec<StreamTx>>,
    /// Set once a callback or a stream is added, and never cleared: until then an event has
    /// no one to go to, and delivering it takes no lock.
    ever: AtomicBool,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners").finish_non_exhaustive()
    }
}

impl Listeners {
    pub(crate) fn on(&self, event_type: EventType, callback: Callback) {
        lock(&self.callbacks).push((event_type, callback));
        self.ever.store(true, Ordering::Release);
    }

    /// Whether a callback or a stream was ever added. An event delivered while this is false
    /// reaches no one; one delivered after an addition that happened before it is seen.
    pub(crate) fn ever_listened(&self) -> bool {
        self.ever.load(Ordering::Acquire)
    }

    /// Removes the callbacks of `event_type`: the one given, or all of them.
    pub(crate) fn off(&self, event_type: EventType, callback: Option<&Callback>) {
        lock(&self.callbacks).retain(|(t, cb)| {
            *t != event_type || callback.is_some_and(|given| !Arc::ptr_eq(given, cb))
        });
    }

    /// Forgets every callback and stream: the session is gone, and its streams end.
    pub(crate) fn clear(&self) {
        lock(&self.callbacks).clear();
        lock(&self.streams).clear();
    }

    /// A new stream of the session's events that holds at most `data_bytes` bytes of
    /// [`Event::Data`] (rounded up to whole KiB, at least one) besides a transfer larger than
    /// that on its own.
    pub(crate) fn stream(&self, with_progress: bool, data_bytes: usize) -> EventStream {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let units = data_bytes
            .div_ceil(DATA_UNIT)
            .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let data_room = Arc::new(Semaphore::new(units));
        lock(&self.streams).push(StreamTx {
            tx,
            progress: with_progress,
            data_room: data_room.clone(),
            data_units: units,
        });
        self.ever.store(true, Ordering::Release);
        EventStream {
            rx,
            data_room,
            data_units: units,
        }
    }

    /// Hands `event` to every callback of its type at once, and to every stream: at once when
    /// `hold` is false and the stream has room (for the event, and for its data), otherwise into
    /// `held`, in order, for the caller to deliver as room appears. Nothing is dropped; a stream
    /// whose reader is gone is forgotten.
    pub(crate) fn deliver(&self, event: Event, hold: bool, held: &mut VecDeque<Held>) {
        let callbacks: Vec<Callback> = lock(&self.callbacks)
            .iter()
            .filter(|(t, _)| *t == event.event_type())
            .map(|(_, cb)| cb.clone())
            .collect();
        for callback in callbacks {
            callback(&event);
        }
        let progress = matches!(event, Event::DataProgress { .. });
        let streams: Vec<StreamTx> = lock(&self.streams)
            .iter()
            .filter(|stream| stream.progress || !progress)
            .cloned()
            .collect();
        let mut gone = false;
        for stream in streams {
            if hold {
                held.push_back((stream, event.clone()));
                continue;
            }
            match stream.try_send(event.clone()) {
                Ok(true) => {}
                Ok(false) => gone = true,
                Err(event) => held.push_back((stream, event)),
            }
        }
        if gone {
            lock(&self.streams).retain(|stream| !stream.tx.is_closed());
        }
    }
}

/// The events of one session as an async stream (`futures_core::Stream`), or one at a time
/// with [`EventStream::next`]. It ends when the session is destroyed. Read it: once 1024 events
/// wait in a stream, or more received data than
/// [`DeviceConfig::stream_data_bytes`](crate::DeviceConfig::stream_data_bytes), the link it
/// belongs to stops reading from the peer until there is room (the peer's sends then wait:
/// backpressure, not loss), and a link that cannot read for three keepalive intervals ends.
#[derive(Debug)]
pub struct EventStream {
    rx: mpsc::Receiver<Event>,
    /// The room for data this stream shares with its sending end.
    data_room: Arc<Semaphore>,
    data_units: usize,
}

impl EventStream {
    /// The next event, or `None` once the session is gone.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next event, and the room its data took given back.
    fn poll_event(&mut self, cx: &mut TaskContext<'_>) -> Poll<Option<Event>> {
        let event = std::task::ready!(self.rx.poll_recv(cx));
        if let Some(event) = &event {
            self.data_room
                .add_permits(data_units(event, self.data_units));
        }
        Poll::Ready(event)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        // A sender waiting for room would wait for ever.
        self.data_room.close();
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Event>> {
        self.poll_event(cx)
    }
}
