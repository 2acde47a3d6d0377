//! Records: each acm frame as one Noise transport message in an envelope (SPEC section 17.7),
//! with explicit nonces counted per direction and the rekey schedule of `SEC-10`.

use std::sync::RwLock;

use bytes::Bytes;
use snow::StatelessTransportState;

use crate::envelope::{self, Kind, Parsed};
use crate::error::{CloseCode, SecureError};

/// The AEAD tag each record adds.
pub const TAG_LEN: usize = 16;

/// What a record adds to the frame it carries: the envelope header and the tag.
pub const RECORD_OVERHEAD: usize = envelope::HEADER_LEN + TAG_LEN;

/// The largest frame a record carries: a Noise message holds at most 65 535 bytes, tag included.
pub const MAX_FRAME_LEN: usize = envelope::MAX_BODY_LEN - TAG_LEN;

/// Each direction's key is replaced (Noise's `Rekey()`) after every this many records
/// (`SEC-10`).
pub const REKEY_INTERVAL: u64 = 1 << 16;

/// The record number of one direction: the Noise nonce of its next record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counter(u64);

impl Counter {
    /// The nonce of the next record.
    pub fn next(&self) -> u64 {
        self.0
    }
}

/// Both directions' keys of a finished handshake. Sealing and opening take the keys shared, so
/// that one task can send while another receives; a rekey takes them alone for a moment.
pub struct Records {
    keys: RwLock<StatelessTransportState>,
    rekey_interval: u64,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

fn record_failed(detail: impl Into<String>) -> SecureError {
    SecureError::refused(CloseCode::RecordFailed, detail)
}

impl Records {
    pub(crate) fn new(keys: StatelessTransportState) -> Self {
        Self {
            keys: RwLock::new(keys),
            rekey_interval: REKEY_INTERVAL,
        }
    }

    /// Rekeys every `interval` records instead of [`REKEY_INTERVAL`], so that tests can reach a
    /// rekey quickly. Both sides must use the same interval; no product changes it.
    #[doc(hidden)]
    #[must_use]
    pub fn with_rekey_interval(mut self, interval: u64) -> Self {
        self.rekey_interval = interval.max(1);
        self
    }

    /// Seals `frame` as the record `counter` names (a link message: envelope and ciphertext),
    /// and moves the counter on, rekeying when the schedule says so.
    pub fn seal(&self, counter: &mut Counter, frame: &[u8]) -> Result<Bytes, SecureError> {
        if frame.len() > MAX_FRAME_LEN {
            return Err(record_failed("a frame too large for a record"));
        }
        let nonce = counter.0;
        let next = nonce
            .checked_add(1)
            .filter(|next| *next < u64::MAX)
            .ok_or_else(|| record_failed("the record numbers are used up"))?;
        let body_len = frame.len() + TAG_LEN;
        let mut record = vec![0u8; envelope::HEADER_LEN + body_len];
        record[..envelope::HEADER_LEN].copy_from_slice(&envelope::header(Kind::Record, body_len));
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let written = keys.write_message(nonce, frame, &mut record[envelope::HEADER_LEN..])?;
        drop(keys);
        record.truncate(envelope::HEADER_LEN + written);
        counter.0 = next;
        if next.is_multiple_of(self.rekey_interval) {
            self.keys
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .rekey_outgoing();
        }
        Ok(record.into())
    }

    /// Opens `record` (a link message as received) as the record `counter` names, and moves the
    /// counter on, rekeying when the schedule says so. Anything but that record, sealed by the
    /// peer, fails with `RECORD_FAILED`: a changed byte, a replayed, reordered or missing record,
    /// a plain frame.
    pub fn open(&self, counter: &mut Counter, record: &[u8]) -> Result<Bytes, SecureError> {
        let body = match envelope::parse(record) {
            Parsed::Envelope(Kind::Record, body) => body,
            Parsed::Envelope(Kind::Handshake, _) => {
                return Err(record_failed("a handshake message where a record was due"));
            }
            Parsed::PlainFrame => {
                return Err(record_failed("a plain frame where a record was due"));
            }
            Parsed::Malformed(what) => return Err(record_failed(what)),
        };
        let Some(len) = body.len().checked_sub(TAG_LEN) else {
            return Err(record_failed("a record shorter than its tag"));
        };
        if body.len() > envelope::MAX_BODY_LEN {
            return Err(record_failed("a record longer than a Noise message"));
        }
        let nonce = counter.0;
        let next = nonce
            .checked_add(1)
            .filter(|next| *next < u64::MAX)
            .ok_or_else(|| record_failed("the record numbers are used up"))?;
        let mut frame = vec![0u8; len];
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let read = keys
            .read_message(nonce, body, &mut frame)
            .map_err(|_| record_failed(format!("record {nonce} failed to decrypt")))?;
        drop(keys);
        frame.truncate(read);
        counter.0 = next;
        if next.is_multiple_of(self.rekey_interval) {
            self.keys
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .rekey_incoming();
        }
        Ok(frame.into())
    }
}
