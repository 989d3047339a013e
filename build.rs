//! Compiles the public API (`proto/verdict/v1/*.proto`), SpiceDB's
//! `authzed.api.v1` and OpenFGA's `openfga.v1` (both vendored unchanged
//! under `proto/vendor/`) with tonic,
//! using the vendored protoc so a fresh machine needs nothing installed.

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
        compile_authzed()?;
        compile_authzed_json()?;
        compile_openfga()?;
    }
    Ok(())
}

/// SpiceDB's `authzed.api.v1` services and messages, plus the
/// `google.rpc.Status` they embed. The validation and OpenAPI protos the
/// authzed files import only for their options are parsed but not
/// generated (their packages are dropped from the descriptor set before
/// code generation); the full set, imports included, is written as
/// `authzed_descriptor.bin` for gRPC reflection.
#[cfg(feature = "server")]
fn compile_authzed() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from("proto/vendor");
    let protos: Vec<std::path::PathBuf> = [
        "authzed/api/v1/core.proto",
        "authzed/api/v1/debug.proto",
        "authzed/api/v1/error_reason.proto",
        "authzed/api/v1/permission_service.proto",
        "authzed/api/v1/schema_service.proto",
        "authzed/api/v1/watch_service.proto",
        "authzed/api/v1/experimental_service.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    println!("cargo:rerun-if-changed=proto/vendor");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let status = std::process::Command::new(&protoc)
        .arg("--include_imports")
        .arg(format!(
            "--descriptor_set_out={}",
            out_dir.join("authzed_descriptor.bin").display()
        ))
        .arg(format!("-I{}", root.display()))
        .arg(format!("-I{}", include.display()))
        .args(&protos)
        .status()?;
    if !status.success() {
        return Err(format!("protoc failed on the authzed protos: {status}").into());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let mut fds = config.load_fds(&protos, &[root, include])?;
    // The well-known types stay (prost maps them to prost-types and needs
    // their descriptors to derive traits); validate, buf.validate,
    // google.api and the OpenAPI options go.
    fds.file.retain(|f| {
        matches!(
            f.package(),
            "authzed.api.v1" | "google.rpc" | "google.protobuf"
        )
    });
    tonic_prost_build::configure()
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}

/// A second copy of the `authzed.api.v1` and `google.rpc` messages (no
/// services) with protojson serde impls from pbjson, for SpiceDB's
/// HTTP/JSON gateway. A separate copy because pbjson needs the well-known
/// types as `pbjson_types` while the gRPC copy uses `prost_types`; the
/// gateway converts between the two by their (identical) wire encoding.
#[cfg(feature = "server")]
fn compile_authzed_json() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from("proto/vendor");
    let protos: Vec<std::path::PathBuf> = [
        "authzed/api/v1/core.proto",
        "authzed/api/v1/debug.proto",
        "authzed/api/v1/error_reason.proto",
        "authzed/api/v1/permission_service.proto",
        "authzed/api/v1/schema_service.proto",
        "authzed/api/v1/watch_service.proto",
        "authzed/api/v1/experimental_service.proto",
        "google/rpc/status.proto",
        "google/rpc/error_details.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("authzed_json");
    std::fs::create_dir_all(&out_dir)?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_well_known_types();
    config.extern_path(".google.protobuf", "::pbjson_types");
    let mut fds = config.load_fds(&protos, &[root, include])?;
    fds.file.retain(|f| {
        matches!(
            f.package(),
            "authzed.api.v1" | "google.rpc" | "google.protobuf"
        )
    });
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(false)
        .out_dir(&out_dir)
        .compile_fds_with_config(fds, config)?;
    let descriptors = std::fs::read(
        std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("authzed_descriptor.bin"),
    )?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .out_dir(&out_dir)
        .ignore_unknown_fields()
        .emit_fields()
        .build(&[".authzed.api.v1", ".google.rpc"])?;
    Ok(())
}

/// OpenFGA's `openfga.v1` service and messages, with protojson serde
/// impls from pbjson (the HTTP/JSON API decodes the same messages the
/// gRPC service does). The well-known types map to `pbjson_types` (their
/// JSON forms: a Struct is a JSON object, a Timestamp RFC 3339, wrappers
/// plain values). As for authzed, the option-only imports are parsed but
/// not generated; the full set is written as `openfga_descriptor.bin` for
/// gRPC reflection and pbjson.
#[cfg(feature = "server")]
fn compile_openfga() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from("proto/vendor");
    let protos: Vec<std::path::PathBuf> = [
        "openfga/v1/authzmodel.proto",
        "openfga/v1/openfga.proto",
        "openfga/v1/openfga_service.proto",
        "openfga/v1/errors_ignore.proto",
        "openfga/v1/openfga_service_consistency.proto",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("openfga_descriptor.bin");
    let status = std::process::Command::new(&protoc)
        .arg("--include_imports")
        .arg(format!(
            "--descriptor_set_out={}",
            descriptor_path.display()
        ))
        .arg(format!("-I{}", root.display()))
        .arg(format!("-I{}", include.display()))
        .args(&protos)
        .status()?;
    if !status.success() {
        return Err(format!("protoc failed on the openfga protos: {status}").into());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_well_known_types();
    config.extern_path(".google.protobuf", "::pbjson_types");
    let mut fds = config.load_fds(&protos, &[root, include])?;
    fds.file
        .retain(|f| matches!(f.package(), "openfga.v1" | "google.protobuf"));
    tonic_prost_build::configure()
        .build_client(true)
        .compile_fds_with_config(fds, config)?;
    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .ignore_unknown_fields()
        .emit_fields()
        .build(&[".openfga.v1"])?;
    Ok(())
}
