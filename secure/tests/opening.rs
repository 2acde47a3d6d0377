//! Links that never finish their handshake (SPEC `LIMIT-2`): they cannot keep a device out.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use acm_secure::{Identity, OPENING_LINKS, Secure, SecureConfig, establish};
use acm_transport::{Link, PeerAddress, Transport};
use acm_transport_mock::MockNetwork;
use acm_transport_tcp::{TcpTransport, binding};
use common::{id, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

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
            tokio::task::yield_now().await;
        }
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

/// A link to the device at `addr` from 127.0.0.2, which the device sees as another host: its
/// binding's opening done (the device has answered its OPEN), then nothing. `dropped` hears
/// when the device drops it.
async fn stall_from_elsewhere(addr: SocketAddr, n: usize, dropped: mpsc::UnboundedSender<usize>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let open = binding::open(&id(&format!("staller-{n}")));
    stream.write_all(&open).await.unwrap();
    let mut answer = vec![0u8; binding::HEADER_LEN];
    stream.read_exact(&mut answer).await.unwrap();
    tokio::spawn(async move {
        let mut sink = [0u8; 256];
        while matches!(stream.read(&mut sink).await, Ok(1..)) {}
        let _ = dropped.send(n);
    });
}

#[tokio::test]
async fn limit_2_links_stalled_from_one_address_push_out_their_own_not_a_link_from_elsewhere() {
    within(30, async {
        let tcp = TcpTransport::bind(id("tablet"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = tcp.local_addr().unwrap();
        let tablet = Arc::new(Secure::new(tcp, SecureConfig::ephemeral().unwrap()));
        let (accepted_tx, mut accepted) = mpsc::unbounded_channel();
        let acceptor = tablet.clone();
        tokio::spawn(async move {
            while let Ok(link) = acceptor.accept().await {
                let _ = accepted_tx.send(link);
            }
        });
        // The phone's link is open at the binding's level and its handshake not begun: the
        // tablet holds it in its openings, and it has not moved.
        let phone = TcpTransport::client(id("phone"));
        let plain = phone.dial_addr(addr).await.unwrap();
        // Then another host stalls twice as many links as there are places.
        let (dropped_tx, mut dropped) = mpsc::unbounded_channel();
        for n in 0..2 * OPENING_LINKS {
            stall_from_elsewhere(addr, n, dropped_tx.clone()).await;
        }
        // As many of them as there are places have been pushed out, by their own.
        for _ in 0..OPENING_LINKS {
            dropped.recv().await.expect("a stalled link is dropped");
        }
        assert!(
            plain.closure().is_none(),
            "the phone's link was dropped for a stalled one from another address"
        );
        let link = establish(plain, &SecureConfig::ephemeral().unwrap())
            .await
            .expect("the phone's handshake goes through");
        assert_eq!(link.peer_device(), &id("tablet"));
        let theirs = accepted.recv().await.expect("the tablet accepts it");
        assert_eq!(theirs.peer_device(), &id("phone"));
        assert_eq!(
            theirs.peer_address(),
            Some(PeerAddress::Ip([127, 0, 0, 1].into()))
        );
    })
    .await;
}
