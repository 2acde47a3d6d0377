//! A link: one TCP connection after the OPEN exchange, written by one task and read by
//! another, with bounded queues between them and the link's user.

use std::fmt;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use acm_transport::{CloseReason, Closure, DeviceId, FrameBuf, Link, Role, TransportError};
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::binding::{self, FrameError};
use crate::stream::{FrameReader, Next, ReadError};

/// How much a writer gathers before it writes to the socket.
const WRITE_BUFFER: usize = 16 * 1024;

/// A frame on its way, with the room it takes in a queue.
type Queued = (Bytes, OwnedSemaphorePermit);

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
    /// This side closed: the writer sends what was queued and CLOSE, the reader discards what
    /// still arrives until the peer ends the connection.
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
    /// Set once the reader has finished.
    reader_done: watch::Sender<bool>,
    /// Room for frames queued for sending, in bytes.
    send_room: Arc<Semaphore>,
    send_capacity: usize,
    /// Room for frames received and not yet taken, in bytes.
    receive_room: Arc<Semaphore>,
    receive_capacity: usize,
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
        let (phase, discards) = match closure {
            Closure::Local(_) => (Phase::Closing, true),
            Closure::Peer(_) => (Phase::Stopping, false),
            _ => (Phase::Stopping, true),
        };
        *slot = Some(closure);
        then();
        drop(slot);
        self.send_room.close();
        if discards {
            self.receive_room.close();
        }
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
/// * [`Link::recv`] takes frames the link's reader has read. The reader stops reading the
///   socket while the frames waiting for `recv` fill the receive buffer, which holds the peer
///   back through TCP's flow control.
/// * [`Link::close`] queues CLOSE after the frames already sent and waits until the writer has
///   written it and ended the sending direction (or the close timeout passed). This end sees
///   [`Closure::Local`] at once and discards what still arrives; the peer receives every frame
///   sent before the close, then sees [`Closure::Peer`] with the reason. The connection is
///   dropped when the peer ends it too, or after the close timeout.
/// * A peer's CLOSE ends the link with [`Closure::Peer`]: `recv` still returns the frames
///   that came before it, then the closure; what was queued for sending is dropped.
/// * A connection that ends without CLOSE, fails, or breaks the binding (a frame over the
///   maximum, a malformed binding message) ends the link with [`Closure::Lost`] and `recv`
///   fails at once; a frame cut by the end of the stream is never returned. Dropping an end
///   that is still open ends the connection without CLOSE: the peer sees it lost.
pub struct TcpLink {
    info: LinkInfo,
    shared: Arc<Shared>,
    outbound: mpsc::UnboundedSender<Outbound>,
    inbound: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
}

