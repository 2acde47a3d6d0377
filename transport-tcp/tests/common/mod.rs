//! Helpers shared by the integration tests: frames, linked transports on loopback, and a peer
//! that speaks the binding byte by byte.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use acm_transport::{Closure, DeviceId, Link, Transport, TransportError};
use acm_transport_tcp::{TcpConfig, TcpTransport, binding};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A device id that is known to be valid.
pub fn id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("a valid device id")
}

/// Loopback, any free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Frame number `seq` of `len` bytes (at least 12): an extension frame whose channel field is
/// `seq` and whose payload bytes all say `seq`.
pub fn frame(seq: u32, len: usize) -> Bytes {
    assert!(len >= binding::HEADER_LEN);
    let payload = len - binding::HEADER_LEN;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[0xAC, 0x4D, 0x01, 0x80, 0x00]);
    out.extend_from_slice(&(payload as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&seq.to_be_bytes());
    out.resize(len, seq as u8);
    Bytes::from(out)
}

/// The link's end, or the closure, of `result`.
pub fn closed<T: std::fmt::Debug>(result: Result<T, TransportError>) -> Closure {
    match result {
        Err(TransportError::Closed(closure)) => closure,
        other => panic!("expected a closed link, got {other:?}"),
    }
}

/// Runs `test` with a time limit: a hang fails the test instead of stalling the run.
pub async fn within<F: std::future::Future>(seconds: u64, test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(seconds), test)
        .await
        .expect("the test finished in time")
}

/// Two listening transports, "phone" and "tablet", each knowing the other, and a link the
/// phone dialed and the tablet accepted.
pub struct Pair {
    pub phone: TcpTransport,
    pub tablet: TcpTransport,
    /// The phone's end.
    pub dialer: Box<dyn Link>,
    /// The tablet's end.
    pub acceptor: Box<dyn Link>,
}

/// A [`Pair`] with the default settings.
pub async fn pair() -> Pair {
    pair_with(TcpConfig::new()).await
}

/// A [`Pair`] whose transports both use `config`.
pub async fn pair_with(config: TcpConfig) -> Pair {
    let phone = TcpTransport::bind_with(id("phone"), loopback(), config.clone())
        .await
        .expect("the phone listens");
    let tablet = TcpTransport::bind_with(id("tablet"), loopback(), config)
        .await
        .expect("the tablet listens");
    phone.add_peer(id("tablet"), tablet.local_addr().unwrap());
    tablet.add_peer(id("phone"), phone.local_addr().unwrap());
    let dialer = phone.dial(&id("tablet")).await.expect("the dial works");
    let acceptor = tablet.accept().await.expect("the tablet accepts");
    Pair {
        phone,
        tablet,
        dialer,
        acceptor,
    }
}

/// Reads one binding message or frame off a raw stream: its header and its payload.
pub async fn read_message(stream: &mut TcpStream) -> std::io::Result<([u8; 12], Vec<u8>)> {
    let mut header = [0; 12];
    stream.read_exact(&mut header).await?;
    let len = usize::from(header[5]) << 16 | usize::from(header[6]) << 8 | usize::from(header[7]);
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok((header, payload))
}

/// A raw connection to the transport listening at `addr` that has sent OPEN as `name` and
/// read the transport's OPEN, whose id it returns.
pub async fn raw_dialer(addr: SocketAddr, name: &str) -> (TcpStream, DeviceId) {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("the connection opens");
    stream.write_all(&binding::open(&id(name))).await.unwrap();
    let (header, payload) = read_message(&mut stream).await.expect("an OPEN comes back");
    assert_eq!(
        header[..4],
        [0xAC, 0x4D, 0x00, 0x01],
        "the answer is an OPEN"
    );
    (stream, binding::parse_open(&payload).expect("a valid id"))
}

/// `acceptor` accepting a raw dialer named `name`: the raw stream and the link.
pub async fn raw_pair(name: &str) -> (TcpTransport, TcpStream, Box<dyn Link>) {
    let acceptor = TcpTransport::bind(id("tablet"), loopback()).await.unwrap();
    let (stream, _) = raw_dialer(acceptor.local_addr().unwrap(), name).await;
    let link = acceptor.accept().await.unwrap();
    (acceptor, stream, link)
}

/// A raw listener on loopback and its address.
pub async fn raw_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}
