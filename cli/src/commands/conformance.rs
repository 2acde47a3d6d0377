//! `acm conformance`: run the conformance suites against the reference implementation or any
//! other; `acm peer`: run the reference implementation for others to test against.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acm::secure::SecureConfig;
use acm::transport::DeviceId;
use acm::{Device, Security};
use acm_conformance::profile::{self, Timers};
use acm_conformance::protocol::{
    self, ProtocolSuiteConfig, reference_factory, run_protocol_suite, run_wire_scenarios, script,
    wire_factory,
};
use acm_conformance::transport_suite::factories::MockFactory;
use acm_conformance::transport_suite::{cases as transport_cases, run_transport_case};
use acm_conformance::wire::{
    CarriesNoData, ReferenceRun, TcpTarget, WireTarget, run_reference_with, run_wire_suite_where,
    runtime,
};
use acm_conformance::{CaseResult, Expectations, Report, Verdict, coverage, robustness, wire};
use acm_transport_tcp::{TcpConfig, TcpTransport};

use super::case_logs::CaseLogs;
use super::reach::{BleSuite, BleSuiteOptions, HciArgs, Target};
use crate::capture::{Recorder, file_name};
use crate::common::tcp_address;

/// The options of `acm peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// The transport: tcp, listening where --listen says, or ble, on the controller --hci
    /// names, advertising the device id and accepting links (SPEC section 13).
    #[arg(long, value_enum, default_value = "tcp")]
    transport: PeerTransport,
    /// With --transport tcp: where to listen, as tcp://HOST:PORT (port 0 picks a free one; the
    /// address is printed).
    #[arg(long)]
    listen: Option<String>,
    /// The Bluetooth controller, with --transport ble.
    #[command(flatten)]
    hci: HciArgs,
    /// This device's id (over Bluetooth LE, at most 29 bytes: it is advertised).
    #[arg(long, default_value = "acm-reference-peer")]
    device_id: String,
    /// Plain links, without the secure layer (by default the peer is secure, with a random
    /// identity for the run, and trusts every device on first use: SPEC section 15).
    #[arg(long)]
    insecure: bool,
    /// Run with the profile's short timers (SPEC section 15: HELLO wait, OPEN wait and handshake
    /// 1 s, responder 2 s, keepalive 2 s), for runs with `acm conformance --short-timers`.
    #[arg(long)]
    short_timers: bool,
    /// Declare that this device's transport cannot carry data (SESS-3, DATA-8), for runs with
    /// `acm conformance --no-data`.
    #[arg(long)]
    no_data: bool,
    /// Write the peer's memory to FILE every 100 ms (`rss_kib=N peak_kib=N data_bytes=N`), for
    /// `acm conformance --robustness --memory-from FILE`.
    #[arg(long, value_name = "FILE")]
    report_memory: Option<PathBuf>,
}

/// The transports `acm peer` runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerTransport {
    /// TCP (SPEC section 14).
    Tcp,
    /// Bluetooth LE (SPEC section 13).
    Ble,
}

