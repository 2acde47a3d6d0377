//! The secure layer (SPEC section 17): the suite runs the handshake itself with the reference
//! secure layer, then sends records and handshake messages that are changed, replayed, out of
//! order, plain or made up, and checks that the implementation closes the link with the right
//! reason, without a hang.

use acm::secure::handshake::Handshake;
use acm::secure::{CloseCode, SecureConfig, SecureLink, establish, link_prologue, vectors};
use acm_transport::{Closure, Link, TransportError};
use acm_wire::pb;
use acm_wire::{Control, encode_control};
use bytes::Bytes;

use super::cases_frame::raw_frame;
use super::peer::{ANSWER, Peer, Step};
use super::target::{Needs, WireTarget};
use super::{WireCase, wire_case};
use crate::report::Verdict;

pub(super) fn cases() -> Vec<WireCase> {
    vec![
        wire_case!(
            "wire/SEC-9/flipped-bit",
            ["SEC-9", "SEC-11"],
            "a record with one bit changed closes the link with RECORD_FAILED",
            flipped_bit
        )
        .needing(Needs::Secure)
        .breaking("SEC-9"),
        wire_case!(
            "wire/SEC-9/replayed-record",
            ["SEC-9"],
            "a record sent twice closes the link with RECORD_FAILED",
            replayed
        )
        .needing(Needs::Secure)
        .breaking("SEC-9"),
        wire_case!(
            "wire/SEC-9/reordered-records",
            ["SEC-9"],
            "two records sent in the wrong order close the link with RECORD_FAILED",
            reordered
        )
        .needing(Needs::Secure)
        .breaking("SEC-9"),
        wire_case!(
            "wire/SEC-9/plain-frame",
            ["SEC-9"],
            "a plain frame where a record is due closes the link with RECORD_FAILED",
            plain_frame
        )
        .needing(Needs::Secure)
        .breaking("SEC-9"),
        wire_case!(
            "wire/SEC-8/confirmation-first",
            ["SEC-8", "SEC-10"],
            "the implementation's first record is an empty confirmation, and HELLO follows",
            confirmation_first
        )
        .needing(Needs::Secure),
        wire_case!(
            "wire/SEC-5/truncated-handshake",
            ["SEC-4", "SEC-5"],
            "a handshake message cut short closes the link with HANDSHAKE_FAILED",
            truncated_handshake
        )
        .needing(Needs::Secure)
        .breaking("SEC-5"),
        wire_case!(
            "wire/SEC-5/garbage-handshake",
            ["SEC-5"],
            "a made-up message 1 (a bad envelope around 64 bytes of noise) closes the link with HANDSHAKE_FAILED",
            garbage_handshake
        )
        .needing(Needs::Secure)
        .breaking("SEC-5"),
        wire_case!(
            "wire/SEC-7/impersonation",
            ["SEC-3", "SEC-7"],
            "the suite's device id with another key is refused with IMPERSONATION",
            impersonation
        )
        .needing(Needs::Secure)
        .breaking("SEC-7"),
        wire_case!(
            "wire/SEC-2/plain-peer",
            ["SEC-1", "SEC-2"],
            "a peer that sends HELLO instead of the handshake is refused with SECURITY_REQUIRED",
            plain_peer
        )
        .needing(Needs::Secure)
        .breaking("SEC-2"),
        wire_case!(
            "wire/SEC-10/rekeyed-records",
            ["SEC-10"],
            "records past the first rekey (65 537 after the confirmation), sealed under the new key, are opened and the link stays up",
            rekeyed
        )
        .needing(Needs::Secure),
        wire_case!(
            "wire/SEC-10/records-not-rekeyed",
            ["SEC-10", "SEC-9"],
            "a peer that does not rekey after 65 536 records has its next record refused with RECORD_FAILED",
            not_rekeyed
        )
        .needing(Needs::Secure)
        .breaking("SEC-10"),
        wire_case!(
            "wire/SEC-13/announced-frame-size",
            ["SEC-13", "LINK-3"],
            "over a secure link the implementation announces a max_frame_size the link's records carry (at most 65 519 bytes)",
            announced_frame_size
        )
        .needing(Needs::Secure),
        wire_case!(
            "wire/SEC-6/test-vectors",
            ["SEC-4", "SEC-6", "SEC-13"],
            "the suite's secure layer reproduces the test vectors of SPEC Appendix B",
            test_vectors
        ),
    ]
}

