//! Making links: listening, dialing by id and by address, the OPEN exchange, discovery, and
//! the errors of each.

mod common;

use acm_transport::{PeerAddress, Role, Transport, TransportError};
use acm_transport_tcp::{TcpConfig, TcpError, TcpTransport, binding};
use common::{frame, id, loopback, pair, raw_dialer, raw_listener, read_message, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn bind_reports_the_port_it_got_and_capabilities_give_the_maximum_frame() {
    let config = TcpConfig::new().with_max_frame_size(1 << 20);
    let tablet = TcpTransport::bind_with(id("tablet"), loopback(), config)
        .await
        .unwrap();
    let addr = tablet
        .local_addr()
        .expect("a listening transport has an address");
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    assert_eq!(tablet.local_device(), &id("tablet"));
    let caps = tablet.capabilities();
    assert_eq!(caps.max_frame_size, 1 << 20);
    assert!(caps.carries_data && caps.discovery);
    assert_eq!(TcpTransport::client(id("phone")).local_addr(), None);
}

#[tokio::test]
async fn dial_by_id_and_accept_give_each_side_the_other_id_and_its_role() {
    within(10, async {
        let p = pair().await;
        assert_eq!(p.dialer.local_device(), &id("phone"));
        assert_eq!(p.dialer.peer_device(), &id("tablet"));
        assert_eq!(p.dialer.role(), Role::Dialer);
        assert_eq!(p.acceptor.local_device(), &id("tablet"));
        assert_eq!(p.acceptor.peer_device(), &id("phone"));
        assert_eq!(p.acceptor.role(), Role::Acceptor);
        assert_eq!(p.dialer.max_frame_size(), binding::DEFAULT_MAX_FRAME_SIZE);
        assert!(p.dialer.closure().is_none() && p.acceptor.closure().is_none());
    })
    .await;
}

#[tokio::test]
async fn both_ends_report_the_same_opening_the_dialers_open_then_the_acceptors() {
    within(10, async {
        let p = pair().await;
        let opening = [binding::open(&id("phone")), binding::open(&id("tablet"))].concat();
        assert_eq!(&p.dialer.opening()[..], &opening[..]);
        assert_eq!(&p.acceptor.opening()[..], &opening[..]);
    })
    .await;
}

#[tokio::test]
async fn each_end_gives_the_ip_address_the_other_end_connected_from() {
    within(10, async {
        let p = pair().await;
        let loopback = Some(PeerAddress::Ip(loopback().ip()));
        assert_eq!(p.dialer.peer_address(), loopback);
        assert_eq!(p.acceptor.peer_address(), loopback);
    })
    .await;
}

#[tokio::test]
async fn discover_lists_the_peers_added_in_id_order_with_their_addresses() {
    let phone = TcpTransport::client(id("phone"));
    assert!(phone.discover().await.unwrap().is_empty());
    let watch_addr = "192.0.2.7:4000".parse().unwrap();
    let tablet_addr = "192.0.2.8:4000".parse().unwrap();
    assert_eq!(phone.add_peer(id("watch"), watch_addr), None);
    assert_eq!(phone.add_peer(id("tablet"), tablet_addr), None);
    let seen = phone.discover().await.unwrap();
    let listed: Vec<_> = seen
        .iter()
        .map(|d| (d.id.as_str(), d.address.as_str()))
        .collect();
    assert_eq!(
        listed,
        [("tablet", "192.0.2.8:4000"), ("watch", "192.0.2.7:4000")]
    );
    assert_eq!(phone.remove_peer(&id("watch")), Some(watch_addr));
    assert_eq!(phone.discover().await.unwrap().len(), 1);
}

#[tokio::test]
async fn dial_addr_learns_the_peer_id_from_its_open() {
    within(10, async {
        let tablet = TcpTransport::bind(id("tablet-7f3a"), loopback())
            .await
            .unwrap();
        let phone = TcpTransport::client(id("phone"));
        let link = phone.dial_addr(tablet.local_addr().unwrap()).await.unwrap();
        assert_eq!(link.peer_device(), &id("tablet-7f3a"));
        let accepted = tablet.accept().await.unwrap();
        assert_eq!(accepted.peer_device(), &id("phone"));
    })
    .await;
}

#[tokio::test]
async fn dialing_an_unknown_id_is_unreachable_and_a_port_nobody_listens_on_is_named() {
    within(10, async {
        let phone = TcpTransport::client(id("phone"));
        assert!(matches!(
            phone.dial(&id("nobody")).await,
            Err(TransportError::Unreachable(who)) if who == id("nobody")
        ));
        // A port that was free a moment ago.
        let (listener, addr) = raw_listener().await;
        drop(listener);
        phone.add_peer(id("gone"), addr);
        let Err(err) = phone.dial(&id("gone")).await else {
            panic!("no link");
        };
        assert_eq!(
            err.to_string(),
            format!("nothing listens at tcp://{addr} (connection refused)")
        );
        assert!(matches!(
            err,
            TransportError::NotListening { device, .. } if device == id("gone")
        ));
        assert!(matches!(
            phone.dial_addr(addr).await,
            Err(TransportError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
        ));
    })
    .await;
}

#[tokio::test]
async fn dialing_an_id_where_another_device_listens_names_the_device_there() {
    within(10, async {
        let impostor = TcpTransport::bind(id("impostor"), loopback())
            .await
            .unwrap();
        let phone = TcpTransport::client(id("phone"));
        let addr = impostor.local_addr().unwrap();
        phone.add_peer(id("tablet"), addr);
        let Err(err) = phone.dial(&id("tablet")).await else {
            panic!("no link");
        };
        assert_eq!(
            err.to_string(),
            format!("device impostor answers at tcp://{addr}, not tablet")
        );
        assert!(matches!(
            err,
            TransportError::OtherDevice { device, found, .. }
                if device == id("tablet") && found == id("impostor")
        ));
    })
    .await;
}

#[tokio::test]
async fn dialing_an_id_where_another_service_listens_says_it_does_not_speak_acm() {
    within(10, async {
        // A service that greets every connection with a line of text, as SSH does.
        let (listener, addr) = raw_listener().await;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
                let mut sink = [0u8; 256];
                let _ = stream.read(&mut sink).await;
            }
        });
        let phone = TcpTransport::client(id("phone"));
        phone.add_peer(id("tablet"), addr);
        let Err(err) = phone.dial(&id("tablet")).await else {
            panic!("no link");
        };
        assert!(
            err.to_string()
                .starts_with(&format!("the service at tcp://{addr} does not speak acm")),
            "{err}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_client_transport_refuses_accept_as_unsupported_and_still_dials() {
    within(10, async {
        let phone = TcpTransport::client(id("phone"));
        assert!(matches!(
            phone.accept().await,
            Err(TransportError::Unsupported(_))
        ));
        let tablet = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
        phone.add_peer(id("tablet"), tablet.local_addr().unwrap());
        let link = phone.dial(&id("tablet")).await.unwrap();
        assert_eq!(link.role(), Role::Dialer);
    })
    .await;
}

#[tokio::test]
async fn settings_out_of_range_are_refused_with_the_setting_named() {
    for (config, setting) in [
        (TcpConfig::new().with_max_frame_size(127), "max_frame_size"),
        (
            TcpConfig::new().with_max_frame_size(binding::LARGEST_FRAME + 1),
            "max_frame_size",
        ),
        (TcpConfig::new().with_send_buffer(0), "send_buffer"),
        (TcpConfig::new().with_receive_buffer(0), "receive_buffer"),
        (TcpConfig::new().with_accept_backlog(0), "accept_backlog"),
    ] {
        match TcpTransport::bind_with(id("x"), loopback(), config.clone()).await {
            Err(TcpError::OutOfRange { setting: got, .. }) => assert_eq!(got, setting),
            other => panic!("expected {setting} refused, got {other:?}"),
        }
        assert!(TcpTransport::client_with(id("x"), config).is_err());
    }
    let largest = TcpConfig::new().with_max_frame_size(binding::LARGEST_FRAME);
    assert!(TcpTransport::client_with(id("x"), largest).is_ok());
}

#[tokio::test]
async fn binding_an_address_in_use_fails_with_the_address() {
    let (_listener, addr) = raw_listener().await;
    match TcpTransport::bind(id("x"), addr).await {
        Err(TcpError::Bind { addr: got, .. }) => assert_eq!(got, addr),
        other => panic!("expected a bind error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_dialer_sends_open_first_and_takes_the_id_of_the_acceptor_open() {
    within(10, async {
        let (listener, addr) = raw_listener().await;
        let phone = TcpTransport::client(id("phone"));
        let acceptor = async {
            let (mut stream, _) = listener.accept().await.unwrap();
            // The dialer speaks first: its OPEN, byte for byte.
            let (header, payload) = read_message(&mut stream).await.unwrap();
            assert_eq!(header, [0xAC, 0x4D, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0]);
            assert_eq!(payload, b"phone");
            stream
                .write_all(&binding::open(&id("raw-tablet")))
                .await
                .unwrap();
            stream
        };
        let (link, _stream) = tokio::join!(phone.dial_addr(addr), acceptor);
        assert_eq!(link.unwrap().peer_device(), &id("raw-tablet"));
    })
    .await;
}

#[tokio::test]
async fn the_acceptor_answers_open_with_its_own_id() {
    within(10, async {
        let tablet = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
        let (_stream, answered) = raw_dialer(tablet.local_addr().unwrap(), "raw-phone").await;
        assert_eq!(answered, id("tablet"));
        let link = tablet.accept().await.unwrap();
        assert_eq!(link.peer_device(), &id("raw-phone"));
        assert_eq!(link.role(), Role::Acceptor);
    })
    .await;
}

#[tokio::test]
async fn an_acceptor_with_a_full_backlog_refuses_the_dial() {
    within(10, async {
        let config = TcpConfig::new().with_accept_backlog(1);
        let tablet = TcpTransport::bind_with(id("tablet"), loopback(), config)
            .await
            .unwrap();
        let phone = TcpTransport::client(id("phone"));
        phone.add_peer(id("tablet"), tablet.local_addr().unwrap());
        let _waiting = phone.dial(&id("tablet")).await.unwrap();
        assert!(matches!(
            phone.dial(&id("tablet")).await,
            Err(TransportError::Refused(who)) if who == id("tablet")
        ));
        // Once the first is accepted there is room again.
        let _accepted = tablet.accept().await.unwrap();
        assert!(phone.dial(&id("tablet")).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn an_acceptor_drops_a_connection_that_sends_no_open_or_a_frame_first() {
    within(20, async {
        let config = TcpConfig::new().with_open_timeout(std::time::Duration::from_millis(200));
        let tablet = TcpTransport::bind_with(id("tablet"), loopback(), config)
            .await
            .unwrap();
        let addr = tablet.local_addr().unwrap();
        // Silent: dropped once the OPEN wait is over, with nothing sent to it.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut got = Vec::new();
        let _ = silent.read_to_end(&mut got).await;
        assert!(got.is_empty());
        // A frame first: dropped unanswered.
        let mut eager = TcpStream::connect(addr).await.unwrap();
        eager.write_all(&frame(1, 12)).await.unwrap();
        let mut got = Vec::new();
        let _ = eager.read_to_end(&mut got).await;
        assert!(got.is_empty());
        // Ended before OPEN: dropped unanswered.
        let mut quitter = TcpStream::connect(addr).await.unwrap();
        quitter.shutdown().await.unwrap();
        let mut got = Vec::new();
        let _ = quitter.read_to_end(&mut got).await;
        assert!(got.is_empty());
    })
    .await;
}
