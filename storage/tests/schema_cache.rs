//! The in-memory newest-schema cache of `RocksStore::schema_at` answers
//! exactly what a seek would, across new versions, tombstones, reopening
//! and a raw snapshot install that replaces everything.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use verdict_storage::{
    RelationStore, Revision, RocksOptions, RocksStore, SchemaVersionRecord, Tenant, WriteBatch,
};

fn record(version: u64) -> SchemaVersionRecord {
    SchemaVersionRecord {
        version,
        text: format!("definition user {{}} // v{version}"),
        comment: String::new(),
        author: String::new(),
    }
}

fn version_at(s: &RocksStore, t: &Tenant, r: u64) -> Option<u64> {
    s.schema_at(t, Revision(r))
        .unwrap()
        .map(|x| x.record.version)
}

#[test]
fn cached_schema_reads_match_history_across_reopen_and_raw_install() {
    let root = tempfile::tempdir().unwrap();
    let t = Tenant::new("acme").unwrap();
    let a = root.path().join("a");
    {
        let s = RocksStore::open(&a, RocksOptions::default()).unwrap();
        // Cached as "no schema" first; the apply must replace that entry.
        assert_eq!(version_at(&s, &t, 0), None);
        s.apply(&t, Revision(1), &WriteBatch::new().put_schema(record(1)))
            .unwrap();
        assert_eq!(version_at(&s, &t, 1), Some(1));
        s.apply(&t, Revision(2), &WriteBatch::new().put_schema(record(2)))
            .unwrap();
        assert_eq!(version_at(&s, &t, 2), Some(2));
        assert_eq!(version_at(&s, &t, 1), Some(1), "older reads seek");
        let shared = s.schema_at_shared(&t, Revision(2)).unwrap().unwrap();
        assert_eq!(shared.revision, Revision(2));
    }
    // Reopened: the cache starts empty and is filled from disk.
    let s = RocksStore::open(&a, RocksOptions::default()).unwrap();
    assert_eq!(version_at(&s, &t, 2), Some(2));
    assert_eq!(version_at(&s, &t, 1), Some(1));
    s.apply(
        &t,
        Revision(3),
        &WriteBatch::new().put_schema(SchemaVersionRecord::tombstone(2, "deleted")),
    )
    .unwrap();
    assert_eq!(version_at(&s, &t, 3), None, "tombstone ends the schema");
    assert_eq!(version_at(&s, &t, 2), Some(2));

    // A second store with a different history, installed raw over `s`.
    let b = RocksStore::open(root.path().join("b"), RocksOptions::default()).unwrap();
    b.apply(&t, Revision(1), &WriteBatch::new().put_schema(record(7)))
        .unwrap();
    b.mark_applied(Revision(4)).unwrap();
    let mut pairs = Vec::new();
    b.export_raw(&mut |k, v| {
        pairs.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    s.import_raw(&mut pairs.into_iter()).unwrap();
    assert_eq!(
        version_at(&s, &t, 4),
        Some(7),
        "install forgets the old cache"
    );
    assert_eq!(version_at(&s, &t, 1), Some(7));
}
