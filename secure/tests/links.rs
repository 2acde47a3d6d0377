//! Secure links that work: frames cross whole and encrypted, both ways at once, across
//! rekeys; pairing by code; trust that lasts.

mod common;

use std::sync::Arc;

use acm_secure::record::RECORD_OVERHEAD;
use acm_secure::{
    CloseCode, Identity, MemoryTrustStore, PairingPolicy, Secure, SecureConfig, TrustStore,
};
use acm_transport::{Link, Transport};
use acm_transport_mock::MockNetwork;
use common::{Tap, frame, id, secure_pair, within};

fn tofu() -> SecureConfig {
    SecureConfig::ephemeral().unwrap()
}

#[tokio::test]
async fn frames_cross_both_ways_whole_and_the_largest_frame_shrinks_by_the_overhead() {
    within(10, async {
        let (dialed, accepted) = secure_pair(&tofu(), &tofu()).await;
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        assert_eq!(
            dialed.max_frame_size(),
            dialed.inner().max_frame_size() - RECORD_OVERHEAD
        );
        assert_eq!(dialed.pairing_code(), accepted.pairing_code());
        assert_eq!(dialed.handshake_hash(), accepted.handshake_hash());
        for n in 1..20usize {
            let to_tablet = frame(&vec![n as u8; n * 100]);
            let to_phone = frame(&vec![!(n as u8); n]);
            dialed.send(to_tablet.clone()).await.unwrap();
            accepted.send(to_phone.clone()).await.unwrap();
            assert_eq!(accepted.recv().await.unwrap(), to_tablet);
            assert_eq!(dialed.recv().await.unwrap(), to_phone);
        }
        let largest = frame(&vec![7; dialed.max_frame_size() - 12]);
        dialed.send(largest.clone()).await.unwrap();
        assert_eq!(accepted.recv().await.unwrap(), largest);
        let too_large = frame(&vec![7; dialed.max_frame_size() - 11]);
        assert!(dialed.send(too_large).await.is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_receives_run_at_once_from_several_tasks() {
    within(30, async {
        let (dialed, accepted) = secure_pair(&tofu(), &tofu()).await;
        let dialed = Arc::new(dialed.unwrap());
        let accepted = Arc::new(accepted.unwrap());
        let mut tasks = Vec::new();
        for (from, to) in [(&dialed, &accepted), (&accepted, &dialed)] {
            let (from, to) = (Arc::clone(from), Arc::clone(to));
            tasks.push(tokio::spawn(async move {
                for n in 0..300u32 {
                    from.send(frame(&n.to_be_bytes())).await.unwrap();
                }
            }));
            tasks.push(tokio::spawn(async move {
                for n in 0..300u32 {
                    assert_eq!(to.recv().await.unwrap(), frame(&n.to_be_bytes()));
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    })
    .await;
}

#[tokio::test]
async fn both_sides_rekey_on_the_schedule_and_a_side_that_does_not_is_cut_off() {
    within(20, async {
        let (dialed, accepted) = secure_pair(&tofu(), &tofu()).await;
        let dialed = dialed.unwrap().with_rekey_interval(4);
        let accepted = accepted.unwrap().with_rekey_interval(4);
        for n in 0..25u8 {
            dialed.send(frame(&[n])).await.unwrap();
            assert_eq!(accepted.recv().await.unwrap(), frame(&[n]));
            accepted.send(frame(&[n])).await.unwrap();
            assert_eq!(dialed.recv().await.unwrap(), frame(&[n]));
        }

        // A receiver on another schedule fails at the first record after the sender's rekey:
        // the rekey really changes the key.
        let (dialed, accepted) = secure_pair(&tofu(), &tofu()).await;
        let dialed = dialed.unwrap().with_rekey_interval(4);
        let accepted = accepted.unwrap().with_rekey_interval(8);
        // The confirmation was record 0: records 1, 2 and 3 open; record 4 is under a new key.
        for n in 1..4u8 {
            dialed.send(frame(&[n])).await.unwrap();
            assert_eq!(accepted.recv().await.unwrap(), frame(&[n]));
        }
        dialed.send(frame(&[4])).await.unwrap();
        let err = accepted.recv().await.unwrap_err();
        assert_eq!(CloseCode::of_error(&err), Some(CloseCode::RecordFailed));
    })
    .await;
}

#[tokio::test]
async fn owners_who_confirm_the_same_code_pair_and_later_links_ask_no_one() {
    within(10, async {
        let phone = SecureConfig::new(Identity::generate().unwrap());
        let tablet = SecureConfig::new(Identity::generate().unwrap());
        let mut phone_asks = phone.pairing_requests().unwrap();
        let mut tablet_asks = tablet.pairing_requests().unwrap();
        let owners = async {
            let (a, b) = (
                phone_asks.next().await.unwrap(),
                tablet_asks.next().await.unwrap(),
            );
            assert_eq!(a.code(), b.code(), "both screens show one code");
            assert_eq!(a.peer(), &id("tablet"));
            assert_eq!(b.peer(), &id("phone"));
            assert_eq!(a.fingerprint(), tablet.identity().fingerprint());
            let code = a.code();
            a.accept();
            b.accept();
            code
        };
        let ((dialed, accepted), code) = tokio::join!(secure_pair(&phone, &tablet), owners);
        assert_eq!(dialed.unwrap().pairing_code(), code);
        assert!(accepted.is_ok());
        assert_eq!(
            phone.trust_store().get(&id("tablet")),
            Some(tablet.identity().public_key())
        );
        assert_eq!(
            tablet.trust_store().get(&id("phone")),
            Some(phone.identity().public_key())
        );

        // Paired: the next link opens with no one asked.
        let (dialed, accepted) = secure_pair(&phone, &tablet).await;
        assert!(dialed.is_ok() && accepted.is_ok());
        assert!(phone_asks.try_next().is_none() && tablet_asks.try_next().is_none());
    })
    .await;
}

#[tokio::test]
async fn an_owner_who_refuses_closes_the_link_on_both_sides_and_nothing_is_trusted() {
    within(10, async {
        let phone = SecureConfig::new(Identity::generate().unwrap());
        let tablet = tofu();
        let mut asks = phone.pairing_requests().unwrap();
        let owner = async { asks.next().await.unwrap().reject() };
        let ((dialed, accepted), ()) = tokio::join!(secure_pair(&phone, &tablet), owner);
        assert_eq!(
            dialed.unwrap_err().close_code(),
            Some(CloseCode::PairingRejected)
        );
        assert_eq!(
            accepted.unwrap_err().close_code(),
            Some(CloseCode::PairingRejected)
        );
        assert!(phone.trust_store().list().is_empty());
        assert!(
            tablet.trust_store().list().is_empty(),
            "a key is kept only once both sides confirmed"
        );
    })
    .await;
}

#[tokio::test]
async fn an_unanswered_pairing_times_out_and_closes_the_link() {
    within(10, async {
        let phone = SecureConfig::new(Identity::generate().unwrap())
            .with_pairing_timeout(std::time::Duration::from_millis(200));
        let _asks = phone.pairing_requests().unwrap();
        let (dialed, accepted) = secure_pair(&phone, &tofu()).await;
        assert_eq!(
            dialed.unwrap_err().close_code(),
            Some(CloseCode::PairingTimeout)
        );
        assert_eq!(
            accepted.unwrap_err().close_code(),
            Some(CloseCode::PairingTimeout)
        );
    })
    .await;
}

#[tokio::test]
async fn a_device_that_pairs_only_with_known_keys_refuses_a_stranger() {
    within(10, async {
        let kiosk = tofu().with_policy(PairingPolicy::KnownOnly);
        let (dialed, accepted) = secure_pair(&tofu(), &kiosk).await;
        assert_eq!(
            accepted.unwrap_err().close_code(),
            Some(CloseCode::UnknownDevice)
        );
        assert_eq!(
            dialed.unwrap_err().close_code(),
            Some(CloseCode::UnknownDevice)
        );
        // Once its key is in the store, the same device gets through.
        let phone = tofu();
        kiosk
            .trust_store()
            .insert(&id("phone"), phone.identity().public_key())
            .unwrap();
        let (dialed, accepted) = secure_pair(&phone, &kiosk).await;
        assert!(dialed.is_ok() && accepted.is_ok());
    })
    .await;
}

#[tokio::test]
async fn the_secure_transport_dials_and_accepts_secure_links_and_nothing_readable_crosses() {
    within(10, async {
        let network = MockNetwork::new(3);
        let phone = Tap::new(network.add_device(id("phone")).unwrap());
        let seen = phone.seen.clone();
        let phone = Secure::new(phone, tofu());
        let tablet = Secure::new(network.add_device(id("tablet")).unwrap(), tofu());
        assert_eq!(
            tablet.capabilities().max_frame_size,
            tablet.inner().capabilities().max_frame_size - RECORD_OVERHEAD
        );
        let secret = b"the secret text of a message".as_slice();
        let tablet_id = id("tablet");
        let (dialed, accepted) = tokio::join!(phone.dial(&tablet_id), tablet.accept());
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        dialed.send(frame(secret)).await.unwrap();
        assert_eq!(accepted.recv().await.unwrap(), frame(secret));
        assert!(!Tap::<()>::saw(&seen, secret), "the text crossed in clear");

        // The scan finds what is there: over a plain link the text shows.
        let plain = Tap::new(network.add_device(id("watch")).unwrap());
        let plain_seen = plain.seen.clone();
        let link = plain.dial(&id("tablet")).await.unwrap();
        link.send(frame(secret)).await.unwrap();
        assert!(Tap::<()>::saw(&plain_seen, secret));
    })
    .await;
}

#[tokio::test]
async fn a_memory_trust_store_shared_by_configs_holds_what_either_paired() {
    let store: Arc<dyn TrustStore> = Arc::new(MemoryTrustStore::new());
    let phone = tofu().with_trust_store(Arc::clone(&store));
    let (dialed, _accepted) = secure_pair(&phone, &tofu()).await;
    assert!(dialed.is_ok());
    assert_eq!(store.list().len(), 1);
}
