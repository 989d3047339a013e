//! The connection: one tonic channel shared by every call (HTTP/2
//! multiplexed, reconnecting), a bearer key, a deadline per call and
//! retries for idempotent calls.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::error::ClientError;
use crate::pb;
use crate::retry::{with_retries, RetryPolicy};
use crate::types::{
    AnswerSource, Check, CheckAnswer, Consistency, Filter, Object, Permissionship, Relationship,
    ServerCheck, Subject, Update,
};
use crate::zookie::Zookie;

/// How to reach and talk to a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port` of the gRPC port.
    pub endpoint: String,
    /// The admin key or a tenant key, sent as `authorization: Bearer <key>`.
    pub bearer_key: Option<String>,
    /// The deadline of each unary call (and of a whole read or lookup
    /// stream). Default = 5s
    pub timeout: Duration,
    /// How long connecting may take. Default = 2s
    pub connect_timeout: Duration,
    /// Retries of idempotent calls.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults for `endpoint` (`http://127.0.0.1:50051` or `127.0.0.1:50051`).
    pub fn new(endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        let endpoint = if endpoint.contains("://") {
            endpoint
        } else {
            format!("http://{endpoint}")
        };
        ClientConfig {
            endpoint,
            bearer_key: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
        }
    }

    /// The same with a bearer key.
    pub fn with_bearer_key(mut self, key: impl Into<String>) -> Self {
        self.bearer_key = Some(key.into());
        self
    }
}

/// A Verdict client. Cheap to clone: clones share the channel.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    auth: Option<MetadataValue<Ascii>>,
    timeout: Duration,
    retry: RetryPolicy,
}

