//! KeyService (admin): create, list and revoke tenant API keys (created
//! and revoked through Raft, so on every node).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::error::ApiError;
use super::pb;
use crate::server::key_commit;
use crate::server::keys::KeyRecord;
use crate::server::state::AppState;

/// The KeyService implementation.
#[derive(Debug, Clone)]
pub struct KeyApi {
    state: Arc<AppState>,
}

impl KeyApi {
    /// A service over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        KeyApi { state }
    }
}

fn key_to_pb(record: KeyRecord) -> pb::ApiKey {
    pb::ApiKey {
        id: record.id,
        tenant: record.tenant,
        created: record.created,
    }
}

#[tonic::async_trait]
impl pb::key_service_server::KeyService for KeyApi {
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let req = request.into_inner();
        if req.tenant.is_empty() {
            return Err(ApiError::invalid("tenant", "is required").into());
        }
        // Whether the tenant exists is decided where the key is applied (this
        // node may not have applied a tenant just created elsewhere).
        let tenant = verdict_storage::Tenant::new(&req.tenant)
            .map_err(|e| ApiError::invalid("tenant", e))?;
        let (record, token) = key_commit::create_key(&self.state, tenant.as_str()).await?;
        tracing::info!(key_id = %record.id, tenant = %record.tenant, "api key created");
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(key_to_pb(record)),
            token,
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let req = request.into_inner();
        let tenant = (!req.tenant.is_empty()).then_some(req.tenant.as_str());
        Ok(Response::new(pb::ListKeysResponse {
            keys: self
                .state
                .keys
                .list(tenant)
                .into_iter()
                .map(key_to_pb)
                .collect(),
        }))
    }

    #[tracing::instrument(skip_all, fields(id = %request.get_ref().id))]
    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::RevokeKeyResponse>, Status> {
        let req = request.into_inner();
        if req.id.is_empty() {
            return Err(ApiError::invalid("id", "is required").into());
        }
        let record = key_commit::revoke_key(&self.state, &req.id).await?;
        tracing::info!(key_id = %record.id, tenant = %record.tenant, "api key revoked");
        Ok(Response::new(pb::RevokeKeyResponse {
            key: Some(key_to_pb(record)),
        }))
    }
}
