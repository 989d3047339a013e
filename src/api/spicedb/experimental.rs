//! `authzed.api.v1.ExperimentalService`: the deprecated bulk RPCs SDKs
//! still call, answered by their PermissionsService successors. Their
//! messages are wire-identical for every field (SpiceDB renamed them when
//! it promoted the RPCs), so each request and response is transcoded
//! through its protobuf encoding. The reflection twins (`Exp*` messages,
//! wire-identical to SchemaService's) are answered by [`SchemaApi`] the
//! same way. The relationship counters are [`CountersApi`].

use std::pin::Pin;

use prost::Message;
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Code, Request, Response, Status, Streaming};

use super::counters::CountersApi;
use super::error::SpiceError;
use super::pb;
use super::{PermissionsApi, SchemaApi};

/// The ExperimentalService implementation.
#[derive(Debug, Clone)]
pub struct ExperimentalApi {
    permissions: PermissionsApi,
    schema: SchemaApi,
    counters: CountersApi,
}

impl ExperimentalApi {
    /// The service, delegating to `permissions`.
    pub fn new(permissions: PermissionsApi) -> Self {
        let schema = SchemaApi::new(permissions.state().clone());
        let counters = CountersApi::new(permissions.state().clone());
        ExperimentalApi {
            permissions,
            schema,
            counters,
        }
    }
}

/// Re-decodes `from` as its wire-identical twin `To`.
fn transcode<To: Message + Default>(from: &impl Message) -> Result<To, Status> {
    To::decode(from.encode_to_vec().as_slice()).map_err(|e| {
        SpiceError::plain(Code::Internal, format!("message transcoding failed: {e}")).into()
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::experimental_service_server::ExperimentalService for ExperimentalApi {
    async fn bulk_import_relationships(
        &self,
        request: Request<Streaming<pb::BulkImportRelationshipsRequest>>,
    ) -> Result<Response<pb::BulkImportRelationshipsResponse>, Status> {
        let batches = request.into_inner().map(|r| r.map(|r| r.relationships));
        let num_loaded = self.permissions.import(batches).await?;
        Ok(Response::new(pb::BulkImportRelationshipsResponse {
            num_loaded,
        }))
    }

    type BulkExportRelationshipsStream = BoxStream<pb::BulkExportRelationshipsResponse>;

    async fn bulk_export_relationships(
        &self,
        request: Request<pb::BulkExportRelationshipsRequest>,
    ) -> Result<Response<Self::BulkExportRelationshipsStream>, Status> {
        let req: pb::ExportBulkRelationshipsRequest = transcode(&request.into_inner())?;
        let stream = self.permissions.export(req).await?.into_inner();
        let mapped = stream.map(|item| {
            item.map(|page| pb::BulkExportRelationshipsResponse {
                after_result_cursor: page.after_result_cursor,
                relationships: page.relationships,
            })
        });
        Ok(Response::new(Box::pin(mapped)))
    }

    async fn bulk_check_permission(
        &self,
        request: Request<pb::BulkCheckPermissionRequest>,
    ) -> Result<Response<pb::BulkCheckPermissionResponse>, Status> {
        let req: pb::CheckBulkPermissionsRequest = transcode(&request.into_inner())?;
        let answer = self.permissions.bulk_check(req).await?;
        Ok(Response::new(transcode(&answer)?))
    }

    async fn experimental_reflect_schema(
        &self,
        request: Request<pb::ExperimentalReflectSchemaRequest>,
    ) -> Result<Response<pb::ExperimentalReflectSchemaResponse>, Status> {
        let req: pb::ReflectSchemaRequest = transcode(&request.into_inner())?;
        let answer = self.schema.reflect(req).await?;
        Ok(Response::new(transcode(&answer)?))
    }

    async fn experimental_computable_permissions(
        &self,
        request: Request<pb::ExperimentalComputablePermissionsRequest>,
    ) -> Result<Response<pb::ExperimentalComputablePermissionsResponse>, Status> {
        let req: pb::ComputablePermissionsRequest = transcode(&request.into_inner())?;
        let answer = self.schema.computable(req).await?;
        Ok(Response::new(transcode(&answer)?))
    }

    async fn experimental_dependent_relations(
        &self,
        request: Request<pb::ExperimentalDependentRelationsRequest>,
    ) -> Result<Response<pb::ExperimentalDependentRelationsResponse>, Status> {
        let req: pb::DependentRelationsRequest = transcode(&request.into_inner())?;
        let answer = self.schema.dependent(req).await?;
        Ok(Response::new(transcode(&answer)?))
    }

    async fn experimental_diff_schema(
        &self,
        request: Request<pb::ExperimentalDiffSchemaRequest>,
    ) -> Result<Response<pb::ExperimentalDiffSchemaResponse>, Status> {
        let req: pb::DiffSchemaRequest = transcode(&request.into_inner())?;
        let answer = self.schema.diff(req).await?;
        Ok(Response::new(transcode(&answer)?))
    }

    async fn experimental_register_relationship_counter(
        &self,
        request: Request<pb::ExperimentalRegisterRelationshipCounterRequest>,
    ) -> Result<Response<pb::ExperimentalRegisterRelationshipCounterResponse>, Status> {
        self.counters.register(request.into_inner()).await?;
        Ok(Response::new(
            pb::ExperimentalRegisterRelationshipCounterResponse {},
        ))
    }

    async fn experimental_count_relationships(
        &self,
        request: Request<pb::ExperimentalCountRelationshipsRequest>,
    ) -> Result<Response<pb::ExperimentalCountRelationshipsResponse>, Status> {
        Ok(Response::new(
            self.counters.count(request.into_inner()).await?,
        ))
    }

    async fn experimental_unregister_relationship_counter(
        &self,
        request: Request<pb::ExperimentalUnregisterRelationshipCounterRequest>,
    ) -> Result<Response<pb::ExperimentalUnregisterRelationshipCounterResponse>, Status> {
        self.counters.unregister(request.into_inner()).await?;
        Ok(Response::new(
            pb::ExperimentalUnregisterRelationshipCounterResponse {},
        ))
    }
}
