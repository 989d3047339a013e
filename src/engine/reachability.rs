//! Candidate resources for lookup-resources, found by walking the graph
//! backwards from the subject through the reverse index, instead of
//! checking every object of the type.
//!
//! The walk over-approximates (it follows every operand of intersections
//! and exclusions, ignores caveats and expiration) and never
//! under-approximates: any resource on which the subject has the
//! permission is reached. Each candidate is then decided by `check`, so the
//! final answer agrees with `check` exactly.

use std::collections::{BTreeSet, HashMap, HashSet};

use verdict_storage::{SubjectRef, SubjectRelationFilter, TupleReader, WILDCARD};

use super::error::EngineError;
use crate::schema::ir::{RelationId, RelationKind, Rewrite, Schema, TypeId};

/// "The subject has `relation` on `type:id`" (`None`: it *is* `type:id`).
type Item = (TypeId, String, Option<RelationId>);

/// An arrow that can reach a target: (its type, its permission, the
/// tupleset relation's name).
type ArrowUse = (TypeId, RelationId, String);

/// Who uses what, precomputed from the schema for one walk.
struct Uses {
    /// (type, relation) → permissions on the same type that reference it.
    computed: HashMap<(TypeId, RelationId), Vec<RelationId>>,
    /// (target type, target relation) → (arrow's type, its permission, tupleset name).
    arrows: HashMap<(TypeId, RelationId), Vec<ArrowUse>>,
    /// type → permissions using `self`.
    selfs: HashMap<TypeId, Vec<RelationId>>,
}

fn collect<'a>(
    rewrite: &'a Rewrite,
    computed: &mut Vec<RelationId>,
    arrows: &mut Vec<&'a crate::schema::ir::Arrow>,
    uses_self: &mut bool,
) {
    match rewrite {
        Rewrite::Computed(r) => computed.push(*r),
        Rewrite::Arrow(a) => arrows.push(a),
        Rewrite::SelfRef => *uses_self = true,
        Rewrite::Union(c) | Rewrite::Intersection(c) => c
            .iter()
            .for_each(|r| collect(r, computed, arrows, uses_self)),
        Rewrite::Exclusion(a, b) => {
            collect(a, computed, arrows, uses_self);
            collect(b, computed, arrows, uses_self);
        }
        Rewrite::Nil => {}
    }
}

impl Uses {
    fn new(schema: &Schema) -> Uses {
        let mut uses = Uses {
            computed: HashMap::new(),
            arrows: HashMap::new(),
            selfs: HashMap::new(),
        };
        for def in schema.definitions() {
            for rel in &def.relations {
                let RelationKind::Permission { rewrite } = &rel.kind else {
                    continue;
                };
                let (mut computed, mut arrows, mut uses_self) = (Vec::new(), Vec::new(), false);
                collect(rewrite, &mut computed, &mut arrows, &mut uses_self);
                for r in computed {
                    uses.computed.entry((def.id, r)).or_default().push(rel.id);
                }
                for a in arrows {
                    let tupleset = def.relation(a.tupleset).name.to_string();
                    for target in &a.resolved {
                        uses.arrows.entry(*target).or_default().push((
                            def.id,
                            rel.id,
                            tupleset.clone(),
                        ));
                    }
                }
                if uses_self {
                    uses.selfs.entry(def.id).or_default().push(rel.id);
                }
            }
        }
        uses
    }
}

/// Ids of `target_type` on which `subject` may have `target_relation`.
pub(crate) fn candidate_resources(
    schema: &Schema,
    reader: &dyn TupleReader,
    subject: &SubjectRef,
    target_type: TypeId,
    target_relation: RelationId,
) -> Result<BTreeSet<String>, EngineError> {
    let uses = Uses::new(schema);
    let Some(subject_type) = schema.type_id(&subject.object.object_type) else {
        return Err(EngineError::UnknownType(subject.object.object_type.clone()));
    };
    let mut frontier: Vec<Item> = Vec::new();
    match &subject.relation {
        Some(r) => {
            if let Some(rel) = schema.definition(subject_type).relation_id(r) {
                frontier.push((subject_type, subject.object.object_id.clone(), Some(rel)));
            }
        }
        None => {
            frontier.push((subject_type, subject.object.object_id.clone(), None));
            if subject.object.object_id != WILDCARD {
                frontier.push((subject_type, WILDCARD.to_string(), None));
            }
        }
    }
    let mut seen: HashSet<Item> = frontier.iter().cloned().collect();
    let mut found = BTreeSet::new();
    while !frontier.is_empty() {
        let mut next: Vec<Item> = Vec::new();
        let mut push = |item: Item, next: &mut Vec<Item>| {
            if seen.insert(item.clone()) {
                next.push(item);
            }
        };
        for item in &frontier {
            if item.0 == target_type && item.2 == Some(target_relation) {
                found.insert(item.1.clone());
            }
        }
        // Group by (type, relation) so each group is one reverse read.
        let mut groups: HashMap<(TypeId, Option<RelationId>), Vec<&str>> = HashMap::new();
        for (t, id, rel) in &frontier {
            groups.entry((*t, *rel)).or_default().push(id);
        }
        for ((t, rel), ids) in groups {
            let def = schema.definition(t);
            // Stored relations naming these subjects (or usersets).
            let subject_relation = Some(match rel {
                None => SubjectRelationFilter::Direct,
                Some(r) => SubjectRelationFilter::Relation(def.relation(r).name.to_string()),
            });
            let tuples = reader.resources_for_subjects(&verdict_storage::ReverseQuery {
                subject_type: &def.name,
                subject_ids: &ids,
                subject_relation,
                resource_type: None,
                relation: None,
            })?;
            for tuple in tuples {
                let Some(rt) = schema.type_id(&tuple.resource.object_type) else {
                    continue;
                };
                let Some(rr) = schema.definition(rt).relation_id(&tuple.relation) else {
                    continue;
                };
                push((rt, tuple.resource.object_id, Some(rr)), &mut next);
            }
            match rel {
                Some(r) => {
                    // Permissions of the same object that compute from it.
                    for p in uses.computed.get(&(t, r)).into_iter().flatten() {
                        for id in &ids {
                            push((t, id.to_string(), Some(*p)), &mut next);
                        }
                    }
                    // Arrows whose targets are these objects.
                    for (u, p, tupleset) in uses.arrows.get(&(t, r)).into_iter().flatten() {
                        let tuples =
                            reader.resources_for_subjects(&verdict_storage::ReverseQuery {
                                subject_type: &def.name,
                                subject_ids: &ids,
                                subject_relation: None,
                                resource_type: Some(&schema.definition(*u).name),
                                relation: Some(tupleset),
                            })?;
                        for tuple in tuples {
                            push((*u, tuple.resource.object_id, Some(*p)), &mut next);
                        }
                    }
                }
                None => {
                    // `self`: the object itself has these permissions.
                    for p in uses.selfs.get(&t).into_iter().flatten() {
                        for id in ids.iter().filter(|id| **id != WILDCARD) {
                            push((t, id.to_string(), Some(*p)), &mut next);
                        }
                    }
                }
            }
        }
        frontier = next;
    }
    Ok(found)
}

