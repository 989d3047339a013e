//! SpiceDB's wire API (`authzed.api.v1`) beside `verdict.v1`, so the
//! official SpiceDB clients and SDKs work against Verdict unchanged.
//!
//! ```text
//!  authzed.api.v1 request ──▶ guard (auth::authenticate: bearer → tenant)
//!     ──▶ permissions / schema / watch  (convert: validation + pb ⇄ domain,
//!                                         cursor: opaque resumable cursors)
//!     ──▶ AppState: read_revision, engine_at, engine, committer, store
//!     ◀── SpiceError → tonic::Status with google.rpc.ErrorInfo (error.rs)
//! ```
//!
//! It uses only the node layer (`crate::server`), never the `verdict.v1`
//! handlers. ZedTokens are Verdict zookies. What is not implemented yet
//! answers UNIMPLEMENTED (see README "Coming from SpiceDB").
//! SchemaService's reflection RPCs are `reflection` (messages),
//! `reachability` and `schema_diff`; CheckPermission's trace and expiry
//! are `debug_trace`; the relationship counters are `counters`.

pub mod auth;
pub mod convert;
mod counters;
pub mod cursor;
mod debug_trace;
pub mod error;
mod experimental;
pub mod http;
pub mod json;
pub mod pb;
mod permissions;
mod reachability;
mod reflection;
mod schema;
mod schema_diff;
pub mod testing;
mod watch;

use std::sync::Arc;

pub use experimental::ExperimentalApi;
pub use permissions::PermissionsApi;
pub use schema::SchemaApi;
pub use watch::WatchApi;

use crate::server::state::AppState;

/// Adds the `authzed.api.v1` services to a gRPC router.
pub fn add_services<L>(
    router: tonic::transport::server::Router<L>,
    state: Arc<AppState>,
) -> tonic::transport::server::Router<L> {
    let max = state.settings.ops.max_message_bytes;
    router
        .add_service(
            pb::permissions_service_server::PermissionsServiceServer::new(PermissionsApi::new(
                state.clone(),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(
            pb::schema_service_server::SchemaServiceServer::new(SchemaApi::new(state.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            pb::experimental_service_server::ExperimentalServiceServer::new(ExperimentalApi::new(
                PermissionsApi::new(state.clone()),
            ))
            .max_decoding_message_size(max),
        )
        .add_service(pb::watch_service_server::WatchServiceServer::new(
            WatchApi::new(state),
        ))
}
