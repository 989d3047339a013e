//! Group commit in the state machine: the writes of one `WriteGroup`
//! entry apply in order at its revision, each with its own preconditions
//! and outcome; a refused one leaves no trace (tuples, changelog); later
//! ones see earlier ones; a replay changes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use verdict_raft::{
    Command, GroupedWrite, MemKeySet, MemTenantSet, Rejection, Request, Response, StateMachine,
    TenantSet, TypeConfig,
};
use verdict_storage::{
    ApplyStatus, ChangeKind, Precondition, RelationStore, Revision, RocksOptions, RocksStore,
    SchemaVersionRecord, Tenant, Tuple, TupleFilter, TupleReaderExt, WriteBatch,
};

fn entry(index: u64, command: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Request::now(command)),
    }
}

fn tuple(s: &str) -> Tuple {
    Tuple::parse(s).unwrap()
}

fn open(dir: &std::path::Path) -> (Arc<RocksStore>, StateMachine) {
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
        tenants,
        Arc::new(MemKeySet::default()),
        dir.join("snap"),
    )
    .unwrap();
    (store, sm)
}

fn tuples(store: &RocksStore, at: Revision) -> Vec<String> {
    let snap = store.snapshot(&Tenant::default_tenant(), at).unwrap();
    let mut out = Vec::new();
    snap.for_each_tuple(&TupleFilter::default(), 100, |t| {
        out.push(t.to_string());
        Ok(())
    })
    .unwrap();
    out
}

fn grouped(batch: WriteBatch) -> GroupedWrite {
    GroupedWrite {
        batch,
        expected_schema_since: None,
    }
}

fn doc(id: &str) -> TupleFilter {
    TupleFilter::resource_type("doc").with_resource_id(id)
}

#[tokio::test]
async fn each_write_of_a_group_stands_alone_and_sees_the_ones_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    let setup = Command::Write {
        tenant: Tenant::default_tenant(),
        batch: WriteBatch::new()
            .touch(tuple("doc:old#viewer@user:z"))
            .put_schema(SchemaVersionRecord {
                version: 1,
                text: "definition user {}".into(),
                ..SchemaVersionRecord::default()
            }),
        expected_schema_since: None,
        unchanged_since: None,
    };
    sm.apply(vec![entry(1, setup)]).await.unwrap();

    let writes = vec![
        // 0: kept.
        grouped(WriteBatch::new().touch(tuple("doc:a#viewer@user:a"))),
        // 1: CREATE of what write 0 just wrote: refused.
        grouped(WriteBatch::new().create(tuple("doc:a#viewer@user:a"))),
        // 2: its precondition holds only thanks to write 0: kept.
        grouped(
            WriteBatch::new()
                .precondition(Precondition::MustMatch(doc("a")))
                .touch(tuple("doc:c#viewer@user:c")),
        ),
        // 3: a failing precondition: nothing of it (the CREATE) is applied.
        grouped(
            WriteBatch::new()
                .precondition(Precondition::MustMatch(doc("nowhere")))
                .create(tuple("doc:d#viewer@user:d")),
        ),
        // 4: kept; deletes a tuple of an earlier revision.
        grouped(WriteBatch::new().delete(tuple("doc:old#viewer@user:z"))),
        // 5: validated against a schema that is not the active one: refused.
        GroupedWrite {
            batch: WriteBatch::new().touch(tuple("doc:e#viewer@user:e")),
            expected_schema_since: Some(Revision(99)),
        },
        // 6: validated against the active schema, and sees write 4's delete.
        GroupedWrite {
            batch: WriteBatch::new()
                .precondition(Precondition::MustNotMatch(doc("old")))
                .touch(tuple("doc:f#viewer@user:f")),
            expected_schema_since: Some(Revision(1)),
        },
        // 7: a malformed tuple is refused like the others.
        grouped(WriteBatch::new().schema_free_touch_of_a_bad_tuple()),
    ];
    let out = sm
        .apply(vec![entry(
            2,
            Command::WriteGroup {
                tenant: Tenant::default_tenant(),
                writes: writes.clone(),
            },
        )])
        .await
        .unwrap();
    let Response::Group { revision, results } = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(*revision, Revision(2));
    let kept: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(
        kept,
        vec![true, false, true, false, true, false, true, false],
        "{results:?}"
    );
    assert!(matches!(
        &results[1],
        Err(Rejection::RelationshipExists { index: 0, tuple }) if tuple == "doc:a#viewer@user:a"
    ));
    assert!(matches!(
        results[3],
        Err(Rejection::PreconditionFailed {
            index: 0,
            must_match: true
        })
    ));
    assert!(matches!(results[5], Err(Rejection::FailedPrecondition(_))));
    for r in results.iter().flatten() {
        assert_eq!(r.revision, Revision(2), "kept writes share the revision");
        assert_eq!(r.changes, 1);
    }
    assert_eq!(
        tuples(&store, Revision(2)),
        vec![
            "doc:a#viewer@user:a",
            "doc:c#viewer@user:c",
            "doc:f#viewer@user:f"
        ]
    );
    assert_eq!(tuples(&store, Revision(1)), vec!["doc:old#viewer@user:z"]);
    // The changelog: each kept change once, in group order; nothing of the
    // refused ones.
    let log = store
        .changes_since(&Tenant::default_tenant(), Revision(1), 10)
        .unwrap();
    assert_eq!(log.len(), 1);
    let changes: Vec<(ChangeKind, String)> = log[0]
        .changes
        .iter()
        .map(|c| (c.kind, c.tuple.to_string()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (ChangeKind::Touch, "doc:a#viewer@user:a".into()),
            (ChangeKind::Touch, "doc:c#viewer@user:c".into()),
            (ChangeKind::Delete, "doc:old#viewer@user:z".into()),
            (ChangeKind::Touch, "doc:f#viewer@user:f".into()),
        ]
    );

    // A replay (restart from an older snapshot) changes nothing.
    let again = sm
        .apply(vec![entry(
            2,
            Command::WriteGroup {
                tenant: Tenant::default_tenant(),
                writes,
            },
        )])
        .await
        .unwrap();
    assert!(
        matches!(&again[0], Response::Applied(o) if o.status == ApplyStatus::AlreadyApplied),
        "{again:?}"
    );
    assert_eq!(tuples(&store, Revision(2)).len(), 3);
}

