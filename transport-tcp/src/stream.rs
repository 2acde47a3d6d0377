//! Reading binding messages and frame headers off a byte stream (SPEC.md section 3.6) during
//! the OPEN exchange: a header, its check, then the bytes it announces. Once a link starts, its
//! [`Receiver`](crate::receive::Receiver) reads on, from the bytes read ahead here.

use std::io;

use acm_transport::DeviceId;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

use crate::binding::{self, BindingError, HEADER_LEN, Header, Kind};

/// How much a reader buffers below the frames it reads.
const READ_BUFFER: usize = 64 * 1024;

/// What comes next on the stream.
#[derive(Debug)]
pub(crate) enum Next {
    /// A frame's header, checked; its payload is still on the stream.
    Frame,
    /// The peer's OPEN.
    Open(DeviceId),
    /// The peer's CLOSE, checked.
    Close,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The stream ended between two messages.
    #[error("the peer ended the connection without CLOSE")]
    Ended,
    /// The stream ended inside a header or a payload; the part read is discarded.
    #[error("the connection ended in the middle of a frame")]
    EndedMidFrame,
    /// A binding message broke the layout, or a frame was too large.
    #[error(transparent)]
    Binding(#[from] BindingError),
    /// A message came where the binding does not allow it.
    #[error("the peer sent {0}")]
    Unexpected(&'static str),
    /// The socket failed.
    #[error("the connection failed: {0}")]
    Io(#[from] io::Error),
}

/// An I/O error inside a message: the end of the stream there means a cut frame.
fn inside_message(error: io::Error) -> ReadError {
    if error.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::EndedMidFrame
    } else {
        ReadError::Io(error)
    }
}

/// Reads what a peer sends, refusing frames larger than `max_frame_size` from their header
/// alone (`TCP-3`).
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    inner: BufReader<R>,
    max_frame_size: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `inner` that refuses frames over `max_frame_size` bytes.
    pub(crate) fn new(inner: R, max_frame_size: usize) -> Self {
        Self {
            inner: BufReader::with_capacity(READ_BUFFER, inner),
            max_frame_size,
        }
    }

    /// Reads up to the next frame's payload, or the next OPEN or CLOSE whole. Binding messages
    /// of unknown kinds are skipped.
    pub(crate) async fn next(&mut self) -> Result<Next, ReadError> {
        loop {
            let header = self.header().await?;
            let parsed = Header::parse(&header)?;
            let size = HEADER_LEN + parsed.payload_len();
            match parsed {
                // OPEN and CLOSE are read whole: their headers have bounded their length.
                Header::Binding {
                    kind: kind @ (Kind::Open | Kind::Close),
                    payload_len,
                } => {
                    let payload = self.exactly(payload_len).await?;
                    return Ok(match kind {
                        Kind::Open => Next::Open(binding::parse_open(&payload)?),
                        _ => {
                            binding::parse_close(&payload)?;
                            Next::Close
                        }
                    });
                }
                _ if size > self.max_frame_size => {
                    return Err(BindingError::FrameTooLarge {
                        size,
                        max: self.max_frame_size,
                    }
                    .into());
                }
                Header::Binding { payload_len, .. } => self.skip(payload_len).await?,
                Header::Frame { .. } => return Ok(Next::Frame),
            }
        }
    }

    /// The stream and the bytes read from it ahead of what was taken, for the link that goes
    /// on reading it.
    pub(crate) fn into_parts(self) -> (R, BytesMut) {
        let read = BytesMut::from(self.inner.buffer());
        (self.inner.into_inner(), read)
    }

    /// Reads a header; the stream may end cleanly before its first byte.
    async fn header(&mut self) -> Result<[u8; HEADER_LEN], ReadError> {
        let mut header = [0; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match self.inner.read(&mut header[filled..]).await? {
                0 if filled == 0 => return Err(ReadError::Ended),
                0 => return Err(ReadError::EndedMidFrame),
                n => filled += n,
            }
        }
        Ok(header)
    }

    /// Reads `len` bytes (a binding payload, at most a kilobyte or so).
    async fn exactly(&mut self, len: usize) -> Result<Vec<u8>, ReadError> {
        let mut payload = vec![0; len];
        self.inner
            .read_exact(&mut payload)
            .await
            .map_err(inside_message)?;
        Ok(payload)
    }

    /// Reads and drops `len` bytes without holding them.
    async fn skip(&mut self, len: usize) -> Result<(), ReadError> {
        let want = u64::try_from(len).unwrap_or(u64::MAX);
        let mut rest = (&mut self.inner).take(want);
        let skipped = tokio::io::copy(&mut rest, &mut tokio::io::sink()).await?;
        if skipped < want {
            return Err(ReadError::EndedMidFrame);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use acm_transport::CloseReason;

    use super::*;

    fn reader(bytes: &[u8], max: usize) -> FrameReader<&[u8]> {
        FrameReader::new(bytes, max)
    }

    #[tokio::test]
    async fn a_frame_over_the_maximum_is_refused_from_its_header_alone() {
        // Only the header is there: the reader must not wait for the 16 MiB it announces.
        let huge = [0xAC, 0x4D, 1, 0x80, 0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 1];
        assert!(matches!(
            reader(&huge, 65_535).next().await,
            Err(ReadError::Binding(BindingError::FrameTooLarge {
                size: 16_777_227,
                max: 65_535
            }))
        ));
    }

    #[tokio::test]
    async fn unknown_binding_messages_are_skipped_and_open_close_are_read_whole() {
        let mut stream = vec![0xAC, 0x4D, 0, 0x7E, 0, 0, 0, 3, 0, 0, 0, 0, 1, 2, 3];
        stream.extend_from_slice(&binding::open(&DeviceId::new("pc").unwrap()));
        stream.extend_from_slice(&binding::close(&CloseReason::new(9, "bye")));
        let mut r = reader(&stream, 128);
        assert!(matches!(r.next().await, Ok(Next::Open(id)) if id.as_str() == "pc"));
        assert!(matches!(r.next().await, Ok(Next::Close)));
    }
}
