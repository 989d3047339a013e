//! Model-based test: `RocksStore` and `MemStore` against a deliberately
//! simple model (a BTreeMap of per-tuple histories) under random batches with
//! preconditions, deletes and delete-by-filter. At every revision, every kind
//! of read must return exactly what the model returns.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use verdict_storage::{
    ChangeBatch, ChangeKind, IdFilter, MemStore, ObjectRef, Op, Precondition, RelationStore,
    ReverseQuery, Revision, RocksOptions, RocksStore, StorageError, SubjectRef,
    SubjectRelationFilter, Tenant, Timestamp, Tuple, TupleCaveat, TupleFilter, TupleReader,
    WriteBatch,
};

const TENANTS: [&str; 2] = ["t1", "t1-x"];
const RTYPES: [&str; 2] = ["doc", "org/doc"];
const RIDS: [&str; 4] = ["a", "ab", "b|c", "a.b"];
const RELS: [&str; 2] = ["viewer", "editor"];
const STYPES: [&str; 2] = ["user", "group"];
const SIDS: [&str; 3] = ["x", "y", "*"];

/// Identity of a tuple; field order = forward index order.
type Key = (String, String, String, String, String, Option<String>);

fn key(t: &Tuple) -> Key {
    (
        t.resource.object_type.clone(),
        t.resource.object_id.clone(),
        t.relation.clone(),
        t.subject.object.object_type.clone(),
        t.subject.object.object_id.clone(),
        t.subject.relation.clone(),
    )
}

fn rev_order(t: &Tuple) -> (String, String, Option<String>, String, String, String) {
    (
        t.subject.object.object_type.clone(),
        t.subject.object.object_id.clone(),
        t.subject.relation.clone(),
        t.resource.object_type.clone(),
        t.relation.clone(),
        t.resource.object_id.clone(),
    )
}

/// Versions oldest first: (revision, live tuple or None = deleted).
type History = Vec<(u64, Option<Tuple>)>;

#[derive(Default)]
struct Model {
    applied: u64,
    /// (tenant, key) -> versions oldest first.
    hist: BTreeMap<(String, Key), History>,
    log: BTreeMap<(String, u64), Vec<(ChangeKind, Tuple)>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Ok { changes: usize, truncated: bool },
    Already,
    Rejected(&'static str, usize),
}

impl Model {
    fn live(&self, tenant: &str, at: u64) -> BTreeMap<Key, Tuple> {
        self.hist
            .iter()
            .filter(|((tn, _), _)| tn == tenant)
            .filter_map(|((_, k), h)| {
                h.iter()
                    .rev()
                    .find(|(r, _)| *r <= at)
                    .and_then(|(_, t)| t.clone())
                    .map(|t| (k.clone(), t))
            })
            .collect()
    }

    fn apply(&mut self, tenant: &str, rev: u64, b: &WriteBatch) -> Outcome {
        if rev <= self.applied {
            return Outcome::Already;
        }
        let mut seen: BTreeMap<Key, usize> = BTreeMap::new();
        for (i, op) in b.ops.iter().enumerate() {
            if let Op::Create(t) | Op::Touch(t) | Op::Delete(t) = op {
                if seen.contains_key(&key(t)) {
                    self.applied = rev;
                    return Outcome::Rejected("dup", i);
                }
                seen.insert(key(t), i);
            }
        }
        let before = self.live(tenant, self.applied);
        for (i, p) in b.preconditions.iter().enumerate() {
            let ok = match p {
                Precondition::MustMatch(f) => before.values().any(|t| f.matches(t)),
                Precondition::MustNotMatch(f) => !before.values().any(|t| f.matches(t)),
            };
            if !ok {
                self.applied = rev;
                return Outcome::Rejected("precondition", i);
            }
        }
        let mut cur = before.clone();
        let mut touched: BTreeSet<Key> = BTreeSet::new();
        let mut log = Vec::new();
        let mut truncated = false;
        for (i, op) in b.ops.iter().enumerate() {
            match op {
                Op::Create(t) => {
                    if cur.contains_key(&key(t)) {
                        self.applied = rev;
                        return Outcome::Rejected("exists", i);
                    }
                    cur.insert(key(t), t.clone());
                    touched.insert(key(t));
                    log.push((ChangeKind::Create, t.clone()));
                }
                Op::Touch(t) => {
                    cur.insert(key(t), t.clone());
                    touched.insert(key(t));
                    log.push((ChangeKind::Touch, t.clone()));
                }
                Op::Delete(t) => {
                    if let Some(old) = cur.remove(&key(t)) {
                        touched.insert(key(t));
                        log.push((ChangeKind::Delete, old));
                    }
                }
                Op::DeleteByFilter { filter, limit } => {
                    let matching: Vec<Key> = cur
                        .iter()
                        .filter(|(_, t)| filter.matches(t))
                        .map(|(k, _)| k.clone())
                        .collect();
                    let max = limit.unwrap_or(usize::MAX);
                    truncated |= matching.len() > max;
                    for k in matching.into_iter().take(max) {
                        if let Some(old) = cur.remove(&k) {
                            touched.insert(k);
                            log.push((ChangeKind::Delete, old));
                        }
                    }
                }
                Op::PutSchema(_) => unreachable!("not generated"),
            }
        }
        self.applied = rev;
        for k in touched {
            let v = cur.get(&k).cloned();
            self.hist
                .entry((tenant.to_owned(), k))
                .or_default()
                .push((rev, v));
        }
        let changes = log.len();
        if !log.is_empty() {
            self.log.insert((tenant.to_owned(), rev), log);
        }
        Outcome::Ok { changes, truncated }
    }

