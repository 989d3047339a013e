//! The log store and the state machine on real RocksDB directories:
//! durability across reopen, idempotent replay, deterministic rejections,
//! snapshot round trips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, Vote,
};
use verdict_raft::{
    Command, KeyRecord, KeySet, LogStore, MemKeySet, MemTenantSet, Rejection, Request, Response,
    StateMachine, TenantSet, TypeConfig,
};
use verdict_storage::{
    ApplyStatus, RelationStore, Revision, RocksOptions, RocksStore, SchemaVersionRecord, Tenant,
    Tuple, TupleFilter, TupleReaderExt, WriteBatch,
};

fn log_id(index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(1, 1), index)
}

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(index),
        payload: EntryPayload::Normal(Request::now(command)),
    }
}

fn write(batch: WriteBatch, since: Option<u64>) -> Command {
    Command::Write {
        tenant: Tenant::default_tenant(),
        batch,
        expected_schema_since: since.map(Revision),
        unchanged_since: None,
    }
}

fn schema(version: u64) -> WriteBatch {
    WriteBatch::new().put_schema(SchemaVersionRecord {
        version,
        text: "definition user {}".into(),
        comment: String::new(),
        author: String::new(),
    })
}

fn tuple(s: &str) -> Tuple {
    Tuple::parse(s).unwrap()
}

struct Machine {
    store: Arc<RocksStore>,
    tenants: Arc<MemTenantSet>,
    keys: Arc<MemKeySet>,
    sm: StateMachine,
}

fn open(dir: &std::path::Path) -> Machine {
    open_with(dir, Arc::new(MemKeySet::default()))
}

/// A machine whose key set is `keys` (shared across a reopen, it stands
/// for the node's durable keys.json).
fn open_with(dir: &std::path::Path, keys: Arc<MemKeySet>) -> Machine {
    let store = Arc::new(
        RocksStore::open(
            dir.join("store"),
            RocksOptions {
                sync_writes: false,
                ..RocksOptions::default()
            },
        )
        .unwrap(),
    );
    let tenants = Arc::new(MemTenantSet::default());
    tenants.insert("default").unwrap();
    let sm = StateMachine::open_with_keys(
        store.clone(),
        tenants.clone(),
        keys.clone(),
        dir.join("snap"),
    )
    .unwrap();
    Machine {
        store,
        tenants,
        keys,
        sm,
    }
}

fn tuples(store: &RocksStore) -> Vec<String> {
    let snap = store
        .snapshot(&Tenant::default_tenant(), store.applied_revision())
        .unwrap();
    let mut out = Vec::new();
    snap.for_each_tuple(&TupleFilter::default(), 100, |t| {
        out.push(t.to_string());
        Ok(())
    })
    .unwrap();
    out
}

#[tokio::test]
async fn log_entries_vote_and_purge_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = LogStore::open(dir.path(), true).unwrap();
        let entries: Vec<_> = (1..=5)
            .map(|i| {
                entry(
                    i,
                    write(WriteBatch::new().touch(tuple("doc:1#viewer@user:a")), None),
                )
            })
            .collect();
        log.blocking_append(entries).await.unwrap();
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
        log.truncate(log_id(5)).await.unwrap();
        log.purge(log_id(2)).await.unwrap();
    }
    let mut log = LogStore::open(dir.path(), true).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2)));
    assert_eq!(state.last_log_id, Some(log_id(4)), "entry 5 was truncated");
    let got: Vec<u64> = log
        .try_get_log_entries(0..100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(got, vec![3, 4], "1-2 purged, 5 truncated");
}

