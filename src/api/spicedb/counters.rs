//! SpiceDB's relationship counters (ExperimentalService
//! RegisterRelationshipCounter / CountRelationships /
//! UnregisterRelationshipCounter). A counter is a name and a
//! `RelationshipFilter`, stored in its protobuf encoding and replicated
//! through Raft (`server::counter_commit`). Its value is computed when
//! read: the live (unexpired) relationships matching the filter, by a
//! filtered scan at the fully consistent revision — exact, never "still
//! calculating".

use std::sync::Arc;

use prost::Message as _;
use tonic::Code;
use verdict_storage::{RelationStore as _, Timestamp, TupleReader as _};

use super::auth;
use super::convert::{
    filter_against_schema, filter_from_pb, required, validate_relation, zedtoken,
};
use super::error::{SpiceError, SpiceResult};
use super::pb::{self, ErrorReason};
use crate::api::error::ApiError;
use crate::server::consistency::Consistency;
use crate::server::counter_commit;
use crate::server::error::Reason;
use crate::server::state::AppState;

/// Tuples read per scan page while counting.
const PAGE: usize = 1000;

/// The counters' implementation, shared by the ExperimentalService RPCs.
#[derive(Debug, Clone)]
pub struct CountersApi {
    state: Arc<AppState>,
}

/// `name` as SpiceDB validates it: present, and a relation-like name.
fn validate_name(name: &str) -> SpiceResult<()> {
    if name.is_empty() {
        return Err(SpiceError::plain(
            Code::InvalidArgument,
            "name must be provided",
        ));
    }
    validate_relation("name", name, true)
}

fn already_registered(name: &str) -> SpiceError {
    SpiceError::reasoned(
        Code::FailedPrecondition,
        ErrorReason::CounterAlreadyRegistered,
        format!("counter with name `{name}` already registered"),
        &[("counter_name", name)],
    )
}

fn not_registered(name: &str) -> SpiceError {
    SpiceError::reasoned(
        Code::FailedPrecondition,
        ErrorReason::CounterNotRegistered,
        format!("counter with name `{name}` not found"),
        &[("counter_name", name)],
    )
}

impl CountersApi {
    /// The counters over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        CountersApi { state }
    }

    /// Registers counter `req.name`.
    pub async fn register(
        &self,
        req: pb::ExperimentalRegisterRelationshipCounterRequest,
    ) -> SpiceResult<()> {
        validate_name(&req.name)?;
        let pb_filter = required(req.relationship_filter.as_ref(), "relationship_filter")?;
        let filter = filter_from_pb(Some(pb_filter), "relationship_filter")?;
        let tenant = self.state.tenant(&auth::tenant_name())?;
        let applied = self.state.store.applied_revision();
        match self.state.engine_at(&tenant, applied) {
            Ok(entry) => filter_against_schema(entry.engine.schema(), &filter)?,
            Err(ApiError::NoSchema(_)) => {
                let t = filter.resource_type.clone().unwrap_or_default();
                return Err(SpiceError::unknown_definition(&t));
            }
            Err(e) => return Err(e.into()),
        }
        counter_commit::register_counter(
            &self.state,
            &tenant,
            &req.name,
            pb_filter.encode_to_vec(),
        )
        .await
        .map_err(|e| match e.reason_kind() {
            Reason::AlreadyExists => already_registered(&req.name),
            _ => e.into(),
        })?;
        Ok(())
    }

    /// Removes counter `req.name`.
    pub async fn unregister(
        &self,
        req: pb::ExperimentalUnregisterRelationshipCounterRequest,
    ) -> SpiceResult<()> {
        validate_name(&req.name)?;
        let tenant = self.state.tenant(&auth::tenant_name())?;
        counter_commit::unregister_counter(&self.state, &tenant, &req.name)
            .await
            .map_err(|e| match e.reason_kind() {
                Reason::PreconditionFailed => not_registered(&req.name),
                _ => e.into(),
            })?;
        Ok(())
    }

    /// The value of counter `req.name` now.
    pub async fn count(
        &self,
        req: pb::ExperimentalCountRelationshipsRequest,
    ) -> SpiceResult<pb::ExperimentalCountRelationshipsResponse> {
        validate_name(&req.name)?;
        let tenant = self.state.tenant(&auth::tenant_name())?;
        let revision = self
            .state
            .read_revision(Consistency::FullyConsistent)
            .await?;
        let Some(bytes) = self.state.store.counter(&tenant, &req.name)? else {
            return Err(not_registered(&req.name));
        };
        let pb_filter = pb::RelationshipFilter::decode(bytes.as_slice()).map_err(|e| {
            SpiceError::plain(Code::Internal, format!("stored counter filter: {e}"))
        })?;
        let filter = filter_from_pb(Some(&pb_filter), "relationship_filter")?;
        let state = self.state.clone();
        let count = tokio::task::spawn_blocking(move || -> SpiceResult<u64> {
            let snapshot = state.store.snapshot(&tenant, revision)?;
            let now = Timestamp::now();
            let mut count = 0u64;
            let mut cursor = None;
            loop {
                let page = snapshot.scan(&filter, cursor.as_ref(), PAGE)?;
                count += page
                    .tuples
                    .iter()
                    .filter(|t| t.expiration.is_none_or(|e| e > now))
                    .count() as u64;
                match page.cursor {
                    Some(next) => cursor = Some(next),
                    None => return Ok(count),
                }
            }
        })
        .await
        .map_err(|e| SpiceError::plain(Code::Internal, format!("count task failed: {e}")))??;
        Ok(pb::ExperimentalCountRelationshipsResponse {
            counter_result: Some(
                pb::experimental_count_relationships_response::CounterResult::ReadCounterValue(
                    pb::ReadCounterValue {
                        relationship_count: count,
                        read_at: Some(zedtoken(&self.state.zookies, revision)),
                    },
                ),
            ),
        })
    }
}
