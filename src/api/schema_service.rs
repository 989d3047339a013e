//! SchemaService: write, read and list per-tenant schema versions.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use verdict_storage::{RelationStore, SchemaVersionRecord, WriteBatch};

use super::error::ApiError;
use super::pb;
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
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        let compiled = schema::compile(&req.schema, &SchemaLimits::default())
            .map_err(|e| ApiError::SchemaRejected(e.render("schema", &req.schema)))?;
        let warnings = compiled
            .warnings
            .iter()
            .map(|w| SourceMap::new("schema", &req.schema).render(w))
            .collect();
        let applied = self.state.store.applied_revision();
        let current = self
            .state
            .store
            .schema_at(&tenant, applied)
            .map_err(ApiError::from)?
            .map_or(0, |s| s.record.version);
        if req.expected_version != 0 && req.expected_version != current {
            return Err(ApiError::FailedPrecondition(format!(
                "`expected_version` is {} but the current schema version is {current}; another write got there first",
                req.expected_version
            ))
            .into());
        }
        let batch = WriteBatch::new().put_schema(SchemaVersionRecord {
            version: current + 1,
            text: req.schema,
            comment: req.comment,
        });
        let outcome = self.state.committer.propose(&tenant, batch).await?;
        Ok(Response::new(pb::WriteSchemaResponse {
            written_at: Some(self.state.zookie(outcome.revision)),
            version: current + 1,
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
        let revision = self.state.read_revision(req.consistency.as_ref()).await?;
        let entry = self.state.engine_at(&tenant, revision)?;
        Ok(Response::new(pb::ReadSchemaResponse {
            schema_text: entry.text.clone(),
            version: entry.version,
            read_at: Some(self.state.zookie(revision)),
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
                text: s.record.text,
            })
            .collect();
        Ok(Response::new(pb::ListSchemaVersionsResponse { versions }))
    }
}
