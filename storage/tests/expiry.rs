//! `gc_expired` on both stores: tuples whose live version expired (past the
//! grace period) are physically removed from both indexes at every revision,
//! everything else is untouched, the changelog is kept, and every answer
//! that filters expired tuples (as the engine does) is identical before and
//! after, at every readable revision.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::sync::Arc;
use std::time::Duration;

use verdict_storage::{
    ChangeBatch, MemStore, RelationStore, ReverseQuery, Revision, RocksOptions, RocksStore, Tenant,
    Timestamp, Tuple, TupleFilter, TupleReader, TupleReaderExt, WriteBatch,
};

fn t(s: &str) -> Tuple {
    Tuple::parse(s).unwrap()
}

fn exp(s: &str, at: i64) -> Tuple {
    let mut x = t(s);
    x.expiration = Some(Timestamp(at));
    x
}

fn raw<R: TupleReader>(r: &R) -> Vec<String> {
    let mut v = Vec::new();
    r.for_each_tuple(&TupleFilter::default(), 3, |t| {
        v.push(t.to_string());
        Ok(())
    })
    .unwrap();
    v
}

/// Every answer the engine could give at `r`'s revision, with expired tuples
/// filtered out at `now`.
fn answers<R: TupleReader>(r: &R, now: Timestamp) -> Vec<String> {
    let live = |ts: Vec<Tuple>| -> Vec<String> {
        ts.into_iter()
            .filter(|t| !t.is_expired_at(now))
            .map(|t| t.to_string())
            .collect()
    };
    let mut out = Vec::new();
    out.push(format!(
        "scan {:?}",
        live({
            let mut v = Vec::new();
            r.for_each_tuple(&TupleFilter::default(), 2, |t| {
                v.push(t);
                Ok(())
            })
            .unwrap();
            v
        })
    ));
    let docs = ["a", "b", "c", "d", "e", "f", "g", "i", "j"];
    out.push(format!(
        "fwd {:?}",
        live(r.subjects("doc", &docs, "viewer").unwrap())
    ));
    let users = [
        "alice", "bob", "carol", "dave", "fred", "gina", "ivan", "jon",
    ];
    out.push(format!(
        "rev user {:?}",
        live(
            r.resources_for_subjects(&ReverseQuery {
                subject_type: "user",
                subject_ids: &users,
                subject_relation: None,
                resource_type: None,
                relation: None,
            })
            .unwrap()
        )
    ));
    out.push(format!(
        "rev group {:?}",
        live(
            r.resources_for_subjects(&ReverseQuery {
                subject_type: "group",
                subject_ids: &["eng"],
                subject_relation: None,
                resource_type: Some("doc"),
                relation: Some("viewer"),
            })
            .unwrap()
        )
    ));
    for d in docs {
        for u in users {
            let point = r
                .tuple(&t(&format!("doc:{d}#viewer@user:{u}")))
                .unwrap()
                .filter(|t| !t.is_expired_at(now));
            out.push(format!("{d}/{u} {point:?}"));
        }
    }
    out
}

struct Fixture {
    now: Timestamp,
    applied: Revision,
}

/// Writes the scenario:
/// * a, d (caveated), e (subject set): expired an hour ago → removed;
/// * b: expires in an hour; c: no expiration → kept;
/// * f: unexpired at r2, re-written expired at r3 → kept (removing r3 would
///   resurface r2's version at later revisions);
/// * g: expired at r1, re-written with a future expiration at r5 → kept;
/// * i: expired, deleted, expired again → removed (every version is gone);
/// * j: expired 30 s ago → kept within a 60 s grace, removed with 0 s.
fn fill<S: RelationStore>(s: &S, tn: &Tenant) -> Fixture {
    let now = Timestamp::now();
    let past = now.0 - 3600;
    let future = now.0 + 3600;
    let batches = [
        WriteBatch::new()
            .touch(exp("doc:a#viewer@user:alice", past))
            .touch(exp("doc:b#viewer@user:bob", future))
            .touch(t("doc:c#viewer@user:carol"))
            .touch(exp("doc:d#viewer@user:dave[cav:{\"x\":1}]", past))
            .touch(exp("doc:e#viewer@group:eng#member", past))
            .touch(exp("doc:g#viewer@user:gina", past))
            .touch(exp("doc:i#viewer@user:ivan", past)),
        WriteBatch::new()
            .touch(t("doc:f#viewer@user:fred"))
            .delete(t("doc:i#viewer@user:ivan")),
        WriteBatch::new()
            .touch(exp("doc:f#viewer@user:fred", past))
            .touch(exp("doc:i#viewer@user:ivan", past)),
        WriteBatch::new().touch(exp("doc:j#viewer@user:jon", now.0 - 30)),
        WriteBatch::new().touch(exp("doc:g#viewer@user:gina", future)),
    ];
    for (i, b) in batches.iter().enumerate() {
        s.apply(tn, Revision(i as u64 + 1), b).unwrap();
    }
    Fixture {
        now,
        applied: Revision(batches.len() as u64),
    }
}