/// The options of `acm conformance`.
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// Test the implementation that runs the conformance profile at tcp://HOST:PORT, or at
    /// ble:DEVICE-ID (a device advertising over Bluetooth LE, found by scanning with the
    /// controller --hci names), instead of the reference implementation over the mock
    /// transport.
    #[arg(long, value_name = "tcp://HOST:PORT|ble:DEVICE-ID")]
    target: Option<String>,
    /// The suite's Bluetooth controller, with a ble: target.
    #[command(flatten)]
    hci: HciArgs,
    /// The target's transport cannot carry data (cases that need a transport that carries data
    /// report unsupported; the cases about one that does not run).
    #[arg(long)]
    no_data: bool,
    /// The target runs the profile's short timers (SPEC section 15); timer cases measure
    /// against them.
    #[arg(long)]
    short_timers: bool,
    /// Test the implementation as a plain one, without the secure layer (SPEC section 17); by
    /// default the suite runs the secure layer and trusts the target on first use.
    #[arg(long)]
    insecure: bool,
    /// The suite's own device id on the target's network.
    #[arg(long, default_value = "acm-conformance-suite")]
    suite_id: String,
    /// Only the cases whose id contains this text (text that matches no case is an error).
    #[arg(long, default_value = "")]
    cases: String,
    /// With --target: leave out the cases whose id contains TEXT (repeatable), for cases known
    /// to break a target's run beyond their own verdict (say why in the file that runs it).
    #[arg(long, value_name = "TEXT", requires = "target")]
    skip: Vec<String>,
    /// A file of known failures, one `CASE-ID reason` per line.
    #[arg(long)]
    expectations: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the report as JUnit XML to this file.
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Random sequences tried per property of the protocol suite (reference implementation
    /// only).
    #[arg(long, default_value_t = 64)]
    protocol_cases: u32,
    /// With --target: random scenarios to run after the wire cases (SPEC section 15.1: the
    /// suite plays one device over real links and drives the target's scenario app); 0 runs
    /// none. A failure shrinks to a minimal sequence of steps, printed with its seed.
    #[arg(long, default_value_t = protocol::DEFAULT_SCENARIOS, requires = "target")]
    scenarios: u32,
    /// The most steps of one random scenario.
    #[arg(long, default_value_t = 40)]
    scenario_steps: usize,
    /// Replay the steps of FILE (as a failing scenario prints them: `case ID`, then one step a
    /// line) against the --target, or against the reference implementation without one, and
    /// say whether they pass.
    #[arg(long, value_name = "FILE", conflicts_with = "robustness")]
    replay: Option<PathBuf>,
    /// Print only failures and the summary. The logs of the implementation are shown under
    /// the verdict of a failing case; with -v, under every case.
    #[arg(long, short)]
    quiet: bool,
    /// Run the robustness suite against the --target instead of the wire suite: attackers,
    /// and a well-behaved device that must be served meanwhile.
    #[arg(long, requires = "target")]
    robustness: bool,
    /// With --robustness: the file where the target writes statistics of its memory (as
    /// `acm peer --report-memory FILE` does), shown for each attack.
    #[arg(long, value_name = "FILE", requires = "robustness")]
    memory_from: Option<PathBuf>,
    /// With --target: reach the target through a recorder and keep a capture of every failing
    /// case, DIR/CASE.pcapng (one packet per frame; tools/wireshark/ reads it).
    #[arg(
        long,
        value_name = "DIR",
        requires = "target",
        conflicts_with = "robustness"
    )]
    pcap: Option<PathBuf>,
}

