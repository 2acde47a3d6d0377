//! `acm-bench`: acm's performance measures, each against a baseline measured in the same run,
//! with the targets they must meet. Run it with `cargo run --release -p acm-bench`; it prints
//! the table and writes it as JSON (`target/bench.json`, or the path after `--json`).
//! `--quick` runs every measure briefly: a smoke test of the code, not of the numbers.

mod alloc;
mod codec;
mod harness;
mod hostile;
mod report;
mod scale;
mod secure;
mod tcp;
mod transfer;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;

use harness::Plan;
use report::{Machine, Row};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// What the command line asks for.
struct Args {
    quick: bool,
    json: PathBuf,
    only: Option<String>,
    /// The `acm` command whose `acm peer` the hostile measures attack, rather than this program.
    hostile_target: Option<PathBuf>,
    /// The numbers of hostile links the hostile measures try, rather than 1, 10, 100 and 1000.
    hostile_links: Option<Vec<usize>>,
    /// The nice value of the hostile measures' attacker threads.
    hostile_nice: i32,
    /// The attack families the hostile measures play, rather than all.
    hostile_families: Option<Vec<String>>,
    /// The runtime workers of the hostile measures' own device (0: its main thread).
    hostile_workers: usize,
}

const USAGE: &str = "usage: acm-bench [--quick] [--json PATH] [--only WORD]
  --quick      run every measure briefly (a smoke test: the numbers mean nothing)
  --json PATH  where to write the table as JSON (default: target/bench.json)
  --only WORD  run only the measures whose name contains WORD
  --hostile-target ACM  attack `ACM peer` (the acm command of any build) in the hostile measures
  --hostile-links N,..  the numbers of hostile links to try (default 1,10,100,1000)
  --hostile-nice N      the attackers' threads' nice value (default 19, the lowest priority;
                        0 runs them at the priority of the device and the client)
  --hostile-families NAME,..  only these attack families (data-unread, pings-unread, ...)
  --hostile-workers N   run the attacked device on N runtime workers (default 0: on its main
                        thread, as `acm peer` runs); not with --hostile-target";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        json: default_json_path(),
        only: None,
        hostile_target: None,
        hostile_links: None,
        hostile_nice: 19,
        hostile_families: None,
        hostile_workers: 0,
    };
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--json" => args.json = given.next().ok_or("--json needs a path")?.into(),
            "--only" => args.only = Some(given.next().ok_or("--only needs a word")?),
            "--hostile-target" => {
                let acm = given.next().ok_or("--hostile-target needs a path")?;
                args.hostile_target = Some(acm.into());
            }
            "--hostile-links" => {
                let list = given.next().ok_or("--hostile-links needs numbers")?;
                let links = list
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<_>>>()
                    .ok_or("--hostile-links needs numbers above 0, separated by commas")?;
                args.hostile_links = Some(links);
            }
            "--hostile-families" => {
                let list = given.next().ok_or("--hostile-families needs names")?;
                args.hostile_families =
                    Some(list.split(',').map(|n| n.trim().to_string()).collect());
            }
            "--hostile-workers" => {
                args.hostile_workers = given
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n <= 64)
                    .ok_or("--hostile-workers needs a number from 0 to 64")?;
            }
            "--hostile-nice" => {
                args.hostile_nice = given
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (0..=19).contains(n))
                    .ok_or("--hostile-nice needs a number from 0 to 19")?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.hostile_target.is_some() && args.hostile_workers > 0 {
        return Err("--hostile-workers is for the bench's own device, not --hostile-target".into());
    }
    Ok(args)
}

/// `target/bench.json` in the workspace (or in `CARGO_TARGET_DIR`).
fn default_json_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            let bench = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            bench.parent().unwrap_or(bench).join("target")
        },
        PathBuf::from,
    );
    target.join("bench.json")
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some(hostile::SERVE_TARGET) {
        return hostile::serve_target();
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            if !why.is_empty() {
                eprintln!("acm-bench: {why}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load_before = Machine::load_now();
    let wanted = |name: &str| args.only.as_deref().is_none_or(|w| name.contains(w));
    let mut rows: Vec<Row> = Vec::new();
    // The runtime an app gets from `#[tokio::main]`: one worker thread per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let spread = if args.quick {
        scale::Spread {
            sessions: 400,
            peers: 2,
        }
    } else {
        scale::Spread {
            sessions: 10_000,
            peers: 10,
        }
    };
    let quick = args.quick;
    let measures: [(&str, &dyn Fn() -> Vec<Row>); 13] = [
        ("decode", &|| codec::decode_frames(plan)),
        ("connect-request", &|| codec::connect_request(plan)),
        ("send-data", &|| runtime.block_on(transfer::send_data(plan))),
        ("connect-latency", &|| {
            runtime.block_on(transfer::connect_latency(plan))
        }),
        ("tcp-send-data", &|| {
            let size = if args.quick { 1 << 20 } else { tcp::TRANSFER };
            runtime.block_on(tcp::send_data(plan, size))
        }),
        ("tcp-connect-latency", &|| {
            runtime.block_on(tcp::connect_latency(plan))
        }),
        ("sessions", &|| {
            runtime.block_on(scale::many_sessions(spread))
        }),
        ("overhead", &|| {
            runtime.block_on(scale::small_frame_overhead())
        }),
        ("secure-records", &|| secure::records(plan)),
        ("secure-send-data", &|| {
            runtime.block_on(secure::send_data(quick))
        }),
        ("secure-setup-cpu", &|| {
            runtime.block_on(secure::link_setup_cpu(quick))
        }),
        ("secure-setup-round-trips", &|| {
            runtime.block_on(secure::setup_round_trips(quick))
        }),
        ("hostile", &|| {
            runtime.block_on(hostile::hostile(
                quick,
                hostile::Attacked {
                    acm: args.hostile_target.as_deref(),
                    workers: args.hostile_workers,
                },
                args.hostile_links.as_deref(),
                args.hostile_nice,
                args.hostile_families.as_deref(),
            ))
        }),
    ];
    for (name, measure) in measures {
        if wanted(name) {
            eprintln!("acm-bench: {name}...");
            rows.extend(measure());
        }
    }
    let machine = Machine {
        cores,
        load_before,
        load_after: Machine::load_now(),
        quick: args.quick,
    };
    print!("{}", report::table(&machine, &rows));
    if let Some(dir) = args.json.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(err) = std::fs::write(&args.json, report::json(&machine, &rows)) {
        eprintln!("acm-bench: cannot write {}: {err}", args.json.display());
        return ExitCode::FAILURE;
    }
    eprintln!("acm-bench: wrote {}", args.json.display());
    ExitCode::SUCCESS
}