fn all_answers<S: RelationStore>(s: &S, tn: &Tenant, f: &Fixture) -> Vec<Vec<String>> {
    (s.gc_floor().0..=f.applied.0)
        .map(|r| answers(&s.snapshot(tn, Revision(r)).unwrap(), f.now))
        .collect()
}

fn log<S: RelationStore>(s: &S, tn: &Tenant) -> Vec<ChangeBatch> {
    s.changes_since(tn, Revision(0), 100).unwrap()
}

/// Runs the scenario on `s`; returns the raw scan at the applied revision.
fn removes_expired_and_keeps_answers<S: RelationStore>(s: &S) -> Vec<String> {
    let tn = Tenant::new("default").unwrap();
    let other = Tenant::new("other").unwrap();
    let f = fill(s, &tn);
    // Another tenant's expired tuple is removed too, its live one kept.
    s.apply(
        &other,
        f.applied.next(),
        &WriteBatch::new()
            .touch(exp("doc:a#viewer@user:alice", f.now.0 - 3600))
            .touch(t("doc:c#viewer@user:carol")),
    )
    .unwrap();
    let f = Fixture {
        now: f.now,
        applied: f.applied.next(),
    };
    let before = all_answers(s, &tn, &f);
    let log_before = log(s, &tn);

    assert_eq!(s.gc_expired(f.now, 60).unwrap(), 4 + 1);
    assert_eq!(all_answers(s, &tn, &f), before);
    assert_eq!(log(s, &tn), log_before, "the changelog is kept");
    for r in 0..=f.applied.0 {
        let snap = s.snapshot(&tn, Revision(r)).unwrap();
        for gone in [
            "doc:a#viewer@user:alice",
            "doc:d#viewer@user:dave",
            "doc:e#viewer@group:eng#member",
            "doc:i#viewer@user:ivan",
        ] {
            assert_eq!(snap.tuple(&t(gone)).unwrap(), None, "{gone} at {r}");
            assert!(
                !raw(&snap).iter().any(|x| x.starts_with(gone)),
                "{gone} at {r}"
            );
        }
        let rev = snap
            .resources_for_subjects(&ReverseQuery {
                subject_type: "group",
                subject_ids: &["eng"],
                subject_relation: None,
                resource_type: None,
                relation: None,
            })
            .unwrap();
        assert!(rev.is_empty(), "reverse index entries removed at {r}");
    }
    let other_snap = s.snapshot(&other, f.applied).unwrap();
    assert_eq!(raw(&other_snap), vec!["doc:c#viewer@user:carol"]);

    let at_applied = raw(&s.snapshot(&tn, f.applied).unwrap());
    assert_eq!(at_applied.len(), 5, "{at_applied:?}");
    for kept in ["doc:b#", "doc:c#", "doc:f#", "doc:g#", "doc:j#"] {
        assert!(
            at_applied.iter().any(|x| x.starts_with(kept)),
            "{kept}: {at_applied:?}"
        );
    }
    // f's unexpired version at revision 2 is still there.
    assert_eq!(
        s.snapshot(&tn, Revision(2))
            .unwrap()
            .tuple(&t("doc:f#viewer@user:fred"))
            .unwrap(),
        Some(t("doc:f#viewer@user:fred"))
    );

    // Nothing more within the grace; j goes with no grace; answers stay.
    assert_eq!(s.gc_expired(f.now, 60).unwrap(), 0);
    assert_eq!(s.gc_expired(f.now, 0).unwrap(), 1);
    assert_eq!(all_answers(s, &tn, &f), before);
    assert_eq!(s.gc_expired(f.now, 0).unwrap(), 0);

    // Re-written with a later expiration after removal: present, and kept.
    let later = exp("doc:a#viewer@user:alice", f.now.0 + 3600);
    let r = f.applied.next();
    s.apply(&tn, r, &WriteBatch::new().touch(later.clone()))
        .unwrap();
    assert_eq!(s.gc_expired(f.now, 0).unwrap(), 0);
    let snap = s.snapshot(&tn, r).unwrap();
    assert_eq!(snap.tuple(&later).unwrap(), Some(later));

    // After history GC leaves only f's expired version, f goes too.
    s.gc(r).unwrap();
    assert_eq!(s.gc_expired(f.now, 0).unwrap(), 1);
    let out = raw(&s.snapshot(&tn, r).unwrap());
    assert!(!out.iter().any(|x| x.starts_with("doc:f#")), "{out:?}");
    out
}

