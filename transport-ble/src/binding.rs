//! The BLE binding's numbers and the binding's own SDUs, independent of any Bluetooth stack.
//!
//! A link is one L2CAP LE credit-based channel. Each acm frame travels as one SDU, byte for
//! byte. The binding adds two kinds of SDU of its own, told apart from acm frames by a header in
//! the acm layout whose version byte is 0, which no acm frame carries (`FRAME-3`):
//!
//! ```text
//! AC 4D 00 kind | 00 length(24 bits) | 00 00 00 00 | payload (length bytes)
//! ```
//!
//! * `OPEN` (kind 1): the sender's device id, UTF-8. Each side sends it as its first SDU.
//! * `CLOSE` (kind 2): a close code (32 bits, big-endian) and a UTF-8 message. The last SDU a
//!   side sends when it closes the link on purpose.

use acm_transport::{CloseReason, DeviceId};
use bytes::{BufMut, Bytes, BytesMut};

/// The acm service UUID, `8dba3b44-de36-499b-ba99-603a2e4fe514`, as written (big-endian).
pub const SERVICE_UUID: [u8; 16] = [
    0x8d, 0xba, 0x3b, 0x44, 0xde, 0x36, 0x49, 0x9b, 0xba, 0x99, 0x60, 0x3a, 0x2e, 0x4f, 0xe5, 0x14,
];

/// The LE protocol/service multiplexer an acceptor listens on.
pub const SPSM: u16 = 0x00AC;

/// The SDU size each side offers (its receive MTU): the largest an L2CAP SDU can be.
pub const SDU_MTU: u16 = 65535;

/// The smallest MTU a peer may offer: a HELLO frame must fit.
pub const MIN_PEER_MTU: u16 = 128;

/// The PDU payload size (MPS) this implementation offers: one K-frame holds a whole SDU of up
/// to 65529 bytes, so one credit usually carries one frame.
pub const MPS: u16 = 65531;

/// The fewest credits this implementation grants when a channel opens, and keeps granted: at
/// most this many K-frames wait for the reader. It grants this many when it does not tune its
/// connections ([`BleConfig::tune`](crate::BleConfig::tune)).
pub const INITIAL_CREDITS: u16 = 8;

/// The most credits this implementation grants: a tuned link gets enough to fill two connection
/// events with the smallest frames (SPEC `BLE-14`), up to this many.
pub const MAX_CREDITS: u16 = 32;

/// The longest device id an advertisement carries: a scan response holds 31 bytes, two of which
/// are the AD structure's length and type.
pub const MAX_ADVERTISED_ID_LEN: usize = 29;

/// The longest close message carried, in bytes (`CTRL-4`'s limit on free texts).
pub const MAX_CLOSE_MESSAGE: usize = 1024;

/// How long a side waits for the peer's OPEN.
pub const OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The AD flags an acceptor advertises: LE General Discoverable, BR/EDR not supported.
pub const AD_FLAGS: u8 = 0x06;

const MAGIC: [u8; 2] = [0xAC, 0x4D];
const HEADER_LEN: usize = 12;
const KIND_OPEN: u8 = 1;
const KIND_CLOSE: u8 = 2;

/// The service UUID in the byte order of the air (little-endian).
pub fn service_uuid_le() -> [u8; 16] {
    let mut uuid = SERVICE_UUID;
    uuid.reverse();
    uuid
}

/// Whether `frame` would be read as one of the binding's own SDUs, and so cannot be sent as a
/// frame.
pub fn is_reserved(frame: &[u8]) -> bool {
    frame.len() >= 3 && frame[..2] == MAGIC && frame[2] == 0
}

/// One SDU, as the receiver reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdu {
    /// An acm frame, to hand to the reader.
    Frame(Bytes),
    /// The peer's device id.
    Open(DeviceId),
    /// The peer closes the link.
    Close(CloseReason),
    /// A binding SDU of a kind this version does not know: ignored.
    Unknown(u8),
    /// An empty SDU: never a frame, ignored.
    Empty,
}

