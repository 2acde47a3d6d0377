//! The same seed and the same operations give the same bytes; another seed gives others.

mod common;

use acm_transport::{Link, Transport};
use acm_transport_mock::{Fault, MockNetwork};
use bytes::Bytes;
use common::{id, pair, recv_n};

/// Sends 10 frames of 32 bytes through a link with corrupt and truncate faults pending, and
/// returns what arrived.
async fn mangled(seed: u64) -> Vec<Vec<u8>> {
    let p = pair(seed).await;
    for fault in [
        Fault::CorruptFrames(4),
        Fault::CorruptBytes(40),
        Fault::TruncateFrames(10),
    ] {
        p.handle.inject(&p.a, fault).unwrap();
    }
    for n in 0..10_u8 {
        p.dialer.send(Bytes::from(vec![n; 32])).await.unwrap();
    }
    recv_n(&*p.acceptor, 10).await
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_corruption_and_truncation() {
    let first = mangled(7).await;
    assert_eq!(first, mangled(7).await);
    assert_ne!(first, mangled(8).await);
    assert!(
        first.iter().any(|f| f.len() < 32),
        "some frames were truncated"
    );
}

/// Corrupts one frame on the `which`th of two links between the same devices, with other
/// traffic on the other link before it, and returns the corrupted frame.
async fn corrupted_on(seed: u64, which: usize, traffic_before: bool) -> Vec<u8> {
    let network = MockNetwork::new(seed);
    let a = network.add_device(id("a")).unwrap();
    let b = network.add_device(id("b")).unwrap();
    let mut ends: Vec<(Box<dyn Link>, Box<dyn Link>)> = Vec::new();
    for _ in 0..2 {
        let dialer = a.dial(&id("b")).await.unwrap();
        ends.push((dialer, b.accept().await.unwrap()));
    }
    let handles = network.links(&id("a"), &id("b"));
    if traffic_before {
        let other = 1 - which;
        handles[other]
            .inject(&id("a"), Fault::CorruptFrames(5))
            .unwrap();
        for _ in 0..5 {
            ends[other].0.send(Bytes::from(vec![0; 32])).await.unwrap();
        }
    }
    handles[which]
        .inject(&id("a"), Fault::CorruptFrames(1))
        .unwrap();
    ends[which].0.send(Bytes::from(vec![0; 32])).await.unwrap();
    ends[which].1.recv().await.unwrap().to_vec()
}

#[tokio::test(start_paused = true)]
async fn each_link_draws_from_its_own_stream() {
    let alone = corrupted_on(3, 1, false).await;
    assert_eq!(
        alone,
        corrupted_on(3, 1, true).await,
        "other links do not shift it"
    );
    assert_ne!(
        alone,
        corrupted_on(3, 0, false).await,
        "links differ from each other"
    );
}

#[tokio::test(start_paused = true)]
async fn each_direction_draws_from_its_own_stream() {
    let p = pair(11).await;
    p.handle.inject(&p.a, Fault::CorruptBytes(16)).unwrap();
    p.handle.inject(&p.b, Fault::CorruptBytes(16)).unwrap();
    p.dialer.send(Bytes::from(vec![0; 16])).await.unwrap();
    p.acceptor.send(Bytes::from(vec![0; 16])).await.unwrap();
    let to_b = p.acceptor.recv().await.unwrap();
    let to_a = p.dialer.recv().await.unwrap();
    assert_ne!(to_a, to_b);
}