fn fail<T>(expected: impl Into<String>, actual: impl Into<String>) -> Step<T> {
    Err(Verdict::fail(expected, actual))
}

fn suite_security(t: &dyn WireTarget) -> Step<&SecureConfig> {
    t.security().ok_or_else(|| {
        Verdict::Unsupported("the implementation is tested without the secure layer".into())
    })
}

/// A raw link to the implementation, for the secure layer to run on.
async fn raw(t: &dyn WireTarget) -> Step<Box<dyn Link>> {
    t.open_raw()
        .await
        .map_err(|e| Verdict::fail("a link to the implementation", e.to_string()))
}

/// A secure link to the implementation, up and confirmed.
async fn secure(t: &dyn WireTarget) -> Step<SecureLink> {
    let config = suite_security(t)?;
    establish(raw(t).await?, config)
        .await
        .map_err(|e| Verdict::fail("a secure link (SEC-4, SEC-8)", e.to_string()))
}

/// The suite's HELLO as a frame.
fn hello(t: &dyn WireTarget) -> Step<Bytes> {
    let hello = Control::Hello(pb::Hello {
        min_version: 1,
        max_version: 1,
        device_id: t.suite_device_id(),
        max_frame_size: 65_507,
        keepalive_interval_ms: 30_000,
        features: 0,
        nonce: Bytes::from_static(&[0x5E; 16]),
        max_data_size: 100 << 20,
    });
    encode_control(&hello, 1, 0, 65_507)
        .ok()
        .and_then(|frames| frames.into_iter().next())
        .ok_or_else(|| Verdict::fail("an encodable HELLO", "none"))
}

/// Reads `link` until it ends, and expects it to end with the secure layer's `code`.
async fn expect_closed(link: &dyn Link, code: CloseCode) -> Step<()> {
    let ended = tokio::time::timeout(ANSWER, async {
        loop {
            match link.recv().await {
                Ok(_) => continue,
                Err(TransportError::Closed(closure)) => break Ok(closure),
                Err(other) => break Err(other.to_string()),
            }
        }
    })
    .await;
    let wanted = format!("the link closed with {} ({:#x})", code.name(), code.code());
    match ended {
        Err(_) => fail(wanted, "it stayed open"),
        Ok(Err(error)) => fail(wanted, error),
        Ok(Ok(closure)) if CloseCode::of_closure(&closure) == Some(code) => Ok(()),
        Ok(Ok(Closure::Lost(why))) => fail(wanted, format!("it was lost without a reason: {why}")),
        Ok(Ok(closure)) => fail(wanted, closure.to_string()),
    }
}

async fn send_raw(link: &dyn Link, bytes: Bytes) -> Step<()> {
    link.send(bytes)
        .await
        .map_err(|e| Verdict::fail("the link to take the message", e.to_string()))
}

async fn seal(link: &SecureLink, frame: &[u8]) -> Step<Bytes> {
    link.seal(frame)
        .await
        .map_err(|e| Verdict::fail("a sealed record", e.to_string()))
}

async fn flipped_bit(t: &dyn WireTarget) -> Step<()> {
    let link = secure(t).await?;
    let mut record = seal(&link, &hello(t)?).await?.to_vec();
    let middle = record.len() / 2;
    record[middle] ^= 0x04;
    send_raw(link.inner(), record.into()).await?;
    expect_closed(link.inner(), CloseCode::RecordFailed).await
}

