//! The secure layer over real TCP connections on loopback: a proxy in the path records every
//! byte that crosses (what an eavesdropper on the LAN gets) and can change one; a relay with
//! keys of its own sits where the peer should be.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use acm_secure::{CloseCode, Identity, PairingCode, Secure, SecureConfig};
use acm_transport::{DeviceId, Transport};
use acm_transport_tcp::TcpTransport;
use common::{frame, id, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A TCP proxy for one connection to `to`: keeps every byte each way, and flips the byte at
/// offset `flip` of the dialer's direction, if given.
async fn proxy(to: SocketAddr, flip: Option<usize>) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        let (dialer, _) = listener.accept().await.unwrap();
        let acceptor = TcpStream::connect(to).await.unwrap();
        let (dialer_read, dialer_write) = dialer.into_split();
        let (acceptor_read, acceptor_write) = acceptor.into_split();
        let pass = |mut from: tokio::net::tcp::OwnedReadHalf,
                    mut to: tokio::net::tcp::OwnedWriteHalf,
                    flip: Option<usize>| {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (mut buf, mut at) = (vec![0u8; 65_536], 0usize);
                while let Ok(n) = from.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Some(offset) = flip.filter(|o| (at..at + n).contains(o)) {
                        buf[offset - at] ^= 0x10;
                    }
                    at += n;
                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                    if to.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = to.shutdown().await;
            });
        };
        pass(dialer_read, acceptor_write, flip);
        pass(acceptor_read, dialer_write, None);
    });
    (addr, seen)
}

fn saw(seen: &Mutex<Vec<u8>>, needle: &[u8]) -> bool {
    seen.lock()
        .unwrap()
        .windows(needle.len())
        .any(|window| window == needle)
}

/// `tablet` listening on TCP behind the secure layer.
async fn tablet(config: SecureConfig) -> (Secure<TcpTransport>, SocketAddr) {
    let tcp = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
    let addr = tcp.local_addr().unwrap();
    (Secure::new(tcp, config), addr)
}

/// `phone`, a TCP client behind the secure layer that finds `tablet` at `addr`.
fn phone(config: SecureConfig, addr: SocketAddr) -> Secure<TcpTransport> {
    let tcp = TcpTransport::client(id("phone"));
    tcp.add_peer(id("tablet"), addr);
    Secure::new(tcp, config)
}

const SECRET: &[u8] = b"the secret text of a message, which no one on the LAN may read";

#[tokio::test]
async fn nothing_of_a_frame_appears_on_the_wire_and_the_scan_finds_plain_frames() {
    within(20, async {
        let (tablet, addr) = tablet(SecureConfig::ephemeral().unwrap()).await;
        let (via, seen) = proxy(addr, None).await;
        let phone = phone(SecureConfig::ephemeral().unwrap(), via);
        let tablet_id = id("tablet");
        let (dialed, accepted) = tokio::join!(phone.dial(&tablet_id), tablet.accept());
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        dialed.send(frame(SECRET)).await.unwrap();
        accepted.send(frame(SECRET)).await.unwrap();
        assert_eq!(accepted.recv().await.unwrap(), frame(SECRET));
        assert_eq!(dialed.recv().await.unwrap(), frame(SECRET));
        assert!(!saw(&seen, SECRET), "the text crossed the wire in clear");
        assert!(saw(&seen, b"phone"), "the ids in OPEN stay visible");

        // Without the secure layer the same scan finds the text.
        let plain_tablet = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
        let (via, seen) = proxy(plain_tablet.local_addr().unwrap(), None).await;
        let plain_phone = TcpTransport::client(id("phone"));
        plain_phone.add_peer(id("tablet"), via);
        let (dialed, accepted) = tokio::join!(plain_phone.dial(&tablet_id), plain_tablet.accept());
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        dialed.send(frame(SECRET)).await.unwrap();
        accepted.recv().await.unwrap();
        assert!(saw(&seen, SECRET));
    })
    .await;
}

