//! `verdict-storage`: Verdict's durable tuple store.
//!
//! **It owns** the relationship tuples and schema versions of every tenant,
//! stored in RocksDB with MVCC history so any revision inside the retention
//! window can be read exactly; the forward (resource → subjects) and
//! reverse (subject → resources) indexes; the per-tenant changelog that
//! watch and replication read; garbage collection of old history and of
//! expired relationships; bulk
//! import/export; the key and value encodings; and the tuple text form.
//!
//! **It does not** know about gRPC, Raft or the schema language: revisions
//! are handed in by the caller (the Raft log index), schema text is stored
//! opaquely, and checks, caveat evaluation and expiry filtering happen in
//! the engine. `rocksdb` never appears outside the [`rocks`] module.
//!
//! ```text
//!  raft state machine              engine / watch / admin
//!        │ apply(tenant, rev, WriteBatch)      │ snapshot(tenant, rev) → TupleReader
//!        ▼                                      ▼        changes_since(tenant, rev)
//!  ┌──────────── RelationStore (RocksStore | MemStore) ─────────────┐
//!  │ plan: validate → preconditions → ops (in order) → Plan        │
//!  │ one RocksDB WriteBatch: FWD + REV versions, LOG entry,         │
//!  │   SCHEMA record, REVINFO, applied marker   (WAL, fsync)        │
//!  └──────────────┬───────────────────────────────┬─────────────────┘
//!                 ▼                               ▼
//!        keys.rs (order-preserving,         value.rs (versioned
//!        tenant-prefixed key codec)          binary values)
//! ```
//!
//! Durability: see [`rocks`] — by default every acknowledged write is in the
//! fsynced WAL ([`RocksOptions::sync_writes`]).

#![warn(missing_docs)]
#![cfg_attr(
    not(feature = "rocksdb"),
    allow(
        dead_code,
        reason = "without RocksDB, parts of the key and value codecs only the store uses sit idle"
    )
)]

mod batch;
pub mod durable_file;
mod error;
mod filter;
mod keys;
mod mem;
mod plan;
mod revision;
#[cfg(feature = "rocksdb")]
pub mod rocks;
mod store;
mod tenant;
#[cfg(feature = "testing")]
pub mod testing;
mod tuple;
mod value;

pub use batch::{
    ApplyOutcome, ApplyStatus, Change, ChangeBatch, ChangeKind, GcStats, Op, Precondition,
    SchemaVersionRecord, StoredSchema, WriteBatch,
};
pub use error::{ErrorCode, Result, StorageError, TupleError, TuplePart};
pub use filter::{IdFilter, SubjectRelationFilter, TupleFilter};
pub use mem::{MemSnapshot, MemStore};
pub use revision::{Revision, Timestamp};
#[cfg(feature = "rocksdb")]
pub use rocks::{
    GcWorker, GroupOutcome, RocksOptions, RocksSnapshot, RocksStore, DEFAULT_EXPIRY_GRACE,
};
pub use store::{Cursor, RelationStore, ReverseQuery, ScanPage, TupleReader, TupleReaderExt};
pub use tenant::Tenant;
pub use tuple::{ObjectRef, SubjectRef, Tuple, TupleCaveat, MAX_OBJECT_ID_LEN, WILDCARD};
