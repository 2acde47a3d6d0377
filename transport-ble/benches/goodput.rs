//! Goodput over Bluetooth LE on one Rootcanal medium, in one run: `send_data` of the acm session
//! API over transport-ble, against plain L2CAP CoC SDUs on the same kind of channel with no acm
//! bytes in them; and the bytes the link carries per payload byte.
//!
//! ```text
//! cargo bench -p acm-transport-ble --bench goodput              # 3 rounds of 1 MiB each way
//! cargo bench -p acm-transport-ble --bench goodput -- --rounds 5 --size 4194304
//! cargo test  -p acm-transport-ble --bench goodput -- --quick   # a smoke run (debug build)
//! ```
//!
//! What is measured:
//!
//! * **raw L2CAP CoC**: a [`BleLink`](acm_transport_ble::BleLink) between two transports, the
//!   payload sent as SDUs of the largest size the channel takes (65 535 bytes), none of them an
//!   acm frame. A link adds nothing to an SDU on the air (SPEC `BLE-3`): this is the channel
//!   itself, with the same MTU, MPS and credits as acm's traffic, and the same host stack.
//! * **acm send_data**: two `acm::Device`s on two transports with a connected session; the phone
//!   calls `send_data` with the payload and the time runs until the tablet's app has the `Data`
//!   event (so it includes DATA framing, the engine, reassembly and delivery).
//! * **bytes on the link**: every HCI ACL payload byte either host hands its controller during
//!   the transfer (L2CAP PDUs: the SDUs, their K-frame headers, credit packets, acm's frames),
//!   counted by a proxy between each host and Rootcanal, divided by the payload bytes. The link
//!   layer's own framing (preamble, access address, header, CRC) is the same for both and not
//!   counted.
//!
//! Rounds alternate raw and acm, each on a fresh pair of controllers; the table gives the median
//! goodput of each, and the median and range of the rounds' acm/raw ratios, each acm round
//! against the raw round just before it (goal: acm at least 0.9 of raw). It is also written as
//! JSON to `target/ble-goodput.json`. Nothing here asserts a time: a run fails only when the
//! controllers cannot start or the bytes arrive altered.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use acm::{
    AbilityConnectionManager, CollaborateRequest, CollaborateResult, ConnectOptions, Context,
    Device, DeviceConfig, Event, PeerInfo,
};
use acm_transport::{CloseReason, Transport};
use acm_transport_ble::{BleTransport, HciEndpoint};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BUNDLE: &str = "com.example.bench";
const SERVICE: &str = "goodput";
/// The SDU size of the raw run: the largest an L2CAP SDU can be.
const RAW_SDU: usize = acm_transport_ble::MAX_FRAME_SIZE;
/// The longest a round may take before the run gives up.
const ROUND_LIMIT: Duration = Duration::from_secs(600);

/// What the run was asked to do.
struct Options {
    rounds: usize,
    size: usize,
    json: Option<std::path::PathBuf>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            rounds: 3,
            size: 1 << 20,
            json: Some(target_dir().join("ble-goodput.json")),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| {
                args.next()
                    .and_then(|v| v.parse::<usize>().ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{name} takes a positive number"))
            };
            match arg.as_str() {
                "--quick" => {
                    options.rounds = 1;
                    options.size = 64 << 10;
                    options.json = None;
                }
                "--rounds" => options.rounds = value("--rounds")?,
                "--size" => options.size = value("--size")?,
                // What cargo passes to every bench target.
                "--bench" => {}
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(options)
    }
}

fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Counts the HCI ACL payload bytes hosts send their controllers, and the hosts connected.
#[derive(Default)]
struct AclCounter {
    bytes: AtomicU64,
    hosts: AtomicU64,
}

impl AclCounter {
    fn take(&self) -> u64 {
        self.bytes.swap(0, Ordering::Relaxed)
    }

