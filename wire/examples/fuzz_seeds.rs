//! Writes the seed corpora of the fuzz targets, built from valid traffic, into
//! `fuzz/corpus/<target>/` (or under the directory given as the first argument). Existing files
//! of other names are left alone, so a corpus the fuzzer has grown keeps its entries.
//!
//! ```text
//! cargo run -p acm-wire --example fuzz_seeds
//! ```

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus"),
        PathBuf::from,
    );
    let seeds = acm_wire::fuzzing::seeds();
    for seed in &seeds {
        let dir = root.join(seed.target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{}", seed.name)), &seed.bytes)?;
    }
    println!("wrote {} seeds under {}", seeds.len(), root.display());
    Ok(())
}
