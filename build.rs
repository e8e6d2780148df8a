//! Compiles the wire contracts in `proto/` with protox (pure Rust: no system `protoc`), generates
//! the prost types and tonic services, and writes the descriptor set to `OUT_DIR` for reflection,
//! proto3 JSON and the declarative field constraints.
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "aci/v1/constraints.proto",
    "aci/v1/manifest.proto",
    "aci/v1/carrier.proto",
    "aci/v1/exchange.proto",
    "aci/store/v1/record.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(PROTOS)?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // This encoding keeps the custom field options (`aci.v1.field`) that the validator reads;
    // re-encoding prost_types would drop them as unknown fields.
    fs::write(
        out_dir.join("aci_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let mut prost_config = prost_build::Config::new();
    // `prost::Name` on every message: proto3 JSON looks types up by their full name.
    prost_config.enable_type_names();
    // A manifest is 2 KB inline: boxed where messages hold one, so that a request, a record
    // and the futures that hold them move a pointer, not the manifest (moving large futures
    // was a tenth of the CPU of a filing).
    for field in [
        ".aci.v1.SubmitRequest.filing.manifest",
        ".aci.v1.AmendRequest.filing.manifest",
        ".aci.v1.Envelope.manifest",
        ".aci.store.v1.LogRecord.manifest",
    ] {
        prost_config.boxed(field);
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(compiler.file_descriptor_set(), prost_config)?;
    Ok(())
}
