//! Compiles `proto/acm/v1/acm.proto` with protox (pure Rust, no `protoc` needed) and generates
//! the message types with prost: once with `PeerInfo` taken from `src/peer_info.rs` (the crate's
//! `pb`), and once entirely generated (`bare_pb`, the baseline of the `bare-prost` feature).

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be run for another.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let out_dir = std::env::var_os("OUT_DIR").ok_or("OUT_DIR unset")?;
    let proto_dir = Path::new(&manifest_dir).join("../proto");
    let file = proto_dir.join("acm/v1/acm.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_dir])?;
    for (dir, own_peer_info) in [("pb", true), ("bare_pb", false)] {
        let out = Path::new(&out_dir).join(dir);
        std::fs::create_dir_all(&out)?;
        let mut config = prost_build::Config::new();
        config.out_dir(&out).bytes(["."]).btree_map(["."]);
        if own_peer_info {
            config.extern_path(".acm.v1.PeerInfo", "crate::peer_info::PeerInfo");
        }
        config.compile_fds(descriptors.clone())?;
    }
    Ok(())
}
