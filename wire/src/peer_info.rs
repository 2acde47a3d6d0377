//! `acm.v1.PeerInfo`, written out rather than generated: every CONNECT_REQUEST carries two, and
//! each of their strings is allocated once, at its length, straight from the body.
//!
//! prost's generated code fills a string by clearing it, growing it to fit and copying into it
//! through the generic `Buf` interface. Here a string whose bytes lie in one piece of the
//! buffer (always so for a frame's body) is checked as UTF-8 where it lies and copied once into
//! a string of its exact length. Anything else (a body split over several pieces, a field of
//! the wrong wire type, bad UTF-8) goes through prost's own code, so the results and the errors
//! are prost's in every case; the `bare-prost` feature's module `bare_pb` is the stock
//! version that the tests and the fuzz target compare with.

use bytes::{Buf, BufMut};
use prost::DecodeError;
use prost::encoding::{DecodeContext, WireType, skip_field, string};

/// An application on a device: OpenHarmony's PeerInfo. Field numbers 1 to 5, all strings.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// Field 1.
    pub device_id: String,
    /// Field 2.
    pub bundle_name: String,
    /// Field 3.
    pub module_name: String,
    /// Field 4.
    pub ability_name: String,
    /// Field 5. Optional in the API; the request's service name.
    pub service_name: String,
}

impl std::fmt::Debug for PeerInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerInfo")
            .field("device_id", &self.device_id)
            .field("bundle_name", &self.bundle_name)
            .field("module_name", &self.module_name)
            .field("ability_name", &self.ability_name)
            .field("service_name", &self.service_name)
            .finish()
    }
}

impl PeerInfo {
    /// The fields in field-number order, each with its number.
    fn fields(&self) -> [(u32, &String); 5] {
        [
            (1, &self.device_id),
            (2, &self.bundle_name),
            (3, &self.module_name),
            (4, &self.ability_name),
            (5, &self.service_name),
        ]
    }

    /// The field with number `tag`, and its name.
    fn field_mut(&mut self, tag: u32) -> Option<(&mut String, &'static str)> {
        Some(match tag {
            1 => (&mut self.device_id, "device_id"),
            2 => (&mut self.bundle_name, "bundle_name"),
            3 => (&mut self.module_name, "module_name"),
            4 => (&mut self.ability_name, "ability_name"),
            5 => (&mut self.service_name, "service_name"),
            _ => return None,
        })
    }
}

/// Replaces `field` with the length-delimited string at the front of `buf` when its length
/// and bytes lie in `buf`'s first piece and are UTF-8. Returns false, with `buf` untouched,
/// when they do not: prost's code then reads it, with its errors.
fn take_contiguous(field: &mut String, buf: &mut impl Buf) -> bool {
    let chunk = buf.chunk();
    let mut rest = chunk;
    let Ok(len) = prost::encoding::decode_varint(&mut rest) else {
        return false;
    };
    let Ok(len) = usize::try_from(len) else {
        return false;
    };
    let Some((bytes, after)) = rest.split_at_checked(len) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    // `after` is the end of `chunk`: this never saturates.
    let consumed = chunk.len().saturating_sub(after.len());
    // The one allocation: at the text's length (none for an empty string).
    *field = text.to_owned();
    buf.advance(consumed);
    true
}

/// The one-byte key of a length-delimited field numbered 1 to 15.
fn short_key(tag: u32) -> u8 {
    debug_assert!((1..16).contains(&tag));
    // Field numbers 1 to 5 here: the key fits in one byte, below 0x80.
    ((tag << 3) | 2) as u8
}

impl prost::Message for PeerInfo {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        // As prost's `string::encode`, whose keys here are one byte each, as are the lengths
        // of names under 128 bytes, the usual ones.
        for (tag, value) in self.fields() {
            if value.is_empty() {
                continue;
            }
            buf.put_u8(short_key(tag));
            match u8::try_from(value.len()) {
                Ok(len) if len < 0x80 => buf.put_u8(len),
                _ => prost::encoding::encode_varint(value.len() as u64, buf),
            }
            buf.put_slice(value.as_bytes());
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let Some((field, name)) = self.field_mut(tag) else {
            return skip_field(wire_type, tag, buf, ctx);
        };
        if wire_type == WireType::LengthDelimited && take_contiguous(field, buf) {
            return Ok(());
        }
        string::merge(wire_type, field, buf, ctx).map_err(|mut err| {
            err.push("PeerInfo", name);
            err
        })
    }

    fn encoded_len(&self) -> usize {
        self.fields()
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(_, value)| {
                // Key, length, text; no sum can overflow for strings that are in memory.
                1usize
                    .saturating_add(prost::encoding::encoded_len_varint(value.len() as u64))
                    .saturating_add(value.len())
            })
            .fold(0, usize::saturating_add)
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}
