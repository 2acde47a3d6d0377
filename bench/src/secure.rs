//! The secure layer's cost (SPEC section 17), each against plain links in the same run: bulk
//! data over TCP on loopback, the CPU time of one link's setup, and the round trips from dialing
//! to the first ConnectResult on a link with injected latency.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acm::secure::{Secure, SecureConfig};
use acm::transport::{DeviceId, Transport};
use acm::{Device, DeviceConfig, Security};
use acm_transport_tcp::TcpTransport;
use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{Pairs, Spread};
use crate::report::{Figure, Row};
use crate::world::{Side, connect, connect_sides, next_data};

fn id(name: &str) -> DeviceId {
    DeviceId::new(name).expect("a valid id")
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(secure: bool) -> DeviceConfig {
    let config = DeviceConfig::default();
    if secure {
        config
    } else {
        config.with_security(Security::Insecure)
    }
}

/// A tablet listening on TCP and a phone that dials it, both secure or both plain.
async fn tcp_sides(secure: bool) -> (Side, Side) {
    let tablet = TcpTransport::bind(id("tablet"), loopback())
        .await
        .expect("a listener on loopback");
    let addr = tablet.local_addr().expect("a listening address");
    let phone = TcpTransport::client(id("phone"));
    phone.add_peer(id("tablet"), addr);
    let phone = Side::on(Device::new(phone, config(secure)));
    let tablet = Side::on(Device::new(tablet, config(secure)));
    (phone, tablet)
}

/// `send_data` of one 100 MiB transfer from the phone's app to the tablet's over TCP on
/// loopback, secure against plain, in turns.
pub async fn send_data(quick: bool) -> Vec<Row> {
    let (size, samples) = if quick { (4 << 20, 1) } else { (100 << 20, 7) };
    let blob = Bytes::from(vec![0x5Au8; size]);
    let mut pairs = Pairs {
        ours: Vec::new(),
        baseline: Vec::new(),
    };
    let mut ends = Vec::new();
    for secure in [true, false] {
        let (phone, tablet) = tcp_sides(secure).await;
        let (phone, tablet, session, events) = connect_sides(phone, tablet, "tablet", "bulk").await;
        ends.push((phone, tablet, session, events));
    }
    for round in 0..=samples {
        for (n, (phone, _, session, events)) in ends.iter_mut().enumerate() {
            let start = Instant::now();
            let (app, data, session) = (phone.app.clone(), blob.clone(), *session);
            let sender = tokio::spawn(async move { app.send_data(session, data).await });
            assert_eq!(next_data(events).await, size);
            sender.await.expect("the sender ran").expect("sent");
            let took = start.elapsed().as_secs_f64();
            // Round 0 warms up.
            if round > 0 {
                if n == 0 {
                    pairs.ours.push(took);
                } else {
                    pairs.baseline.push(took);
                }
            }
        }
    }
    let ratio = pairs.time_ratio().inverse();
    let mb = |seconds: f64| size as f64 / seconds / 1e6;
    vec![Row {
        measure: format!("send_data {} MiB over TCP loopback, secure", size >> 20),
        ours: Figure::new(mb(pairs.ours_median()), "MB/s"),
        baseline: Some((
            "the same over plain TCP".into(),
            Figure::new(mb(pairs.baseline_median()), "MB/s"),
        )),
        ratio: Some(ratio),
        target: "≥ 0.8× plain throughput".into(),
        met: Some(ratio.median >= 0.8),
        note: "one transfer app to app; secure: every frame a ChaCha20-Poly1305 record \
               (65 507-byte frames), plain: 65 535-byte frames; turns alternate, after one \
               warm-up each"
            .into(),
    }]
}

/// The CPU time this process has used, all threads, from /proc (Linux); `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Opens `links` links from `phone` to `tablet` one after the other and closes them.
async fn open_links(phone: &dyn Transport, tablet: &dyn Transport, links: usize) {
    let target = id("tablet");
    for _ in 0..links {
        let (dialed, accepted) = tokio::join!(phone.dial(&target), tablet.accept());
        let (dialed, accepted) = (dialed.expect("dialed"), accepted.expect("accepted"));
        dialed.close(acm::transport::CloseReason::normal()).await;
        drop(accepted);
    }
}

/// The CPU time of one link's setup over TCP on loopback (connection, OPEN, and for the secure
/// link the handshake and the confirmations), secure against plain.
pub async fn link_setup_cpu(quick: bool) -> Vec<Row> {
    let links = if quick { 5 } else { 300 };
    let mut per_link = Vec::new();
    for secure in [true, false] {
        let tablet = TcpTransport::bind(id("tablet"), loopback())
            .await
            .expect("a listener on loopback");
        let phone = TcpTransport::client(id("phone"));
        phone.add_peer(id("tablet"), tablet.local_addr().expect("an address"));
        let (phone, tablet): (Box<dyn Transport>, Box<dyn Transport>) = if secure {
            let (p, t) = (SecureConfig::ephemeral(), SecureConfig::ephemeral());
            let (p, t) = (p.expect("a key"), t.expect("a key"));
            (
                Box::new(Secure::new(phone, p)),
                Box::new(Secure::new(tablet, t)),
            )
        } else {
            (Box::new(phone), Box::new(tablet))
        };
        // The first link pairs (trust on first use); the measured ones are between known keys.
        open_links(&*phone, &*tablet, 1).await;
        let before = cpu_time();
        open_links(&*phone, &*tablet, links).await;
        let used = cpu_time().zip(before).map(|(after, before)| after - before);
        per_link.push(used.map_or(f64::NAN, |d| d.as_secs_f64() / links as f64));
    }
    let (secure, plain) = (per_link[0], per_link[1]);
    vec![Row {
        measure: "CPU time of one link's setup over TCP loopback, secure".into(),
        ours: Figure::new(secure * 1e6, "µs"),
        baseline: Some(("a plain link's".into(), Figure::new(plain * 1e6, "µs"))),
        ratio: Some(Spread::exact(secure / plain)),
        target: "reported".into(),
        met: None,
        note: "both ends, all threads of the process (/proc/self/task/*/schedstat), per link, \
               over links opened one after the other between devices that know each other's \
               keys; secure adds the Noise XX handshake (4 X25519 operations a side) and the \
               confirmations"
            .into(),
    }]
}

/// A TCP proxy to `to` that delays every byte by `one_way` in each direction, in order.
async fn delaying_proxy(to: SocketAddr, one_way: Duration) -> SocketAddr {
    let listener = TcpListener::bind(loopback())
        .await
        .expect("a proxy listener");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((near, _)) = listener.accept().await {
            let Ok(far) = TcpStream::connect(to).await else {
                continue;
            };
            let _ = (near.set_nodelay(true), far.set_nodelay(true));
            let (near_read, near_write) = near.into_split();
            let (far_read, far_write) = far.into_split();
            delay(near_read, far_write, one_way);
            delay(far_read, near_write, one_way);
        }
    });
    addr
}

