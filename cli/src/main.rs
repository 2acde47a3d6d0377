//! `acm`: the acm protocol stack's command line. It runs the conformance suites and the
//! reference peer, and lets a person try the stack: list devices, listen as an app, chat, and
//! send files with progress.
//!
//! Exit codes, for every command, as `acm --help` and README list them: 0 when it did what was
//! asked (for `conformance`: every result as expected); 1 when it ran and the outcome is a
//! failure (a case had an unexpected result, a connect failed or was rejected, a device could
//! not be reached, a transfer was cut short or did not verify); 2 when it could not run (bad
//! arguments, unreadable files, a transport that cannot start, an unreachable conformance
//! target). Errors are one sentence on stderr, starting `acm: `; errors of the API start with the
//! reference's error code (201, 401, 801), failed connects name their connect error code.

mod capture;
mod commands;
mod common;
mod meter;
mod pcap;
mod receive;
mod security;
mod transfer;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use commands::{chat, conformance, devices, keys, listen, peer, proxy, send};
use common::CliError;

/// What `acm --help` ends with: the exit codes, as README's table has them, and the logs.
const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the command ran and failed: an unexpected conformance result, a connect that failed or was rejected (a device that cannot be reached included), a transfer cut short or not verified
  2  the command could not run: bad arguments, unreadable files, a transport that cannot start, an unreachable conformance target
Logs: -v, -vv, or RUST_LOG (for example RUST_LOG=acm=debug), on stderr.";

/// The acm protocol stack's command line.
#[derive(Debug, Parser)]
#[command(
    name = "acm",
    version,
    about,
    after_help = AFTER_HELP
)]
struct Cli {
    /// More logs on stderr (-v, -vv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the conformance suites (by default against the reference implementation over the
    /// in-memory mock transport) and reports every case with the SPEC rules it checks.
    Conformance(conformance::ConformanceArgs),
    /// Runs the reference implementation with the conformance profile (SPEC section 15),
    /// listening for links, so that other suites and clients can be tested against it.
    Peer(peer::PeerArgs),
    /// Lists the devices the transport can see (id, name, address); --watch keeps looking.
    Devices(devices::DevicesArgs),
    /// Runs an app that accepts (or with --reject, rejects) collaboration requests and prints
    /// every event; typed lines go to the connected peers; --save-dir saves sent files.
    Listen(listen::ListenArgs),
    /// Opens a session to an app on another device: typed lines are sent as messages, the
    /// peer's are printed; Ctrl-C or the end of input disconnects.
    Chat(chat::ChatArgs),
    /// Prints this device's key fingerprint (making its key on first use), to compare with what
    /// peers show when pairing.
    Id(keys::IdArgs),
    /// Lists (`list`) or forgets (`remove ID`) the devices this one is paired with.
    Trust(keys::TrustArgs),
    /// Sends a file with a progress meter; the receiver (acm listen --save-dir) verifies its
    /// length and SHA-256 and saves it atomically.
    Send(send::SendArgs),
    /// Sits between two implementations over TCP: forwards every byte unchanged and prints each
    /// frame decoded, one per line, with the SPEC rules it breaks; --pcap FILE keeps a capture.
    Proxy(proxy::ProxyArgs),
}

fn main() -> ExitCode {
    let json = wants_json();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err, json),
    };
    common::init_logs(cli.verbose);
    let result = match &cli.command {
        Command::Conformance(args) => return conformance::conformance(args, cli.verbose),
        Command::Peer(args) => return peer::peer(args),
        Command::Devices(args) => block_on(devices::run(args)),
        Command::Listen(args) => block_on(listen::run(args)),
        Command::Chat(args) => block_on(chat::run(args)),
        Command::Send(args) => block_on(send::run(args)),
        Command::Proxy(args) => block_on(proxy::run(args)),
        Command::Id(args) => keys::id(args),
        Command::Trust(args) => keys::trust(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err, json),
    }
}

/// Whether the command's output is JSON lines (`--json`; not `acm conformance --json FILE`,
/// which writes a report), so that its error is one more JSON object.
fn wants_json() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.iter().find(|arg| !arg.starts_with('-'));
    args.iter().any(|arg| arg == "--json") && command.is_some_and(|c| c != "conformance")
}

/// Reports a failed command: one sentence on stderr, starting `acm: `, and with `--json` the
/// same as a JSON object on stdout, `{"event":"error","message":...,"exit_code":...}`.
fn fail(err: &CliError, json: bool) -> ExitCode {
    eprintln!("acm: {}", err.message);
    if json {
        let object = serde_json::json!({
            "event": "error",
            "message": err.message,
            "exit_code": err.code,
        });
        println!("{object}");
    }
    ExitCode::from(err.code)
}

/// Bad arguments, said as every other error is (clap's own `error:` becomes `acm: `, in one
/// sentence with clap's tip, if any); help and version are printed as asked.
fn usage_error(err: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) || err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = err.print();
        return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(common::EXIT_CANNOT_RUN));
    }
    // clap's text: the error (its first line, and the arguments it lists under it), a blank
    // line, then the usage and where to learn more.
    let text = err.render().to_string();
    let error: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let error = error.join(" ");
    let mut message = error.strip_prefix("error: ").unwrap_or(&error).to_string();
    if message.is_empty() {
        message = "bad arguments".into();
    }
    match text.lines().find_map(|line| line.strip_prefix("Usage: ")) {
        Some(usage) => message.push_str(&format!("; usage: {usage} (--help says more)")),
        None => message.push_str(" (--help says more)"),
    }
    fail(&CliError::cannot_run(message), json)
}

fn block_on(
    command: impl std::future::Future<Output = Result<(), CliError>>,
) -> Result<(), CliError> {
    let runtime = common::runtime()?;
    let result = runtime.block_on(command);
    // Standard input is read on a blocking thread that may never return: do not wait for it.
    runtime.shutdown_background();
    result
}
