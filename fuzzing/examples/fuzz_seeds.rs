//! Writes the seed corpora of every fuzz target, built from valid traffic, into
//! `fuzz/corpus/<target>/` (or under the directory given as the first argument). Existing files
//! of other names are left alone, so a corpus the fuzzer has grown keeps its entries.
//!
//! ```text
//! cargo run -p acm-fuzzing --example fuzz_seeds
//! ```

use std::path::PathBuf;

use acm_fuzzing::replay::{fuzz_dir, write_seeds};

fn main() -> std::io::Result<()> {
    let root = std::env::args_os().nth(1).map_or_else(
        || fuzz_dir(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );
    let seeds = acm_fuzzing::seeds();
    write_seeds(&root, &seeds)?;
    println!("wrote {} seeds under {}", seeds.len(), root.display());
    Ok(())
}