async fn replayed(t: &dyn WireTarget) -> Step<()> {
    let link = secure(t).await?;
    let record = seal(&link, &hello(t)?).await?;
    send_raw(link.inner(), record.clone()).await?;
    send_raw(link.inner(), record).await?;
    expect_closed(link.inner(), CloseCode::RecordFailed).await
}

async fn reordered(t: &dyn WireTarget) -> Step<()> {
    let link = secure(t).await?;
    let first = seal(&link, &hello(t)?).await?;
    let ping = Control::Ping(pb::Ping { value: 9 });
    let ping = encode_control(&ping, 1, 0, 1024)
        .ok()
        .and_then(|frames| frames.into_iter().next())
        .ok_or_else(|| Verdict::fail("an encodable PING", "none"))?;
    let second = seal(&link, &ping).await?;
    send_raw(link.inner(), second).await?;
    send_raw(link.inner(), first).await?;
    expect_closed(link.inner(), CloseCode::RecordFailed).await
}

async fn plain_frame(t: &dyn WireTarget) -> Step<()> {
    let link = secure(t).await?;
    send_raw(link.inner(), hello(t)?).await?;
    expect_closed(link.inner(), CloseCode::RecordFailed).await
}

async fn confirmation_first(t: &dyn WireTarget) -> Step<()> {
    // `establish` has received the implementation's first record and refused it unless it was
    // an empty confirmation; its next record must open as a HELLO.
    let link = secure(t).await?;
    let frame = tokio::time::timeout(ANSWER, link.recv())
        .await
        .map_err(|_| Verdict::fail("HELLO after the confirmation", "nothing"))?
        .map_err(|e| Verdict::fail("HELLO after the confirmation", e.to_string()))?;
    if frame.get(3) != Some(&(pb::FrameType::Hello as u8)) {
        return fail(
            "HELLO as the first frame in a record",
            format!("{:02x?}", &frame[..frame.len().min(12)]),
        );
    }
    Ok(())
}

/// Starts a handshake as the dialer of a new raw link, with a new identity or the suite's.
async fn dialer_handshake(t: &dyn WireTarget) -> Step<(Box<dyn Link>, Handshake)> {
    let config = suite_security(t)?;
    let link = raw(t).await?;
    let handshake = Handshake::new(config.identity(), link.role(), &link_prologue(&*link))
        .map_err(|e| Verdict::fail("a handshake", e.to_string()))?;
    Ok((link, handshake))
}

async fn truncated_handshake(t: &dyn WireTarget) -> Step<()> {
    let (link, mut handshake) = dialer_handshake(t).await?;
    let first = handshake
        .write_message()
        .map_err(|e| Verdict::fail("message 1", e.to_string()))?;
    let mut cut = first.slice(..first.len() - 8).to_vec();
    // The envelope's length says what is there: the Noise message itself is short.
    cut[7] -= 8;
    send_raw(&*link, cut.into()).await?;
    expect_closed(&*link, CloseCode::HandshakeFailed).await
}

async fn garbage_handshake(t: &dyn WireTarget) -> Step<()> {
    suite_security(t)?;
    let link = raw(t).await?;
    // Shaped like a frame, so that byte-stream bindings carry it (`TCP-2`), but no envelope:
    // its version, flags and channel are wrong; its body is noise.
    let mut garbage = vec![
        0xAC, 0x4D, 0x9A, 0x7E, 0xFF, 0x00, 0x00, 64, 0x12, 0x34, 0x56, 0x78,
    ];
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37) ^ 0x42));
    send_raw(&*link, garbage.into()).await?;
    expect_closed(&*link, CloseCode::HandshakeFailed).await
}