impl Client {
    /// A client for `config`. Connects lazily (the first call connects,
    /// a broken connection is re-established by later calls), so a server
    /// that is down now does not make this fail.
    ///
    /// # Errors
    /// A malformed endpoint or bearer key.
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let channel = Endpoint::from_shared(config.endpoint)?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        let auth = config
            .bearer_key
            .map(|k| {
                format!("Bearer {k}")
                    .parse()
                    .map_err(|_| ClientError::BadKey)
            })
            .transpose()?;
        Ok(Client {
            channel,
            auth,
            timeout: config.timeout,
            retry: config.retry,
        })
    }

    /// A request with the key and the call's deadline.
    fn request<T>(&self, message: T, deadline: bool) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(auth) = &self.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        if deadline {
            request.set_timeout(self.timeout);
        }
        request
    }

    fn permissions(&self) -> pb::permission_service_client::PermissionServiceClient<Channel> {
        pb::permission_service_client::PermissionServiceClient::new(self.channel.clone())
    }

    fn relationships(&self) -> pb::relationship_service_client::RelationshipServiceClient<Channel> {
        pb::relationship_service_client::RelationshipServiceClient::new(self.channel.clone())
    }

    /// Asks the server (retried). Never uses a local cache.
    ///
    /// # Errors
    /// The server's error status after the retries, or an answer without
    /// a permissionship.
    #[tracing::instrument(skip_all, fields(tenant, check = %check))]
    pub async fn check(
        &self,
        tenant: &str,
        check: &Check,
        consistency: &Consistency,
    ) -> Result<CheckAnswer, ClientError> {
        let answer = self
            .check_on_server(tenant, check, consistency, false)
            .await?;
        Ok(CheckAnswer {
            permissionship: answer.permissionship,
            checked_at: Some(answer.checked_at),
            source: AnswerSource::Server,
        })
    }

    /// A server check, asking for the footprint when `with_footprint`.
    pub(crate) async fn check_on_server(
        &self,
        tenant: &str,
        check: &Check,
        consistency: &Consistency,
        with_footprint: bool,
    ) -> Result<ServerCheck, ClientError> {
        let message = pb::CheckRequest {
            tenant: tenant.to_string(),
            consistency: Some(consistency.to_pb()),
            resource: Some(check.resource.to_pb()),
            permission: check.permission.clone(),
            subject: Some(check.subject.to_pb()),
            context: None,
            with_trace: false,
            with_footprint,
        };
        let response = with_retries(self.retry, || {
            let request = self.request(message.clone(), true);
            let mut client = self.permissions();
            async move { client.check(request).await }
        })
        .await?
        .into_inner();
        let permissionship = Permissionship::from_pb(response.permissionship)
            .ok_or(ClientError::Missing("permissionship"))?;
        let checked_at = Zookie::from_pb(response.checked_at.as_ref())
            .ok_or(ClientError::Missing("checked_at"))?;
        Ok(ServerCheck {
            permissionship,
            checked_at,
            footprint: response.footprint.map(|f| (f.tenant, f.keys)),
        })
    }

    /// Applies `updates` atomically; the zookie of the new revision. Not
    /// retried (a write is not idempotent in general).
    ///
    /// # Errors
    /// The server's error status.
    #[tracing::instrument(skip_all, fields(tenant, updates = updates.len()))]
    pub async fn write(&self, tenant: &str, updates: &[Update]) -> Result<Zookie, ClientError> {
        let request = self.request(
            pb::WriteRelationshipsRequest {
                tenant: tenant.to_string(),
                updates: updates.iter().map(Update::to_pb).collect(),
                preconditions: Vec::new(),
            },
            true,
        );
        let response = self.relationships().write_relationships(request).await?;
        Zookie::from_pb(response.get_ref().written_at.as_ref())
            .ok_or(ClientError::Missing("written_at"))
    }

    /// Deletes what `filter` matches; the zookie and how many were
    /// deleted. Not retried.
    ///
    /// # Errors
    /// The server's error status.
    #[tracing::instrument(skip_all, fields(tenant))]
    pub async fn delete(
        &self,
        tenant: &str,
        filter: &Filter,
    ) -> Result<(Zookie, u64), ClientError> {
        let request = self.request(
            pb::DeleteRelationshipsRequest {
                tenant: tenant.to_string(),
                filter: Some(filter.to_pb()),
                preconditions: Vec::new(),
                limit: 0,
                dry_run: false,
            },
            true,
        );
        let response = self
            .relationships()
            .delete_relationships(request)
            .await?
            .into_inner();
        let zookie = Zookie::from_pb(response.deleted_at.as_ref())
            .ok_or(ClientError::Missing("deleted_at"))?;
        Ok((zookie, response.deleted))
    }

    /// The relationships `filter` matches (retried; the whole stream is
    /// one attempt).
    ///
    /// # Errors
    /// The server's error status.
    #[tracing::instrument(skip_all, fields(tenant))]
    pub async fn read(
        &self,
        tenant: &str,
        filter: &Filter,
        consistency: &Consistency,
    ) -> Result<Vec<Relationship>, ClientError> {
        let message = pb::ReadRelationshipsRequest {
            tenant: tenant.to_string(),
            consistency: Some(consistency.to_pb()),
            filter: Some(filter.to_pb()),
            limit: 0,
            cursor: String::new(),
        };
        let items = with_retries(self.retry, || {
            let request = self.request(message.clone(), true);
            let mut client = self.relationships();
            async move {
                let mut stream = client.read_relationships(request).await?.into_inner();
                let mut out = Vec::new();
                while let Some(item) = stream.message().await? {
                    out.push(item);
                }
                Ok::<_, tonic::Status>(out)
            }
        })
        .await?;
        Ok(items
            .iter()
            .filter_map(|r| r.relationship.as_ref().and_then(Relationship::from_pb))
            .collect())
    }

    /// The ids of the resources of `resource_type` on which `subject` has
    /// `permission` (allowed or conditional), retried.
    ///
    /// # Errors
    /// The server's error status.
    #[tracing::instrument(skip_all, fields(tenant, resource_type, permission))]
    pub async fn lookup_resources(
        &self,
        tenant: &str,
        resource_type: &str,
        permission: &str,
        subject: &Subject,
        consistency: &Consistency,
    ) -> Result<Vec<String>, ClientError> {
        let message = pb::LookupResourcesRequest {
            tenant: tenant.to_string(),
            consistency: Some(consistency.to_pb()),
            resource_type: resource_type.to_string(),
            permission: permission.to_string(),
            subject: Some(subject.to_pb()),
            context: None,
            limit: 0,
            cursor: String::new(),
        };
        with_retries(self.retry, || {
            let request = self.request(message.clone(), true);
            let mut client = self.permissions();
            async move {
                let mut stream = client.lookup_resources(request).await?.into_inner();
                let mut out = Vec::new();
                while let Some(item) = stream.message().await? {
                    out.push(item.resource_id);
                }
                Ok::<_, tonic::Status>(out)
            }
        })
        .await
        .map_err(ClientError::from)
    }

    /// The ids of the subjects of `subject_type` that have `permission`
    /// on `resource`, retried.
    ///
    /// # Errors
    /// The server's error status.
    #[tracing::instrument(skip_all, fields(tenant, resource = %resource, permission))]
    pub async fn lookup_subjects(
        &self,
        tenant: &str,
        resource: &Object,
        permission: &str,
        subject_type: &str,
        consistency: &Consistency,
    ) -> Result<Vec<String>, ClientError> {
        let message = pb::LookupSubjectsRequest {
            tenant: tenant.to_string(),
            consistency: Some(consistency.to_pb()),
            resource: Some(resource.to_pb()),
            permission: permission.to_string(),
            subject_type: subject_type.to_string(),
            optional_subject_relation: String::new(),
            context: None,
        };
        with_retries(self.retry, || {
            let request = self.request(message.clone(), true);
            let mut client = self.permissions();
            async move {
                let mut stream = client.lookup_subjects(request).await?.into_inner();
                let mut out = Vec::new();
                while let Some(item) = stream.message().await? {
                    out.push(item.subject_id);
                }
                Ok::<_, tonic::Status>(out)
            }
        })
        .await
        .map_err(ClientError::from)
    }

    /// Stores a new schema version; its zookie. Not retried.
    ///
    /// # Errors
    /// The server's error status (compile errors are INVALID_ARGUMENT).
    pub async fn write_schema(&self, tenant: &str, schema: &str) -> Result<Zookie, ClientError> {
        let request = self.request(
            pb::WriteSchemaRequest {
                tenant: tenant.to_string(),
                schema: schema.to_string(),
                expected_version: 0,
                comment: String::new(),
            },
            true,
        );
        let response = pb::schema_service_client::SchemaServiceClient::new(self.channel.clone())
            .write_schema(request)
            .await?;
        Zookie::from_pb(response.get_ref().written_at.as_ref())
            .ok_or(ClientError::Missing("written_at"))
    }

    /// Creates a tenant (admin key). Not retried.
    ///
    /// # Errors
    /// The server's error status.
    pub async fn create_tenant(&self, name: &str) -> Result<(), ClientError> {
        let request = self.request(
            pb::CreateTenantRequest {
                name: name.to_string(),
            },
            true,
        );
        pb::tenant_service_client::TenantServiceClient::new(self.channel.clone())
            .create_tenant(request)
            .await?;
        Ok(())
    }

    /// Opens the tenant's change feed after `start` (or from now). No
    /// deadline: the stream lives until it breaks.
    ///
    /// # Errors
    /// The server's error status.
    pub async fn watch(
        &self,
        tenant: &str,
        start: Option<&Zookie>,
    ) -> Result<tonic::Streaming<pb::WatchResponse>, ClientError> {
        let request = self.request(
            pb::WatchRequest {
                tenant: tenant.to_string(),
                optional_start: start.map(Zookie::to_pb),
                optional_resource_types: Vec::new(),
            },
            false,
        );
        Ok(
            pb::watch_service_client::WatchServiceClient::new(self.channel.clone())
                .watch(request)
                .await?
                .into_inner(),
        )
    }
}
