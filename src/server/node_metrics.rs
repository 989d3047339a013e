//! Every node metric for the HTTP port's `/metrics` (`api::http`), read at
//! scrape time and written in the OpenMetrics text format by
//! [`super::exposition`]: revisions, the decision cache, request counts
//! and latencies, revision lag, watch consumers, load shedding, rate
//! limits, the decision log, storage sizes, keys, the group index and Raft.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use crate::engine::GroupIndexStats;
use verdict_storage::RelationStore;

use super::exposition::{self, Encoded};
use super::state::AppState;

pub use super::exposition::CONTENT_TYPE;

/// Every node metric of `state`, as one OpenMetrics document.
pub fn render(state: &Arc<AppState>) -> String {
    exposition::render(NodeMetrics(state.clone()))
}

/// The node's metrics, read from its state on each scrape.
struct NodeMetrics(Arc<AppState>);

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeMetrics")
    }
}

impl Collector for NodeMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Encoded {
        let state = &*self.0;
        let e = &mut encoder;
        exposition::gauge(
            e,
            "verdict_applied_revision",
            "The highest applied revision.",
            state.store.applied_revision().0,
        )?;
        exposition::gauge(
            e,
            "verdict_gc_floor_revision",
            "The oldest readable revision.",
            state.store.gc_floor().0,
        )?;
        let cache = state.cache.stats();
        exposition::counter(
            e,
            "verdict_decision_cache_hits",
            "Sub-problems answered from the decision cache.",
            cache.hits,
        )?;
        exposition::counter(
            e,
            "verdict_decision_cache_misses",
            "Decision cache lookups that missed.",
            cache.misses,
        )?;
        exposition::gauge(
            e,
            "verdict_decision_cache_bytes",
            "Approximate bytes held by the decision cache.",
            cache.bytes,
        )?;
        let lookups = cache.hits + cache.misses;
        let ratio = if lookups == 0 {
            0.0
        } else {
            cache.hits as f64 / lookups as f64
        };
        exposition::gauge(
            e,
            "verdict_decision_cache_hit_ratio",
            "Decision cache hits / lookups since start.",
            ratio,
        )?;
        exposition::gauge(
            e,
            "verdict_revision_lag",
            "Revisions minimize_latency reads trail the applied revision by.",
            state.read_lag(),
        )?;
        exposition::gauge(
            e,
            "verdict_storage_live_sst_bytes",
            "Total size of RocksDB's live SST files.",
            state.store.live_sst_bytes(),
        )?;
        exposition::gauge(
            e,
            "verdict_storage_memory_bytes",
            "Approximate RocksDB memory (memtables, block cache, table readers).",
            state.store.approximate_memory_bytes(),
        )?;
        exposition::gauge(
            e,
            "verdict_api_keys",
            "Tenant API keys on this node.",
            state.keys.list(None).len(),
        )?;
        if let Some(index) = &state.group_index {
            group_index(e, &index.stats())?;
        }
        state.ops.metrics.encode(e)?;
        super::raft_metrics::encode(state, e)
    }
}

/// The group index's answers, fallbacks by reason, rebuilds and size.
fn group_index(e: &mut DescriptorEncoder<'_>, s: &GroupIndexStats) -> Encoded {
    exposition::counter(
        e,
        "verdict_group_index_answers",
        "Questions on nesting relations answered by the group index.",
        s.answers,
    )?;
    exposition::counters(
        e,
        "verdict_group_index_fallbacks",
        "Questions on nesting relations the group index left to the walker, by reason.",
        [
            ("not_ready", s.fallback_not_ready),
            ("behind", s.fallback_behind),
            ("stale_relation", s.fallback_stale),
            ("not_qualifying", s.fallback_not_qualifying),
            ("too_deep", s.fallback_too_deep),
        ]
        .map(|(reason, n)| ([("reason", reason)], n)),
    )?;
    exposition::counter(
        e,
        "verdict_group_index_rebuilds",
        "Tenant group indexes built (start, snapshot install, schema change, compaction).",
        s.rebuilds,
    )?;
    exposition::counter(
        e,
        "verdict_group_index_compactions",
        "Tenant group index rebuilds started to release interned ids no member or edge names any more.",
        s.compactions,
    )?;
    exposition::counter(
        e,
        "verdict_group_index_direct_imports",
        "Bulk import entries applied to the group index from their own tuples (not read back from the changelog).",
        s.imports_direct,
    )?;
    exposition::gauge(
        e,
        "verdict_group_index_members",
        "Direct member tuples held by the group index.",
        s.members,
    )?;
    exposition::gauge(
        e,
        "verdict_group_index_edges",
        "Nesting edges held by the group index.",
        s.edges,
    )
}