async fn impersonation(t: &dyn WireTarget) -> Step<()> {
    // The suite's own key first, so that the implementation knows it (it trusts on first use).
    let link = secure(t).await?;
    drop(link);
    let impostor =
        SecureConfig::ephemeral().map_err(|e| Verdict::fail("a second identity", e.to_string()))?;
    match establish(raw(t).await?, &impostor).await {
        Ok(_) => fail(
            "IMPERSONATION: the suite's id is trusted with another key",
            "the link came up",
        ),
        Err(e) if e.close_code() == Some(CloseCode::Impersonation) => Ok(()),
        Err(e) => fail("the link closed with IMPERSONATION", e.to_string()),
    }
}

async fn plain_peer(t: &dyn WireTarget) -> Step<()> {
    suite_security(t)?;
    let link = raw(t).await?;
    send_raw(&*link, hello(t)?).await?;
    expect_closed(&*link, CloseCode::SecurityRequired).await
}

async fn test_vectors(_: &dyn WireTarget) -> Step<()> {
    let spec = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../SPEC.md"));
    vectors::check(spec)
        .map_err(|differences| Verdict::fail("the vectors of SPEC Appendix B", differences))
}

/// Records a side sends before it must have changed keys once, and one more (`SEC-10`).
const PAST_REKEY: usize = 65_537;

/// Sends `count` extension frames (ignored, `FRAME-7`) over `link`, each as a record; stops at
/// the first that the link refuses, the implementation having closed it.
async fn send_extensions(link: &SecureLink, count: usize) -> Result<(), TransportError> {
    let frame = raw_frame(1, 0xA5, 0, 0, b"records");
    for _ in 0..count {
        link.send(frame.clone()).await?;
    }
    Ok(())
}

async fn rekeyed(t: &dyn WireTarget) -> Step<()> {
    let link = secure(t).await?;
    link.send(hello(t)?)
        .await
        .map_err(|e| Verdict::fail("the link to take HELLO", e.to_string()))?;
    send_extensions(&link, PAST_REKEY)
        .await
        .map_err(|e| Verdict::fail("the link to take every record (SEC-10)", e.to_string()))?;
    let ping = Control::Ping(pb::Ping { value: 0x5EC10 });
    let ping = encode_control(&ping, 1, 0, 1024)
        .ok()
        .and_then(|frames| frames.into_iter().next())
        .ok_or_else(|| Verdict::fail("an encodable PING", "none"))?;
    link.send(ping)
        .await
        .map_err(|e| Verdict::fail("the link to take a PING", e.to_string()))?;
    let pong = tokio::time::timeout(ANSWER, async {
        loop {
            let frame = link.recv().await?;
            if frame.get(3) == Some(&(pb::FrameType::Pong as u8)) {
                return Ok::<_, TransportError>(frame);
            }
        }
    })
    .await;
    match pong {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => fail("a PONG after the rekey", e.to_string()),
        Err(_) => fail("a PONG after the rekey", "nothing"),
    }
}

async fn not_rekeyed(t: &dyn WireTarget) -> Step<()> {
    let link = secure(t).await?.with_rekey_interval(u64::MAX);
    link.send(hello(t)?)
        .await
        .map_err(|e| Verdict::fail("the link to take HELLO", e.to_string()))?;
    // The implementation closes the link at the first record under the old key; sends after
    // that may fail, which is what is asked.
    let _ = send_extensions(&link, PAST_REKEY).await;
    expect_closed(link.inner(), CloseCode::RecordFailed).await
}

async fn announced_frame_size(t: &dyn WireTarget) -> Step<()> {
    let mut peer = Peer::up(t).await?;
    let announced = peer.hello.as_ref().map_or(0, |h| h.max_frame_size);
    if announced > MAX_SECURE_FRAME {
        return fail(
            format!("a max_frame_size of at most {MAX_SECURE_FRAME} (SEC-13)"),
            announced.to_string(),
        );
    }
    peer.expect_alive().await
}

/// The largest frame any secure link carries (`SEC-13`).
const MAX_SECURE_FRAME: u32 = 65_519;
