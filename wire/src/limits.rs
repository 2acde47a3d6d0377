//! Every size limit of the wire, fixed by the specification or configured, in one place.

use crate::header::{HEADER_LEN, MAX_PAYLOAD_LEN};

/// The protocol versions this crate speaks.
pub const SUPPORTED_VERSIONS: std::ops::RangeInclusive<u8> = 1..=1;

/// The smallest `max_frame_size` a device may announce, and the largest a HELLO frame may be
/// (SPEC `LINK-1`, `LINK-3`).
pub const MIN_FRAME_SIZE: u32 = 128;

/// The largest frame the header can describe: the header and a payload of `0xFF_FFFF` bytes.
pub const MAX_FRAME_SIZE: u32 = HEADER_LEN as u32 + MAX_PAYLOAD_LEN;

/// The longest text message, in bytes of UTF-8 (SPEC `MSG-1`).
pub const MAX_MESSAGE_LEN: usize = 1024;

/// The longest device id, in bytes (SPEC `LINK-3`).
pub const MAX_DEVICE_ID_LEN: usize = 64;

/// The longest bundle, module or ability name, parameter key or parameter value, in bytes
/// (SPEC `SESS-2`).
pub const MAX_NAME_LEN: usize = 1023;

/// The longest service name, in bytes (SPEC `SESS-2`).
pub const MAX_SERVICE_NAME_LEN: usize = 256;

/// The largest number of entries in `ConnectOptions.parameters` (SPEC `SESS-2`).
pub const MAX_PARAMETERS: usize = 64;

/// The longest free text (reject reason, disconnect detail, event message, close message), in
/// bytes (SPEC `CTRL-4`).
pub const MAX_TEXT_LEN: usize = 1024;

/// The largest control body, in bytes, once the frames of a body split with MORE are joined
/// (SPEC `FRAME-10`). The largest valid CONNECT_REQUEST is about 140 KiB.
pub const MAX_CONTROL_BODY: usize = 256 * 1024;

/// The length of a session token, in bytes (SPEC `SESS-1`).
pub const TOKEN_LEN: usize = 16;

/// The length of a HELLO nonce, in bytes (SPEC `LINK-3`).
pub const NONCE_LEN: usize = 16;

/// The shortest keepalive interval a device may ask for, in milliseconds (SPEC `LINK-3`).
pub const MIN_KEEPALIVE_MS: u32 = 1_000;

/// The longest keepalive interval a device may ask for, in milliseconds (SPEC `LINK-3`).
pub const MAX_KEEPALIVE_MS: u32 = 600_000;

/// Limits a receiver enforces on what its peer sends. The defaults are safe for a phone; a
/// watch may lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The largest frame accepted, header included; announced in HELLO. Between
    /// [`MIN_FRAME_SIZE`] and [`MAX_FRAME_SIZE`]. Default 65 535, the largest BLE L2CAP SDU.
    pub max_frame_size: u32,
    /// The largest data transfer accepted, in bytes; announced in HELLO. Default 100 MiB.
    pub max_data_size: u64,
    /// The most bytes all unfinished transfers of a link may hold together, counted by their
    /// declared lengths. At least `max_data_size`. Default 256 MiB.
    pub max_reassembly_bytes: u64,
    /// The most unfinished transfers a link may have at once. Default 32.
    pub max_transfers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: 65_535,
            max_data_size: 100 * 1024 * 1024,
            max_reassembly_bytes: 256 * 1024 * 1024,
            max_transfers: 32,
        }
    }
}

/// A [`Limits`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// `max_frame_size` is outside [`MIN_FRAME_SIZE`]..=[`MAX_FRAME_SIZE`].
    #[error("max_frame_size {0} is outside {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}")]
    FrameSize(u32),
    /// `max_data_size` is zero.
    #[error("max_data_size must be at least 1")]
    DataSize,
    /// `max_reassembly_bytes` is below `max_data_size`, so the largest transfer could never fit.
    #[error("max_reassembly_bytes {reassembly} is below max_data_size {data}")]
    ReassemblyBelowDataSize {
        /// The configured `max_reassembly_bytes`.
        reassembly: u64,
        /// The configured `max_data_size`.
        data: u64,
    },
    /// `max_transfers` is zero.
    #[error("max_transfers must be at least 1")]
    Transfers,
}

impl Limits {
    /// Sets `max_frame_size`.
    #[must_use]
    pub const fn with_max_frame_size(mut self, max_frame_size: u32) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// Sets `max_data_size`.
    #[must_use]
    pub const fn with_max_data_size(mut self, max_data_size: u64) -> Self {
        self.max_data_size = max_data_size;
        self
    }

    /// Sets `max_reassembly_bytes`.
    #[must_use]
    pub const fn with_max_reassembly_bytes(mut self, max_reassembly_bytes: u64) -> Self {
        self.max_reassembly_bytes = max_reassembly_bytes;
        self
    }

    /// Sets `max_transfers`.
    #[must_use]
    pub const fn with_max_transfers(mut self, max_transfers: usize) -> Self {
        self.max_transfers = max_transfers;
        self
    }

    /// Checks that the limits can work together.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&self.max_frame_size) {
            return Err(LimitsError::FrameSize(self.max_frame_size));
        }
        if self.max_data_size == 0 {
            return Err(LimitsError::DataSize);
        }
        if self.max_reassembly_bytes < self.max_data_size {
            return Err(LimitsError::ReassemblyBelowDataSize {
                reassembly: self.max_reassembly_bytes,
                data: self.max_data_size,
            });
        }
        if self.max_transfers == 0 {
            return Err(LimitsError::Transfers);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn each_unworkable_limit_is_refused() {
        let d = Limits::default();
        assert_eq!(
            d.with_max_frame_size(MIN_FRAME_SIZE - 1).validate(),
            Err(LimitsError::FrameSize(MIN_FRAME_SIZE - 1))
        );
        assert_eq!(
            d.with_max_frame_size(MAX_FRAME_SIZE + 1).validate(),
            Err(LimitsError::FrameSize(MAX_FRAME_SIZE + 1))
        );
        assert_eq!(
            d.with_max_data_size(0).validate(),
            Err(LimitsError::DataSize)
        );
        assert_eq!(
            d.with_max_reassembly_bytes(10)
                .with_max_data_size(11)
                .validate(),
            Err(LimitsError::ReassemblyBelowDataSize {
                reassembly: 10,
                data: 11
            })
        );
        assert_eq!(
            d.with_max_transfers(0).validate(),
            Err(LimitsError::Transfers)
        );
    }
}
