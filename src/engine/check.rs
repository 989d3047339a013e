// #[PerformanceCriticalPath]
//! The check walker: evaluates rewrite trees over batches of object ids,
//! reading each fan-out level in one storage call.
//!
//! Semantics follow SpiceDB: union short-circuits on the first ALLOWED,
//! intersection on the first DENIED, exclusion evaluates both sides; arrows
//! follow the tupleset's subject objects; wildcards match direct subjects of
//! their type; a userset subject (`group:eng#member`) has every relation it
//! names on itself. Cyclic data terminates: a sub-problem already on the
//! walk's path contributes DENIED to that path (the least fixpoint), and
//! results that depended on such an assumption are not memoised.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use verdict_storage::{
    IdFilter, ObjectRef, SubjectRef, Timestamp, Tuple, TupleFilter, TupleReader, WILDCARD,
};

use std::sync::Arc;

use super::cache::{storage_key, subject_key, userset_key, DecisionKey, Footprint};
use super::error::EngineError;
use super::group_index;
use super::outcome::Outcome;
use super::trace::{TraceBuilder, TraceNode};
use super::Engine;
use crate::schema::ir::{
    AllowedKind, ArrowFunc, RelationId, RelationKind, Rewrite, Schema, TypeId,
};

/// Up to this many resource ids, a stored relation is read by point lookups
/// and userset scans ([`Walker::targeted_subjects`]); more ids are read in
/// one multi-get of every subject.
const TARGETED_READ_MAX_IDS: usize = 64;

/// Page size of the userset scans.
const SCAN_PAGE: usize = 1024;

type Key = (TypeId, RelationId, String);

/// Sub-problems this close to the request's root go through the shared
/// decision cache; deeper ones (cheap storage reads, rarely asked twice)
/// only through the request's memo, so the cache holds answers worth
/// keeping and a cold cache costs few lookups.
const SHARED_CACHE_DEPTH: u32 = 3;

/// The subject a walk looks for.
struct QuerySubject {
    type_id: TypeId,
    id: String,
    relation: Option<String>,
}

/// The state of one request's walk.
pub(crate) struct Walker<'e> {
    engine: &'e Engine,
    schema: &'e Schema,
    reader: &'e dyn TupleReader,
    subject: QuerySubject,
    context: &'e Map<String, Value>,
    now: Timestamp,
    /// Decided sub-problems of this request, with whether each depended on
    /// time or context (volatile), and what each read.
    memo: HashMap<Key, (Outcome, bool, Footprint)>,
    in_progress: HashSet<Key>,
    /// Set when a result relied on an in-progress sub-problem.
    cycle_hit: bool,
    /// Set when a result depended on request time or context (a caveat or
    /// an expiring tuple): such results are not shared across requests.
    volatile: bool,
    depth: u32,
    reads: u64,
    cache_hits: u64,
    trace: Option<TraceBuilder>,
    /// Storage keys read by the sub-problem being evaluated (and what its
    /// decided sub-problems read); tracked only with a shared cache.
    footprint: Vec<u64>,
    /// Set when part of that footprint is unknown (a cache entry without
    /// one): the answer then serves only this revision.
    footprint_unknown: bool,
}

impl<'e> Walker<'e> {
    pub(crate) fn new(
        engine: &'e Engine,
        reader: &'e dyn TupleReader,
        subject: &SubjectRef,
        context: &'e Map<String, Value>,
        now: Timestamp,
    ) -> Result<Self, EngineError> {
        let schema: &Schema = &engine.schema;
        let type_id = schema
            .type_id(&subject.object.object_type)
            .ok_or_else(|| EngineError::UnknownType(subject.object.object_type.clone()))?;
        if let Some(rel) = &subject.relation {
            if schema.definition(type_id).relation_id(rel).is_none() {
                return Err(EngineError::UnknownRelation {
                    object_type: subject.object.object_type.clone(),
                    relation: rel.clone(),
                });
            }
        }
        Ok(Walker {
            engine,
            schema,
            reader,
            subject: QuerySubject {
                type_id,
                id: subject.object.object_id.clone(),
                relation: subject.relation.clone(),
            },
            context,
            now,
            memo: HashMap::new(),
            in_progress: HashSet::new(),
            cycle_hit: false,
            volatile: false,
            depth: 0,
            reads: 0,
            cache_hits: 0,
            trace: None,
            footprint: Vec::new(),
            footprint_unknown: false,
        })
    }