/// A log written before entries were MessagePack (JSON values under the
/// same keys) still reads, and new appends continue it.
#[tokio::test]
async fn a_log_of_json_entries_reads_back_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let import = |i: u64| Entry::<TypeConfig> {
        log_id: log_id(i),
        payload: EntryPayload::Normal(Request {
            at: verdict_storage::Timestamp(1_700_000_000),
            command: Command::Import {
                tenant: Tenant::default_tenant(),
                tuples: Arc::new(vec![tuple(&format!(
                    "doc:{i}#viewer@user:a[expiration:2030-01-01T00:00:00Z]"
                ))]),
            },
        }),
    };
    {
        let db = rocksdb::DB::open_default(dir.path()).unwrap();
        for i in 1..=3u64 {
            let mut key = vec![b'l'];
            key.extend_from_slice(&i.to_be_bytes());
            db.put(key, serde_json::to_vec(&import(i)).unwrap())
                .unwrap();
        }
    }
    let mut log = LogStore::open(dir.path(), true).unwrap();
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(3))
    );
    log.blocking_append(vec![import(4)]).await.unwrap();
    let got = log.try_get_log_entries(1..=4).await.unwrap();
    let want: Vec<_> = (1..=4).map(import).collect();
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::to_value(&want).unwrap()
    );
}

#[tokio::test]
async fn replays_are_no_ops_and_rejections_consume_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = open(dir.path());
    let entries = vec![
        entry(1, write(schema(1), None)),
        entry(
            2,
            write(
                WriteBatch::new().create(tuple("doc:1#viewer@user:a")),
                Some(1),
            ),
        ),
        // CREATE of an existing tuple: rejected, revision consumed.
        entry(
            3,
            write(WriteBatch::new().create(tuple("doc:1#viewer@user:a")), None),
        ),
        entry(4, write(schema(2), None)),
        // Validated against schema 1, which is no longer active.
        entry(
            5,
            write(
                WriteBatch::new().touch(tuple("doc:2#viewer@user:b")),
                Some(1),
            ),
        ),
        entry(
            6,
            Command::CreateTenant {
                name: "acme".into(),
            },
        ),
        entry(
            7,
            Command::CreateTenant {
                name: "acme".into(),
            },
        ),
    ];
    let out = m.sm.apply(entries.clone()).await.unwrap();
    assert!(matches!(out[1], Response::Applied(_)));
    assert!(matches!(
        out[2],
        Response::Rejected {
            rejection: Rejection::RelationshipExists { index: 0, .. },
            revision: Revision(3)
        }
    ));
    assert!(matches!(
        out[4],
        Response::Rejected {
            rejection: Rejection::FailedPrecondition(_),
            ..
        }
    ));
    assert!(matches!(
        out[6],
        Response::Rejected {
            rejection: Rejection::AlreadyExists(_),
            ..
        }
    ));
    assert_eq!(m.store.applied_revision(), Revision(7));
    assert!(m.tenants.contains("acme"));
    let before = tuples(&m.store);
    assert_eq!(before, vec!["doc:1#viewer@user:a"]);

    // Restart and replay everything: nothing changes.
    drop(m);
    let mut m = open(dir.path());
    let out = m.sm.apply(entries).await.unwrap();
    for r in &out {
        if let Response::Applied(o) = r {
            assert_eq!(o.status, ApplyStatus::AlreadyApplied);
        }
    }
    assert_eq!(tuples(&m.store), before);
    assert_eq!(m.store.applied_revision(), Revision(7));
}

#[tokio::test]
async fn a_snapshot_installs_identical_state_and_bad_data_changes_nothing() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = open(a_dir.path());
    a.sm.apply(vec![
        entry(1, write(schema(1), None)),
        entry(
            2,
            Command::CreateTenant {
                name: "acme".into(),
            },
        ),
        entry(
            3,
            write(WriteBatch::new().touch(tuple("doc:1#viewer@user:a")), None),
        ),
        entry(
            4,
            write(WriteBatch::new().touch(tuple("doc:2#viewer@user:b")), None),
        ),
    ])
    .await
    .unwrap();
    let snap = a.sm.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(4)));

    let mut b = open(b_dir.path());
    b.sm.apply(vec![entry(
        1,
        write(WriteBatch::new().touch(tuple("doc:9#viewer@user:z")), None),
    )])
    .await
    .unwrap();
    // Garbage is refused before anything is replaced.
    let bad =
        b.sm.install_snapshot(
            &snap.meta,
            Box::new(Cursor::new(b"not a snapshot".to_vec())),
        )
        .await;
    assert!(bad.is_err());
    assert_eq!(tuples(&b.store), vec!["doc:9#viewer@user:z"]);

    b.sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_eq!(tuples(&b.store), tuples(&a.store));
    assert_eq!(b.store.applied_revision(), Revision(4));
    assert!(b.tenants.contains("acme"));
    let schema = b
        .store
        .schema_at(&Tenant::default_tenant(), Revision(4))
        .unwrap()
        .unwrap();
    assert_eq!(
        schema.revision,
        Revision(1),
        "schema history is carried exactly"
    );
    let (applied, _) = b.sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(4)));
    let current = b.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta.snapshot_id, snap.meta.snapshot_id);
}

