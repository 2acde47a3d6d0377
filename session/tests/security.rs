//! Devices and their secure layer (SPEC section 17): secure by default, nothing readable on the
//! link, plain links only by opt-out and refused by secure devices, pairing through the
//! device's requests.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use acm::secure::{Identity, SecureConfig};
use acm::transport::{CloseReason, Closure, DeviceId, Link, Role, TransportError};
use acm::{
    CollaborateRequest, CollaborateResult, ConnectOptions, Context, Device, DeviceConfig, Event,
    PeerInfo, Security,
};
use acm_transport_mock::{DeviceOptions, MockNetwork};
use async_trait::async_trait;
use bytes::Bytes;
use common::Wrapped;

const BUNDLE: &str = "com.example.notes";
const TEXT: &str = "meet me at the north gate at noon";

fn context() -> Context {
    Context::new(BUNDLE, "entry", "EntryAbility")
}

/// A link that copies every byte it sends into `seen`: what an eavesdropper gets.
#[derive(Debug)]
struct TapLink(Box<dyn Link>, Arc<Mutex<Vec<u8>>>);

#[async_trait]
impl Link for TapLink {
    fn local_device(&self) -> &DeviceId {
        self.0.local_device()
    }
    fn peer_device(&self) -> &DeviceId {
        self.0.peer_device()
    }
    fn role(&self) -> Role {
        self.0.role()
    }
    fn max_frame_size(&self) -> usize {
        self.0.max_frame_size()
    }
    async fn send(&self, frame: Bytes) -> Result<(), TransportError> {
        self.1.lock().unwrap().extend_from_slice(&frame);
        self.0.send(frame).await
    }
    async fn recv(&self) -> Result<Bytes, TransportError> {
        self.0.recv().await
    }
    async fn close(&self, reason: CloseReason) {
        self.0.close(reason).await
    }
    fn closure(&self) -> Option<Closure> {
        self.0.closure()
    }
}

struct Pair {
    phone: Device,
    tablet: Device,
    seen: Arc<Mutex<Vec<u8>>>,
    _network: MockNetwork,
}

fn pair(phone: DeviceConfig, tablet: DeviceConfig, options: DeviceOptions) -> Pair {
    let network = MockNetwork::new(17);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tap = |id: &str| {
        let seen = seen.clone();
        Wrapped {
            inner: network
                .add_device_with(DeviceId::new(id).unwrap(), options.clone())
                .unwrap(),
            wrap: Box::new(move |link| Box::new(TapLink(link, seen.clone()))),
        }
    };
    Pair {
        phone: Device::new(tap("phone"), phone),
        tablet: Device::new(tap("tablet"), tablet),
        seen,
        _network: network,
    }
}

fn saw(seen: &Mutex<Vec<u8>>, needle: &[u8]) -> bool {
    seen.lock()
        .unwrap()
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Connects a session from the phone to the tablet's app, which accepts; sends TEXT and `data`
/// and waits until both arrived. Returns whether the session connected.
async fn exchange(pair: &Pair, data: &Bytes) -> bool {
    let tablet = pair.tablet.manager(&context());
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let manager = tablet.clone();
    tablet.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let (manager, arrived_tx) = (manager.clone(), arrived_tx.clone());
            tokio::spawn(async move {
                let session = manager
                    .create_ability_connection_session(
                        &request.peer_info.service_name,
                        &context(),
                        request.peer_info.clone(),
                        request.connect_options.clone(),
                    )
                    .unwrap();
                let mut events = manager.events(session).unwrap();
                manager
                    .accept_connect(session, &request.token)
                    .await
                    .unwrap();
                while let Some(event) = events.next().await {
                    let _ = arrived_tx.send(event);
                }
            });
            CollaborateResult::Accept
        },
    );
    let phone = pair.phone.manager(&context());
    let options = ConnectOptions {
        need_send_data: Some(true),
        ..ConnectOptions::default()
    };
    let peer = PeerInfo::new("tablet", BUNDLE, "entry", "EntryAbility");
    let session = phone
        .create_ability_connection_session("notes", &context(), peer, options)
        .unwrap();
    let connected = phone.connect(session).await.unwrap();
    if !connected.is_connected {
        return false;
    }
    phone.send_message(session, TEXT).await.unwrap();
    phone.send_data(session, data.clone()).await.unwrap();
    let (mut text, mut bytes) = (false, false);
    while !(text && bytes) {
        match tokio::time::timeout(Duration::from_secs(20), arrived.recv()).await {
            Ok(Some(Event::Message { msg, .. })) => text |= msg == TEXT,
            Ok(Some(Event::Data { data: got, .. })) => bytes |= got == data,
            Ok(Some(_)) => {}
            other => panic!("the message and the data did not arrive: {other:?}"),
        }
    }
    true
}

