//! Raft gauges for `/metrics` (Prometheus text).

use std::fmt::Write as _;

use super::state::AppState;

/// Appends term, leader, log/applied/snapshot indexes, per-peer replication
/// lag (leader only) and snapshot counts.
pub fn write(state: &AppState, out: &mut String) {
    let m = state.committer.raft().metrics().borrow().clone();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name} {value}");
    };
    gauge(
        "verdict_raft_term",
        "The current Raft term.",
        m.current_term,
    );
    gauge(
        "verdict_raft_leader_id",
        "The known leader's node id (0 = none).",
        m.current_leader.unwrap_or(0),
    );
    gauge(
        "verdict_raft_is_leader",
        "1 when this node leads.",
        u64::from(m.current_leader == Some(m.id)),
    );
    gauge(
        "verdict_raft_last_log_index",
        "The last log index on this node.",
        m.last_log_index.unwrap_or(0),
    );
    let applied = m.last_applied.map_or(0, |l| l.index);
    gauge(
        "verdict_raft_applied_index",
        "The last log index applied to the store.",
        applied,
    );
    gauge(
        "verdict_raft_snapshot_index",
        "The last log index in this node's snapshot.",
        m.snapshot.map_or(0, |l| l.index),
    );
    let (built, installed) = state.committer.state_machine().snapshot_counts();
    gauge(
        "verdict_raft_snapshots_built_total",
        "Snapshots built since start.",
        built,
    );
    gauge(
        "verdict_raft_snapshots_installed_total",
        "Snapshots installed from the leader since start.",
        installed,
    );
    if let Some(group) = state.committer.group_metrics() {
        group.render(out);
    }
    if let Some(replication) = &m.replication {
        let _ = writeln!(
            out,
            "# HELP verdict_raft_replication_lag_entries Entries the leader's log is ahead of each peer."
        );
        let _ = writeln!(out, "# TYPE verdict_raft_replication_lag_entries gauge");
        let last = m.last_log_index.unwrap_or(0);
        for (peer, matched) in replication {
            let lag = last.saturating_sub(matched.map_or(0, |l| l.index));
            let _ = writeln!(
                out,
                "verdict_raft_replication_lag_entries{{peer=\"{peer}\"}} {lag}"
            );
        }
    }
}
