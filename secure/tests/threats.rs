//! The attacks the secure layer stops (SPEC section 17.2): a relay in the middle, an
//! impersonator, a peer without security, and records or handshake messages that are changed,
//! replayed, reordered, cut short or made up.

mod common;

use std::time::Duration;

use acm_secure::handshake::{Handshake, prologue};
use acm_secure::{CloseCode, Identity, PairingCode, SecureConfig, SecureLink, establish};
use acm_transport::{Closure, Link, Role, TransportError};
use acm_transport_mock::MockNetwork;
use bytes::Bytes;
use common::{frame, id, plain_hello, raw_pair, secure_pair, within};

fn tofu() -> SecureConfig {
    SecureConfig::ephemeral().unwrap()
}

/// A device whose owner accepts every pairing and reports the code it was shown.
fn trusting_owner(config: &SecureConfig) -> tokio::task::JoinHandle<Vec<PairingCode>> {
    let mut asks = config.pairing_requests().unwrap();
    tokio::spawn(async move {
        let mut codes = Vec::new();
        if let Some(request) = asks.next().await {
            codes.push(request.code());
            request.accept();
        }
        codes
    })
}

/// Runs a relay that ends the phone's link as "tablet" and opens its own link to the tablet as
/// "phone", with keys of its own, passing frames between the two. Returns what each real
/// device's opening gave.
async fn through_relay(
    phone: &SecureConfig,
    tablet: &SecureConfig,
) -> (
    Result<SecureLink, acm_secure::SecureError>,
    Result<SecureLink, acm_secure::SecureError>,
) {
    let relay = tofu();
    let (near, far) = (MockNetwork::new(1), MockNetwork::new(2));
    let (phone_end, relay_as_tablet) = raw_pair(&near, "phone", "tablet").await;
    let (relay_as_phone, tablet_end) = raw_pair(&far, "phone", "tablet").await;
    let (phone_link, tablet_link, _, _) = tokio::join!(
        establish(phone_end, phone),
        establish(tablet_end, tablet),
        establish(relay_as_tablet, &relay),
        establish(relay_as_phone, &relay),
    );
    (phone_link, tablet_link)
}

#[tokio::test]
async fn a_relay_with_keys_of_its_own_shows_the_two_owners_different_codes() {
    within(10, async {
        let phone = SecureConfig::new(Identity::generate().unwrap());
        let tablet = SecureConfig::new(Identity::generate().unwrap());
        let (phone_owner, tablet_owner) = (trusting_owner(&phone), trusting_owner(&tablet));
        let (phone_link, tablet_link) = through_relay(&phone, &tablet).await;
        let (phone_code, tablet_code) = (phone_owner.await.unwrap(), tablet_owner.await.unwrap());
        assert_eq!((phone_code.len(), tablet_code.len()), (1, 1));
        assert_ne!(
            phone_code[0], tablet_code[0],
            "owners who compare codes see the relay"
        );
        // Owners who accept without comparing pair with the relay: its key is not the peer's.
        assert_ne!(
            phone_link.unwrap().peer_key(),
            tablet.identity().public_key()
        );
        assert_ne!(
            tablet_link.unwrap().peer_key(),
            phone.identity().public_key()
        );
    })
    .await;
}

#[tokio::test]
async fn once_paired_a_relay_is_refused_as_an_impersonation_on_both_sides() {
    within(10, async {
        let (phone, tablet) = (tofu(), tofu());
        let (a, b) = secure_pair(&phone, &tablet).await;
        assert!(a.is_ok() && b.is_ok(), "the devices pair directly first");
        let (phone_link, tablet_link) = through_relay(&phone, &tablet).await;
        assert_eq!(
            phone_link.unwrap_err().close_code(),
            Some(CloseCode::Impersonation)
        );
        assert_eq!(
            tablet_link.unwrap_err().close_code(),
            Some(CloseCode::Impersonation)
        );
    })
    .await;
}

#[tokio::test]
async fn a_known_id_with_another_key_is_refused_and_the_trusted_key_stays() {
    within(10, async {
        let tablet = tofu();
        let real_phone = tofu();
        tablet
            .trust_store()
            .insert(&id("phone"), real_phone.identity().public_key())
            .unwrap();
        let impostor = tofu();
        let (dialed, accepted) = secure_pair(&impostor, &tablet).await;
        let refused = accepted.unwrap_err();
        assert_eq!(refused.close_code(), Some(CloseCode::Impersonation));
        assert!(refused.to_string().contains("phone is paired with key"));
        // The impersonator learns why, and gets no link on which it could send a frame.
        assert_eq!(
            dialed.unwrap_err().close_code(),
            Some(CloseCode::Impersonation)
        );
        assert_eq!(
            tablet.trust_store().get(&id("phone")),
            Some(real_phone.identity().public_key())
        );
    })
    .await;
}