#[tokio::test]
async fn deleting_an_unlisted_tenant_still_removes_its_tuples() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = open(dir.path());
    let acme = Tenant::new("acme").unwrap();
    m.sm.apply(vec![
        entry(
            1,
            Command::CreateTenant {
                name: "acme".into(),
            },
        ),
        entry(
            2,
            Command::Write {
                tenant: acme.clone(),
                batch: WriteBatch::new().touch(tuple("doc:1#viewer@user:a")),
                expected_schema_since: None,
                unchanged_since: None,
            },
        ),
    ])
    .await
    .unwrap();
    // As after a crash between the registry update and the store write.
    m.tenants.remove("acme").unwrap();
    let out =
        m.sm.apply(vec![entry(
            3,
            Command::DeleteTenant {
                tenant: acme.clone(),
            },
        )])
        .await
        .unwrap();
    assert!(matches!(
        out[0],
        Response::Rejected {
            rejection: Rejection::TenantNotFound(_),
            ..
        }
    ));
    let snap = m.store.snapshot(&acme, Revision(3)).unwrap();
    let mut left = 0;
    snap.for_each_tuple(&TupleFilter::default(), 10, |_| {
        left += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(left, 0, "the tenant's tuples are gone on every replica");
    assert_eq!(m.store.applied_revision(), Revision(3));
}

/// Records the batches the state machine announces to its observer.
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Vec<String>>>);

impl verdict_raft::ApplyObserver for Recorder {
    fn before_write(&self, _: &Tenant, _: Revision, batch: &WriteBatch) {
        let ops = batch.ops.iter().map(|op| format!("{op:?}")).collect();
        self.0.lock().unwrap().push(ops);
    }
    fn before_import(&self, _: &Tenant, _: Revision, _: &[Tuple]) {}
    fn before_snapshot(&self, _: Revision) {}
}

#[tokio::test]
async fn observers_hear_every_change_but_not_touches_that_rewrite_identical_tuples() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = open(dir.path());
    let recorder = Arc::new(Recorder::default());
    assert!(m.sm.set_observer(recorder.clone()));
    let touch = |lines: &[&str]| {
        lines
            .iter()
            .fold(WriteBatch::new(), |b, l| b.touch(tuple(l)))
    };
    let entries = vec![
        entry(1, write(touch(&["doc:1#viewer@user:a"]), None)),
        // The same tuple again: no answer can change.
        entry(2, write(touch(&["doc:1#viewer@user:a"]), None)),
        // Same key, new payload: a change.
        entry(3, write(touch(&["doc:1#viewer@user:a[cav]"]), None)),
        // One identical, one new: only the new one is announced.
        entry(
            4,
            write(
                touch(&["doc:1#viewer@user:a[cav]", "doc:1#viewer@user:b"]),
                None,
            ),
        ),
        entry(
            5,
            write(WriteBatch::new().delete(tuple("doc:1#viewer@user:b")), None),
        ),
    ];
    m.sm.apply(entries).await.unwrap();
    let heard = recorder.0.lock().unwrap().clone();
    assert_eq!(heard.len(), 5, "every write is announced: {heard:?}");
    assert_eq!(heard[0].len(), 1);
    assert!(heard[1].is_empty(), "{heard:?}");
    assert_eq!(heard[2].len(), 1);
    assert_eq!(heard[3].len(), 1);
    assert!(heard[3][0].contains("\"b\""), "{heard:?}");
    assert_eq!(heard[4].len(), 1, "deletes are always announced");
    assert_eq!(
        tuples(&m.store),
        vec!["doc:1#viewer@user:a[cav]"],
        "the writes themselves all applied"
    );
}

/// Records the imports the state machine announces and those it rejects.
#[derive(Debug, Default)]
struct ImportRecorder(Mutex<Vec<String>>);

