//! The gRPC API (`verdict.v1`): services, protobuf conversions and the one
//! error → status mapping. Proto types stop here: the engine, schema and
//! storage never see them.

pub mod convert;
pub mod error;
pub mod guard;
pub mod http;
mod inline_gate;
mod key_service;
pub mod openfga;
pub mod pb;
mod permission_service;
pub mod raft_service;
pub mod relation_copy;
mod relationship_service;
pub mod schema_plan;
mod schema_service;
pub mod spicedb;
mod tenant_service;
pub mod tls;
mod watch_service;

use std::sync::Arc;

use crate::server::state::AppState;

pub use key_service::KeyApi;
pub use permission_service::{PermissionApi, CACHE_HEADER};
pub use relationship_service::RelationshipApi;
pub use schema_service::SchemaApi;
pub use tenant_service::TenantApi;
pub use watch_service::{WatchApi, WatchTiming};

/// The HTTP routes (health, readiness, metrics, OpenFGA's `/stores/...`
/// and SpiceDB's `/v1/...` gateway).
pub fn http_router(state: Arc<AppState>) -> axum::Router {
    http::router(state.clone())
        .merge(openfga::http_router(state.clone()))
        .merge(spicedb::http::router(state))
}

/// The gRPC router: every service behind the auth/limits/metrics layer.
pub type GrpcRouter = tonic::transport::server::Router<
    tower::layer::util::Stack<guard::GuardLayer, tower::layer::util::Identity>,
>;

/// Every gRPC service, plus health and reflection, behind
/// [`guard::GuardLayer`] (and TLS when configured).
///
/// # Errors
/// The reflection descriptor could not be loaded.
pub fn grpc_router(state: Arc<AppState>) -> Result<GrpcRouter, String> {
    let (health_reporter, health) = tonic_health::server::health_reporter();
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(spicedb::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(openfga::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| e.to_string())?;
    drop(health_reporter);
    let max = state.settings.ops.max_message_bytes;
    let mut builder = tonic::transport::Server::builder();
    if let Some((cert, key)) = &state.settings.ops.tls {
        builder = builder
            .tls_config(tls::grpc_config(cert, key)?)
            .map_err(|e| format!("TLS: {e}"))?;
    }
    let router = builder
        .layer(guard::GuardLayer::new(state.clone()))
        .add_service(health)
        .add_service(reflection)
        .add_service(
            pb::relationship_service_server::RelationshipServiceServer::new(RelationshipApi::new(
                state.clone(),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(pb::tenant_service_server::TenantServiceServer::new(
            TenantApi::new(state.clone()),
        ))
        .add_service(pb::key_service_server::KeyServiceServer::new(KeyApi::new(
            state.clone(),
        )))
        .add_service(pb::watch_service_server::WatchServiceServer::new(
            WatchApi::new(state.clone()),
        ))
        .add_service(
            pb::schema_service_server::SchemaServiceServer::new(SchemaApi::new(state.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            pb::permission_service_server::PermissionServiceServer::new(PermissionApi::new(
                state.clone(),
            ))
            .max_decoding_message_size(max),
        );
    let router = spicedb::add_services(router, state.clone());
    Ok(openfga::add_services(router, state))
}
