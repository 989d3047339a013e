//! TenantService (admin): create, list and delete tenants.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use verdict_storage::Tenant;

use super::error::ApiError;
use super::pb;
use crate::server::state::AppState;

/// The TenantService implementation.
#[derive(Debug, Clone)]
pub struct TenantApi {
    state: Arc<AppState>,
}

impl TenantApi {
    /// A service over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        TenantApi { state }
    }
}

#[tonic::async_trait]
impl pb::tenant_service_server::TenantService for TenantApi {
    #[tracing::instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(ApiError::invalid("name", "is required").into());
        }
        self.state.committer.create_tenant(&req.name).await?;
        Ok(Response::new(pb::CreateTenantResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_tenants(
        &self,
        _request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        Ok(Response::new(pb::ListTenantsResponse {
            names: self.state.tenants.list(),
        }))
    }

    /// Deletes every relationship of the tenant (one delete-by-filter over
    /// all of its tuples, whatever their type) and ends its schema with a
    /// tombstone version, at one revision; then removes it from the
    /// registry. A tenant later created under the same name starts with no
    /// schema and no relationships.
    #[tracing::instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(ApiError::invalid("name", "is required").into());
        }
        if req.confirm != req.name {
            return Err(ApiError::invalid(
                "confirm",
                format!(
                    "must repeat the tenant name `{}` exactly: deleting a tenant removes all of its data",
                    req.name
                ),
            )
            .into());
        }
        if req.name == Tenant::default_tenant().as_str() {
            return Err(ApiError::FailedPrecondition(
                "the default tenant cannot be deleted".into(),
            )
            .into());
        }
        let tenant = self.state.tenants.get(&req.name, "name")?;
        let outcome = self.state.committer.delete_tenant(&tenant).await?;
        // The state machine revoked the tenant's keys on every node.
        crate::server::key_commit::wait_applied(&self.state, outcome.revision).await;
        tracing::info!(
            tenant = tenant.as_str(),
            deleted = outcome.changes,
            "tenant deleted"
        );
        Ok(Response::new(pb::DeleteTenantResponse {
            deleted_relationships: outcome.changes as u64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pb::relationship_service_server::RelationshipService as _;
    use crate::api::pb::schema_service_server::SchemaService as _;
    use crate::api::pb::tenant_service_server::TenantService as _;
    use crate::api::{RelationshipApi, SchemaApi};
    use crate::server::config::ServerSettings;
    use tonic::Code;
    use verdict_storage::{RelationStore, TupleReader};

    const SCHEMA: &str =
        "definition user {}\ndefinition document {\n    relation viewer: user\n}\n";

    #[tokio::test]
    async fn create_list_and_delete_with_confirmation() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(
            AppState::open(ServerSettings::for_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        let api = TenantApi::new(state.clone());
        let create = |name: &str| {
            Request::new(pb::CreateTenantRequest {
                name: name.to_string(),
            })
        };
        api.create_tenant(create("acme")).await.unwrap();
        assert_eq!(
            api.create_tenant(create("acme")).await.unwrap_err().code(),
            Code::AlreadyExists
        );
        let err = api.create_tenant(create("Not Valid")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("`name`"), "{err}");
        let names = api
            .list_tenants(Request::new(pb::ListTenantsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, vec!["acme", "default"]);

        // Give acme (and default) a schema and some relationships.
        for tenant in ["acme", "default"] {
            SchemaApi::new(state.clone())
                .write_schema(Request::new(pb::WriteSchemaRequest {
                    tenant: tenant.into(),
                    schema: SCHEMA.into(),
                    ..Default::default()
                }))
                .await
                .unwrap();
            let updates = (0..3)
                .map(|i| pb::RelationshipUpdate {
                    operation: pb::relationship_update::Operation::Touch as i32,
                    relationship: Some(crate::api::convert::tuple_to_pb(
                        &verdict_storage::Tuple::parse(&format!("document:d{i}#viewer@user:u"))
                            .unwrap(),
                    )),
                })
                .collect();
            RelationshipApi::new(state.clone())
                .write_relationships(Request::new(pb::WriteRelationshipsRequest {
                    tenant: tenant.into(),
                    updates,
                    ..Default::default()
                }))
                .await
                .unwrap();
        }

        let delete = |name: &str, confirm: &str| {
            Request::new(pb::DeleteTenantRequest {
                name: name.into(),
                confirm: confirm.into(),
            })
        };
        let err = api.delete_tenant(delete("acme", "acm")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("`confirm`"), "{err}");
        assert!(state.tenants.get("acme", "tenant").is_ok());
        let err = api
            .delete_tenant(delete("default", "default"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        let err = api.delete_tenant(delete("nope", "nope")).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);

        let acme = state.tenants.get("acme", "tenant").unwrap();
        let deleted = api
            .delete_tenant(delete("acme", "acme"))
            .await
            .unwrap()
            .into_inner()
            .deleted_relationships;
        assert_eq!(deleted, 3);
        assert_eq!(
            state.tenants.get("acme", "tenant").unwrap_err().to_string(),
            "tenant `acme` not found"
        );
        let count = |tenant: &Tenant| {
            state
                .store
                .snapshot(tenant, state.store.applied_revision())
                .unwrap()
                .scan(&verdict_storage::TupleFilter::default(), None, 100)
                .unwrap()
                .tuples
                .len()
        };
        assert_eq!(count(&acme), 0);
        assert_eq!(count(&Tenant::default_tenant()), 3);
        let names = api
            .list_tenants(Request::new(pb::ListTenantsRequest {}))
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, vec!["default"]);
    }
}