impl TcpLink {
    /// Starts the link's tasks on a connection whose OPEN exchange is done.
    pub(crate) fn start(
        info: LinkInfo,
        reader: FrameReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
    ) -> Self {
        let shared = Arc::new(Shared {
            closure: Mutex::new(None),
            phase: watch::Sender::new(Phase::Open),
            writer_done: watch::Sender::new(false),
            reader_done: watch::Sender::new(false),
            send_room: Arc::new(Semaphore::new(info.send_buffer)),
            send_capacity: info.send_buffer,
            receive_room: Arc::new(Semaphore::new(info.receive_buffer)),
            receive_capacity: info.receive_buffer,
        });
        let (outbound, outbound_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound) = mpsc::unbounded_channel();
        let writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
        tokio::spawn(write_task(Arc::clone(&shared), writer, outbound_rx));
        tokio::spawn(read_task(Arc::clone(&shared), reader, inbound_tx));
        Self {
            info,
            shared,
            outbound,
            inbound: tokio::sync::Mutex::new(inbound),
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
        let mut start = [0u8; binding::HEADER_LEN];
        let got = frame.copy_prefix(&mut start);
        binding::check_frame_start(&start[..got], frame.len(), self.info.max_frame_size)
            .map_err(refused)?;
        if self.shared.closure().is_some() {
            return Err(self.shared.closed());
        }
        let cost = room(frame.len(), self.shared.send_capacity);
        let permit = Arc::clone(&self.shared.send_room)
            .acquire_many_owned(cost)
            .await
            .map_err(|_| self.shared.closed())?;
        let slot = self.shared.lock();
        if let Some(closure) = &*slot {
            return Err(TransportError::Closed(closure.clone()));
        }
        // Queued while the link cannot end: a frame never lands behind CLOSE.
        self.outbound
            .send(Outbound::Frame((frame, permit)))
            .map_err(|_| TransportError::Closed(Closure::Lost("the writer stopped".into())))
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut inbound = self.inbound.lock().await;
        let mut phase = self.shared.phase.subscribe();
        loop {
            if self.shared.discards() {
                return Err(self.shared.closed());
            }
            tokio::select! {
                queued = inbound.recv() => {
                    return match queued {
                        Some((frame, _room)) if !self.shared.discards() => Ok(frame),
                        _ => Err(self.shared.closed()),
                    };
                }
                changed = phase.changed() => {
                    if changed.is_err() {
                        return Err(self.shared.closed());
                    }
                }
            }
        }
    }

    async fn close(&self, reason: CloseReason) {
        let queued = self.shared.end_then(Closure::Local(reason.clone()), || {
            let _ = self.outbound.send(Outbound::Close(reason));
        });
        if !queued {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let timeout = self.info.close_timeout;
        tokio::spawn(async move {
            let mut written = shared.writer_done.subscribe();
            let mut read = shared.reader_done.subscribe();
            let wound_down = async {
                let _ = written.wait_for(|done| *done).await;
                let _ = read.wait_for(|done| *done).await;
            };
            if tokio::time::timeout(timeout, wound_down).await.is_err() {
                shared.advance(Phase::Stopping);
            }
        });
        let mut finished = self.shared.writer_done.subscribe();
        let _ = finished.wait_for(|done| *done).await;
    }

    fn closure(&self) -> Option<Closure> {
        self.shared.closure()
    }

    /// The dialer's OPEN, then the acceptor's (`TCP-5`), as each was written.
    fn opening(&self) -> Bytes {
        let (dialer, acceptor) = self
            .info
            .role
            .dialer_first(&self.info.local, &self.info.peer);
        [binding::open(dialer), binding::open(acceptor)]
            .concat()
            .into()
    }
}

/// Waits until the tasks must stop.
async fn stopping(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|phase| *phase == Phase::Stopping).await;
}

/// Writes what the link queues until CLOSE has gone or the tasks stop, then ends the sending
/// direction.
async fn write_task(
    shared: Arc<Shared>,
    mut writer: BufWriter<OwnedWriteHalf>,
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

/// Writes frames as they are queued, flushing whenever the queue is empty, until CLOSE.
async fn write_queued(
    writer: &mut BufWriter<OwnedWriteHalf>,
    outbound: &mut mpsc::UnboundedReceiver<Outbound>,
) -> std::io::Result<()> {
    loop {
        let next = match outbound.try_recv() {
            Ok(next) => next,
            Err(TryRecvError::Disconnected) => return Ok(()),
            Err(TryRecvError::Empty) => {
                writer.flush().await?;
                match outbound.recv().await {
                    Some(next) => next,
                    None => return Ok(()),
                }
            }
        };
        match next {
            Outbound::Frame((frame, room)) => {
                write_parts(writer, frame).await?;
                drop(room);
            }
            Outbound::Close(reason) => {
                writer.write_all(&binding::close(&reason)).await?;
                return writer.flush().await;
            }
        }
    }
}

/// Writes both parts of `frame`: with vectored writes while the head lasts (one system call for
/// both when the buffer is empty and the body large), then the rest of the body.
async fn write_parts(
    writer: &mut BufWriter<OwnedWriteHalf>,
    frame: FrameBuf,
) -> std::io::Result<()> {
    let (mut head, mut body) = frame.into_parts();
    while !head.is_empty() {
        let parts = [IoSlice::new(&head), IoSlice::new(&body)];
        let written = writer.write_vectored(&parts).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let from_head = written.min(head.len());
        head.advance(from_head);
        body.advance(written - from_head);
    }
    writer.write_all(&body).await
}

/// Reads the connection until it ends or the tasks stop, and ends the link as it says.
async fn read_task(
    shared: Arc<Shared>,
    mut reader: FrameReader<OwnedReadHalf>,
    inbound: mpsc::UnboundedSender<Queued>,
) {
    let mut phase = shared.phase.subscribe();
    let ended = tokio::select! {
        ended = read_frames(&shared, &mut reader, &inbound) => Some(ended),
        () = stopping(&mut phase) => None,
    };
    match ended {
        Some(Ok(reason)) => {
            shared.end(Closure::Peer(reason));
        }
        // The peer ended the connection after this side's CLOSE: the close is complete.
        Some(Err(ReadError::Ended)) if shared.closure().is_some() => {}
        Some(Err(error)) => {
            shared.end(Closure::Lost(error.to_string()));
            shared.advance(Phase::Stopping);
        }
        None => {}
    }
    shared.reader_done.send_replace(true);
}

/// Reads frames into the queue, waiting for room before each payload, until CLOSE.
async fn read_frames(
    shared: &Shared,
    reader: &mut FrameReader<OwnedReadHalf>,
    inbound: &mpsc::UnboundedSender<Queued>,
) -> Result<CloseReason, ReadError> {
    loop {
        match reader.next().await? {
            Next::Frame { header, size } => {
                let cost = room(size, shared.receive_capacity);
                // No room is given once the link discards: the frame is read and dropped.
                let room = Arc::clone(&shared.receive_room)
                    .acquire_many_owned(cost)
                    .await
                    .ok();
                let frame = reader.body(header, size).await?;
                if let Some(room) = room {
                    let _ = inbound.send((frame, room));
                }
            }
            Next::Open(_) => return Err(ReadError::Unexpected("a second OPEN")),
            Next::Close(reason) => return Ok(reason),
        }
    }
}