/// Copies `from` to `to`, each chunk `by` after it was read.
fn delay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    by: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 || tx.send((Instant::now() + by, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
}

/// Round trips from `connect` on a device with no link yet (it dials) to the ConnectResult,
/// over TCP with `one_way` of latency each way, secure against plain.
pub async fn setup_round_trips(quick: bool) -> Vec<Row> {
    let one_way = Duration::from_millis(if quick { 5 } else { 25 });
    let rtt = (one_way * 2).as_secs_f64();
    let rounds = if quick { 1 } else { 5 };
    let mut pairs = Pairs {
        ours: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..rounds {
        for secure in [true, false] {
            // Fresh devices each time: the connect dials, opens and pairs (trust on first use).
            let tablet = TcpTransport::bind(id("tablet"), loopback())
                .await
                .expect("a listener on loopback");
            let via = delaying_proxy(tablet.local_addr().expect("an address"), one_way).await;
            let phone = TcpTransport::client(id("phone"));
            phone.add_peer(id("tablet"), via);
            let phone = Side::on(Device::new(phone, config(secure)));
            let tablet = Side::on(Device::new(tablet, config(secure)));
            let _accepting = crate::world::accept_all(&tablet.app, false);
            let start = Instant::now();
            connect(&phone.app, "tablet", "first").await;
            let round_trips = start.elapsed().as_secs_f64() / rtt;
            if secure {
                pairs.ours.push(round_trips);
            } else {
                pairs.baseline.push(round_trips);
            }
        }
    }
    let (secure, plain) = (pairs.ours_median(), pairs.baseline_median());
    vec![Row {
        measure: "dial → first ConnectResult over TCP with latency, secure".into(),
        ours: Figure::new(secure, "RTT"),
        baseline: Some(("plain".into(), Figure::new(plain, "RTT"))),
        ratio: None,
        target: "secure ≤ 3 RTT, plain ≤ 2 RTT".into(),
        met: Some(secure <= 3.05 && plain <= 2.05),
        note: format!(
            "{} ms each way; counted from `connect` on a device with no link: TCP's OPEN \
             exchange (1 RTT, both), then plain: HELLO and the request (1 RTT); secure: Noise \
             XX (1.5 RTT), the acceptor's confirmation and HELLO (0.5 RTT), the request (1 RTT)",
            one_way.as_millis()
        ),
    }]
}

/// A finished handshake between two fresh identities: the dialer's and the acceptor's ends.
fn established() -> (
    acm::secure::handshake::Established,
    acm::secure::handshake::Established,
) {
    use acm::secure::Identity;
    use acm::secure::handshake::{Handshake, prologue};
    use acm::transport::Role;
    let prologue = prologue(&id("phone"), &id("tablet"), b"");
    let key = || Identity::generate().expect("a key");
    let mut dialer = Handshake::new(&key(), Role::Dialer, &prologue).expect("a handshake");
    let mut acceptor = Handshake::new(&key(), Role::Acceptor, &prologue).expect("a handshake");
    while !dialer.is_finished() {
        let (from, to) = if dialer.is_my_turn() {
            (&mut dialer, &mut acceptor)
        } else {
            (&mut acceptor, &mut dialer)
        };
        let message = from.write_message().expect("a message");
        to.read_message(&message).expect("an honest message");
    }
    (
        dialer.finish().expect("finished"),
        acceptor.finish().expect("finished"),
    )
}

/// Sealing and opening 65 507-byte frames (the largest over default TCP) on one thread, against
/// copying the same bytes twice (the copies a record's seal and open make besides the cipher).
pub fn records(plan: crate::harness::Plan) -> Vec<Row> {
    use acm::secure::record::Counter;
    const FRAME: usize = 65_507;
    let (dialer, acceptor) = established();
    let frame = vec![0x3Cu8; FRAME];
    let (mut sending, mut receiving) = (Counter::default(), Counter::default());
    let mut copy = vec![0u8; FRAME];
    let pairs = crate::harness::pairs_sync(
        plan,
        |reps| {
            let start = Instant::now();
            for _ in 0..reps {
                let record = dialer.records.seal(&mut sending, &frame).expect("sealed");
                let opened = acceptor
                    .records
                    .open(&mut receiving, &record)
                    .expect("opened");
                std::hint::black_box(opened);
            }
            start.elapsed()
        },
        |reps| {
            let start = Instant::now();
            for _ in 0..reps {
                copy.copy_from_slice(std::hint::black_box(&frame));
                let again = std::hint::black_box(copy.clone());
                std::hint::black_box(again);
            }
            start.elapsed()
        },
    );
    let ratio = pairs.time_ratio().inverse();
    let mb = |seconds: f64| FRAME as f64 / seconds / 1e6;
    vec![Row {
        measure: "seal + open of 65 507-byte records, one thread".into(),
        ours: Figure::new(mb(pairs.ours_median()), "MB/s"),
        baseline: Some((
            "two copies of the frame".into(),
            Figure::new(mb(pairs.baseline_median()), "MB/s"),
        )),
        ratio: Some(ratio),
        target: "reported".into(),
        met: None,
        note: "ChaCha20-Poly1305 through snow: what one core spends to move a frame through the \
               secure layer both ways, which bounds a secure link's throughput"
            .into(),
    }]
}
