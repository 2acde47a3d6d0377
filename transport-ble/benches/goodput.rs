//! Goodput over Bluetooth LE on one Rootcanal medium, in one run: `send_data` of the acm session
//! API over transport-ble, against plain L2CAP CoC SDUs on the same kind of channel with no acm
//! bytes in them; and the bytes the link carries per payload byte.
//!
//! ```text
//! cargo bench -p acm-transport-ble --bench goodput              # 3 rounds of 1 MiB each way
//! cargo bench -p acm-transport-ble --bench goodput -- --rounds 5 --size 4194304
//! cargo bench -p acm-transport-ble --bench goodput -- --interval-us 50000   # another interval
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
//! Each is measured twice in the same run: **before**, with transports that ask for nothing once
//! a connection is up (`BleConfig::with_tuning(false)`: the LE 1M PHY, 27-octet PDUs, no event
//! length, 8 credits), and **after**, with transports that ask for what SPEC section 13.5 says
//! (the LE 2M PHY, the largest data length, events as long as the interval, credits sized to the
//! link). Each run's negotiated parameters are read from the sender's `AirReport` at the end of
//! its transfer, and the goodput model of `air::AirParameters::goodput_ceiling` (README,
//! "Goodput model") gives the most those parameters let 65 535-byte SDUs carry; the table shows
//! each goodput as a ratio to it.
//!
//! Rounds run raw before, acm before, raw after, acm after, each on a fresh pair of controllers;
//! the table gives the median goodput of each, and the median and range of the rounds' acm/raw
//! ratios, each acm round against the raw round of the same configuration just before it (goal:
//! acm at least 0.9 of raw). It is also written as JSON to `target/ble-goodput.json`. Nothing
//! here asserts a time: a run fails only when the controllers cannot start or the bytes arrive
//! altered.

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
use acm_transport_ble::air::{AirParameters, Phy};
use acm_transport_ble::binding::MPS;
use acm_transport_ble::{BleConfig, BleTransport, HciEndpoint};
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
    /// The connection interval the phone (the central) asks for.
    interval: Duration,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Self {
            rounds: 3,
            size: 1 << 20,
            json: Some(target_dir().join("ble-goodput.json")),
            interval: Duration::from_micros(7500),
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
                "--interval-us" => {
                    options.interval = Duration::from_micros(value("--interval-us")? as u64);
                }
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
    /// What the sender's connection ran with at the end of the transfer.
    air: Option<AirParameters>,
}

/// Before (transports that ask for nothing) or after (transports that tune their connections).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Before,
    After,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::After => "after",
        }
    }

    fn letter(self) -> char {
        match self {
            Self::Before => 'b',
            Self::After => 't',
        }
    }
}

/// Where and how a round runs: the counting proxy in front of Rootcanal, the setup, and the
/// interval the central asks for.
struct Rig<'c> {
    proxy: SocketAddr,
    counter: &'c AclCounter,
    setup: Setup,
    interval: Duration,
}

impl Rig<'_> {
    /// Two transports, a phone and a tablet named after `kind` (r or a), the setup and `round`,
    /// on fresh controllers behind the proxy, tuning their connections when the setup is
    /// [`Setup::After`].
    async fn pair(&self, kind: char, round: usize) -> (BleTransport, BleTransport) {
        if !self.counter.wait_for_no_hosts().await {
            eprintln!("warning: the last round's controllers are still connected");
        }
        let prefix = format!("{kind}{}{round}", self.setup.letter());
        let start = |name: String| async move {
            let config = BleConfig::new(common::id(&name), HciEndpoint::Tcp(self.proxy))
                .with_tuning(self.setup == Setup::After)
                .with_connection_interval(self.interval);
            BleTransport::start(config)
                .await
                .expect("the transport starts")
        };
        let tablet = start(format!("{prefix}-tablet")).await;
        let phone = start(format!("{prefix}-phone")).await;
        (phone, tablet)
    }
}

