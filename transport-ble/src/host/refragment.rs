//! A reader of the controller's H4 stream that cuts ACL data packets longer than the host
//! stack reads (its buffer holds 255 bytes of payload) into fragments that fit. HCI lets either
//! side fragment an L2CAP PDU over several ACL packets; some controllers (Bumble's) send a
//! whole PDU in one packet whatever the host's buffer size.

use embedded_io_async::{ErrorType, Read};

/// The longest ACL payload passed on in one packet.
const MAX_FRAGMENT: usize = 251;
/// H4 packet indicators.
const ACL: u8 = 0x02;
const SCO: u8 = 0x03;
const EVENT: u8 = 0x04;
const ISO: u8 = 0x05;
/// The packet-boundary bits of an ACL header's handle field, and "continuing fragment".
const BOUNDARY_MASK: u16 = 0x3000;
const CONTINUING: u16 = 0x1000;

/// Passes the H4 stream from `inner` on, packet by packet, cutting long ACL packets.
pub(crate) struct Refragment<R> {
    inner: R,
    /// The bytes of the packets ready to be read, and how far they have been read.
    out: Vec<u8>,
    read: usize,
}

impl<R> Refragment<R> {
    /// A reader of `inner`'s packets.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            out: Vec::new(),
            read: 0,
        }
    }
}

impl<R: ErrorType> ErrorType for Refragment<R> {
    type Error = R::Error;
}

impl<R: Read> Refragment<R> {
    /// Reads exactly `buf.len()` bytes; `false` at the end of the stream.
    async fn fill_exact(&mut self, buf: &mut [u8]) -> Result<bool, R::Error> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.inner.read(&mut buf[done..]).await?;
            if n == 0 {
                return Ok(false);
            }
            done += n;
        }
        Ok(true)
    }

    /// Reads the next whole packet into `out`, cut as needed; `false` at the end of the stream.
    async fn next_packet(&mut self) -> Result<bool, R::Error> {
        self.out.clear();
        self.read = 0;
        let mut kind = [0u8; 1];
        if !self.fill_exact(&mut kind).await? {
            return Ok(false);
        }
        let (header_len, length_of): (usize, fn(&[u8]) -> usize) = match kind[0] {
            ACL => (4, |h| usize::from(u16::from_le_bytes([h[2], h[3]]))),
            SCO => (3, |h| usize::from(h[2])),
            EVENT => (2, |h| usize::from(h[1])),
            ISO => (4, |h| {
                usize::from(u16::from_le_bytes([h[2], h[3]]) & 0x3FFF)
            }),
            _ => {
                // Not H4: pass the byte on and let the host's reader refuse it.
                self.out.push(kind[0]);
                return Ok(true);
            }
        };
        let mut header = [0u8; 4];
        let header = &mut header[..header_len];
        if !self.fill_exact(header).await? {
            return Ok(false);
        }
        let mut payload = vec![0u8; length_of(header)];
        if !self.fill_exact(&mut payload).await? {
            return Ok(false);
        }
        if kind[0] != ACL || payload.len() <= MAX_FRAGMENT {
            self.out.push(kind[0]);
            self.out.extend_from_slice(header);
            self.out.extend_from_slice(&payload);
            return Ok(true);
        }
        let handle = u16::from_le_bytes([header[0], header[1]]);
        for (i, chunk) in payload.chunks(MAX_FRAGMENT).enumerate() {
            let flags = if i == 0 {
                handle
            } else {
                (handle & !BOUNDARY_MASK) | CONTINUING
            };
            self.out.push(ACL);
            self.out.extend_from_slice(&flags.to_le_bytes());
            // A chunk holds at most MAX_FRAGMENT bytes: its length fits 16 bits.
            self.out
                .extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(0).to_le_bytes());
            self.out.extend_from_slice(chunk);
        }
        Ok(true)
    }
}

impl<R: Read> Read for Refragment<R> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.read == self.out.len() && !self.next_packet().await? {
            return Ok(0);
        }
        let n = buf.len().min(self.out.len() - self.read);
        buf[..n].copy_from_slice(&self.out[self.read..self.read + n]);
        self.read += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads everything `input` gives through a `Refragment`.
    fn refragment(input: &[u8]) -> Vec<u8> {
        let mut reader = Refragment::new(input);
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            loop {
                let n = reader.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
        });
        out
    }

    #[test]
    fn short_packets_pass_unchanged() {
        let mut input = vec![EVENT, 0x0E, 3, 1, 2, 3];
        input.extend_from_slice(&[ACL, 0x40, 0x20, 2, 0, 0xAA, 0xBB]);
        assert_eq!(refragment(&input), input);
    }

    #[test]
    fn long_acl_packets_become_a_first_fragment_and_continuations() {
        let payload: Vec<u8> = (0..600u16).map(|i| i as u8).collect();
        let mut input = vec![ACL, 0x40, 0x20];
        input.extend_from_slice(&600u16.to_le_bytes());
        input.extend_from_slice(&payload);
        let out = refragment(&input);
        let mut expected = Vec::new();
        for (i, chunk) in payload.chunks(MAX_FRAGMENT).enumerate() {
            let flags: u16 = if i == 0 { 0x2040 } else { 0x1040 };
            expected.push(ACL);
            expected.extend_from_slice(&flags.to_le_bytes());
            expected.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            expected.extend_from_slice(chunk);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn a_stream_cut_mid_packet_ends_without_the_partial_packet() {
        let whole = [EVENT, 0x0E, 2, 1, 2];
        let mut input = whole.to_vec();
        input.extend_from_slice(&[ACL, 0x40, 0x20, 9, 0, 0xAA]);
        assert_eq!(refragment(&input), whole);
    }
}