    /// Waits (up to a few seconds) until no host is connected: a round starts with only its own
    /// controllers on the medium. Says whether that happened.
    async fn wait_for_no_hosts(&self) -> bool {
        for _ in 0..200 {
            if self.hosts.load(Ordering::Relaxed) == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

/// Reads H4 packets from `from`, forwards them to `to` unchanged, and adds the payload length of
/// every ACL packet to `counter`.
async fn forward_counting(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AclCounter>,
) -> std::io::Result<()> {
    let mut packet = Vec::with_capacity(1 << 16);
    loop {
        let mut kind = [0u8; 1];
        if from.read(&mut kind).await? == 0 {
            return Ok(());
        }
        // The header after the packet type, and where its length field is.
        let (header_len, length): (usize, fn(&[u8]) -> usize) = match kind[0] {
            0x01 => (3, |h| usize::from(h[2])),
            0x02 => (4, |h| usize::from(u16::from_le_bytes([h[2], h[3]]))),
            0x03 => (3, |h| usize::from(h[2])),
            0x05 => (4, |h| {
                usize::from(u16::from_le_bytes([h[2], h[3]]) & 0x3FFF)
            }),
            other => {
                return Err(std::io::Error::other(format!(
                    "H4 packet type {other:#04x} from a host"
                )));
            }
        };
        packet.clear();
        packet.push(kind[0]);
        packet.resize(1 + header_len, 0);
        from.read_exact(&mut packet[1..]).await?;
        let body = length(&packet[1..]);
        packet.resize(1 + header_len + body, 0);
        from.read_exact(&mut packet[1 + header_len..]).await?;
        if kind[0] == 0x02 {
            counter.bytes.fetch_add(body as u64, Ordering::Relaxed);
        }
        to.write_all(&packet).await?;
    }
}

/// A proxy in front of Rootcanal's HCI port: each connection gets its own controller behind
/// it, and the ACL bytes its host sends are counted.
async fn counting_proxy(upstream: SocketAddr, counter: Arc<AclCounter>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port for the proxy");
    let address = listener.local_addr().expect("the proxy's address");
    tokio::spawn(async move {
        while let Ok((host, _)) = listener.accept().await {
            let Ok(controller) = TcpStream::connect(upstream).await else {
                continue;
            };
            let _ = host.set_nodelay(true);
            let _ = controller.set_nodelay(true);
            let (host_read, mut host_write) = host.into_split();
            let (mut controller_read, controller_write) = controller.into_split();
            let counter = counter.clone();
            counter.hosts.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = forward_counting(host_read, controller_write, counter.clone()).await;
                counter.hosts.fetch_sub(1, Ordering::Relaxed);
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut controller_read, &mut host_write).await;
            });
        }
    });
    address
}

/// A payload whose bytes differ from their neighbours and never start an SDU with the binding's
/// reserved header.
fn payload(size: usize) -> Bytes {
    (0..size as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 1)
        .collect::<Vec<u8>>()
        .into()
}

/// One measured transfer.
#[derive(Clone, Copy)]
struct Sample {
    seconds: f64,
    link_bytes: u64,
}

/// Two transports, "{prefix}-phone" and "{prefix}-tablet", on fresh controllers behind one
/// counting proxy.
async fn pair(
    proxy: SocketAddr,
    counter: &AclCounter,
    prefix: &str,
) -> (BleTransport, BleTransport) {
    if !counter.wait_for_no_hosts().await {
        eprintln!("warning: the last round's controllers are still connected");
    }
    let tablet = common::transport(&format!("{prefix}-tablet"), HciEndpoint::Tcp(proxy)).await;
    let phone = common::transport(&format!("{prefix}-phone"), HciEndpoint::Tcp(proxy)).await;
    (phone, tablet)
}

/// The raw run: the payload as 65 535-byte SDUs over a link.
async fn raw_round(proxy: SocketAddr, counter: &AclCounter, round: usize, data: &Bytes) -> Sample {
    let (phone, tablet) = pair(proxy, counter, &format!("r{round}")).await;
    let tablet_id = tablet.local_device().clone();
    let accepting = tokio::spawn(async move {
        let link = tablet.accept().await.expect("the tablet accepts");
        (tablet, link)
    });
    let to_tablet = phone.dial(&tablet_id).await.expect("the phone dials");
    let (tablet, to_phone) = accepting.await.expect("the accept task");
    // Settle: let the channel's opening exchange finish before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;

    counter.take();
    let start = Instant::now();
    let sending = async {
        for chunk in data.chunks(RAW_SDU) {
            to_tablet
                .send(data.slice_ref(chunk))
                .await
                .expect("an SDU goes out");
        }
    };
    let receiving = async {
        let mut got = Vec::with_capacity(data.len());
        while got.len() < data.len() {
            got.extend_from_slice(&to_phone.recv().await.expect("an SDU arrives"));
        }
        got
    };
    let ((), got) = tokio::join!(sending, receiving);
    let seconds = start.elapsed().as_secs_f64();
    let link_bytes = counter.take();
    assert!(got == data[..], "the raw SDUs arrived altered");

    to_tablet.close(CloseReason::normal()).await;
    drop((to_phone, phone, tablet));
    Sample {
        seconds,
        link_bytes,
    }
}

fn context() -> Context {
    Context::new(BUNDLE, "entry", "EntryAbility")
}

/// Registers an ability that accepts every request; the accepted session's events come out of
/// the returned channel.
fn accept_all(app: &AbilityConnectionManager) -> tokio::sync::oneshot::Receiver<acm::EventStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let manager = app.clone();
    app.register_ability(
        "entry",
        "EntryAbility",
        move |request: CollaborateRequest| {
            let manager = manager.clone();
            let tx = tx.lock().ok().and_then(|mut tx| tx.take());
            tokio::spawn(async move {
                let session = manager
                    .create_ability_connection_session(
                        &request.peer_info.service_name,
                        &context(),
                        request.peer_info.clone(),
                        request.connect_options.clone(),
                    )
                    .expect("the tablet's session");
                let events = manager.events(session).expect("the tablet's events");
                manager
                    .accept_connect(session, &request.token)
                    .await
                    .expect("the tablet accepts");
                if let Some(tx) = tx {
                    let _ = tx.send(events);
                }
            });
            CollaborateResult::Accept
        },
    );
    rx
}

