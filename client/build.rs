//! Generates the gRPC client stubs for `verdict.v1` from the server's own
//! protos (`../proto/verdict/v1`), with the vendored protoc, so the client
//! needs neither the server crate nor RocksDB.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from("../proto");
    let protos: Vec<std::path::PathBuf> = [
        "verdict/v1/core.proto",
        "verdict/v1/schema.proto",
        "verdict/v1/relationships.proto",
        "verdict/v1/permissions.proto",
        "verdict/v1/watch.proto",
        "verdict/v1/tenants.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let include = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_with_config(config, &protos, &[root, include])?;
    Ok(())
}
