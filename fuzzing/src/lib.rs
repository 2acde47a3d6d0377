//! The bodies of acm's fuzz targets, the seeds of their corpora, and the replay of every
//! committed corpus and regression file on stable Rust. Test machinery only: not published, and
//! no product crate depends on it.
//!
//! Each body takes arbitrary bytes, drives one part of acm with them, and panics when an
//! invariant breaks, which a fuzzer reports as a crash. The same functions run under libFuzzer
//! (the one-line targets of `fuzz/fuzz_targets/`) and in `cargo test` (`tests/replay.rs`).
//! [`wire`] holds the decoders' targets, [`engine`] the link engine's, [`device`] the device
//! engine's, [`secure`] the secure layer's; `fuzz/README.md` gives every input
//! layout.
//!
//! ```
//! // Any input is a valid one: a body panics only on a broken invariant.
//! for target in acm_fuzzing::TARGETS {
//!     (target.run)(&[0x01, 0x02, 0x03]);
//! }
//! ```

pub mod device;
pub mod engine;
mod input;
pub mod replay;
pub mod secure;
pub mod wire;

pub use input::{Input, put_varint};

/// A fuzz target: its name, as in `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`, and
/// its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// The body: panics on any broken invariant.
    pub run: fn(&[u8]),
}

/// Every fuzz target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "frame_decoder",
        run: wire::frame_decoder,
    },
    Target {
        name: "frame_roundtrip",
        run: wire::frame_roundtrip,
    },
    Target {
        name: "reassembly",
        run: wire::reassembly,
    },
    Target {
        name: "control_messages",
        run: wire::control_messages,
    },
    Target {
        name: "segments",
        run: wire::segments,
    },
    Target {
        name: "engine",
        run: engine::engine,
    },
    Target {
        name: "device",
        run: device::device,
    },
    Target {
        name: "secure",
        run: secure::secure,
    },
];

/// One seed input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// Its file name in `fuzz/corpus/<target>/`.
    pub name: String,
    /// The input.
    pub bytes: Vec<u8>,
}

/// The seeds of every target's corpus, built from valid traffic.
pub fn seeds() -> Vec<Seed> {
    let mut seeds = wire::seeds();
    seeds.extend(engine::seeds());
    seeds.extend(device::seeds());
    seeds.extend(secure::seeds());
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_accepts_the_empty_input() {
        for target in TARGETS {
            (target.run)(&[]);
        }
    }

    #[test]
    fn every_seed_passes_its_target_and_names_are_unique() {
        let seeds = seeds();
        let mut names = std::collections::BTreeSet::new();
        for seed in &seeds {
            assert!(
                names.insert((seed.target, seed.name.clone())),
                "{}",
                seed.name
            );
            let target = TARGETS
                .iter()
                .find(|t| t.name == seed.target)
                .expect("a known target");
            (target.run)(&seed.bytes);
        }
        for target in TARGETS {
            assert!(seeds.iter().filter(|s| s.target == target.name).count() >= 10);
        }
    }
}
