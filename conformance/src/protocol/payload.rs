//! The payloads the suite sends: each one names its id, so that what arrives can be told apart
//! from anything else, and a changed byte shows.

use bytes::Bytes;

/// What was sent, as it must arrive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Content {
    /// A message's text.
    Message(String),
    /// A data transfer's bytes.
    Data(Bytes),
    /// A collaboration event's message.
    Event(String),
}

/// A message of `len` bytes naming payload `id` (longer when `len` cannot hold the name; empty
/// when `len` is 0).
pub fn message(id: u64, len: usize) -> String {
    if len == 0 {
        return String::new();
    }
    let mut text = format!("#{id}:");
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut i = id as usize;
    while text.len() < len {
        text.push(char::from(filler[i % filler.len()]));
        i += 7;
    }
    text
}

/// `len` bytes that begin with payload `id` (as many of its little-endian bytes as fit).
pub fn data(id: u64, len: usize) -> Bytes {
    let mut bytes: Vec<u8> = id.to_le_bytes().into_iter().take(len).collect();
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push(x.to_le_bytes()[0]);
    }
    Bytes::from(bytes)
}

/// The message of a collaboration event naming payload `id`.
pub fn event(id: u64) -> String {
    format!("event #{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_length_asked_for_and_name_their_id() {
        assert_eq!(message(7, 0), "");
        assert_eq!(message(7, 2), "#7:");
        assert_eq!(message(7, 1024).len(), 1024);
        assert!(message(12, 40).starts_with("#12:"));
        assert_eq!(data(3, 0).len(), 0);
        assert_eq!(data(3, 1)[..], [3]);
        assert_eq!(data(300, 20).len(), 20);
        assert_eq!(data(300, 20)[..8], 300u64.to_le_bytes());
        assert_ne!(data(1, 64), data(2, 64));
    }
}