#[tokio::test]
async fn a_byte_changed_on_the_wire_closes_the_link_with_record_failed() {
    within(20, async {
        let (tablet, addr) = tablet(SecureConfig::ephemeral().unwrap()).await;
        // The dialer's OPEN (17 bytes), handshake messages 1 and 3 (76 + 108) and its
        // confirmation (28) come first: byte 900 is inside the first frame's record.
        let (via, _) = proxy(addr, Some(900)).await;
        let phone = phone(SecureConfig::ephemeral().unwrap(), via);
        let tablet_id = id("tablet");
        let (dialed, accepted) = tokio::join!(phone.dial(&tablet_id), tablet.accept());
        let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
        dialed.send(frame(&[0x77; 2000])).await.unwrap();
        let err = accepted.recv().await.unwrap_err();
        assert_eq!(CloseCode::of_error(&err), Some(CloseCode::RecordFailed));
        let err = dialed.recv().await.unwrap_err();
        assert_eq!(CloseCode::of_error(&err), Some(CloseCode::RecordFailed));
    })
    .await;
}

/// A relay listening as "tablet" that dials the real tablet as "phone", with a key of its own,
/// and runs the secure layer on both links (it would then pass frames between them).
async fn relay_to(tablet_addr: SocketAddr) -> SocketAddr {
    let relay = SecureConfig::ephemeral().unwrap();
    let near = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
    let addr = near.local_addr().unwrap();
    let far = TcpTransport::client(id("phone"));
    far.add_peer(id("tablet"), tablet_addr);
    let (near, far) = (Secure::new(near, relay.clone()), Secure::new(far, relay));
    tokio::spawn(async move {
        let tablet = DeviceId::new("tablet").unwrap();
        let (_from_phone, _to_tablet) = tokio::join!(near.accept(), far.dial(&tablet));
        std::future::pending::<()>().await;
    });
    addr
}

/// A device whose owner accepts every pairing; the codes it was shown, in order.
fn owner(config: &SecureConfig) -> Arc<Mutex<Vec<PairingCode>>> {
    let mut asks = config.pairing_requests().unwrap();
    let codes = Arc::new(Mutex::new(Vec::new()));
    let shown = codes.clone();
    tokio::spawn(async move {
        while let Some(request) = asks.next().await {
            shown.lock().unwrap().push(request.code());
            request.accept();
        }
    });
    codes
}

#[tokio::test]
async fn a_relay_on_the_lan_shows_different_codes_and_once_paired_is_refused() {
    within(30, async {
        let tablet_config = SecureConfig::new(Identity::generate().unwrap());
        let phone_config = SecureConfig::new(Identity::generate().unwrap());
        let (tablet_codes, phone_codes) = (owner(&tablet_config), owner(&phone_config));
        let (tablet, addr) = tablet(tablet_config.clone()).await;
        let phone = phone(phone_config.clone(), relay_to(addr).await);
        let tablet_id = id("tablet");
        let (dialed, accepted) = tokio::join!(phone.dial(&tablet_id), tablet.accept());
        assert!(
            dialed.is_ok() && accepted.is_ok(),
            "owners who do not compare pair"
        );
        let (on_phone, on_tablet) = (
            phone_codes.lock().unwrap()[0],
            tablet_codes.lock().unwrap()[0],
        );
        assert_ne!(
            on_phone, on_tablet,
            "owners who compare codes see the relay"
        );
        drop((dialed, accepted));
        // Forget the relay's keys, which the owners accepted.
        tablet_config.trust_store().remove(&id("phone")).unwrap();
        phone_config.trust_store().remove(&id("tablet")).unwrap();

        // The two devices pair directly; then the relay is refused, with no one asked.
        let (tablet, addr) = self::tablet(tablet_config.clone()).await;
        let direct = self::phone(phone_config.clone(), addr);
        let (dialed, accepted) = tokio::join!(direct.dial(&tablet_id), tablet.accept());
        assert!(dialed.is_ok() && accepted.is_ok());
        let (on_phone, on_tablet) = (
            phone_codes.lock().unwrap()[1],
            tablet_codes.lock().unwrap()[1],
        );
        assert_eq!(on_phone, on_tablet, "with no relay, one code");
        let via_relay = self::phone(phone_config, relay_to(addr).await);
        let refused = via_relay.dial(&tablet_id).await.unwrap_err();
        assert_eq!(
            CloseCode::of_error(&refused),
            Some(CloseCode::Impersonation)
        );
        assert_eq!(phone_codes.lock().unwrap().len(), 2, "no one was asked");
    })
    .await;
}
