//! `authzed.api.v1.SchemaService`: ReadSchema and WriteSchema over the
//! tenant's schema versions (each WriteSchema is a new Verdict schema
//! version), ReflectSchema, ComputablePermissions and DependentRelations
//! (`reachability`) and DiffSchema (`schema_diff`). The ExperimentalService
//! twins call the `pub(super)` methods here.

use std::sync::Arc;

use parking_lot::Mutex;
use tonic::{Code, Request, Response, Status};
use verdict_storage::{RelationStore, Revision, RocksStore, SchemaVersionRecord, WriteBatch};

use super::auth;
use super::convert::zedtoken;
use super::error::{SpiceError, SpiceResult};
use super::pb::{self, ErrorReason};
use super::{reachability, reflection, schema_diff};
use crate::api::error::ApiError;
use crate::api::schema_plan::{self, Orphans};
use crate::schema::ir::Schema;
use crate::schema::{self, SchemaError, SchemaLimits, SourceMap};
use crate::server::consistency::Consistency;
use crate::server::state::AppState;

/// Largest schema text accepted (SpiceDB's 4 MiB).
pub const MAX_SCHEMA_BYTES: usize = 4 << 20;

/// The SchemaService implementation.
#[derive(Debug, Clone)]
pub struct SchemaApi {
    state: Arc<AppState>,
}

impl SchemaApi {
    /// A service over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        SchemaApi { state }
    }
}

/// A schema that does not parse: SCHEMA_PARSE_ERROR with 0-based positions.
fn parse_error(e: &SchemaError, text: &str) -> SpiceError {
    let map = SourceMap::new("schema", text);
    let Some(d) = e.diagnostics.first() else {
        return SpiceError::plain(Code::InvalidArgument, "parse error in `schema`");
    };
    let (line, column) = map.line_col(d.span.start);
    let (end_line, end_column) = map.line_col(d.span.end);
    let source = text.get(d.span.start..d.span.end).unwrap_or("");
    SpiceError::reasoned(
        Code::InvalidArgument,
        ErrorReason::SchemaParseError,
        format!(
            "parse error in `schema`, line {line}, column {column}: {}",
            d.message
        ),
        &[
            ("start_line_number", &(line - 1).to_string()),
            ("start_column_position", &(column - 1).to_string()),
            ("end_line_number", &(end_line - 1).to_string()),
            ("end_column_position", &(end_column - 1).to_string()),
            ("source_code", source),
        ],
    )
}

/// A schema that parses but does not type-check: SCHEMA_TYPE_ERROR.
fn type_error(e: &SchemaError, text: &str) -> SpiceError {
    let Some(d) = e.diagnostics.first() else {
        return SpiceError::plain(Code::FailedPrecondition, "schema type error");
    };
    let source = text.get(d.span.start..d.span.end).unwrap_or("");
    SpiceError::reasoned(
        Code::FailedPrecondition,
        ErrorReason::SchemaTypeError,
        d.message.clone(),
        &[("source_code", source)],
    )
}

/// Relationships the new schema would orphan, worded as SpiceDB does.
fn orphan_error(o: &Orphans, new: &Schema) -> SpiceError {
    let example = o
        .tuples
        .first()
        .map(super::convert::relationship_key)
        .unwrap_or_default();
    let (def, rel) = (&o.resource_type, &o.relation);
    let message = if new.definition_named(def).is_none() {
        format!("cannot delete object definition `{def}`, as at least one relationship exists under it: {example}")
    } else if new.relation(def, rel).is_none_or(|r| r.is_permission()) {
        format!("cannot delete relation `{rel}` in object definition `{def}`, as at least one relationship exists under it: {example}")
    } else {
        format!("cannot remove allowed type from relation `{rel}` in object definition `{def}`, as a relationship exists with it: {example}")
    };
    SpiceError::reasoned(
        Code::InvalidArgument,
        ErrorReason::SchemaTypeError,
        message,
        &[("definition_name", def), ("relation_name", rel)],
    )
}

fn starts(name: &str, prefix: &str) -> bool {
    name.starts_with(prefix)
}