#[tokio::test]
async fn a_relay_that_passes_the_handshake_on_but_changes_a_device_id_makes_it_fail() {
    within(10, async {
        // The phone dials "tablet"; the relay reaches the real tablet as "laptop" and passes
        // every message on unchanged. The ids are in the prologue, so the handshake fails.
        let (near, far) = (MockNetwork::new(1), MockNetwork::new(2));
        let (phone_end, relay_near) = raw_pair(&near, "phone", "tablet").await;
        let (relay_far, tablet_end) = raw_pair(&far, "laptop", "tablet").await;
        let (near, far) = (
            std::sync::Arc::new(relay_near),
            std::sync::Arc::new(relay_far),
        );
        let forward = |from: std::sync::Arc<Box<dyn Link>>, to: std::sync::Arc<Box<dyn Link>>| {
            tokio::spawn(async move {
                while let Ok(message) = from.recv().await {
                    if to.send(message).await.is_err() {
                        break;
                    }
                }
                to.close(acm_transport::CloseReason::normal()).await;
            })
        };
        forward(near.clone(), far.clone());
        forward(far, near);
        let (phone, tablet) = (tofu(), tofu());
        let outcome = tokio::join!(establish(phone_end, &phone), establish(tablet_end, &tablet));
        let (dialed, accepted) = outcome;
        assert_eq!(
            dialed.unwrap_err().close_code(),
            Some(CloseCode::HandshakeFailed)
        );
        assert!(accepted.is_err());
    })
    .await;
}

#[tokio::test]
async fn a_peer_without_the_secure_layer_is_refused_with_security_required() {
    within(10, async {
        // A plain acceptor sends its HELLO first.
        let network = MockNetwork::new(4);
        let (dialed, plain_acceptor) = raw_pair(&network, "phone", "tablet").await;
        plain_acceptor.send(plain_hello()).await.unwrap();
        let refused = establish(dialed, &tofu()).await.unwrap_err();
        assert_eq!(refused.close_code(), Some(CloseCode::SecurityRequired));
        let _ = plain_acceptor.recv().await; // the handshake's first message
        let closed = plain_acceptor.recv().await.unwrap_err();
        assert_eq!(
            CloseCode::of_error(&closed),
            Some(CloseCode::SecurityRequired)
        );

        // A plain dialer sends its HELLO first too.
        let (plain_dialer, accepted) = raw_pair(&network, "watch", "laptop").await;
        plain_dialer.send(plain_hello()).await.unwrap();
        let refused = establish(accepted, &tofu()).await.unwrap_err();
        assert_eq!(refused.close_code(), Some(CloseCode::SecurityRequired));
        let closed = plain_dialer.recv().await.unwrap_err();
        assert_eq!(
            CloseCode::of_error(&closed),
            Some(CloseCode::SecurityRequired)
        );
    })
    .await;
}

/// A dialer's handshake that runs by hand, so that a test can send what it likes.
fn manual_dialer(link: &dyn Link) -> Handshake {
    let prologue = prologue(link.local_device(), link.peer_device(), &link.opening());
    Handshake::new(&Identity::generate().unwrap(), Role::Dialer, &prologue).unwrap()
}

