//! Peers that do not play by the rules of flow: the device's runtime bounds what they can make
//! it hold (SPEC `LINK-13`), under a paused clock.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use acm::transport::{
    CloseReason, Closure, DeviceId, FrameBuf, Link, Role, Transport, TransportError,
};
use acm::{Device, DeviceConfig, Security};
use acm_transport_mock::{DeviceOptions, MockNetwork};
use acm_wire::pb::{self, FrameType, LinkCloseReason};
use acm_wire::{Control, Frame, FrameKind, SUPPORTED_VERSIONS};
use async_trait::async_trait;
use bytes::Bytes;
use common::Wrapped;

fn frame(control: Control) -> Bytes {
    control.encode_frame(1, 0).expect("encodes")
}

/// A device `tablet` with no app, and a raw link to it from `attacker`, HELLO sent with a 1 s
/// keepalive.
async fn attacked() -> (MockNetwork, Device, Box<dyn Link>) {
    attacked_with(DeviceOptions::new()).await
}

/// As [`attacked`], with the attacker's end of the network as `options` say.
async fn attacked_with(options: DeviceOptions) -> (MockNetwork, Device, Box<dyn Link>) {
    let network = MockNetwork::new(21);
    let tablet = network
        .add_device(DeviceId::new("tablet").unwrap())
        .unwrap();
    let device = Device::new(
        tablet,
        DeviceConfig::default().with_security(Security::Insecure),
    );
    let link = raw_link(&network, "attacker", options).await;
    (network, device, link)
}

/// A raw link to `tablet` from a new device `name` on `network`, HELLO sent with a 1 s
/// keepalive.
async fn raw_link(network: &MockNetwork, name: &str, options: DeviceOptions) -> Box<dyn Link> {
    let attacker = network
        .add_device_with(DeviceId::new(name).unwrap(), options)
        .unwrap();
    let link = attacker
        .dial(&DeviceId::new("tablet").unwrap())
        .await
        .unwrap();
    let hello = Control::Hello(pb::Hello {
        min_version: (*SUPPORTED_VERSIONS.start()).into(),
        max_version: (*SUPPORTED_VERSIONS.end()).into(),
        device_id: name.into(),
        max_frame_size: 65_535,
        keepalive_interval_ms: 1_000,
        features: 0,
        nonce: Bytes::from_static(&[9; 16]),
        max_data_size: 1 << 20,
    });
    link.send(frame(hello)).await.unwrap();
    link
}

#[tokio::test(start_paused = true)]
async fn link_13_a_peer_that_pings_and_never_reads_is_closed_with_resource_exhausted() {
    let (_network, _device, link) = attacked().await;
    // PINGs as fast as the link takes them, and nothing read: without a bound the PONGs would
    // pile up in the device for as long as this goes on.
    let mut sent = 0u64;
    let ended = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            let ping = frame(Control::Ping(pb::Ping { value: sent }));
            match link.send(ping).await {
                Ok(()) => sent += 1,
                Err(err) => return err,
            }
            if sent >= 2_000_000 {
                return TransportError::Unsupported("the device kept taking PINGs");
            }
        }
    })
    .await
    .expect("the link ends");
    let closure = link.closure().unwrap_or(Closure::Lost(ended.to_string()));
    match closure {
        Closure::Peer(reason) => {
            assert_eq!(reason.code, LinkCloseReason::ResourceExhausted as u32);
            assert!(reason.message.starts_with("LINK-13"), "{reason:?}");
        }
        other => panic!("expected the device's close, got {other:?} after {sent} PINGs"),
    }
}

/// The receives under way on the links a transport accepted (begun and neither finished nor
/// dropped), and how many were under way at each close of one of them.
#[derive(Debug, Default)]
struct Receives {
    under_way: AtomicUsize,
    at_close: Mutex<Vec<usize>>,
}

/// One receive under way, counted while it lives.
struct UnderWay<'a>(&'a Receives);

impl<'a> UnderWay<'a> {
    fn new(receives: &'a Receives) -> Self {
        receives.under_way.fetch_add(1, Ordering::SeqCst);
        Self(receives)
    }
}

