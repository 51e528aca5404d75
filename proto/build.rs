//! Compiles the `.proto` contracts with protox (no system `protoc` needed), generates the
//! tonic/prost code and writes the encoded file-descriptor set used for server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO_FILES: &[&str] = &[
    "ra/common/v1/common.proto",
    "ra/dataset/v1/dataset.proto",
    "ra/sandbox/v1/sandbox.proto",
    "ra/evaluator/v1/evaluator.proto",
    "ra/registry/v1/registry.proto",
    "ra/planner/v1/planner.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(PROTO_FILES, ["."])?;
    std::fs::write(
        out_dir.join("ra_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Batches of samples decode without a copy (a slice of the receive buffer).
        .bytes(".ra.dataset.v1.Batch.x")
        .compile_fds(descriptors)?;
    Ok(())
}
