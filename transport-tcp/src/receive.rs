//! A link's receiving side after the OPEN exchange: frames cut out of the bytes read off the
//! socket by the task that waits for them, with no task and no queue in between.
//!
//! Small frames are copied out of one read buffer, so that a read brings in as many as the
//! socket holds, and a frame the layer above keeps (a short transfer an app has not read yet)
//! holds its own bytes and no more. A frame of [`OWN_BUFFER`] bytes or more is read into a
//! buffer of its own, of about its size, so that its payload goes from the socket straight into
//! it. Those buffers are used again once the layer above lets go of their frames: memory the
//! allocator gives back to the system costs a page fault per 4 KiB when it is touched again,
//! more than reading the bytes into it.

use std::collections::VecDeque;

use acm_transport::CloseReason;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::binding::{self, BindingError, HEADER_LEN, Header, Kind};
use crate::stream::ReadError;

/// The smallest frame read into a buffer of its own.
pub(crate) const OWN_BUFFER: usize = 16 * 1024;

/// How many times its read-ahead a receiver keeps in large frames' buffers to read into again.
const RECYCLED: usize = 8;

/// What the peer sent next.
#[derive(Debug)]
pub(crate) enum Message {
    /// A frame, whole.
    Frame(Bytes),
    /// The peer's CLOSE.
    Close(CloseReason),
}

/// Reads what a peer sends after the OPEN exchange, refusing frames larger than
/// `max_frame_size` from their header alone (`TCP-3`). Every method leaves what it has read in
/// the receiver, so a read that is given up (its future dropped) loses nothing.
#[derive(Debug)]
pub(crate) struct Receiver<R> {
    inner: R,
    /// Bytes read and not yet cut into messages.
    buf: BytesMut,
    /// A frame of at least [`OWN_BUFFER`] bytes being read into its own buffer, and its size.
    large: Option<(BytesMut, usize)>,
    /// The large frames handed out last, oldest first, whose buffers are read into again once
    /// nothing else holds them; their lengths added up, at most [`RECYCLED`] times `read_ahead`.
    recycled: VecDeque<Bytes>,
    recycled_bytes: usize,
    /// Bytes of an unknown binding message still to be skipped.
    skip: usize,
    /// Whether the last frame was read into its own buffer: the next read then asks for a
    /// header alone, so that a large frame that follows is not read ahead into `buf` and
    /// copied out of it.
    after_large: bool,
    max_frame_size: usize,
    /// The most bytes one read asks for.
    read_ahead: usize,
}

impl<R: AsyncRead + Unpin> Receiver<R> {
    /// A receiver of `inner`, which has already given the bytes `read` (read ahead with the
    /// OPEN exchange), that refuses frames over `max_frame_size` bytes and reads at most
    /// `read_ahead` bytes at a time.
    pub(crate) fn new(inner: R, read: BytesMut, max_frame_size: usize, read_ahead: usize) -> Self {
        Self {
            inner,
            buf: read,
            large: None,
            recycled: VecDeque::new(),
            recycled_bytes: 0,
            skip: 0,
            after_large: false,
            max_frame_size,
            read_ahead: read_ahead.max(1),
        }
    }

