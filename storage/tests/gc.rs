//! GC on RocksStore: reads inside the window are unchanged (also for a
//! snapshot opened before GC ran), reads below the floor fail clearly, the
//! floor survives a restart, time-based GC maps retention to a revision,
//! and GC runs while writes proceed.

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
    RelationStore, Revision, RocksOptions, RocksStore, StorageError, Tenant, Tuple, TupleFilter,
    TupleReader, TupleReaderExt, WriteBatch,
};

fn t(s: &str) -> Tuple {
    Tuple::parse(s).unwrap()
}

fn dump<R: TupleReader>(r: &R) -> Vec<String> {
    let mut v = Vec::new();
    r.for_each_tuple(&TupleFilter::default(), 100, |t| {
        v.push(t.to_string());
        Ok(())
    })
    .unwrap();
    v
}

fn fill(s: &RocksStore, tn: &Tenant, revs: u64) {
    for r in 1..=revs {
        let mut b = WriteBatch::new().touch(t(&format!("doc:{}#viewer@user:u{r}", r % 5)));
        if r % 3 == 0 {
            b = b.delete(t(&format!("doc:{}#viewer@user:u{}", (r - 2) % 5, r - 2)));
        }
        if r % 7 == 0 {
            b = b.touch(t(&format!(
                "doc:{}#viewer@user:u{}[cav:{{\"r\":{r}}}]",
                (r - 1) % 5,
                r - 1
            )));
        }
        s.apply(tn, Revision(r), &b).unwrap();
    }
}

#[test]
fn gc_keeps_the_window_and_rejects_below_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), RocksOptions::default()).unwrap();
    let tn = Tenant::new("default").unwrap();
    fill(&s, &tn, 60);
    let before: Vec<Vec<String>> = (0..=60)
        .map(|r| dump(&s.snapshot(&tn, Revision(r)).unwrap()))
        .collect();
    let log_before = s.changes_since(&tn, Revision(40), 100).unwrap();

    // A snapshot opened before GC keeps reading what it saw.
    let pinned = s.snapshot(&tn, Revision(10)).unwrap();
    let stats = s.gc(Revision(40)).unwrap();
    assert!(
        stats.versions_removed > 0 && stats.changelog_removed == 40,
        "{stats:?}"
    );
    assert_eq!(dump(&pinned), before[10]);
    drop(pinned);

    for r in 40..=60 {
        assert_eq!(
            dump(&s.snapshot(&tn, Revision(r)).unwrap()),
            before[r as usize],
            "revision {r}"
        );
    }
    let err = s.snapshot(&tn, Revision(39)).unwrap_err();
    assert_eq!(err.code(), "STORAGE:RevisionCompacted");
    assert_eq!(
        err.to_string(),
        "revision 39 is older than the retained floor 40; it was garbage-collected"
    );
    assert!(matches!(
        s.changes_since(&tn, Revision(39), 10),
        Err(StorageError::ChangelogCompacted { .. })
    ));
    assert_eq!(s.changes_since(&tn, Revision(40), 100).unwrap(), log_before);

    // The floor and the data survive a restart; compaction changes nothing.
    drop(s);
    let s = RocksStore::open(dir.path(), RocksOptions::default()).unwrap();
    assert_eq!(s.gc_floor(), Revision(40));
    s.compact();
    for r in 40..=60 {
        assert_eq!(
            dump(&s.snapshot(&tn, Revision(r)).unwrap()),
            before[r as usize],
            "revision {r}"
        );
    }
    // A second GC at the same floor finds nothing more to remove.
    let again = s.gc(Revision(40)).unwrap();
    assert_eq!((again.versions_removed, again.changelog_removed), (0, 0));
}

#[test]
fn time_based_gc_maps_retention_to_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let s = RocksStore::open(dir.path(), RocksOptions::default()).unwrap();
    let tn = Tenant::new("default").unwrap();
    fill(&s, &tn, 10);
    let latest = dump(&s.snapshot(&tn, Revision(10)).unwrap());
    // Everything is younger than an hour: nothing is collected.
    assert_eq!(
        s.gc_older_than(Duration::from_secs(3600)).unwrap().floor,
        Revision(0)
    );
    assert!(s.snapshot(&tn, Revision(0)).is_ok());
    // Everything is at least 0 s old: the floor moves to the applied revision.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.gc_older_than(Duration::ZERO).unwrap().floor, Revision(10));
    assert!(s.snapshot(&tn, Revision(9)).is_err());
    assert_eq!(dump(&s.snapshot(&tn, Revision(10)).unwrap()), latest);
}

#[test]
fn gc_runs_while_writes_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = RocksOptions {
        sync_writes: false,
        ..RocksOptions::default()
    };
    let s = Arc::new(RocksStore::open(dir.path(), opts).unwrap());
    let tn = Tenant::new("default").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let applied = s.applied_revision().0;
                s.gc(Revision(applied.saturating_sub(5))).unwrap();
                runs += 1;
            }
            runs
        })
    };
    for r in 1..=300u64 {
        let b = WriteBatch::new()
            .touch(t(&format!("doc:{}#viewer@user:u{}", r % 10, r % 7)))
            .delete(t(&format!(
                "doc:{}#viewer@user:u{}",
                (r + 3) % 10,
                (r + 1) % 7
            )));
        s.apply(&tn, Revision(r), &b).unwrap();
        // Reads inside the window always work while GC runs.
        let snap = s.snapshot(&tn, Revision(r)).unwrap();
        assert!(snap
            .tuple(&t(&format!("doc:{}#viewer@user:u{}", r % 10, r % 7)))
            .unwrap()
            .is_some());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(gc.join().unwrap() > 0);

    // Same final state as a store that never ran GC.
    let dir2 = tempfile::tempdir().unwrap();
    let fresh = RocksStore::open(dir2.path(), RocksOptions::default()).unwrap();
    for r in 1..=300u64 {
        let b = WriteBatch::new()
            .touch(t(&format!("doc:{}#viewer@user:u{}", r % 10, r % 7)))
            .delete(t(&format!(
                "doc:{}#viewer@user:u{}",
                (r + 3) % 10,
                (r + 1) % 7
            )));
        fresh.apply(&tn, Revision(r), &b).unwrap();
    }
    let floor = s.gc_floor().0;
    for r in floor..=300 {
        assert_eq!(
            dump(&s.snapshot(&tn, Revision(r)).unwrap()),
            dump(&fresh.snapshot(&tn, Revision(r)).unwrap()),
            "revision {r}"
        );
    }
}

#[test]
fn background_worker_collects_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(RocksStore::open(dir.path(), RocksOptions::default()).unwrap());
    let tn = Tenant::new("default").unwrap();
    fill(&s, &tn, 12);
    let latest = dump(&s.snapshot(&tn, Revision(12)).unwrap());
    let worker =
        verdict_storage::GcWorker::spawn(s.clone(), Duration::from_millis(20), Duration::ZERO);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.gc_floor() < Revision(12) {
        assert!(
            std::time::Instant::now() < deadline,
            "the gc worker never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(worker);
    assert_eq!(dump(&s.snapshot(&tn, Revision(12)).unwrap()), latest);
    assert!(s.snapshot(&tn, Revision(11)).is_err());
}
