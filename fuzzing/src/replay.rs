//! Running committed fuzz inputs outside libFuzzer: the replay test and the example that writes
//! the seeds share these helpers.
//!
//! The fuzz directory holds `fuzz_targets/<target>.rs`, `corpus/<target>/` and
//! `regressions/<target>/`; see `fuzz/README.md`.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use crate::{Seed, Target};

/// The repository's fuzz directory, seen from a crate one level below the root.
pub fn fuzz_dir(crate_dir: &str) -> PathBuf {
    Path::new(crate_dir).join("../fuzz")
}

/// The regular files of `dir`, sorted; none when it does not exist. Hidden files are skipped
/// (libFuzzer keeps its lock and temporary files there).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_file())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// The names of the entries of `dir` that pass `keep`, without extension.
fn names(dir: &Path, keep: fn(&Path) -> bool) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| keep(path))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect()
}

/// What replaying the committed inputs of some targets found.
#[derive(Debug, Default)]
pub struct Replay {
    /// Per target: its name and how many corpus and regression files ran.
    pub counts: Vec<(&'static str, usize, usize)>,
    /// The files that made their target panic, as `target: path`.
    pub failures: Vec<String>,
}

impl Replay {
    /// Every file that ran.
    pub fn total(&self) -> usize {
        self.counts
            .iter()
            .map(|(_, c, r)| c.saturating_add(*r))
            .sum()
    }
}

/// Runs every file of `corpus/<target>/` and `regressions/<target>/` through its target,
/// catching panics.
pub fn replay(fuzz_dir: &Path, targets: &[Target]) -> Replay {
    let mut replay = Replay::default();
    for target in targets {
        let mut ran = [0usize; 2];
        for (count, kind) in ran.iter_mut().zip(["corpus", "regressions"]) {
            for file in files(&fuzz_dir.join(kind).join(target.name)) {
                *count = (*count).saturating_add(1);
                let input = std::fs::read(&file).unwrap_or_default();
                if catch_unwind(AssertUnwindSafe(|| (target.run)(&input))).is_err() {
                    replay
                        .failures
                        .push(format!("{}: {}", target.name, file.display()));
                }
            }
        }
        replay.counts.push((target.name, ran[0], ran[1]));
    }
    replay
}

/// What is missing for `targets`: a `fuzz_targets/<name>.rs` file or a non-empty corpus.
pub fn missing_files(fuzz_dir: &Path, targets: &[Target]) -> Vec<String> {
    let mut missing = Vec::new();
    for target in targets {
        let file = fuzz_dir
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        if !file.is_file() {
            missing.push(format!("{} has no {}", target.name, file.display()));
        }
        if files(&fuzz_dir.join("corpus").join(target.name)).is_empty() {
            missing.push(format!("{} has no corpus", target.name));
        }
    }
    missing
}

/// The target files and input directories of the fuzz directory that name none of `targets`
/// (which must then be every target of every crate).
pub fn unknown_files(fuzz_dir: &Path, targets: &[Target]) -> Vec<String> {
    let known = |name: &String| targets.iter().any(|t| t.name == name);
    let mut unknown = Vec::new();
    for (kind, keep) in [
        ("fuzz_targets", Path::is_file as fn(&Path) -> bool),
        ("corpus", Path::is_dir),
        ("regressions", Path::is_dir),
    ] {
        for name in names(&fuzz_dir.join(kind), keep) {
            if !known(&name) {
                unknown.push(format!("fuzz/{kind}/{name} is no target"));
            }
        }
    }
    unknown
}

/// The committed seed files that differ from `seeds`.
pub fn stale_seeds(fuzz_dir: &Path, seeds: &[Seed]) -> Vec<PathBuf> {
    seeds
        .iter()
        .map(|seed| seed_path(&fuzz_dir.join("corpus"), seed))
        .zip(seeds)
        .filter(|(path, seed)| std::fs::read(path).unwrap_or_default() != seed.bytes)
        .map(|(path, _)| path)
        .collect()
}

fn seed_path(corpus: &Path, seed: &Seed) -> PathBuf {
    corpus.join(seed.target).join(format!("seed-{}", seed.name))
}

/// Writes `seeds` as `<corpus>/<target>/seed-<name>`, leaving other files alone.
pub fn write_seeds(corpus: &Path, seeds: &[Seed]) -> io::Result<()> {
    for seed in seeds {
        let path = seed_path(corpus, seed);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, &seed.bytes)?;
    }
    Ok(())
}