/// ReflectSchema's view of `schema`, narrowed by SpiceDB's prefix
/// filters (OR-ed; none = everything).
fn reflect(
    schema: &Schema,
    filters: &[pb::ReflectionSchemaFilter],
) -> (Vec<pb::ReflectionDefinition>, Vec<pb::ReflectionCaveat>) {
    use crate::schema::ir::AllowedKind;
    use pb::reflection_type_reference::Typeref;
    let any_filter = !filters.is_empty();
    let def_filters: Vec<&pb::ReflectionSchemaFilter> = filters
        .iter()
        .filter(|f| !f.optional_definition_name_filter.is_empty())
        .collect();
    let mut definitions = Vec::new();
    for def in schema.definitions() {
        let matching: Vec<&&pb::ReflectionSchemaFilter> = def_filters
            .iter()
            .filter(|f| starts(&def.name, &f.optional_definition_name_filter))
            .collect();
        if any_filter && matching.is_empty() {
            continue;
        }
        let wants = |name: &str, permission: bool| {
            !any_filter
                || matching.iter().any(|f| {
                    let (mine, other) = if permission {
                        (
                            &f.optional_permission_name_filter,
                            &f.optional_relation_name_filter,
                        )
                    } else {
                        (
                            &f.optional_relation_name_filter,
                            &f.optional_permission_name_filter,
                        )
                    };
                    if mine.is_empty() {
                        other.is_empty()
                    } else {
                        starts(name, mine)
                    }
                })
        };
        let mut relations = Vec::new();
        let mut permissions = Vec::new();
        for rel in &def.relations {
            if !wants(&rel.name, rel.is_permission()) {
                continue;
            }
            let comment = rel.doc.clone().unwrap_or_default();
            if rel.is_permission() {
                permissions.push(pb::ReflectionPermission {
                    name: rel.name.to_string(),
                    comment,
                    parent_definition_name: def.name.to_string(),
                });
                continue;
            }
            let subject_types = rel
                .allowed()
                .iter()
                .map(|a| {
                    let subject = schema.definition(a.subject_type);
                    let typeref = match a.kind {
                        AllowedKind::Direct => Typeref::IsTerminalSubject(true),
                        AllowedKind::Wildcard => Typeref::IsPublicWildcard(true),
                        AllowedKind::Userset(r) => {
                            Typeref::OptionalRelationName(subject.relation(r).name.to_string())
                        }
                    };
                    pb::ReflectionTypeReference {
                        subject_definition_name: subject.name.to_string(),
                        optional_caveat_name: a
                            .caveat
                            .map(|c| schema.caveat(c).name.to_string())
                            .unwrap_or_default(),
                        typeref: Some(typeref),
                    }
                })
                .collect();
            relations.push(pb::ReflectionRelation {
                name: rel.name.to_string(),
                comment,
                parent_definition_name: def.name.to_string(),
                subject_types,
            });
        }
        definitions.push(pb::ReflectionDefinition {
            name: def.name.to_string(),
            comment: def.doc.clone().unwrap_or_default(),
            relations,
            permissions,
        });
    }
    let caveats = schema
        .caveats()
        .iter()
        .filter(|c| {
            !any_filter
                || filters.iter().any(|f| {
                    !f.optional_caveat_name_filter.is_empty()
                        && starts(&c.name, &f.optional_caveat_name_filter)
                })
        })
        .map(|c| pb::ReflectionCaveat {
            name: c.name.to_string(),
            comment: c.doc.clone().unwrap_or_default(),
            parameters: c
                .params
                .iter()
                .map(|(name, ty)| pb::ReflectionCaveatParameter {
                    name: name.to_string(),
                    r#type: ty.to_string(),
                    parent_caveat_name: c.name.to_string(),
                })
                .collect(),
            expression: c.expression.clone(),
        })
        .collect();
    (definitions, caveats)
}

impl SchemaApi {
    async fn write(&self, text: String, author: String) -> SpiceResult<Revision> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(SpiceError::validation(
                "schema",
                format!("value length must be at most {MAX_SCHEMA_BYTES} bytes"),
            ));
        }
        let limits = SchemaLimits::default();
        let parsed = schema::parse(&text, &limits).map_err(|e| parse_error(&e, &text))?;
        let compiled =
            schema::compile_parsed(parsed, &limits).map_err(|e| type_error(&e, &text))?;
        let new = Arc::new(compiled.schema);
        let tenant = self.state.tenant(&auth::tenant_name())?;
        let refused: Arc<Mutex<Option<SpiceError>>> = Arc::new(Mutex::new(None));
        let slot = refused.clone();
        let state = self.state.clone();
        let t = tenant.clone();
        let planned = self
            .state
            .committer
            .propose_planned(&tenant, move |store: &RocksStore, applied: Revision| {
                let current = store.schema_at(&t, applied)?;
                let version = current.as_ref().map_or(0, |s| s.record.version);
                if current.is_some() {
                    let old = state.engine_at(&t, applied)?;
                    let snapshot = store.snapshot(&t, applied)?;
                    let orphans = schema_plan::find_orphans(&snapshot, old.engine.schema(), &new)?;
                    if let Some(o) = orphans.first() {
                        *slot.lock() = Some(orphan_error(o, &new));
                        return Err(ApiError::FailedPrecondition("orphans".into()));
                    }
                }
                let batch = WriteBatch::new().put_schema(SchemaVersionRecord {
                    version: version + 1,
                    text: text.clone(),
                    comment: "authzed.api.v1 WriteSchema".into(),
                    author: author.clone(),
                });
                Ok((batch, ()))
            })
            .await;
        match planned {
            Ok((outcome, ())) => Ok(outcome.revision),
            Err(e) => Err(refused.lock().take().unwrap_or_else(|| e.into())),
        }
    }
}

