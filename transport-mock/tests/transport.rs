//! Devices on the network: adding and removing them, discovery, dial and accept.

mod common;

use std::time::Duration;

use acm_transport::{Role, Transport, TransportError};
use acm_transport_mock::{DeviceOptions, MockError, MockNetwork};
use bytes::Bytes;
use common::{id, pair, pair_with};

#[tokio::test(start_paused = true)]
async fn dial_and_accept_hand_out_the_two_ends_of_one_link() {
    let p = pair(1).await;
    assert_eq!(p.dialer.role(), Role::Dialer);
    assert_eq!(p.acceptor.role(), Role::Acceptor);
    assert_eq!(p.dialer.local_device(), &p.a);
    assert_eq!(p.dialer.peer_device(), &p.b);
    assert_eq!(p.acceptor.local_device(), &p.b);
    assert_eq!(p.acceptor.peer_device(), &p.a);
    assert_eq!(p.dialer.max_frame_size(), 65_535);
    assert_eq!(p.acceptor.max_frame_size(), 65_535);
    assert!(p.dialer.closure().is_none() && p.acceptor.closure().is_none());
    assert_eq!(p.handle.dialer(), &p.a);
    assert_eq!(p.handle.acceptor(), &p.b);
    assert_eq!(p.handle.index(), 0);
}

#[tokio::test(start_paused = true)]
async fn accept_waits_for_a_dial() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let b = network.add_device(id("b")).unwrap();
    let waiting = tokio::spawn(async move { b.accept().await.map(|l| l.peer_device().clone()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!waiting.is_finished());
    let _link = a.dial(&id("b")).await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), id("a"));
}

#[tokio::test(start_paused = true)]
async fn default_capabilities_carry_data_and_frames_of_65535_bytes() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let caps = a.capabilities();
    assert!(caps.carries_data && caps.discovery);
    assert_eq!(caps.max_frame_size, 65_535);
    assert_eq!(a.local_device(), &id("a"));
}

#[tokio::test(start_paused = true)]
async fn device_options_shape_capabilities_and_the_link_takes_the_smaller_frame_size() {
    let small = DeviceOptions::new().max_frame_size(244).carries_data(false);
    let p = pair_with(1, small, DeviceOptions::new().max_frame_size(512)).await;
    let caps = p.transport_a.capabilities();
    assert!(!caps.carries_data);
    assert_eq!(caps.max_frame_size, 244);
    assert_eq!(p.transport_b.capabilities().max_frame_size, 512);
    assert_eq!(p.dialer.max_frame_size(), 244);
    assert_eq!(p.acceptor.max_frame_size(), 244);
}

#[tokio::test(start_paused = true)]
async fn adding_a_device_whose_id_is_taken_fails() {
    let network = MockNetwork::new(1);
    network.add_device(id("a")).unwrap();
    assert_eq!(
        network.add_device(id("a")).unwrap_err(),
        MockError::DeviceExists(id("a"))
    );
}

#[tokio::test(start_paused = true)]
async fn discover_lists_the_other_present_reachable_devices_with_names_and_addresses() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    network
        .add_device_with(id("c"), DeviceOptions::new().name("Kitchen tablet"))
        .unwrap();
    network.add_device(id("b")).unwrap();
    network.add_device(id("d")).unwrap();
    network.set_reachable(&id("d"), &id("a"), false);

    let seen = a.discover().await.unwrap();
    let ids: Vec<_> = seen.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["b", "c"]);
    assert_eq!(seen[0].name, "b");
    assert_eq!(seen[0].address, "mock://b");
    assert_eq!(seen[1].name, "Kitchen tablet");
    assert_eq!(seen[1].address, "mock://c");

    network.remove_device(&id("b"));
    network.set_reachable(&id("a"), &id("d"), true);
    let ids: Vec<_> = a
        .discover()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id.into_string())
        .collect();
    assert_eq!(ids, ["c", "d"]);
}