/// Subjects of `subject_type` (with `subject_relation`, if given) that may
/// have `relation` on `type_id:resource_id`, found by walking the graph
/// forward from the resource; and whether a wildcard subject of the type
/// was reached. Over-approximates (every operand is followed); each
/// candidate is then decided by `check`.
pub(crate) fn candidate_subjects(
    schema: &Schema,
    reader: &dyn TupleReader,
    type_id: TypeId,
    resource_id: &str,
    relation: RelationId,
    subject_type: TypeId,
    subject_relation: Option<RelationId>,
) -> Result<(BTreeSet<String>, bool), EngineError> {
    let subject_type_name = &schema.definition(subject_type).name;
    let subject_relation_name =
        subject_relation.map(|r| schema.definition(subject_type).relation(r).name.clone());
    let mut found = BTreeSet::new();
    let mut wildcard = false;
    let mut frontier: Vec<(TypeId, String, RelationId)> =
        vec![(type_id, resource_id.to_string(), relation)];
    let mut seen: HashSet<(TypeId, String, RelationId)> = frontier.iter().cloned().collect();
    while !frontier.is_empty() {
        let mut next = Vec::new();
        let mut push = |item: (TypeId, String, RelationId),
                        next: &mut Vec<(TypeId, String, RelationId)>| {
            if seen.insert(item.clone()) {
                next.push(item);
            }
        };
        // A userset subject has the relation it names on itself.
        for (t, id, r) in &frontier {
            if *t == subject_type && Some(*r) == subject_relation {
                found.insert(id.clone());
            }
        }
        let mut groups: HashMap<(TypeId, RelationId), Vec<&str>> = HashMap::new();
        for (t, id, r) in &frontier {
            groups.entry((*t, *r)).or_default().push(id);
        }
        for ((t, r), ids) in groups {
            let def = schema.definition(t);
            let rel = def.relation(r);
            let mut arrows = Vec::new();
            match &rel.kind {
                RelationKind::Relation { .. } => {
                    for tuple in reader.subjects(&def.name, &ids, &rel.name)? {
                        let s = &tuple.subject;
                        if *s.object.object_type == **subject_type_name
                            && s.relation.as_deref() == subject_relation_name.as_deref()
                        {
                            if s.object.object_id == WILDCARD {
                                wildcard = true;
                            } else {
                                found.insert(s.object.object_id.clone());
                            }
                        }
                        if let Some(sr) = &s.relation {
                            let Some(st) = schema.type_id(&s.object.object_type) else {
                                continue;
                            };
                            let Some(srel) = schema.definition(st).relation_id(sr) else {
                                continue;
                            };
                            push((st, s.object.object_id.clone(), srel), &mut next);
                        }
                    }
                }
                RelationKind::Permission { rewrite } => {
                    let (mut computed, mut uses_self) = (Vec::new(), false);
                    collect(rewrite, &mut computed, &mut arrows, &mut uses_self);
                    for c in computed {
                        for id in &ids {
                            push((t, id.to_string(), c), &mut next);
                        }
                    }
                    if uses_self && t == subject_type && subject_relation.is_none() {
                        found.extend(ids.iter().map(|id| id.to_string()));
                    }
                }
            }
            for arrow in arrows {
                let tupleset = &def.relation(arrow.tupleset).name;
                for tuple in reader.subjects(&def.name, &ids, tupleset)? {
                    let Some(st) = schema.type_id(&tuple.subject.object.object_type) else {
                        continue;
                    };
                    if let Some((_, target)) = arrow.resolved.iter().find(|(rt, _)| *rt == st) {
                        push(
                            (st, tuple.subject.object.object_id.clone(), *target),
                            &mut next,
                        );
                    }
                }
            }
        }
        frontier = next;
    }
    Ok((found, wildcard))
}
