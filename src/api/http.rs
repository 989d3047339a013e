//! The HTTP port's own routes: `/healthz` (alive), `/readyz` (serving),
//! `/metrics` (Prometheus text, rendered by the node layer).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::server::node_metrics;
use crate::server::state::AppState;

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { (StatusCode::OK, "ready\n") }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, node_metrics::CONTENT_TYPE)],
        node_metrics::render(&state),
    )
}
