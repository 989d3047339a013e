//! The `/metrics` lines beyond revisions and the cache: request counts and
//! latencies, the cache hit ratio, revision lag, watch consumers, load
//! shedding, rate limits, the decision log and storage sizes.

use std::fmt::Write as _;

use super::state::AppState;

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// Appends the operational metrics of `state` to `out`.
pub fn render(state: &AppState, out: &mut String) {
    let cache = state.cache.stats();
    let lookups = cache.hits + cache.misses;
    let ratio = if lookups == 0 {
        0.0
    } else {
        cache.hits as f64 / lookups as f64
    };
    gauge(
        out,
        "verdict_decision_cache_hit_ratio",
        "Decision cache hits / lookups since start.",
        ratio,
    );
    gauge(
        out,
        "verdict_revision_lag",
        "Revisions minimize_latency reads trail the applied revision by.",
        state.read_lag(),
    );
    gauge(
        out,
        "verdict_storage_live_sst_bytes",
        "Total size of RocksDB's live SST files.",
        state.store.live_sst_bytes(),
    );
    gauge(
        out,
        "verdict_storage_memory_bytes",
        "Approximate RocksDB memory (memtables, block cache, table readers).",
        state.store.approximate_memory_bytes(),
    );
    gauge(
        out,
        "verdict_api_keys",
        "Tenant API keys on this node.",
        state.keys.list(None).len(),
    );
    if let Some(index) = &state.group_index {
        index.render_metrics(out);
    }
    state.ops.metrics.render(out);
}
