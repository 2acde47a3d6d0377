//! Writes the seed corpus of the `engine` fuzz target into `fuzz/corpus/engine/` (or under the
//! directory given as the first argument), leaving other files there alone.
//!
//! ```text
//! cargo run -p acm --example engine_fuzz_seeds
//! ```

use std::path::PathBuf;

use acm_wire::fuzzing::replay::{fuzz_dir, write_seeds};

fn main() -> std::io::Result<()> {
    let corpus = std::env::args_os().nth(1).map_or_else(
        || fuzz_dir(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        PathBuf::from,
    );
    let seeds = acm::fuzzing::seeds();
    write_seeds(&corpus, &seeds)?;
    println!(
        "wrote {} engine seeds under {}",
        seeds.len(),
        corpus.display()
    );
    Ok(())
}
