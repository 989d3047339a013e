//! Storage benchmarks (criterion): bulk import, a 100-tuple write batch, and
//! batched forward reads of one and of 100 resource ids.
//!
//! Data: the relationships of `../shared/peers/gen_workload.py` when
//! `VERDICT_WORKLOAD=path/to/workload.txt` is set, otherwise a synthetic
//! dataset of the same shape (documents, folders, nested groups, users).
//! `VERDICT_BENCH_REPORT=1` also runs a one-shot report: 1M-tuple import
//! (tuples/s), 100-tuple batch latency p50/p99, disk bytes per tuple after
//! compaction and RocksDB memory (override the size with `VERDICT_BENCH_TUPLES`).
//!
//! ```sh
//! cargo bench -p verdict-storage --bench store
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup step aborts it loudly"
)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use verdict_storage::{
    RelationStore, Revision, RocksOptions, RocksStore, Tenant, Tuple, TupleReader, WriteBatch,
};

/// The synthetic dataset: `n` tuples shaped like gen_workload.py's.
fn synthetic(n: usize) -> Vec<Tuple> {
    let mut x: u64 = 42;
    let mut next = move |m: u64| {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % m
    };
    let docs = (n / 5).max(1) as u64;
    let users = (n / 10).max(1) as u64;
    (0..n)
        .map(|i| {
            let s = match i % 10 {
                0 => format!(
                    "folder:f{}#parent@folder:f{}",
                    next(docs / 10 + 1),
                    next(docs / 50 + 1)
                ),
                1 => format!(
                    "group:g{}#member@user:u{}",
                    next(users / 20 + 1),
                    next(users)
                ),
                2 => format!(
                    "document:d{}#viewer@group:g{}#member",
                    next(docs),
                    next(users / 20 + 1)
                ),
                3 => format!(
                    "document:d{}#parent@folder:f{}",
                    next(docs),
                    next(docs / 10 + 1)
                ),
                4 => format!("document:d{}#owner@user:u{}", next(docs), next(users)),
                5 | 6 => format!("document:d{}#editor@user:u{}", next(docs), next(users)),
                _ => format!("document:d{}#viewer@user:u{}", next(docs), next(users)),
            };
            Tuple::parse(&s).unwrap()
        })
        .collect()
}

fn dataset(n: usize) -> Vec<Tuple> {
    if let Ok(path) = std::env::var("VERDICT_WORKLOAD") {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut in_rels = false;
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with("%% ") {
                in_rels = line == "%% relationships";
                continue;
            }
            if in_rels && !line.is_empty() {
                out.push(Tuple::parse(line).unwrap());
                if out.len() == n {
                    break;
                }
            }
        }
        return out;
    }
    synthetic(n)
}

/// Forward-read targets from the data: a (resource type, relation) —
/// `document#viewer` when present — and up to 100 distinct resource ids
/// that have tuples with it (the first one is the single-id target).
fn read_targets(data: &[Tuple]) -> (String, String, Vec<String>) {
    let (ty, rel) = data
        .iter()
        .find(|t| t.resource.object_type == "document" && t.relation == "viewer")
        .or(data.first())
        .map(|t| (t.resource.object_type.clone(), t.relation.clone()))
        .unwrap();
    let mut ids: Vec<String> = Vec::new();
    for t in data {
        if t.resource.object_type == ty && t.relation == rel && !ids.contains(&t.resource.object_id)
        {
            ids.push(t.resource.object_id.clone());
            if ids.len() == 100 {
                break;
            }
        }
    }
    (ty, rel, ids)
}