#[tokio::test]
async fn a_group_whose_writes_all_fail_consumes_its_revision_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    let out = sm
        .apply(vec![entry(
            1,
            Command::WriteGroup {
                tenant: Tenant::default_tenant(),
                writes: vec![
                    grouped(
                        WriteBatch::new()
                            .precondition(Precondition::MustMatch(doc("x")))
                            .touch(tuple("doc:y#viewer@user:y")),
                    ),
                    grouped(WriteBatch::new().delete(tuple("doc:y#viewer@user:y"))),
                ],
            },
        )])
        .await
        .unwrap();
    let Response::Group { results, .. } = &out[0] else {
        panic!("{out:?}");
    };
    assert!(results[0].is_err());
    // A delete of an absent tuple is a kept no-op.
    assert_eq!(results[1].as_ref().map(|o| o.changes), Ok(0));
    assert_eq!(store.applied_revision(), Revision(1));
    assert!(tuples(&store, Revision(1)).is_empty());
    assert!(store
        .changes_since(&Tenant::default_tenant(), Revision(0), 10)
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_group_for_an_unknown_tenant_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (store, mut sm) = open(dir.path());
    let out = sm
        .apply(vec![entry(
            1,
            Command::WriteGroup {
                tenant: Tenant::new("nobody").unwrap(),
                writes: vec![grouped(
                    WriteBatch::new().touch(tuple("doc:y#viewer@user:y")),
                )],
            },
        )])
        .await
        .unwrap();
    assert!(matches!(
        &out[0],
        Response::Rejected {
            rejection: Rejection::TenantNotFound(_),
            ..
        }
    ));
    assert_eq!(store.applied_revision(), Revision(1));
}

trait BadTuple {
    fn schema_free_touch_of_a_bad_tuple(self) -> WriteBatch;
}

impl BadTuple for WriteBatch {
    /// A TOUCH of a tuple whose resource id has a character storage refuses.
    fn schema_free_touch_of_a_bad_tuple(self) -> WriteBatch {
        let mut t = tuple("doc:g#viewer@user:g");
        t.resource.object_id = "bad id!".into();
        self.touch(t)
    }
}