impl SchemaApi {
    /// The tenant's schema at the request's consistency (`None`: no schema
    /// written yet) and the revision read.
    async fn schema_at(
        &self,
        consistency: Option<&pb::Consistency>,
    ) -> SpiceResult<(Option<Arc<Schema>>, Revision)> {
        let consistency = super::convert::consistency_from_pb(consistency, &self.state.zookies)?;
        let tenant = self.state.tenant(&auth::tenant_name())?;
        let revision = self.state.read_revision(consistency).await?;
        match self.state.engine_at(&tenant, revision) {
            Ok(entry) => Ok((Some(entry.engine.schema().clone()), revision)),
            Err(ApiError::NoSchema(_)) => Ok((None, revision)),
            Err(other) => Err(other.into()),
        }
    }

    /// ComputablePermissions: what a change to `definition#relation` (or to
    /// objects of `definition` when the relation is empty) can affect.
    pub(super) async fn computable(
        &self,
        req: pb::ComputablePermissionsRequest,
    ) -> SpiceResult<pb::ComputablePermissionsResponse> {
        let (schema, revision) = self.schema_at(req.consistency.as_ref()).await?;
        let schema = schema.unwrap_or_default();
        let def = schema
            .definition_named(&req.definition_name)
            .ok_or_else(|| SpiceError::unknown_definition(&req.definition_name))?;
        let start = if req.relation_name.is_empty() {
            None
        } else {
            let rel = def
                .relation_named(&req.relation_name)
                .ok_or_else(|| SpiceError::unknown_relation(&def.name, &req.relation_name))?;
            Some(rel.id)
        };
        let reached = reachability::reachable_from_subject(&schema, (def.id, start));
        let permissions = references(&schema, reached, |d, r| {
            !(Some(r) == start && d == def.id)
                && starts(
                    &schema.definition(d).name,
                    &req.optional_definition_name_filter,
                )
        });
        Ok(pb::ComputablePermissionsResponse {
            permissions,
            read_at: Some(zedtoken(&self.state.zookies, revision)),
        })
    }

    /// DependentRelations: every relation and permission
    /// `definition#permission` is computed from.
    pub(super) async fn dependent(
        &self,
        req: pb::DependentRelationsRequest,
    ) -> SpiceResult<pb::DependentRelationsResponse> {
        let (schema, revision) = self.schema_at(req.consistency.as_ref()).await?;
        let schema = schema.unwrap_or_default();
        let def = schema
            .definition_named(&req.definition_name)
            .ok_or_else(|| SpiceError::unknown_definition(&req.definition_name))?;
        let rel = def
            .relation_named(&req.permission_name)
            .ok_or_else(|| SpiceError::unknown_relation(&def.name, &req.permission_name))?;
        if !rel.is_permission() {
            return Err(SpiceError::reasoned(
                Code::InvalidArgument,
                ErrorReason::UnknownRelationOrPermission,
                format!("the relation `{}` is not a permission", rel.name),
                &[("relationName", &rel.name)],
            ));
        }
        let start = (def.id, rel.id);
        let found = reachability::dependencies_of(&schema, start);
        let relations = references(&schema, found, |d, r| (d, r) != start);
        Ok(pb::DependentRelationsResponse {
            relations,
            read_at: Some(zedtoken(&self.state.zookies, revision)),
        })
    }

