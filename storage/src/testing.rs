//! The conformance suite every [`RelationStore`] must pass (behind the
//! `testing` feature). `MemStore` and `RocksStore` both run it, so the
//! engine can trust that its unit tests on `MemStore` mean something.
//!
//! ```ignore
//! verdict_storage::testing::run_all(|| MemStore::new());
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test suite (behind the `testing` feature): it asserts by panicking"
)]

use crate::{
    ApplyStatus, ChangeKind, Op, Precondition, RelationStore, ReverseQuery, Revision,
    SchemaVersionRecord, StorageError, SubjectRelationFilter, Tenant, Tuple, TupleFilter,
    TupleReader, TupleReaderExt, WriteBatch,
};

/// Parses a tuple literal (panics on bad input: test helper).
pub fn t(s: &str) -> Tuple {
    Tuple::parse(s).unwrap_or_else(|e| panic!("bad test tuple `{s}`: {e}"))
}

/// A tenant literal (panics on bad input: test helper).
pub fn tenant(s: &str) -> Tenant {
    Tenant::new(s).unwrap_or_else(|e| panic!("bad test tenant `{s}`: {e}"))
}

fn strings<R: TupleReader>(r: &R, filter: &TupleFilter) -> Vec<String> {
    let mut v = Vec::new();
    r.for_each_tuple(filter, 7, |t| {
        v.push(t.to_string());
        Ok(())
    })
    .unwrap();
    v
}

/// Runs every conformance test, each on a fresh store from `make`.
pub fn run_all<S: RelationStore>(make: impl Fn() -> S) {
    write_and_read_back(&make());
    mvcc_reads_at_old_revisions(&make());
    rejections_consume_the_revision(&make());
    preconditions(&make());
    delete_by_filter_with_limit(&make());
    forward_and_reverse_batched(&make());
    scan_pagination(&make());
    changelog_in_order(&make());
    schema_versions(&make());
    gc_floor(&make());
    tenant_isolation(&make());
    bulk_import_and_export(&make());
}

/// CREATE/TOUCH/DELETE and point reads, replay is a no-op.
pub fn write_and_read_back<S: RelationStore>(s: &S) {
    let d = tenant("default");
    let b = WriteBatch::new()
        .create(t("doc:1#viewer@user:alice"))
        .touch(t(
            r#"doc:1#viewer@user:bob[ip_range:{"a":1}][expiration:2300-01-01T00:00:00Z]"#,
        ));
    let out = s.apply(&d, Revision(1), &b).unwrap();
    assert_eq!(out.status, ApplyStatus::Applied);
    assert_eq!(out.changes, 2);
    assert_eq!(s.applied_revision(), Revision(1));
    let again = s.apply(&d, Revision(1), &b).unwrap();
    assert_eq!(again.status, ApplyStatus::AlreadyApplied);
    let snap = s.snapshot(&d, Revision(1)).unwrap();
    let bob = snap.tuple(&t("doc:1#viewer@user:bob")).unwrap().unwrap();
    assert_eq!(
        bob.to_string(),
        r#"doc:1#viewer@user:bob[ip_range:{"a":1}][expiration:2300-01-01T00:00:00Z]"#
    );
    assert!(snap.tuple(&t("doc:1#viewer@user:carol")).unwrap().is_none());
    drop(snap);
    s.apply(
        &d,
        Revision(2),
        &WriteBatch::new()
            .delete(t("doc:1#viewer@user:bob"))
            .delete(t("doc:1#viewer@user:zed")),
    )
    .unwrap();
    let snap = s.snapshot(&d, Revision(2)).unwrap();
    assert_eq!(
        strings(&snap, &TupleFilter::default()),
        ["doc:1#viewer@user:alice"]
    );
    assert!(matches!(
        s.snapshot(&d, Revision(3)),
        Err(StorageError::RevisionInFuture { .. })
    ));
}

