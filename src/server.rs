//! The server: settings, shared state, the commit path, zookies and the
//! process lifecycle (`verdict serve`).
//!
//! ```text
//! gRPC (api::*) ──▶ AppState ──▶ RaftCommitter ──▶ openraft ──▶ RocksStore (writes)
//!                      │     └──▶ engine_at(tenant, revision) ──▶ Engine (reads)
//! HTTP (/healthz, /metrics)
//! ```

pub mod cluster;
pub mod config;
pub mod consistency;
pub mod decision_log;
pub mod group_index_sync;
pub mod guard;
pub mod http;
mod http_metrics;
pub mod key_commit;
pub mod keys;
pub mod leader_contact;
pub mod metrics;
pub mod ops;
pub mod ops_config;
pub mod raft_commit;
pub mod raft_metrics;
pub mod raft_net;
mod raft_run;
pub mod rate_limit;
pub mod run;
pub mod shared_read;
pub mod state;
pub mod tenants;
pub mod tls;
pub use crate::zookie;
