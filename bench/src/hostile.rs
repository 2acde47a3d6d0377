//! Hostile peers: for each family of attack of the robustness suite
//! ([`acm_conformance::robustness`]), with 1, 10, 100 and 1000 hostile connections or links,
//! the well-behaved client's time from dialing to its first echo (p50 and p99) under attack
//! against the same without it, and the attacked device's peak resident memory.
//!
//! The device under attack is this program started again as a child process
//! ([`serve_target`]): a reference device with the conformance profile on TCP loopback, secure
//! as by default, so that its memory is its own and not the attackers'. A fresh child serves
//! each attack, so that its peak (`VmHWM`) is that attack's. `--hostile-target PATH` attacks
//! `PATH peer` instead (the `acm` command of any build, such as one from before a change), so
//! that two builds are measured by the same attackers and client.
//!
//! The attackers run on a runtime of their own whose threads have the lowest priority (nice 19
//! unless `--hostile-nice` says otherwise), and the client on a thread of its own: attackers
//! would be other machines, and on a machine of two cores, attackers at the priority of the
//! device and the client take the processor from both, so that the client's times would say
//! more about the machine's scheduler than about the device. At nice 19 they still take every
//! cycle the device and the client leave.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use acm::transport::DeviceId;
use acm::{DEFAULT_MEMORY_BUDGET, Device, DeviceConfig};
use acm_conformance::profile;
use acm_conformance::robustness::attack::{self, Attack, Family, Field};
use acm_conformance::robustness::client::serve_once;
use acm_conformance::robustness::memory::Reading;
use acm_conformance::robustness::{ClientThread, quantile};
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
/// It runs on the process's main thread, as `acm peer` does, unless the argument after
/// [`SERVE_TARGET`] asks for runtime workers: with glibc's allocator, memory freed on a worker
/// thread goes back to that thread's arena, which keeps more of it than the main one (README,
/// "Hostile peers").
pub fn serve_target() -> std::process::ExitCode {
    let workers: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let built = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let Ok(runtime) = built else {
        return std::process::ExitCode::FAILURE;
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

/// Which device the hostile measures attack.
#[derive(Debug, Clone, Copy)]
pub struct Attacked<'a> {
    /// `acm peer` of this `acm` command, or (`None`) this program's own device.
    pub acm: Option<&'a Path>,
    /// For this program's own device: its runtime's workers, or 0 for the main thread alone.
    pub workers: usize,
}

/// The device under attack, as a child process.
struct Target {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Target {
    /// `device` as the device under attack.
    fn start(device: Attacked<'_>) -> Option<Self> {
        let mut command = match device.acm {
            Some(acm) => {
                let mut command = Command::new(acm);
                command.args(["peer", "--listen", "tcp://127.0.0.1:0"]);
                command
            }
            None => {
                let mut command = Command::new(std::env::current_exe().ok()?);
                command.args([SERVE_TARGET, &device.workers.to_string()]);
                command
            }
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr = Self::address(child.stdout.as_mut()?);
        match addr {
            Some(addr) => Some(Self { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// The address the child prints first: alone on its line (this program), or as
    /// `tcp://ADDR` in a sentence (`acm peer`).
    fn address(out: &mut impl std::io::Read) -> Option<std::net::SocketAddr> {
        let mut lines = BufReader::new(out);
        let mut line = String::new();
        for _ in 0..16 {
            line.clear();
            if lines.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let text = match line.split_once("tcp://") {
                Some((_, rest)) => rest.split_whitespace().next().unwrap_or(""),
                None => line.trim(),
            };
            if let Ok(addr) = text.parse() {
                return Some(addr);
            }
        }
        None
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

/// The client's times for `samples` tries, at least, over at least `window`, and how many
/// tries failed. The client runs on a thread and runtime of its own ([`ClientThread`]), so
/// that its times are not its wait behind the attackers.
async fn serve_for(
    field: &Field,
    samples: usize,
    window: Duration,
    label: &str,
) -> (Vec<Duration>, usize) {
    let Ok(client) = field.client() else {
        return (Vec::new(), samples);
    };
    let client = ClientThread::start(client);
    let began = Instant::now();
    let (mut times, mut failures) = (Vec::new(), 0);
    let mut n = 0;
    while n < samples || began.elapsed() < window {
        match client.serve(format!("{label}-{n}")).await {
            Ok(time) => times.push(time),
            Err(_) => failures += 1,
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (times, failures)
}

/// One attack against a fresh device: its row.
async fn measure(
    device: Attacked<'_>,
    attackers: &tokio::runtime::Handle,
    attack: Attack,
    samples: usize,
    window: Duration,
) -> Row {
    let name = format!(
        "hostile {}: {} link{}",
        attack.family.name(),
        attack.links,
        if attack.links == 1 { "" } else { "s" }
    );
    let failed = |why: &str| failed_row(&name, why);
    let Some(target) = Target::start(device) else {
        return failed("the device under attack did not start");
    };
    let security = acm::secure::SecureConfig::ephemeral().ok();
    let Ok(field) = Field::discover(target.addr, security).await else {
        return failed("the device under attack cannot be reached");
    };
    let (idle, _) = serve_for(&field, samples, Duration::ZERO, "idle").await;
    let started = {
        let field = field.clone();
        attackers.spawn(async move { attack::start(&field, attack).await })
    };
    let Ok(running) = started.await else {
        return failed("the attackers did not start");
    };
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
        target: TARGET.into(),
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

/// What memory comes back once many links have come and gone: `links` well-behaved links, 10
/// at a time (within the 16 openings one address may hold), each opened, with a session
/// connected and a message echoed, then closed; the device's resident memory before, at its
/// peak and 2 s after the last closed.
async fn churn(device: Attacked<'_>, links: usize) -> Row {
    let name = format!("hostile link-churn: {links} links opened and closed");
    let target_text = "reported: memory that does not come back";
    let reported = |note: String, value: f64| Row {
        measure: name.clone(),
        ours: Figure::new(value, "MiB"),
        baseline: None,
        ratio: None,
        target: target_text.into(),
        met: None,
        note,
    };
    let Some(target) = Target::start(device) else {
        return reported("the device did not start".into(), 0.0);
    };
    let security = acm::secure::SecureConfig::ephemeral().ok();
    let Ok(field) = Field::discover(target.addr, security).await else {
        return reported("the device cannot be reached".into(), 0.0);
    };
    let before = target.memory().unwrap_or_default();
    let mut failures = 0;
    for batch in 0..links.div_ceil(10) {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..10.min(links - batch * 10) {
            let field = field.clone();
            let id = batch * 10 + n;
            tasks.spawn(async move {
                let reach = acm_conformance::robustness::client::reach(
                    field.addr,
                    &field.iut,
                    &format!("acm-churn-{id}"),
                    field.security.clone(),
                )
                .ok()?;
                serve_once(&reach, "churn").await.ok()
            });
        }
        while let Some(done) = tasks.join_next().await {
            if !matches!(done, Ok(Some(_))) {
                failures += 1;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = target.memory().unwrap_or_default();
    let mib = |kib: u64| kib as f64 / 1024.0;
    reported(
        format!(
            "device RSS before {:.0} MiB, peak {:.0} MiB, after {:.0} MiB; {failures} links failed",
            mib(before.rss_kib),
            mib(after.peak_kib),
            mib(after.rss_kib)
        ),
        mib(after.rss_kib.saturating_sub(before.rss_kib)),
    )
}

/// Every family at 1, 10, 100 and 1000 hostile links (only 1 in a quick run, or the `sizes`
/// given), then link churn; against `device`.
pub async fn hostile(
    quick: bool,
    device: Attacked<'_>,
    sizes: Option<&[usize]>,
    nice: i32,
    families: Option<&[String]>,
) -> Vec<Row> {
    let families: Vec<Family> = match families {
        None => Family::ALL.to_vec(),
        Some(names) => {
            let chosen: Option<Vec<Family>> =
                names.iter().map(|name| Family::from_name(name)).collect();
            match chosen {
                Some(chosen) => chosen,
                None => {
                    let known: Vec<&str> = Family::ALL.iter().map(|f| f.name()).collect();
                    return vec![failed_row(
                        "hostile",
                        &format!(
                            "unknown attack family in {names:?}; they are {}",
                            known.join(", ")
                        ),
                    )];
                }
            }
        }
    };
    let attackers = match attackers_runtime(nice) {
        Ok(runtime) => runtime,
        Err(err) => {
            return vec![failed_row(
                "hostile",
                &format!("the attackers' runtime did not start: {err}"),
            )];
        }
    };
    let rows = hostile_on(quick, device, sizes, &families, attackers.handle()).await;
    attackers.shutdown_background();
    rows
}

/// The attackers' runtime: a worker a core, every thread at `nice` (19: the lowest priority).
fn attackers_runtime(nice: i32) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("acm-bench-attacker")
        .on_thread_start(move || lower_priority(nice))
        .enable_all()
        .build()
}

/// Gives the calling thread the nice value `nice` (on Linux, a thread's own: `setpriority`
/// with no pid sets the calling thread's). Left as it is where that is refused.
fn lower_priority(nice: i32) {
    #[cfg(unix)]
    if nice != 0 {
        let _ = rustix::process::setpriority_process(None, nice);
    }
    #[cfg(not(unix))]
    let _ = nice;
}

/// A row that says why a measure could not be made.
fn failed_row(measure: &str, why: &str) -> Row {
    Row {
        measure: measure.to_string(),
        ours: Figure::new(0.0, "ms"),
        baseline: None,
        ratio: None,
        target: TARGET.into(),
        met: Some(false),
        note: why.to_string(),
    }
}

/// What each attack's row is held to.
const TARGET: &str = "served; p99 ≤ 10× idle; peak RSS ≤ budget + 32 MiB";

async fn hostile_on(
    quick: bool,
    device: Attacked<'_>,
    sizes: Option<&[usize]>,
    families: &[Family],
    attackers: &tokio::runtime::Handle,
) -> Vec<Row> {
    let sizes: &[usize] = match sizes {
        Some(sizes) => sizes,
        None if quick => &[1],
        None => &[1, 10, 100, 1000],
    };
    let samples = if quick { 3 } else { 40 };
    let mut rows = Vec::new();
    for &family in families {
        for &links in sizes {
            let mut attack = Attack::new(family, links);
            // Not 4 million requests: 40 000 in all at most, as the suite's ten links send.
            attack.requests = (40_000 / links).min(4000);
            // The declared transfers admitted are filled to nearly their 100 MiB.
            attack.fill = if quick { 1 << 20 } else { 96 << 20 };
            // The request flood is measured while its requests expire, after the 20 s the
            // responder waits; the others for 3 s.
            let window = match (quick, family) {
                (true, _) => Duration::from_millis(500),
                (false, Family::RequestFlood) => family.measured_for(),
                (false, _) => Duration::from_secs(3),
            };
            eprintln!("acm-bench: hostile {} × {links}", family.name());
            rows.push(measure(device, attackers, attack, samples, window).await);
        }
    }
    eprintln!("acm-bench: hostile link churn");
    rows.push(churn(device, if quick { 100 } else { 2000 }).await);
    rows
}