impl verdict_raft::ApplyObserver for ImportRecorder {
    fn before_write(&self, _: &Tenant, _: Revision, _: &WriteBatch) {}
    fn before_import(&self, _: &Tenant, r: Revision, tuples: &[Tuple]) {
        let line = format!("import {} ({})", r.0, tuples.len());
        self.0.lock().unwrap().push(line);
    }
    fn import_rejected(&self, _: &Tenant, r: Revision) {
        self.0.lock().unwrap().push(format!("rejected {}", r.0));
    }
    fn before_snapshot(&self, _: Revision) {}
}

#[tokio::test]
async fn observers_hear_which_imports_were_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = open(dir.path());
    let recorder = Arc::new(ImportRecorder::default());
    assert!(m.sm.set_observer(recorder.clone()));
    let import = |tuples: Vec<Tuple>| Command::Import {
        tenant: Tenant::default_tenant(),
        tuples: Arc::new(tuples),
    };
    let mut malformed = tuple("doc:2#viewer@user:b");
    malformed.subject.object.object_id = "not an id!".into();
    let entries = vec![
        entry(1, import(vec![tuple("doc:1#viewer@user:a")])),
        entry(2, import(vec![tuple("doc:3#viewer@user:c"), malformed])),
    ];
    let responses = m.sm.apply(entries).await.unwrap();
    assert!(
        matches!(responses[1], Response::Rejected { .. }),
        "{responses:?}"
    );
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec!["import 1 (1)", "import 2 (2)", "rejected 2"]
    );
    assert_eq!(tuples(&m.store), vec!["doc:1#viewer@user:a"]);
}

fn key(id: &str, tenant: &str, sha: &str) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        tenant: tenant.into(),
        sha256: sha.into(),
        created: "2026-11-28T10:00:00Z".into(),
    }
}

fn ids(keys: &MemKeySet) -> Vec<String> {
    keys.all().into_iter().map(|k| k.id).collect()
}

fn key_entries() -> Vec<Entry<TypeConfig>> {
    vec![
        entry(
            1,
            Command::CreateTenant {
                name: "acme".into(),
            },
        ),
        entry(
            2,
            Command::CreateKey {
                record: key("k1", "acme", "aa"),
            },
        ),
        // Same id, another token: refused, the first key stays.
        entry(
            3,
            Command::CreateKey {
                record: key("k1", "acme", "bb"),
            },
        ),
        entry(
            4,
            Command::CreateKey {
                record: key("k2", "nope", "cc"),
            },
        ),
        entry(5, Command::RevokeKey { id: "zz".into() }),
        entry(
            6,
            Command::CreateKey {
                record: key("k3", "acme", "dd"),
            },
        ),
        entry(7, Command::RevokeKey { id: "k3".into() }),
        entry(
            8,
            Command::CreateKey {
                record: key("k4", "default", "ee"),
            },
        ),
    ]
}

#[tokio::test]
async fn key_commands_apply_the_same_everywhere_and_survive_a_restart() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = open(a_dir.path());
    let mut b = open(b_dir.path());
    let out = a.sm.apply(key_entries()).await.unwrap();
    assert_eq!(out, b.sm.apply(key_entries()).await.unwrap());
    assert_eq!(
        out[1],
        Response::Done {
            revision: Revision(2)
        }
    );
    assert!(
        matches!(&out[2], Response::Rejected { revision: Revision(3), rejection: Rejection::AlreadyExists(m) } if m.contains("k1")),
        "{:?}",
        out[2]
    );
    assert_eq!(
        out[3],
        Response::Rejected {
            revision: Revision(4),
            rejection: Rejection::TenantNotFound("nope".into())
        }
    );
    assert!(
        matches!(&out[4], Response::Rejected { rejection: Rejection::InvalidArgument { field, .. }, .. } if field == "id"),
        "{:?}",
        out[4]
    );
    assert_eq!(
        out[6],
        Response::Done {
            revision: Revision(7)
        }
    );
    assert_eq!(a.keys.all(), b.keys.all());
    assert_eq!(ids(&a.keys), vec!["k1", "k4"]);
    assert_eq!(a.keys.get("k1").unwrap().sha256, "aa");
    // The record (hash only) is what the log carries, and it round-trips.
    let req = Request::now(Command::CreateKey {
        record: key("k9", "acme", "99"),
    });
    let back: Request =
        verdict_raft::codec::decode(&verdict_raft::codec::encode(&req).unwrap()).unwrap();
    assert!(
        matches!(back.command, Command::CreateKey { record } if record == key("k9", "acme", "99"))
    );
    assert_eq!(a.store.applied_revision(), Revision(8));

    // Deleting the tenant revokes its keys (on every replica: in apply).
    let del = entry(
        9,
        Command::DeleteTenant {
            tenant: Tenant::new("acme").unwrap(),
        },
    );
    a.sm.apply(vec![del]).await.unwrap();
    assert_eq!(ids(&a.keys), vec!["k4"]);

    // Restart over the same (durable) key set and replay the whole log:
    // replays change nothing.
    let keys = a.keys.clone();
    drop(a);
    let mut a = open_with(a_dir.path(), keys);
    let mut log = key_entries();
    log.push(entry(
        9,
        Command::DeleteTenant {
            tenant: Tenant::new("acme").unwrap(),
        },
    ));
    a.sm.apply(log).await.unwrap();
    assert_eq!(ids(&a.keys), vec!["k4"]);
}

