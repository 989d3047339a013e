//! The decision cache across revisions: with a write log fed before every
//! write (as the server's commit path does), cached answers are reused at
//! later revisions only where no write touched what they read. Random
//! writes (touch/delete over nested groups, folder arrows, wildcards,
//! exclusion) revision by revision; after each, every check through the
//! shared cache must equal the same check without a cache, at the new
//! revision and at older ones.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::sync::Arc;

use verdict::engine::{CheckRequest, DecisionCache, Engine, EngineConfig};
use verdict::schema::{self, SchemaLimits};
use verdict_storage::{MemStore, RelationStore, Revision, Tenant, Tuple, WriteBatch};

use crate::support::rng::Rng;

const SCHEMA: &str = "definition user {}
definition group {
    relation member: user | group#member
}
definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}
definition document {
    relation parent: folder
    relation viewer: user | user:* | group#member
    relation banned: user | group#member
    permission view = (viewer + parent->view) - banned
}
";

fn random_tuple(rng: &mut Rng) -> Tuple {
    let (g, f, d, u) = (rng.below(4), rng.below(4), rng.below(5), rng.below(5));
    let line = match rng.below(8) {
        0 => format!("group:g{g}#member@user:u{u}"),
        1 => format!("group:g{g}#member@group:g{}#member", rng.below(4)),
        2 => format!("folder:f{f}#parent@folder:f{}", rng.below(4)),
        3 => format!("folder:f{f}#viewer@group:g{g}#member"),
        4 => format!("document:d{d}#parent@folder:f{f}"),
        5 => format!("document:d{d}#viewer@user:u{u}"),
        6 if u == 0 => format!("document:d{d}#viewer@user:*"),
        6 => format!("document:d{d}#viewer@group:g{g}#member"),
        _ => format!("document:d{d}#banned@user:u{u}"),
    };
    Tuple::parse(&line).expect("valid tuple")
}

/// Every `resource#permission@user` question over the universe.
fn checks() -> Vec<Tuple> {
    let mut out = Vec::new();
    for u in 0..5 {
        for d in 0..5 {
            out.push(format!("document:d{d}#view@user:u{u}"));
        }
        for f in 0..4 {
            out.push(format!("folder:f{f}#view@user:u{u}"));
        }
        for g in 0..4 {
            out.push(format!("group:g{g}#member@user:u{u}"));
        }
    }
    // Userset subjects: their point lookups have footprints of their own.
    for g in 0..4 {
        for d in 0..5 {
            out.push(format!("document:d{d}#view@group:g{g}#member"));
        }
        out.push(format!("group:g{}#member@group:g{g}#member", (g + 1) % 4));
    }
    out.iter()
        .map(|l| Tuple::parse(l).expect("check"))
        .collect()
}

#[test]
fn cached_answers_equal_uncached_answers_at_every_revision() {
    let compiled = schema::compile(SCHEMA, &SchemaLimits::default()).expect("schema");
    let schema = Arc::new(compiled.schema);
    let plain = Engine::new(schema.clone(), EngineConfig::default()).expect("engine");
    let tenant = Tenant::default_tenant();
    let checks = checks();
    let (mut reused, mut hits, mut misses) = (0u64, 0u64, 0u64);
    let mut early_answers = 0u64;
    for seed in 0..6u64 {
        // One store, one cache: revisions only grow (as in a server).
        let cache = Arc::new(DecisionCache::new(1 << 22).with_write_log());
        let cached = plain.clone().with_cache(cache.clone());
        let store = MemStore::new();
        let mut rng = Rng(seed);
        let mut revision = store.applied_revision();
        for round in 0..40 {
            let mut batch = WriteBatch::new();
            for _ in 0..1 + rng.below(3) {
                let t = random_tuple(&mut rng);
                batch = if rng.below(3) == 0 {
                    batch.delete(t)
                } else {
                    batch.touch(t)
                };
            }
            revision = revision.next();
            // As the commit path does: log first, then apply.
            cache.note_batch(tenant.as_str(), revision.0, &batch);
            // A rejected batch (a tuple twice) changes nothing but still
            // consumes its revision.
            if let Err(e) = store.apply(&tenant, revision, &batch) {
                assert!(e.is_rejection(), "{e}");
            }
            assert_eq!(store.applied_revision(), revision);
            // Now, and (every few rounds) at an older revision.
            let mut at = vec![revision];
            if round % 5 == 4 {
                at.push(Revision(revision.0 - 3));
            }
            for r in at {
                let reader = store.snapshot(&tenant, r).expect("snapshot");
                for c in &checks {
                    let request = CheckRequest::new(
                        c.resource.clone(),
                        c.relation.clone(),
                        c.subject.clone(),
                    );
                    let want = plain.check(&reader, &request).expect("check").outcome;
                    // The storage-free root lookup the server tries first.
                    if let Some(early) = cached.check_cached(tenant.as_str(), r, &request) {
                        assert_eq!(
                            early.outcome, want,
                            "check_cached, seed {seed} round {round} revision {}: {c}",
                            r.0
                        );
                        early_answers += 1;
                    }
                    let got = cached.check(&reader, &request).expect("cached check");
                    assert_eq!(
                        got.outcome, want,
                        "seed {seed} round {round} revision {}: {c}",
                        r.0
                    );
                    reused += got.cache_hits;
                }
            }
        }
        hits += cache.stats().hits;
        misses += cache.stats().misses;
    }
    // The cache was exercised (answers came from it), not bypassed.
    assert!(
        reused > 0 && hits > 0 && misses > 0 && early_answers > 0,
        "{reused} {hits} {misses} {early_answers}"
    );
}
