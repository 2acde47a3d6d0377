//! A link: one TCP connection after the OPEN exchange. A task of the link's own writes it,
//! taking frames from a bounded queue in batches; the link's user reads it, in the task that
//! calls `recv`, with no task or queue in between.

use std::fmt;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use acm_transport::{CloseReason, Closure, DeviceId, FrameBuf, Link, Role, TransportError};
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, watch};

use crate::binding::{self, FrameError};
use crate::receive::{Message, Receiver};
use crate::stream::{FrameReader, ReadError};

/// The most frames the writer takes from its queue for one vectored write.
const WRITE_BATCH: usize = 64;

/// The most parts of frames one vectored write is given (below every system's `IOV_MAX`).
const WRITE_SLICES: usize = 2 * WRITE_BATCH;

/// The reading side: `None` once the connection's reading half has been let go.
type Reading = tokio::sync::Mutex<Option<Receiver<OwnedReadHalf>>>;

/// What the link asks its writer to do.
enum Outbound {
    /// Write one frame, its parts back to back.
    Frame((FrameBuf, OwnedSemaphorePermit)),
    /// Write CLOSE, then end the sending direction.
    Close(CloseReason),
}

/// Where the link's tasks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Both directions carry frames.
    Open,
    /// This side closed: the writer sends what was queued and CLOSE, and what still arrives is
    /// read and discarded until the peer ends the connection.
    Closing,
    /// The tasks stop now and drop the connection.
    Stopping,
}

/// What the link and its tasks share.
struct Shared {
    closure: Mutex<Option<Closure>>,
    phase: watch::Sender<Phase>,
    /// Set once the writer has finished.
    writer_done: watch::Sender<bool>,
    /// Room for frames queued for sending, in bytes.
    send_room: Arc<Semaphore>,
    send_capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<Closure>> {
        self.closure.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the link with `closure` unless it has already ended, running `then` while no one
    /// else can end it or queue a frame. Says whether it ended it.
    fn end_then(&self, closure: Closure, then: impl FnOnce()) -> bool {
        let mut slot = self.lock();
        if slot.is_some() {
            return false;
        }
        let phase = match closure {
            Closure::Local(_) => Phase::Closing,
            _ => Phase::Stopping,
        };
        *slot = Some(closure);
        then();
        drop(slot);
        self.send_room.close();
        self.advance(phase);
        true
    }

    /// Ends the link with `closure` unless it has already ended.
    fn end(&self, closure: Closure) -> bool {
        self.end_then(closure, || {})
    }

    /// Moves the tasks on to `phase`, never back.
    fn advance(&self, phase: Phase) {
        self.phase.send_if_modified(|now| {
            let later = *now < phase;
            if later {
                *now = phase;
            }
            later
        });
    }

    fn closure(&self) -> Option<Closure> {
        self.lock().clone()
    }

    /// Whether frames that arrive now are thrown away: this side closed, or the link failed.
    fn discards(&self) -> bool {
        matches!(self.closure(), Some(Closure::Local(_) | Closure::Lost(_)))
    }

    /// The error for an operation on a link that has ended.
    fn closed(&self) -> TransportError {
        TransportError::Closed(
            self.closure()
                .unwrap_or_else(|| Closure::Lost("the link's tasks stopped".into())),
        )
    }
}

/// The room a frame of `len` bytes takes in a queue of `capacity` bytes: a frame larger than
/// the queue takes all of it and goes alone.
fn room(len: usize, capacity: usize) -> u32 {
    u32::try_from(len.min(capacity)).unwrap_or(u32::MAX)
}

/// Who is on either end of a new link, and its limits.
#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub(crate) local: DeviceId,
    pub(crate) peer: DeviceId,
    pub(crate) role: Role,
    pub(crate) local_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) max_frame_size: usize,
    pub(crate) send_buffer: usize,
    pub(crate) receive_buffer: usize,
    pub(crate) close_timeout: Duration,
}

/// One end of a TCP connection carrying acm frames, from [`TcpTransport`](crate::TcpTransport)'s
/// `dial`, `dial_addr` or `accept`.
///
/// * [`Link::send`] queues the frame for the link's writer and returns; it waits while the
///   frames queued fill the configured send buffer, which happens when the socket does not
///   take them as fast (the peer reads slowly).
/// * [`Link::recv`] reads the socket in the calling task, and only while a call waits: a peer
///   that sends faster than its frames are taken is held back by TCP's flow control. One read
///   asks for at most the configured receive buffer, and brings in every small frame that
///   fits; a frame of 16 KiB or more is read into a buffer of its own.
/// * [`Link::close`] queues CLOSE after the frames already sent and waits until the writer has
///   written it and ended the sending direction (or the close timeout passed). This end sees
///   [`Closure::Local`] at once and discards what still arrives; the peer receives every frame
///   sent before the close, then sees [`Closure::Peer`] with the reason. The connection is
///   dropped when the peer ends it too, or after the close timeout.
/// * A peer's CLOSE ends the link with [`Closure::Peer`] once `recv` reaches it: `recv` returns
///   the frames that came before it, then the closure; what was queued for sending is dropped.
/// * A connection that ends without CLOSE, fails, or breaks the binding (a frame over the
///   maximum, a malformed binding message) ends the link with [`Closure::Lost`] and `recv`
///   fails at once; a frame cut by the end of the stream is never returned. Dropping an end
///   that is still open ends the connection without CLOSE: the peer sees it lost.
pub struct TcpLink {
    info: LinkInfo,
    shared: Arc<Shared>,
    outbound: mpsc::UnboundedSender<Outbound>,
    reading: Arc<Reading>,
}

