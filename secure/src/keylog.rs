//! Key logs (SPEC section 17.12): the record keys of each secure link, written to the file the
//! environment variable `ACM_KEYLOGFILE` names, so that `acm proxy --keylog` and the Wireshark
//! dissector can show what secure links carry.
//!
//! A debugging tool: whoever reads the file reads every link it lists, so it voids the
//! confidentiality of those links. It is off unless the variable is set, and the file is made
//! readable by its owner only.
//!
//! Each line is `ACM_SECURE_V1 E K1 K2`: the label, then in lowercase hexadecimal the dialer's
//! ephemeral public key (the first 32 bytes of handshake message 1's body, in clear on the wire,
//! which names the link), the dialer's sending key and the acceptor's sending key, 32 bytes
//! each, as the handshake's split makes them. Other lines are ignored.

use std::io::Write as _;

use snow::params::CipherChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::Cipher;

/// The environment variable that names the key log file.
pub const KEYLOG_ENV: &str = "ACM_KEYLOGFILE";

/// The label each line starts with.
pub const LABEL: &str = "ACM_SECURE_V1";

/// How many links a key log holds at most when read; lines past it are ignored.
pub const MAX_LINKS: usize = 100_000;

/// One link's keys.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKeys {
    /// The dialer's ephemeral public key: the first 32 bytes of message 1's body.
    pub dialer_ephemeral: [u8; 32],
    /// The key of the dialer's records (the first of the split).
    pub dialer_key: [u8; 32],
    /// The key of the acceptor's records.
    pub acceptor_key: [u8; 32],
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkKeys")
            .field("dialer_ephemeral", &hex(&self.dialer_ephemeral))
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl LinkKeys {
    /// The key log line, without its end of line.
    pub fn line(&self) -> String {
        format!(
            "{LABEL} {} {} {}",
            hex(&self.dialer_ephemeral),
            hex(&self.dialer_key),
            hex(&self.acceptor_key)
        )
    }

    /// Reads one line; `None` for anything but a key line.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_ascii_whitespace();
        if words.next()? != LABEL {
            return None;
        }
        let keys = Self {
            dialer_ephemeral: unhex(words.next()?)?,
            dialer_key: unhex(words.next()?)?,
            acceptor_key: unhex(words.next()?)?,
        };
        words.next().is_none().then_some(keys)
    }

    /// Every key line of a key log's text (at most [`MAX_LINKS`]).
    pub fn parse_all(text: &str) -> Vec<Self> {
        text.lines()
            .filter_map(Self::parse)
            .take(MAX_LINKS)
            .collect()
    }

    /// Appends this link's line to the file `ACM_KEYLOGFILE` names, if it is set. Failures are
    /// logged, never fatal: the key log is a debugging aid.
    pub(crate) fn log(&self) {
        let Some(path) = std::env::var_os(KEYLOG_ENV).filter(|p| !p.is_empty()) else {
            return;
        };
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(&path)
            .and_then(|mut file| writeln!(file, "{}", self.line()));
        if let Err(err) = written {
            tracing::warn!("cannot write the key log {}: {err}", path.display());
        }
    }
}

/// Opens one direction's records with a logged key, record by record in order, rekeying as
/// `SEC-10` says.
pub struct RecordOpener {
    cipher: Box<dyn Cipher>,
    /// The number of the next record.
    next: u64,
    rekey_interval: u64,
}

impl std::fmt::Debug for RecordOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordOpener")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl RecordOpener {
    /// An opener for the records sealed with `key`, from record 0.
    pub fn new(key: &[u8; 32]) -> Option<Self> {
        let mut cipher = DefaultResolver.resolve_cipher(&CipherChoice::ChaChaPoly)?;
        cipher.set(key);
        Some(Self {
            cipher,
            next: 0,
            rekey_interval: crate::record::REKEY_INTERVAL,
        })
    }

    /// The frame in `body`, record `number` of its direction: the records before it that were
    /// not opened are skipped (their rekeys made). `None` for a number already passed, or when
    /// the record does not open.
    pub fn open_at(&mut self, number: u64, body: &[u8]) -> Option<Vec<u8>> {
        if number < self.next {
            return None;
        }
        while self.next < number {
            let boundary = (self.next / self.rekey_interval)
                .checked_add(1)?
                .checked_mul(self.rekey_interval)?;
            if boundary <= number {
                self.cipher.rekey();
                self.next = boundary;
            } else {
                self.next = number;
            }
        }
        self.open(body)
    }

    /// The frame in `body` (a RECORD envelope's body), the next record of its direction; `None`
    /// when it does not open (the counting goes on: the next call is for the next record).
    pub fn open(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let number = self.next;
        self.next = number.checked_add(1)?;
        let len = body.len().checked_sub(crate::record::TAG_LEN)?;
        let mut frame = vec![0u8; len];
        let opened = self.cipher.decrypt(number, &[], body, &mut frame).ok();
        if self.next.is_multiple_of(self.rekey_interval) {
            self.cipher.rekey();
        }
        opened.map(|n| {
            frame.truncate(n);
            frame
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back_and_other_lines_are_ignored() {
        let keys = LinkKeys {
            dialer_ephemeral: [1; 32],
            dialer_key: [2; 32],
            acceptor_key: [0xab; 32],
        };
        let line = keys.line();
        assert!(line.starts_with("ACM_SECURE_V1 0101"));
        assert_eq!(LinkKeys::parse(&line), Some(keys.clone()));
        let text = format!("# comment\n{line}\nACM_SECURE_V1 zz\n{line} extra\n\n");
        assert_eq!(LinkKeys::parse_all(&text), [keys]);
        assert_eq!(LinkKeys::parse("ACM_SECURE_V1 é"), None);
    }
}