fn open(dir: &std::path::Path, sync: bool) -> RocksStore {
    RocksStore::open(
        dir,
        RocksOptions {
            sync_writes: sync,
            ..RocksOptions::default()
        },
    )
    .unwrap()
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn report() {
    let n: usize = std::env::var("VERDICT_BENCH_TUPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let data = dataset(n);
    let tn = Tenant::default_tenant();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), true);
    let t0 = Instant::now();
    store
        .bulk_import(&tn, Revision(1), &mut data.iter().cloned())
        .unwrap();
    let dt = t0.elapsed();
    println!(
        "bulk import: {} tuples in {:.2?} = {:.0} tuples/s",
        data.len(),
        dt,
        data.len() as f64 / dt.as_secs_f64()
    );
    store.compact();
    println!(
        "disk after compaction: {} bytes = {:.1} bytes/tuple (sst {:.1} bytes/tuple)",
        dir_bytes(dir.path()),
        dir_bytes(dir.path()) as f64 / data.len() as f64,
        store.live_sst_bytes() as f64 / data.len() as f64
    );
    let mut lat = Vec::new();
    for r in 0..1000u64 {
        let mut b = WriteBatch::new();
        for i in 0..100 {
            b = b.touch(Tuple::parse(&format!("document:w{r}#viewer@user:x{i}")).unwrap());
        }
        let t0 = Instant::now();
        store.apply(&tn, Revision(2 + r), &b).unwrap();
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "100-tuple batch (fsync on): p50 {:?} p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    let snap = store.snapshot(&tn, store.applied_revision()).unwrap();
    let (ty, rel, ids) = read_targets(&data);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut found = 0;
    let mut lat = Vec::new();
    for i in 0..100_000usize {
        let one = &id_refs[i % id_refs.len()..][..1];
        let t0 = Instant::now();
        found += std::hint::black_box(snap.subjects(&ty, one, &rel).unwrap()).len();
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "forward read of 1 (resource, relation), warm: p50 {:?} p99 {:?} ({:.1} tuples/read)",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        found as f64 / lat.len() as f64
    );
    let mut lat = Vec::new();
    for _ in 0..2_000 {
        let t0 = Instant::now();
        found = std::hint::black_box(snap.subjects(&ty, &id_refs, &rel).unwrap()).len();
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "forward read of 100 ids in one call, warm: p50 {:?} p99 {:?} ({found} tuples/read)",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );
    println!(
        "rocksdb memory (memtables+cache+readers): {} bytes",
        store.approximate_memory_bytes()
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(rss) = status.lines().find(|l| l.starts_with("VmRSS")) {
            println!("process {rss} (includes the dataset held in memory)");
        }
    }
}

fn benches(c: &mut Criterion) {
    if std::env::var("VERDICT_BENCH_REPORT").is_ok() {
        report();
    }
    let tn = Tenant::default_tenant();

    let mut g = c.benchmark_group("bulk_import");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    let data = dataset(100_000);
    g.throughput(Throughput::Elements(data.len() as u64));
    g.bench_function("100k_tuples", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = open(dir.path(), true);
                (dir, store)
            },
            |(dir, store)| {
                store
                    .bulk_import(&tn, Revision(1), &mut data.iter().cloned())
                    .unwrap();
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), true);
    store
        .bulk_import(&tn, Revision(1), &mut data.iter().cloned())
        .unwrap();

    let mut g = c.benchmark_group("write");
    let mut rev = 1u64;
    g.bench_function("batch_100_tuples_fsync", |b| {
        b.iter_batched(
            || {
                rev += 1;
                let mut batch = WriteBatch::new();
                for i in 0..100 {
                    batch = batch
                        .touch(Tuple::parse(&format!("document:w{rev}#viewer@user:x{i}")).unwrap());
                }
                (rev, batch)
            },
            |(r, batch)| store.apply(&tn, Revision(r), &batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let snap = store.snapshot(&tn, store.applied_revision()).unwrap();
    let (ty, rel, ids) = read_targets(&data);
    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("forward_read");
    g.bench_function("one_resource_relation", |b| {
        b.iter(|| snap.subjects(&ty, &id_refs[..1], &rel).unwrap())
    });
    g.bench_function("100_resource_ids", |b| {
        b.iter(|| snap.subjects(&ty, &id_refs, &rel).unwrap())
    });
    g.finish();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
