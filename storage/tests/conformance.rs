//! Both stores pass the shared conformance suite (`verdict_storage::testing`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::cell::Cell;

use verdict_storage::{testing, MemStore, RocksOptions, RocksStore};

#[test]
fn mem_store_passes_the_conformance_suite() {
    testing::run_all(MemStore::new);
}

#[test]
fn rocks_store_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    let n = Cell::new(0);
    testing::run_all(|| {
        n.set(n.get() + 1);
        RocksStore::open(
            root.path().join(n.get().to_string()),
            RocksOptions::default(),
        )
        .unwrap()
    });
}
