//! The graph engine: answers check, expand and lookups by walking the
//! relationship graph at one revision, over the compiled schema.
//!
//! ```text
//!  Engine (schema IR + compiled caveats + config)
//!    │  check / bulk_check / expand / lookup_resources / lookup_subjects
//!    ▼
//!  Walker (one per request: memo, in-progress set, depth, trace)
//!    │  batched reads
//!    ▼
//!  verdict_storage::TupleReader (RocksDB snapshot, or MemStore in tests)
//! ```
//!
//! The engine never writes and never sees gRPC types; it is handed a reader
//! pinned to a revision and answers at exactly that revision.

mod cache;
pub mod caveat_eval;
mod check;
mod error;
mod expand;
pub mod group_index;
mod lookup;
pub mod openfga;
pub mod outcome;
pub mod overlay;
mod reachability;
mod trace;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};
use verdict_storage::{ObjectRef, Revision, SubjectRef, Timestamp, TupleReader};

pub use cache::{CacheStats, DecisionCache, DecisionKey};
pub use caveat_eval::{CaveatError, CompiledCaveat};
pub use error::EngineError;
pub use expand::{ExpandKind, ExpandNode, ExpandSubject};
pub use group_index::{GroupIndex, GroupIndexStats};
pub use lookup::{LookupPage, LookupResource, LookupSubject};
pub use outcome::Outcome;
pub use trace::TraceNode;

use crate::schema::ir::{CaveatId, Schema};

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Deepest chain of sub-problems a request may follow. Default = 50.
    pub max_depth: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_depth: 50 }
    }
}

/// One check question.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    /// The resource, e.g. `document:readme`.
    pub resource: ObjectRef,
    /// A permission or relation of the resource's type.
    pub permission: String,
    /// The subject, e.g. `user:alice` or `group:eng#member`.
    pub subject: SubjectRef,
    /// Caveat context supplied with the request.
    pub context: Map<String, Value>,
    /// The time expirations are judged against.
    pub now: Timestamp,
    /// Whether to collect a debug trace.
    pub trace: bool,
}

impl CheckRequest {
    /// A request with empty context, judged now, without a trace.
    pub fn new(resource: ObjectRef, permission: impl Into<String>, subject: SubjectRef) -> Self {
        CheckRequest {
            resource,
            permission: permission.into(),
            subject,
            context: Map::new(),
            now: Timestamp::now(),
            trace: false,
        }
    }
}

/// The answer to a check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResponse {
    /// ALLOWED, DENIED or CONDITIONAL.
    pub outcome: Outcome,
    /// The sub-problems visited, when asked for.
    pub trace: Option<TraceNode>,
    /// Storage reads this check made.
    pub reads: u64,
    /// Sub-problems answered by the shared decision cache (0 = computed).
    pub cache_hits: u64,
    /// What the answer read (sorted storage keys, see [`verdict_footprint`]),
    /// when it depends on nothing else: no caveat, expiration, request
    /// context or cycle assumption, and every part of it is known. `None`
    /// = the answer must not be cached outside this revision.
    pub footprint: Option<Arc<[u64]>>,
}

/// The engine for one compiled schema version.
#[derive(Debug, Clone)]
pub struct Engine {
    schema: Arc<Schema>,
    caveats: Arc<Vec<CompiledCaveat>>,
    config: EngineConfig,
    /// Distinguishes engines (schema versions) in the shared cache.
    generation: usize,
    cache: Option<Arc<DecisionCache>>,
    /// The group index, when enabled (see [`group_index`]).
    group_index: Option<group_index::EngineGroupIndex>,
    /// OpenFGA's ListUsers: a condition missing parameters anywhere on the
    /// walk is an error, even where another branch already decides.
    strict_conditions: bool,
}

/// Source of [`Engine::generation`] values.
static NEXT_GENERATION: AtomicUsize = AtomicUsize::new(1);