/// A binding SDU that breaks the layout; the link is treated as failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed BLE binding SDU: {0}")]
pub struct MalformedSdu(pub &'static str);

/// Reads one received SDU.
pub fn parse(sdu: Bytes) -> Result<Sdu, MalformedSdu> {
    if sdu.is_empty() {
        return Ok(Sdu::Empty);
    }
    if !is_reserved(&sdu) {
        return Ok(Sdu::Frame(sdu));
    }
    if sdu.len() < HEADER_LEN {
        return Err(MalformedSdu("shorter than its header"));
    }
    let kind = sdu[3];
    let length = usize::from(sdu[5]) << 16 | usize::from(sdu[6]) << 8 | usize::from(sdu[7]);
    if sdu[4] != 0 || sdu[8..12] != [0, 0, 0, 0] {
        return Err(MalformedSdu("flags or channel not zero"));
    }
    if length != sdu.len() - HEADER_LEN {
        return Err(MalformedSdu("length field does not match the SDU"));
    }
    let payload = &sdu[HEADER_LEN..];
    match kind {
        KIND_OPEN => {
            let id = std::str::from_utf8(payload).map_err(|_| MalformedSdu("OPEN id not UTF-8"))?;
            DeviceId::new(id)
                .map(Sdu::Open)
                .map_err(|_| MalformedSdu("OPEN id not a device id"))
        }
        KIND_CLOSE => {
            if payload.len() < 4 || payload.len() > 4 + MAX_CLOSE_MESSAGE {
                return Err(MalformedSdu("CLOSE payload length"));
            }
            let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            let message = std::str::from_utf8(&payload[4..])
                .map_err(|_| MalformedSdu("CLOSE message not UTF-8"))?;
            Ok(Sdu::Close(CloseReason::new(code, message)))
        }
        other => Ok(Sdu::Unknown(other)),
    }
}

fn control(kind: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    out.put_slice(&MAGIC);
    out.put_u8(0);
    out.put_u8(kind);
    out.put_u8(0);
    // Payloads here are at most a few kilobytes: the length fits 24 bits.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX) & 0x00FF_FFFF;
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u32(0);
    out.put_slice(payload);
    out.freeze()
}

/// The OPEN SDU naming `device`.
pub fn open(device: &DeviceId) -> Bytes {
    control(KIND_OPEN, device.as_str().as_bytes())
}

/// The CLOSE SDU for `reason`, its message cut (at a character boundary) so that the SDU fits
/// `max_sdu` bytes and the message [`MAX_CLOSE_MESSAGE`].
pub fn close(reason: &CloseReason, max_sdu: usize) -> Bytes {
    let room = max_sdu
        .saturating_sub(HEADER_LEN + 4)
        .min(MAX_CLOSE_MESSAGE);
    let mut end = reason.message.len().min(room);
    while !reason.message.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(4 + end);
    payload.extend_from_slice(&reason.code.to_be_bytes());
    payload.extend_from_slice(&reason.message.as_bytes()[..end]);
    control(KIND_CLOSE, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acm_frames_pass_through_unchanged() {
        let frame = Bytes::from_static(&[0xAC, 0x4D, 0x01, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(parse(frame.clone()), Ok(Sdu::Frame(frame)));
        let other = Bytes::from_static(b"anything else");
        assert_eq!(parse(other.clone()), Ok(Sdu::Frame(other)));
        assert!(!is_reserved(b"\xAC\x4D"));
    }

    #[test]
    fn open_round_trips_the_device_id() {
        let id = DeviceId::new("tablet-7f3a").unwrap();
        let sdu = open(&id);
        assert!(is_reserved(&sdu));
        assert_eq!(parse(sdu), Ok(Sdu::Open(id)));
    }

    #[test]
    fn close_round_trips_code_and_message() {
        let reason = CloseReason::new(7, "done for today");
        assert_eq!(parse(close(&reason, 65535)), Ok(Sdu::Close(reason)));
    }

    #[test]
    fn close_cuts_long_messages_at_a_character_boundary() {
        let reason = CloseReason::new(1, "é".repeat(1000));
        let Ok(Sdu::Close(got)) = parse(close(&reason, 65535)) else {
            panic!("not a close");
        };
        assert_eq!(got.message.len(), MAX_CLOSE_MESSAGE);
        let Ok(Sdu::Close(got)) = parse(close(&reason, 128)) else {
            panic!("not a close");
        };
        assert_eq!(got.message, "é".repeat(56));
    }

    #[test]
    fn malformed_binding_sdus_are_errors() {
        let short = Bytes::from_static(&[0xAC, 0x4D, 0x00, 0x02]);
        assert!(parse(short).is_err());
        let mut bad_len = close(&CloseReason::normal(), 100).to_vec();
        bad_len.push(0);
        assert!(parse(Bytes::from(bad_len)).is_err());
        let mut bad_utf8 = open(&DeviceId::new("ab").unwrap()).to_vec();
        bad_utf8[12] = 0xFF;
        assert!(parse(Bytes::from(bad_utf8)).is_err());
    }

    #[test]
    fn unknown_kinds_and_empty_sdus_are_ignored() {
        let unknown = control(0x7E, b"future");
        assert_eq!(parse(unknown), Ok(Sdu::Unknown(0x7E)));
        assert_eq!(parse(Bytes::new()), Ok(Sdu::Empty));
    }

    #[test]
    fn the_uuid_goes_on_air_little_endian() {
        assert_eq!(service_uuid_le()[0], 0x14);
        assert_eq!(service_uuid_le()[15], 0x8d);
    }
}
