//! Two devices over transport-tcp on loopback: bulk data and the handshake's latency, each
//! against raw tokio TCP moving the same bytes (or making the same round trip) in the same run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acm::Device;
use acm::transport::DeviceId;
use acm_transport_tcp::TcpTransport;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Plan, pairs_async};
use crate::report::{Figure, Row};
use crate::world::{Side, accept_all, connect, next_accepted, next_data, peer_of, plain};

/// The size of the transfer in a full run: the largest `send_data` takes by default.
pub const TRANSFER: usize = 100 << 20;

/// Device `b` listening on a free loopback port, device `a` that knows where: their sides.
/// `b` keeps up to `pool_bytes` of delivered transfers' buffers for reuse.
async fn tcp_pair(pool_bytes: usize) -> (Side, Side) {
    let b_id = DeviceId::new("tablet").expect("a valid id");
    let listener = TcpTransport::bind(b_id.clone(), loopback())
        .await
        .expect("a free loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let dialer = TcpTransport::client(DeviceId::new("phone").expect("a valid id"));
    dialer.add_peer(b_id, addr);
    // Plain links: these measure the runtime and the transport (the secure layer has its own).
    let a = Side::on(Device::new(dialer, plain()));
    let b = Side::on(Device::new(
        listener,
        plain().with_receive_pool_bytes(pool_bytes),
    ));
    (a, b)
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A connected pair of raw TCP streams on loopback, with Nagle's algorithm off as
/// transport-tcp has it.
async fn raw_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(loopback()).await.expect("a free port");
    let addr = listener.local_addr().expect("a bound address");
    let (near, far) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (near, far) = (near.expect("connected"), far.expect("accepted").0);
    near.set_nodelay(true).expect("nodelay");
    far.set_nodelay(true).expect("nodelay");
    (near, far)
}

/// Few samples of an operation that takes a large part of a second.
fn bulk_plan(plan: Plan) -> Plan {
    Plan {
        warmup: 1,
        samples: plan.samples.min(9),
        sample_time: Duration::ZERO,
    }
}

/// `send_data` of `size` bytes (100 MiB in a full run) from one device's app to the other's over
/// TCP on loopback, against a raw TCP connection moving the same bytes into a buffer of the same
/// size.
///
/// The raw side reads into one buffer it allocated once; the receiving device's pool keeps the
/// buffers of two transfers (the app may still hold one when the next begins), so that it does
/// the same. With the default pool, sized for 1 MiB transfers, each transfer would land in fresh
/// memory, whose page faults cost more here than moving the bytes.
pub async fn send_data(plan: Plan, size: usize) -> Vec<Row> {
    let (a, b) = tcp_pair(2 * size).await;
    let mut accepted = accept_all(&b.app, true);
    let session = connect(&a.app, "tablet", "bulk").await;
    let mut events = next_accepted(&mut accepted)
        .await
        .1
        .expect("the events were asked for");
    let blob = Bytes::from(vec![0xA5u8; size]);

    let (mut near, mut far) = raw_pair().await;
    let (writes_tx, mut writes) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let raw_blob = blob.clone();
    let raw_sender = tokio::spawn(async move {
        while let Some(reps) = writes.recv().await {
            for _ in 0..reps {
                near.write_all(&raw_blob).await.expect("the socket is open");
            }
        }
    });
    let mut received = vec![0u8; size];

    let pairs = pairs_async(
        bulk_plan(plan),
        async |reps| {
            let start = Instant::now();
            let (app, blob) = (a.app.clone(), blob.clone());
            let sender = tokio::spawn(async move {
                for _ in 0..reps {
                    app.send_data(session, blob.clone()).await.expect("sent");
                }
            });
            for _ in 0..reps {
                assert_eq!(next_data(&mut events).await, size);
            }
            sender.await.expect("the sender finished");
            start.elapsed()
        },
        async |reps| {
            let start = Instant::now();
            writes_tx.send(reps).expect("the raw sender runs");
            for _ in 0..reps {
                far.read_exact(&mut received)
                    .await
                    .expect("the socket is open");
            }
            start.elapsed()
        },
    )
    .await;
    drop(writes_tx);
    let _ = raw_sender.await;
    let ratio = pairs.time_ratio().inverse();
    let mb = |seconds: f64| size as f64 / seconds / 1e6;
    vec![Row {
        measure: format!("send_data {} MiB over transport-tcp (loopback)", size >> 20),
        ours: Figure::new(mb(pairs.ours_median()), "MB/s"),
        baseline: Some((
            "raw tokio TCP".into(),
            Figure::new(mb(pairs.baseline_median()), "MB/s"),
        )),
        ratio: Some(ratio),
        target: "≥ 0.8× raw TCP throughput".into(),
        met: Some(ratio.median >= 0.8),
        note: "app to app, one transfer per operation in 65 535-byte frames; the raw connection \
               writes the same bytes and reads them into a buffer of the same size, allocated \
               once; the receiver's buffer pool keeps two transfers' buffers to do the same"
            .into(),
    }]
}

/// `connect` until its ConnectResult over TCP on loopback, on a link that is up, against a
/// ping-pong of 256 bytes over a raw TCP connection to an echoing task: one round trip each.
pub async fn connect_latency(plan: Plan) -> Vec<Row> {
    let (a, b) = tcp_pair(acm_wire::pool::DEFAULT_POOL_BYTES).await;
    let mut accepted = accept_all(&b.app, false);
    // Bring the link up; later connects reuse it.
    let first = connect(&a.app, "tablet", "warm-up").await;
    next_accepted(&mut accepted).await;
    let _ = a.app.destroy_ability_connection_session(first);

    let (mut near, mut far) = raw_pair().await;
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 256];
        while far.read_exact(&mut buf).await.is_ok() {
            if far.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let mut service = 0u64;
    let pairs = pairs_async(
        plan,
        async |reps| {
            let mut took = Duration::ZERO;
            let mut connected = Vec::new();
            for _ in 0..reps {
                service += 1;
                let name = format!("latency-{service}");
                let session = a
                    .app
                    .create_ability_connection_session(
                        &name,
                        &crate::world::context(),
                        peer_of("tablet"),
                        acm::ConnectOptions::default(),
                    )
                    .expect("a valid session");
                let start = Instant::now();
                let result = a.app.connect(session).await.expect("a known session");
                took += start.elapsed();
                assert!(result.is_connected, "{result:?}");
                connected.push(session);
            }
            // Untimed: both ends forget the sessions before the next sample.
            for session in connected {
                let _ = a.app.destroy_ability_connection_session(session);
            }
            for _ in 0..reps {
                let (theirs, _) = next_accepted(&mut accepted).await;
                let _ = b.app.destroy_ability_connection_session(theirs);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            took
        },
        async |reps| {
            let mut buf = [0u8; 256];
            let start = Instant::now();
            for _ in 0..reps {
                near.write_all(&buf).await.expect("the socket is open");
                near.read_exact(&mut buf).await.expect("the socket is open");
            }
            start.elapsed()
        },
    )
    .await;
    drop(near);
    let _ = echo.await;
    let ratio = pairs.time_ratio();
    vec![Row {
        measure: "connect → ConnectResult over transport-tcp (loopback)".into(),
        ours: Figure::new(pairs.ours_median() * 1e6, "µs"),
        baseline: Some((
            "raw TCP ping-pong, 1 round trip".into(),
            Figure::new(pairs.baseline_median() * 1e6, "µs"),
        )),
        ratio: Some(ratio),
        target: "≤ 2× a raw TCP round trip".into(),
        met: Some(ratio.median <= 2.0),
        note: "on a link that is up: CONNECT_REQUEST, the peer app's onCollaborate creating a \
               session and calling accept_connect, CONNECT_RESPONSE; the echo moves 256 bytes"
            .into(),
    }]
}