    /// DiffSchema: the stored schema (empty if none) against the request's.
    pub(super) async fn diff(
        &self,
        req: pb::DiffSchemaRequest,
    ) -> SpiceResult<pb::DiffSchemaResponse> {
        let text = &req.comparison_schema;
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(SpiceError::validation(
                "comparison_schema",
                format!("value length must be at most {MAX_SCHEMA_BYTES} bytes"),
            ));
        }
        let limits = SchemaLimits::default();
        let parsed = schema::parse(text, &limits).map_err(|e| parse_error(&e, text))?;
        let comparison =
            schema::compile_parsed(parsed, &limits).map_err(|e| type_error(&e, text))?;
        let (existing, revision) = self.schema_at(req.consistency.as_ref()).await?;
        let existing = existing.unwrap_or_default();
        Ok(pb::DiffSchemaResponse {
            diffs: schema_diff::diff(&existing, &comparison.schema),
            read_at: Some(zedtoken(&self.state.zookies, revision)),
        })
    }

    /// ReflectSchema (also answers ExperimentalReflectSchema).
    pub(super) async fn reflect(
        &self,
        req: pb::ReflectSchemaRequest,
    ) -> SpiceResult<pb::ReflectSchemaResponse> {
        let (schema, revision) = self.schema_at(req.consistency.as_ref()).await?;
        let schema = schema.ok_or_else(|| {
            SpiceError::plain(
                Code::NotFound,
                "no schema has been defined; please call WriteSchema to start",
            )
        })?;
        let (definitions, caveats) = reflect(&schema, &req.optional_filters);
        Ok(pb::ReflectSchemaResponse {
            definitions,
            caveats,
            read_at: Some(zedtoken(&self.state.zookies, revision)),
        })
    }
}

/// The kept relations as references, sorted by definition then name.
fn references(
    schema: &Schema,
    nodes: std::collections::BTreeSet<reachability::Node>,
    keep: impl Fn(crate::schema::ir::TypeId, crate::schema::ir::RelationId) -> bool,
) -> Vec<pb::ReflectionRelationReference> {
    let mut out: Vec<pb::ReflectionRelationReference> = nodes
        .into_iter()
        .filter(|(d, r)| keep(*d, *r))
        .map(|(d, r)| {
            let def = schema.definition(d);
            reflection::relation_reference(def, def.relation(r))
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.definition_name, &a.relation_name).cmp(&(&b.definition_name, &b.relation_name))
    });
    out
}

#[tonic::async_trait]
impl pb::schema_service_server::SchemaService for SchemaApi {
    async fn read_schema(
        &self,
        _request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        let tenant = self
            .state
            .tenant(&auth::tenant_name())
            .map_err(SpiceError::from)?;
        let revision = self
            .state
            .read_revision(Consistency::FullyConsistent)
            .await
            .map_err(SpiceError::from)?;
        let entry = self
            .state
            .engine_at(&tenant, revision)
            .map_err(|e| match e {
                ApiError::NoSchema(_) => SpiceError::plain(
                    Code::NotFound,
                    "no schema has been defined; please call WriteSchema to start",
                ),
                other => other.into(),
            })?;
        Ok(Response::new(pb::ReadSchemaResponse {
            schema_text: entry.text.clone(),
            read_at: Some(zedtoken(&self.state.zookies, revision)),
        }))
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let author = schema_plan::author(request.metadata());
        let revision = self.write(request.into_inner().schema, author).await?;
        Ok(Response::new(pb::WriteSchemaResponse {
            written_at: Some(zedtoken(&self.state.zookies, revision)),
        }))
    }

    async fn reflect_schema(
        &self,
        request: Request<pb::ReflectSchemaRequest>,
    ) -> Result<Response<pb::ReflectSchemaResponse>, Status> {
        Ok(Response::new(self.reflect(request.into_inner()).await?))
    }

    async fn computable_permissions(
        &self,
        request: Request<pb::ComputablePermissionsRequest>,
    ) -> Result<Response<pb::ComputablePermissionsResponse>, Status> {
        Ok(Response::new(self.computable(request.into_inner()).await?))
    }

    async fn dependent_relations(
        &self,
        request: Request<pb::DependentRelationsRequest>,
    ) -> Result<Response<pb::DependentRelationsResponse>, Status> {
        Ok(Response::new(self.dependent(request.into_inner()).await?))
    }

    async fn diff_schema(
        &self,
        request: Request<pb::DiffSchemaRequest>,
    ) -> Result<Response<pb::DiffSchemaResponse>, Status> {
        Ok(Response::new(self.diff(request.into_inner()).await?))
    }
}