impl Drop for UnderWay<'_> {
    fn drop(&mut self) {
        self.0.under_way.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A receive in progress, as `Link::recv_buf` returns it.
type Receive<'r> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<FrameBuf, TransportError>> + Send + 'r>,
>;

/// A link that counts its receives in the second field.
#[derive(Debug)]
struct CountingLink(Box<dyn Link>, Arc<Receives>);

#[async_trait]
impl Link for CountingLink {
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
        self.0.send(frame).await
    }
    async fn send_buf(&self, frame: FrameBuf) -> Result<(), TransportError> {
        self.0.send_buf(frame).await
    }
    async fn send_bufs(&self, frames: Vec<FrameBuf>) -> Result<(), TransportError> {
        self.0.send_bufs(frames).await
    }
    fn try_send_buf(&self, frame: FrameBuf) -> Result<Option<FrameBuf>, TransportError> {
        self.0.try_send_buf(frame)
    }
    async fn recv(&self) -> Result<Bytes, TransportError> {
        self.recv_buf().await.map(FrameBuf::into_bytes)
    }
    /// Counted from the moment the receive is made, whether or not it is polled.
    fn recv_buf<'a, 'r>(&'a self) -> Receive<'r>
    where
        'a: 'r,
        Self: 'r,
    {
        let counted = UnderWay::new(&self.1);
        Box::pin(async move {
            let _counted = counted;
            self.0.recv_buf().await
        })
    }
    async fn close(&self, reason: CloseReason) {
        let under_way = self.1.under_way.load(Ordering::SeqCst);
        self.1.at_close.lock().unwrap().push(under_way);
        self.0.close(reason).await
    }
    fn closure(&self) -> Option<Closure> {
        self.0.closure()
    }
}

#[tokio::test(start_paused = true)]
async fn the_device_lets_go_of_its_receive_before_it_closes_a_link() {
    // A transport may go on reading after its close, to discard what the peer still sends so
    // that the peer's sends go through and it sees the link end (TCP does). A receive the
    // device began and no longer polls would keep it from reading: a peer whose sends wait,
    // reading nothing, could then go on waiting long after the link has ended.
    let network = MockNetwork::new(23);
    let receives = Arc::new(Receives::default());
    let counted = receives.clone();
    let tablet = Wrapped {
        inner: network
            .add_device(DeviceId::new("tablet").unwrap())
            .unwrap(),
        wrap: Box::new(move |link| Box::new(CountingLink(link, counted.clone()))),
    };
    let device = Device::new(
        tablet,
        DeviceConfig::default().with_security(Security::Insecure),
    );
    let link = raw_link(&network, "attacker", DeviceOptions::new()).await;
    // The device has read the HELLO and waits for the next frame.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receives.under_way.load(Ordering::SeqCst), 1);
    tokio::time::timeout(Duration::from_secs(600), device.close())
        .await
        .expect("the device's close ends");
    assert!(
        matches!(link.closure(), Some(Closure::Peer(_))),
        "{:?}",
        link.closure()
    );
    assert_eq!(*receives.at_close.lock().unwrap(), [0]);
}

#[tokio::test(start_paused = true)]
async fn link_13_a_peer_that_reads_its_pongs_is_never_closed() {
    let (_network, _device, link) = attacked().await;
    for value in 0..20_000u64 {
        link.send(frame(Control::Ping(pb::Ping { value })))
            .await
            .expect("the link stays up");
        if value % 100 == 99 {
            // Read what came: HELLO, then PONGs.
            while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(1), link.recv()).await
            {
            }
        }
    }
    assert!(link.closure().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_close_behind_frames_the_peer_never_takes_ends_all_the_same() {
    // Room for about one frame towards the attacker, which reads nothing: the device's HELLO
    // and PONGs wait in its runtime, taken from the engine but not sent, when it closes.
    let (network, device, link) = attacked_with(DeviceOptions::new().receive_buffer(64)).await;
    for value in 0..10u64 {
        link.send(frame(Control::Ping(pb::Ping { value })))
            .await
            .expect("the device reads");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let handle = network
        .links(
            &DeviceId::new("attacker").unwrap(),
            &DeviceId::new("tablet").unwrap(),
        )
        .pop()
        .expect("the attacker's link");
    assert!(handle.is_open());
    // What waits is given up after a bound (LINK-7 with LINK-13), or the close would wait for
    // the attacker for ever.
    tokio::time::timeout(Duration::from_secs(600), device.close())
        .await
        .expect("the device's close ends");
    let closure = handle.closure(&DeviceId::new("tablet").unwrap()).unwrap();
    assert!(
        matches!(&closure, Some(Closure::Local(reason)) if reason.code == LinkCloseReason::Normal as u32),
        "{closure:?}"
    );
}

/// The PONGs `flooders` links had sent the device, all told, while another link's 20 PINGs
/// were each answered in turn. Each flooding link sends PONGs nobody asked for (which need no
/// answer) as fast as the device takes them, so that the count is the work the device did for
/// the flood while the PINGs waited; or, with a `burst`, that many at a time, letting the
/// other tasks run between two.
async fn flood_behind_pings(flooders: usize, burst: Option<u64>) -> u64 {
    let network = MockNetwork::new(22);
    // With bursts, the device takes about one burst a link before a flooding link's sends
    // wait, so that what was sent is what the device read, give or take a burst a link.
    let options = match burst {
        Some(_) => DeviceOptions::new().receive_buffer(128),
        None => DeviceOptions::new(),
    };
    let tablet = network
        .add_device_with(DeviceId::new("tablet").unwrap(), options)
        .unwrap();
    let _device = Device::new(
        tablet,
        DeviceConfig::default().with_security(Security::Insecure),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..flooders {
        let link = raw_link(&network, &format!("flooder-{n}"), DeviceOptions::new()).await;
        let sent = sent.clone();
        flood.spawn(async move {
            let pong = frame(Control::Pong(pb::Pong { value: 0 }));
            let mut n = 0u64;
            while link.send(pong.clone()).await.is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
                n += 1;
                if burst.is_some_and(|burst| n.is_multiple_of(burst)) {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let client = raw_link(&network, "client", DeviceOptions::new()).await;
    // The device's HELLO, then the flood under way on every link.
    client.recv().await.expect("the device's HELLO");
    while sent.load(Ordering::Relaxed) < 4096 * flooders as u64 {
        tokio::task::yield_now().await;
    }
    let mut behind = 0;
    for value in 0..20u64 {
        let before = sent.load(Ordering::Relaxed);
        client
            .send(frame(Control::Ping(pb::Ping { value })))
            .await
            .expect("the device reads");
        loop {
            let answer = client.recv().await.expect("the device answers");
            let frame = Frame::decode_exact(answer, u32::MAX, None).expect("a frame");
            if frame.kind == FrameKind::Known(FrameType::Pong)
                && Control::decode(FrameType::Pong, &frame.payload)
                    == Some(Ok(Control::Pong(pb::Pong { value })))
            {
                break;
            }
        }
        behind += sent.load(Ordering::Relaxed) - before;
    }
    flood.abort_all();
    behind
}

/// What the device's runtime lets a link's driver do in one poll when the link sends small
/// frames: 64 of them (`POLL_BYTES` over `FRAME_CHARGE` in the runtime's driver).
const ALLOWANCE: u64 = 64;

#[tokio::test(start_paused = true)]
async fn a_quiet_link_waits_behind_one_flooding_link_however_many_flood() {
    for flooders in [1, 16] {
        let behind = flood_behind_pings(flooders, None).await;
        // Each PING waits for the flooding link whose turn it is to finish one allowance, and
        // its PONG goes out in the quiet link's next turn. Were every flooding link's driver
        // back in the runtime's queue after each allowance, a PING would wait for one allowance
        // of each; and were the queue never empty, for as many task polls as the runtime makes
        // before it looks at its I/O and timers again (tokio's `event_interval`, 61), however
        // few links flood.
        assert!(behind > 0, "the flood went on while the PINGs waited");
        assert!(
            behind <= 20 * 2 * ALLOWANCE,
            "behind {flooders} flooding links, 20 PINGs waited for {behind} frames of the flood"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_link_waits_behind_one_flooding_link_when_many_send_a_little_at_a_time() {
    // Each flooding link sends a few frames at a time, never a whole allowance between two
    // polls of its driver, but without pause: it floods the device all the same, and takes
    // turns with the others once it has sent an allowance's worth. Were it let work whenever
    // it has frames, a PING would wait for a burst of each of the 32.
    let behind = flood_behind_pings(32, Some(8)).await;
    assert!(behind > 0, "the flood went on while the PINGs waited");
    assert!(
        behind <= 20 * 2 * ALLOWANCE,
        "behind 32 links sending 8 frames at a time, 20 PINGs waited for {behind} frames"
    );
}
