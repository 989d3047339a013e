//! Schema changes with their impact: orphaned relationships, decision
//! simulation under the old and the new schema at one revision, and the
//! guarded commit shared by WriteSchema and ApplySchema (expected version
//! and orphans checked under the commit lock; orphans deleted in the same
//! revision as the schema when allowed).

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::metadata::MetadataMap;
use verdict_storage::{
    ApplyOutcome, Cursor, RelationStore, ReverseQuery, Revision, RocksStore, ScanPage,
    SchemaVersionRecord, StoredSchema, Tenant, Tuple, TupleFilter, TupleReader, TupleReaderExt,
    WriteBatch,
};

use super::convert::{consistency_from_pb, struct_to_json};
use super::error::ApiError;
use super::pb;
use crate::engine::{CheckRequest, Engine, EngineConfig, Outcome};
use crate::relationships::validate_against_schema;
use crate::schema::ir::Schema;
use crate::server::state::AppState;

/// Most examples reported per orphaned relation or flip kind.
pub const MAX_EXAMPLES: usize = 5;

/// Tuples read per storage page while looking for orphans.
const SCAN_PAGE: usize = 1000;

/// The metadata key the authentication layer sets to the caller's key id.
pub const KEY_ID_HEADER: &str = "x-verdict-key-id";

/// The author recorded with a schema version: the authenticated key id, or
/// `anonymous`.
pub fn author(metadata: &MetadataMap) -> String {
    metadata
        .get(KEY_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or("anonymous")
        .to_string()
}

/// SHA-256 of a schema text, lower-case hex.
pub fn text_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The relationships of one relation the new schema would make invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphans {
    /// The resource type.
    pub resource_type: String,
    /// The relation.
    pub relation: String,
    /// Why (the first tuple's validation error).
    pub reason: String,
    /// Every orphaned tuple.
    pub tuples: Vec<Tuple>,
}

/// What to do about orphaned relationships when committing a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Don't look (plain WriteSchema, as before).
    Ignore,
    /// Refuse the write, naming them.
    Refuse,
    /// Delete them in the same revision as the schema.
    Delete,
}

/// Finds the relationships at `reader`'s revision that do not fit `new`.
/// Only relations of `old` whose allowed subject types changed (or that
/// disappeared) are scanned.
///
/// # Errors
/// Storage failures.
pub fn find_orphans(
    reader: &dyn TupleReader,
    old: &Schema,
    new: &Schema,
) -> Result<Vec<Orphans>, ApiError> {
    let mut found = Vec::new();
    for def in old.definitions() {
        for rel in def.relations.iter().filter(|r| !r.is_permission()) {
            let unchanged = new
                .relation(&def.name, &rel.name)
                .filter(|n| !n.is_permission())
                .is_some_and(|n| same_allowed(old, rel.allowed(), new, n.allowed()));
            if unchanged {
                continue;
            }
            let filter = TupleFilter {
                relation: Some(rel.name.to_string()),
                ..TupleFilter::resource_type(def.name.to_string())
            };
            let mut group: Option<Orphans> = None;
            reader.for_each_tuple(&filter, SCAN_PAGE, |t| {
                if let Err(e) = validate_against_schema(new, &t) {
                    group
                        .get_or_insert_with(|| Orphans {
                            resource_type: def.name.to_string(),
                            relation: rel.name.to_string(),
                            reason: e.to_string(),
                            tuples: Vec::new(),
                        })
                        .tuples
                        .push(t);
                }
                Ok(())
            })?;
            found.extend(group);
        }
    }
    Ok(found)
}

fn same_allowed(
    a: &Schema,
    aa: &[crate::schema::ir::AllowedSubject],
    b: &Schema,
    ba: &[crate::schema::ir::AllowedSubject],
) -> bool {
    use crate::schema::diff::allowed_text;
    let set = |s: &Schema, x: &[crate::schema::ir::AllowedSubject]| {
        x.iter()
            .map(|v| allowed_text(s, v))
            .collect::<std::collections::BTreeSet<_>>()
    };
    set(a, aa) == set(b, ba)
}

