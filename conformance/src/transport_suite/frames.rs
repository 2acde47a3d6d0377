//! The frames the suite sends, and how it tells them apart when they come back.
//!
//! Each is an acm frame in shape: magic, version 1, an extension type `0x80 + stream` (so that
//! an acm receiver would ignore it, `FRAME-7`), no flags, the payload length, and the frame's
//! sequence number in the channel field. Every payload byte is derived from the stream and the
//! sequence number, so a frame cut, padded, mixed up with another or sent twice is seen.

use bytes::{BufMut, Bytes, BytesMut};

/// The smallest frame: a header alone.
pub(crate) const HEADER_LEN: usize = 12;

/// Frame number `seq` of `stream` (0 to 127), `len` bytes long (at least [`HEADER_LEN`]).
pub(crate) fn frame(stream: u8, seq: u32, len: usize) -> Bytes {
    let len = len.max(HEADER_LEN);
    let payload = u32::try_from(len - HEADER_LEN).unwrap_or(u32::MAX);
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(&[0xAC, 0x4D, 0x01, 0x80 | (stream & 0x7F), 0x00]);
    out.put_slice(&payload.to_be_bytes()[1..]);
    out.put_u32(seq);
    out.put_bytes(fill(stream, seq), len - HEADER_LEN);
    out.freeze()
}

/// The byte every payload byte of frame `seq` of `stream` holds.
fn fill(stream: u8, seq: u32) -> u8 {
    let [a, b, c, d] = seq.to_be_bytes();
    a ^ b ^ c ^ d ^ stream.wrapping_mul(37)
}

/// What `bytes` are, for a report: which of the suite's frames, or what else.
pub(crate) fn describe(bytes: &[u8]) -> String {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return format!("{} bytes, shorter than a header", bytes.len());
    };
    if header[..3] != [0xAC, 0x4D, 0x01] || header[3] & 0x80 == 0 {
        return format!("{} bytes that the suite did not send", bytes.len());
    }
    let stream = header[3] & 0x7F;
    let seq = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
    if bytes == frame(stream, seq, bytes.len()) {
        format!("frame {seq} of stream {stream} ({} bytes)", bytes.len())
    } else {
        format!(
            "{} bytes with the header of frame {seq} of stream {stream}, damaged or cut",
            bytes.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_delimited_by_their_header_and_describe_themselves() {
        let f = frame(3, 70_000, 100);
        assert_eq!(f.len(), 100);
        assert_eq!(&f[..8], &[0xAC, 0x4D, 1, 0x83, 0, 0, 0, 88]);
        assert_eq!(describe(&f), "frame 70000 of stream 3 (100 bytes)");
        assert_eq!(frame(0, 1, 5).len(), HEADER_LEN);
    }

    #[test]
    fn damaged_cut_and_foreign_bytes_are_told_apart() {
        let mut damaged = frame(1, 9, 40).to_vec();
        damaged[30] ^= 1;
        assert!(describe(&damaged).contains("damaged or cut"));
        assert!(describe(&frame(1, 9, 40)[..20]).contains("damaged or cut"));
        assert!(describe(b"hello").contains("shorter than a header"));
        assert!(describe(&[0; 20]).contains("did not send"));
        assert_ne!(frame(1, 9, 40), frame(2, 9, 40));
        assert_ne!(frame(1, 9, 40), frame(1, 10, 40));
    }
}
