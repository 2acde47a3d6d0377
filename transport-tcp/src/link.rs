//! A link: one TCP connection after the OPEN exchange, written by the task that calls `send`
//! and read by the task that calls `recv`, with no task or queue of the link's own in between.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};
use std::time::Duration;

use acm_transport::{
    CloseReason, Closure, DeviceId, FrameBuf, Link, PeerAddress, Role, TransportError,
};
use async_trait::async_trait;
use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::binding::{self, FrameError};
use crate::receive::{Message, Receiver};
use crate::stream::{FrameReader, ReadError};
use crate::waste::Charge;

/// The most parts of frames one vectored write is given (below every system's `IOV_MAX`).
const WRITE_SLICES: usize = 64;

/// The reading side: `None` once the connection's reading half has been let go.
type Reading = tokio::sync::Mutex<Option<Receiver<OwnedReadHalf>>>;

/// The writing side.
struct Writing {
    /// The connection's writing half; `None` once let go, which ends the sending direction.
    half: Option<OwnedWriteHalf>,
    /// What is still to be written of the frame being sent, or of one whose send was given up
    /// part-way (its future dropped): it goes out before anything else.
    rest: VecDeque<Bytes>,
}

/// Where the link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Both directions carry frames.
    Open,
    /// This side closed: CLOSE goes after what was sent, and what still arrives is read and
    /// discarded until the peer ends the connection.
    Closing,
    /// Reads and writes under way stop now and the connection is dropped.
    Stopping,
}

/// What the link and the task that winds it down after a close share.
struct Shared {
    closure: Mutex<Option<Closure>>,
    phase: watch::Sender<Phase>,
    /// The tasks waiting in a read and in a write, woken when the phase moves on: a slot each
    /// rather than a subscription to `phase`, which costs a registration per poll.
    waiting: Mutex<Waiting>,
}

/// The wakers of a read and a write under way (each side has one at a time).
#[derive(Default)]
struct Waiting {
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Option<Closure>> {
        lock(&self.closure)
    }

    /// Ends the link with `closure` unless it has already ended. Says whether it ended it.
    fn end(&self, closure: Closure) -> bool {
        let mut slot = self.lock();
        if slot.is_some() {
            return false;
        }
        let phase = match closure {
            Closure::Local(_) => Phase::Closing,
            _ => Phase::Stopping,
        };
        *slot = Some(closure);
        drop(slot);
        self.advance(phase);
        true
    }

    /// Moves the tasks on to `phase`, never back.
    fn advance(&self, phase: Phase) {
        let moved = self.phase.send_if_modified(|now| {
            let later = *now < phase;
            if later {
                *now = phase;
            }
            later
        });
        if moved {
            let waiting = std::mem::take(&mut *lock(&self.waiting));
            waiting
                .reader
                .into_iter()
                .chain(waiting.writer)
                .for_each(Waker::wake);
        }
    }