/// Runs `acm peer`.
pub fn peer(args: &PeerArgs) -> ExitCode {
    let result = (|| {
        let id = DeviceId::new(args.device_id.clone()).map_err(|e| format!("--device-id: {e}"))?;
        let timers = if args.short_timers {
            Timers::SHORT
        } else {
            Timers::SPEC
        };
        runtime(false)?.block_on(async move {
            let mut settings = profile::device_config(timers);
            if args.insecure {
                settings = settings.with_security(Security::Insecure);
            }
            let (device, place) = match args.transport {
                PeerTransport::Tcp => {
                    args.hci.refuse("--transport ble")?;
                    let listen = args
                        .listen
                        .as_deref()
                        .ok_or("--transport tcp needs --listen tcp://HOST:PORT")?;
                    let addr = tcp_address(listen)?;
                    let config = TcpConfig::new().with_open_timeout(timers.open);
                    let transport = TcpTransport::bind_with(id.clone(), addr, config)
                        .await
                        .map_err(|e| crate::common::cannot_listen(&format!("tcp://{addr}"), e))?;
                    let local = transport
                        .local_addr()
                        .ok_or("the listener has no address")?;
                    let device = profile_device(transport, args.no_data, settings);
                    (device, format!("listening on tcp://{local}"))
                }
                PeerTransport::Ble => {
                    if args.listen.is_some() {
                        return Err("--listen goes with --transport tcp: over Bluetooth LE the peer advertises its device id".into());
                    }
                    let transport = args.hci.start(id.clone(), true).await?;
                    let device = profile_device(transport, args.no_data, settings);
                    (device, "advertising over Bluetooth LE".to_string())
                }
            };
            let _profile = profile::install_with(&device, timers);
            if let Some(path) = &args.report_memory {
                super::robustness::report_memory(&device, path.clone());
            }
            let security = if args.insecure { "plain" } else { "secure" };
            println!("acm peer: device {id} {place} ({security})");
            let _ = std::io::stdout().flush();
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
            device.shutdown();
            Ok::<(), String>(())
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("acm: {err}");
            ExitCode::from(2)
        }
    }
}

/// The reference implementation on `transport` with the profile's `settings`; declaring that
/// the transport carries no data with `no_data`.
fn profile_device(
    transport: impl acm::transport::Transport + 'static,
    no_data: bool,
    settings: acm::DeviceConfig,
) -> Device {
    if no_data {
        Device::new(CarriesNoData(transport), settings)
    } else {
        Device::new(transport, settings)
    }
}

/// Runs `acm conformance`; `verbose` is `-v`'s count.
pub fn conformance(args: &ConformanceArgs, verbose: u8) -> ExitCode {
    let logs = CaseLogs::keep();
    if let Some(sentence) = matches_nothing(args) {
        eprintln!("acm: {sentence}");
        return ExitCode::from(2);
    }
    let expectations = match &args.expectations {
        None => Expectations::default(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| Expectations::parse(&text).map_err(|e| e.to_string()))
        {
            Ok(expectations) => expectations,
            Err(err) => {
                eprintln!(
                    "acm: cannot read the expectations {}: {err}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    if let Some(path) = &args.replay {
        return replay(args, path);
    }
    let mut progress = Progress {
        quiet: args.quiet,
        verbose: verbose > 0,
        logs,
        kept: HashMap::new(),
    };
    let report = match &args.target {
        // Each wire case runs on a reference target that has what it needs: mock transports on
        // a paused clock (timeouts of minutes take no time), TCP on loopback.
        None => run_reference_with(
            &args.cases,
            ReferenceRun {
                fail_fast: false,
                insecure: args.insecure,
            },
            |r| progress.case(r),
        )
        .and_then(|mut report| {
            // The transport suite measures real waits (backpressure): a running clock.
            let transport = runtime(false)?.block_on(async {
                let mut results = Vec::new();
                for case in transport_cases() {
                    if !case.case.id.contains(&args.cases) {
                        continue;
                    }
                    if let Some(result) = run_transport_case(&MockFactory, case.case.id).await {
                        progress.case(&result);
                        results.push(result);
                    }
                }
                results
            });
            report.results.extend(transport);
            // The protocol suite runs its own paused clock, one runtime per sequence; one
            // case at a time, so that each has its own logs.
            for case in protocol::cases() {
                if !case.id.contains(&args.cases) {
                    continue;
                }
                let protocol = run_protocol_suite(&ProtocolSuiteConfig {
                    cases: args.protocol_cases,
                    filter: Some(case.id.to_string()),
                    ..ProtocolSuiteConfig::default()
                });
                for result in protocol.results {
                    progress.case(&result);
                    report.results.push(result);
                }
            }
            Ok(report)
        }),
        Some(address) => match Target::parse(address) {
            Err(err) => Err(err),
            Ok(Target::Tcp(addr)) => run_tcp(args, address, addr, &mut progress),
            Ok(Target::Ble(iut)) => run_ble(args, iut, &mut progress),
        },
    };
    // What was logged after the last case (or before an error) is shown with -v or an error.
    let rest = progress.logs.take();
    let mut report = match report {
        Ok(report) => report,
        Err(err) => {
            eprint!("{}", indented(&rest));
            eprintln!("acm: {err}");
            return ExitCode::from(2);
        }
    };
    if progress.verbose {
        eprint!("{}", indented(&rest));
    }
    for result in &mut report.results {
        result.logs = progress.kept.remove(result.case.id).unwrap_or_default();
    }
    finish(&report, &expectations, args)
}

/// Whether a run against a target runs case `id`: `--cases` keeps it and no `--skip` leaves it
/// out.
fn keeps(args: &ConformanceArgs, id: &str) -> bool {
    id.contains(&args.cases) && !args.skip.iter().any(|skip| id.contains(skip.as_str()))
}

/// The suite's own device id.
fn suite_id(args: &ConformanceArgs) -> Result<DeviceId, String> {
    DeviceId::new(args.suite_id.clone()).map_err(|e| format!("--suite-id: {e}"))
}

/// The suite's secure identity for this run, or `None` with `--insecure`.
fn suite_security(args: &ConformanceArgs) -> Result<Option<SecureConfig>, String> {
    if args.insecure {
        Ok(None)
    } else {
        SecureConfig::ephemeral()
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

/// The timers the target declares.
fn target_timers(args: &ConformanceArgs) -> Timers {
    if args.short_timers {
        Timers::SHORT
    } else {
        Timers::SPEC
    }
}

/// The wire suite, then the random scenarios, against the target at `addr` over TCP (or the
/// robustness suite, with `--robustness`).
fn run_tcp(
    args: &ConformanceArgs,
    address: &str,
    addr: SocketAddr,
    progress: &mut Progress,
) -> Result<Report, String> {
    args.hci.refuse("a ble: target")?;
    let suite = suite_id(args)?;
    if args.robustness {
        return runtime(false)?.block_on(super::robustness::run(
            addr,
            args.insecure,
            &args.cases,
            args.memory_from.as_deref(),
            progress,
        ));
    }
    let (mut report, target) = runtime(false)?.block_on(async {
        let security = suite_security(args)?;
        let (addr, recorder) = match &args.pcap {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
                let (local, recorder) = Recorder::start(addr)
                    .await
                    .map_err(|e| format!("cannot start the recorder: {e}"))?;
                (local, Some((recorder, dir)))
            }
            None => (addr, None),
        };
        let target = TcpTarget::connect_with(
            addr,
            suite.clone(),
            !args.no_data,
            security.clone(),
            target_timers(args),
        )
        .await
        .map_err(|e| format!("cannot reach {address}: {e}"))?;
        let report = run_wire_suite_where(
            &target,
            |id| keeps(args, id),
            |r| {
                progress.case(r);
                if let Some((recorder, dir)) = &recorder {
                    keep_capture(recorder, dir, r);
                }
            },
        )
        .await;
        // The scenarios reach the target as the suite did, with the same identity.
        let scenarios = TcpTarget::known(addr, suite, &target.device_id(), !args.no_data, security)
            .map_err(|e| format!("cannot reach {address}: {e}"))?;
        Ok::<_, String>((report, scenarios))
    })?;
    run_scenarios(args, Arc::new(target), &mut report, progress);
    Ok(report)
}

/// The wire suite, then the random scenarios, against device `iut` over Bluetooth LE, the
/// suite on the controller `--hci` names.
fn run_ble(
    args: &ConformanceArgs,
    iut: DeviceId,
    progress: &mut Progress,
) -> Result<Report, String> {
    if args.robustness {
        return Err(
            "--robustness runs against TCP targets only: its attacks open hundreds of links at once, more than a Bluetooth LE controller holds".into(),
        );
    }
    if args.pcap.is_some() {
        return Err(
            "--pcap records TCP targets only; over Bluetooth LE, --hci-log FILE keeps every HCI packet of the suite's controller as a btsnoop log".into(),
        );
    }
    let ble = ble_suite(args, iut)?;
    let mut report = ble.runtime.block_on(run_wire_suite_where(
        &*ble.target,
        |id| keeps(args, id),
        |r| progress.case(r),
    ));
    run_scenarios(args, ble.target.clone(), &mut report, progress);
    Ok(report)
}

/// The suite's way to device `iut` over Bluetooth LE, on the controller `--hci` names, with
/// this run's identity, timers and data.
fn ble_suite(args: &ConformanceArgs, iut: DeviceId) -> Result<BleSuite, String> {
    BleSuite::start(BleSuiteOptions {
        hci: &args.hci,
        suite: suite_id(args)?,
        iut,
        security: suite_security(args)?,
        carries_data: !args.no_data,
        timers: target_timers(args),
    })
}

/// The random scenarios against `target`, unless `--scenarios 0` or `--cases` leaves them out.
/// Call it outside any runtime: each scenario runs its own.
fn run_scenarios(
    args: &ConformanceArgs,
    target: Arc<dyn WireTarget>,
    report: &mut Report,
    progress: &mut Progress,
) {
    if args.scenarios > 0 && keeps(args, protocol::SCENARIOS.id) {
        let result = run_wire_scenarios(&scenario_config(args), target);
        progress.case(&result);
        report.results.push(result);
    }
}

/// How the random scenarios run.
fn scenario_config(args: &ConformanceArgs) -> ProtocolSuiteConfig {
    ProtocolSuiteConfig {
        cases: args.scenarios,
        max_steps: args.scenario_steps,
        max_shrink_iters: 256,
        ..ProtocolSuiteConfig::default()
    }
}

/// `acm conformance --replay FILE`: the steps of FILE against the --target's scenario app, or
/// against the reference implementation over the mock transport.
fn replay(args: &ConformanceArgs, path: &std::path::Path) -> ExitCode {
    let result = (|| {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (case, steps) =
            script::parse_script(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        // A Bluetooth LE target's host runs on a runtime that must outlive the replay.
        let mut _ble = None;
        let factory = match args.target.as_deref().map(Target::parse).transpose()? {
            None => reference_factory(),
            Some(Target::Tcp(addr)) => {
                let address = args.target.as_deref().unwrap_or_default();
                let suite = suite_id(args)?;
                let timers = target_timers(args);
                let target = runtime(false)?.block_on(async {
                    TcpTarget::connect_with(addr, suite.clone(), !args.no_data, None, timers)
                        .await
                        .map_err(|e| format!("cannot reach {address}: {e}"))
                        .map(|probe| probe.device_id())
                })?;
                let security = suite_security(args)?;
                let target = TcpTarget::known(addr, suite, &target, !args.no_data, security)
                    .map_err(|e| format!("cannot reach {address}: {e}"))?;
                wire_factory(Arc::new(target))
            }
            Some(Target::Ble(iut)) => {
                let ble = ble_suite(args, iut)?;
                let factory = wire_factory(ble.target.clone());
                _ble = Some(ble);
                factory
            }
        };
        println!("replaying {} steps of {case}", steps.len());
        Ok::<_, String>(protocol::replay(&case, &steps, factory))
    })();
    match result {
        Ok(Ok(())) => {
            println!("every step passed");
            ExitCode::SUCCESS
        }
        Ok(Err(failure)) => {
            println!("failed: {failure}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("acm: {err}");
            ExitCode::from(2)
        }
    }
}

/// The sentence that refuses a `--cases` that matches none of the cases this run has.
fn matches_nothing(args: &ConformanceArgs) -> Option<String> {
    let (ids, suites): (Vec<&str>, &str) = if args.robustness {
        let ids = robustness::cases().iter().map(|c| c.case.id).collect();
        (ids, "the robustness suite")
    } else if args.target.is_some() {
        let mut ids: Vec<&str> = wire::cases().iter().map(|c| c.case.id).collect();
        ids.push(protocol::SCENARIOS.id);
        (ids, "the wire suite and the random scenarios")
    } else {
        let mut ids: Vec<&str> = wire::cases().iter().map(|c| c.case.id).collect();
        ids.extend(transport_cases().iter().map(|c| c.case.id));
        ids.extend(protocol::cases().iter().map(|c| c.id));
        (ids, "the wire, transport and protocol suites")
    };
    if ids.iter().any(|id| id.contains(&args.cases)) {
        return None;
    }
    Some(format!(
        "--cases {:?} matches none of the {} cases of {suites}; ids look like {}, and --cases keeps those that contain its text",
        args.cases,
        ids.len(),
        ids.first().copied().unwrap_or("wire/FRAME-2/bad-magic")
    ))
}

/// Writes the capture of `result`'s case when it failed, and forgets it either way.
fn keep_capture(recorder: &Recorder, dir: &std::path::Path, result: &CaseResult) {
    let failed = matches!(result.verdict, Verdict::Fail { .. });
    let path = failed.then(|| dir.join(file_name(result.case.id)));
    match recorder.case_ended(path.as_deref()) {
        Ok(()) => {
            if let Some(path) = path {
                println!("              capture: {}", path.display());
            }
        }
        Err(err) => eprintln!("acm: cannot write the capture of {}: {err}", result.case.id),
    }
}

/// Prints each case's verdict as it ends (with `--quiet`, only failures), with the reason of
/// an unsupported case and the note of an informational one; under it, on stderr, what was
/// logged while it ran, when it failed or with `-v`. Keeps the logs it shows, for the reports.
pub struct Progress {
    quiet: bool,
    verbose: bool,
    logs: CaseLogs,
    kept: HashMap<&'static str, String>,
}

impl Progress {
    /// `result`'s case has ended.
    pub fn case(&mut self, result: &CaseResult) {
        let logs = self.logs.take();
        let (line, shown) = self.shown(result, logs);
        if let Some(line) = line {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
        if let Some(logs) = shown {
            eprint!("{}", indented(&logs));
            self.kept.insert(result.case.id, logs);
        }
    }

    /// What to print for `result`: its verdict line, and the logs of its case to show.
    fn shown(&self, result: &CaseResult, logs: String) -> (Option<String>, Option<String>) {
        let failed = matches!(result.verdict, Verdict::Fail { .. });
        if self.quiet && !failed {
            return (None, None);
        }
        let why = match &result.verdict {
            Verdict::Unsupported(note) | Verdict::Informational(note) => format!(" ({note})"),
            Verdict::Pass | Verdict::Fail { .. } => String::new(),
        };
        let line = format!("{:<13} {}{why}", result.verdict.name(), result.case.id);
        let show = (failed || self.verbose) && !logs.is_empty();
        (Some(line), show.then_some(logs))
    }
}

/// `logs` with each line indented under the verdicts' case ids.
fn indented(logs: &str) -> String {
    logs.lines()
        .map(|line| format!("              {line}\n"))
        .collect()
}

/// Prints the per-rule coverage table and its summary line.
fn print_coverage(table: &[coverage::RuleCoverage], gaps: &[&str]) {
    print!("{}", coverage::render(table));
    for (prefix, why) in coverage::NOT_EXERCISED {
        println!("{prefix}* rules are not exercised by this run: {why}");
    }
    for (rule, why) in coverage::NO_WIRE_INPUT {
        println!("{rule} takes no invalid input on the wire: {why}");
    }
    let must = table.iter().filter(|row| row.must).count();
    let checked = table.iter().filter(|row| row.must && row.cases > 0).count();
    println!(
        "SPEC rules: {} of {} checked; MUST rules: {checked} of {must} checked, {} without a case sending invalid input{}",
        table.iter().filter(|row| row.cases > 0).count(),
        table.len(),
        gaps.len(),
        if gaps.is_empty() {
            String::new()
        } else {
            format!(" ({})", gaps.join(", "))
        }
    );
}

fn finish(report: &Report, expectations: &Expectations, args: &ConformanceArgs) -> ExitCode {
    println!();
    print!("{}", report.summary());
    // Per rule: how many cases check it, how many of those send invalid input, how many break
    // it themselves; every MUST rule of a binding the run exercises needs invalid input. The
    // robustness suite's attacks are not meant to cover the rules: no table for them.
    let table = coverage::coverage(report.results.iter().map(|r| &r.case));
    let gaps = coverage::gaps(&table);
    if !args.robustness {
        print_coverage(&table, &gaps);
    }
    // The gate applies to whole runs of the suites against the reference implementation: a
    // filtered run, or one against another implementation, does not judge the suites.
    let whole_reference_run = args.target.is_none() && args.cases.is_empty();
    for (path, text) in [
        (&args.json, report.to_json()),
        (&args.junit, report.to_junit()),
    ] {
        if let Some(path) = path
            && let Err(err) = std::fs::write(path, text)
        {
            eprintln!("acm: cannot write {}: {err}", path.display());
            return ExitCode::from(2);
        }
    }
    let judgement = expectations.judge(report);
    for id in &judgement.known_failures {
        println!(
            "known failure: {id} ({})",
            expectations.reason(id).unwrap_or_default()
        );
    }
    for id in &judgement.unexpected_passes {
        println!("unexpected pass: {id} is listed as a known failure but passed");
    }
    let (pass, fail, _, _) = report.counts();
    println!("{pass} passed, {fail} failed");
    if whole_reference_run && !gaps.is_empty() {
        println!(
            "MUST rules without a case that sends invalid input: {}",
            gaps.join(", ")
        );
        return ExitCode::from(1);
    }
    if judgement.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::time::Duration;

    use acm_conformance::Case;
    use tracing_subscriber::fmt::MakeWriter as _;

    use super::*;

    fn progress(quiet: bool, verbose: bool) -> Progress {
        Progress {
            quiet,
            verbose,
            logs: CaseLogs::default(),
            kept: HashMap::new(),
        }
    }

    fn result(verdict: Verdict) -> CaseResult {
        CaseResult {
            case: Case::new("wire/LINK-3/short-nonce", &["LINK-3"], "a short nonce"),
            verdict,
            elapsed: Duration::ZERO,
            reproduce: None,
            logs: String::new(),
        }
    }

    const WARN: &str = "WARN acm_engine::link: closing link\n";

    #[test]
    fn a_case_s_logs_are_shown_when_it_fails_or_with_verbose_only() {
        let failed = result(Verdict::fail("a close", "nothing"));
        let passed = result(Verdict::Pass);
        for quiet in [false, true] {
            let (line, logs) = progress(quiet, false).shown(&failed, WARN.into());
            assert_eq!(
                line.as_deref(),
                Some("fail          wire/LINK-3/short-nonce")
            );
            assert_eq!(logs.as_deref(), Some(WARN));
        }
        assert_eq!(
            progress(false, false).shown(&passed, WARN.into()),
            (Some("pass          wire/LINK-3/short-nonce".into()), None)
        );
        assert_eq!(
            progress(true, false).shown(&passed, WARN.into()),
            (None, None)
        );
        let (_, logs) = progress(false, true).shown(&passed, WARN.into());
        assert_eq!(logs.as_deref(), Some(WARN));
        let (_, logs) = progress(false, true).shown(&failed, String::new());
        assert_eq!(logs, None, "nothing logged, nothing shown");
    }

    #[test]
    fn an_unsupported_case_says_why() {
        let unsupported = result(Verdict::Unsupported(
            "the target lacks the secure layer".into(),
        ));
        let (line, _) = progress(false, false).shown(&unsupported, String::new());
        assert_eq!(
            line.as_deref(),
            Some("unsupported   wire/LINK-3/short-nonce (the target lacks the secure layer)")
        );
    }

    #[test]
    fn what_was_logged_goes_with_the_case_that_ends_next() {
        let mut progress = progress(true, false);
        let _ = progress.logs.make_writer().write_all(WARN.as_bytes());
        progress.case(&result(Verdict::fail("a close", "nothing")));
        assert_eq!(
            progress
                .kept
                .get("wire/LINK-3/short-nonce")
                .map(String::as_str),
            Some(WARN)
        );
        assert_eq!(progress.logs.take(), "", "taken");
    }
}