#[tokio::test(start_paused = true)]
async fn discover_without_discovery_is_unsupported() {
    let network = MockNetwork::new(1);
    let a = network
        .add_device_with(id("a"), DeviceOptions::new().discovery(false))
        .unwrap();
    assert!(!a.capabilities().discovery);
    assert!(matches!(
        a.discover().await,
        Err(TransportError::Unsupported(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn dialing_an_unknown_device_or_itself_is_unreachable() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    assert!(matches!(
        a.dial(&id("nobody")).await,
        Err(TransportError::Unreachable(who)) if who == id("nobody")
    ));
    assert!(matches!(
        a.dial(&id("a")).await,
        Err(TransportError::Unreachable(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_pair_cannot_dial_until_reachable_again() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let b = network.add_device(id("b")).unwrap();
    network.set_reachable(&id("a"), &id("b"), false);
    assert!(matches!(
        a.dial(&id("b")).await,
        Err(TransportError::Unreachable(_))
    ));
    assert!(matches!(
        b.dial(&id("a")).await,
        Err(TransportError::Unreachable(_))
    ));
    network.set_reachable(&id("b"), &id("a"), true);
    let link = a.dial(&id("b")).await.unwrap();
    assert_eq!(link.peer_device(), &id("b"));
}

#[tokio::test(start_paused = true)]
async fn a_device_that_does_not_accept_links_refuses_dials() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    network
        .add_device_with(id("b"), DeviceOptions::new().accepts_links(false))
        .unwrap();
    assert!(matches!(
        a.dial(&id("b")).await,
        Err(TransportError::Refused(who)) if who == id("b")
    ));
}

#[tokio::test(start_paused = true)]
async fn dials_beyond_the_accept_backlog_are_refused_until_one_is_accepted() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let b = network
        .add_device_with(id("b"), DeviceOptions::new().accept_backlog(2))
        .unwrap();
    let _first = a.dial(&id("b")).await.unwrap();
    let _second = a.dial(&id("b")).await.unwrap();
    assert!(matches!(
        a.dial(&id("b")).await,
        Err(TransportError::Refused(_))
    ));
    let _accepted = b.accept().await.unwrap();
    assert!(a.dial(&id("b")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_removed_device_is_unreachable_and_its_transport_shuts_down() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let b = network.add_device(id("b")).unwrap();
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.accept().await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;

    assert!(network.remove_device(&id("b")));
    assert!(!network.remove_device(&id("b")));
    assert!(matches!(
        waiting.await.unwrap(),
        Err(TransportError::Shutdown)
    ));
    assert!(matches!(b.accept().await, Err(TransportError::Shutdown)));
    assert!(matches!(
        b.dial(&id("a")).await,
        Err(TransportError::Shutdown)
    ));
    assert!(matches!(b.discover().await, Err(TransportError::Shutdown)));
    assert!(matches!(
        a.dial(&id("b")).await,
        Err(TransportError::Unreachable(_))
    ));
    assert!(a.discover().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_device_added_again_after_removal_is_a_new_device() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let old_b = network.add_device(id("b")).unwrap();
    network.remove_device(&id("b"));
    let new_b = network.add_device(id("b")).unwrap();
    let link = a.dial(&id("b")).await.unwrap();
    let accepted = new_b.accept().await.unwrap();
    assert!(matches!(
        old_b.accept().await,
        Err(TransportError::Shutdown)
    ));
    link.send(Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(accepted.recv().await.unwrap(), "x");
}

#[tokio::test(start_paused = true)]
async fn links_lists_the_open_links_between_two_devices_whoever_dialed() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let b = network.add_device(id("b")).unwrap();
    network.add_device(id("c")).unwrap();
    let first = a.dial(&id("b")).await.unwrap();
    let _second = b.dial(&id("a")).await.unwrap();
    let _other = a.dial(&id("c")).await.unwrap();

    let links = network.links(&id("b"), &id("a"));
    let indexes: Vec<_> = links.iter().map(|l| l.index()).collect();
    assert_eq!(indexes, [0, 1]);
    assert_eq!(links[1].dialer(), &id("b"));
    assert!(network.links(&id("a"), &id("a")).is_empty());

    first.close(acm_transport::CloseReason::normal()).await;
    assert!(!links[0].is_open());
    let indexes: Vec<_> = network
        .links(&id("a"), &id("b"))
        .iter()
        .map(|l| l.index())
        .collect();
    assert_eq!(indexes, [1]);
}

#[tokio::test(start_paused = true)]
async fn link_events_report_each_link_dialed_after_subscribing() {
    let network = MockNetwork::new(1);
    let a = network.add_device(id("a")).unwrap();
    let b = network.add_device(id("b")).unwrap();
    let _before = a.dial(&id("b")).await.unwrap();
    let mut events = network.link_events();
    assert!(events.try_next().is_none());

    let dialing = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let link = b.dial(&id("a")).await.unwrap();
        link.send(Bytes::from_static(b"x")).await.unwrap();
        link
    });
    let handle = events.next().await;
    assert_eq!(handle.index(), 1);
    assert_eq!(handle.dialer(), &id("b"));
    let _link = dialing.await.unwrap();
    assert_eq!(handle.stats(&id("b")).unwrap().frames_sent, 1);
    assert!(events.try_next().is_none());
}
