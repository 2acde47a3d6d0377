//! The Noise XX handshake with its pairing commitment (SPEC section 17.5), without I/O: it
//! makes and reads link messages, and hands over the record keys, the peer's key and the
//! pairing code once done.

use acm_transport::{DeviceId, Role};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use snow::{Builder, HandshakeState};

use crate::envelope::{self, Kind, Parsed};
use crate::error::{CloseCode, SecureError};
use crate::identity::{Identity, KEY_LEN, PublicKey};
use crate::pairing::PairingCode;
use crate::record::Records;

/// The Noise protocol acm's secure layer runs (`SEC-4`).
pub const NOISE_NAME: &str = "Noise_XX_25519_ChaChaPoly_SHA256";

/// The first bytes of every prologue: a label and the secure layer's version (1).
pub const PROLOGUE_LABEL: &[u8] = b"acm-secure\x01";

/// The length of the dialer's pairing nonce, and of its commitment (a SHA-256).
pub const NONCE_LEN: usize = 32;

/// The label hashed before the handshake hash and the nonce into the pairing code.
pub const CODE_LABEL: &[u8] = b"acm pairing code";

/// The Noise message lengths, envelope not included: message 1 (`e` and the commitment),
/// message 2 (`e, ee, s, es` and an empty payload), message 3 (`s, se` and the nonce).
pub const MESSAGE_LENS: [usize; 3] = [
    KEY_LEN + NONCE_LEN,
    KEY_LEN + KEY_LEN + 16 + 16,
    KEY_LEN + 16 + NONCE_LEN + 16,
];

/// The prologue both sides start the handshake with (`SEC-4`): the label, then the dialer's
/// and the acceptor's device ids as the transport names them, each behind its length in one
/// byte, then the binding's opening ([`acm_transport::Link::opening`]) behind its length in
/// four bytes, big-endian.
pub fn prologue(dialer: &DeviceId, acceptor: &DeviceId, opening: &[u8]) -> Vec<u8> {
    let mut prologue = PROLOGUE_LABEL.to_vec();
    for id in [dialer, acceptor] {
        // Device ids are at most 64 bytes.
        prologue.push(u8::try_from(id.as_str().len()).unwrap_or(u8::MAX));
        prologue.extend_from_slice(id.as_str().as_bytes());
    }
    let len = u32::try_from(opening.len()).unwrap_or(u32::MAX);
    prologue.extend_from_slice(&len.to_be_bytes());
    prologue.extend_from_slice(opening);
    prologue
}

