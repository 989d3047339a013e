//! The HTTP port: `/healthz` (alive), `/readyz` (serving), `/metrics`
//! (Prometheus text).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use verdict_storage::RelationStore;

use super::state::AppState;

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { (StatusCode::OK, "ready\n") }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> String {
    let mut out = String::new();
    let applied = state.store.applied_revision().0;
    let floor = state.store.gc_floor().0;
    let cache = state.cache.stats();
    let _ = writeln!(
        out,
        "# HELP verdict_applied_revision The highest applied revision."
    );
    let _ = writeln!(out, "# TYPE verdict_applied_revision gauge");
    let _ = writeln!(out, "verdict_applied_revision {applied}");
    let _ = writeln!(
        out,
        "# HELP verdict_gc_floor_revision The oldest readable revision."
    );
    let _ = writeln!(out, "# TYPE verdict_gc_floor_revision gauge");
    let _ = writeln!(out, "verdict_gc_floor_revision {floor}");
    let _ = writeln!(
        out,
        "# HELP verdict_decision_cache_hits_total Sub-problems answered from the decision cache."
    );
    let _ = writeln!(out, "# TYPE verdict_decision_cache_hits_total counter");
    let _ = writeln!(out, "verdict_decision_cache_hits_total {}", cache.hits);
    let _ = writeln!(
        out,
        "# HELP verdict_decision_cache_misses_total Decision cache lookups that missed."
    );
    let _ = writeln!(out, "# TYPE verdict_decision_cache_misses_total counter");
    let _ = writeln!(out, "verdict_decision_cache_misses_total {}", cache.misses);
    let _ = writeln!(
        out,
        "# HELP verdict_decision_cache_bytes Approximate bytes held by the decision cache."
    );
    let _ = writeln!(out, "# TYPE verdict_decision_cache_bytes gauge");
    let _ = writeln!(out, "verdict_decision_cache_bytes {}", cache.bytes);
    super::http_metrics::render(&state, &mut out);
    super::raft_metrics::write(&state, &mut out);
    out
}
