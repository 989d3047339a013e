//! Verdict's Raft glue (placeholder until the replication issue lands).
