//! A device's identity: its long-term X25519 key pair (SPEC section 17.3).

use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

use crate::SecureError;
use crate::files;

/// The length of an X25519 key, public or private, in bytes.
pub const KEY_LEN: usize = 32;

/// A device's public X25519 key: what its peers trust.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps 32 bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key from a slice, if it is 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Reads 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        parse_hex(text).map(Self)
    }

    /// The key's fingerprint, shown to people.
    pub fn fingerprint(&self) -> Fingerprint {
        let digest = Sha256::digest(self.0);
        let mut bytes = [0u8; Fingerprint::LEN];
        bytes.copy_from_slice(&digest[..Fingerprint::LEN]);
        Fingerprint(bytes)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A short printable hash of a public key (`SEC-3`): the first 10 bytes of its SHA-256, as five
/// groups of four hexadecimal digits, such as `3f2a-9b1c-44d0-e7a1-0c55`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; Fingerprint::LEN]);

impl Fingerprint {
    /// How many bytes of the hash a fingerprint shows.
    pub const LEN: usize = 10;

    /// The fingerprint's bytes.
    pub fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            f.write_str(&hex(pair))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// A device's long-term identity: an X25519 key pair. The private key never leaves it except
/// to a key file ([`Identity::save`]).
#[derive(Clone)]
pub struct Identity {
    private: [u8; KEY_LEN],
    public: PublicKey,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// A new identity with a private key from the operating system's random number generator.
    pub fn generate() -> Result<Self, SecureError> {
        let mut private = [0u8; KEY_LEN];
        getrandom::fill(&mut private).map_err(|e| SecureError::Random(e.to_string()))?;
        Self::from_private_key(private)
    }

    /// The identity whose private key is `private` (any 32 bytes; X25519 clamps them).
    pub fn from_private_key(private: [u8; KEY_LEN]) -> Result<Self, SecureError> {
        let mut dh = DefaultResolver
            .resolve_dh(&DHChoice::Curve25519)
            .ok_or_else(|| SecureError::Random("no X25519 implementation".into()))?;
        dh.set(&private);
        let public = PublicKey::from_slice(dh.pubkey())
            .ok_or_else(|| SecureError::Random("X25519 public key of another length".into()))?;
        Ok(Self { private, public })
    }

    /// The public key: what peers see and trust.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The public key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    /// The private key, for the Noise handshake.
    pub(crate) fn private_key(&self) -> &[u8; KEY_LEN] {
        &self.private
    }

    /// Reads an identity saved by [`Identity::save`].
    pub fn load(path: &Path) -> Result<Self, SecureError> {
        let text = files::read(path)?;
        let line = text.trim();
        let private = parse_hex(line).ok_or_else(|| SecureError::BadFile {
            path: path.display().to_string(),
            detail: "not a private key of 64 hexadecimal digits".into(),
        })?;
        Self::from_private_key(private)
    }

    /// Writes the private key to `path` as 64 hexadecimal digits, readable by its owner only
    /// (mode 0600 on Unix), replacing the file atomically.
    pub fn save(&self, path: &Path) -> Result<(), SecureError> {
        files::write_private(path, &format!("{}\n", hex(&self.private)))
    }

    /// Loads the identity at `path`, or makes one and saves it there if there is no file yet.
    ///
    /// Processes (or threads) that share the file and start together end with the same
    /// identity: the file is made whole or not at all, and only by the first to make it; the
    /// others load it.
    pub fn load_or_generate(path: &Path) -> Result<Self, SecureError> {
        if path.exists() {
            return Self::load(path);
        }
        let identity = Self::generate()?;
        if files::create_private(path, &format!("{}\n", hex(&identity.private)))? {
            Ok(identity)
        } else {
            Self::load(path)
        }
    }
}

/// Lowercase hexadecimal digits of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    out
}

/// 32 bytes from 64 hexadecimal digits (either case), or `None`.
pub(crate) fn parse_hex(text: &str) -> Option<[u8; KEY_LEN]> {
    let digits = text.as_bytes();
    if digits.len() != KEY_LEN * 2 {
        return None;
    }
    let mut out = [0u8; KEY_LEN];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let high = char::from(pair[0]).to_digit(16)?;
        let low = char::from(pair[1]).to_digit(16)?;
        *byte = u8::try_from(high * 16 + low).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_is_the_x25519_base_point_multiple() {
        // RFC 7748 section 6.1: Alice's private and public keys.
        let private =
            parse_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a").unwrap();
        let identity = Identity::from_private_key(private).unwrap();
        assert_eq!(
            identity.public_key().to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn identities_made_at_once_in_one_folder_are_one() {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "acm-secure-identity-{}-{:x}",
            std::process::id(),
            u64::from_le_bytes(bytes)
        ));
        let path = dir.join("acm").join("identity");
        let makers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Identity::load_or_generate(&path).unwrap())
            })
            .collect();
        let keys: Vec<PublicKey> = makers
            .into_iter()
            .map(|maker| maker.join().unwrap().public_key())
            .collect();
        let saved = Identity::load(&path).unwrap().public_key();
        assert!(keys.iter().all(|key| *key == saved), "one key for all");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["identity"], "no file left half-made");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn generated_identities_differ() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.public_key(), b.public_key());
    }

    #[test]
    fn fingerprint_is_the_first_ten_bytes_of_the_keys_sha256_in_groups() {
        let key = PublicKey::from_bytes([0; 32]);
        // SHA-256 of 32 zero bytes starts 66687aadf862bd776c8f.
        assert_eq!(key.fingerprint().to_string(), "6668-7aad-f862-bd77-6c8f");
    }

    #[test]
    fn hex_round_trips_and_refuses_other_text() {
        let key = PublicKey::from_bytes([0xAB; 32]);
        assert_eq!(PublicKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(PublicKey::from_hex(&key.to_hex().to_uppercase()), Some(key));
        assert_eq!(PublicKey::from_hex("ab"), None);
        assert_eq!(PublicKey::from_hex(&"zz".repeat(32)), None);
        assert_eq!(PublicKey::from_hex(&"é".repeat(32)), None);
    }
}