    /// The next frame or CLOSE, reading the socket as long as it takes. Binding messages of
    /// unknown kinds are skipped; an OPEN is an error.
    pub(crate) async fn next(&mut self) -> Result<Message, ReadError> {
        loop {
            if let Some(message) = self.cut()? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    /// The next frame or CLOSE if it has been read whole already.
    pub(crate) fn cut(&mut self) -> Result<Option<Message>, ReadError> {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buf.len());
                self.buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            if let Some((frame, size)) = &mut self.large {
                if frame.len() < *size {
                    return Ok(None);
                }
                // The read that ended the frame may have brought the next header, or part of
                // it, into the frame's buffer (while `buf` was empty).
                self.buf.extend_from_slice(&frame[*size..]);
                frame.truncate(*size);
                self.after_large = true;
                return Ok(self
                    .large
                    .take()
                    .map(|(frame, _)| Message::Frame(self.recycle(frame.freeze()))));
            }
            let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
                return Ok(None);
            };
            let parsed = Header::parse(header)?;
            let size = HEADER_LEN + parsed.payload_len();
            match parsed {
                // OPEN and CLOSE are short: their headers have bounded their length.
                Header::Binding {
                    kind: kind @ (Kind::Open | Kind::Close),
                    ..
                } => {
                    if self.buf.len() < size {
                        return Ok(None);
                    }
                    let message = self.buf.split_to(size);
                    let payload = &message[HEADER_LEN..];
                    if kind == Kind::Open {
                        binding::parse_open(payload)?;
                        return Err(ReadError::Unexpected("a second OPEN"));
                    }
                    return Ok(Some(Message::Close(binding::parse_close(payload)?)));
                }
                _ if size > self.max_frame_size => {
                    return Err(BindingError::FrameTooLarge {
                        size,
                        max: self.max_frame_size,
                    }
                    .into());
                }
                Header::Binding { .. } => self.skip = size,
                Header::Frame { size } if size >= OWN_BUFFER => {
                    let mut frame = self.buffer_for(size + HEADER_LEN);
                    let here = self.buf.len().min(size);
                    frame.extend_from_slice(&self.buf[..here]);
                    self.buf.advance(here);
                    self.large = Some((frame, size));
                }
                Header::Frame { size } => {
                    if self.buf.len() < size {
                        return Ok(None);
                    }
                    self.after_large = false;
                    let frame = Bytes::copy_from_slice(&self.buf[..size]);
                    self.buf.advance(size);
                    return Ok(Some(Message::Frame(frame)));
                }
            }
        }
    }

    /// An empty buffer for a frame of `size` bytes: the oldest recycled one if nothing else
    /// holds it and it is at most a quarter larger, a new one otherwise: a frame never holds
    /// much more memory than its bytes.
    fn buffer_for(&mut self, size: usize) -> BytesMut {
        while let Some(old) = self.recycled.pop_front() {
            self.recycled_bytes = self.recycled_bytes.saturating_sub(old.len());
            match old.try_into_mut() {
                Ok(mut buf) if (size..=size.saturating_add(size / 4)).contains(&buf.capacity()) => {
                    buf.clear();
                    return buf;
                }
                Ok(_) => {}
                // Still held: the newer ones are likelier still to be.
                Err(_) => break,
            }
        }
        BytesMut::with_capacity(size)
    }

    /// Keeps a handle to `frame`'s buffer, to read into again once the frame is let go.
    fn recycle(&mut self, frame: Bytes) -> Bytes {
        self.recycled_bytes += frame.len();
        self.recycled.push_back(frame.clone());
        while self.recycled_bytes > self.read_ahead.saturating_mul(RECYCLED) {
            let Some(old) = self.recycled.pop_front() else {
                break;
            };
            self.recycled_bytes = self.recycled_bytes.saturating_sub(old.len());
        }
        frame
    }

    /// Makes room in `buf` for a read of up to `want` bytes and says how many to read: `want`
    /// where the buffer has that room or gets it by moving what it holds to its front, the room
    /// it has where that is at least half of `want`, or else `want` in a buffer of exactly what
    /// it holds and `want`, the rest of the old one moved there. A buffer holding part of a
    /// frame is never doubled (as `reserve` would), so that a link's read buffer stays within
    /// its read-ahead and one frame read in part.
    fn make_room(&mut self, want: usize) -> usize {
        let room = self.buf.capacity().saturating_sub(self.buf.len());
        if room >= want || self.buf.try_reclaim(want) {
            return want;
        }
        if room >= want / 2 && room > 0 {
            return room;
        }
        let mut moved = BytesMut::with_capacity(self.buf.len().saturating_add(want));
        moved.extend_from_slice(&self.buf);
        self.buf = moved;
        want
    }

    /// Reads once: the rest of a large frame and the next header into the frame's buffer, or
    /// what the socket holds, up to `read_ahead` bytes (a header alone after a large frame),
    /// into `buf`.
    async fn fill(&mut self) -> Result<(), ReadError> {
        let read = if let Some((frame, size)) = &mut self.large {
            let rest = (*size + HEADER_LEN).saturating_sub(frame.len());
            self.inner.read_buf(&mut frame.limit(rest)).await
        } else {
            let want = if self.after_large && self.buf.len() < HEADER_LEN {
                HEADER_LEN.saturating_sub(self.buf.len())
            } else {
                self.read_ahead
            };
            let want = self.make_room(want);
            self.inner.read_buf(&mut (&mut self.buf).limit(want)).await
        };
        match read {
            Ok(0) if self.buf.is_empty() && self.large.is_none() && self.skip == 0 => {
                Err(ReadError::Ended)
            }
            Ok(0) => Err(ReadError::EndedMidFrame),
            Ok(_) => Ok(()),
            Err(error) => Err(ReadError::Io(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, len: usize) -> Vec<u8> {
        let payload = len - HEADER_LEN;
        let mut frame = vec![0xAC, 0x4D, 1, kind, 0];
        frame.extend_from_slice(&u32::try_from(payload).unwrap().to_be_bytes()[1..]);
        frame.extend_from_slice(&[0, 0, 0, 1]);
        frame.extend((0..payload).map(|i| i as u8));
        frame
    }

    /// Every frame of `stream`, read `read_ahead` bytes at a time.
    async fn frames(stream: &[u8], read_ahead: usize) -> Result<Vec<Bytes>, ReadError> {
        let mut receiver = Receiver::new(stream, BytesMut::new(), 1 << 20, read_ahead);
        let mut got = Vec::new();
        loop {
            match receiver.next().await {
                Ok(Message::Frame(frame)) => got.push(frame),
                Ok(Message::Close(_)) => return Ok(got),
                Err(ReadError::Ended) => return Ok(got),
                Err(error) => return Err(error),
            }
        }
    }

    #[tokio::test]
    async fn small_and_large_frames_mixed_come_out_whole_at_any_read_size() {
        let sizes = [
            12,
            13,
            100,
            OWN_BUFFER - 1,
            OWN_BUFFER,
            70_000,
            12,
            40_000,
            500,
        ];
        let sent: Vec<Vec<u8>> = sizes.iter().map(|&len| frame(7, len)).collect();
        let stream = sent.concat();
        for read_ahead in [1, 5, 12, 1000, OWN_BUFFER, 1 << 20] {
            let got = frames(&stream, read_ahead).await.unwrap();
            assert_eq!(got.len(), sent.len(), "read_ahead {read_ahead}");
            for (got, sent) in got.iter().zip(&sent) {
                assert_eq!(got, &sent[..], "read_ahead {read_ahead}");
            }
        }
    }

    #[tokio::test]
    async fn a_small_frame_holds_its_own_bytes_and_not_the_read_buffer() {
        let stream = [frame(7, 100), frame(7, 200), frame(7, 300)].concat();
        let mut receiver = Receiver::new(&stream[..], BytesMut::new(), 1 << 20, 1 << 20);
        let Ok(Message::Frame(first)) = receiver.next().await else {
            panic!("expected a frame");
        };
        // The other two were read with it and are still in the receiver.
        assert!(first.is_unique());
        assert_eq!(first.len(), 100);
    }

    #[tokio::test]
    async fn a_large_frame_has_a_buffer_of_its_own() {
        let stream = [frame(7, 100), frame(7, 50_000), frame(7, 100)].concat();
        let got = frames(&stream, 1 << 20).await.unwrap();
        let large = got[1].clone();
        drop(got);
        assert_eq!(large.len(), 50_000);
        // Nothing else shares its buffer once the receiver is gone.
        assert!(large.is_unique());
    }

    #[tokio::test]
    async fn a_large_frame_buffer_is_used_again_only_once_let_go() {
        let stream = [frame(7, 20_000), frame(7, 20_000), frame(7, 20_000)].concat();
        let mut receiver = Receiver::new(&stream[..], BytesMut::new(), 1 << 20, 1 << 20);
        let mut next = async || match receiver.next().await {
            Ok(Message::Frame(frame)) => frame,
            other => panic!("expected a frame, got {other:?}"),
        };
        let first = next().await;
        let held = first.as_ptr();
        // Still held: the second frame gets another buffer.
        let second = next().await;
        assert_ne!(second.as_ptr(), held);
        assert_eq!(second, &stream[20_000..40_000]);
        // Let go: the third frame is read into it.
        drop(first);
        let third = next().await;
        assert_eq!(third.as_ptr(), held);
        assert_eq!(third, &stream[40_000..]);
    }

    /// A stream that gives at most `step` bytes a read, as a socket does when the peer's bytes
    /// come in bit by bit.
    struct Trickle<'a> {
        rest: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.rest.len().min(self.step).min(buf.remaining());
            let (now, rest) = self.rest.split_at(n);
            buf.put_slice(now);
            self.rest = rest;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn the_read_buffer_holds_one_read_ahead_and_part_of_a_frame_at_most() {
        let sizes = [700, 12, 3000, 700, 5000, 40, 900].repeat(20);
        let stream: Vec<u8> = sizes.iter().flat_map(|&len| frame(7, len)).collect();
        let read_ahead = 8000;
        for step in [300, 1000, 2999, 7000] {
            let trickle = Trickle {
                rest: &stream,
                step,
            };
            let mut receiver = Receiver::new(trickle, BytesMut::new(), 1 << 20, read_ahead);
            let mut most = 0;
            for &len in &sizes {
                assert!(matches!(receiver.next().await, Ok(Message::Frame(f)) if f.len() == len));
                most = most.max(receiver.buf.capacity());
            }
            assert!(
                most <= read_ahead + 5000,
                "reads of {step}: a read buffer of {most} bytes"
            );
        }
    }

    #[tokio::test]
    async fn bytes_read_with_the_open_exchange_come_first() {
        let stream = [frame(7, 30), frame(7, 20_000)].concat();
        let (early, late) = stream.split_at(45);
        let mut receiver = Receiver::new(late, BytesMut::from(early), 1 << 20, 64);
        for want in [&stream[..30], &stream[30..]] {
            match receiver.next().await.unwrap() {
                Message::Frame(frame) => assert_eq!(frame, want),
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn unknown_binding_messages_are_skipped_and_close_ends_the_frames() {
        let mut stream = vec![0xAC, 0x4D, 0, 0x7E, 0, 0, 0, 3, 0, 0, 0, 0, 1, 2, 3];
        stream.extend_from_slice(&frame(7, 40));
        stream.extend_from_slice(&binding::close(&CloseReason::new(9, "bye")));
        for read_ahead in [1, 7, 1000] {
            let mut receiver = Receiver::new(&stream[..], BytesMut::new(), 1 << 20, read_ahead);
            assert!(matches!(receiver.next().await, Ok(Message::Frame(f)) if f.len() == 40));
            assert!(matches!(
                receiver.next().await,
                Ok(Message::Close(reason)) if reason == CloseReason::new(9, "bye")
            ));
        }
    }

    #[tokio::test]
    async fn a_stream_cut_anywhere_in_a_message_yields_nothing_partial() {
        let stream = [frame(7, 30), frame(7, 30_000)].concat();
        for cut in [31, 41, 42, 100, 30_029] {
            match frames(&stream[..cut], 1000).await {
                Err(ReadError::EndedMidFrame) => {}
                other => panic!("cut at {cut}: expected the frame cut, got {other:?}"),
            }
        }
        assert_eq!(frames(&stream[..30], 1000).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_frame_over_the_maximum_and_a_second_open_are_refused() {
        let huge = [0xAC, 0x4D, 1, 0x80, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1];
        let mut receiver = Receiver::new(&huge[..], BytesMut::new(), 65_535, 1000);
        assert!(matches!(
            receiver.next().await,
            Err(ReadError::Binding(BindingError::FrameTooLarge {
                size: 16_777_227,
                max: 65_535
            }))
        ));
        let open = binding::open(&acm_transport::DeviceId::new("pc").unwrap());
        let mut receiver = Receiver::new(&open[..], BytesMut::new(), 65_535, 1000);
        assert!(matches!(
            receiver.next().await,
            Err(ReadError::Unexpected(_))
        ));
    }
}
