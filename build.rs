//! Compiles the public API (`proto/verdict/v1/*.proto`) with tonic, using
//! the vendored protoc so a fresh machine needs nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[cfg(feature = "server")]
    {
        let protos: Vec<std::path::PathBuf> = [
            "proto/verdict/v1/core.proto",
            "proto/verdict/v1/schema.proto",
            "proto/verdict/v1/relationships.proto",
            "proto/verdict/v1/permissions.proto",
            "proto/verdict/v1/watch.proto",
            "proto/verdict/v1/tenants.proto",
            "proto/verdict/v1/keys.proto",
            "proto/verdict/v1/raft.proto",
        ]
        .iter()
        .map(std::path::PathBuf::from)
        .collect();
        for p in &protos {
            println!("cargo:rerun-if-changed={}", p.display());
        }
        let mut config = tonic_prost_build::Config::new();
        config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
        let include = protoc_bin_vendored::include_path()?;
        tonic_prost_build::configure()
            .file_descriptor_set_path(
                std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("verdict_descriptor.bin"),
            )
            .compile_with_config(
                config,
                &protos,
                &[std::path::PathBuf::from("proto"), include],
            )?;
    }
    Ok(())
}
