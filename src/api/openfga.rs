//! OpenFGA's wire API (`openfga.v1`) beside `verdict.v1` and SpiceDB's,
//! so the `fga` CLI and the OpenFGA SDKs work against Verdict: gRPC
//! `openfga.v1.OpenFGAService` on the gRPC port, and its HTTP/JSON routes
//! (`/stores/...`) on the HTTP port.
//!
//! ```text
//!  gRPC openfga.v1 ─▶ guard (auth::authenticate) ─▶ grpc ─┐
//!  HTTP /stores/... ─▶ http (auth::authenticate, protojson) ─┴▶ service::Fga
//!     (ids: store ⇄ tenant, ULIDs, tokens; model: models ⇄ schema
//!      versions; tuples: type:id ⇄ Verdict tuples)
//!     ─▶ AppState: read_revision, engine_at, engine, committer, store
//!     ◀── FgaError: OpenFGA's code, as HTTP status + {"code","message"}
//!                   or as the gRPC status number (error.rs)
//! ```
//!
//! Stores are tenants; authorization models are schema versions. It uses
//! only the node layer (`crate::server`), never another front door.
//! Assertions and store names are meta-only schema versions (model.rs);
//! an opt-in consistency token gives read-your-writes (token.rs).

pub mod auth;
pub mod error;
mod grpc;
mod http;
pub mod ids;
pub mod model;
pub mod pb;
mod service;
pub mod token;
pub mod tuples;

use std::sync::Arc;

pub use service::Fga;

use crate::server::state::AppState;

/// Adds `openfga.v1.OpenFGAService` to a gRPC router.
pub fn add_services<L>(
    router: tonic::transport::server::Router<L>,
    state: Arc<AppState>,
) -> tonic::transport::server::Router<L> {
    let max = state.settings.ops.max_message_bytes;
    router.add_service(
        pb::open_fga_service_server::OpenFgaServiceServer::new(Fga::new(state))
            .max_decoding_message_size(max),
    )
}

/// The HTTP/JSON routes (`/stores/...`).
pub fn http_router(state: Arc<AppState>) -> axum::Router {
    http::router(state)
}

/// Puts OpenFGA's own code on the wire as the gRPC status (OpenFGA
/// answers `Code(2021)` etc.; clients and its conformance runner compare
/// the number): an error status carrying [`error::CODE_HEADER`] gets
/// `grpc-status` from it.
pub fn rewrite_grpc_status(
    mut response: ::http::Response<tonic::body::Body>,
) -> ::http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    if let Some(code) = headers.remove(error::CODE_HEADER) {
        headers.insert("grpc-status", code);
    }
    response
}