    /// Leaves `waker` to be woken when the phase moves on, in the reader's slot or the writer's.
    fn wake_on_change(&self, waker: &Waker, reader: bool) {
        let mut waiting = lock(&self.waiting);
        let slot = if reader {
            &mut waiting.reader
        } else {
            &mut waiting.writer
        };
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    fn stopping(&self) -> bool {
        *self.phase.borrow() == Phase::Stopping
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

/// Who is on either end of a new link, and its limits.
#[derive(Debug, Clone)]
pub(crate) struct LinkInfo {
    pub(crate) local: DeviceId,
    pub(crate) peer: DeviceId,
    pub(crate) role: Role,
    pub(crate) local_addr: SocketAddr,
    pub(crate) peer_addr: SocketAddr,
    pub(crate) max_frame_size: usize,
    pub(crate) receive_buffer: usize,
    pub(crate) close_timeout: Duration,
}

/// One end of a TCP connection carrying acm frames, from [`TcpTransport`](crate::TcpTransport)'s
/// `dial`, `dial_addr` or `accept`.
///
/// * `Link::send` writes the frame to the socket in the calling task, with one vectored
///   write of its parts where the socket takes them; it waits while the socket's buffer is
///   full (the peer reads slowly). Sends from several tasks go one after the other, whole.
/// * [`Link::recv`] reads the socket in the calling task, and only while a call waits: a peer
///   that sends faster than its frames are taken is held back by TCP's flow control. One read
///   asks for at most the configured receive buffer, and brings in every small frame that
///   fits; a frame of 16 KiB or more is read into a buffer of its own.
///   [`Link::send_bufs`] writes several frames with the same vectored writes. A send whose
///   future is dropped part-way still finishes its frame before the next one or the CLOSE.
/// * [`Link::close`] writes CLOSE after the frames already sent and ends the sending direction
///   (giving up after the close timeout). This end sees [`Closure::Local`] at once and
///   discards what still arrives; the peer receives every frame sent before the close, then
///   sees [`Closure::Peer`] with the reason. The connection is dropped when the peer ends it
///   too, or after the close timeout.
/// * A peer's CLOSE ends the link with [`Closure::Peer`] once `recv` reaches it: `recv` returns
///   the frames that came before it, then the closure, and the link ends the connection.
/// * A connection that ends without CLOSE, fails, or breaks the binding (a frame over the
///   maximum, a malformed binding message) ends the link with [`Closure::Lost`] and `recv`
///   fails at once; a frame cut by the end of the stream is never returned. Dropping an end
///   that is still open ends the connection without CLOSE: the peer sees it lost.
pub struct TcpLink {
    info: LinkInfo,
    shared: Arc<Shared>,
    writing: tokio::sync::Mutex<Writing>,
    reading: Arc<Reading>,
    /// An accepted link's charge to its peer's address (`LIMIT-3`), until the peer sends
    /// something: charged if this side ends the link first.
    unused: Mutex<Option<Charge>>,
    /// Whether `unused` has been settled.
    heard: AtomicBool,
}

impl TcpLink {
    /// Makes the link of a connection whose OPEN exchange is done.
    pub(crate) fn start(
        info: LinkInfo,
        reader: FrameReader<OwnedReadHalf>,
        writer: OwnedWriteHalf,
        unused: Option<Charge>,
    ) -> Self {
        let shared = Arc::new(Shared {
            closure: Mutex::new(None),
            phase: watch::Sender::new(Phase::Open),
            waiting: Mutex::new(Waiting::default()),
        });
        let (reader, read) = reader.into_parts();
        let receiver = Receiver::new(reader, read, info.max_frame_size, info.receive_buffer);
        Self {
            info,
            shared,
            writing: tokio::sync::Mutex::new(Writing {
                half: Some(writer),
                rest: VecDeque::new(),
            }),
            reading: Arc::new(tokio::sync::Mutex::new(Some(receiver))),
            heard: AtomicBool::new(unused.is_none()),
            unused: Mutex::new(unused),
        }
    }

    /// The peer has sent something (a frame, its CLOSE, or the end of its stream): the link
    /// was not wasted.
    fn heard(&self) {
        if !self.heard.load(Ordering::Relaxed) {
            self.heard.store(true, Ordering::Relaxed);
            if let Some(charge) = lock(&self.unused).take() {
                charge.forgive();
            }
        }
    }

    /// Checks `frame` as the binding requires before it is sent.
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

    /// Writes `frames` in order, up to the first the binding refuses, which fails the call.
    async fn send_frames(&self, frames: Vec<FrameBuf>) -> Result<(), TransportError> {
        let refused = frames
            .iter()
            .enumerate()
            .find_map(|(at, frame)| self.check(frame).err().map(|error| (at, error)));
        let good = refused.as_ref().map_or(frames.len(), |(at, _)| *at);
        if good > 0 {
            let mut writing = self.writing.lock().await;
            // Checked again in turn: a frame never goes after CLOSE.
            if self.shared.closure().is_some() {
                return Err(self.shared.closed());
            }
            for frame in frames.into_iter().take(good) {
                let (head, body) = frame.into_parts();
                writing
                    .rest
                    .extend([head, body].into_iter().filter(|part| !part.is_empty()));
            }
            self.write_rest(&mut writing).await?;
        }
        refused.map_or(Ok(()), |(_, error)| Err(error))
    }

    /// Writes what `writing` has still to write, unless the link stops first. A failed write
    /// loses the link; the writing half is let go once the link stops.
    async fn write_rest(&self, writing: &mut Writing) -> Result<(), TransportError> {
        let Writing { half, rest } = writing;
        let Some(out) = half.as_mut() else {
            return Err(self.shared.closed());
        };
        let written = {
            let writing = write_parts(out, rest);
            tokio::pin!(writing);
            std::future::poll_fn(|cx| {
                self.shared.wake_on_change(cx.waker(), false);
                if self.shared.stopping() {
                    return Poll::Ready(Err(std::io::ErrorKind::ConnectionAborted.into()));
                }
                writing.as_mut().poll(cx)
            })
            .await
        };
        let failed = written.is_err();
        if let Err(error) = written {
            self.shared
                .end(Closure::Lost(format!("the connection failed: {error}")));
            self.shared.advance(Phase::Stopping);
        }
        if failed || self.shared.stopping() {
            *half = None;
            rest.clear();
            return Err(self.shared.closed());
        }
        Ok(())
    }

    /// What the receiver read next, reading while the link is open.
    async fn read(
        &self,
        receiver: &mut Receiver<OwnedReadHalf>,
    ) -> Option<Result<Message, ReadError>> {
        if self.shared.discards() {
            return None;
        }
        if let Some(message) = receiver.cut().transpose() {
            return Some(message);
        }
        let next = receiver.next();
        tokio::pin!(next);
        std::future::poll_fn(|cx| {
            // The waker is left before the check, so that a close after it wakes this read.
            self.shared.wake_on_change(cx.waker(), true);
            if self.shared.discards() {
                return Poll::Ready(None);
            }
            next.as_mut().poll(cx).map(Some)
        })
        .await
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
        self.send_frames(vec![frame]).await
    }

    /// Writes the frames back to back with vectored writes, without joining them first.
    async fn send_bufs(&self, frames: Vec<FrameBuf>) -> Result<(), TransportError> {
        self.send_frames(frames).await
    }

    async fn recv(&self) -> Result<Bytes, TransportError> {
        let mut reading = self.reading.lock().await;
        let Some(receiver) = reading.as_mut() else {
            return Err(self.shared.closed());
        };
        let read = self.read(receiver).await;
        if read.is_some() {
            self.heard();
        }
        let closure = match read {
            None => return Err(self.shared.closed()),
            Some(Ok(Message::Frame(frame))) => return Ok(frame),
            Some(Ok(Message::Close(reason))) => Closure::Peer(reason),
            Some(Err(error)) => Closure::Lost(error.to_string()),
        };
        // The connection is let go, and the peer sees the stream end (at once unless a send
        // is under way, which stops).
        *reading = None;
        self.shared.end(closure);
        self.shared.advance(Phase::Stopping);
        if let Ok(mut writing) = self.writing.try_lock() {
            writing.half = None;
        }
        Err(self.shared.closed())
    }

    async fn close(&self, reason: CloseReason) {
        if !self.shared.end(Closure::Local(reason.clone())) {
            return;
        }
        let (shared, reading) = (Arc::clone(&self.shared), Arc::clone(&self.reading));
        let timeout = self.info.close_timeout;
        tokio::spawn(async move {
            let mut phase = shared.phase.subscribe();
            let wound_down = async {
                tokio::select! {
                    () = discard(&reading) => {}
                    () = stopping(&mut phase) => {}
                }
            };
            if tokio::time::timeout(timeout, wound_down).await.is_err() {
                shared.advance(Phase::Stopping);
            }
            reading.lock().await.take();
        });
        let written = tokio::time::timeout(timeout, async {
            let mut writing = self.writing.lock().await;
            writing.rest.push_back(binding::close(&reason));
            if self.write_rest(&mut writing).await.is_ok()
                && let Some(out) = writing.half.as_mut()
            {
                let _ = out.shutdown().await;
            }
            writing.half = None;
        })
        .await;
        if written.is_err() {
            self.shared.advance(Phase::Stopping);
        }
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

    fn peer_address(&self) -> Option<PeerAddress> {
        Some(PeerAddress::Ip(self.info.peer_addr.ip()))
    }
}

/// A std mutex's guard, whether or not a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

/// Writes `parts` back to back with vectored writes, taking each off as it is written, so that
/// what is left is still there if this is given up.
async fn write_parts(
    writer: &mut OwnedWriteHalf,
    parts: &mut VecDeque<Bytes>,
) -> std::io::Result<()> {
    while !parts.is_empty() {
        let slices: Vec<IoSlice<'_>> = parts
            .iter()
            .take(WRITE_SLICES)
            .map(|part| IoSlice::new(part))
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let Some(part) = parts.front_mut() else {
                break;
            };
            let from_part = written.min(part.len());
            part.advance(from_part);
            written -= from_part;
            if part.is_empty() {
                parts.pop_front();
            }
        }
    }
    Ok(())
}
