//! Generated protobuf and tonic types for `verdict.v1`.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("verdict.v1");

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("verdict_descriptor");
