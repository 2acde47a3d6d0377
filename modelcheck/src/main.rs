//! `acm-modelcheck`: runs the model checker and prints what it explored.
//!
//! ```text
//! acm-modelcheck [quick|deep|long] [--devices N] [--depth N] [--sessions N] [--sends N]
//!                [--losses N] [--advances N] [--hostile] [--hellos] [--no-settle]
//!                [--threads N] [--mutant NAME|all] [--replay FILE]
//! ```
//!
//! A preset sets every bound, and the options after it change one. `--mutant all` runs each
//! conformance mutant in turn and fails unless every one is found. `--replay FILE` replays the
//! steps of a counterexample. The exit status is 1 when a property breaks (or a mutant goes
//! unfound).

use std::process::ExitCode;

use acm_modelcheck::{Bounds, Mutation, explore, parse_steps, replay};

fn usage() -> ExitCode {
    eprintln!(
        "usage: acm-modelcheck [quick|deep|long] [--devices N] [--depth N] [--sessions N] [--sends N] \
         [--losses N] [--advances N] [--hostile] [--hellos] [--no-settle] [--threads N] [--mutant NAME|all] [--replay FILE]"
    );
    ExitCode::from(2)
}

/// The bounds of a preset: `quick` is `cargo test`'s, `deep` is `.ci/run`'s (a few minutes),
/// `long` is for a long run by hand.
fn preset(name: &str) -> Option<Vec<Bounds>> {
    let quick = Bounds::quick();
    Some(match name {
        "quick" => vec![quick],
        "deep" => vec![
            Bounds { depth: 11, ..quick },
            Bounds {
                devices: 3,
                depth: 8,
                ..quick
            },
            Bounds {
                depth: 10,
                hostile: true,
                ..quick
            },
            Bounds {
                depth: 11,
                hellos: true,
                ..quick
            },
        ],
        "long" => vec![
            Bounds {
                depth: 13,
                sessions: 2,
                sends: 2,
                advances: 2,
                ..quick
            },
            Bounds {
                devices: 3,
                depth: 11,
                advances: 2,
                losses: 2,
                ..quick
            },
            Bounds {
                depth: 12,
                sessions: 2,
                sends: 2,
                advances: 2,
                hostile: true,
                ..quick
            },
        ],
        _ => return None,
    })
}

#[cfg(feature = "mutants")]
fn mutation(name: &str) -> Option<Mutation> {
    Mutation::ALL
        .into_iter()
        .find(|m| format!("{m:?}").eq_ignore_ascii_case(name))
}

#[cfg(not(feature = "mutants"))]
fn mutation(_: &str) -> Option<Mutation> {
    None
}

#[cfg(feature = "mutants")]
fn all_mutations() -> Vec<Mutation> {
    Mutation::ALL.to_vec()
}

#[cfg(not(feature = "mutants"))]
fn all_mutations() -> Vec<Mutation> {
    Vec::new()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    let mut runs = preset("quick").unwrap_or_default();
    if let Some(name) = args.peek().and_then(|a| preset(a)) {
        runs = name;
        args.next();
    }
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut mutants: Option<Vec<Mutation>> = None;
    let mut replay_file = None;
    while let Some(arg) = args.next() {
        let bound: Option<fn(&mut Bounds, usize)> = match arg.as_str() {
            "--devices" => Some(|b, n| b.devices = n),
            "--depth" => Some(|b, n| b.depth = n),
            "--sessions" => Some(|b, n| b.sessions = n),
            "--sends" => Some(|b, n| b.sends = n),
            "--losses" => Some(|b, n| b.losses = n),
            "--advances" => Some(|b, n| b.advances = n),
            _ => None,
        };
        let mut number = || args.next().and_then(|v| v.parse::<usize>().ok());
        if let Some(set) = bound {
            let Some(n) = number() else {
                return usage();
            };
            runs.iter_mut().for_each(|b| set(b, n));
            continue;
        }
        match arg.as_str() {
            "--threads" => match number() {
                Some(n) => threads = n,
                None => return usage(),
            },
            "--hostile" => runs.iter_mut().for_each(|b| b.hostile = true),
            "--no-settle" => runs.iter_mut().for_each(|b| b.settle = false),
            "--hellos" => runs.iter_mut().for_each(|b| b.hellos = true),
            "--mutant" => match args.next().as_deref() {
                Some("all") => mutants = Some(all_mutations()),
                Some(name) => match mutation(name) {
                    Some(m) => mutants = Some(vec![m]),
                    None => return usage(),
                },
                None => return usage(),
            },
            "--replay" => match args.next() {
                Some(file) => replay_file = Some(file),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    if let Some(file) = replay_file {
        let Ok(text) = std::fs::read_to_string(&file) else {
            eprintln!("cannot read {file}");
            return ExitCode::from(2);
        };
        let steps = match parse_steps(&text) {
            Ok(steps) => steps,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        };
        let Some(bounds) = runs.first().copied() else {
            return usage();
        };
        return match replay(bounds, &steps) {
            Ok(()) => {
                println!("{} steps replayed: every property holds", steps.len());
                ExitCode::SUCCESS
            }
            Err(v) => {
                println!("{v}");
                ExitCode::FAILURE
            }
        };
    }
    let mut failed = false;
    match mutants {
        None => {
            for bounds in runs {
                let report = explore(bounds, threads, |r| {
                    eprintln!(
                        "  depth {}: {} states, {:.1} s",
                        r.depth(),
                        r.states,
                        r.elapsed.as_secs_f64()
                    );
                });
                println!("{report}");
                failed |= report.counterexample.is_some();
            }
        }
        Some(mutants) => {
            let Some(base) = runs.first().copied() else {
                return usage();
            };
            for m in mutants {
                let bounds = Bounds {
                    mutation: Some(m),
                    hostile: true,
                    ..base
                };
                let report = explore(bounds, threads, |_| {});
                match &report.counterexample {
                    Some(c) => println!(
                        "{m:?}: found by {} at depth {} ({} states, {:.1} s)\n{c}",
                        c.violation.property,
                        c.depth(),
                        report.states,
                        report.elapsed.as_secs_f64()
                    ),
                    None => {
                        println!("{m:?}: NOT FOUND within the bounds\n{report}");
                        failed = true;
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
