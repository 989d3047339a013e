//! Engine throughput on the shared workload, in process, on RocksDB.
//!
//! Loads `gen_workload.py --seed 42 --relationships 100000 --checks 20000`
//! (generated on the fly from `../shared/peers`, or `VERDICT_WORKLOAD=path`)
//! into a RocksDB store, then reports, release build:
//! - checks/s and p50/p99 latency over all 20,000 checks, one thread and
//!   two threads (decision cache off = cold), and one thread with a warm
//!   decision cache;
//! - lookup-resources for one well-connected user: results/s.
//!
//! Run: `cargo bench --bench engine_check`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark: a failed setup step aborts it loudly"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict::engine::{CheckRequest, DecisionCache, Engine, EngineConfig};
use verdict::schema::{self, SchemaLimits};
use verdict::workload::benchmark_workload;
use verdict_storage::{
    RelationStore, Revision, RocksOptions, RocksStore, Tenant, Timestamp, Tuple, TupleReader,
};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn run_checks(
    engine: &Engine,
    reader: &dyn TupleReader,
    checks: &[Tuple],
    now: Timestamp,
) -> Vec<Duration> {
    checks
        .iter()
        .map(|c| {
            let mut request =
                CheckRequest::new(c.resource.clone(), c.relation.clone(), c.subject.clone());
            request.now = now;
            let start = Instant::now();
            let response = engine.check(reader, &request).expect("check succeeds");
            std::hint::black_box(response.outcome);
            start.elapsed()
        })
        .collect()
}

fn run_checks_allowed(
    engine: &Engine,
    reader: &dyn TupleReader,
    checks: &[Tuple],
    now: Timestamp,
) -> usize {
    checks
        .iter()
        .filter(|c| {
            let mut request =
                CheckRequest::new(c.resource.clone(), c.relation.clone(), c.subject.clone());
            request.now = now;
            engine
                .check(reader, &request)
                .is_ok_and(|r| r.outcome.is_allowed())
        })
        .count()
}

