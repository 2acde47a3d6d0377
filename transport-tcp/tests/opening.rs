//! Connections that never finish their OPEN (SPEC `LIMIT-2`): they cannot keep a dialer out,
//! the oldest gives way to a newcomer, and under pressure an OPEN is waited for less long.

mod common;

use std::time::Duration;

use acm_transport::Transport;
use acm_transport_tcp::{TcpConfig, TcpTransport};
use common::{id, loopback, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `n` connections to `addr` that send `first` (or nothing) and then nothing more.
async fn stalled(addr: std::net::SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut stream = TcpStream::connect(addr).await.expect("connected");
        if !first.is_empty() {
            stream.write_all(first).await.expect("written");
        }
        streams.push(stream);
    }
    // Until the listener has taken them all.
    tokio::time::sleep(Duration::from_millis(300)).await;
    streams
}

/// Whether the acceptor has ended `stream` (it reads the end, or a reset).
async fn ended(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
}

async fn dial_succeeds(tablet: &TcpTransport) {
    let addr = tablet.local_addr().expect("listening");
    let phone = TcpTransport::client(id("phone"));
    let link = phone.dial_addr(addr).await.expect("the dialer is let in");
    assert_eq!(link.peer_device(), &id("tablet"));
    let accepted = tablet.accept().await.expect("the link is accepted");
    assert_eq!(accepted.peer_device(), &id("phone"));
}

#[tokio::test]
async fn limit_2_connections_that_never_send_open_do_not_keep_a_dialer_out() {
    within(60, async {
        let tablet = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
        let addr = tablet.local_addr().unwrap();
        // More than every place for an opening, from the dialer's own address.
        let _idle = stalled(addr, 100, &[]).await;
        for _ in 0..3 {
            dial_succeeds(&tablet).await;
        }
    })
    .await;
}

#[tokio::test]
async fn limit_2_connections_that_trickle_their_open_do_not_keep_a_dialer_out() {
    within(60, async {
        let tablet = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
        let addr = tablet.local_addr().unwrap();
        // The first bytes of an OPEN header, and the rest never.
        let _trickling = stalled(addr, 64, &[0xAC, 0x4D, 0x00]).await;
        dial_succeeds(&tablet).await;
    })
    .await;
}

#[tokio::test]
async fn limit_2_the_oldest_unopened_connection_from_an_address_gives_way_to_a_new_one() {
    within(60, async {
        let config = TcpConfig::new().with_max_pending_opens_per_address(4);
        let tablet = TcpTransport::bind_with(id("tablet"), loopback(), config)
            .await
            .unwrap();
        let addr = tablet.local_addr().unwrap();
        let mut first = stalled(addr, 4, &[]).await;
        let _newer = stalled(addr, 1, &[]).await;
        assert!(ended(&mut first[0]).await, "the oldest was dropped");
        dial_succeeds(&tablet).await;
    })
    .await;
}

#[tokio::test]
async fn limit_2_while_places_are_scarce_an_open_is_waited_for_less_long() {
    within(60, async {
        let config = TcpConfig::new()
            .with_max_pending_opens(4)
            .with_open_timeout(Duration::from_secs(3_600))
            .with_pressed_open_timeout(Duration::from_millis(100));
        let tablet = TcpTransport::bind_with(id("tablet"), loopback(), config)
            .await
            .unwrap();
        let addr = tablet.local_addr().unwrap();
        // The first two wait the full hour; the third comes with half the places taken.
        let _calm = stalled(addr, 2, &[]).await;
        let mut pressed = stalled(addr, 1, &[]).await;
        assert!(
            ended(&mut pressed[0]).await,
            "its OPEN was waited for briefly"
        );
    })
    .await;
}
