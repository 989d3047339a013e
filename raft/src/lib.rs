//! `verdict-raft`: Verdict's replication glue over openraft.
//!
//! **It owns** the openraft type configuration ([`TypeConfig`]), the
//! replicated [`Command`]s, the Raft log store in its own RocksDB
//! ([`LogStore`], fsync on append), and the state machine adapter
//! ([`StateMachine`]) that applies each committed entry to
//! `verdict-storage` at revision = log index, plus snapshots (a consistent
//! raw dump of the tuple store, the tenant set and the tenant keys).
//!
//! **It does not** know gRPC: the server implements the network
//! ([`openraft::RaftNetworkFactory`]) over its internal tonic service, and
//! tests use an in-memory one.
//!
//! ```text
//!  client_write(Request) ─▶ openraft ─▶ LogStore::append (RocksDB, fsync)
//!                               │ committed
//!                               ▼
//!                     StateMachine::apply ─▶ RocksStore::apply(rev = index)
//!                               │                └─▶ applied revision watch
//!                               ▼
//!                     Response (Applied | Rejected) to the proposer
//! ```

#![warn(missing_docs)]
#![expect(
    clippy::result_large_err,
    reason = "openraft's storage traits fix `openraft::StorageError` (224 bytes) as the error type; the helpers feeding them return it as is"
)]

pub mod codec;
mod command;
mod keys;
mod log_store;
mod snapshot;
mod state_machine;

use std::io::Cursor;

pub use command::{Command, GroupedWrite, Rejection, Request, Response};
pub use keys::{KeyRecord, KeySet, MemKeySet};
pub use log_store::LogStore;
pub use state_machine::{ApplyObserver, MemTenantSet, StateMachine, TenantSet};

pub use openraft;

/// A node's id in the cluster.
pub type NodeId = u64;

/// A node's address record: its internal Raft address (`HOST:PORT`).
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// Verdict's openraft type configuration.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft handle for [`TypeConfig`].
pub type Raft = openraft::Raft<TypeConfig>;

/// openraft's storage error for this config.
pub type StorageError = openraft::StorageError<NodeId>;

/// Converts any error into an openraft storage I/O error (which stops the
/// Raft node: the disk and memory may disagree).
pub(crate) fn io_err(
    make: fn(openraft::AnyError) -> openraft::StorageIOError<NodeId>,
    e: &(dyn std::error::Error + 'static),
) -> StorageError {
    StorageError::IO {
        source: make(openraft::AnyError::from_dyn(e, None)),
    }
}