    pub(crate) fn set_trace(&mut self, on: bool) {
        self.trace = on.then(TraceBuilder::default);
    }

    pub(crate) fn take_trace(&mut self) -> Option<TraceNode> {
        self.trace.as_mut().and_then(TraceBuilder::finish)
    }

    pub(crate) fn reads(&self) -> u64 {
        self.reads
    }

    pub(crate) fn cache_hits(&self) -> u64 {
        self.cache_hits
    }

    /// What the last [`Walker::check_object`] read, when its answer
    /// depends on nothing else (see [`crate::engine::CheckResponse::footprint`]).
    /// Footprints are tracked only with a shared cache.
    pub(crate) fn answer_footprint(&self) -> Footprint {
        if self.volatile || self.cycle_hit || self.footprint_unknown || self.engine.cache.is_none()
        {
            return None;
        }
        let mut keys = self.footprint.clone();
        keys.sort_unstable();
        keys.dedup();
        Some(Arc::from(keys))
    }

    /// Resolves `type#relation` names to ids.
    pub(crate) fn resolve(
        &self,
        object_type: &str,
        relation: &str,
    ) -> Result<(TypeId, RelationId), EngineError> {
        resolve(self.schema, object_type, relation)
    }

    /// Does the subject have `permission` on `resource`?
    pub(crate) fn check_object(
        &mut self,
        resource: &ObjectRef,
        permission: &str,
    ) -> Result<Outcome, EngineError> {
        let (ty, rel) = self.resolve(&resource.object_type, permission)?;
        self.depth = 0;
        self.cycle_hit = false;
        self.footprint.clear();
        self.footprint_unknown = false;
        self.check_ids(ty, rel, &[resource.object_id.as_str()])
    }

    fn enter(&mut self, label: &dyn Fn(&Self) -> String) {
        if self.trace.is_some() {
            let label = label(self);
            if let Some(t) = self.trace.as_mut() {
                t.enter(label);
            }
        }
    }

    fn exit(&mut self, outcome: &Outcome) {
        if let Some(t) = self.trace.as_mut() {
            t.exit(outcome);
        }
    }

    fn note_tuple(&mut self, tuple: &Tuple) {
        if let Some(t) = self.trace.as_mut() {
            t.tuple(tuple.to_string());
        }
    }

    fn label(&self, ty: TypeId, rel: RelationId, ids: &[&str]) -> String {
        let def = self.schema.definition(ty);
        let ids = if let [id] = ids {
            (*id).to_string()
        } else {
            format!("{{{}}}", ids.join(","))
        };
        format!("{}:{}#{}", def.name, ids, def.relation(rel).name)
    }