impl Engine {
    /// Builds an engine for `schema`, compiling its caveats once.
    ///
    /// # Errors
    /// A caveat expression that does not compile.
    pub fn new(schema: Arc<Schema>, mut config: EngineConfig) -> Result<Engine, EngineError> {
        if schema.is_openfga() {
            // OpenFGA's resolution bound (`resolveNodeLimit`): deeper is
            // error 2002.
            config.max_depth = config.max_depth.min(openfga::MAX_DEPTH);
        }
        let caveats = schema
            .caveats()
            .iter()
            .map(CompiledCaveat::compile)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Engine {
            schema,
            caveats: Arc::new(caveats),
            config,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            cache: None,
            group_index: None,
            strict_conditions: false,
        })
    }

    /// Shares decided sub-problems across requests through `cache` (keyed
    /// by tenant, revision, schema and sub-problem).
    pub fn with_cache(mut self, cache: Arc<DecisionCache>) -> Engine {
        self.cache = Some(cache);
        self
    }

    /// Answers questions on pure-nesting relations from `index`, which this
    /// engine's schema (active since `schema_revision`) must be the one the
    /// tenant's index was built from (otherwise the walker walks).
    pub fn with_group_index(mut self, index: Arc<GroupIndex>, schema_revision: Revision) -> Engine {
        if self.schema.is_openfga() {
            // The index reads stored relations as SpiceDB's (every stored
            // tuple counts); an OpenFGA model ignores the tuples it does
            // not allow, so its engine always walks.
            return self;
        }
        self.group_index = Some(group_index::EngineGroupIndex::new(
            index,
            &self.schema,
            schema_revision,
        ));
        self
    }

    /// This engine without the shared decision cache (a cold evaluation:
    /// `x-verdict-cache: bypass`, used by `verdict bench --mode cold`).
    pub fn without_cache(&self) -> Engine {
        Engine {
            cache: None,
            ..self.clone()
        }
    }

    /// This engine without the decision cache and the group index: for a
    /// request whose answer must not be shared (contextual tuples overlay
    /// the snapshot, so answers are not those of the revision).
    pub fn isolated(&self) -> Engine {
        Engine {
            cache: None,
            group_index: None,
            ..self.clone()
        }
    }

    /// The decision cache's counters, when there is one.
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Checks the context a relationship carries for caveat `name` (types
    /// and size), as a write must before it is stored.
    ///
    /// # Errors
    /// An unknown caveat, or the context does not fit its parameters.
    pub fn check_caveat_context(
        &self,
        name: &str,
        context: &Map<String, Value>,
    ) -> Result<(), EngineError> {
        let id = self
            .schema
            .caveat_id(name)
            .ok_or_else(|| EngineError::UnknownType(format!("caveat {name}")))?;
        Ok(self.compiled_caveat(id)?.check_context(context)?)
    }

    /// The compiled form of caveat `id` (compiled in id order by [`Engine::new`]).
    fn compiled_caveat(&self, id: CaveatId) -> Result<&CompiledCaveat, EngineError> {
        self.caveats.get(id.0 as usize).ok_or(EngineError::Internal(
            "caveat id outside the compiled caveats",
        ))
    }

    /// The schema this engine evaluates.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Answers one check at the reader's revision.
    ///
    /// # Errors
    /// Unknown type/relation/subject type, depth exceeded, caveat context
    /// errors, storage failures. A denial is an answer, not an error.
    pub fn check(
        &self,
        reader: &dyn TupleReader,
        request: &CheckRequest,
    ) -> Result<CheckResponse, EngineError> {
        let mut walker = check::Walker::new(
            self,
            reader,
            &request.subject,
            &request.context,
            request.now,
        )?;
        walker.set_trace(request.trace);
        let outcome = walker.check_object(&request.resource, &request.permission)?;
        Ok(CheckResponse {
            outcome,
            trace: walker.take_trace(),
            reads: walker.reads(),
            cache_hits: walker.cache_hits(),
            footprint: walker.answer_footprint(),
        })
    }

    /// The shared decision cache's answer to `request` at `revision`, if it
    /// holds one valid there — no storage read, so a caller can answer a
    /// warm check without a trip to the blocking pool. `None` when there is
    /// no cache, a trace was asked for, or the cache has no valid answer.
    pub fn check_cached(
        &self,
        tenant: &str,
        revision: Revision,
        request: &CheckRequest,
    ) -> Option<CheckResponse> {
        let cache = self.cache.as_ref()?;
        if request.trace {
            return None;
        }
        let (ty, rel) = check::resolve(
            &self.schema,
            &request.resource.object_type,
            &request.permission,
        )
        .ok()?;
        let subject_type = self.schema.type_id(&request.subject.object.object_type)?;
        let key = DecisionKey {
            tenant: tenant.to_string(),
            revision: revision.0,
            schema: self.generation,
            object_type: ty,
            relation: rel,
            object_id: request.resource.object_id.clone(),
            subject_type,
            subject_id: request.subject.object.object_id.clone(),
            subject_relation: request.subject.relation.clone(),
        };
        let (outcome, footprint) = cache.get_with_footprint(&key)?;
        Some(CheckResponse {
            outcome,
            trace: None,
            reads: 0,
            cache_hits: 1,
            footprint,
        })
    }

    /// Answers many checks, in request order, sharing work between checks
    /// with the same subject, context and time (one walker, one memo).
    pub fn bulk_check(
        &self,
        reader: &dyn TupleReader,
        requests: &[CheckRequest],
    ) -> Vec<Result<CheckResponse, EngineError>> {
        let mut results: Vec<Option<Result<CheckResponse, EngineError>>> =
            (0..requests.len()).map(|_| None).collect();
        // Group by (subject, context, now, trace) preserving order; each
        // entry is a request and its position in `requests`.
        let mut groups: Vec<Vec<(usize, &CheckRequest)>> = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let found = groups.iter_mut().find(|g| {
                g.first().is_some_and(|&(_, first)| {
                    first.subject == r.subject
                        && first.context == r.context
                        && first.now == r.now
                        && !first.trace
                        && !r.trace
                })
            });
            match found {
                Some(g) => g.push((i, r)),
                None => groups.push(vec![(i, r)]),
            }
        }
        // Positions come from `requests.iter().enumerate()`, so every slot
        // exists; one that stayed empty is reported below.
        for group in groups {
            let Some(&(_, first)) = group.first() else {
                continue;
            };
            let mut walker =
                match check::Walker::new(self, reader, &first.subject, &first.context, first.now) {
                    Ok(w) => w,
                    Err(e) => {
                        for (i, _) in group {
                            if let Some(slot) = results.get_mut(i) {
                                *slot = Some(Err(e.clone()));
                            }
                        }
                        continue;
                    }
                };
            for (i, r) in group {
                walker.set_trace(r.trace);
                let (reads, hits) = (walker.reads(), walker.cache_hits());
                let outcome = walker.check_object(&r.resource, &r.permission);
                let response = outcome.map(|outcome| CheckResponse {
                    outcome,
                    trace: walker.take_trace(),
                    reads: walker.reads() - reads,
                    cache_hits: walker.cache_hits() - hits,
                    footprint: walker.answer_footprint(),
                });
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(response);
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(EngineError::Internal("bulk check lost a result"))))
            .collect()
    }

    /// Expands `resource#permission` into its userset tree.
    ///
    /// # Errors
    /// Unknown type/relation, depth exceeded, storage failures.
    pub fn expand(
        &self,
        reader: &dyn TupleReader,
        resource: &ObjectRef,
        permission: &str,
        now: Timestamp,
    ) -> Result<ExpandNode, EngineError> {
        expand::expand(self, reader, resource, permission, now)
    }

    /// The resources of `resource_type` on which `subject` has `permission`,
    /// in id order, starting after `cursor`, at most `limit` of them (0 = no
    /// limit).
    ///
    /// # Errors
    /// As [`Engine::check`].
    #[expect(
        clippy::too_many_arguments,
        reason = "the public lookup API: each argument is one field of a LookupResources request"
    )]
    pub fn lookup_resources(
        &self,
        reader: &dyn TupleReader,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        context: &Map<String, Value>,
        now: Timestamp,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<LookupPage<LookupResource>, EngineError> {
        lookup::lookup_resources(
            self,
            reader,
            resource_type,
            permission,
            subject,
            context,
            now,
            cursor,
            limit,
        )
    }

    /// The subjects of `subject_type` (with `subject_relation`, if given) that
    /// have `permission` on `resource`, including a wildcard with the
    /// subjects excluded from it.
    ///
    /// # Errors
    /// As [`Engine::check`].
    #[expect(
        clippy::too_many_arguments,
        reason = "the public lookup API: each argument is one field of a LookupSubjects request"
    )]
    pub fn lookup_subjects(
        &self,
        reader: &dyn TupleReader,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
        context: &Map<String, Value>,
        now: Timestamp,
    ) -> Result<Vec<LookupSubject>, EngineError> {
        lookup::lookup_subjects(
            self,
            reader,
            resource,
            permission,
            subject_type,
            subject_relation,
            context,
            now,
        )
    }
}