#[tokio::test]
async fn a_snapshot_carries_the_keys_to_the_replica_installing_it() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = open(a_dir.path());
    a.sm.apply(key_entries()).await.unwrap();
    let snap = a.sm.build_snapshot().await.unwrap();

    let mut b = open(b_dir.path());
    // A key b has that the snapshot's state does not: replaced.
    b.sm.apply(vec![entry(
        1,
        Command::CreateKey {
            record: key("stale", "default", "ff"),
        },
    )])
    .await
    .unwrap();
    assert_eq!(ids(&b.keys), vec!["stale"]);
    b.sm.install_snapshot(&snap.meta, snap.snapshot)
        .await
        .unwrap();
    assert_eq!(b.keys.all(), a.keys.all());
    assert_eq!(ids(&b.keys), vec!["k1", "k4"]);

    // The snapshot persisted on b restores the keys too (b restarts with
    // its store wiped: it is restored from its own snapshot).
    drop(b);
    std::fs::remove_dir_all(b_dir.path().join("store")).unwrap();
    let fresh = Arc::new(MemKeySet::default());
    let b = open_with(b_dir.path(), fresh);
    assert_eq!(ids(&b.keys), vec!["k1", "k4"]);
    assert_eq!(b.store.applied_revision(), Revision(8));
}

/// A snapshot built before keys were replicated ("VSNAP1", no keys
/// section) says nothing about keys: the node's own keys stay.
#[tokio::test]
async fn a_vsnap1_snapshot_keeps_the_nodes_own_keys() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let mut a = open(a_dir.path());
    a.sm.apply(key_entries()).await.unwrap();
    let snap = a.sm.build_snapshot().await.unwrap();
    let v2 = snap.snapshot.into_inner();
    // VSNAP2 = magic | tenants | keys | pairs; VSNAP1 = magic | tenants | pairs.
    assert!(v2.starts_with(b"VSNAP2\n"));
    let field = |at: usize| {
        let len = u32::from_be_bytes(v2[at..at + 4].try_into().unwrap()) as usize;
        at + 4 + len
    };
    let after_tenants = field(7);
    let after_keys = field(after_tenants);
    let keys_json: Vec<KeyRecord> =
        serde_json::from_slice(&v2[after_tenants + 4..after_keys]).unwrap();
    assert_eq!(keys_json, a.keys.all());
    let mut v1 = b"VSNAP1\n".to_vec();
    v1.extend_from_slice(&v2[7..after_tenants]);
    v1.extend_from_slice(&v2[after_keys..]);

    let mut b = open(b_dir.path());
    b.keys.insert(key("own", "default", "ff")).unwrap();
    b.sm.install_snapshot(&snap.meta, Box::new(Cursor::new(v1)))
        .await
        .unwrap();
    assert_eq!(ids(&b.keys), vec!["own"]);
    assert!(
        b.tenants.contains("acme"),
        "the rest of the snapshot installs"
    );
    assert_eq!(b.store.applied_revision(), Revision(8));
}