    /// Whether the subject has `rel` on ANY of `ids` (all of type `ty`).
    pub(crate) fn check_ids(
        &mut self,
        ty: TypeId,
        rel: RelationId,
        ids: &[&str],
    ) -> Result<Outcome, EngineError> {
        let mut result = Outcome::Denied;
        let mut pending: Vec<&str> = Vec::with_capacity(ids.len());
        let rel_name = &self.schema.definition(ty).relation(rel).name;
        for &id in ids {
            // A userset subject has the relation it names on itself.
            if ty == self.subject.type_id
                && id == self.subject.id
                && self.subject.relation.as_deref() == Some(&**rel_name)
            {
                return Ok(Outcome::Allowed);
            }
            let key = (ty, rel, id.to_string());
            let known = match self.memo.get(&key) {
                Some((o, volatile, fp)) => {
                    // INVARIANT (volatile-propagation): an answer built on a
                    // volatile one is volatile too, so it never reaches the
                    // shared cache.
                    self.volatile |= *volatile;
                    let (o, fp) = (o.clone(), fp.clone());
                    self.add_footprint(fp.as_deref());
                    Some(o)
                }
                None => {
                    let hit = self.cached(ty, rel, id);
                    self.cache_hits += u64::from(hit.is_some());
                    hit.map(|(o, fp)| {
                        self.add_footprint(fp.as_deref());
                        o
                    })
                }
            };
            if let Some(o) = known {
                result = result.or(o);
                if result.is_allowed() {
                    return Ok(result);
                }
            } else if self.in_progress.contains(&key) {
                self.cycle_hit = true;
            } else if !pending.contains(&id) {
                pending.push(id);
            }
        }
        if pending.is_empty() {
            return Ok(result);
        }
        if self.depth >= self.engine.config.max_depth {
            return Err(EngineError::DepthExceeded {
                max_depth: self.engine.config.max_depth,
            });
        }
        for id in &pending {
            self.in_progress.insert((ty, rel, id.to_string()));
        }
        let outer_cycle = std::mem::replace(&mut self.cycle_hit, false);
        let outer_volatile = std::mem::replace(&mut self.volatile, false);
        let outer_footprint = std::mem::take(&mut self.footprint);
        let outer_unknown = std::mem::replace(&mut self.footprint_unknown, false);
        self.depth += 1;
        self.enter(&|w: &Self| w.label(ty, rel, &pending));
        let evaluated = self.eval(ty, rel, &pending);
        if let Ok(o) = &evaluated {
            self.exit(o);
        } else {
            self.exit(&Outcome::Denied);
        }
        self.depth -= 1;
        for id in &pending {
            self.in_progress.remove(&(ty, rel, id.to_string()));
        }
        // What this evaluation read, then fold it into the enclosing one.
        let footprint: Footprint = if self.footprint_unknown || self.engine.cache.is_none() {
            None
        } else {
            let mut own = std::mem::take(&mut self.footprint);
            own.sort_unstable();
            own.dedup();
            Some(Arc::from(own))
        };
        self.footprint = outer_footprint;
        self.footprint_unknown |= outer_unknown;
        self.add_footprint(footprint.as_deref());
        let outcome = evaluated?;
        if !self.cycle_hit {
            let volatile = self.volatile;
            if let [id] = pending.as_slice() {
                self.memo.insert(
                    (ty, rel, id.to_string()),
                    (outcome.clone(), volatile, footprint.clone()),
                );
                self.remember(ty, rel, id, &outcome, &footprint);
            } else if outcome.is_denied() {
                for id in &pending {
                    self.memo.insert(
                        (ty, rel, id.to_string()),
                        (Outcome::Denied, volatile, footprint.clone()),
                    );
                    self.remember(ty, rel, id, &Outcome::Denied, &footprint);
                }
            }
        }
        self.cycle_hit |= outer_cycle;
        self.volatile |= outer_volatile;
        Ok(result.or(outcome))
    }

    fn decision_key(&self, ty: TypeId, rel: RelationId, id: &str) -> DecisionKey {
        DecisionKey {
            tenant: self.reader.tenant().as_str().to_string(),
            revision: self.reader.revision().0,
            schema: self.engine.generation,
            object_type: ty,
            relation: rel,
            object_id: id.to_string(),
            subject_type: self.subject.type_id,
            subject_id: self.subject.id.clone(),
            subject_relation: self.subject.relation.clone(),
        }
    }

    /// The shared decision cache's answer valid at this revision, if it
    /// has one, with what it read.
    fn cached(&self, ty: TypeId, rel: RelationId, id: &str) -> Option<(Outcome, Footprint)> {
        if self.depth >= SHARED_CACHE_DEPTH {
            return None;
        }
        let cache = self.engine.cache.as_ref()?;
        cache.get_with_footprint(&self.decision_key(ty, rel, id))
    }

    /// Adds what a decided sub-problem read to the current footprint.
    fn add_footprint(&mut self, footprint: Option<&[u64]>) {
        if self.engine.cache.is_none() {
            return;
        }
        match footprint {
            Some(keys) => self.footprint.extend_from_slice(keys),
            None => self.footprint_unknown = true,
        }
    }

    /// Notes the storage keys a `subjects(type, ids, relation)` read covers.
    fn note_read(&mut self, object_type: &str, ids: &[&str], relation: &str) {
        if self.engine.cache.is_none() {
            return;
        }
        let tenant = self.reader.tenant();
        for id in ids {
            self.footprint
                .push(storage_key(tenant.as_str(), object_type, id, relation));
        }
    }

