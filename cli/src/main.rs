//! `acm`: run the conformance suites against the reference implementation or any other, and run
//! the reference implementation as a peer for others to test against.
//!
//! Exit codes: 0 when every result is as expected, 1 when a case had an unexpected result, 2
//! when the run could not be made (bad arguments, unreadable files, an unreachable target).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use acm::DeviceConfig;
use acm_conformance::wire::{MockTarget, run_wire_suite};
use acm_conformance::{CaseResult, Expectations, Report, Verdict, rules};
use clap::{Parser, Subcommand};

/// The acm protocol stack's command line.
#[derive(Debug, Parser)]
#[command(name = "acm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the conformance suites (by default against the reference implementation over the
    /// in-memory mock transport) and reports every case with the SPEC rules it checks.
    Conformance(ConformanceArgs),
}

#[derive(Debug, clap::Args)]
struct ConformanceArgs {
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
    /// Print only failures and the summary.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Conformance(args) => conformance(&args),
    }
}

fn conformance(args: &ConformanceArgs) -> ExitCode {
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
    // The mock target runs on a paused clock: timeouts of minutes take no time.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("acm: cannot start the runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(async {
        let target = MockTarget::start(DeviceConfig::default())
            .map_err(|e| format!("cannot start the reference implementation: {e}"))?;
        let quiet = args.quiet;
        Ok::<Report, String>(
            run_wire_suite(&target, &args.cases, |result| progress(result, quiet)).await,
        )
    });
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            eprintln!("acm: {err}");
            return ExitCode::from(2);
        }
    };
    finish(&report, &expectations, args)
}

fn progress(result: &CaseResult, quiet: bool) {
    let failed = matches!(result.verdict, Verdict::Fail { .. });
    if quiet && !failed {
        return;
    }
    println!("{:<13} {}", result.verdict.name(), result.case.id);
    let _ = std::io::stdout().flush();
}

fn finish(report: &Report, expectations: &Expectations, args: &ConformanceArgs) -> ExitCode {
    println!();
    print!("{}", report.summary());
    let covered = report.rules_covered();
    let must: Vec<&str> = rules::must_rules().collect();
    let uncovered: Vec<&str> = must
        .iter()
        .copied()
        .filter(|rule| !covered.contains(rule))
        .collect();
    println!(
        "SPEC rules: {} of {} covered; MUST rules: {} of {} covered{}",
        covered.len(),
        rules::RULES.len(),
        must.len() - uncovered.len(),
        must.len(),
        if uncovered.is_empty() {
            String::new()
        } else {
            format!(" (not by these suites: {})", uncovered.join(", "))
        }
    );
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
    if judgement.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