impl TcpLink {
    /// Starts the link's writer on a connection whose OPEN exchange is done.
    pub(crate) fn start(
        info: LinkInfo,
        reader: FrameReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
    ) -> Self {
        let shared = Arc::new(Shared {
            closure: Mutex::new(None),
            phase: watch::Sender::new(Phase::Open),
            writer_done: watch::Sender::new(false),
            send_room: Arc::new(Semaphore::new(info.send_buffer)),
            send_capacity: info.send_buffer,
        });
        let (outbound, outbound_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_task(Arc::clone(&shared), writer, outbound_rx));
        let (reader, read) = reader.into_parts();
        let receiver = Receiver::new(reader, read, info.max_frame_size, info.receive_buffer);
        Self {
            info,
            shared,
            outbound,
            reading: Arc::new(tokio::sync::Mutex::new(Some(receiver))),
        }
    }

    /// Checks `frame` as the binding requires before it is queued.
    fn check(&self, frame: &FrameBuf) -> Result<(), TransportError> {
        let mut start = [0u8; binding::HEADER_LEN];
        let got = frame.copy_prefix(&mut start);
        binding::check_frame_start(&start[..got], frame.len(), self.info.max_frame_size)
            .map_err(refused)?;
        if self.shared.closure().is_some() {
            return Err(self.shared.closed());
        }
        Ok(())
    }

    /// Queues `frame`, which has its room, for the writer.
    fn queue(&self, frame: FrameBuf, permit: OwnedSemaphorePermit) -> Result<(), TransportError> {
        let slot = self.shared.lock();
        if let Some(closure) = &*slot {
            return Err(TransportError::Closed(closure.clone()));
        }
        // Queued while the link cannot end: a frame never lands behind CLOSE.
        self.outbound
            .send(Outbound::Frame((frame, permit)))
            .map_err(|_| TransportError::Closed(Closure::Lost("the writer stopped".into())))
    }

    /// What the receiver read next, reading while the link is open.
    async fn read(
        &self,
        receiver: &mut Receiver<OwnedReadHalf>,
    ) -> Option<Result<Message, ReadError>> {
        if let Some(message) = receiver.cut().transpose() {
            return Some(message);
        }
        let mut phase = self.shared.phase.subscribe();
        loop {
            if self.shared.discards() {
                return None;
            }
            tokio::select! {
                message = receiver.next() => return Some(message),
                changed = phase.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// The peer's socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.info.peer_addr
    }

    /// This end's socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.info.local_addr
    }
}

impl fmt::Debug for TcpLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpLink")
            .field("local", &self.info.local)
            .field("peer", &self.info.peer)
            .field("role", &self.info.role)
            .field("peer_addr", &self.info.peer_addr)
            .finish_non_exhaustive()
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        self.shared
            .end(Closure::Lost("this end of the link was dropped".into()));
    }
}

/// The error for a frame the link will not send.
fn refused(error: FrameError) -> TransportError {
    match error {
        FrameError::Empty => TransportError::EmptyFrame,
        FrameError::TooLarge { len, max } => TransportError::FrameTooLarge { len, max },
        FrameError::Reserved => TransportError::Unsupported(
            "a frame beginning AC 4D 00 (reserved for the TCP binding's own messages)",
        ),
        _ => TransportError::Unsupported(
            "a frame that is not a 12-byte header followed by the payload length it gives",
        ),
    }
}

#[async_trait]
impl Link for TcpLink {
    fn local_device(&self) -> &DeviceId {
        &self.info.local
    }

    fn peer_device(&self) -> &DeviceId {
        &self.info.peer
    }

    fn role(&self) -> Role {
        self.info.role
    }