/// The pairing code of a handshake (`SEC-6`): the first 8 bytes of
/// SHA-256(`CODE_LABEL` || h2 || nonce), big-endian, modulo 1 000 000, where h2 is the
/// handshake hash once message 2 is written or read and the nonce is the dialer's.
pub fn pairing_code(h2: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> PairingCode {
    let digest = Sha256::new()
        .chain_update(CODE_LABEL)
        .chain_update(h2)
        .chain_update(nonce)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    PairingCode::reduce(u64::from_be_bytes(first))
}

fn failed(detail: impl Into<String>) -> SecureError {
    SecureError::refused(CloseCode::HandshakeFailed, detail)
}

/// One side's handshake in progress. The dialer is the Noise initiator.
pub struct Handshake {
    noise: HandshakeState,
    role: Role,
    /// Messages written or read so far.
    step: usize,
    /// The dialer's nonce: its own, or (on the acceptor) the one message 3 revealed.
    nonce: [u8; NONCE_LEN],
    /// SHA-256 of the nonce: the dialer's own, or the one message 1 carried.
    commitment: [u8; 32],
    /// The handshake hash after message 2.
    h2: Option<[u8; 32]>,
    /// The dialer's ephemeral public key, which names the link in key logs.
    dialer_ephemeral: [u8; 32],
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    /// The peer's static key.
    pub peer_key: PublicKey,
    /// The pairing code both sides show.
    pub code: PairingCode,
    /// The final handshake hash.
    pub handshake_hash: [u8; 32],
    /// The record keys.
    pub records: Records,
}

impl Handshake {
    /// Starts `role`'s side of a handshake as `identity`, with `prologue`, a fresh ephemeral
    /// key and (on the dialer) a fresh nonce.
    pub fn new(identity: &Identity, role: Role, prologue: &[u8]) -> Result<Self, SecureError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SecureError::Random(e.to_string()))?;
        Self::build(identity, role, prologue, None, nonce)
    }

    /// As [`Handshake::new`], with a given ephemeral private key and nonce. For test vectors
    /// (SPEC Appendix B) only: a handshake whose ephemeral key is known protects nothing.
    pub fn for_test_vectors(
        identity: &Identity,
        role: Role,
        prologue: &[u8],
        ephemeral: &[u8; KEY_LEN],
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, SecureError> {
        Self::build(identity, role, prologue, Some(ephemeral), nonce)
    }

    fn build(
        identity: &Identity,
        role: Role,
        prologue: &[u8],
        ephemeral: Option<&[u8; KEY_LEN]>,
        nonce: [u8; NONCE_LEN],
    ) -> Result<Self, SecureError> {
        let params = NOISE_NAME.parse()?;
        let mut builder = Builder::new(params)
            .local_private_key(identity.private_key())?
            .prologue(prologue)?;
        if let Some(ephemeral) = ephemeral {
            builder = builder.fixed_ephemeral_key_for_testing_only(ephemeral);
        }
        let noise = match role {
            Role::Dialer => builder.build_initiator()?,
            Role::Acceptor => builder.build_responder()?,
        };
        let commitment = Sha256::digest(nonce).into();
        Ok(Self {
            noise,
            role,
            step: 0,
            nonce,
            commitment,
            h2: None,
            dialer_ephemeral: [0; 32],
        })
    }

    /// This side's role: the dialer is the Noise initiator.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the next message is this side's to write (false once finished).
    pub fn is_my_turn(&self) -> bool {
        !self.is_finished() && self.step.is_multiple_of(2) == (self.role == Role::Dialer)
    }

    /// Whether all three messages are through.
    pub fn is_finished(&self) -> bool {
        self.step >= 3
    }

    /// The handshake hash so far.
    pub fn hash(&self) -> [u8; 32] {
        let mut hash = [0u8; 32];
        let h = self.noise.get_handshake_hash();
        hash[..h.len().min(32)].copy_from_slice(&h[..h.len().min(32)]);
        hash
    }

    /// Writes this side's next message, as a link message (in its envelope).
    pub fn write_message(&mut self) -> Result<Bytes, SecureError> {
        if !self.is_my_turn() {
            return Err(failed("a handshake message written out of turn"));
        }
        let payload: &[u8] = match self.step {
            0 => &self.commitment,
            2 => &self.nonce,
            _ => &[],
        };
        let len = MESSAGE_LENS[self.step];
        // Room for a tag that message 1 does not have: the Noise library asks for it.
        let mut message = vec![0u8; envelope::HEADER_LEN + len + crate::record::TAG_LEN];
        message[..envelope::HEADER_LEN].copy_from_slice(&envelope::header(Kind::Handshake, len));
        let written = self
            .noise
            .write_message(payload, &mut message[envelope::HEADER_LEN..])?;
        if written != len {
            return Err(failed("the Noise message has an unexpected length"));
        }
        message.truncate(envelope::HEADER_LEN + len);
        if self.step == 0 {
            self.note_dialer_ephemeral(&message[envelope::HEADER_LEN..]);
        }
        self.advance();
        Ok(message.into())
    }

    /// Reads the peer's next message, a link message as received.
    pub fn read_message(&mut self, message: &[u8]) -> Result<(), SecureError> {
        if self.is_finished() || self.is_my_turn() {
            return Err(failed("a handshake message arrived out of turn"));
        }
        let body = match envelope::parse(message) {
            Parsed::Envelope(Kind::Handshake, body) => body,
            Parsed::PlainFrame if self.step < 2 => {
                return Err(SecureError::refused(
                    CloseCode::SecurityRequired,
                    "the peer sent a plain acm frame instead of a handshake message",
                ));
            }
            Parsed::Envelope(Kind::Record, _) | Parsed::PlainFrame => {
                return Err(failed("not a handshake message"));
            }
            Parsed::Malformed(what) => return Err(failed(what)),
        };
        let len = MESSAGE_LENS[self.step];
        if body.len() != len {
            return Err(failed(format!(
                "handshake message {} is {} bytes long, not {len}",
                self.step + 1,
                body.len()
            )));
        }
        let mut payload = [0u8; NONCE_LEN + 16];
        let read = self
            .noise
            .read_message(body, &mut payload)
            .map_err(|e| failed(format!("handshake message {}: {e}", self.step + 1)))?;
        let expected = if self.step == 1 { 0 } else { NONCE_LEN };
        let Some(carried) = payload.get(..read).filter(|p| p.len() == expected) else {
            return Err(failed("a handshake payload of the wrong length"));
        };
        match self.step {
            0 => {
                self.commitment.copy_from_slice(carried);
                self.note_dialer_ephemeral(body);
            }
            2 => {
                self.nonce.copy_from_slice(carried);
                let opened: [u8; 32] = Sha256::digest(self.nonce).into();
                if opened != self.commitment {
                    return Err(failed("the dialer's nonce does not open its commitment"));
                }
            }
            _ => {}
        }
        self.advance();
        Ok(())
    }

    /// The link's record keys as a key log line holds them (SPEC section 17.12).
    fn link_keys(&mut self) -> crate::keylog::LinkKeys {
        let (dialer_key, acceptor_key) = self.noise.dangerously_get_raw_split();
        crate::keylog::LinkKeys {
            dialer_ephemeral: self.dialer_ephemeral,
            dialer_key,
            acceptor_key,
        }
    }

    /// Keeps the dialer's ephemeral key from message 1's body (its first 32 bytes).
    fn note_dialer_ephemeral(&mut self, body: &[u8]) {
        if let Some(key) = body.first_chunk::<32>() {
            self.dialer_ephemeral = *key;
        }
    }

    fn advance(&mut self) {
        self.step += 1;
        if self.step == 2 {
            self.h2 = Some(self.hash());
        }
    }

    /// The finished handshake's results.
    pub fn finish(mut self) -> Result<Established, SecureError> {
        let (Some(h2), true) = (self.h2, self.is_finished()) else {
            return Err(failed("the handshake is not finished"));
        };
        let peer_key = self
            .noise
            .get_remote_static()
            .and_then(PublicKey::from_slice)
            .ok_or_else(|| failed("the peer's static key is missing"))?;
        let handshake_hash = self.hash();
        let code = pairing_code(&h2, &self.nonce);
        if std::env::var_os(crate::keylog::KEYLOG_ENV).is_some() {
            self.link_keys().log();
        }
        let transport = self.noise.into_stateless_transport_mode()?;
        Ok(Established {
            peer_key,
            code,
            handshake_hash,
            records: Records::new(transport),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Handshake, Handshake) {
        let prologue = prologue(
            &DeviceId::new("phone").unwrap(),
            &DeviceId::new("tablet").unwrap(),
            b"",
        );
        let dialer = Handshake::new(&Identity::generate().unwrap(), Role::Dialer, &prologue);
        let acceptor = Handshake::new(&Identity::generate().unwrap(), Role::Acceptor, &prologue);
        (dialer.unwrap(), acceptor.unwrap())
    }

    #[test]
    fn both_sides_agree_on_the_code_the_hash_and_each_others_keys() {
        let (mut dialer, mut acceptor) = pair();
        assert!(dialer.is_my_turn() && !acceptor.is_my_turn());
        for _ in 0..3 {
            let (from, to) = if dialer.is_my_turn() {
                (&mut dialer, &mut acceptor)
            } else {
                (&mut acceptor, &mut dialer)
            };
            let message = from.write_message().unwrap();
            to.read_message(&message).unwrap();
        }
        assert!(dialer.is_finished() && acceptor.is_finished());
        let (d, a) = (dialer.finish().unwrap(), acceptor.finish().unwrap());
        assert_eq!(d.code, a.code);
        assert_eq!(d.handshake_hash, a.handshake_hash);
        assert_ne!(d.peer_key, a.peer_key);
    }

    /// A handshake run through: the logged keys, and both sides' results.
    fn finished() -> (crate::keylog::LinkKeys, Established, Established) {
        let (mut dialer, mut acceptor) = pair();
        let m1 = dialer.write_message().unwrap();
        acceptor.read_message(&m1).unwrap();
        let m2 = acceptor.write_message().unwrap();
        dialer.read_message(&m2).unwrap();
        let m3 = dialer.write_message().unwrap();
        acceptor.read_message(&m3).unwrap();
        let keys = dialer.link_keys();
        assert_eq!(keys, acceptor.link_keys());
        assert_eq!(keys.dialer_ephemeral[..], m1[envelope::HEADER_LEN..][..32]);
        (keys, dialer.finish().unwrap(), acceptor.finish().unwrap())
    }

    #[test]
    fn the_logged_keys_open_each_directions_records_across_a_rekey() {
        let (keys, dialer, acceptor) = finished();
        let mut opener = crate::keylog::RecordOpener::new(&keys.dialer_key).unwrap();
        let mut counter = crate::record::Counter::default();
        for n in 0..crate::record::REKEY_INTERVAL + 2 {
            let frame = n.to_be_bytes();
            let record = dialer.records.seal(&mut counter, &frame).unwrap();
            let opened = opener.open(&record[envelope::HEADER_LEN..]);
            assert_eq!(opened.as_deref(), Some(&frame[..]), "record {n}");
        }
        let mut opener = crate::keylog::RecordOpener::new(&keys.acceptor_key).unwrap();
        let mut counter = crate::record::Counter::default();
        let record = acceptor.records.seal(&mut counter, b"").unwrap();
        assert_eq!(opener.open(&record[envelope::HEADER_LEN..]), Some(vec![]));
        // A changed byte does not open; the next record still does.
        let mut bad = acceptor.records.seal(&mut counter, b"x").unwrap().to_vec();
        bad[envelope::HEADER_LEN] ^= 1;
        assert_eq!(opener.open(&bad[envelope::HEADER_LEN..]), None);
        let record = acceptor.records.seal(&mut counter, b"y").unwrap();
        assert_eq!(
            opener.open(&record[envelope::HEADER_LEN..]),
            Some(b"y".to_vec())
        );
    }

    #[test]
    fn an_opener_that_starts_late_skips_to_its_record_rekeys_included() {
        let (keys, dialer, _) = finished();
        let mut late = crate::keylog::RecordOpener::new(&keys.dialer_key).unwrap();
        let mut counter = crate::record::Counter::default();
        let mut last = Bytes::new();
        let n = crate::record::REKEY_INTERVAL + 2;
        for i in 0..=n {
            last = dialer.records.seal(&mut counter, &i.to_be_bytes()).unwrap();
        }
        let opened = late.open_at(n, &last[envelope::HEADER_LEN..]);
        assert_eq!(opened.as_deref(), Some(&n.to_be_bytes()[..]));
        assert_eq!(late.open_at(0, &last[envelope::HEADER_LEN..]), None);
    }

    #[test]
    fn a_nonce_that_does_not_open_the_commitment_fails_the_handshake() {
        let (mut dialer, mut acceptor) = pair();
        acceptor
            .read_message(&dialer.write_message().unwrap())
            .unwrap();
        dialer
            .read_message(&acceptor.write_message().unwrap())
            .unwrap();
        // A dialer that reveals another nonce than it committed to (to steer the code).
        dialer.nonce[0] ^= 1;
        let err = acceptor
            .read_message(&dialer.write_message().unwrap())
            .unwrap_err();
        assert!(
            err.to_string().contains("does not open its commitment"),
            "{err}"
        );
        assert_eq!(err.close_code(), Some(CloseCode::HandshakeFailed));
    }

    #[test]
    fn messages_out_of_turn_are_refused() {
        let (mut dialer, mut acceptor) = pair();
        assert!(acceptor.write_message().is_err());
        let first = dialer.write_message().unwrap();
        assert!(dialer.read_message(&first).is_err());
        assert!(dialer.write_message().is_err());
        assert!(dialer.finish().is_err());
        acceptor.read_message(&first).unwrap();
        assert!(acceptor.read_message(&first).is_err());
    }
}
