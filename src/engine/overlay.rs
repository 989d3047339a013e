//! Contextual tuples: a [`TupleReader`] that adds a request's extra tuples
//! (OpenFGA's `contextual_tuples`) to a snapshot, for that request only.
//!
//! The overlay reports the snapshot's tenant and revision, so an engine
//! reading through it must not share answers: the entry points in
//! `engine::openfga` evaluate through [`super::Engine::isolated`] (no
//! decision cache, no group index) whenever there are contextual tuples.

use verdict_storage::{
    Cursor, ReverseQuery, Revision, ScanPage, StoredSchema, Tenant, Tuple, TupleFilter,
    TupleReader,
};

/// A snapshot plus extra tuples.
pub struct OverlayReader<'a> {
    base: &'a dyn TupleReader,
    extra: Vec<Tuple>,
}

fn same_key(a: &Tuple, b: &Tuple) -> bool {
    a.resource == b.resource && a.relation == b.relation && a.subject == b.subject
}

impl<'a> OverlayReader<'a> {
    /// `base` with `extra` added (tuples with the same key as an earlier
    /// extra one are dropped).
    pub fn new(base: &'a dyn TupleReader, extra: Vec<Tuple>) -> OverlayReader<'a> {
        let mut unique: Vec<Tuple> = Vec::with_capacity(extra.len());
        for t in extra {
            if !unique.iter().any(|u| same_key(u, &t)) {
                unique.push(t);
            }
        }
        OverlayReader {
            base,
            extra: unique,
        }
    }

    /// The extra tuples.
    pub fn extra(&self) -> &[Tuple] {
        &self.extra
    }
}

impl TupleReader for OverlayReader<'_> {
    fn tenant(&self) -> &Tenant {
        self.base.tenant()
    }

    fn revision(&self) -> Revision {
        self.base.revision()
    }

    fn tuple(&self, key: &Tuple) -> verdict_storage::Result<Option<Tuple>> {
        if let Some(t) = self.extra.iter().find(|t| same_key(t, key)) {
            return Ok(Some(t.clone()));
        }
        self.base.tuple(key)
    }

    fn subjects(
        &self,
        resource_type: &str,
        resource_ids: &[&str],
        relation: &str,
    ) -> verdict_storage::Result<Vec<Tuple>> {
        let mut out = self.base.subjects(resource_type, resource_ids, relation)?;
        let before = out.len();
        for t in &self.extra {
            if t.resource.object_type == resource_type
                && t.relation == relation
                && resource_ids.contains(&t.resource.object_id.as_str())
                && !out.iter().take(before).any(|o| same_key(o, t))
            {
                out.push(t.clone());
            }
        }
        if out.len() > before {
            out.sort_by(|a, b| {
                (&a.resource.object_id, a.subject.to_string())
                    .cmp(&(&b.resource.object_id, b.subject.to_string()))
            });
        }
        Ok(out)
    }

    fn resources_for_subjects(&self, query: &ReverseQuery<'_>) -> verdict_storage::Result<Vec<Tuple>> {
        let mut out = self.base.resources_for_subjects(query)?;
        let before = out.len();
        for t in &self.extra {
            let s = &t.subject;
            let fits = s.object.object_type == query.subject_type
                && query.subject_ids.contains(&s.object.object_id.as_str())
                && query
                    .subject_relation
                    .as_ref()
                    .is_none_or(|f| f.matches(s.relation.as_deref()))
                && query
                    .resource_type
                    .is_none_or(|rt| rt == t.resource.object_type)
                && query.relation.is_none_or(|r| r == t.relation);
            if fits && !out.iter().take(before).any(|o| same_key(o, t)) {
                out.push(t.clone());
            }
        }
        Ok(out)
    }

    fn scan(
        &self,
        filter: &TupleFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> verdict_storage::Result<ScanPage> {
        let mut page = self.base.scan(filter, cursor, limit)?;
        // The extra tuples ride on the first page (callers read every page).
        if cursor.is_none() {
            let before = page.tuples.len();
            for t in &self.extra {
                if filter.matches(t) && !page.tuples.iter().take(before).any(|o| same_key(o, t)) {
                    page.tuples.push(t.clone());
                }
            }
        }
        Ok(page)
    }

    fn schema(&self) -> verdict_storage::Result<Option<StoredSchema>> {
        self.base.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_storage::{MemStore, Op, RelationStore, SubjectRelationFilter, WriteBatch};

    #[test]
    fn extra_tuples_are_seen_by_every_read() {
        let store = MemStore::new();
        let tenant = Tenant::default_tenant();
        let stored = Tuple::parse("doc:one#viewer@user:anne").unwrap();
        store
            .apply(
                &tenant,
                Revision(1),
                &WriteBatch {
                    ops: vec![Op::Touch(stored.clone())],
                    preconditions: Vec::new(),
                },
            )
            .unwrap();
        let snap = store.snapshot(&tenant, Revision(1)).unwrap();
        let extra = Tuple::parse("doc:one#viewer@user:bob").unwrap();
        let o = OverlayReader::new(&snap, vec![extra.clone(), extra.clone()]);
        assert_eq!(o.extra().len(), 1);
        assert_eq!(o.tuple(&extra).unwrap(), Some(extra.clone()));
        assert_eq!(o.subjects("doc", &["one"], "viewer").unwrap().len(), 2);
        assert_eq!(o.subjects("doc", &["two"], "viewer").unwrap().len(), 0);
        let rev = o
            .resources_for_subjects(&ReverseQuery {
                subject_type: "user",
                subject_ids: &["bob"],
                subject_relation: Some(SubjectRelationFilter::Direct),
                resource_type: None,
                relation: None,
            })
            .unwrap();
        assert_eq!(rev, vec![extra.clone()]);
        let all = o.scan(&TupleFilter::default(), None, 10).unwrap();
        assert_eq!(all.tuples.len(), 2);
        // The snapshot itself is unchanged.
        assert_eq!(snap.subjects("doc", &["one"], "viewer").unwrap(), vec![stored]);
    }
}