fn report(label: &str, mut latencies: Vec<Duration>, wall: Duration) {
    latencies.sort();
    println!(
        "{label}: {} checks in {:.2}s = {:.0} checks/s; p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6),
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let workload =
        benchmark_workload(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers"))
            .expect("benchmark workload");
    let store = RocksStore::open(
        dir.path().join("db"),
        RocksOptions {
            sync_writes: false,
            ..RocksOptions::default()
        },
    )
    .expect("store opens");
    let tenant = Tenant::default_tenant();
    let start = Instant::now();
    store
        .bulk_import(
            &tenant,
            Revision(1),
            &mut workload.relationships.iter().cloned(),
        )
        .expect("import");
    println!(
        "workload s42-r100000: imported {} relationships in {:.2}s",
        workload.relationships.len(),
        start.elapsed().as_secs_f64()
    );
    let reader = store.snapshot(&tenant, Revision(1)).expect("snapshot");
    let compiled = schema::compile(&workload.schema, &SchemaLimits::default()).expect("schema");
    let engine = Engine::new(Arc::new(compiled.schema), EngineConfig::default()).expect("engine");
    let now = Timestamp::now();

    // Warm the block cache once, then measure.
    let _ = run_checks(&engine, &reader, &workload.checks, now);
    let start = Instant::now();
    let latencies = run_checks(&engine, &reader, &workload.checks, now);
    report("check, 1 thread", latencies, start.elapsed());

    let half = workload.checks.len() / 2;
    let (a, b) = workload.checks.split_at(half);
    let start = Instant::now();
    let latencies = std::thread::scope(|s| {
        // A snapshot serves one thread (it reuses its RocksDB iterator).
        let (store, tenant, engine) = (&store, &tenant, &engine);
        let own = move || store.snapshot(tenant, Revision(1)).expect("snapshot");
        let ha = s.spawn(move || run_checks(engine, &own(), a, now));
        let hb = s.spawn(move || run_checks(engine, &own(), b, now));
        let mut l = ha.join().expect("thread");
        l.extend(hb.join().expect("thread"));
        l
    });
    report("check, 2 threads", latencies, start.elapsed());

    // The same checks with the shared decision cache, warmed by one pass.
    let cache = Arc::new(DecisionCache::new(256 << 20));
    let cached = engine.clone().with_cache(cache.clone());
    let _ = run_checks(&cached, &reader, &workload.checks, now);
    let start = Instant::now();
    let latencies = run_checks(&cached, &reader, &workload.checks, now);
    report(
        "check, 1 thread, warm decision cache",
        latencies,
        start.elapsed(),
    );
    let stats = cache.stats();
    println!(
        "decision cache: {} entries, {:.1} MiB, hit ratio {:.2}",
        stats.entries,
        stats.bytes as f64 / (1 << 20) as f64,
        stats.hits as f64 / (stats.hits + stats.misses).max(1) as f64
    );

    // Caveat cost: the same workload with a caveat on every direct document
    // viewer (`user with within_limit`, stored limit 100) and every check
    // carrying `{"amount": 50}`, so answers are unchanged; decision cache off.
    let caveated_schema = format!(
        "{}\ncaveat within_limit(amount int, limit int) {{\n    amount <= limit\n}}\n",
        workload.schema.replace(
            "relation viewer: user | user:* | group#member",
            "relation viewer: user with within_limit | user:* | group#member",
        )
    );
    let caveated: Vec<Tuple> = workload
        .relationships
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t.resource.object_type == "document"
                && t.relation == "viewer"
                && t.subject.relation.is_none()
                && !t.subject.is_wildcard()
            {
                let mut context = serde_json::Map::new();
                context.insert("limit".into(), serde_json::json!(100));
                t.caveat = Some(verdict_storage::TupleCaveat {
                    name: "within_limit".into(),
                    context,
                });
            }
            t
        })
        .collect();
    let caveated_count = caveated.iter().filter(|t| t.caveat.is_some()).count();
    let store2 = RocksStore::open(
        dir.path().join("db-caveats"),
        RocksOptions {
            sync_writes: false,
            ..RocksOptions::default()
        },
    )
    .expect("store opens");
    store2
        .bulk_import(&tenant, Revision(1), &mut caveated.into_iter())
        .expect("import");
    let reader2 = store2.snapshot(&tenant, Revision(1)).expect("snapshot");
    let compiled2 =
        schema::compile(&caveated_schema, &SchemaLimits::default()).expect("caveated schema");
    let engine2 = Engine::new(Arc::new(compiled2.schema), EngineConfig::default()).expect("engine");
    let mut context = serde_json::Map::new();
    context.insert("amount".into(), serde_json::json!(50));
    let run_caveated = || -> (Vec<Duration>, usize) {
        let mut allowed = 0;
        let latencies = workload
            .checks
            .iter()
            .map(|c| {
                let mut request =
                    CheckRequest::new(c.resource.clone(), c.relation.clone(), c.subject.clone());
                request.now = now;
                request.context = context.clone();
                let start = Instant::now();
                let response = engine2.check(&reader2, &request).expect("check succeeds");
                let elapsed = start.elapsed();
                allowed += usize::from(response.outcome.is_allowed());
                elapsed
            })
            .collect();
        (latencies, allowed)
    };
    let _ = run_caveated();
    let start = Instant::now();
    let (latencies, allowed_caveated) = run_caveated();
    let wall = start.elapsed();
    report(
        &format!("check, 1 thread, {caveated_count} viewer tuples caveated"),
        latencies,
        wall,
    );
    let plain_allowed = run_checks_allowed(&engine, &reader, &workload.checks, now);
    println!(
        "caveated run allowed {allowed_caveated} of {} (plain: {plain_allowed}); compare its checks/s with the first line for the caveat cost",
        workload.checks.len()
    );

    // Lookup-resources for the subject of the first allowed-looking check.
    let subject = workload.checks[0].subject.clone();
    let start = Instant::now();
    let mut cursor: Option<String> = None;
    let mut results = 0usize;
    loop {
        let page = engine
            .lookup_resources(
                &reader,
                "document",
                "view",
                &subject,
                &Default::default(),
                now,
                cursor.as_deref(),
                1000,
            )
            .expect("lookup");
        results += page.items.len();
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let wall = start.elapsed();
    println!(
        "lookup_resources(document, view, {subject}): {results} results in {:.3}s = {:.0} results/s",
        wall.as_secs_f64(),
        results as f64 / wall.as_secs_f64()
    );

    // Lookup-subjects for the resource of the first check.
    let resource = workload.checks[0].resource.clone();
    let start = Instant::now();
    let subjects = engine
        .lookup_subjects(
            &reader,
            &resource,
            "view",
            "user",
            None,
            &Default::default(),
            now,
        )
        .expect("lookup subjects");
    let wall = start.elapsed();
    println!(
        "lookup_subjects({resource}, view, user): {} results in {:.3}s = {:.0} results/s",
        subjects.len(),
        wall.as_secs_f64(),
        subjects.len() as f64 / wall.as_secs_f64()
    );
}
