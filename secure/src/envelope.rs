//! The envelope every secure-layer message travels in (SPEC section 17.4): a 12-byte header in
//! acm's frame layout, so that byte-stream bindings delimit it as they delimit frames, with a
//! type of its own that no acm frame uses.
//!
//! ```text
//! AC 4D 01 kind | flags = 00 | length (24 bits) | channel = 00 00 00 00 | body (length bytes)
//! ```

/// The header's length.
pub const HEADER_LEN: usize = 12;

/// The version byte of every envelope: version 1 of the secure layer, defined with acm
/// protocol version 1.
pub const VERSION: u8 = 1;

/// The largest body: a Noise message of at most 65 535 bytes.
pub const MAX_BODY_LEN: usize = 65_535;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A Noise handshake message (type 0x7E).
    Handshake,
    /// A Noise transport message: one record (type 0x7F).
    Record,
}

impl Kind {
    /// The type byte.
    pub const fn code(self) -> u8 {
        match self {
            Self::Handshake => 0x7E,
            Self::Record => 0x7F,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0x7E => Some(Self::Handshake),
            0x7F => Some(Self::Record),
            _ => None,
        }
    }
}

/// The header of an envelope of `kind` around a body of `body_len` bytes (at most
/// [`MAX_BODY_LEN`]; longer lengths are cut to 24 bits, which the caller prevents).
pub fn header(kind: Kind, body_len: usize) -> [u8; HEADER_LEN] {
    let len = u32::try_from(body_len.min(MAX_BODY_LEN)).unwrap_or(0);
    let [_, l0, l1, l2] = len.to_be_bytes();
    [0xAC, 0x4D, VERSION, kind.code(), 0, l0, l1, l2, 0, 0, 0, 0]
}

/// What a link message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A well-formed envelope and its body.
    Envelope(Kind, &'a [u8]),
    /// A plain acm frame header (magic, a version other than 0, a type that is not the secure
    /// layer's): the peer sends frames without the secure layer.
    PlainFrame,
    /// Anything else; the text says what is wrong.
    Malformed(&'static str),
}

/// Reads one link message.
pub fn parse(message: &[u8]) -> Parsed<'_> {
    let Some((head, body)) = message.split_first_chunk::<HEADER_LEN>() else {
        return Parsed::Malformed("shorter than an envelope header");
    };
    if head[..2] != [0xAC, 0x4D] {
        return Parsed::Malformed("no acm magic");
    }
    let Some(kind) = Kind::from_code(head[3]) else {
        return if head[2] == 0 {
            Parsed::Malformed("a binding message")
        } else {
            Parsed::PlainFrame
        };
    };
    if head[2] != VERSION {
        return Parsed::Malformed("envelope version is not 1");
    }
    if head[4] != 0 || head[8..] != [0; 4] {
        return Parsed::Malformed("envelope flags or channel not zero");
    }
    let len = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
    if len != body.len() {
        return Parsed::Malformed("envelope length is not the body's");
    }
    Parsed::Envelope(kind, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(kind: Kind, body: &[u8]) -> Vec<u8> {
        let mut message = header(kind, body.len()).to_vec();
        message.extend_from_slice(body);
        message
    }

    #[test]
    fn envelopes_round_trip() {
        let message = envelope(Kind::Record, b"sealed");
        assert_eq!(
            &message[..12],
            b"\xAC\x4D\x01\x7F\x00\x00\x00\x06\x00\x00\x00\x00"
        );
        assert_eq!(parse(&message), Parsed::Envelope(Kind::Record, b"sealed"));
        let long = envelope(Kind::Handshake, &[9; MAX_BODY_LEN]);
        assert_eq!(
            parse(&long),
            Parsed::Envelope(Kind::Handshake, &[9; MAX_BODY_LEN][..])
        );
    }

    #[test]
    fn plain_frames_are_told_from_garbage() {
        // A HELLO header of acm version 1.
        let hello = b"\xAC\x4D\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(parse(hello), Parsed::PlainFrame);
        assert!(matches!(parse(b"\xAC\x4D"), Parsed::Malformed(_)));
        assert!(matches!(parse(&[0; 12]), Parsed::Malformed(_)));
        let mut bad = envelope(Kind::Record, b"x");
        bad[4] = 1;
        assert!(matches!(parse(&bad), Parsed::Malformed(_)));
        let mut bad = envelope(Kind::Record, b"x");
        bad[2] = 2;
        assert!(matches!(parse(&bad), Parsed::Malformed(_)));
        let mut bad = envelope(Kind::Record, b"xy");
        bad.pop();
        assert!(matches!(parse(&bad), Parsed::Malformed(_)));
        let mut binding = envelope(Kind::Record, b"x");
        binding[2] = 0;
        binding[3] = 1;
        assert!(matches!(parse(&binding), Parsed::Malformed(_)));
    }
}
