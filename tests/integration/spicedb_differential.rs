//! Differential test against SpiceDB: the shared benchmark dataset
//! (`gen_workload.py --seed 42 --relationships 100000 --checks 20000`)
//! loaded into a real RocksDB store, all 20,000 checks answered by the
//! engine and compared with SpiceDB v1.54.0's recorded answers
//! (`../shared/peers/answers/`). Every disagreement is a bug.
//!
//! Skips (with a note) when `../shared/peers` is not beside the project.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use verdict::engine::{CheckRequest, Engine, EngineConfig, Outcome};
use verdict::schema::{self, SchemaLimits};
use verdict::workload::generate_shared;
use verdict_storage::{RelationStore, Revision, RocksOptions, RocksStore, Tenant, Timestamp};

#[test]
fn engine_agrees_with_spicedb_on_the_shared_workload() {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/peers");
    let answers_path = peers.join("answers/workload-s42-r100000.spicedb-answers.txt");
    if !answers_path.is_file() {
        eprintln!("skipped: {} not found", answers_path.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let workload = generate_shared(&peers).expect("gen_workload.py runs");
    assert_eq!(workload.checks.len(), 20_000);

    let answers: HashMap<String, bool> = std::fs::read_to_string(&answers_path)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(q, a)| (q.to_string(), a == "allowed"))
        .collect();

    let store = RocksStore::open(
        dir.path().join("db"),
        RocksOptions {
            sync_writes: false,
            ..RocksOptions::default()
        },
    )
    .unwrap();
    let tenant = Tenant::default_tenant();
    store
        .bulk_import(
            &tenant,
            Revision(1),
            &mut workload.relationships.iter().cloned(),
        )
        .unwrap();
    let reader = store.snapshot(&tenant, Revision(1)).unwrap();
    let compiled = schema::compile(&workload.schema, &SchemaLimits::default()).unwrap();
    let engine = Engine::new(Arc::new(compiled.schema), EngineConfig::default()).unwrap();

    let now = Timestamp::now();
    let mut disagreements = Vec::new();
    let mut allowed = 0;
    for check in &workload.checks {
        let key = check.to_string();
        let expected = *answers
            .get(&key)
            .unwrap_or_else(|| panic!("no SpiceDB answer for {key}"));
        let mut request = CheckRequest::new(
            check.resource.clone(),
            check.relation.clone(),
            check.subject.clone(),
        );
        request.now = now;
        let outcome = engine.check(&reader, &request).unwrap().outcome;
        let got = match outcome {
            Outcome::Allowed => true,
            Outcome::Denied => false,
            Outcome::Conditional { .. } => panic!("{key}: conditional without caveats"),
        };
        allowed += usize::from(got);
        if got != expected {
            disagreements.push(format!("{key}: SpiceDB {expected}, Verdict {got}"));
        }
    }
    println!(
        "20000 checks: {allowed} allowed, {} denied, {} disagreements with SpiceDB",
        20_000 - allowed,
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements, first: {:?}",
        disagreements.len(),
        &disagreements[..disagreements.len().min(10)]
    );
}