    fn changes_since(
        &self,
        tenant: &str,
        after: u64,
        limit: usize,
    ) -> Vec<(u64, Vec<(ChangeKind, Tuple)>)> {
        self.log
            .iter()
            .filter(|((tn, r), _)| tn == tenant && *r > after)
            .take(limit)
            .map(|((_, r), v)| (*r, v.clone()))
            .collect()
    }
}

fn outcome<S: RelationStore>(s: &S, tenant: &Tenant, rev: u64, b: &WriteBatch) -> Outcome {
    match s.apply(tenant, Revision(rev), b) {
        Ok(o) if o.status == verdict_storage::ApplyStatus::AlreadyApplied => Outcome::Already,
        Ok(o) => Outcome::Ok {
            changes: o.changes,
            truncated: o.delete_truncated,
        },
        Err(StorageError::DuplicateTuple { index, .. }) => Outcome::Rejected("dup", index),
        Err(StorageError::PreconditionFailed { index, .. }) => {
            Outcome::Rejected("precondition", index)
        }
        Err(StorageError::TupleAlreadyExists { index, .. }) => Outcome::Rejected("exists", index),
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

fn arb_tuple() -> impl Strategy<Value = Tuple> {
    (
        0..RTYPES.len(),
        0..RIDS.len(),
        0..RELS.len(),
        0..STYPES.len(),
        0..SIDS.len(),
        any::<bool>(),
        prop::option::of(0i64..3),
        prop::option::of(0i64..2),
    )
        .prop_map(|(rt, rid, rel, st, sid, member, cav, exp)| {
            let sid = SIDS[sid];
            Tuple {
                resource: ObjectRef::new(RTYPES[rt], RIDS[rid]),
                relation: RELS[rel].to_owned(),
                subject: SubjectRef {
                    object: ObjectRef::new(STYPES[st], sid),
                    relation: (member && sid != "*").then(|| "member".to_owned()),
                },
                caveat: cav.map(|v| TupleCaveat {
                    name: "cav".into(),
                    context: if v == 0 {
                        Default::default()
                    } else {
                        [("v".to_owned(), serde_json::Value::from(v))]
                            .into_iter()
                            .collect()
                    },
                }),
                expiration: exp.map(|e| Timestamp(4_000_000_000 + e)),
            }
        })
}

fn arb_filter() -> impl Strategy<Value = TupleFilter> {
    (
        prop::option::of(0..RTYPES.len()),
        prop::option::of(prop_oneof![
            (0..RIDS.len()).prop_map(|i| IdFilter::Exact(RIDS[i].to_owned())),
            prop_oneof![Just(""), Just("a"), Just("a."), Just("b")]
                .prop_map(|p| IdFilter::Prefix(p.to_owned())),
        ]),
        prop::option::of(0..RELS.len()),
        prop::option::of(0..STYPES.len()),
        prop::option::of(0..SIDS.len()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(rt, rid, rel, st, sid, srel)| TupleFilter {
            resource_type: rt.map(|i| RTYPES[i].to_owned()),
            resource_id: rid,
            relation: rel.map(|i| RELS[i].to_owned()),
            subject_type: st.map(|i| STYPES[i].to_owned()),
            subject_id: sid.map(|i| SIDS[i].to_owned()),
            subject_relation: srel.map(|m| {
                if m {
                    SubjectRelationFilter::Relation("member".into())
                } else {
                    SubjectRelationFilter::Direct
                }
            }),
        })
}

fn arb_batch() -> impl Strategy<Value = WriteBatch> {
    let op = prop_oneof![
        2 => arb_tuple().prop_map(Op::Create),
        4 => arb_tuple().prop_map(Op::Touch),
        2 => arb_tuple().prop_map(Op::Delete),
        1 => (arb_filter(), prop::option::of(0usize..4)).prop_map(|(filter, limit)| Op::DeleteByFilter { filter, limit }),
    ];
    let pre = prop_oneof![
        arb_filter().prop_map(Precondition::MustMatch),
        arb_filter().prop_map(Precondition::MustNotMatch),
    ];
    (
        prop::collection::vec(op, 0..7),
        prop::collection::vec(pre, 0..2),
    )
        .prop_map(|(ops, preconditions)| WriteBatch { ops, preconditions })
}

/// One step: a batch for a tenant at `previous + gap`.
fn arb_steps() -> impl Strategy<Value = Vec<(usize, u64, WriteBatch)>> {
    prop::collection::vec((0..TENANTS.len(), 1u64..3, arb_batch()), 1..20)
}

/// Reads to compare at each revision.
#[derive(Debug, Clone)]
struct Probe {
    filter: TupleFilter,
    page: usize,
    fwd_ids: Vec<usize>,
    rev_ids: Vec<usize>,
    rev_srel: Option<bool>,
    rev_rt: Option<usize>,
    rev_rel: Option<usize>,
}

fn arb_probe() -> impl Strategy<Value = Probe> {
    (
        arb_filter(),
        1usize..5,
        prop::collection::vec(0..RIDS.len(), 0..4),
        prop::collection::vec(0..SIDS.len(), 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(0..RTYPES.len()),
        prop::option::of(0..RELS.len()),
    )
        .prop_map(
            |(filter, page, fwd_ids, rev_ids, rev_srel, rev_rt, rev_rel)| Probe {
                filter,
                page,
                fwd_ids,
                rev_ids,
                rev_srel,
                rev_rt,
                rev_rel,
            },
        )
}

fn check_reads<R: TupleReader>(
    r: &R,
    m: &Model,
    tenant: &str,
    at: u64,
    probes: &[Probe],
) -> Result<(), TestCaseError> {
    let live = m.live(tenant, at);
    for p in probes {
        // Paged scan.
        let want: Vec<&Tuple> = live.values().filter(|t| p.filter.matches(t)).collect();
        let mut got = Vec::new();
        let mut cursor = None;
        loop {
            let page = r
                .scan(&p.filter, cursor.as_ref(), p.page)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(page.tuples.len() <= p.page);
            got.extend(page.tuples);
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
            prop_assert!(got.len() <= want.len(), "scan runs past the end");
        }
        prop_assert_eq!(
            got.iter().collect::<Vec<_>>(),
            want,
            "scan {:?} at {}",
            p.filter,
            at
        );

        // Forward batched read, for each type/relation.
        for rt in RTYPES {
            for rel in RELS {
                let ids: Vec<&str> = p.fwd_ids.iter().map(|&i| RIDS[i]).collect();
                let got = r
                    .subjects(rt, &ids, rel)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let want: Vec<&Tuple> = live
                    .values()
                    .filter(|t| {
                        t.resource.object_type == rt
                            && t.relation == rel
                            && ids.contains(&t.resource.object_id.as_str())
                    })
                    .collect();
                prop_assert_eq!(
                    got.iter().collect::<Vec<_>>(),
                    want,
                    "subjects {} {:?} {}",
                    rt,
                    ids,
                    rel
                );
            }
        }

        // Reverse batched read.
        for st in STYPES {
            let ids: Vec<&str> = p.rev_ids.iter().map(|&i| SIDS[i]).collect();
            let srel = p.rev_srel.map(|m| {
                if m {
                    SubjectRelationFilter::Relation("member".into())
                } else {
                    SubjectRelationFilter::Direct
                }
            });
            let q = ReverseQuery {
                subject_type: st,
                subject_ids: &ids,
                subject_relation: srel.clone(),
                resource_type: p.rev_rt.map(|i| RTYPES[i]),
                relation: p.rev_rel.map(|i| RELS[i]),
            };
            let got = r
                .resources_for_subjects(&q)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut want: Vec<&Tuple> = live
                .values()
                .filter(|t| {
                    t.subject.object.object_type == st
                        && ids.contains(&t.subject.object.object_id.as_str())
                        && srel
                            .as_ref()
                            .is_none_or(|f| f.matches(t.subject.relation.as_deref()))
                        && q.resource_type.is_none_or(|x| x == t.resource.object_type)
                        && q.relation.is_none_or(|x| x == t.relation)
                })
                .collect();
            want.sort_by_key(|t| rev_order(t));
            prop_assert_eq!(got.iter().collect::<Vec<_>>(), want, "reverse {:?}", q);
        }
    }
    // Point reads of every tuple ever written in this tenant.
    for ((tn, _), h) in &m.hist {
        if tn != tenant {
            continue;
        }
        let Some(probe) = h.iter().find_map(|(_, t)| t.clone()) else {
            continue;
        };
        let got = r
            .tuple(&probe)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.as_ref(), live.get(&key(&probe)));
    }
    Ok(())
}

fn check_store<S: RelationStore>(
    s: &S,
    m: &Model,
    from: u64,
    probes: &[Probe],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(s.applied_revision().0, m.applied);
    for at in from..=m.applied {
        for tn in TENANTS {
            let tenant = Tenant::new(tn).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let snap = s
                .snapshot(&tenant, Revision(at))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            check_reads(&snap, m, tn, at, probes)?;
            for limit in [1, 3, 100] {
                let got: Vec<(u64, Vec<(ChangeKind, Tuple)>)> = s
                    .changes_since(&tenant, Revision(at), limit)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?
                    .into_iter()
                    .map(|b: ChangeBatch| {
                        (
                            b.revision.0,
                            b.changes.into_iter().map(|c| (c.kind, c.tuple)).collect(),
                        )
                    })
                    .collect();
                prop_assert_eq!(
                    got,
                    m.changes_since(tn, at, limit),
                    "changes_since {} {}",
                    tn,
                    at
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn stores_match_the_model(
        steps in arb_steps(),
        probes in prop::collection::vec(arb_probe(), 2),
        gc_at in 0u64..40,
    ) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let opts = RocksOptions { sync_writes: false, ..RocksOptions::default() };
        let rocks = RocksStore::open(dir.path(), opts).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mem = MemStore::new();
        let mut model = Model::default();
        let mut rev = 0;
        for (i, (tn, gap, batch)) in steps.iter().enumerate() {
            // Spread the data over table files (each with its own bloom
            // filters) and the memtable, as a long-running server has it.
            if i % 4 == 3 {
                rocks.flush().map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            rev += gap;
            let tenant = Tenant::new(TENANTS[*tn]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want = model.apply(TENANTS[*tn], rev, batch);
            prop_assert_eq!(outcome(&rocks, &tenant, rev, batch), want, "rocks, rev {}", rev);
            prop_assert_eq!(outcome(&mem, &tenant, rev, batch), want, "mem, rev {}", rev);
        }
        // Replays are no-ops.
        if let Some((tn, _, batch)) = steps.last() {
            let tenant = Tenant::new(TENANTS[*tn]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(outcome(&rocks, &tenant, rev, batch), Outcome::Already);
        }
        check_store(&rocks, &model, 0, &probes)?;
        check_store(&mem, &model, 0, &probes)?;

        // GC: reads at or above the floor unchanged, below fail.
        let floor = gc_at.min(model.applied);
        prop_assert_eq!(rocks.gc(Revision(floor)).map_err(|e| TestCaseError::fail(e.to_string()))?.floor, Revision(floor));
        mem.gc(Revision(floor)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_store(&rocks, &model, floor, &probes)?;
        check_store(&mem, &model, floor, &probes)?;
        if floor > 0 {
            let tenant = Tenant::new(TENANTS[0]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let below = rocks.snapshot(&tenant, Revision(floor - 1)).err();
            let is_compacted = matches!(below, Some(StorageError::RevisionCompacted { .. }));
            prop_assert!(is_compacted);
        }

        // Reopen: everything is still there.
        drop(rocks);
        let rocks = RocksStore::open(dir.path(), RocksOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(rocks.gc_floor(), Revision(floor));
        check_store(&rocks, &model, floor, &probes)?;
    }
}
