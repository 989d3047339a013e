//! Tenant isolation with adversarial names and ids: tenants that are
//! prefixes of each other, ids full of separators. (Raw bytes such as 0x00,
//! 0xFF and empty strings cannot pass validation; the key codec's own
//! property tests cover them in `src/keys.rs`.)

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use proptest::prelude::*;
use verdict_storage::{
    RelationStore, ReverseQuery, Revision, RocksOptions, RocksStore, Tenant, Tuple, TupleFilter,
    TupleReader, TupleReaderExt, WriteBatch,
};

fn dump<R: TupleReader>(r: &R, f: &TupleFilter) -> Vec<String> {
    let mut v = Vec::new();
    r.for_each_tuple(f, 3, |t| {
        v.push(t.to_string());
        Ok(())
    })
    .unwrap();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn a_tenant_only_ever_sees_its_own_tuples(
        names in prop::collection::btree_set("[a-c0][a-c0_-]{0,3}", 2..5),
        ids in prop::collection::vec("[a-b|/=+@._-]{1,4}", 1..6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), RocksOptions { sync_writes: false, ..RocksOptions::default() }).unwrap();
        let tenants: Vec<Tenant> = names.iter().map(|n| Tenant::new(n).unwrap()).collect();
        let mut expected = Vec::new();
        for (i, tn) in tenants.iter().enumerate() {
            let mut b = WriteBatch::new();
            let mut mine: Vec<String> = Vec::new();
            for id in &ids {
                // Each tenant writes the same ids, tagged with its own name in the subject.
                let t = Tuple::parse(&format!("doc:{id}#viewer@user:{}", tn.as_str())).unwrap();
                if !mine.contains(&t.to_string()) {
                    mine.push(t.to_string());
                    b = b.touch(t);
                }
            }
            store.apply(tn, Revision(i as u64 + 1), &b).unwrap();
            mine.sort();
            expected.push(mine);
        }
        let at = Revision(tenants.len() as u64);
        for (tn, want) in tenants.iter().zip(&expected) {
            let snap = store.snapshot(tn, at).unwrap();
            prop_assert_eq!(&dump(&snap, &TupleFilter::default()), want);
            for id in &ids {
                let f = TupleFilter::resource_type("doc").with_resource_id_prefix(&id[..1]);
                let suffix = format!("@user:{}", tn.as_str());
                let own = dump(&snap, &f).iter().all(|s| s.ends_with(&suffix));
                prop_assert!(own, "tenant {} sees another tenant's tuple", tn);
                let fwd = snap.subjects("doc", &[id.as_str()], "viewer").unwrap();
                prop_assert_eq!(fwd.len(), 1);
            }
            let all_names: Vec<&str> = names.iter().map(String::as_str).collect();
            let q = ReverseQuery {
                subject_type: "user",
                subject_ids: &all_names,
                subject_relation: None,
                resource_type: None,
                relation: None,
            };
            prop_assert_eq!(snap.resources_for_subjects(&q).unwrap().len(), want.len());
            let log = store.changes_since(tn, Revision(0), 100).unwrap();
            prop_assert_eq!(log.len(), 1);
            prop_assert!(log[0].changes.iter().all(|c| c.tuple.subject.object.object_id == tn.as_str()));
        }
    }
}