/// The acm run: `send_data` of the payload on a connected session.
async fn acm_round(proxy: SocketAddr, counter: &AclCounter, round: usize, data: &Bytes) -> Sample {
    let (phone, tablet) = pair(proxy, counter, &format!("a{round}")).await;
    let tablet_id = tablet.local_device().as_str().to_owned();
    let config = DeviceConfig::default();
    let phone = Device::new(phone, config.clone());
    let tablet = Device::new(tablet, config);
    let phone_app = phone.manager(&context());
    let tablet_app = tablet.manager(&context());
    let accepted = accept_all(&tablet_app);

    let peer = PeerInfo::new(&tablet_id, BUNDLE, "entry", "EntryAbility");
    let session = phone_app
        .create_ability_connection_session(SERVICE, &context(), peer, ConnectOptions::default())
        .expect("the phone's session");
    let result = phone_app.connect(session).await.expect("connect works");
    assert!(result.is_connected, "the tablet refused: {result:?}");
    let mut events = accepted.await.expect("the tablet's session");
    tokio::time::sleep(Duration::from_millis(200)).await;

    counter.take();
    let start = Instant::now();
    let sending = phone_app.send_data(session, data.clone());
    let receiving = async {
        loop {
            match events.next().await {
                Some(Event::Data { data, .. }) => return data,
                Some(_) => {}
                None => panic!("the tablet's session ended before the data came"),
            }
        }
    };
    let (sent, got) = tokio::join!(sending, receiving);
    let seconds = start.elapsed().as_secs_f64();
    let link_bytes = counter.take();
    sent.expect("send_data works");
    assert!(got == data, "the data arrived altered");

    if let Err(e) = phone_app.disconnect(session) {
        eprintln!("the session ended during the transfer ({e}); its events:");
        let mut phone_events = phone_app.events(session).ok();
        while let Some(Ok(Some(event))) = match phone_events.as_mut() {
            Some(events) => {
                Some(tokio::time::timeout(Duration::from_millis(100), events.next()).await)
            }
            None => None,
        } {
            eprintln!("  {event:?}");
        }
    }
    phone.shutdown();
    tablet.shutdown();
    drop((phone_app, tablet_app, phone, tablet));
    Sample {
        seconds,
        link_bytes,
    }
}

