//! The body of the `secure` fuzz target (fuzz/README.md), and the seeds of its corpus: a
//! real side of the handshake and then of the record layer faces a peer that the input scripts,
//! sending honest messages, changed ones or made-up bytes. Whatever comes, the side takes it or
//! refuses it with its close code; it never panics, never accepts what the honest peer did not
//! send, and honest traffic always gets through.

use acm_transport::{DeviceId, Role};

use acm_secure::CloseCode;
use acm_secure::Identity;
use acm_secure::envelope::{self, Parsed};
use acm_secure::handshake::{Established, Handshake, prologue};
use acm_secure::record::Counter;

/// Reads the input front to back; past its end, zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((first, rest)) => {
                self.0 = rest;
                *first
            }
            None => 0,
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let (taken, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        taken.to_vec()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The message the input makes of `honest`: as it is, changed at one byte, cut, made up, or a
/// plain frame.
fn message(input: &mut Input<'_>, honest: &[u8]) -> (Vec<u8>, bool) {
    match input.byte() % 5 {
        0 => (honest.to_vec(), true),
        1 => {
            let mut changed = honest.to_vec();
            let at = usize::from(input.byte()) % changed.len().max(1);
            let xor = input.byte() | 1;
            if let Some(byte) = changed.get_mut(at) {
                *byte ^= xor;
            }
            (changed, false)
        }
        2 => {
            let len = usize::from(input.byte()) % honest.len().max(1);
            (honest[..len].to_vec(), false)
        }
        3 => {
            let len = usize::from(input.byte());
            (input.bytes(len), false)
        }
        _ => (
            b"\xAC\x4D\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(),
            false,
        ),
    }
}

fn handshakes() -> Option<(Handshake, Handshake)> {
    let prologue = prologue(
        &DeviceId::new("phone").ok()?,
        &DeviceId::new("tablet").ok()?,
        b"",
    );
    let dialer = Identity::from_private_key([0x11; 32]).ok()?;
    let acceptor = Identity::from_private_key([0x22; 32]).ok()?;
    Some((
        Handshake::for_test_vectors(&dialer, Role::Dialer, &prologue, &[0x33; 32], [0x55; 32])
            .ok()?,
        Handshake::for_test_vectors(&acceptor, Role::Acceptor, &prologue, &[0x44; 32], [0; 32])
            .ok()?,
    ))
}

/// The fuzz target `secure`. Input: a config byte (bit 0: the input plays the acceptor against
/// a real dialer, instead of the dialer against a real acceptor), then for each handshake
/// message the input's side sends an operation (see `message`), then record operations.
pub fn secure(data: &[u8]) {
    let mut input = Input(data);
    let config = input.byte();
    // Any bytes parse without a panic, and an envelope's body is what its header says.
    if let Parsed::Envelope(_, body) = envelope::parse(data) {
        assert_eq!(body.len() + envelope::HEADER_LEN, data.len());
    }
    let Some((mut dialer, mut acceptor)) = handshakes() else {
        return;
    };
    let fuzzed_is_dialer = config & 1 == 0;
    let mut all_honest = true;
    while !dialer.is_finished() || !acceptor.is_finished() {
        let (from, to) = if dialer.is_my_turn() {
            (&mut dialer, &mut acceptor)
        } else {
            (&mut acceptor, &mut dialer)
        };
        let Ok(honest) = from.write_message() else {
            return;
        };
        let sender_is_fuzzed = (from.role() == Role::Dialer) == fuzzed_is_dialer;
        let (sent, honest_sent) = if sender_is_fuzzed {
            message(&mut input, &honest)
        } else {
            (honest.to_vec(), true)
        };
        all_honest &= honest_sent || sent[..] == honest[..];
        match to.read_message(&sent) {
            Ok(()) => {}
            Err(error) => {
                assert!(!all_honest, "an honest handshake refused: {error}");
                let code = error.close_code();
                assert!(
                    matches!(
                        code,
                        Some(CloseCode::HandshakeFailed | CloseCode::SecurityRequired)
                    ),
                    "{error}"
                );
                return;
            }
        }
    }
    let (Ok(dialer), Ok(acceptor)) = (dialer.finish(), acceptor.finish()) else {
        panic!("a finished handshake does not finish");
    };
    if all_honest {
        assert_eq!(dialer.code, acceptor.code);
        assert_eq!(dialer.handshake_hash, acceptor.handshake_hash);
    }
    let (sender, receiver) = if fuzzed_is_dialer {
        (dialer, acceptor)
    } else {
        (acceptor, dialer)
    };
    records(&mut input, &sender, &receiver, all_honest);
}

/// Records from `sender` (the input's side) to `receiver`: honest, changed, replayed or made
/// up. The receiver opens exactly the honest records in order, and fails for good on anything
/// else.
fn records(input: &mut Input<'_>, sender: &Established, receiver: &Established, keys_agree: bool) {
    let (mut sending, mut receiving) = (Counter::default(), Counter::default());
    let mut sent: Vec<Vec<u8>> = Vec::new();
    while !input.is_empty() {
        let operation = input.byte();
        let frame = input.bytes(usize::from(input_len(operation)));
        let Ok(record) = sender.records.seal(&mut sending, &frame) else {
            return;
        };
        let (message, honest) = match operation % 4 {
            0 => (record.to_vec(), true),
            1 => message(input, &record),
            2 => match sent.get(usize::from(input.byte()) % sent.len().max(1)) {
                Some(old) => (old.clone(), false),
                None => (record.to_vec(), true),
            },
            _ => (record.to_vec(), true),
        };
        let before = receiving;
        match receiver.records.open(&mut receiving, &message) {
            Ok(opened) => {
                assert!(keys_agree, "a record opened under keys that differ");
                assert_eq!(message[..], record[..], "a record opened that was not sent");
                assert_eq!(opened[..], frame[..]);
            }
            Err(error) => {
                assert!(!(honest && keys_agree), "an honest record refused: {error}");
                assert_eq!(error.close_code(), Some(CloseCode::RecordFailed));
                assert_eq!(receiving, before, "a refused record moved the count");
                return;
            }
        }
        sent.push(record.to_vec());
    }
}

fn input_len(operation: u8) -> u8 {
    operation >> 2
}

/// Inputs for the `secure` corpus: honest handshakes and records from either side, and each
/// kind of change to a handshake message or a record.
pub fn seeds() -> Vec<crate::Seed> {
    let seed = |name: &str, bytes: &[u8]| crate::Seed {
        target: "secure",
        name: name.to_string(),
        bytes: bytes.to_vec(),
    };
    let mut made_up = vec![0x00, 0x00, 0x00, 0x03, 0x40];
    made_up.extend(b"garbage".iter().cycle().take(64));
    // Three honest records of 1, 2 and 3 bytes (operation: length in bits 2-7, honest in 0-1).
    let mut records = vec![0x01, 0x00, 0x00];
    for (len, fill) in [(1u8, b'a'), (2, b'b'), (3, b'c')] {
        records.push(len << 2);
        records.extend(std::iter::repeat_n(fill, usize::from(len)));
    }
    vec![
        seed("honest", b"\x00\x00\x00\x00\x00\x00\x10hello"),
        seed(
            "acceptor-changed-record",
            b"\x01\x00\x00\x04hi\x01\x01\x05\x08",
        ),
        seed("changed-message-1", b"\x00\x01\x10\x03\x00\x00"),
        seed("made-up-message-3", &made_up),
        seed("plain-frame-for-message-2", b"\x01\x04"),
        seed("replayed-record", b"\x00\x00\x00\x00\x08ab\x08cd\x0a\x00"),
        seed("acceptor-honest-records", &records),
        seed("cut-message-1", b"\x00\x02\x07"),
        seed(
            "acceptor-made-up-message-2",
            b"\x01\x03\x20xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        ),
        seed("changed-message-3", b"\x00\x00\x01\x05\x81"),
    ]
}
