//! Crash test: a child process (this test binary re-executed in "writer"
//! mode) applies batches and prints each acknowledged revision; the parent
//! SIGKILLs it at random moments, reopens the store and checks that every
//! acknowledged batch is fully present and no batch is partially present.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use verdict_storage::{
    RelationStore, Revision, RocksOptions, RocksStore, Tenant, Tuple, TupleFilter, TupleReaderExt,
    WriteBatch,
};

const CHILD_ENV: &str = "VERDICT_CRASH_CHILD_DIR";

fn tenant() -> Tenant {
    Tenant::new("crash").unwrap()
}

/// Batch `r`: every 10th revision bulk-imports 400 tuples; the others touch
/// 1..=40 tuples of resource `doc:r{r}` and delete everything of `r-3`.
fn tuples_of(r: u64) -> Vec<Tuple> {
    let n = if r.is_multiple_of(10) {
        400
    } else {
        1 + (r * 7919) % 40
    };
    (0..n)
        .map(|i| Tuple::parse(&format!("doc:r{r}#viewer@user:u{i}")).unwrap())
        .collect()
}

fn write(store: &RocksStore, r: u64) {
    let rev = Revision(r);
    if r.is_multiple_of(10) {
        store
            .bulk_import(&tenant(), rev, &mut tuples_of(r).into_iter())
            .unwrap();
        return;
    }
    let mut b = WriteBatch::new();
    for t in tuples_of(r) {
        b = b.touch(t);
    }
    if deletes_predecessor(r) {
        b = b.delete_by_filter(
            TupleFilter::resource_type("doc").with_resource_id(format!("r{}", r - 3)),
            None,
        );
    }
    store.apply(&tenant(), rev, &b).unwrap();
}

/// Whether batch `r` deletes the tuples of batch `r - 3` (bulk imports do not).
fn deletes_predecessor(r: u64) -> bool {
    r > 3 && !r.is_multiple_of(10)
}

/// The expected tuples (as text, sorted) once `applied` is the applied revision.
fn expected(applied: u64) -> Vec<String> {
    let mut v: Vec<String> = (1..=applied)
        .filter(|r| !(r + 3 <= applied && deletes_predecessor(r + 3)))
        .flat_map(tuples_of)
        .map(|t| t.to_string())
        .collect();
    v.sort();
    v
}

/// The writer: runs only when re-executed by `crash_recovery_keeps_every_acknowledged_batch`.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = RocksStore::open(&dir, RocksOptions::default()).unwrap();
    let mut out = std::io::stdout().lock();
    let mut r = store.applied_revision().0;
    loop {
        r += 1;
        write(&store, r);
        writeln!(out, "ACK {r}").unwrap();
        out.flush().unwrap();
    }
}

fn check(dir: &std::path::Path, max_ack: u64) -> u64 {
    let store = RocksStore::open(dir, RocksOptions::default()).unwrap();
    let applied = store.applied_revision().0;
    assert!(
        applied >= max_ack,
        "acknowledged {max_ack} but only {applied} survived"
    );
    let snap = store.snapshot(&tenant(), Revision(applied)).unwrap();
    let mut got = Vec::new();
    snap.for_each_tuple(&TupleFilter::default(), 1000, |t| {
        got.push(t.to_string());
        Ok(())
    })
    .unwrap();
    got.sort();
    assert_eq!(
        got,
        expected(applied),
        "state at applied revision {applied}"
    );
    let log = store
        .changes_since(&tenant(), Revision(0), usize::MAX)
        .unwrap();
    let revs: Vec<u64> = log.iter().map(|b| b.revision.0).collect();
    assert_eq!(
        revs,
        (1..=applied).collect::<Vec<_>>(),
        "changelog revisions"
    );
    for b in &log {
        let touched = b
            .changes
            .iter()
            .filter(|c| c.kind != verdict_storage::ChangeKind::Delete)
            .count();
        assert_eq!(
            touched,
            tuples_of(b.revision.0).len(),
            "changelog of {}",
            b.revision
        );
    }
    applied
}

#[test]
fn crash_recovery_keeps_every_acknowledged_batch() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let started = Instant::now();
    let mut total_acks = 0;
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(30 + seed % 400);
        let mut child = Command::new(&exe)
            .args([
                "crash_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut max = 0u64;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(r) = line.strip_prefix("ACK ") {
                    max = max.max(r.trim().parse().unwrap());
                }
            }
            max
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let max_ack = reader.join().unwrap();
        let applied = check(dir.path(), max_ack);
        total_acks += max_ack;
        eprintln!("round {round}: killed after {delay:?}, max ack {max_ack}, applied {applied}");
    }
    assert!(total_acks > 0, "the writer never acknowledged anything");
    assert!(started.elapsed() < Duration::from_secs(120));
}