#[test]
fn mem_and_rocks_remove_the_same_expired_tuples() {
    let mem = MemStore::new();
    let dir = tempfile::tempdir().unwrap();
    let rocks = RocksStore::open(dir.path(), RocksOptions::default()).unwrap();
    let a = removes_expired_and_keeps_answers(&mem);
    let b = removes_expired_and_keeps_answers(&rocks);
    // Timestamps differ between the runs only by the `now` they were built from.
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.split('[').next().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(strip(a), strip(b));
}

#[test]
fn rocks_removal_survives_reopen_and_a_pinned_snapshot_keeps_reading() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), RocksOptions::default()).unwrap();
    let tn = Tenant::new("default").unwrap();
    let f = fill(&s, &tn);
    let pinned = s.snapshot(&tn, f.applied).unwrap();
    let pinned_before = raw(&pinned);
    assert_eq!(s.gc_expired(f.now, 60).unwrap(), 4);
    assert_eq!(raw(&pinned), pinned_before);
    drop(pinned);
    let after = raw(&s.snapshot(&tn, f.applied).unwrap());
    drop(s);
    let s = RocksStore::open(dir.path(), RocksOptions::default()).unwrap();
    s.compact();
    assert_eq!(raw(&s.snapshot(&tn, f.applied).unwrap()), after);
    assert_eq!(s.gc_expired(f.now, 60).unwrap(), 0);
}

#[test]
fn concurrent_rewrites_are_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RocksOptions {
        sync_writes: false,
        ..RocksOptions::default()
    };
    let s = Arc::new(RocksStore::open(dir.path(), opts).unwrap());
    let tn = Tenant::new("default").unwrap();
    let now = Timestamp::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                removed += s.gc_expired(now, 0).unwrap();
            }
            removed
        })
    };
    for r in 1..=400u64 {
        let key = format!("doc:x{}#viewer@user:u", r % 4);
        let at = if r % 2 == 0 {
            now.0 + 3600
        } else {
            now.0 - 3600
        };
        s.apply(&tn, Revision(r), &WriteBatch::new().touch(exp(&key, at)))
            .unwrap();
        if r % 2 == 0 {
            // The write with a future expiration is visible at its revision...
            let got = s
                .snapshot(&tn, Revision(r))
                .unwrap()
                .tuple(&t(&key))
                .unwrap();
            assert_eq!(got.and_then(|t| t.expiration), Some(Timestamp(at)), "{r}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let removed = gc.join().unwrap() + s.gc_expired(now, 0).unwrap();
    assert!(removed > 0);
    // ...and the final state holds exactly the unexpired writes.
    let snap = s.snapshot(&tn, Revision(400)).unwrap();
    for i in 0..4 {
        let got = snap.tuple(&t(&format!("doc:x{i}#viewer@user:u"))).unwrap();
        // Revisions 397..=400 wrote x1, x2, x3, x0; even ones are unexpired.
        assert_eq!(got.is_some(), i % 2 == 0, "x{i}: {got:?}");
    }
}

#[test]
fn background_worker_removes_expired_tuples() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(RocksStore::open(dir.path(), RocksOptions::default()).unwrap());
    let tn = Tenant::new("default").unwrap();
    let f = fill(s.as_ref(), &tn);
    let worker = verdict_storage::GcWorker::spawn_with_expiry_grace(
        s.clone(),
        Duration::from_millis(20),
        Duration::from_secs(3600),
        Duration::ZERO,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s
        .snapshot(&tn, f.applied)
        .unwrap()
        .tuple(&t("doc:a#viewer@user:alice"))
        .unwrap()
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the gc worker never removed the expired tuple"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(worker);
    let snap = s.snapshot(&tn, f.applied).unwrap();
    assert!(snap.tuple(&t("doc:b#viewer@user:bob")).unwrap().is_some());
    assert!(snap.tuple(&t("doc:c#viewer@user:carol")).unwrap().is_some());
    assert_eq!(
        s.gc_floor(),
        Revision(0),
        "history within retention is kept"
    );
}