/// The refusal an admin sees when a schema would orphan relationships.
pub fn orphan_refusal(orphans: &[Orphans]) -> String {
    let total: usize = orphans.iter().map(|o| o.tuples.len()).sum();
    let parts = orphans
        .iter()
        .map(|o| {
            let examples = o
                .tuples
                .iter()
                .take(MAX_EXAMPLES)
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{}#{}: {} ({}; e.g. {examples})",
                o.resource_type,
                o.relation,
                o.tuples.len(),
                o.reason
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "the new schema would orphan {total} existing relationship(s): {parts}; delete them first, or set allow_orphan_delete (verdict schema apply --allow-orphan-delete) to delete them in the same revision as the schema"
    )
}

/// A schema commit: the text and who/why, guarded by the expected version
/// and the orphan policy.
#[derive(Debug, Clone)]
pub struct SchemaCommit {
    /// The schema text (already compiled by the caller).
    pub text: String,
    /// The compiled schema.
    pub schema: Arc<Schema>,
    /// When non-zero, refuse unless this is the current version.
    pub expected_version: u64,
    /// Stored with the version.
    pub comment: String,
    /// Stored with the version.
    pub author: String,
    /// What to do about orphaned relationships.
    pub orphans: OrphanPolicy,
}

/// What a schema commit did.
#[derive(Debug, Clone, Copy)]
pub struct Committed {
    /// The revision the schema became active at.
    pub outcome: ApplyOutcome,
    /// The new version number.
    pub version: u64,
    /// Orphaned relationships deleted in the same revision.
    pub orphans_deleted: u64,
}

/// The refusal when another write replaced the schema first.
pub fn version_refusal(current: u64, expected: u64) -> String {
    format!(
        "schema is at version {current}, the write expected {expected}; re-read, re-plan and retry"
    )
}

/// Commits a schema version under the commit lock: checks the expected
/// version and orphans against the state the batch applies on, and writes
/// the schema (with any orphan deletes) in one revision.
///
/// # Errors
/// FAILED_PRECONDITION for a version mismatch or refused orphans; storage
/// failures.
pub async fn commit_schema(
    state: &Arc<AppState>,
    tenant: &Tenant,
    commit: SchemaCommit,
) -> Result<Committed, ApiError> {
    let st = state.clone();
    let t = tenant.clone();
    let (outcome, (version, deleted)) = state
        .committer
        .propose_planned(tenant, move |store: &RocksStore, applied: Revision| {
            let current = store.schema_at(&t, applied)?;
            let current_version = current.as_ref().map_or(0, |s| s.record.version);
            if commit.expected_version != 0 && commit.expected_version != current_version {
                return Err(ApiError::FailedPrecondition(version_refusal(
                    current_version,
                    commit.expected_version,
                )));
            }
            let mut batch = WriteBatch::new();
            let mut deleted = 0u64;
            if commit.orphans != OrphanPolicy::Ignore && current.is_some() {
                let old = st.engine_at(&t, applied)?;
                let snapshot = store.snapshot(&t, applied)?;
                let orphans = find_orphans(&snapshot, old.engine.schema(), &commit.schema)?;
                if !orphans.is_empty() && commit.orphans == OrphanPolicy::Refuse {
                    return Err(ApiError::FailedPrecondition(orphan_refusal(&orphans)));
                }
                for tuple in orphans.into_iter().flat_map(|o| o.tuples) {
                    deleted += 1;
                    batch = batch.delete(tuple);
                }
            }
            let version = current_version + 1;
            batch = batch.put_schema(SchemaVersionRecord {
                version,
                text: commit.text.clone(),
                comment: commit.comment.clone(),
                author: commit.author.clone(),
            });
            Ok((batch, (version, deleted)))
        })
        .await?;
    tracing::info!(
        version,
        revision = outcome.revision.0,
        orphans_deleted = deleted,
        "schema version committed"
    );
    Ok(Committed {
        outcome,
        version,
        orphans_deleted: deleted,
    })
}

/// A reader that hides the tuples a schema would orphan (they would be
/// deleted by the migration), so the new side of a simulation sees the
/// data as it would be after apply.
struct Fitting<'a> {
    inner: &'a dyn TupleReader,
    schema: &'a Schema,
}

impl Fitting<'_> {
    fn keep(&self, tuples: Vec<Tuple>) -> Vec<Tuple> {
        tuples
            .into_iter()
            .filter(|t| validate_against_schema(self.schema, t).is_ok())
            .collect()
    }
}

