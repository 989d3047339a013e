//! SchemaService: write, read and list per-tenant schema versions.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use verdict_storage::RelationStore;

use super::convert::consistency_from_pb;
use super::convert::zookie_to_pb;
use super::error::ApiError;
use super::pb;
use super::schema_plan;
use crate::schema::{self, SchemaLimits, SourceMap};
use crate::server::state::AppState;

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

#[tonic::async_trait]
impl pb::schema_service_server::SchemaService for SchemaApi {
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let author = schema_plan::author(request.metadata());
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        let compiled = schema::compile(&req.schema, &SchemaLimits::default())
            .map_err(|e| ApiError::SchemaRejected(e.render("schema", &req.schema)))?;
        let warnings = compiled
            .warnings
            .iter()
            .map(|w| SourceMap::new("schema", &req.schema).render(w))
            .collect();
        let committed = schema_plan::commit_schema(
            &self.state,
            &tenant,
            schema_plan::SchemaCommit {
                text: req.schema,
                schema: Arc::new(compiled.schema),
                expected_version: req.expected_version,
                comment: req.comment,
                author,
                // As SpiceDB: a write that would orphan relationships is refused
                // (`schema apply --allow-orphan-delete` deletes them instead).
                // OpenFGA keeps tuples a new model no longer allows and
                // ignores them when evaluating, so its models never orphan.
                orphans: if compiled.language.is_openfga() {
                    schema_plan::OrphanPolicy::Ignore
                } else {
                    schema_plan::OrphanPolicy::Refuse
                },
            },
        )
        .await?;
        Ok(Response::new(pb::WriteSchemaResponse {
            written_at: Some(zookie_to_pb(
                committed.outcome.revision,
                &self.state.zookies,
            )),
            version: committed.version,
            warnings,
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn read_schema(
        &self,
        request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        if req.version != 0 {
            return schema_plan::read_version(&self.state, &tenant, req.version)
                .map(Response::new)
                .map_err(Into::into);
        }
        let revision = self
            .state
            .read_revision(consistency_from_pb(
                req.consistency.as_ref(),
                &self.state.zookies,
            )?)
            .await?;
        let entry = self.state.engine_at(&tenant, revision)?;
        Ok(Response::new(pb::ReadSchemaResponse {
            schema_text: entry.text.clone(),
            version: entry.version,
            read_at: Some(zookie_to_pb(revision, &self.state.zookies)),
            active_since_revision: entry.active_since.0,
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn list_schema_versions(
        &self,
        request: Request<pb::ListSchemaVersionsRequest>,
    ) -> Result<Response<pb::ListSchemaVersionsResponse>, Status> {
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        let versions = self
            .state
            .store
            .schema_history(&tenant)
            .map_err(ApiError::from)?
            .into_iter()
            .map(|s| pb::SchemaVersion {
                version: s.record.version,
                revision: s.revision.0,
                comment: s.record.comment,
                text_sha256: schema_plan::text_sha256(&s.record.text),
                text: s.record.text,
                author: s.record.author,
            })
            .collect();
        Ok(Response::new(pb::ListSchemaVersionsResponse { versions }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn plan_schema_change(
        &self,
        request: Request<pb::PlanSchemaChangeRequest>,
    ) -> Result<Response<pb::PlanSchemaChangeResponse>, Status> {
        Ok(Response::new(
            schema_plan::plan(&self.state, request.into_inner()).await?,
        ))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn apply_schema(
        &self,
        request: Request<pb::ApplySchemaRequest>,
    ) -> Result<Response<pb::ApplySchemaResponse>, Status> {
        let author = schema_plan::author(request.metadata());
        Ok(Response::new(
            schema_plan::apply(&self.state, request.into_inner(), author).await?,
        ))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn copy_relation(
        &self,
        request: Request<pb::CopyRelationRequest>,
    ) -> Result<Response<pb::CopyRelationResponse>, Status> {
        Ok(Response::new(
            super::relation_copy::copy_relation(&self.state, request.into_inner()).await?,
        ))
    }
}