/// Waits (a few seconds at most) until a tuning sender's connection has its PHY update behind
/// it, so that the transfer is measured on what was granted; returns at once before.
async fn settle(
    report: &acm_transport_ble::air::AirReport,
    peer: &acm_transport::DeviceId,
    setup: Setup,
) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    if setup == Setup::Before {
        return;
    }
    for _ in 0..60 {
        if report.peer(peer).is_some_and(|air| air.tx_phy == Phy::Le2M) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("warning: the PHY update had not completed when the transfer started");
}

/// The raw run: the payload as 65 535-byte SDUs over a link.
async fn raw_round(rig: &Rig<'_>, round: usize, data: &Bytes) -> Sample {
    let (phone, tablet) = rig.pair('r', round).await;
    let tablet_id = tablet.local_device().clone();
    let report = phone.air_report();
    let accepting = tokio::spawn(async move {
        let link = tablet.accept().await.expect("the tablet accepts");
        (tablet, link)
    });
    let to_tablet = phone.dial(&tablet_id).await.expect("the phone dials");
    let (tablet, to_phone) = accepting.await.expect("the accept task");
    // Settle: let the channel's opening exchange (and the PHY update) finish before counting.
    settle(&report, &tablet_id, rig.setup).await;

    rig.counter.take();
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
    let link_bytes = rig.counter.take();
    let air = report.peer(&tablet_id);
    assert!(got == data[..], "the raw SDUs arrived altered");

    to_tablet.close(CloseReason::normal()).await;
    drop((to_phone, phone, tablet));
    Sample {
        seconds,
        link_bytes,
        air,
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
async fn acm_round(rig: &Rig<'_>, round: usize, data: &Bytes) -> Sample {
    let (phone, tablet) = rig.pair('a', round).await;
    let tablet_device = tablet.local_device().clone();
    let tablet_id = tablet_device.as_str().to_owned();
    let report = phone.air_report();
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
    settle(&report, &tablet_device, rig.setup).await;

    rig.counter.take();
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
    let link_bytes = rig.counter.take();
    let air = report.peer(&tablet_device);
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
        air,
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
    /// What the last round's connection ran with.
    air: Option<AirParameters>,
}

impl Summary {
    /// The most the model lets the negotiated parameters carry, in SDU bytes per second of
    /// [`RAW_SDU`]-byte SDUs.
    fn model(&self) -> Option<f64> {
        self.air.map(|air| air.goodput_ceiling(RAW_SDU, MPS))
    }

    /// The goodput as a ratio to the model.
    fn of_model(&self) -> String {
        self.model().map_or_else(
            || "-".to_owned(),
            |model| format!("{:.2}", self.goodput / model),
        )
    }
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
        air: samples.last().and_then(|s| s.air),
        rounds: samples,
    }
}

/// Each acm round against the raw round of the same setup just before it (the machine's load
/// weighs on both): the median ratio, its range, and every ratio.
fn paired_ratio(acm: &Summary, raw: &Summary) -> (f64, f64, f64, Vec<f64>) {
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
    (median(paired.clone()), low, high, paired)
}

/// The negotiated parameters in a table cell.
fn negotiated(air: Option<AirParameters>) -> String {
    match air {
        Some(air) => {
            let event = air.event_length.map_or_else(
                || "none".to_owned(),
                |e| format!("{:.1} ms", e.as_secs_f64() * 1e3),
            );
            format!(
                "{}, {} octets, interval {:.1} ms, event {event}",
                air.tx_phy.name(),
                air.max_tx_octets,
                air.interval.as_secs_f64() * 1e3
            )
        }
        None => "not reported".to_owned(),
    }
}

fn summary_json(summary: &Summary) -> String {
    let samples = summary
        .rounds
        .iter()
        .map(|s| {
            format!(
                "{{\"seconds\":{},\"link_bytes\":{}}}",
                s.seconds, s.link_bytes
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let model = summary
        .model()
        .map_or_else(|| "null".to_owned(), |m| m.to_string());
    format!(
        "{{\"goodput_bytes_per_s\":{},\"link_bytes_per_payload_byte\":{},\"negotiated\":\"{}\",\"model_bytes_per_s\":{model},\"samples\":[{samples}]}}",
        summary.goodput,
        summary.link_per_payload,
        negotiated(summary.air)
    )
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

    let setups = [Setup::Before, Setup::After];
    let summaries = runtime.block_on(async {
        let counter = Arc::new(AclCounter::default());
        let proxy = counting_proxy(hci, counter.clone()).await;
        let mut samples: Vec<(Vec<Sample>, Vec<Sample>)> = vec![(Vec::new(), Vec::new()); 2];
        for round in 0..options.rounds {
            for (setup, (raw, acm)) in setups.iter().zip(samples.iter_mut()) {
                let rig = Rig {
                    proxy,
                    counter: &counter,
                    setup: *setup,
                    interval: options.interval,
                };
                let kind = format!("raw {}", setup.name());
                let transfer = raw_round(&rig, round, &data);
                raw.push(run_round(&kind, round, options.size, transfer).await);
                let kind = format!("acm {}", setup.name());
                let transfer = acm_round(&rig, round, &data);
                acm.push(run_round(&kind, round, options.size, transfer).await);
            }
        }
        samples
            .into_iter()
            .map(|(raw, acm)| (summarize(raw, options.size), summarize(acm, options.size)))
            .collect::<Vec<_>>()
    });
    drop(runtime);
    controller.kill();

    println!(
        "\nBluetooth LE goodput on one Rootcanal medium: {} rounds of {} bytes; goodputs are \
         medians, acm/raw the median (and range) of each round's ratio; the model is the most \
         the sender's negotiated parameters let {RAW_SDU}-byte SDUs carry\n",
        options.rounds, options.size
    );
    println!(
        "| setup | negotiated (sender) | model | raw L2CAP CoC | raw/model | acm send_data | acm/model | acm/raw (goal >= 0.9) |\n|---|---|---|---|---|---|---|---|"
    );
    let mut json_setups = Vec::new();
    for (setup, (raw, acm)) in setups.iter().zip(&summaries) {
        let (ratio, low, high, paired) = paired_ratio(acm, raw);
        let met = if ratio >= 0.9 { "met" } else { "NOT met" };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {ratio:.3} ({low:.3}-{high:.3}, {met}) |",
            setup.name(),
            negotiated(raw.air),
            raw.model().map_or_else(|| "-".to_owned(), kib),
            kib(raw.goodput),
            raw.of_model(),
            kib(acm.goodput),
            acm.of_model(),
        );
        json_setups.push(format!(
            "\"{}\":{{\"raw\":{},\"acm\":{},\"ratio\":{ratio},\"paired_ratios\":{paired:?},\"goal\":0.9,\"met\":{}}}",
            setup.name(),
            summary_json(raw),
            summary_json(acm),
            ratio >= 0.9
        ));
    }
    let [(raw_before, acm_before), (raw_after, acm_after)] = &summaries[..] else {
        unreachable!("two setups");
    };
    println!(
        "\nafter/before: raw {:.3}, acm {:.3}",
        raw_after.goodput / raw_before.goodput,
        acm_after.goodput / acm_before.goodput
    );
    println!(
        "L2CAP bytes on the link per payload byte, after: acm {:.4}, raw {:.4}; acm's own bytes \
         per payload byte {:+.3} %",
        acm_after.link_per_payload,
        raw_after.link_per_payload,
        (acm_after.link_per_payload - raw_after.link_per_payload) * 100.0
    );

    if let Some(path) = options.json {
        let json = format!(
            "{{\"payload_bytes\":{},\"rounds\":{},{}}}\n",
            options.size,
            options.rounds,
            json_setups.join(",")
        );
        match std::fs::write(&path, json) {
            Ok(()) => println!("written to {}", path.display()),
            Err(e) => eprintln!("goodput: cannot write {}: {e}", path.display()),
        }
    }
}