/// Reads at every revision see exactly that revision's state.
pub fn mvcc_reads_at_old_revisions<S: RelationStore>(s: &S) {
    let d = tenant("default");
    s.apply(
        &d,
        Revision(1),
        &WriteBatch::new().touch(t("doc:1#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(3),
        &WriteBatch::new().delete(t("doc:1#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(5),
        &WriteBatch::new().touch(t("doc:1#viewer@user:a[c_one]")),
    )
    .unwrap();
    let at = |r: u64| {
        strings(
            &s.snapshot(&d, Revision(r)).unwrap(),
            &TupleFilter::default(),
        )
    };
    assert!(at(0).is_empty());
    assert_eq!(at(1), ["doc:1#viewer@user:a"]);
    assert_eq!(at(2), ["doc:1#viewer@user:a"]);
    assert!(at(3).is_empty());
    assert!(at(4).is_empty());
    assert_eq!(at(5), ["doc:1#viewer@user:a[c_one]"]);
}

/// A rejected batch changes nothing but consumes its revision.
pub fn rejections_consume_the_revision<S: RelationStore>(s: &S) {
    let d = tenant("default");
    s.apply(
        &d,
        Revision(1),
        &WriteBatch::new().create(t("doc:1#viewer@user:a")),
    )
    .unwrap();
    let bad = WriteBatch::new()
        .touch(t("doc:2#viewer@user:b"))
        .create(t("doc:1#viewer@user:a"));
    match s.apply(&d, Revision(2), &bad) {
        Err(StorageError::TupleAlreadyExists { index: 1, .. }) => {}
        other => panic!("expected TupleAlreadyExists at 1, got {other:?}"),
    }
    assert_eq!(s.applied_revision(), Revision(2));
    let snap = s.snapshot(&d, Revision(2)).unwrap();
    assert_eq!(
        strings(&snap, &TupleFilter::default()),
        ["doc:1#viewer@user:a"]
    );
    assert!(s.changes_since(&d, Revision(1), 10).unwrap().is_empty());
    let dup = WriteBatch::new()
        .touch(t("doc:2#viewer@user:b"))
        .delete(t("doc:2#viewer@user:b"));
    assert!(matches!(
        s.apply(&d, Revision(3), &dup),
        Err(StorageError::DuplicateTuple {
            index: 1,
            first_index: 0,
            ..
        })
    ));
    let mut invalid = WriteBatch::new().touch(t("doc:2#viewer@user:b"));
    invalid.ops.push(Op::Touch(Tuple::new(
        crate::ObjectRef::new("doc", "has space"),
        "viewer",
        crate::SubjectRef::direct("user", "x"),
    )));
    let err = s.apply(&d, Revision(4), &invalid).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidOperation { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(s.applied_revision(), Revision(4));
    // Revisions must increase; a lower one is a replay.
    assert_eq!(
        s.apply(
            &d,
            Revision(3),
            &WriteBatch::new().touch(t("doc:9#viewer@user:z"))
        )
        .unwrap()
        .status,
        ApplyStatus::AlreadyApplied
    );
    s.mark_applied(Revision(7)).unwrap();
    assert_eq!(s.applied_revision(), Revision(7));
}

/// MUST_MATCH / MUST_NOT_MATCH see the state before the batch.
pub fn preconditions<S: RelationStore>(s: &S) {
    let d = tenant("default");
    s.apply(
        &d,
        Revision(1),
        &WriteBatch::new().touch(t("doc:1#owner@user:a")),
    )
    .unwrap();
    let owner = TupleFilter::resource_type("doc")
        .with_resource_id("1")
        .with_relation("owner");
    let ok = WriteBatch::new()
        .precondition(Precondition::MustMatch(owner.clone()))
        .precondition(Precondition::MustNotMatch(TupleFilter::resource_type(
            "folder",
        )))
        .touch(t("doc:1#viewer@user:b"));
    s.apply(&d, Revision(2), &ok).unwrap();
    let fail = WriteBatch::new()
        .precondition(Precondition::MustMatch(owner.clone()))
        .precondition(Precondition::MustNotMatch(owner))
        .touch(t("doc:1#viewer@user:c"));
    assert!(matches!(
        s.apply(&d, Revision(3), &fail),
        Err(StorageError::PreconditionFailed {
            index: 1,
            kind: "must not match"
        })
    ));
    let snap = s.snapshot(&d, Revision(3)).unwrap();
    assert!(snap.tuple(&t("doc:1#viewer@user:c")).unwrap().is_none());
}

/// Delete-by-filter honours its limit and reports truncation.
pub fn delete_by_filter_with_limit<S: RelationStore>(s: &S) {
    let d = tenant("default");
    let mut b = WriteBatch::new();
    for i in 0..5 {
        b = b.touch(t(&format!("doc:{i}#viewer@user:a")));
    }
    b = b.touch(t("doc:0#editor@user:a"));
    s.apply(&d, Revision(1), &b).unwrap();
    let f = TupleFilter::resource_type("doc").with_relation("viewer");
    let out = s
        .apply(
            &d,
            Revision(2),
            &WriteBatch::new().delete_by_filter(f.clone(), Some(3)),
        )
        .unwrap();
    assert_eq!(out.changes, 3);
    assert!(out.delete_truncated);
    let snap = s.snapshot(&d, Revision(2)).unwrap();
    assert_eq!(
        strings(&snap, &TupleFilter::default()),
        [
            "doc:0#editor@user:a",
            "doc:3#viewer@user:a",
            "doc:4#viewer@user:a"
        ]
    );
    drop(snap);
    let out = s
        .apply(
            &d,
            Revision(3),
            &WriteBatch::new().delete_by_filter(f, None),
        )
        .unwrap();
    assert_eq!((out.changes, out.delete_truncated), (2, false));
    let changes = s.changes_since(&d, Revision(2), 10).unwrap();
    assert!(changes[0]
        .changes
        .iter()
        .all(|c| c.kind == ChangeKind::Delete));
}

/// Forward reads batch over ids; reverse reads batch over subject ids.
pub fn forward_and_reverse_batched<S: RelationStore>(s: &S) {
    let d = tenant("default");
    let b = WriteBatch::new()
        .touch(t("doc:1#viewer@user:a"))
        .touch(t("doc:1#viewer@group:g#member"))
        .touch(t("doc:2#viewer@user:*"))
        .touch(t("doc:2#editor@user:a"))
        .touch(t("doc:3#viewer@user:b"))
        .touch(t("folder:1#viewer@user:a"));
    s.apply(&d, Revision(1), &b).unwrap();
    let snap = s.snapshot(&d, Revision(1)).unwrap();
    let fwd: Vec<String> = snap
        .subjects("doc", &["3", "1", "1", "9"], "viewer")
        .unwrap()
        .iter()
        .map(Tuple::to_string)
        .collect();
    assert_eq!(
        fwd,
        [
            "doc:1#viewer@group:g#member",
            "doc:1#viewer@user:a",
            "doc:3#viewer@user:b"
        ]
    );
    let q = ReverseQuery {
        subject_type: "user",
        subject_ids: &["a", "*"],
        subject_relation: Some(SubjectRelationFilter::Direct),
        resource_type: Some("doc"),
        relation: Some("viewer"),
    };
    let rev: Vec<String> = snap
        .resources_for_subjects(&q)
        .unwrap()
        .iter()
        .map(Tuple::to_string)
        .collect();
    assert_eq!(rev, ["doc:2#viewer@user:*", "doc:1#viewer@user:a"]);
    let q = ReverseQuery {
        subject_type: "user",
        subject_ids: &["a"],
        subject_relation: None,
        resource_type: None,
        relation: None,
    };
    assert_eq!(snap.resources_for_subjects(&q).unwrap().len(), 3);
    let q = ReverseQuery {
        subject_type: "group",
        subject_ids: &["g"],
        subject_relation: Some(SubjectRelationFilter::Relation("member".into())),
        resource_type: None,
        relation: Some("viewer"),
    };
    assert_eq!(snap.resources_for_subjects(&q).unwrap().len(), 1);
}

/// Scans resume from cursors and honour every filter field.
pub fn scan_pagination<S: RelationStore>(s: &S) {
    let d = tenant("default");
    let mut b = WriteBatch::new();
    for i in 0..25 {
        b = b.touch(t(&format!("doc:id{i:02}#viewer@user:u{}", i % 3)));
    }
    s.apply(&d, Revision(1), &b).unwrap();
    let snap = s.snapshot(&d, Revision(1)).unwrap();
    let all = strings(&snap, &TupleFilter::default());
    assert_eq!(all.len(), 25);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted);
    let f = TupleFilter::resource_type("doc").with_resource_id_prefix("id1");
    assert_eq!(strings(&snap, &f).len(), 10);
    let f = TupleFilter::default().with_subject("user", Some("u1".into()));
    assert_eq!(strings(&snap, &f).len(), 8);
    let page = snap.scan(&TupleFilter::default(), None, 25).unwrap();
    assert_eq!(page.tuples.len(), 25);
    let rest = snap
        .scan(&TupleFilter::default(), page.cursor.as_ref(), 5)
        .unwrap();
    assert!(rest.tuples.is_empty() && rest.cursor.is_none());
    assert!(matches!(
        snap.scan(
            &TupleFilter::default(),
            Some(&crate::Cursor::from_bytes(vec![1, 2, 3])),
            5
        ),
        Err(StorageError::InvalidCursor)
    ));
}

/// The changelog returns each revision's exact operations, in order.
pub fn changelog_in_order<S: RelationStore>(s: &S) {
    let d = tenant("default");
    s.apply(
        &d,
        Revision(2),
        &WriteBatch::new().create(t("doc:1#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(4),
        &WriteBatch::new()
            .touch(t("doc:1#viewer@user:a[cav]"))
            .touch(t("doc:2#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(5),
        &WriteBatch::new().delete(t("doc:1#viewer@user:a")),
    )
    .unwrap();
    let all = s.changes_since(&d, Revision(0), 100).unwrap();
    let revs: Vec<u64> = all.iter().map(|b| b.revision.0).collect();
    assert_eq!(revs, [2, 4, 5]);
    assert_eq!(all[0].changes[0].kind, ChangeKind::Create);
    assert_eq!(
        all[1].changes[0].tuple.to_string(),
        "doc:1#viewer@user:a[cav]"
    );
    assert_eq!(all[2].changes[0].kind, ChangeKind::Delete);
    assert_eq!(
        all[2].changes[0].tuple.to_string(),
        "doc:1#viewer@user:a[cav]"
    );
    let page = s.changes_since(&d, Revision(2), 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].revision, Revision(4));
    assert!(s.changes_since(&d, Revision(5), 10).unwrap().is_empty());
}

/// Schema versions are stored at revisions and read back as of a revision.
pub fn schema_versions<S: RelationStore>(s: &S) {
    let d = tenant("default");
    let v = |n: u64| SchemaVersionRecord {
        version: n,
        text: format!("definition user {{}} // v{n}"),
        comment: String::new(),
        author: String::new(),
    };
    s.apply(&d, Revision(1), &WriteBatch::new().put_schema(v(1)))
        .unwrap();
    s.apply(
        &d,
        Revision(2),
        &WriteBatch::new().touch(t("doc:1#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(3),
        &WriteBatch::new()
            .put_schema(v(2))
            .delete_by_filter(TupleFilter::resource_type("doc"), None),
    )
    .unwrap();
    assert!(s.schema_at(&d, Revision(0)).unwrap().is_none());
    assert_eq!(
        s.schema_at(&d, Revision(2))
            .unwrap()
            .unwrap()
            .record
            .version,
        1
    );
    let at3 = s.schema_at(&d, Revision(3)).unwrap().unwrap();
    assert_eq!((at3.revision, at3.record.version), (Revision(3), 2));
    let h: Vec<u64> = s
        .schema_history(&d)
        .unwrap()
        .iter()
        .map(|x| x.record.version)
        .collect();
    assert_eq!(h, [1, 2]);
    let log = s.changes_since(&d, Revision(2), 10).unwrap();
    assert_eq!(log[0].schema_version, Some(2));
    assert_eq!(log[0].changes.len(), 1);
    assert!(matches!(
        s.apply(
            &d,
            Revision(4),
            &WriteBatch::new().put_schema(v(3)).put_schema(v(4))
        ),
        Err(StorageError::OperationNotAllowed { index: 1, .. })
    ));
    assert!(s
        .schema_at(&tenant("other"), Revision(3))
        .unwrap()
        .is_none());
    // A tombstone (tenant deletion) ends the schema from its revision on;
    // older revisions still read their version, and a later write starts
    // a new one.
    s.apply(
        &d,
        Revision(5),
        &WriteBatch::new().put_schema(SchemaVersionRecord::tombstone(3, "deleted")),
    )
    .unwrap();
    assert!(s.schema_at(&d, Revision(5)).unwrap().is_none());
    assert_eq!(
        s.schema_at(&d, Revision(4))
            .unwrap()
            .unwrap()
            .record
            .version,
        2
    );
    assert!(s.schema_history(&d).unwrap().is_empty());
    s.apply(&d, Revision(6), &WriteBatch::new().put_schema(v(1)))
        .unwrap();
    let h: Vec<(Revision, u64)> = s
        .schema_history(&d)
        .unwrap()
        .iter()
        .map(|x| (x.revision, x.record.version))
        .collect();
    assert_eq!(h, [(Revision(6), 1)], "only the new generation's history");
    assert_eq!(
        s.schema_at(&d, Revision(4))
            .unwrap()
            .unwrap()
            .record
            .version,
        2,
        "old revisions still read the deleted tenant's schema"
    );
}

/// GC keeps reads at or above the floor unchanged and fails below it.
pub fn gc_floor<S: RelationStore>(s: &S) {
    let d = tenant("default");
    s.apply(
        &d,
        Revision(1),
        &WriteBatch::new()
            .touch(t("doc:1#viewer@user:a"))
            .touch(t("doc:2#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(2),
        &WriteBatch::new().touch(t("doc:1#viewer@user:a[c_x]")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(3),
        &WriteBatch::new().delete(t("doc:2#viewer@user:a")),
    )
    .unwrap();
    s.apply(
        &d,
        Revision(4),
        &WriteBatch::new().touch(t("doc:3#viewer@user:a")),
    )
    .unwrap();
    let before: Vec<Vec<String>> = (2..=4)
        .map(|r| {
            strings(
                &s.snapshot(&d, Revision(r)).unwrap(),
                &TupleFilter::default(),
            )
        })
        .collect();
    let stats = s.gc(Revision(3)).unwrap();
    assert_eq!(stats.floor, Revision(3));
    assert!(stats.versions_removed > 0);
    assert_eq!(s.gc_floor(), Revision(3));
    for r in 3..=4 {
        let now = strings(
            &s.snapshot(&d, Revision(r)).unwrap(),
            &TupleFilter::default(),
        );
        assert_eq!(now, before[(r - 2) as usize]);
    }
    assert!(matches!(
        s.snapshot(&d, Revision(2)),
        Err(StorageError::RevisionCompacted {
            requested: Revision(2),
            floor: Revision(3)
        })
    ));
    assert!(matches!(
        s.changes_since(&d, Revision(2), 10),
        Err(StorageError::ChangelogCompacted { .. })
    ));
    assert_eq!(s.changes_since(&d, Revision(3), 10).unwrap().len(), 1);
    // GC never moves the floor past the applied revision or backwards.
    assert_eq!(s.gc(Revision(100)).unwrap().floor, Revision(4));
    assert_eq!(s.gc(Revision(1)).unwrap().floor, Revision(4));
    assert_eq!(
        strings(
            &s.snapshot(&d, Revision(4)).unwrap(),
            &TupleFilter::default()
        ),
        before[2]
    );
}

/// One tenant's reads never see another's tuples, changes or schemas.
pub fn tenant_isolation<S: RelationStore>(s: &S) {
    // Tenant names that are prefixes of each other, and ids full of separators.
    let (a, ab, a_b) = (tenant("a"), tenant("ab"), tenant("a-b"));
    let tricky = "doc:a|b/c=d+e@f.g_-#viewer@user:x@y|z";
    s.apply(&a, Revision(1), &WriteBatch::new().touch(t(tricky)))
        .unwrap();
    s.apply(
        &ab,
        Revision(2),
        &WriteBatch::new().touch(t("doc:a#viewer@user:x")),
    )
    .unwrap();
    s.apply(
        &a_b,
        Revision(3),
        &WriteBatch::new().touch(t("doc:a|b#viewer@user:x")),
    )
    .unwrap();
    for (tn, expect) in [
        (&a, tricky),
        (&ab, "doc:a#viewer@user:x"),
        (&a_b, "doc:a|b#viewer@user:x"),
    ] {
        let snap = s.snapshot(tn, Revision(3)).unwrap();
        assert_eq!(
            strings(&snap, &TupleFilter::default()),
            [expect],
            "tenant {tn}"
        );
        let prefix = TupleFilter::resource_type("doc").with_resource_id_prefix("a");
        assert_eq!(strings(&snap, &prefix).len(), 1, "tenant {tn}");
        let q = ReverseQuery {
            subject_type: "user",
            subject_ids: &["x", "x@y|z"],
            subject_relation: None,
            resource_type: None,
            relation: None,
        };
        assert_eq!(
            snap.resources_for_subjects(&q).unwrap().len(),
            1,
            "tenant {tn}"
        );
        assert_eq!(
            s.changes_since(tn, Revision(0), 10).unwrap().len(),
            1,
            "tenant {tn}"
        );
    }
    let none = s.snapshot(&tenant("b"), Revision(3)).unwrap();
    assert!(strings(&none, &TupleFilter::default()).is_empty());
}

/// Bulk import creates one revision; export streams it back.
pub fn bulk_import_and_export<S: RelationStore>(s: &S) {
    let d = tenant("default");
    s.apply(
        &d,
        Revision(1),
        &WriteBatch::new().touch(t("doc:0#viewer@user:old")),
    )
    .unwrap();
    let mut it = (0..2500).map(|i| t(&format!("doc:{i}#viewer@user:u{}", i % 10)));
    let out = s.bulk_import(&d, Revision(2), &mut it).unwrap();
    assert_eq!(out.changes, 2500);
    let snap = s.snapshot(&d, Revision(2)).unwrap();
    let n = snap
        .for_each_tuple(&TupleFilter::default(), 1000, |_| Ok(()))
        .unwrap();
    assert_eq!(n, 2501);
    assert_eq!(snap.subjects("doc", &["42"], "viewer").unwrap().len(), 1);
    drop(snap);
    let log = s.changes_since(&d, Revision(1), 10).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].changes.len(), 2500);
    let mut bad = vec![
        t("doc:x#viewer@user:a"),
        Tuple::new(
            crate::ObjectRef::new("doc", ""),
            "viewer",
            crate::SubjectRef::direct("user", "a"),
        ),
    ]
    .into_iter();
    let err = s.bulk_import(&d, Revision(3), &mut bad).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidOperation { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(s.applied_revision(), Revision(3));
    let snap = s.snapshot(&d, Revision(3)).unwrap();
    assert!(snap.tuple(&t("doc:x#viewer@user:a")).unwrap().is_none());
    drop(snap);

    // Past one storage chunk (20,000): the multi-chunk path, also atomic.
    let big = |n: usize| (0..n).map(|i| t(&format!("big:{i}#viewer@user:u{}", i % 7)));
    let mut it = big(20_050);
    assert_eq!(
        s.bulk_import(&d, Revision(4), &mut it).unwrap().changes,
        20_050
    );
    let snap = s.snapshot(&d, Revision(4)).unwrap();
    let n = snap
        .for_each_tuple(&TupleFilter::resource_type("big"), 5000, |_| Ok(()))
        .unwrap();
    assert_eq!(n, 20_050);
    drop(snap);
    let logged: usize = s
        .changes_since(&d, Revision(3), 10)
        .unwrap()
        .iter()
        .map(|b| b.changes.len())
        .sum();
    assert_eq!(logged, 20_050);
    let invalid = Tuple::new(
        crate::ObjectRef::new("bad", ""),
        "viewer",
        crate::SubjectRef::direct("user", "a"),
    );
    let mut renamed = big(20_010)
        .map(|mut x| {
            x.resource.object_type = "bad".into();
            x
        })
        .chain(std::iter::once(invalid));
    let err = s.bulk_import(&d, Revision(5), &mut renamed).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidOperation { index: 20_010, .. }),
        "{err:?}"
    );
    let snap = s.snapshot(&d, Revision(5)).unwrap();
    let n = snap
        .for_each_tuple(&TupleFilter::resource_type("bad"), 5000, |_| Ok(()))
        .unwrap();
    assert_eq!(n, 0, "a rejected large import leaves nothing behind");
}
