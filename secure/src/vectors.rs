//! The test vectors of SPEC Appendix B, computed by this implementation from fixed keys, and a
//! check of the appendix's text against them. An implementation in another language reproduces
//! each value from SPEC section 17 alone.

use acm_transport::{DeviceId, Role};

use crate::SecureError;
use crate::handshake::{Handshake, NONCE_LEN, prologue};
use crate::identity::{Identity, KEY_LEN, hex};
use crate::record::Counter;

/// The dialer's device id in the vectors.
pub const DIALER: &str = "phone";
/// The acceptor's device id in the vectors.
pub const ACCEPTOR: &str = "tablet";

/// The fixed inputs: each key and the nonce are one byte repeated 32 times.
const DIALER_STATIC: [u8; KEY_LEN] = [0x11; KEY_LEN];
const ACCEPTOR_STATIC: [u8; KEY_LEN] = [0x22; KEY_LEN];
const DIALER_EPHEMERAL: [u8; KEY_LEN] = [0x33; KEY_LEN];
const ACCEPTOR_EPHEMERAL: [u8; KEY_LEN] = [0x44; KEY_LEN];
const NONCE: [u8; NONCE_LEN] = [0x55; NONCE_LEN];

/// The frame the dialer sends first after the confirmations: a PING (type 3) with value 7.
pub const FRAME: [u8; 14] = [
    0xAC, 0x4D, 0x01, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x08, 0x07,
];

/// A TCP binding's OPEN message (SPEC section 14.3) naming `id`.
fn open(id: &str) -> Vec<u8> {
    let len = u8::try_from(id.len()).unwrap_or(u8::MAX);
    let mut open = vec![0xAC, 0x4D, 0x00, 0x01, 0x00, 0x00, 0x00, len, 0, 0, 0, 0];
    open.extend_from_slice(id.as_bytes());
    open
}

/// Every vector as (name, lowercase hex), in the appendix's order.
pub fn compute() -> Result<Vec<(&'static str, String)>, SecureError> {
    let bad_id = |e: acm_transport::InvalidDeviceId| SecureError::Random(e.to_string());
    let (dialer_id, acceptor_id) = (
        DeviceId::new(DIALER).map_err(bad_id)?,
        DeviceId::new(ACCEPTOR).map_err(bad_id)?,
    );
    let opening = [open(DIALER), open(ACCEPTOR)].concat();
    let prologue = prologue(&dialer_id, &acceptor_id, &opening);
    let dialer_identity = Identity::from_private_key(DIALER_STATIC)?;
    let acceptor_identity = Identity::from_private_key(ACCEPTOR_STATIC)?;
    let mut dialer = Handshake::for_test_vectors(
        &dialer_identity,
        Role::Dialer,
        &prologue,
        &DIALER_EPHEMERAL,
        NONCE,
    )?;
    // The acceptor's nonce is never used: message 3 reveals the dialer's.
    let mut acceptor = Handshake::for_test_vectors(
        &acceptor_identity,
        Role::Acceptor,
        &prologue,
        &ACCEPTOR_EPHEMERAL,
        [0; NONCE_LEN],
    )?;
    let message1 = dialer.write_message()?;
    acceptor.read_message(&message1)?;
    let message2 = acceptor.write_message()?;
    dialer.read_message(&message2)?;
    let h2 = dialer.hash();
    let message3 = dialer.write_message()?;
    acceptor.read_message(&message3)?;
    let (dialer, acceptor) = (dialer.finish()?, acceptor.finish()?);
    let mut sending = Counter::default();
    let confirmation = dialer.records.seal(&mut sending, &[])?;
    let record = dialer.records.seal(&mut sending, &FRAME)?;
    let mut receiving = Counter::default();
    acceptor.records.open(&mut receiving, &confirmation)?;
    let opened = acceptor.records.open(&mut receiving, &record)?;
    if opened[..] != FRAME || acceptor.code != dialer.code {
        return Err(SecureError::refused(
            crate::CloseCode::RecordFailed,
            "the vectors do not agree with themselves",
        ));
    }
    Ok(vec![
        ("dialer_static_private", hex(&DIALER_STATIC)),
        (
            "dialer_static_public",
            dialer_identity.public_key().to_hex(),
        ),
        ("acceptor_static_private", hex(&ACCEPTOR_STATIC)),
        (
            "acceptor_static_public",
            acceptor_identity.public_key().to_hex(),
        ),
        ("dialer_ephemeral_private", hex(&DIALER_EPHEMERAL)),
        ("acceptor_ephemeral_private", hex(&ACCEPTOR_EPHEMERAL)),
        ("dialer_nonce", hex(&NONCE)),
        ("prologue", hex(&prologue)),
        ("message_1", hex(&message1)),
        ("message_2", hex(&message2)),
        ("h2", hex(&h2)),
        ("message_3", hex(&message3)),
        ("handshake_hash", hex(&dialer.handshake_hash)),
        ("pairing_code", dialer.code.to_string()),
        (
            "dialer_fingerprint",
            dialer_identity.fingerprint().to_string(),
        ),
        ("confirmation_record_0", hex(&confirmation)),
        ("frame", hex(&FRAME)),
        ("frame_record_1", hex(&record)),
    ])
}

/// The vectors SPEC.md's Appendix B states: the `name = value` lines of its code blocks.
pub fn stated(spec: &str) -> Vec<(String, String)> {
    let Some(appendix) = spec.split("\n## Appendix B").nth(1) else {
        return Vec::new();
    };
    let appendix = appendix.split("\n## ").next().unwrap_or(appendix);
    let mut in_block = false;
    let mut stated = Vec::new();
    for line in appendix.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if let (true, Some((name, value))) = (in_block, line.split_once(" = ")) {
            stated.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    stated
}

/// Checks that `spec`'s Appendix B states exactly the vectors this implementation computes;
/// says what differs otherwise.
pub fn check(spec: &str) -> Result<(), String> {
    let computed = compute().map_err(|e| format!("the vectors cannot be computed: {e}"))?;
    let stated = stated(spec);
    let mut differences = Vec::new();
    for (name, value) in &computed {
        match stated.iter().find(|(n, _)| n == name) {
            None => differences.push(format!("{name} is not stated (computed {value})")),
            Some((_, text)) if text != value => {
                differences.push(format!("{name}: stated {text}, computed {value}"));
            }
            Some(_) => {}
        }
    }
    for (name, _) in &stated {
        if !computed.iter().any(|(n, _)| n == name) {
            differences.push(format!("{name} is stated but not a vector"));
        }
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
    }
}