impl TupleReader for Fitting<'_> {
    fn tenant(&self) -> &Tenant {
        self.inner.tenant()
    }
    fn revision(&self) -> Revision {
        self.inner.revision()
    }
    fn tuple(&self, key: &Tuple) -> verdict_storage::Result<Option<Tuple>> {
        Ok(self
            .inner
            .tuple(key)?
            .filter(|t| validate_against_schema(self.schema, t).is_ok()))
    }
    fn subjects(
        &self,
        resource_type: &str,
        resource_ids: &[&str],
        relation: &str,
    ) -> verdict_storage::Result<Vec<Tuple>> {
        Ok(self.keep(self.inner.subjects(resource_type, resource_ids, relation)?))
    }
    fn resources_for_subjects(
        &self,
        query: &ReverseQuery<'_>,
    ) -> verdict_storage::Result<Vec<Tuple>> {
        Ok(self.keep(self.inner.resources_for_subjects(query)?))
    }
    fn scan(
        &self,
        filter: &TupleFilter,
        cursor: Option<&Cursor>,
        limit: usize,
    ) -> verdict_storage::Result<ScanPage> {
        let mut page = self.inner.scan(filter, cursor, limit)?;
        page.tuples = self.keep(std::mem::take(&mut page.tuples));
        Ok(page)
    }
    fn schema(&self) -> verdict_storage::Result<Option<StoredSchema>> {
        self.inner.schema()
    }
}

/// ALLOWED, DENIED or CONDITIONAL.
fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Allowed => "ALLOWED",
        Outcome::Denied => "DENIED",
        Outcome::Conditional { .. } => "CONDITIONAL",
    }
}

/// The decisions a schema change flips among the simulated checks.
#[derive(Debug, Clone, Default)]
pub struct Simulation {
    /// Checks evaluated.
    pub simulated: u64,
    /// Flip counts by (before, after).
    pub counts: BTreeMap<(String, String), u64>,
    /// Up to [`MAX_EXAMPLES`] examples per (before, after).
    pub examples: Vec<pb::DecisionFlip>,
}

