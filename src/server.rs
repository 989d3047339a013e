//! The node layer: settings, shared state, consistency, the commit path
//! over Raft, tenants, keys, limits, metrics and the node's typed errors
//! ([`error::NodeError`], each with a stable reason code). It knows nothing
//! of the front doors: `api` (transport) calls it, and process start-up
//! (`serve`) wires both. A layering test (`tests/layers.rs`) keeps it so.
//!
//! ```text
//! front doors (api::*) ──▶ AppState ──▶ RaftCommitter ──▶ openraft ──▶ RocksStore (writes)
//!                             │     └──▶ engine_at(tenant, revision) ──▶ Engine (reads)
//! ```

pub mod cluster;
pub mod config;
pub mod consistency;
pub mod counter_commit;
pub mod decision_log;
pub mod error;
pub mod exposition;
pub mod group_commit;
pub mod group_index_sync;
pub mod key_commit;
pub mod keys;
pub mod leader_contact;
pub mod metrics;
pub mod node_metrics;
pub mod openfga_config;
pub mod ops;
pub mod ops_config;
pub mod pre_vote;
pub mod raft_commit;
pub mod raft_metrics;
pub mod raft_net;
pub mod rate_limit;
pub mod request_context;
pub mod shared_read;
pub mod state;
pub mod tenants;
pub use crate::zookie;
