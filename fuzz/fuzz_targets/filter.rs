//! Relationship filters from clients (read, delete, export, preconditions):
//! each field comes from the input. A filter must validate or be refused
//! without panicking, and a valid filter's scan over a small store must
//! return exactly the tuples its `matches` accepts — in every page size.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use verdict_storage::{
    IdFilter, MemStore, RelationStore, Revision, SubjectRelationFilter, Tenant, Tuple,
    TupleFilter, TupleReader, WriteBatch,
};

const TUPLES: &[&str] = &[
    "doc:1#viewer@user:alice",
    "doc:1#viewer@user:*",
    "doc:10#editor@group:eng#member",
    "doc:2#viewer@group:eng#...",
    "doc:a/b#owner@user:bob",
    "folder:root#viewer@user:alice",
    "group:eng#member@user:alice",
    "group:eng#member@group:ops#member",
];

fn store() -> &'static (MemStore, Vec<Tuple>) {
    static STORE: OnceLock<(MemStore, Vec<Tuple>)> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = MemStore::new();
        let tuples: Vec<Tuple> = TUPLES.iter().filter_map(|t| Tuple::parse(t).ok()).collect();
        let batch = tuples.iter().cloned().fold(WriteBatch::new(), WriteBatch::touch);
        store
            .apply(&Tenant::default_tenant(), Revision(1), &batch)
            .expect("seed tuples apply");
        (store, tuples)
    })
}

fn field(parts: &[&str], i: usize) -> Option<String> {
    parts.get(i).filter(|s| !s.is_empty()).map(|s| (*s).to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (flags, rest) = match text.split_once('|') {
        Some((f, r)) => (f.bytes().next().unwrap_or(0), r),
        None => (0, text),
    };
    let parts: Vec<&str> = rest.split('|').collect();
    let filter = TupleFilter {
        resource_type: field(&parts, 0),
        resource_id: field(&parts, 1).map(|id| {
            if flags & 1 == 0 {
                IdFilter::Exact(id)
            } else {
                IdFilter::Prefix(id)
            }
        }),
        relation: field(&parts, 2),
        subject_type: field(&parts, 3),
        subject_id: field(&parts, 4),
        subject_relation: match (flags & 2, field(&parts, 5)) {
            (0, None) => None,
            (0, Some(r)) => Some(SubjectRelationFilter::Relation(r)),
            _ => Some(SubjectRelationFilter::Direct),
        },
    };
    if filter.validate().is_err() {
        return;
    }
    let (store, tuples) = store();
    let snapshot = store
        .snapshot(&Tenant::default_tenant(), Revision(1))
        .expect("snapshot");
    let mut expected: Vec<String> = tuples
        .iter()
        .filter(|t| filter.matches(t))
        .map(ToString::to_string)
        .collect();
    expected.sort();
    let page = usize::from(flags >> 4).max(1);
    let mut got = Vec::new();
    let mut cursor = None;
    loop {
        let scanned = snapshot
            .scan(&filter, cursor.as_ref(), page)
            .expect("scan of a valid filter");
        got.extend(scanned.tuples.iter().map(ToString::to_string));
        match scanned.cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(got.len() <= tuples.len(), "pagination does not terminate");
    }
    got.sort();
    assert_eq!(got, expected, "scan disagrees with matches for {filter:?}");
});