/// Runs one round within [`ROUND_LIMIT`] and says how it went.
async fn run_round(
    kind: &str,
    round: usize,
    size: usize,
    transfer: impl std::future::Future<Output = Sample>,
) -> Sample {
    let sample = tokio::time::timeout(ROUND_LIMIT, transfer)
        .await
        .unwrap_or_else(|_| panic!("the {kind} round did not finish in time"));
    eprintln!(
        "round {}: {kind} {} ({:.2} s)",
        round + 1,
        kib(size as f64 / sample.seconds),
        sample.seconds
    );
    sample
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// What one kind of run measured, over all rounds.
struct Summary {
    goodput: f64,
    link_per_payload: f64,
    rounds: Vec<Sample>,
}

fn summarize(samples: Vec<Sample>, size: usize) -> Summary {
    let goodput = median(samples.iter().map(|s| size as f64 / s.seconds).collect());
    let link_per_payload = median(
        samples
            .iter()
            .map(|s| s.link_bytes as f64 / size as f64)
            .collect(),
    );
    Summary {
        goodput,
        link_per_payload,
        rounds: samples,
    }
}

fn kib(bytes_per_second: f64) -> String {
    format!("{:.1} KiB/s", bytes_per_second / 1024.0)
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("goodput: {e}");
            std::process::exit(2);
        }
    };
    // Fail loudly when the controller cannot start: a benchmark that skips measures nothing.
    let mut controller = match common::rootcanal() {
        Ok(controller) => controller,
        Err(e) => {
            eprintln!("goodput: cannot start rootcanal: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let data = payload(options.size);
    let hci = match controller.hci(0) {
        HciEndpoint::Tcp(address) => address,
        other => panic!("rootcanal serves TCP, not {other:?}"),
    };

    let (raw, acm) = runtime.block_on(async {
        let counter = Arc::new(AclCounter::default());
        let proxy = counting_proxy(hci, counter.clone()).await;
        let (mut raw, mut acm) = (Vec::new(), Vec::new());
        for round in 0..options.rounds {
            let sample = run_round(
                "raw",
                round,
                options.size,
                raw_round(proxy, &counter, round, &data),
            )
            .await;
            raw.push(sample);
            let sample = run_round(
                "acm",
                round,
                options.size,
                acm_round(proxy, &counter, round, &data),
            )
            .await;
            acm.push(sample);
        }
        (summarize(raw, options.size), summarize(acm, options.size))
    });
    drop(runtime);
    controller.kill();

    // Each acm round against the raw round just before it: the machine's load weighs on both.
    let paired: Vec<f64> = acm
        .rounds
        .iter()
        .zip(&raw.rounds)
        .map(|(acm, raw)| raw.seconds / acm.seconds)
        .collect();
    let (low, high) = paired
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(*r), hi.max(*r))
        });
    let ratio = median(paired.clone());
    let met = if ratio >= 0.9 { "met" } else { "NOT met" };
    println!(
        "\nBluetooth LE goodput on one Rootcanal medium: {} rounds of {} bytes; goodputs are \
         medians, the ratio the median (and range) of each round's acm/raw\n",
        options.rounds, options.size
    );
    println!("| measure | acm send_data | raw L2CAP CoC | ratio | goal |\n|---|---|---|---|---|");
    println!(
        "| goodput | {} | {} | {ratio:.3} ({low:.3}-{high:.3}) | >= 0.9 ({met}) |",
        kib(acm.goodput),
        kib(raw.goodput)
    );
    println!(
        "| L2CAP bytes on the link per payload byte | {:.4} | {:.4} | {:.4} | - |",
        acm.link_per_payload,
        raw.link_per_payload,
        acm.link_per_payload / raw.link_per_payload
    );
    println!(
        "\nacm's own bytes per payload byte (over raw): {:.4} ({:+.3} %)",
        acm.link_per_payload - raw.link_per_payload,
        (acm.link_per_payload - raw.link_per_payload) * 100.0
    );

    if let Some(path) = options.json {
        let rounds = |summary: &Summary| {
            summary
                .rounds
                .iter()
                .map(|s| {
                    format!(
                        "{{\"seconds\":{},\"link_bytes\":{}}}",
                        s.seconds, s.link_bytes
                    )
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let json = format!(
            "{{\"payload_bytes\":{},\"rounds\":{},\"acm\":{{\"goodput_bytes_per_s\":{},\"link_bytes_per_payload_byte\":{},\"samples\":[{}]}},\"raw\":{{\"goodput_bytes_per_s\":{},\"link_bytes_per_payload_byte\":{},\"samples\":[{}]}},\"ratio\":{},\"paired_ratios\":{:?},\"goal\":0.9,\"met\":{}}}\n",
            options.size,
            options.rounds,
            acm.goodput,
            acm.link_per_payload,
            rounds(&acm),
            raw.goodput,
            raw.link_per_payload,
            rounds(&raw),
            ratio,
            paired,
            ratio >= 0.9
        );
        match std::fs::write(&path, json) {
            Ok(()) => println!("written to {}", path.display()),
            Err(e) => eprintln!("goodput: cannot write {}: {e}", path.display()),
        }
    }
}
