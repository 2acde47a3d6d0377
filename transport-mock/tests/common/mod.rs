//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use acm_transport::{DeviceId, Link, Transport};
use acm_transport_mock::{DeviceOptions, LinkHandle, MockNetwork, MockTransport};
use bytes::Bytes;

/// A device id that is known to be valid.
pub fn id(id: &str) -> DeviceId {
    DeviceId::new(id).expect("a valid device id")
}

/// Two devices, "a" and "b", with a link that "a" dialed and "b" accepted.
pub struct Pair {
    pub network: MockNetwork,
    pub a: DeviceId,
    pub b: DeviceId,
    pub transport_a: MockTransport,
    pub transport_b: MockTransport,
    /// "a"'s end.
    pub dialer: Box<dyn Link>,
    /// "b"'s end.
    pub acceptor: Box<dyn Link>,
    pub handle: LinkHandle,
}

/// A [`Pair`] of devices with default options on a network seeded with `seed`.
pub async fn pair(seed: u64) -> Pair {
    pair_with(seed, DeviceOptions::new(), DeviceOptions::new()).await
}

/// A [`Pair`] of devices with the given options on a network seeded with `seed`.
pub async fn pair_with(seed: u64, a_options: DeviceOptions, b_options: DeviceOptions) -> Pair {
    let network = MockNetwork::new(seed);
    let (a, b) = (id("a"), id("b"));
    let transport_a = network.add_device_with(a.clone(), a_options).unwrap();
    let transport_b = network.add_device_with(b.clone(), b_options).unwrap();
    let dialer = transport_a.dial(&b).await.unwrap();
    let acceptor = transport_b.accept().await.unwrap();
    let handle = network.links(&a, &b).pop().expect("the link just dialed");
    Pair {
        network,
        a,
        b,
        transport_a,
        transport_b,
        dialer,
        acceptor,
        handle,
    }
}

/// Sends each frame in turn.
pub async fn send_all(link: &dyn Link, frames: &[&'static [u8]]) {
    for frame in frames {
        link.send(Bytes::from_static(frame)).await.unwrap();
    }
}

/// Receives `n` frames.
pub async fn recv_n(link: &dyn Link, n: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(link.recv().await.unwrap().to_vec());
    }
    frames
}

/// Whether no frame arrives within a second (of the paused clock).
pub async fn nothing_arrives(link: &dyn Link) -> bool {
    tokio::time::timeout(Duration::from_secs(1), link.recv())
        .await
        .is_err()
}

/// A [`Pair`] whose links hold at most `bytes` in flight towards "b".
pub async fn pair_with_buffer_towards_b(bytes: usize) -> Pair {
    pair_with(
        1,
        DeviceOptions::new(),
        DeviceOptions::new().receive_buffer(bytes),
    )
    .await
}