fn pattern() -> Bytes {
    (0..200_000u32)
        .map(|n| (n % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

#[tokio::test]
async fn default_devices_carry_no_message_text_and_no_transfer_bytes_in_clear() {
    let data = pattern();
    let pair = pair(
        DeviceConfig::default(),
        DeviceConfig::default(),
        DeviceOptions::new(),
    );
    assert!(exchange(&pair, &data).await);
    assert!(
        !saw(&pair.seen, TEXT.as_bytes()),
        "the message crossed in clear"
    );
    assert!(
        !saw(&pair.seen, &data[1000..1064]),
        "the data crossed in clear"
    );
    assert!(
        !saw(&pair.seen, b"com.example.notes"),
        "app names crossed in clear"
    );
}

#[tokio::test]
async fn insecure_devices_carry_text_in_clear_which_the_scan_finds() {
    let data = pattern();
    let plain = DeviceConfig::default().with_security(Security::Insecure);
    let pair = pair(plain.clone(), plain, DeviceOptions::new());
    assert!(exchange(&pair, &data).await);
    assert!(saw(&pair.seen, TEXT.as_bytes()));
    assert!(saw(&pair.seen, &data[1000..1064]));
}

#[tokio::test]
async fn a_secure_device_and_an_insecure_one_never_connect() {
    let data = pattern();
    let plain = DeviceConfig::default().with_security(Security::Insecure);
    let pair = pair(DeviceConfig::default(), plain, DeviceOptions::new());
    assert!(!exchange(&pair, &data).await);
    assert!(!saw(&pair.seen, TEXT.as_bytes()));
}

#[tokio::test]
async fn hello_announces_the_frame_the_secure_link_carries_so_small_links_still_work() {
    // Links of 200-byte messages: the secure link carries frames of 172 bytes, and the peer
    // must know it, or its frames would not fit the messages once sealed.
    let data = pattern();
    let pair = pair(
        DeviceConfig::default(),
        DeviceConfig::default(),
        DeviceOptions::new().max_frame_size(200),
    );
    assert!(exchange(&pair, &data.slice(..20_000)).await);
}

#[tokio::test]
async fn configured_devices_pair_through_their_owners_and_remember_each_other() {
    let (phone_secure, tablet_secure) = (
        SecureConfig::new(Identity::generate().unwrap()),
        SecureConfig::new(Identity::generate().unwrap()),
    );
    let pair = pair(
        DeviceConfig::default().with_security(Security::Configured(phone_secure.clone())),
        DeviceConfig::default().with_security(Security::Configured(tablet_secure.clone())),
        DeviceOptions::new(),
    );
    let mut phone_asks = pair.phone.pairing_requests().unwrap();
    let mut tablet_asks = pair.tablet.pairing_requests().unwrap();
    assert!(
        pair.phone.pairing_requests().is_none(),
        "one owner takes them"
    );
    let owners = tokio::spawn(async move {
        let (a, b) = (
            phone_asks.next().await.unwrap(),
            tablet_asks.next().await.unwrap(),
        );
        assert_eq!(a.code(), b.code());
        a.accept();
        b.accept();
    });
    assert!(exchange(&pair, &pattern().slice(..100)).await);
    owners.await.unwrap();
    assert_eq!(
        phone_secure
            .trust_store()
            .get(&DeviceId::new("tablet").unwrap()),
        Some(tablet_secure.identity().public_key())
    );
}

#[tokio::test]
async fn a_default_device_offers_no_pairing_requests_and_an_insecure_one_none_either() {
    let network = MockNetwork::new(1);
    let secure = Device::new(
        network.add_device(DeviceId::new("a").unwrap()).unwrap(),
        DeviceConfig::default(),
    );
    // Trust on first use asks no one; the requests exist but stay empty.
    let mut requests = secure.pairing_requests().unwrap();
    assert!(requests.try_next().is_none());
    let plain = Device::new(
        network.add_device(DeviceId::new("b").unwrap()).unwrap(),
        DeviceConfig::default().with_security(Security::Insecure),
    );
    assert!(plain.pairing_requests().is_none());
}