    /// Shares an answer through the decision cache when it depended only on
    /// the graph at this revision.
    fn remember(
        &self,
        ty: TypeId,
        rel: RelationId,
        id: &str,
        outcome: &Outcome,
        footprint: &Footprint,
    ) {
        if self.volatile || self.depth >= SHARED_CACHE_DEPTH {
            return;
        }
        if let Some(cache) = &self.engine.cache {
            cache.insert_with_footprint(
                self.decision_key(ty, rel, id),
                outcome.clone(),
                footprint.clone(),
            );
        }
    }

    fn eval(&mut self, ty: TypeId, rel: RelationId, ids: &[&str]) -> Result<Outcome, EngineError> {
        let relation = self.schema.definition(ty).relation(rel);
        match &relation.kind {
            RelationKind::Relation { .. } => {
                if let Some(o) = self.group_index(ty, rel, ids) {
                    return Ok(o);
                }
                let type_name = &self.schema.definition(ty).name;
                self.reads += 1;
                let mut tuples = if ids.len() <= TARGETED_READ_MAX_IDS {
                    self.targeted_subjects(ty, rel, ids)?
                } else {
                    self.note_read(type_name, ids, &relation.name);
                    self.reader.subjects(type_name, ids, &relation.name)?
                };
                if self.schema.is_openfga() {
                    tuples.retain(|t| model_allows(self.schema, relation.allowed(), t));
                }
                self.eval_tuples(&tuples)
            }
            RelationKind::Permission { rewrite } => self.eval_rewrite(ty, rewrite, ids),
        }
    }

    /// The group index's answer for a pure-nesting relation, when it may
    /// give one at this revision (see `group_index`); it read the whole
    /// relation, so that is its footprint.
    fn group_index(&mut self, ty: TypeId, rel: RelationId, ids: &[&str]) -> Option<Outcome> {
        let index = self.engine.group_index.as_ref()?;
        let subject = group_index::Subject {
            object_type: &self.schema.definition(self.subject.type_id).name,
            id: &self.subject.id,
            relation: self.subject.relation.as_deref(),
        };
        let explain = self.trace.is_some();
        // Groups the walk could still descend through from here.
        let levels = (self.engine.config.max_depth + 1).saturating_sub(self.depth);
        let answer = index.answer(
            self.schema,
            self.reader,
            (ty, rel),
            ids,
            &subject,
            levels,
            explain,
        )?;
        if self.engine.cache.is_some() {
            self.footprint.push(answer.footprint);
        }
        if let (Some(t), Some(line)) = (self.trace.as_mut(), answer.explain) {
            t.enter(line);
            t.exit(&answer.outcome);
        }
        Some(answer.outcome)
    }

