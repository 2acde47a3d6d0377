//! The HCI log: every H4 packet between the host and its controller, written as a btsnoop file
//! (the format of Android's `btsnoop_hci.log`, which Wireshark and `btmon -r` read).
//!
//! The file is a 16-byte header, `btsnoop\0`, version 1 and datalink 1002 (HCI UART, H4), then
//! one record per packet: original length, included length, flags, cumulative drops (each 32
//! bits) and a timestamp (64 bits, microseconds since midnight of 1 January of year 0), all
//! big-endian, then the packet with its H4 indicator byte. Flag bit 0 is set for packets from
//! the controller, bit 1 for commands and events.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The file's identification pattern.
const MAGIC: &[u8; 8] = b"btsnoop\0";
/// The format version.
const VERSION: u32 = 1;
/// Datalink type 1002: HCI UART (H4), each packet led by its indicator byte.
const DATALINK_H4: u32 = 1002;
/// Microseconds from the btsnoop epoch to the Unix epoch, as Wireshark and Android count them.
const UNIX_EPOCH_MICROS: u64 = 0x00dc_ddb3_0f2f_8000;
/// H4 indicators of the packets flagged as commands or events.
const COMMAND: u8 = 0x01;
const EVENT: u8 = 0x04;

/// The file header.
pub(crate) fn header() -> [u8; 16] {
    let mut header = [0u8; 16];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_be_bytes());
    header[12..].copy_from_slice(&DATALINK_H4.to_be_bytes());
    header
}

/// One record: `packet` (an H4 packet, indicator first), from the controller if `received`,
/// seen `unix_micros` after the Unix epoch.
pub(crate) fn record(packet: &[u8], received: bool, unix_micros: u64) -> Vec<u8> {
    // An H4 packet is at most 1 + 4 + 65535 bytes: its length fits 32 bits.
    let length = u32::try_from(packet.len()).unwrap_or(u32::MAX);
    let command_or_event = matches!(packet.first(), Some(&COMMAND | &EVENT));
    let flags = u32::from(received) | u32::from(command_or_event) << 1;
    let mut record = Vec::with_capacity(24 + packet.len());
    record.extend_from_slice(&length.to_be_bytes());
    record.extend_from_slice(&length.to_be_bytes());
    record.extend_from_slice(&flags.to_be_bytes());
    record.extend_from_slice(&0u32.to_be_bytes());
    record.extend_from_slice(&UNIX_EPOCH_MICROS.saturating_add(unix_micros).to_be_bytes());
    record.extend_from_slice(packet);
    record
}

/// An open HCI log. Each packet is written as it passes, in one write, so that the file holds
/// everything up to a crash.
#[derive(Debug)]
pub(crate) struct HciLog {
    file: RefCell<File>,
    /// Set once a write failed: the log stops there, and says so once.
    failed: Cell<bool>,
}

impl HciLog {
    /// Creates (or truncates) the file at `path` and writes the header.
    pub(crate) fn create(path: &Path) -> std::io::Result<Self> {
        let mut file = File::create(path)?;
        file.write_all(&header())?;
        Ok(Self {
            file: RefCell::new(file),
            failed: Cell::new(false),
        })
    }

    /// Logs a packet the host sent.
    pub(crate) fn sent(&self, packet: &[u8]) {
        self.write(packet, false);
    }

    /// Logs a packet the controller sent.
    pub(crate) fn received(&self, packet: &[u8]) {
        self.write(packet, true);
    }

    fn write(&self, packet: &[u8], received: bool) {
        if self.failed.get() {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let record = record(packet, received, now);
        if let Err(e) = self.file.borrow_mut().write_all(&record) {
            self.failed.set(true);
            tracing::warn!("the HCI log stopped: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_btsnoop_version_1_over_h4() {
        let header = header();
        assert_eq!(&header[..8], b"btsnoop\0");
        assert_eq!(header[8..12], [0, 0, 0, 1]);
        assert_eq!(header[12..], [0, 0, 0x03, 0xEA]);
    }

    #[test]
    fn a_record_carries_lengths_direction_kind_and_time() {
        // HCI Reset, from the host.
        let reset = [0x01, 0x03, 0x0C, 0x00];
        let record = record(&reset, false, 1_000_000);
        assert_eq!(record[..4], [0, 0, 0, 4]);
        assert_eq!(record[4..8], [0, 0, 0, 4]);
        assert_eq!(record[8..12], [0, 0, 0, 0b10]);
        assert_eq!(record[12..16], [0; 4]);
        let time = u64::from_be_bytes(record[16..24].try_into().unwrap());
        assert_eq!(time, 0x00dc_ddb3_0f2f_8000 + 1_000_000);
        assert_eq!(&record[24..], &reset);

        // ACL data from the controller: received, not a command or event.
        let acl = [0x02, 0x40, 0x20, 0x01, 0x00, 0xAA];
        assert_eq!(record_flags(&acl, true), 0b01);
        // An event: received, and a command or event.
        assert_eq!(record_flags(&[0x04, 0x0E, 0x00], true), 0b11);
        // ACL data from the host.
        assert_eq!(record_flags(&acl, false), 0b00);
    }

    fn record_flags(packet: &[u8], received: bool) -> u32 {
        let record = record(packet, received, 0);
        u32::from_be_bytes(record[8..12].try_into().unwrap())
    }

    #[test]
    fn the_log_file_is_the_header_then_the_records() {
        let path = std::env::temp_dir().join(format!("acm-snoop-{}.log", std::process::id()));
        let log = HciLog::create(&path).unwrap();
        log.sent(&[0x01, 0x03, 0x0C, 0x00]);
        log.received(&[0x04, 0x0E, 0x04, 0x01, 0x03, 0x0C, 0x00]);
        drop(log);
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(bytes.len(), 16 + 24 + 4 + 24 + 7);
        assert_eq!(&bytes[..16], &header());
        assert_eq!(&bytes[16 + 24..16 + 24 + 4], &[0x01, 0x03, 0x0C, 0x00]);
        // The second record is from the controller.
        assert_eq!(bytes[16 + 24 + 4 + 11], 0b11);
    }
}