impl Simulation {
    /// Total flips.
    pub fn flips(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The refusal when flips were not accepted.
    pub fn refusal(&self) -> String {
        let counts = self
            .counts
            .iter()
            .map(|((b, a), n)| format!("{b}→{a}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let examples = self
            .examples
            .iter()
            .take(MAX_EXAMPLES)
            .map(|f| format!("{} {}→{}", f.check, f.before, f.after))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "the new schema changes {} of {} simulated decisions ({counts}; e.g. {examples}); set accept_decision_changes (verdict schema apply --accept-decision-changes) to apply anyway",
            self.flips(),
            self.simulated
        )
    }
}

/// Parses one simulated check; `field` names it in errors.
fn check_from_pb(c: &pb::SimulatedCheck, field: &str) -> Result<CheckRequest, ApiError> {
    let text = format!("{}#{}@{}", c.resource, c.permission, c.subject);
    let tuple = Tuple::parse(&text).map_err(|e| ApiError::InvalidArgument {
        field: field.to_string(),
        reason: format!("`{text}` is not resource#permission@subject: {e}"),
    })?;
    let mut check = CheckRequest::new(tuple.resource, tuple.relation, tuple.subject);
    if let Some(ctx) = &c.context {
        check.context = struct_to_json(ctx);
    }
    Ok(check)
}

/// Evaluates `checks` under the stored schema active at `revision` and
/// under `new` (with orphaned tuples hidden) over the same snapshot.
///
/// # Errors
/// A malformed check (INVALID_ARGUMENT naming `checks[i]`), storage and
/// engine failures.
pub fn simulate(
    state: &AppState,
    tenant: &Tenant,
    revision: Revision,
    new: &Arc<Schema>,
    checks: &[pb::SimulatedCheck],
) -> Result<Simulation, ApiError> {
    let parsed = checks
        .iter()
        .enumerate()
        .map(|(i, c)| check_from_pb(c, &format!("checks[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sim = Simulation::default();
    if parsed.is_empty() {
        return Ok(sim);
    }
    let old = state.engine_at(tenant, revision)?;
    let new_engine = Engine::new(
        new.clone(),
        EngineConfig {
            max_depth: state.settings.max_depth,
        },
    )?;
    let snapshot = state.store.snapshot(tenant, revision)?;
    let fitting = Fitting {
        inner: &snapshot,
        schema: new,
    };
    for (check, raw) in parsed.iter().zip(checks) {
        let before = decide(&old.engine, &snapshot, check);
        let after = decide(&new_engine, &fitting, check);
        sim.simulated += 1;
        if before != after {
            let n = sim
                .counts
                .entry((before.clone(), after.clone()))
                .or_default();
            *n += 1;
            if *n <= MAX_EXAMPLES as u64 {
                sim.examples.push(pb::DecisionFlip {
                    check: format!("{}#{}@{}", raw.resource, raw.permission, raw.subject),
                    before,
                    after,
                });
            }
        }
    }
    Ok(sim)
}

/// A check's answer by name; an error (e.g. the permission no longer
/// exists) is reported as `ERROR: ...` so it shows up as a flip.
fn decide(engine: &Engine, reader: &dyn TupleReader, check: &CheckRequest) -> String {
    match engine.check(reader, check) {
        Ok(r) => outcome_name(&r.outcome).to_string(),
        Err(e) => format!("ERROR ({e})"),
    }
}

/// The orphan report for a plan.
pub fn orphans_to_pb(orphans: &[Orphans]) -> Vec<pb::OrphanedRelation> {
    orphans
        .iter()
        .map(|o| pb::OrphanedRelation {
            resource_type: o.resource_type.clone(),
            relation: o.relation.clone(),
            count: o.tuples.len() as u64,
            examples: o
                .tuples
                .iter()
                .take(MAX_EXAMPLES)
                .map(|t| t.to_string())
                .collect(),
            reason: o.reason.clone(),
        })
        .collect()
}

/// The flip counts for a plan.
pub fn counts_to_pb(sim: &Simulation) -> Vec<pb::FlipCount> {
    sim.counts
        .iter()
        .map(|((before, after), count)| pb::FlipCount {
            before: before.clone(),
            after: after.clone(),
            count: *count,
        })
        .collect()
}

/// Compiles a schema from a request field.
fn compile(text: &str) -> Result<crate::schema::CompiledSchema, ApiError> {
    crate::schema::compile(text, &crate::schema::SchemaLimits::default())
        .map_err(|e| ApiError::SchemaRejected(e.render("schema", text)))
}

/// Runs blocking plan work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("plan task failed: {e}")))?
}

/// ReadSchema with `version` set: that stored version.
///
/// # Errors
/// INVALID_ARGUMENT when no such version is retained.
pub fn read_version(
    state: &AppState,
    tenant: &Tenant,
    version: u64,
) -> Result<pb::ReadSchemaResponse, ApiError> {
    let history = state.store.schema_history(tenant)?;
    let found = history
        .iter()
        .find(|s| s.record.version == version)
        .ok_or_else(|| ApiError::InvalidArgument {
            field: "version".into(),
            reason: format!(
                "schema version {version} does not exist (retained: {})",
                history
                    .iter()
                    .map(|s| s.record.version.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    Ok(pb::ReadSchemaResponse {
        schema_text: found.record.text.clone(),
        version,
        read_at: Some(state.zookie(found.revision)),
        active_since_revision: found.revision.0,
    })
}

/// PlanSchemaChange: the diff, orphans and decision flips of replacing the
/// schema active at the requested revision (default: the latest).
///
/// # Errors
/// Bad schema, tenant, zookie or check; no current schema; storage.
pub async fn plan(
    state: &Arc<AppState>,
    req: pb::PlanSchemaChangeRequest,
) -> Result<pb::PlanSchemaChangeResponse, ApiError> {
    let tenant = state.tenant(&req.tenant)?;
    let new = Arc::new(compile(&req.schema)?.schema);
    let revision = match req.consistency.as_ref() {
        None => state.store.applied_revision(),
        Some(c) => {
            state
                .read_revision(consistency_from_pb(Some(c), &state.zookies)?)
                .await?
        },
    };
    let st = state.clone();
    blocking(move || {
        let old = st.engine_at(&tenant, revision)?;
        let diff = crate::schema::diff::diff(old.engine.schema(), &new);
        let snapshot = st.store.snapshot(&tenant, revision)?;
        let orphans = find_orphans(&snapshot, old.engine.schema(), &new)?;
        let sim = simulate(&st, &tenant, revision, &new, &req.checks)?;
        Ok(pb::PlanSchemaChangeResponse {
            computed_at: Some(st.zookie(revision)),
            current_version: old.version,
            diff_json: serde_json::to_string(&diff)
                .map_err(|e| ApiError::Internal(format!("diff does not serialise: {e}")))?,
            diff_text: diff.render(),
            orphans: orphans_to_pb(&orphans),
            checks_simulated: sim.simulated,
            flip_counts: counts_to_pb(&sim),
            flips: sim.examples,
        })
    })
    .await
}

/// ApplySchema: refuses flipped decisions (unless accepted) and orphaned
/// relationships (unless their deletion is allowed, in which case they are
/// deleted in the schema's revision).
///
/// # Errors
/// FAILED_PRECONDITION for each refusal, with the message an admin sees.
pub async fn apply(
    state: &Arc<AppState>,
    req: pb::ApplySchemaRequest,
    author: String,
) -> Result<pb::ApplySchemaResponse, ApiError> {
    let tenant = state.tenant(&req.tenant)?;
    let compiled = compile(&req.schema)?;
    let warnings = compiled
        .warnings
        .iter()
        .map(|w| crate::schema::SourceMap::new("schema", &req.schema).render(w))
        .collect();
    let new = Arc::new(compiled.schema);
    if !req.checks.is_empty()
        && state
            .store
            .schema_at(&tenant, state.store.applied_revision())?
            .is_some()
    {
        let (st, t, n, checks) = (
            state.clone(),
            tenant.clone(),
            new.clone(),
            req.checks.clone(),
        );
        let sim = blocking(move || {
            let revision = st.store.applied_revision();
            simulate(&st, &t, revision, &n, &checks)
        })
        .await?;
        if sim.flips() > 0 && !req.accept_decision_changes {
            return Err(ApiError::FailedPrecondition(sim.refusal()));
        }
    }
    let committed = commit_schema(
        state,
        &tenant,
        SchemaCommit {
            text: req.schema,
            schema: new,
            expected_version: req.expected_version,
            comment: req.comment,
            author,
            orphans: if req.allow_orphan_delete {
                OrphanPolicy::Delete
            } else {
                OrphanPolicy::Refuse
            },
        },
    )
    .await?;
    Ok(pb::ApplySchemaResponse {
        written_at: Some(state.zookie(committed.outcome.revision)),
        version: committed.version,
        orphans_deleted: committed.orphans_deleted,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verdict_storage::MemStore;

    fn schema(text: &str) -> Schema {
        crate::schema::compile(text, &crate::schema::SchemaLimits::default())
            .unwrap_or_else(|e| panic!("{}", e.render("test", text)))
            .schema
    }

    const OLD: &str = "use expiration
caveat weekday(day string) { day != 'sunday' }
definition user {}
definition group { relation member: user }
definition folder { relation owner: user }
definition document {
    relation reader: user | group#member | user with weekday
    relation editor: user with expiration
    relation parent: folder
    relation owner: user
}";

    /// Drops: the `group#member` subject type and the caveated form from
    /// reader, the expiration trait from editor, the folder definition
    /// (and so `parent`).
    const NEW: &str = "use expiration
definition user {}
definition group { relation member: user }
definition document {
    relation reader: user
    relation editor: user
    relation owner: user
}";

    #[test]
    fn orphans_are_grouped_per_relation_with_the_reason() {
        let store = MemStore::new();
        let tenant = Tenant::default_tenant();
        let mut batch = WriteBatch::new();
        for t in [
            "document:a#reader@user:ann",
            "document:a#reader@group:eng#member",
            "document:b#reader@group:ops#member",
            "document:a#reader@user:cat[weekday]",
            "document:a#editor@user:ed[expiration:2999-01-01T00:00:00Z]",
            "document:a#parent@folder:root",
            "document:a#owner@user:olga",
            "folder:root#owner@user:olga",
        ] {
            batch = batch.touch(Tuple::parse(t).unwrap());
        }
        store.apply(&tenant, Revision(1), &batch).unwrap();
        let snapshot = store.snapshot(&tenant, Revision(1)).unwrap();
        let orphans = find_orphans(&snapshot, &schema(OLD), &schema(NEW)).unwrap();
        let summary: Vec<_> = orphans
            .iter()
            .map(|o| {
                (
                    format!("{}#{}", o.resource_type, o.relation),
                    o.tuples.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "folder#owner".to_string(),
                    vec!["folder:root#owner@user:olga".to_string()]
                ),
                (
                    "document#reader".to_string(),
                    vec![
                        "document:a#reader@group:eng#member".to_string(),
                        "document:a#reader@user:cat[weekday]".to_string(),
                        "document:b#reader@group:ops#member".to_string(),
                    ]
                ),
                (
                    "document#editor".to_string(),
                    vec!["document:a#editor@user:ed[expiration:2999-01-01T00:00:00Z]".to_string()]
                ),
                (
                    "document#parent".to_string(),
                    vec!["document:a#parent@folder:root".to_string()]
                ),
            ]
        );
        assert_eq!(
            orphans[0].reason,
            "resource type `folder` is not defined in the schema"
        );
        assert_eq!(
            orphans[2].reason,
            "subject `user:ed with expiration` is not allowed on `document#editor` (allowed: user)"
        );
        let message = orphan_refusal(&orphans);
        assert!(
            message.starts_with("the new schema would orphan 6 existing relationship(s): folder#owner: 1 (resource type `folder` is not defined in the schema; e.g. folder:root#owner@user:olga); document#reader: 3 ("),
            "{message}"
        );
        // Nothing changed: nothing scanned, nothing orphaned.
        assert!(find_orphans(&snapshot, &schema(OLD), &schema(OLD))
            .unwrap()
            .is_empty());
    }
}
