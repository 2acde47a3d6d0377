//! Links that never finish their handshake (SPEC `LIMIT-2`): they cannot keep a device out.

mod common;

use std::sync::Arc;

use acm_secure::{Identity, OPENING_LINKS, Secure, SecureConfig};
use acm_transport::{Link, Transport};
use acm_transport_mock::MockNetwork;
use common::{id, within};

#[tokio::test]
async fn limit_2_links_stalled_in_their_handshake_give_way_to_a_device_that_finishes_its_own() {
    within(30, async {
        let network = MockNetwork::new(5);
        let tablet = Arc::new(Secure::new(
            network.add_device(id("tablet")).unwrap(),
            SecureConfig::ephemeral().unwrap(),
        ));
        let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
        let acceptor = tablet.clone();
        tokio::spawn(async move {
            while let Ok(link) = acceptor.accept().await {
                let _ = accepted_tx.send(link);
            }
        });
        // More links than may open at once, each silent after the binding's opening.
        let attacker = network.add_device(id("attacker")).unwrap();
        let mut stalled: Vec<Box<dyn Link>> = Vec::new();
        for _ in 0..2 * OPENING_LINKS {
            stalled.push(attacker.dial(&id("tablet")).await.unwrap());
        }
        tokio::task::yield_now().await;
        let phone = Secure::new(
            network.add_device(id("phone")).unwrap(),
            SecureConfig::ephemeral().unwrap(),
        );
        let link = phone.dial(&id("tablet")).await.expect("the phone gets in");
        assert_eq!(link.peer_device(), &id("tablet"));
        let theirs = accepted.recv().await.expect("the tablet accepts it");
        assert_eq!(theirs.peer_device(), &id("phone"));
        // The oldest stalled links were dropped to make room.
        assert!(stalled[0].closure().is_some());
    })
    .await;
}

#[tokio::test]
async fn limit_2_stalled_links_cannot_push_out_a_link_whose_pairing_waits_for_its_owner() {
    within(30, async {
        let network = MockNetwork::new(6);
        let tablet = Arc::new(Secure::new(
            network.add_device(id("tablet")).unwrap(),
            SecureConfig::ephemeral().unwrap(),
        ));
        let acceptor = tablet.clone();
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok(link) = acceptor.accept().await {
                kept.push(link);
            }
        });
        // The phone's owner is asked to compare codes and answers only later: its link has
        // done its handshake and waits, the oldest of the tablet's openings.
        let phone_config = SecureConfig::new(Identity::generate().unwrap());
        let mut asks = phone_config.pairing_requests().unwrap();
        let phone = Secure::new(network.add_device(id("phone")).unwrap(), phone_config);
        let dialing = tokio::spawn(async move { phone.dial(&id("tablet")).await.map(|_| ()) });
        let ask = asks.next().await.expect("the phone's owner is asked");
        // Then as many stalled links as there are places, and more.
        let attacker = network.add_device(id("attacker")).unwrap();
        let mut stalled: Vec<Box<dyn Link>> = Vec::new();
        for _ in 0..2 * OPENING_LINKS {
            stalled.push(attacker.dial(&id("tablet")).await.unwrap());
            tokio::task::yield_now().await;
        }
        ask.accept();
        dialing
            .await
            .unwrap()
            .expect("the pairing went through: its link was not dropped for a stalled one");
    })
    .await;
}
