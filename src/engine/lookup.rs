//! Lookups: which resources a subject can reach, which subjects can reach
//! a resource. Both find candidates at the reader's revision (resources by
//! a reverse walk from the subject, subjects by a forward walk from the
//! resource) and decide each with the check walker, so they agree with
//! `check` exactly.

use serde_json::{Map, Value};
use verdict_storage::{ObjectRef, SubjectRef, Timestamp, TupleReader, WILDCARD};

use super::check::{resolve, Walker};
use super::error::EngineError;
use super::outcome::Outcome;
use super::Engine;

/// A page of lookup results.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupPage<T> {
    /// Results in order.
    pub items: Vec<T>,
    /// Resume after this (pass back as the cursor); `None` when complete.
    pub cursor: Option<String>,
}

/// A resource found by lookup-resources.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupResource {
    /// The resource id.
    pub id: String,
    /// ALLOWED or CONDITIONAL (denied resources are not returned).
    pub outcome: Outcome,
}

/// A subject found by lookup-subjects.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupSubject {
    /// The subject id (`*` for the wildcard).
    pub id: String,
    /// ALLOWED or CONDITIONAL.
    pub outcome: Outcome,
    /// For the wildcard: the subjects it does not include (as SpiceDB
    /// reports exclusions under a wildcard).
    pub excluded: Vec<String>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request's fields, passed through from `Engine::lookup_resources`"
)]
pub(crate) fn lookup_resources(
    engine: &Engine,
    reader: &dyn TupleReader,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
    context: &Map<String, Value>,
    now: Timestamp,
    cursor: Option<&str>,
    limit: usize,
) -> Result<LookupPage<LookupResource>, EngineError> {
    let (ty, rel) = resolve(&engine.schema, resource_type, permission)?;
    // Candidates: reached by walking backwards from the subject (a superset
    // of the answer); each is then decided by check.
    let candidates =
        super::reachability::candidate_resources(&engine.schema, reader, subject, ty, rel)?;
    let mut walker = Walker::new(engine, reader, subject, context, now)?;
    // A limit of 0 means no limit.
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut items = Vec::new();
    let start = cursor.unwrap_or("");
    for id in candidates
        .iter()
        .filter(|id| cursor.is_none() || id.as_str() > start)
    {
        if items.len() >= limit {
            return Ok(LookupPage {
                cursor: items.last().map(|r: &LookupResource| r.id.clone()),
                items,
            });
        }
        let outcome = walker.check_ids(ty, rel, &[id.as_str()])?;
        if !outcome.is_denied() {
            items.push(LookupResource {
                id: id.clone(),
                outcome,
            });
        }
    }
    Ok(LookupPage {
        items,
        cursor: None,
    })
}

#[expect(
    clippy::too_many_arguments,
    reason = "the request's fields, passed through from `Engine::lookup_subjects`"
)]
pub(crate) fn lookup_subjects(
    engine: &Engine,
    reader: &dyn TupleReader,
    resource: &ObjectRef,
    permission: &str,
    subject_type: &str,
    subject_relation: Option<&str>,
    context: &Map<String, Value>,
    now: Timestamp,
) -> Result<Vec<LookupSubject>, EngineError> {
    let (ty, rel) = resolve(&engine.schema, &resource.object_type, permission)?;
    // Candidates: walked forward from the resource (a superset of the
    // answer); each is then decided by check.
    let subject_type_id = engine
        .schema
        .type_id(subject_type)
        .ok_or_else(|| EngineError::UnknownType(subject_type.to_string()))?;
    let subject_relation_id = match subject_relation {
        None => None,
        Some(r) => Some(resolve(&engine.schema, subject_type, r)?.1),
    };
    let (candidates, wildcard_possible) = super::reachability::candidate_subjects(
        &engine.schema,
        reader,
        ty,
        &resource.object_id,
        rel,
        subject_type_id,
        subject_relation_id,
    )?;
    let make_subject = |id: &str| match subject_relation {
        Some(r) => SubjectRef::userset(subject_type, id, r),
        None => SubjectRef::direct(subject_type, id),
    };
    let mut results = Vec::new();
    let mut denied = Vec::new();
    for id in &candidates {
        let subject = make_subject(id);
        let mut walker = Walker::new(engine, reader, &subject, context, now)?;
        let outcome = walker.check_ids(ty, rel, &[resource.object_id.as_str()])?;
        if outcome.is_denied() {
            denied.push(id.clone());
        } else {
            results.push(LookupSubject {
                id: id.clone(),
                outcome,
                excluded: Vec::new(),
            });
        }
    }
    if wildcard_possible && subject_relation.is_none() {
        let subject = SubjectRef::direct(subject_type, WILDCARD);
        let mut walker = Walker::new(engine, reader, &subject, context, now)?;
        let outcome = walker.check_ids(ty, rel, &[resource.object_id.as_str()])?;
        if !outcome.is_denied() {
            results.push(LookupSubject {
                id: WILDCARD.to_string(),
                outcome,
                excluded: denied,
            });
        }
    }
    Ok(results)
}
