//! Compiles `proto/` with protox (pure Rust), so building needs no system `protoc`.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "govit/projects/v1/projects.proto",
        "govit/experts/v1/experts.proto",
        "govit/scheduling/v1/scheduling.proto",
        "govit/common/v1/common.proto",
        // Not imported by govit's files, but what clients decode error details with: compiled
        // so that reflection serves them.
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
        "google/rpc/code.proto",
    ];
    // Each file by name: a directory alone is not reliably rescanned for edits.
    let imported = [
        "google/type/date.proto",
        "google/api/field_behavior.proto",
        "google/api/resource.proto",
    ];
    for file in files.iter().chain(&imported) {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let descriptors = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds does not write the descriptor set itself; reflection needs it.
    std::fs::write(
        out.join("govit_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
