//! Compiles `proto/acm/v1/acm.proto` with protox (pure Rust, no `protoc` needed) and generates
//! the message types with prost.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for one checkout may be run for another.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR unset")?;
    let proto_dir = std::path::Path::new(&manifest_dir).join("../proto");
    let file = proto_dir.join("acm/v1/acm.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_dir])?;
    prost_build::Config::new()
        .bytes(["."])
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
