//! Links that never finish their handshake (SPEC `LIMIT-2`): they cannot keep a device out.

mod common;

use std::sync::Arc;

use acm_secure::{OPENING_LINKS, Secure, SecureConfig};
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
