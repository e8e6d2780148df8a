//! Compiles the wire contracts in `proto/` with protox (pure Rust: no system `protoc`), generates
//! the prost types and tonic services, and writes the descriptor set to `OUT_DIR` for reflection
//! and for proto3 JSON.
use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "aci/v1/manifest.proto",
    "aci/v1/carrier.proto",
    "aci/store/v1/record.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("aci_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    let mut prost_config = prost_build::Config::new();
    // `prost::Name` on every message: proto3 JSON looks types up by their full name.
    prost_config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(descriptors, prost_config)?;
    Ok(())
}
