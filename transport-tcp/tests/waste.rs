//! Openings an address wastes (SPEC `LIMIT-3`): once an address has wasted its allowance, its
//! new connections are dropped at once, without an answer to their OPEN; other addresses, and
//! an address whose openings came to something, are let in.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use acm_transport::Transport;
use acm_transport_tcp::{TcpConfig, TcpTransport, binding};
use common::{frame, id, loopback, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `addr` from 127.0.0.2, another address of this host's, as another host on a
/// network would make it.
async fn from_elsewhere(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 2], 0)))
        .expect("bound to 127.0.0.2");
    socket.connect(addr).await.expect("connected")
}

/// Sends an OPEN as `name` on `stream`, and says whether the acceptor answered with its own.
async fn answered(stream: &mut TcpStream, name: &str) -> bool {
    if stream.write_all(&binding::open(&id(name))).await.is_err() {
        return false;
    }
    let expected = binding::open(&id("tablet"));
    let mut got = vec![0u8; expected.len()];
    match stream.read_exact(&mut got).await {
        Ok(_) => got == expected,
        Err(_) => false,
    }
}

/// A tablet that lets an address waste `allowance` openings and forgives one a second, and
/// waits `open_wait` for an OPEN.
async fn tablet(allowance: usize, open_wait: Duration) -> TcpTransport {
    let config = TcpConfig::new()
        .with_wasted_opens(allowance, 1)
        .with_open_timeout(open_wait);
    TcpTransport::bind_with(id("tablet"), loopback(), config)
        .await
        .expect("listening")
}

/// A dial from this host's own address, 127.0.0.1, goes through.
async fn dial_succeeds(tablet: &TcpTransport) {
    let phone = TcpTransport::client(id("phone"));
    let link = phone
        .dial_addr(tablet.local_addr().expect("listening"))
        .await
        .expect("the dialer is let in");
    assert_eq!(link.peer_device(), &id("tablet"));
    tablet.accept().await.expect("the link is accepted");
}

#[tokio::test]
async fn limit_3_an_address_whose_openings_time_out_is_refused_at_once_and_no_other_is() {
    within(60, async {
        let tablet = tablet(3, Duration::from_millis(100)).await;
        let addr = tablet.local_addr().unwrap();
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(from_elsewhere(addr).await);
        }
        for stream in &mut idle {
            let mut byte = [0u8; 1];
            let ended = stream.read(&mut byte).await;
            assert!(matches!(ended, Ok(0) | Err(_)), "timed out: {ended:?}");
        }
        let mut next = from_elsewhere(addr).await;
        assert!(
            !answered(&mut next, "staller").await,
            "an address that wasted 3 openings is refused"
        );
        dial_succeeds(&tablet).await;
    })
    .await;
}

#[tokio::test]
async fn limit_3_links_this_side_drops_before_their_peer_sent_a_frame_are_wasted() {
    within(60, async {
        let tablet = tablet(2, Duration::from_secs(10)).await;
        let addr = tablet.local_addr().unwrap();
        let mut held = Vec::new();
        for n in 0..2 {
            let mut stream = from_elsewhere(addr).await;
            assert!(answered(&mut stream, &format!("silent-{n}")).await);
            drop(tablet.accept().await.expect("accepted"));
            held.push(stream);
        }
        let mut next = from_elsewhere(addr).await;
        assert!(
            !answered(&mut next, "silent-2").await,
            "two links dropped before a frame came on them waste the allowance"
        );
        dial_succeeds(&tablet).await;
    })
    .await;
}

#[tokio::test]
async fn limit_3_openings_that_carry_a_frame_or_that_the_peer_ends_waste_nothing() {
    within(60, async {
        let tablet = tablet(2, Duration::from_secs(10)).await;
        let addr = tablet.local_addr().unwrap();
        for n in 0..5 {
            let mut stream = from_elsewhere(addr).await;
            assert!(answered(&mut stream, &format!("talker-{n}")).await, "{n}");
            stream.write_all(&frame(n, 20)).await.unwrap();
            let link = tablet.accept().await.expect("accepted");
            assert_eq!(link.recv().await.expect("its frame"), frame(n, 20));
            link.close(acm_transport::CloseReason::new(0, "done")).await;
        }
        for _ in 0..5 {
            // Connected and ended before its OPEN.
            drop(from_elsewhere(addr).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut next = from_elsewhere(addr).await;
        assert!(answered(&mut next, "talker-5").await);
    })
    .await;
}

#[tokio::test]
async fn limit_3_an_allowance_of_none_refuses_nobody() {
    within(60, async {
        let tablet = tablet(0, Duration::from_millis(50)).await;
        let addr = tablet.local_addr().unwrap();
        for _ in 0..5 {
            let mut idle = from_elsewhere(addr).await;
            let mut byte = [0u8; 1];
            assert!(matches!(idle.read(&mut byte).await, Ok(0) | Err(_)));
        }
        let mut next = from_elsewhere(addr).await;
        assert!(answered(&mut next, "staller").await);
    })
    .await;
}
