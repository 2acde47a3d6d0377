//! `acm conformance`: run the conformance suites against the reference implementation or any
//! other; `acm peer`: run the reference implementation for others to test against.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use acm::secure::SecureConfig;
use acm::transport::DeviceId;
use acm::{Device, Security};
use acm_conformance::profile::{self, Timers};
use acm_conformance::protocol::{ProtocolSuiteConfig, run_protocol_suite};
use acm_conformance::transport_suite::factories::MockFactory;
use acm_conformance::transport_suite::{cases as transport_cases, run_transport_case};
use acm_conformance::wire::{
    CarriesNoData, ReferenceRun, TcpTarget, run_reference_with, run_wire_suite, runtime,
};
use acm_conformance::{CaseResult, Expectations, Report, Verdict, coverage};
use acm_transport_tcp::{TcpConfig, TcpTransport};

use crate::capture::{Recorder, file_name};
use crate::common::tcp_address;

/// The options of `acm peer`.
#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// Where to listen, as tcp://HOST:PORT (port 0 picks a free one; the address is printed).
    #[arg(long)]
    listen: String,
    /// This device's id.
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

/// The options of `acm conformance`.
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// Test the implementation listening at tcp://HOST:PORT (running the conformance profile)
    /// instead of the reference implementation over the mock transport.
    #[arg(long)]
    target: Option<String>,
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
    /// Only the cases whose id contains this text.
    #[arg(long, default_value = "")]
    cases: String,
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
    /// Print only failures and the summary.
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
        let addr = tcp_address(&args.listen)?;
        let id = DeviceId::new(args.device_id.clone()).map_err(|e| format!("--device-id: {e}"))?;
        let timers = if args.short_timers {
            Timers::SHORT
        } else {
            Timers::SPEC
        };
        let no_data = args.no_data;
        let insecure = args.insecure;
        runtime(false)?.block_on(async move {
            let config = TcpConfig::new().with_open_timeout(timers.open);
            let transport = TcpTransport::bind_with(id.clone(), addr, config)
                .await
                .map_err(|e| crate::common::cannot_listen(&format!("tcp://{addr}"), e))?;
            let local = transport
                .local_addr()
                .ok_or("the listener has no address")?;
            let mut settings = profile::device_config(timers);
            if insecure {
                settings = settings.with_security(Security::Insecure);
            }
            let device = if no_data {
                Device::new(CarriesNoData(transport), settings)
            } else {
                Device::new(transport, settings)
            };
            let _profile = profile::install_with(&device, timers);
            if let Some(path) = &args.report_memory {
                super::robustness::report_memory(&device, path.clone());
            }
            let security = if insecure { "plain" } else { "secure" };
            println!("acm peer: device {id} listening on tcp://{local} ({security})");
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

/// Runs `acm conformance`.
pub fn conformance(args: &ConformanceArgs) -> ExitCode {
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
    let quiet = args.quiet;
    let report = match &args.target {
        // Each wire case runs on a reference target that has what it needs: mock transports on
        // a paused clock (timeouts of minutes take no time), TCP on loopback.
        None => run_reference_with(
            &args.cases,
            ReferenceRun {
                fail_fast: false,
                insecure: args.insecure,
            },
            |r| progress(r, quiet),
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
                        progress(&result, quiet);
                        results.push(result);
                    }
                }
                results
            });
            report.results.extend(transport);
            // The protocol suite runs its own paused clock, one runtime per sequence.
            let protocol = run_protocol_suite(&ProtocolSuiteConfig {
                cases: args.protocol_cases,
                filter: (!args.cases.is_empty()).then(|| args.cases.clone()),
                ..ProtocolSuiteConfig::default()
            });
            for result in protocol.results {
                progress(&result, quiet);
                report.results.push(result);
            }
            Ok(report)
        }),
        Some(address) => tcp_address(address).and_then(|addr| {
            let suite =
                DeviceId::new(args.suite_id.clone()).map_err(|e| format!("--suite-id: {e}"))?;
            if args.robustness {
                return runtime(false)?.block_on(super::robustness::run(
                    addr,
                    args.insecure,
                    &args.cases,
                    args.memory_from.as_deref(),
                    quiet,
                ));
            }
            runtime(false)?.block_on(async {
                let timers = if args.short_timers {
                    Timers::SHORT
                } else {
                    Timers::SPEC
                };
                let security = if args.insecure {
                    None
                } else {
                    Some(SecureConfig::ephemeral().map_err(|e| e.to_string())?)
                };
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
                let target = TcpTarget::connect_with(addr, suite, !args.no_data, security, timers)
                    .await
                    .map_err(|e| format!("cannot reach {address}: {e}"))?;
                Ok(run_wire_suite(&target, &args.cases, |r| {
                    progress(r, quiet);
                    if let Some((recorder, dir)) = &recorder {
                        keep_capture(recorder, dir, r);
                    }
                })
                .await)
            })
        }),
    };
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            eprintln!("acm: {err}");
            return ExitCode::from(2);
        }
    };
    finish(&report, &expectations, args)
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

fn progress(result: &CaseResult, quiet: bool) {
    let failed = matches!(result.verdict, Verdict::Fail { .. });
    if quiet && !failed {
        return;
    }
    println!("{:<13} {}", result.verdict.name(), result.case.id);
    let _ = std::io::stdout().flush();
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