    /// The tuples of `ty#rel` on `ids` that can decide this check: the
    /// subject itself and its wildcard by point lookups, and the usersets
    /// the schema allows by a scan of only those subject types — so a user
    /// checked against a group of 10,000 members reads one key, not 10,000.
    /// (Stored tuples of subject types the schema does not allow are never
    /// followed; writes and schema changes keep storage within the schema.)
    ///
    /// The footprint gets exactly what was read: the looked-up tuples and
    /// the scanned userset types, so a write elsewhere in the relation (a
    /// user added to a group) leaves other subjects' answers cached.
    fn targeted_subjects(
        &mut self,
        ty: TypeId,
        rel: RelationId,
        ids: &[&str],
    ) -> Result<Vec<Tuple>, EngineError> {
        let track = self.engine.cache.is_some();
        let tenant = self.reader.tenant().as_str();
        let def = self.schema.definition(ty);
        let relation = def.relation(rel);
        let subject_type = &self.schema.definition(self.subject.type_id).name;
        let mut userset_types: Vec<&str> = Vec::new();
        for allowed in relation.allowed() {
            if let AllowedKind::Userset(_) = allowed.kind {
                let name: &str = &self.schema.definition(allowed.subject_type).name;
                if !userset_types.contains(&name) {
                    userset_types.push(name);
                }
            }
        }
        let mut out = Vec::new();
        for id in ids {
            let resource = ObjectRef::new(def.name.to_string(), *id);
            let mut wanted = vec![SubjectRef {
                object: ObjectRef::new(subject_type.to_string(), self.subject.id.clone()),
                relation: self.subject.relation.clone(),
            }];
            if self.subject.relation.is_none() && self.subject.id != WILDCARD {
                wanted.push(SubjectRef::direct(subject_type.to_string(), WILDCARD));
            }
            for subject in wanted {
                if track {
                    self.footprint.push(subject_key(
                        tenant,
                        &def.name,
                        id,
                        &relation.name,
                        &subject,
                    ));
                }
                let key = Tuple::new(resource.clone(), relation.name.to_string(), subject);
                if let Some(found) = self.reader.tuple(&key)? {
                    out.push(found);
                }
            }
            for userset_type in &userset_types {
                if track {
                    self.footprint.push(userset_key(
                        tenant,
                        &def.name,
                        id,
                        &relation.name,
                        userset_type,
                    ));
                }
                let filter = TupleFilter {
                    resource_type: Some(def.name.to_string()),
                    resource_id: Some(IdFilter::Exact((*id).to_string())),
                    relation: Some(relation.name.to_string()),
                    subject_type: Some((*userset_type).to_string()),
                    ..TupleFilter::default()
                };
                let mut cursor = None;
                loop {
                    let page = self.reader.scan(&filter, cursor.as_ref(), SCAN_PAGE)?;
                    out.extend(
                        page.tuples
                            .into_iter()
                            .filter(|t| t.subject.relation.is_some()),
                    );
                    match page.cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
            }
        }
        Ok(out)
    }

    /// The caveat outcome of one tuple (ALLOWED when it has none); DENIED
    /// for an expired tuple.
    fn tuple_condition(&mut self, tuple: &Tuple) -> Result<Outcome, EngineError> {
        if tuple.expiration.is_some() || tuple.caveat.is_some() {
            self.volatile = true;
        }
        if tuple.is_expired_at(self.now) {
            return Ok(Outcome::Denied);
        }
        let Some(caveat) = &tuple.caveat else {
            return Ok(Outcome::Allowed);
        };
        if self.schema.is_openfga() {
            // OpenFGA needs every declared parameter, whether or not the
            // expression would short-circuit without it.
            if let Some(id) = self.schema.caveat_id(&caveat.name) {
                let missing: std::collections::BTreeSet<String> = self
                    .schema
                    .caveat(id)
                    .params
                    .iter()
                    .filter(|(p, _)| {
                        !caveat.context.contains_key(&**p) && !self.context.contains_key(&**p)
                    })
                    .map(|(p, _)| p.to_string())
                    .collect();
                if !missing.is_empty() {
                    if self.engine.strict_conditions {
                        return Err(EngineError::Caveat(
                            super::caveat_eval::CaveatError::Evaluation {
                                caveat: caveat.name.clone(),
                                message: format!(
                                    "missing context parameters: {}",
                                    missing.into_iter().collect::<Vec<_>>().join(", ")
                                ),
                            },
                        ));
                    }
                    return Ok(Outcome::Conditional { missing });
                }
            }
        }
        match self.schema.caveat_id(&caveat.name) {
            // A caveat the schema no longer has can never be satisfied.
            None => Ok(Outcome::Denied),
            Some(id) => Ok(self
                .engine
                .compiled_caveat(id)?
                .evaluate(Some(&caveat.context), self.context)?),
        }
    }

    /// Direct subjects, wildcards and usersets of a stored relation.
    fn eval_tuples(&mut self, tuples: &[Tuple]) -> Result<Outcome, EngineError> {
        let mut result = Outcome::Denied;
        // Usersets to follow, grouped by (type, relation): unconditional
        // ones in one batch per group, conditional ones one at a time.
        let mut groups: Vec<(TypeId, RelationId, Vec<&str>)> = Vec::new();
        let mut conditional: Vec<(TypeId, RelationId, &str, Outcome)> = Vec::new();
        let subject_type = &self.schema.definition(self.subject.type_id).name;
        for tuple in tuples {
            let condition = self.tuple_condition(tuple)?;
            if condition.is_denied() {
                continue;
            }
            let s = &tuple.subject;
            let same_type = s.object.object_type == **subject_type;
            let direct = same_type
                && s.relation == self.subject.relation
                && (s.object.object_id == self.subject.id
                    || (s.object.object_id == WILDCARD && self.subject.relation.is_none()));
            if direct {
                self.note_tuple(tuple);
                result = result.or(condition);
                if result.is_allowed() {
                    return Ok(result);
                }
                continue;
            }
            let Some(sub_rel) = &s.relation else { continue };
            let Ok((sty, srel)) = resolve(self.schema, &s.object.object_type, sub_rel) else {
                continue; // schema no longer has it: contributes nothing
            };
            if condition.is_allowed() {
                match groups.iter_mut().find(|(t, r, _)| *t == sty && *r == srel) {
                    Some(g) => g.2.push(&s.object.object_id),
                    None => groups.push((sty, srel, vec![&s.object.object_id])),
                }
            } else {
                conditional.push((sty, srel, &s.object.object_id, condition));
            }
        }
        for (sty, srel, ids) in groups {
            let o = self.check_ids(sty, srel, &ids)?;
            result = result.or(o);
            if result.is_allowed() {
                return Ok(result);
            }
        }
        for (sty, srel, id, condition) in conditional {
            let o = self.check_ids(sty, srel, &[id])?;
            result = result.or(condition.and(o));
            if result.is_allowed() {
                return Ok(result);
            }
        }
        Ok(result)
    }

    fn eval_rewrite(
        &mut self,
        ty: TypeId,
        rewrite: &Rewrite,
        ids: &[&str],
    ) -> Result<Outcome, EngineError> {
        match rewrite {
            Rewrite::Nil => Ok(Outcome::Denied),
            Rewrite::SelfRef => {
                let hit = ty == self.subject.type_id
                    && self.subject.relation.is_none()
                    && ids.contains(&self.subject.id.as_str());
                Ok(if hit {
                    Outcome::Allowed
                } else {
                    Outcome::Denied
                })
            }
            Rewrite::Computed(rel) => self.check_ids(ty, *rel, ids),
            Rewrite::Union(children) => {
                let mut result = Outcome::Denied;
                for child in children {
                    result = result.or(self.eval_rewrite(ty, child, ids)?);
                    if result.is_allowed() {
                        break;
                    }
                }
                Ok(result)
            }
            // Intersection and exclusion must hold for one object, so a batch
            // is evaluated object by object.
            Rewrite::Intersection(_) | Rewrite::Exclusion(..) if ids.len() > 1 => {
                self.per_id(ty, rewrite, ids)
            }
            Rewrite::Intersection(children) => {
                self.enter(&|_: &Self| "intersection".to_string());
                let mut result = Outcome::Allowed;
                for child in children {
                    match self.eval_rewrite(ty, child, ids) {
                        Ok(o) => result = result.and(o),
                        Err(e) => {
                            self.exit(&Outcome::Denied);
                            return Err(e);
                        }
                    }
                    if result.is_denied() {
                        break;
                    }
                }
                self.exit(&result);
                Ok(result)
            }
            Rewrite::Exclusion(base, subtract) => {
                self.enter(&|_: &Self| "exclusion".to_string());
                let evaluated = self.eval_rewrite(ty, base, ids).and_then(|b| {
                    if b.is_denied() {
                        Ok(b)
                    } else {
                        Ok(b.minus(self.eval_rewrite(ty, subtract, ids)?))
                    }
                });
                self.exit(evaluated.as_ref().unwrap_or(&Outcome::Denied));
                evaluated
            }
            Rewrite::Arrow(arrow) if arrow.func == ArrowFunc::All && ids.len() > 1 => {
                self.per_id(ty, rewrite, ids)
            }
            Rewrite::Arrow(arrow) => {
                let def = self.schema.definition(ty);
                let tupleset = &def.relation(arrow.tupleset).name;
                self.reads += 1;
                self.note_read(&def.name, ids, tupleset);
                let mut tuples = self.reader.subjects(&def.name, ids, tupleset)?;
                if self.schema.is_openfga() {
                    let allowed = def.relation(arrow.tupleset).allowed();
                    tuples.retain(|t| model_allows(self.schema, allowed, t));
                }
                let target = |sty: &str| -> Option<(TypeId, RelationId)> {
                    let t = self.schema.type_id(sty)?;
                    arrow.resolved.iter().find(|(rt, _)| *rt == t).copied()
                };
                if arrow.func == ArrowFunc::All {
                    if tuples.is_empty() {
                        return Ok(Outcome::Denied);
                    }
                    let mut result = Outcome::Allowed;
                    let mut live = 0;
                    for tuple in &tuples {
                        // An expired relationship does not exist: it is no
                        // branch of `.all()`.
                        if tuple.is_expired_at(self.now) {
                            self.volatile = true;
                            continue;
                        }
                        live += 1;
                        // INVARIANT (all-branch): each branch is
                        // `caveat ∧ member`, so a relationship whose caveat
                        // is false makes the whole `.all()` false (as
                        // SpiceDB); dropping it instead would let more
                        // request context turn a DENIED into an ALLOWED.
                        let condition = self.tuple_condition(tuple)?;
                        let o = match target(&tuple.subject.object.object_type) {
                            Some(_) if condition.is_denied() => Outcome::Denied,
                            Some((sty, srel)) => condition.and(self.check_ids(
                                sty,
                                srel,
                                &[&tuple.subject.object.object_id],
                            )?),
                            None => Outcome::Denied,
                        };
                        result = result.and(o);
                        if result.is_denied() {
                            return Ok(result);
                        }
                    }
                    return Ok(if live == 0 { Outcome::Denied } else { result });
                }
                let mut groups: Vec<(TypeId, RelationId, Vec<&str>)> = Vec::new();
                let mut conditional = Vec::new();
                for tuple in &tuples {
                    let condition = self.tuple_condition(tuple)?;
                    if condition.is_denied() {
                        continue;
                    }
                    let Some((sty, srel)) = target(&tuple.subject.object.object_type) else {
                        continue;
                    };
                    let id = tuple.subject.object.object_id.as_str();
                    if condition.is_allowed() {
                        match groups.iter_mut().find(|(t, r, _)| *t == sty && *r == srel) {
                            Some(g) => g.2.push(id),
                            None => groups.push((sty, srel, vec![id])),
                        }
                    } else {
                        conditional.push((sty, srel, id, condition));
                    }
                }
                let mut result = Outcome::Denied;
                for (sty, srel, sids) in groups {
                    result = result.or(self.check_ids(sty, srel, &sids)?);
                    if result.is_allowed() {
                        return Ok(result);
                    }
                }
                for (sty, srel, sid, condition) in conditional {
                    result = result.or(condition.and(self.check_ids(sty, srel, &[sid])?));
                    if result.is_allowed() {
                        return Ok(result);
                    }
                }
                Ok(result)
            }
        }
    }

    fn per_id(
        &mut self,
        ty: TypeId,
        rewrite: &Rewrite,
        ids: &[&str],
    ) -> Result<Outcome, EngineError> {
        let mut result = Outcome::Denied;
        for id in ids {
            result = result.or(self.eval_rewrite(ty, rewrite, &[id])?);
            if result.is_allowed() {
                break;
            }
        }
        Ok(result)
    }
}

/// Whether a stored tuple's subject fits one of `allowed` (type, direct /
/// wildcard / userset, and the same condition). OpenFGA ignores stored
/// tuples its model (no longer) allows, so an OpenFGA schema's walk drops
/// them (SpiceDB's writes and schema changes never leave such tuples).
pub(crate) fn model_allows(
    schema: &Schema,
    allowed: &[crate::schema::ir::AllowedSubject],
    tuple: &Tuple,
) -> bool {
    let subject = &tuple.subject;
    let caveat = tuple.caveat.as_ref().map(|c| c.name.as_str());
    allowed.iter().any(|a| {
        let sdef = schema.definition(a.subject_type);
        if *sdef.name != *subject.object.object_type {
            return false;
        }
        let kind_ok = match a.kind {
            AllowedKind::Direct => {
                subject.relation.is_none() && subject.object.object_id != WILDCARD
            }
            AllowedKind::Wildcard => {
                subject.relation.is_none() && subject.object.object_id == WILDCARD
            }
            AllowedKind::Userset(r) => subject.relation.as_deref() == Some(&*sdef.relation(r).name),
        };
        kind_ok && a.caveat.map(|c| &*schema.caveat(c).name) == caveat
    })
}

/// Resolves `type#relation` names to ids.
pub(crate) fn resolve(
    schema: &Schema,
    object_type: &str,
    relation: &str,
) -> Result<(TypeId, RelationId), EngineError> {
    let ty = schema
        .type_id(object_type)
        .ok_or_else(|| EngineError::UnknownType(object_type.to_string()))?;
    let rel = schema.definition(ty).relation_id(relation).ok_or_else(|| {
        EngineError::UnknownRelation {
            object_type: object_type.to_string(),
            relation: relation.to_string(),
        }
    })?;
    Ok((ty, rel))
}
