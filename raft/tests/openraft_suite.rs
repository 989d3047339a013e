//! openraft's own storage test suite (`openraft::testing::Suite`) over
//! Verdict's log store and state machine, each on a real RocksDB directory:
//! vote and log persistence, purge and truncation, membership from log and
//! state machine, initial state recovery, applying blank and membership
//! entries, and a snapshot built on one machine installed on another.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use verdict_raft::{LogStore, MemKeySet, MemTenantSet, StateMachine, TenantSet, TypeConfig};
use verdict_storage::{RocksOptions, RocksStore};

/// Each test gets a fresh directory with a log store and a state machine
/// (its own RocksDB store); the directory lives as long as the guard.
struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let io =
            |e: String| StorageError::from(StorageIOError::<u64>::write(&std::io::Error::other(e)));
        let dir = tempfile::tempdir().map_err(|e| io(e.to_string()))?;
        let log = LogStore::open(dir.path().join("log"), false).map_err(|e| io(e.to_string()))?;
        let store = Arc::new(
            RocksStore::open(
                dir.path().join("store"),
                RocksOptions {
                    sync_writes: false,
                    ..RocksOptions::default()
                },
            )
            .map_err(|e| io(e.to_string()))?,
        );
        let tenants = Arc::new(MemTenantSet::default());
        tenants.insert("default").map_err(io)?;
        let sm = StateMachine::open_with_keys(
            store,
            tenants,
            Arc::new(MemKeySet::default()),
            dir.path().join("snap"),
        )
        .map_err(|e| io(e.to_string()))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn the_log_store_and_state_machine_pass_openraft_s_storage_suite() {
    Suite::test_all(RocksBuilder).unwrap();
}
