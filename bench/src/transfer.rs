//! Two devices over the mock transport: bulk data, and the handshake's latency, each against a
//! `tokio::io::duplex` doing the same.

use std::time::{Duration, Instant};

use acm_transport_mock::{DeviceOptions, MockNetwork};
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::harness::{Plan, pairs_async};
use crate::report::{Figure, Row};
use crate::world::{accept_all, connect, connected_pair, next_accepted, next_data, side};

/// The size of one `send_data` blob.
const BLOB: usize = 1 << 20;

/// Measure 3: `send_data` of 1 MiB blobs from one device's app to the other's, against a
/// duplex pipe of the same buffer size moving the same bytes. In both, one task sends and
/// another receives.
pub async fn send_data(plan: Plan) -> Vec<Row> {
    let network = MockNetwork::new(7);
    let (a, _b, session, mut events) =
        connected_pair(&network, ["phone", "tablet"], DeviceOptions::new(), "bulk").await;
    let blob = Bytes::from(vec![0xA5u8; BLOB]);

    let (mut writer, mut reader) = tokio::io::duplex(DeviceOptions::DEFAULT_RECEIVE_BUFFER);
    let (writes_tx, mut writes) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let duplex_sender = tokio::spawn(async move {
        let blob = vec![0xA5u8; BLOB];
        while let Some(reps) = writes.recv().await {
            for _ in 0..reps {
                writer.write_all(&blob).await.expect("the pipe is open");
            }
        }
    });
    let mut received = vec![0u8; BLOB];

    let pairs = pairs_async(
        plan,
        async |reps| {
            let start = Instant::now();
            let (app, blob) = (a.app.clone(), blob.clone());
            let sender = tokio::spawn(async move {
                for _ in 0..reps {
                    app.send_data(session, blob.clone()).await.expect("sent");
                }
            });
            for _ in 0..reps {
                assert_eq!(next_data(&mut events).await, BLOB);
            }
            sender.await.expect("the sender finished");
            start.elapsed()
        },
        async |reps| {
            let start = Instant::now();
            writes_tx.send(reps).expect("the duplex sender runs");
            for _ in 0..reps {
                reader
                    .read_exact(&mut received)
                    .await
                    .expect("the pipe is open");
            }
            start.elapsed()
        },
    )
    .await;
    drop(writes_tx);
    let _ = duplex_sender.await;
    let ratio = pairs.time_ratio().inverse();
    let mb = |seconds: f64| BLOB as f64 / seconds / 1e6;
    vec![Row {
        measure: "send_data 1 MiB blobs over transport-mock".into(),
        ours: Figure::new(mb(pairs.ours_median()), "MB/s"),
        baseline: Some((
            "tokio duplex".into(),
            Figure::new(mb(pairs.baseline_median()), "MB/s"),
        )),
        ratio: Some(ratio),
        target: "≥ 0.7× duplex throughput".into(),
        met: Some(ratio.median >= 0.7),
        note: "app to app, 65 535-byte frames, 1 MiB in flight at most; the duplex pipe has a \
               1 MiB buffer; a sending task and a receiving task in both"
            .into(),
    }]
}

/// Measure 4: `connect` until its ConnectResult, on a link that is up, against a ping-pong of
/// as many round trips (one) over a duplex pipe to an echoing task.
pub async fn connect_latency(plan: Plan) -> Vec<Row> {
    let network = MockNetwork::new(8);
    let a = side(&network, "phone", DeviceOptions::new());
    let b = side(&network, "tablet", DeviceOptions::new());
    let mut accepted = accept_all(&b.app, false);
    // Bring the link up; later connects reuse it.
    let first = connect(&a.app, "tablet", "warm-up").await;
    next_accepted(&mut accepted).await;
    let _ = a.app.destroy_ability_connection_session(first);

    let (mut near, mut far) = tokio::io::duplex(64 * 1024);
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
                        crate::world::peer_of("tablet"),
                        acm::ConnectOptions::default(),
                    )
                    .expect("a valid session");
                let start = Instant::now();
                let result = a.app.connect(session).await.expect("a known session");
                took += start.elapsed();
                assert!(result.is_connected, "{result:?}");
                connected.push(session);
            }
            // Untimed: both ends forget the sessions, and the DISCONNECTs cross, before the
            // next sample; back to back, each connect finds the runtime as the last one left it.
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
                near.write_all(&buf).await.expect("the pipe is open");
                near.read_exact(&mut buf).await.expect("the pipe is open");
            }
            start.elapsed()
        },
    )
    .await;
    drop(near);
    let _ = echo.await;
    let ratio = pairs.time_ratio();
    vec![Row {
        measure: "connect → ConnectResult over transport-mock".into(),
        ours: Figure::new(pairs.ours_median() * 1e6, "µs"),
        baseline: Some((
            "duplex ping-pong, 1 round trip".into(),
            Figure::new(pairs.baseline_median() * 1e6, "µs"),
        )),
        ratio: Some(ratio),
        target: "≤ 3× duplex latency".into(),
        met: Some(ratio.median <= 3.0),
        note: "on a link that is up: one round trip (CONNECT_REQUEST, CONNECT_RESPONSE) with the \
               peer app's onCollaborate in between, which creates a session and calls \
               accept_connect as the reference's example does; the echo moves 256 bytes"
            .into(),
    }]
}
