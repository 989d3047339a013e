//! The server: settings, shared state, the commit path, zookies and the
//! process lifecycle (`verdict serve`).
//!
//! ```text
//! gRPC (api::*) ──▶ AppState ──▶ LocalCommitter ──▶ RocksStore (writes)
//!                      │     └──▶ engine_at(tenant, revision) ──▶ Engine (reads)
//! HTTP (/healthz, /metrics)
//! ```

pub mod commit;
pub mod config;
pub mod http;
pub mod run;
pub mod state;
pub mod tenants;
pub use crate::zookie;
