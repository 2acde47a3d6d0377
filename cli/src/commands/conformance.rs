//! `acm conformance`: run the conformance suites against the reference implementation or any
//! other (`acm peer`, in `peer.rs`, runs the reference for others to test against).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use acm::secure::SecureConfig;
use acm::transport::DeviceId;
use acm_conformance::profile::Timers;
use acm_conformance::protocol::{
    self, ProtocolSuiteConfig, reference_factory, run_protocol_suite, run_wire_scenarios, script,
    wire_factory,
};
use acm_conformance::transport_suite::factories::MockFactory;
use acm_conformance::transport_suite::{cases as transport_cases, run_transport_case};
use acm_conformance::wire::{
    ReferenceRun, TcpTarget, WireTarget, run_reference_with, run_wire_suite_where, runtime,
};
use acm_conformance::{CaseResult, Expectations, Report, Verdict, coverage, robustness, wire};

use super::case_logs::CaseLogs;
use super::progress::{Progress, indented};
use super::reach::{BleSuite, BleSuiteOptions, HciArgs, Target};
use crate::capture::{Recorder, file_name};

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
    /// a well-behaved device that must be served meanwhile, and the attackers' address, which
    /// must be let in again once they stop.
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