#[tokio::test]
async fn garbage_truncated_or_missing_handshake_messages_close_the_link_without_a_hang() {
    within(10, async {
        let network = MockNetwork::new(5);
        type Change = fn(Bytes) -> Bytes;
        let cases: [(&str, Change); 4] = [
            ("garbage", |_| Bytes::from_static(&[0x42; 76])),
            ("truncated", |m| m.slice(..m.len() - 1)),
            ("extended", |m| [&m[..], &[0]].concat().into()),
            ("a length field that is not the body's", |m| {
                let mut m = m.to_vec();
                m[7] ^= 1;
                m.into()
            }),
        ];
        for (n, (what, change)) in cases.into_iter().enumerate() {
            let (dialed, accepted) =
                raw_pair(&network, &format!("phone{n}"), &format!("tablet{n}")).await;
            let mut handshake = manual_dialer(&*dialed);
            dialed
                .send(change(handshake.write_message().unwrap()))
                .await
                .unwrap();
            let refused = establish(accepted, &tofu()).await.unwrap_err();
            assert_eq!(
                refused.close_code(),
                Some(CloseCode::HandshakeFailed),
                "{what}"
            );
            assert_eq!(
                CloseCode::of_error(&dialed.recv().await.unwrap_err()),
                Some(CloseCode::HandshakeFailed),
                "{what}"
            );
        }

        // A dialer whose third message is changed: the acceptor's decryption fails.
        let (dialed, accepted) = raw_pair(&network, "phone", "tablet").await;
        let mut handshake = manual_dialer(&*dialed);
        let acceptor = tokio::spawn(async move { establish(accepted, &tofu()).await });
        dialed
            .send(handshake.write_message().unwrap())
            .await
            .unwrap();
        handshake
            .read_message(&dialed.recv().await.unwrap())
            .unwrap();
        let mut third = handshake.write_message().unwrap().to_vec();
        let last = third.len() - 1;
        third[last] ^= 0x80;
        dialed.send(third.into()).await.unwrap();
        let refused = acceptor.await.unwrap().unwrap_err();
        assert_eq!(refused.close_code(), Some(CloseCode::HandshakeFailed));

        // Silence: the acceptor gives up after its handshake timeout.
        let (_dialed, accepted) = raw_pair(&network, "mute", "laptop").await;
        let patient = tofu().with_handshake_timeout(Duration::from_millis(100));
        let refused = establish(accepted, &patient).await.unwrap_err();
        assert_eq!(refused.close_code(), Some(CloseCode::HandshakeTimeout));
    })
    .await;
}

/// Expects `link` to have been closed by its peer with `RECORD_FAILED`, after reading what
/// the peer sent before.
async fn expect_record_failed(sender: &SecureLink, receiver: &SecureLink, what: &str) {
    let err = receiver.recv().await.unwrap_err();
    assert_eq!(
        CloseCode::of_error(&err),
        Some(CloseCode::RecordFailed),
        "{what}"
    );
    assert!(
        matches!(receiver.closure(), Some(Closure::Local(_))),
        "{what}"
    );
    let seen = loop {
        match sender.inner().recv().await {
            Ok(_) => continue,
            Err(TransportError::Closed(closure)) => break closure,
            Err(other) => panic!("{what}: {other}"),
        }
    };
    assert_eq!(
        CloseCode::of_closure(&seen),
        Some(CloseCode::RecordFailed),
        "{what}"
    );
    assert!(
        receiver.recv().await.is_err(),
        "{what}: the link stays failed"
    );
}

#[tokio::test]
async fn a_changed_replayed_reordered_or_plain_record_closes_the_link() {
    within(20, async {
        type Attack = for<'a> fn(
            &'a SecureLink,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = ()> + Send + 'a>,
        >;
        let attacks: [(&str, Attack); 5] = [
            ("a flipped bit", |link| {
                Box::pin(async move {
                    let mut record = link.seal(&frame(b"hello")).await.unwrap().to_vec();
                    record[14] ^= 0x01;
                    link.inner().send(record.into()).await.unwrap();
                })
            }),
            ("a replayed record", |link| {
                Box::pin(async move {
                    let record = link.seal(&frame(b"once")).await.unwrap();
                    link.inner().send(record.clone()).await.unwrap();
                    link.inner().send(record).await.unwrap();
                })
            }),
            ("records out of order", |link| {
                Box::pin(async move {
                    let first = link.seal(&frame(b"first")).await.unwrap();
                    let second = link.seal(&frame(b"second")).await.unwrap();
                    link.inner().send(second).await.unwrap();
                    link.inner().send(first).await.unwrap();
                })
            }),
            ("a plain frame", |link| {
                Box::pin(async move {
                    link.inner().send(plain_hello()).await.unwrap();
                })
            }),
            ("a record cut short", |link| {
                Box::pin(async move {
                    let record = link.seal(&frame(b"whole")).await.unwrap();
                    let mut cut = record.slice(..record.len() - 1).to_vec();
                    cut[7] -= 1; // keep the envelope's length right
                    link.inner().send(cut.into()).await.unwrap();
                })
            }),
        ];
        for (what, attack) in attacks {
            let (dialed, accepted) = secure_pair(&tofu(), &tofu()).await;
            let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
            attack(&dialed).await;
            // A replayed or reordered record may first deliver the genuine one.
            let err = loop {
                match accepted.recv().await {
                    Ok(frame) => assert!(what != "a flipped bit", "{what}: {frame:?} arrived"),
                    Err(err) => break err,
                }
            };
            assert_eq!(
                CloseCode::of_error(&err),
                Some(CloseCode::RecordFailed),
                "{what}"
            );
            expect_record_failed(&dialed, &accepted, what).await;
        }
    })
    .await;
}
