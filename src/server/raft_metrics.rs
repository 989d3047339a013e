//! Raft gauges for `/metrics`.

use prometheus_client::encoding::DescriptorEncoder;

use super::exposition::{self, Encoded};
use super::state::AppState;

/// Writes term, leader, log/applied/snapshot indexes, snapshot counts, the
/// group committer's histograms and per-peer replication lag (leader only).
pub fn encode(state: &AppState, encoder: &mut DescriptorEncoder<'_>) -> Encoded {
    let m = state.committer.raft().metrics().borrow().clone();
    let gauges = [
        (
            "verdict_raft_term",
            "The current Raft term.",
            m.current_term,
        ),
        (
            "verdict_raft_leader_id",
            "The known leader's node id (0 = none).",
            m.current_leader.unwrap_or(0),
        ),
        (
            "verdict_raft_is_leader",
            "1 when this node leads.",
            u64::from(m.current_leader == Some(m.id)),
        ),
        (
            "verdict_raft_last_log_index",
            "The last log index on this node.",
            m.last_log_index.unwrap_or(0),
        ),
        (
            "verdict_raft_applied_index",
            "The last log index applied to the store.",
            m.last_applied.map_or(0, |l| l.index),
        ),
        (
            "verdict_raft_snapshot_index",
            "The last log index in this node's snapshot.",
            m.snapshot.map_or(0, |l| l.index),
        ),
    ];
    for (name, help, value) in gauges {
        exposition::gauge(encoder, name, help, value)?;
    }
    let (built, installed) = state.committer.state_machine().snapshot_counts();
    exposition::counter(
        encoder,
        "verdict_raft_snapshots_built",
        "Snapshots built since start.",
        built,
    )?;
    exposition::counter(
        encoder,
        "verdict_raft_snapshots_installed",
        "Snapshots installed from the leader since start.",
        installed,
    )?;
    if let Some(group) = state.committer.group_metrics() {
        group.encode(encoder)?;
    }
    if let Some(replication) = &m.replication {
        let last = m.last_log_index.unwrap_or(0);
        exposition::gauges(
            encoder,
            "verdict_raft_replication_lag_entries",
            "Entries the leader's log is ahead of each peer.",
            replication.iter().map(|(peer, matched)| {
                (
                    [("peer", peer.to_string())],
                    last.saturating_sub(matched.map_or(0, |l| l.index)),
                )
            }),
        )?;
    }
    Ok(())
}
