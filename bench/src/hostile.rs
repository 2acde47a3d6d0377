//! Hostile peers: for each family of attack of the robustness suite
//! ([`acm_conformance::robustness`]), with 1, 10, 100 and 1000 hostile connections or links,
//! the well-behaved client's time from dialing to its first echo (p50 and p99) under attack
//! against the same without it, and the attacked device's peak resident memory.
//!
//! The device under attack is this program started again as a child process
//! ([`serve_target`]): a reference device with the conformance profile on TCP loopback, secure
//! as by default, so that its memory is its own and not the attackers'. A fresh child serves
//! each attack, so that its peak (`VmHWM`) is that attack's.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acm::transport::DeviceId;
use acm::{DEFAULT_MEMORY_BUDGET, Device, DeviceConfig};
use acm_conformance::profile;
use acm_conformance::robustness::attack::{self, Attack, Family, Field};
use acm_conformance::robustness::client::serve_once;
use acm_conformance::robustness::memory::Reading;
use acm_conformance::robustness::quantile;
use acm_transport_tcp::TcpTransport;
use tokio::time::Instant;

use crate::report::{Figure, Row};

/// The argument that makes this program the device under attack.
pub const SERVE_TARGET: &str = "--serve-hostile-target";

/// The goal for the peak resident memory: the device's budget and 32 MiB.
const RSS_GOAL_KIB: u64 = (DEFAULT_MEMORY_BUDGET >> 10) + 32 * 1024;

/// The goal for the client's p99 under attack, as a multiple of its p99 without it.
const P99_GOAL: f64 = 10.0;

/// Runs the device under attack until its parent ends it: prints its address, then serves.
pub fn serve_target() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(_) => return std::process::ExitCode::FAILURE,
    };
    runtime.block_on(async {
        let id = DeviceId::new("acm-hostile-target").expect("a valid id");
        let Ok(transport) = TcpTransport::bind(id, ([127, 0, 0, 1], 0).into()).await else {
            return std::process::ExitCode::FAILURE;
        };
        let Some(addr) = transport.local_addr() else {
            return std::process::ExitCode::FAILURE;
        };
        let device = Device::new(transport, DeviceConfig::default());
        let _profile = profile::install(&device);
        println!("{addr}");
        // Until the parent kills it, or closes its input.
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await;
        std::process::ExitCode::SUCCESS
    })
}

/// The device under attack, as a child process.
struct Target {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Target {
    fn start() -> Option<Self> {
        let exe: PathBuf = std::env::current_exe().ok()?;
        let mut child = Command::new(exe)
            .arg(SERVE_TARGET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut()?)
            .read_line(&mut line)
            .ok()?;
        let addr = line.trim().parse().ok()?;
        Some(Self { child, addr })
    }

    fn memory(&self) -> Option<Reading> {
        Reading::of_process(&PathBuf::from(format!("/proc/{}/status", self.child.id())))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client's times for `samples` tries, at least, over at least `window`.
async fn serve_for(
    field: &Field,
    samples: usize,
    window: Duration,
    label: &str,
) -> (Vec<Duration>, usize) {
    let Ok(client) = field.client() else {
        return (Vec::new(), samples);
    };
    let began = Instant::now();
    let (mut times, mut failures) = (Vec::new(), 0);
    let mut n = 0;
    while n < samples || began.elapsed() < window {
        let service = format!("{label}-{n}");
        match tokio::time::timeout(Duration::from_secs(20), serve_once(&client, &service)).await {
            Ok(Ok(time)) => times.push(time),
            _ => failures += 1,
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (times, failures)
}

/// One attack against a fresh device: its row.
async fn measure(attack: Attack, samples: usize, window: Duration) -> Row {
    let name = format!(
        "hostile {}: {} link{}",
        attack.family.name(),
        attack.links,
        if attack.links == 1 { "" } else { "s" }
    );
    let failed = |why: &str| Row {
        measure: name.clone(),
        ours: Figure::new(0.0, "ms"),
        baseline: None,
        ratio: None,
        target: "served; p99 ≤ 10× idle; peak RSS ≤ budget + 32 MiB".into(),
        met: Some(false),
        note: why.to_string(),
    };
    let Some(target) = Target::start() else {
        return failed("the device under attack did not start");
    };
    let security = acm::secure::SecureConfig::ephemeral().ok();
    let Ok(field) = Field::discover(target.addr, security).await else {
        return failed("the device under attack cannot be reached");
    };
    let (idle, _) = serve_for(&field, samples, Duration::ZERO, "idle").await;
    let running = attack::start(&field, attack).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (attacked, failures) = serve_for(&field, samples, window, "attacked").await;
    let observed = running.stop().await;
    let peak_kib = target.memory().map_or(0, |m| m.peak_kib);
    drop(target);
    let p = |times: &[Duration], q| quantile(times, q).map_or(f64::NAN, |t| t.as_secs_f64() * 1e3);
    let (idle_p50, idle_p99) = (p(&idle, 0.5), p(&idle, 0.99));
    let (p50, p99) = (p(&attacked, 0.5), p(&attacked, 0.99));
    let ratio = p99 / idle_p99;
    let met =
        failures == 0 && !attacked.is_empty() && ratio <= P99_GOAL && peak_kib <= RSS_GOAL_KIB;
    Row {
        measure: name,
        ours: Figure::new(p99, "ms"),
        baseline: Some(("idle p99".into(), Figure::new(idle_p99, "ms"))),
        ratio: None,
        target: "served; p99 ≤ 10× idle; peak RSS ≤ budget + 32 MiB".into(),
        met: Some(met),
        note: format!(
            "p99 {ratio:.1}× idle; p50 {p50:.1} ms (idle {idle_p50:.1} ms); {} served, {failures} not; \
             device peak RSS {:.0} MiB; attackers refused at once: {}",
            attacked.len(),
            peak_kib as f64 / 1024.0,
            observed.refused
        ),
    }
}

/// Every family at 1, 10, 100 and 1000 hostile links (only 1 in a quick run).
pub async fn hostile(quick: bool) -> Vec<Row> {
    let sizes: &[usize] = if quick { &[1] } else { &[1, 10, 100, 1000] };
    let samples = if quick { 3 } else { 40 };
    let mut rows = Vec::new();
    for family in Family::ALL {
        for &links in sizes {
            let mut attack = Attack::new(family, links);
            // Not 4 million requests: 40 000 in all at most, as the suite's ten links send.
            attack.requests = (40_000 / links).min(4000);
            // The declared transfers admitted are filled to nearly their 100 MiB.
            attack.fill = if quick { 1 << 20 } else { 96 << 20 };
            let window = if quick {
                Duration::from_millis(500)
            } else {
                family.measured_for()
            };
            eprintln!("acm-bench: hostile {} × {links}", family.name());
            rows.push(measure(attack, samples, window).await);
        }
    }
    rows
}