    fn max_frame_size(&self) -> usize {
        self.info.max_frame_size
    }

    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        self.send_buf(frame.into()).await
    }

    /// Writes the parts back to back with vectored writes, without joining them first.
    async fn send_buf(&self, frame: FrameBuf) -> Result<(), TransportError> {
        self.check(&frame)?;
        let cost = room(frame.len(), self.shared.send_capacity);
        let permit = Arc::clone(&self.shared.send_room)
            .acquire_many_owned(cost)
            .await
            .map_err(|_| self.shared.closed())?;
        self.queue(frame, permit)
    }

    /// Queues the frame for the writer if the send buffer has room for it now.
    fn try_send_buf(&self, frame: FrameBuf) -> Result<Option<FrameBuf>, TransportError> {
        self.check(&frame)?;
        let cost = room(frame.len(), self.shared.send_capacity);
        match Arc::clone(&self.shared.send_room).try_acquire_many_owned(cost) {
            Ok(permit) => self.queue(frame, permit).map(|()| None),
            Err(TryAcquireError::NoPermits) => Ok(Some(frame)),
            Err(TryAcquireError::Closed) => Err(self.shared.closed()),
        }
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut reading = self.reading.lock().await;
        let Some(receiver) = reading.as_mut() else {
            return Err(self.shared.closed());
        };
        let closure = match self.read(receiver).await {
            None => return Err(self.shared.closed()),
            Some(Ok(Message::Frame(frame))) => return Ok(frame),
            Some(Ok(Message::Close(reason))) => Closure::Peer(reason),
            Some(Err(error)) => Closure::Lost(error.to_string()),
        };
        // The connection is let go: the writer stops, and the peer sees the stream end.
        *reading = None;
        self.shared.end(closure);
        self.shared.advance(Phase::Stopping);
        Err(self.shared.closed())
    }

    async fn close(&self, reason: CloseReason) {
        let queued = self.shared.end_then(Closure::Local(reason.clone()), || {
            let _ = self.outbound.send(Outbound::Close(reason));
        });
        if !queued {
            return;
        }
        let (shared, reading) = (Arc::clone(&self.shared), Arc::clone(&self.reading));
        let timeout = self.info.close_timeout;
        tokio::spawn(async move {
            let mut finished = shared.writer_done.subscribe();
            let written = async {
                let _ = finished.wait_for(|done| *done).await;
            };
            let wound_down = async { tokio::join!(written, discard(&reading)) };
            if tokio::time::timeout(timeout, wound_down).await.is_err() {
                shared.advance(Phase::Stopping);
            }
            reading.lock().await.take();
        });
        let mut finished = self.shared.writer_done.subscribe();
        let _ = finished.wait_for(|done| *done).await;
    }

    fn closure(&self) -> Option<Closure> {
        self.shared.closure()
    }
}

/// Waits until the tasks must stop.
async fn stopping(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|phase| *phase == Phase::Stopping).await;
}

/// Reads and drops what still arrives after this side's close, until the peer ends the
/// connection (or breaks it), so that the peer's sends never wait for a reader that is gone.
async fn discard(reading: &Reading) {
    let mut reading = reading.lock().await;
    if let Some(receiver) = reading.as_mut() {
        while let Ok(Message::Frame(_)) = receiver.next().await {}
    }
}

/// Writes what the link queues until CLOSE has gone or the tasks stop, then ends the sending
/// direction.
async fn write_task(
    shared: Arc<Shared>,
    mut writer: OwnedWriteHalf,
    mut outbound: mpsc::UnboundedReceiver<Outbound>,
) {
    let mut phase = shared.phase.subscribe();
    let written = tokio::select! {
        written = write_queued(&mut writer, &mut outbound) => Some(written),
        () = stopping(&mut phase) => None,
    };
    match written {
        Some(Ok(())) => {
            let _ = writer.shutdown().await;
        }
        Some(Err(error)) => {
            shared.end(Closure::Lost(format!("the connection failed: {error}")));
        }
        None => {}
    }
    shared.writer_done.send_replace(true);
}

/// Writes frames as they are queued, every frame waiting at once in one vectored write, until
/// CLOSE.
async fn write_queued(
    writer: &mut OwnedWriteHalf,
    outbound: &mut mpsc::UnboundedReceiver<Outbound>,
) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut parts = Vec::with_capacity(WRITE_SLICES);
    loop {
        if outbound.recv_many(&mut batch, WRITE_BATCH).await == 0 {
            return Ok(());
        }
        let mut close = None;
        let mut rooms = Vec::with_capacity(batch.len());
        for next in batch.drain(..) {
            match next {
                Outbound::Frame((frame, room)) => {
                    let (head, body) = frame.into_parts();
                    parts.extend([head, body].into_iter().filter(|part| !part.is_empty()));
                    rooms.push(room);
                }
                Outbound::Close(reason) => {
                    parts.push(binding::close(&reason));
                    close = Some(());
                    break;
                }
            }
        }
        write_parts(writer, &mut parts).await?;
        // The frames are on their way: their room is free again.
        drop(rooms);
        if close.is_some() {
            return Ok(());
        }
    }
}

/// Writes `parts` back to back with vectored writes, and leaves `parts` empty.
async fn write_parts(writer: &mut OwnedWriteHalf, parts: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut first = 0;
    while first < parts.len() {
        let slices: Vec<IoSlice<'_>> = parts[first..]
            .iter()
            .take(WRITE_SLICES)
            .map(|part| IoSlice::new(part))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(part) = parts.get_mut(first) else {
                break;
            };
            let from_part = written.min(part.len());
            part.advance(from_part);
            written -= from_part;
            if part.is_empty() {
                first += 1;
            }
        }
    }
    parts.clear();
    Ok(())
}
