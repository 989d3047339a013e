//! The 19 `openfga.v1` calls over the node, transport-free: each takes the
//! generated request message and answers the response message or an
//! [`FgaError`]. The gRPC service and the HTTP routes both call these.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Map, Value};
use verdict_storage::{
    ChangeKind, Cursor, IdFilter, RelationStore, Revision, SchemaVersionRecord, StoredSchema,
    SubjectRelationFilter, Tenant, Timestamp, TupleFilter, TupleReader, WriteBatch,
};

use super::error::{FgaError, FgaResult};
use super::ids;
use super::model::{self, Meta, Model};
use super::pb;
use super::tuples;
use crate::engine::{CheckRequest, Engine, ExpandKind, ExpandNode, Outcome};
use crate::server::consistency::Consistency;
use crate::server::error::NodeError;
use crate::server::request_context::{self, Principal};
use crate::server::state::AppState;

/// Most tuples one Write may carry (writes and deletes together).
pub const MAX_TUPLES_PER_WRITE: usize = 100;
/// Most checks in one BatchCheck.
pub const MAX_CHECKS_PER_BATCH: usize = 50;
/// ListObjects / ListUsers: most results, and the deadline.
pub const MAX_LIST_RESULTS: usize = 1000;
/// ListObjects / ListUsers deadline.
pub const LIST_DEADLINE: Duration = Duration::from_secs(3);

/// The API over one node.
#[derive(Debug, Clone)]
pub struct Fga {
    state: Arc<AppState>,
}

/// What a query evaluates against.
struct Resolved {
    tenant: Tenant,
    revision: Revision,
    model: Model,
    engine: Engine,
}

fn consistency(pref: i32) -> Consistency {
    // OpenFGA reads its database directly: the default must see the
    // caller's own writes, so only an explicit MINIMIZE_LATENCY may lag.
    match pb::ConsistencyPreference::try_from(pref) {
        Ok(pb::ConsistencyPreference::MinimizeLatency) => Consistency::MinimizeLatency,
        _ => Consistency::FullyConsistent,
    }
}

fn context_map(s: Option<&pbjson_types::Struct>) -> Map<String, Value> {
    match s.and_then(|s| serde_json::to_value(s).ok()) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// SEAM (issue 19 part 2, `fga-engine`): contextual tuples need the
/// engine's overlay; until it lands a request carrying any is refused.
fn no_contextual(tuples: &[pb::TupleKey]) -> FgaResult<()> {
    if tuples.is_empty() {
        Ok(())
    } else {
        Err(FgaError::field(
            "contextual_tuples",
            "contextual tuples are not supported by Verdict yet",
        ))
    }
}

fn contextual(ct: Option<&pb::ContextualTupleKeys>) -> FgaResult<()> {
    no_contextual(ct.map_or(&[], |c| c.tuple_keys.as_slice()))
}

async fn blocking<T, F>(work: F) -> FgaResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> FgaResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FgaError::internal(format!("evaluation task failed: {e}")))?
}

fn principal() -> Option<Principal> {
    request_context::current().map(|c| c.principal.clone())
}

fn admin_only(what: &str) -> FgaResult<()> {
    match principal() {
        Some(Principal::Tenant { key_id, .. }) => Err(FgaError::forbidden(format!(
            "{what} needs the admin key; key `{key_id}` is scoped to one store"
        ))),
        _ => Ok(()),
    }
}

fn valid_store_name(name: &str) -> bool {
    (3..=64).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || ".-/^_&@".contains(c))
}

fn model_of(s: &StoredSchema) -> Option<pb::AuthorizationModel> {
    match Meta::from_comment(&s.record.comment) {
        Some(Meta::OpenfgaModel(m)) => Some(m),
        _ => None,
    }
}

impl Fga {
    /// The API over `state`.
    pub fn new(state: Arc<AppState>) -> Fga {
        Fga { state }
    }

    /// The tenant of `store_id`, if the caller may use it.
    fn tenant(&self, store_id: &str) -> FgaResult<Tenant> {
        let name = ids::tenant_of(store_id)?;
        self.state.tenant(&name).map_err(|e| match e {
            NodeError::TenantNotFound(_) => {
                FgaError::store_not_found(format!("store `{store_id}` not found"))
            }
            other => other.into(),
        })
    }

    fn history(&self, tenant: &Tenant) -> FgaResult<Vec<StoredSchema>> {
        Ok(self
            .state
            .store
            .schema_history(tenant)
            .map_err(NodeError::from)?)
    }

    /// Models of `tenant`, newest first.
    fn models(&self, tenant: &Tenant) -> FgaResult<Vec<(StoredSchema, pb::AuthorizationModel)>> {
        let mut out: Vec<_> = self
            .history(tenant)?
            .into_iter()
            .filter_map(|s| model_of(&s).map(|m| (s, m)))
            .collect();
        out.reverse();
        Ok(out)
    }

    /// The model a request evaluates under (`model_id`, else the latest)
    /// and the revision it reads.
    async fn resolve(&self, store_id: &str, model_id: &str, pref: i32) -> FgaResult<Resolved> {
        let tenant = self.tenant(store_id)?;
        let revision = self.state.read_revision(consistency(pref)).await?;
        if model_id.is_empty() {
            let current = self
                .state
                .store
                .schema_at(&tenant, revision)
                .map_err(NodeError::from)?;
            let Some(pbm) = current.as_ref().and_then(model_of) else {
                return Err(FgaError::latest_model_not_found(format!(
                    "No authorization models found for store '{store_id}'"
                )));
            };
            let entry = self.state.engine_at(&tenant, revision)?;
            return Ok(Resolved {
                tenant,
                revision,
                model: Model::new(pbm),
                engine: entry.engine.clone(),
            });
        }
        if !ids::is_ulid(model_id) {
            return Err(FgaError::field(
                "authorization_model_id",
                "value does not match regex pattern \"^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}$\"",
            ));
        }
        let found = self
            .models(&tenant)?
            .into_iter()
            .find(|(_, m)| m.id == model_id);
        let Some((stored, pbm)) = found else {
            return Err(FgaError::model_not_found(format!(
                "Authorization Model '{model_id}' not found"
            )));
        };
        let entry = self.state.engine_at(&tenant, stored.revision)?;
        Ok(Resolved {
            tenant,
            revision,
            model: Model::new(pbm),
            engine: entry.engine.clone(),
        })
    }

    // ---- stores ----

    fn store_name(&self, tenant: &Tenant) -> FgaResult<String> {
        Ok(self
            .history(tenant)?
            .iter()
            .find_map(|s| match Meta::from_comment(&s.record.comment) {
                Some(Meta::OpenfgaStore { name }) => Some(name),
                _ => None,
            })
            .unwrap_or_else(|| tenant.as_str().to_string()))
    }

    fn store(&self, tenant: &Tenant) -> FgaResult<pb::Store> {
        let id = ids::store_of(tenant.as_str());
        let created = ids::ulid_time(&id);
        Ok(pb::Store {
            name: self.store_name(tenant)?,
            created_at: created,
            updated_at: created,
            deleted_at: None,
            id,
        })
    }

    /// CreateStore.
    pub async fn create_store(
        &self,
        req: pb::CreateStoreRequest,
    ) -> FgaResult<pb::CreateStoreResponse> {
        if !valid_store_name(&req.name) {
            return Err(FgaError::field(
                "CreateStoreRequest.Name",
                "value does not match regex pattern \"^[a-zA-Z0-9\\\\s.\\\\-/^_&@]{3,64}$\"",
            ));
        }
        admin_only("CreateStore")?;
        let id = ids::new_ulid().to_string();
        let name = ids::tenant_of(&id)?;
        self.state.committer.create_tenant(&name).await?;
        let tenant = self.state.tenants.get(&name, "store_id")?;
        let record = SchemaVersionRecord {
            version: 1,
            text: model::STORE_TEXT.to_string(),
            comment: Meta::OpenfgaStore {
                name: req.name.clone(),
            }
            .to_comment(),
            author: author(),
        };
        self.state
            .committer
            .propose(&tenant, WriteBatch::new().put_schema(record))
            .await?;
        let created = ids::ulid_time(&id);
        Ok(pb::CreateStoreResponse {
            id,
            name: req.name,
            created_at: created,
            updated_at: created,
        })
    }

    /// GetStore.
    pub async fn get_store(&self, req: pb::GetStoreRequest) -> FgaResult<pb::GetStoreResponse> {
        let tenant = self.tenant(&req.store_id)?;
        let s = self.store(&tenant)?;
        Ok(pb::GetStoreResponse {
            id: s.id,
            name: s.name,
            created_at: s.created_at,
            updated_at: s.updated_at,
            deleted_at: None,
        })
    }

    /// ListStores (in tenant order; a tenant key sees its own store).
    pub async fn list_stores(
        &self,
        req: pb::ListStoresRequest,
    ) -> FgaResult<pb::ListStoresResponse> {
        let page = ids::page_size(req.page_size.map(|v| v.value), 50, 100)?;
        let after = ids::decode_token(&req.continuation_token)?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let names = match principal() {
            Some(Principal::Tenant { tenant, .. }) => vec![tenant],
            _ => self.state.tenants.list(),
        };
        let mut stores = Vec::new();
        let mut token = String::new();
        for name in names {
            if after.as_ref().is_some_and(|a| name.as_str() <= a.as_str()) {
                continue;
            }
            let Ok(tenant) = self.state.tenants.get(&name, "store_id") else {
                continue;
            };
            let store = self.store(&tenant)?;
            if !req.name.is_empty() && store.name != req.name {
                continue;
            }
            if stores.len() == page {
                token = stores
                    .last()
                    .map(|s: &pb::Store| ids::encode_token(s.id.to_ascii_lowercase().as_bytes()))
                    .unwrap_or_default();
                break;
            }
            stores.push(store);
        }
        Ok(pb::ListStoresResponse {
            stores,
            continuation_token: token,
        })
    }

    /// DeleteStore: removes the tenant and its data (OpenFGA keeps them).
    pub async fn delete_store(
        &self,
        req: pb::DeleteStoreRequest,
    ) -> FgaResult<pb::DeleteStoreResponse> {
        admin_only("DeleteStore")?;
        let tenant = self.tenant(&req.store_id)?;
        self.state.committer.delete_tenant(&tenant).await?;
        Ok(pb::DeleteStoreResponse {})
    }

    // ---- models ----

    /// WriteAuthorizationModel: a new schema version with a new ULID.
    pub async fn write_model(
        &self,
        req: pb::WriteAuthorizationModelRequest,
    ) -> FgaResult<pb::WriteAuthorizationModelResponse> {
        let tenant = self.tenant(&req.store_id)?;
        let id = ids::new_ulid().to_string();
        let pbm = pb::AuthorizationModel {
            id: id.clone(),
            schema_version: req.schema_version,
            type_definitions: req.type_definitions,
            conditions: req.conditions,
        };
        model::validate(&pbm)?;
        let m = Model::new(pbm);
        let text = model::to_spicedb(&m)?;
        crate::schema::compile(&text, &crate::schema::SchemaLimits::default())
            .map_err(|e| FgaError::invalid_model(e.to_string()))?;
        let comment = Meta::OpenfgaModel(m.pb).to_comment();
        let who = author();
        let t = tenant.clone();
        self.state
            .committer
            .propose_planned(&tenant, move |store, applied| {
                let version = store
                    .schema_at(&t, applied)?
                    .map_or(0, |s| s.record.version);
                let batch = WriteBatch::new().put_schema(SchemaVersionRecord {
                    version: version + 1,
                    text: text.clone(),
                    comment: comment.clone(),
                    author: who.clone(),
                });
                Ok((batch, ()))
            })
            .await?;
        Ok(pb::WriteAuthorizationModelResponse {
            authorization_model_id: id,
        })
    }

    /// ReadAuthorizationModels, newest first.
    pub async fn read_models(
        &self,
        req: pb::ReadAuthorizationModelsRequest,
    ) -> FgaResult<pb::ReadAuthorizationModelsResponse> {
        let tenant = self.tenant(&req.store_id)?;
        let page = ids::page_size(req.page_size.map(|v| v.value), 50, 100)?;
        let below: Option<u64> =
            match ids::decode_token(&req.continuation_token)? {
                None => None,
                Some(b) => Some(String::from_utf8_lossy(&b).parse().map_err(|_| {
                    FgaError::invalid_continuation_token("Invalid continuation token")
                })?),
            };
        let mut models = Vec::new();
        let mut token = String::new();
        let mut last_version = 0u64;
        for (s, m) in self.models(&tenant)? {
            if below.is_some_and(|b| s.record.version >= b) {
                continue;
            }
            if models.len() == page {
                token = ids::encode_token(last_version.to_string().as_bytes());
                break;
            }
            last_version = s.record.version;
            models.push(m);
        }
        Ok(pb::ReadAuthorizationModelsResponse {
            authorization_models: models,
            continuation_token: token,
        })
    }

    /// ReadAuthorizationModel.
    pub async fn read_model(
        &self,
        req: pb::ReadAuthorizationModelRequest,
    ) -> FgaResult<pb::ReadAuthorizationModelResponse> {
        let tenant = self.tenant(&req.store_id)?;
        let found = self
            .models(&tenant)?
            .into_iter()
            .find(|(_, m)| m.id == req.id)
            .map(|(_, m)| m);
        match found {
            Some(m) => Ok(pb::ReadAuthorizationModelResponse {
                authorization_model: Some(m),
            }),
            None => Err(FgaError::model_not_found(format!(
                "Authorization Model '{}' not found",
                req.id
            ))),
        }
    }

    // ---- tuples ----

    /// Write: atomic, at most [`MAX_TUPLES_PER_WRITE`] tuples.
    pub async fn write(&self, req: pb::WriteRequest) -> FgaResult<pb::WriteResponse> {
        let (writes, on_duplicate) = req
            .writes
            .map(|w| (w.tuple_keys, w.on_duplicate))
            .unwrap_or_default();
        let (deletes, on_missing) = req
            .deletes
            .map(|d| (d.tuple_keys, d.on_missing))
            .unwrap_or_default();
        if writes.is_empty() && deletes.is_empty() {
            return Err(FgaError::invalid_write_input(
                "Invalid input. Make sure you provide at least one write or delete",
            ));
        }
        let total = writes.len() + deletes.len();
        if total > MAX_TUPLES_PER_WRITE {
            return Err(FgaError::exceeded_entity_limit(format!(
                "The number of write operations exceeds the allowed limit of {MAX_TUPLES_PER_WRITE} (got {total})"
            )));
        }
        let ignore_duplicate = ignore_flag(&on_duplicate, "writes.on_duplicate")?;
        let ignore_missing = ignore_flag(&on_missing, "deletes.on_missing")?;
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, 0)
            .await?;
        let mut ops = Vec::with_capacity(total);
        let mut seen = HashSet::new();
        for (i, k) in writes.iter().enumerate() {
            let t = tuples::for_write(&r.model, k, &format!("writes.tuple_keys[{i}]"))?;
            ops.push((true, t));
        }
        for d in &deletes {
            ops.push((false, tuples::for_delete(&r.model, d)?));
        }
        for (_, t) in &ops {
            let k = tuples::key_of(t);
            if !seen.insert((k.user.clone(), k.relation.clone(), k.object.clone())) {
                return Err(FgaError::duplicate_tuples(format!(
                    "duplicate tuple in write: user: '{}', relation: '{}', object: '{}'",
                    k.user, k.relation, k.object
                )));
            }
        }
        let refused: Arc<Mutex<Option<FgaError>>> = Arc::new(Mutex::new(None));
        let slot = refused.clone();
        let t = r.tenant.clone();
        let ops = Arc::new(ops);
        let planned = self
            .state
            .committer
            .propose_planned(&r.tenant, move |store, applied| {
                let snapshot = store.snapshot(&t, applied)?;
                let mut batch = WriteBatch::new();
                for (create, tuple) in ops.iter() {
                    let exists = snapshot.tuple(tuple)?.is_some();
                    let failed = match (create, exists) {
                        (true, true) if !ignore_duplicate => {
                            Some("tuple to be written already existed")
                        }
                        (false, false) if !ignore_missing => {
                            Some("tuple to be deleted did not exist")
                        }
                        (true, false) => {
                            batch = batch.create(tuple.clone());
                            None
                        }
                        (false, true) => {
                            batch = batch.delete(tuple.clone());
                            None
                        }
                        _ => None,
                    };
                    if let Some(why) = failed {
                        let k = tuples::key_of(tuple);
                        let verb = if *create {
                            "write a tuple which already exists"
                        } else {
                            "delete a tuple which does not exist"
                        };
                        *slot.lock() = Some(FgaError::write_failed(format!(
                            "cannot {verb}: user: '{}', relation: '{}', object: '{}': {why}",
                            k.user, k.relation, k.object
                        )));
                        return Err(NodeError::FailedPrecondition("write refused".into()));
                    }
                }
                Ok((batch, ()))
            })
            .await;
        match planned {
            Ok(_) => Ok(pb::WriteResponse {}),
            Err(e) => Err(refused.lock().take().unwrap_or_else(|| e.into())),
        }
    }

    /// Read, a page at a time.
    pub async fn read(&self, req: pb::ReadRequest) -> FgaResult<pb::ReadResponse> {
        let tenant = self.tenant(&req.store_id)?;
        let page = ids::page_size(req.page_size.map(|v| v.value), 50, 100)?;
        let cursor = ids::decode_token(&req.continuation_token)?.map(Cursor::from_bytes);
        let mut filter = TupleFilter::default();
        if let Some(k) = req
            .tuple_key
            .as_ref()
            .filter(|k| !(k.user.is_empty() && k.relation.is_empty() && k.object.is_empty()))
        {
            let Some((ty, id)) = k.object.split_once(':') else {
                return Err(FgaError::field(
                    "ReadRequest.TupleKey.Object",
                    "the object is required, as `type:id` or `type:`",
                ));
            };
            if ty.is_empty() {
                return Err(FgaError::validation(format!(
                    "invalid 'object' field format: `{}`",
                    k.object
                )));
            }
            if id.is_empty() && k.user.is_empty() {
                return Err(FgaError::validation(
                    "the 'user' field is required when 'object' is a type only (`type:`)",
                ));
            }
            filter.resource_type = Some(ty.to_string());
            if !id.is_empty() {
                filter.resource_id = Some(IdFilter::Exact(id.to_string()));
            }
            if !k.relation.is_empty() {
                let latest = self.resolve(&req.store_id, "", req.consistency).await.ok();
                let stored = latest
                    .as_ref()
                    .and_then(|r| r.model.stored_relation(ty, &k.relation))
                    .unwrap_or(&k.relation);
                filter.relation = Some(stored.to_string());
            }
            if !k.user.is_empty() {
                let u = tuples::user(&k.user, "user")?;
                filter.subject_type = Some(u.object.object_type.clone());
                filter.subject_id = Some(u.object.object_id.clone());
                filter.subject_relation = Some(match u.relation {
                    Some(r) => SubjectRelationFilter::Relation(r),
                    None => SubjectRelationFilter::Direct,
                });
            }
        }
        let revision = self
            .state
            .read_revision(consistency(req.consistency))
            .await?;
        let state = self.state.clone();
        let scanned = blocking(move || {
            let snapshot = state
                .store
                .snapshot(&tenant, revision)
                .map_err(NodeError::from)?;
            Ok(snapshot
                .scan(&filter, cursor.as_ref(), page)
                .map_err(NodeError::from)?)
        })
        .await?;
        let now = ids::now();
        Ok(pb::ReadResponse {
            tuples: scanned
                .tuples
                .iter()
                .map(|t| pb::Tuple {
                    key: Some(tuples::key_of(t)),
                    timestamp: Some(now),
                })
                .collect(),
            continuation_token: scanned
                .cursor
                .map(|c| ids::encode_token(c.as_bytes()))
                .unwrap_or_default(),
        })
    }

    /// ReadChanges: a resumable poll; caught up, it answers the token it
    /// was given.
    pub async fn read_changes(
        &self,
        req: pb::ReadChangesRequest,
    ) -> FgaResult<pb::ReadChangesResponse> {
        let tenant = self.tenant(&req.store_id)?;
        if req.start_time.is_some() {
            return Err(FgaError::field(
                "start_time",
                "not supported by Verdict yet (changes carry no write time); resume with continuation_token",
            ));
        }
        let page = ids::page_size(req.page_size.map(|v| v.value), 50, 100)?;
        let (mut last, mut skip) = (0u64, 0usize);
        if let Some(b) = ids::decode_token(&req.continuation_token)? {
            let text = String::from_utf8_lossy(&b).into_owned();
            let bad = || FgaError::invalid_continuation_token("Invalid continuation token");
            let mut parts = text.splitn(4, ':');
            if parts.next() != Some("v1") {
                return Err(bad());
            }
            last = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            skip = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
            let ty = parts.next().unwrap_or("");
            if ty != req.r#type {
                return Err(FgaError {
                    code: 2052,
                    name: "query_string_type_continuation_token_mismatch",
                    message: format!(
                        "the type in the querystring and the continuation token don't match: `{}` vs `{ty}`",
                        req.r#type
                    ),
                });
            }
        }
        let now = ids::now();
        let mut changes = Vec::new();
        'pages: loop {
            let after = if skip > 0 {
                last.saturating_sub(1)
            } else {
                last
            };
            let batches = self
                .state
                .store
                .changes_since(&tenant, Revision(after), 64)
                .map_err(NodeError::from)?;
            if batches.is_empty() {
                break;
            }
            for b in batches {
                let start = if skip > 0 && b.revision.0 == last {
                    skip
                } else {
                    0
                };
                for (i, c) in b.changes.iter().enumerate().skip(start) {
                    if changes.len() == page {
                        if i > 0 {
                            last = b.revision.0;
                            skip = i;
                        }
                        break 'pages;
                    }
                    if req.r#type.is_empty() || c.tuple.resource.object_type == req.r#type {
                        let operation = match c.kind {
                            ChangeKind::Delete => pb::TupleOperation::Delete,
                            _ => pb::TupleOperation::Write,
                        };
                        changes.push(pb::TupleChange {
                            tuple_key: Some(tuples::key_of(&c.tuple)),
                            operation: operation as i32,
                            timestamp: Some(now),
                        });
                    }
                }
                last = b.revision.0;
                skip = 0;
            }
        }
        Ok(pb::ReadChangesResponse {
            changes,
            continuation_token: ids::encode_token(
                format!("v1:{last}:{skip}:{}", req.r#type).as_bytes(),
            ),
        })
    }

    // ---- queries ----

    fn check_target(
        r: &Resolved,
        object: &str,
        relation: &str,
        relation_code: fn(String) -> FgaError,
    ) -> FgaResult<verdict_storage::ObjectRef> {
        let obj = tuples::object(object, "object")?;
        if r.model.type_def(&obj.object_type).is_none() {
            return Err(FgaError::type_not_found(format!(
                "type '{}' not found",
                obj.object_type
            )));
        }
        if !r.model.has_relation(&obj.object_type, relation) {
            return Err(relation_code(format!(
                "relation '{}#{relation}' not found",
                obj.object_type
            )));
        }
        Ok(obj)
    }

    async fn check_one(
        &self,
        r: &Resolved,
        key: Option<&pb::CheckRequestTupleKey>,
        context: Option<&pbjson_types::Struct>,
    ) -> FgaResult<bool> {
        let Some(k) = key else {
            return Err(FgaError::field("tuple_key", "value is required"));
        };
        let resource = Self::check_target(r, &k.object, &k.relation, FgaError::validation)?;
        let subject = tuples::user(&k.user, "user")?;
        if r.model.type_def(&subject.object.object_type).is_none() {
            return Err(FgaError::validation(format!(
                "type '{}' not found",
                subject.object.object_type
            )));
        }
        let check = CheckRequest {
            resource,
            permission: k.relation.clone(),
            subject,
            context: context_map(context),
            now: Timestamp::now(),
            trace: false,
        };
        let state = self.state.clone();
        let (tenant, revision, engine) = (r.tenant.clone(), r.revision, r.engine.clone());
        let response = blocking(move || {
            let snapshot = state
                .store
                .snapshot(&tenant, revision)
                .map_err(NodeError::from)?;
            Ok(engine.check(&snapshot, &check).map_err(NodeError::from)?)
        })
        .await?;
        match response.outcome {
            Outcome::Allowed => Ok(true),
            Outcome::Denied => Ok(false),
            Outcome::Conditional { missing, .. } => Err(FgaError::validation(format!(
                "failed to evaluate relationship condition: missing context parameters {missing:?}"
            ))),
        }
    }

    /// Check.
    pub async fn check(&self, req: pb::CheckRequest) -> FgaResult<pb::CheckResponse> {
        if req.tuple_key.is_none() {
            return Err(FgaError::field(
                "CheckRequest.TupleKey",
                "value is required",
            ));
        }
        contextual(req.contextual_tuples.as_ref())?;
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let allowed = self
            .check_one(&r, req.tuple_key.as_ref(), req.context.as_ref())
            .await?;
        Ok(pb::CheckResponse {
            allowed,
            resolution: String::new(),
        })
    }

    /// BatchCheck: each item answered (or failed) on its own.
    pub async fn batch_check(
        &self,
        req: pb::BatchCheckRequest,
    ) -> FgaResult<pb::BatchCheckResponse> {
        use pb::batch_check_single_result::CheckResult;
        if req.checks.is_empty() {
            return Err(FgaError::field(
                "BatchCheckRequest.Checks",
                "value must contain at least 1 item(s)",
            ));
        }
        if req.checks.len() > MAX_CHECKS_PER_BATCH {
            return Err(FgaError::validation(format!(
                "batchCheck received {} checks, the maximum allowed is {MAX_CHECKS_PER_BATCH}",
                req.checks.len()
            )));
        }
        let mut ids_seen = HashSet::new();
        for c in &req.checks {
            let ok = (1..=36).contains(&c.correlation_id.len())
                && c.correlation_id
                    .chars()
                    .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-');
            if !ok {
                return Err(FgaError::field(
                    "BatchCheckItem.CorrelationId",
                    format!("`{}` does not match ^[\\w\\d-]{{1,36}}$", c.correlation_id),
                ));
            }
            if !ids_seen.insert(c.correlation_id.clone()) {
                return Err(FgaError::validation(format!(
                    "duplicate correlation_id provided: {}",
                    c.correlation_id
                )));
            }
        }
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let mut result = std::collections::HashMap::new();
        for c in &req.checks {
            let answer = match contextual(c.contextual_tuples.as_ref()) {
                Ok(()) => {
                    self.check_one(&r, c.tuple_key.as_ref(), c.context.as_ref())
                        .await
                }
                Err(e) => Err(e),
            };
            let single = match answer {
                Ok(allowed) => CheckResult::Allowed(allowed),
                Err(e) => CheckResult::Error(pb::CheckError {
                    message: e.message.clone(),
                    code: Some(if (4000..5000).contains(&e.code) {
                        pb::check_error::Code::InternalError(i32::try_from(e.code).unwrap_or(4000))
                    } else {
                        pb::check_error::Code::InputError(i32::try_from(e.code).unwrap_or(2000))
                    }),
                }),
            };
            result.insert(
                c.correlation_id.clone(),
                pb::BatchCheckSingleResult {
                    check_result: Some(single),
                },
            );
        }
        Ok(pb::BatchCheckResponse { result })
    }

    /// Expand (Verdict's tree, named in OpenFGA's shape).
    pub async fn expand(&self, req: pb::ExpandRequest) -> FgaResult<pb::ExpandResponse> {
        let Some(k) = req.tuple_key.as_ref() else {
            return Err(FgaError::field(
                "ExpandRequest.TupleKey",
                "value is required",
            ));
        };
        contextual(req.contextual_tuples.as_ref())?;
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let resource = Self::check_target(&r, &k.object, &k.relation, FgaError::validation)?;
        let relation = k.relation.clone();
        let state = self.state.clone();
        let (tenant, revision, engine) = (r.tenant.clone(), r.revision, r.engine.clone());
        let tree = blocking(move || {
            let snapshot = state
                .store
                .snapshot(&tenant, revision)
                .map_err(NodeError::from)?;
            Ok(engine
                .expand(&snapshot, &resource, &relation, Timestamp::now())
                .map_err(NodeError::from)?)
        })
        .await?;
        Ok(pb::ExpandResponse {
            tree: Some(pb::UsersetTree {
                root: Some(tree_node(&tree)),
            }),
        })
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "ListObjects and StreamedListObjects share it: each argument is one field of their requests"
    )]
    async fn list(
        &self,
        store_id: &str,
        model_id: &str,
        pref: i32,
        ty: &str,
        relation: &str,
        user: &str,
        context: Option<&pbjson_types::Struct>,
        cap: Option<usize>,
    ) -> FgaResult<Vec<String>> {
        let r = self.resolve(store_id, model_id, pref).await?;
        if r.model.type_def(ty).is_none() {
            return Err(FgaError::type_not_found(format!("type '{ty}' not found")));
        }
        if !r.model.has_relation(ty, relation) {
            return Err(FgaError::relation_not_found(format!(
                "relation '{ty}#{relation}' not found"
            )));
        }
        let subject = tuples::user(user, "user")?;
        let ctx = context_map(context);
        let (state, tenant, revision, engine) =
            (self.state.clone(), r.tenant, r.revision, r.engine);
        let (ty, relation) = (ty.to_string(), relation.to_string());
        blocking(move || {
            let snapshot = state
                .store
                .snapshot(&tenant, revision)
                .map_err(NodeError::from)?;
            let started = Instant::now();
            let now = Timestamp::now();
            let mut out = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let want = cap.map_or(MAX_LIST_RESULTS, |c| c.saturating_sub(out.len()));
                let page = engine
                    .lookup_resources(
                        &snapshot,
                        &ty,
                        &relation,
                        &subject,
                        &ctx,
                        now,
                        cursor.as_deref(),
                        want.max(1),
                    )
                    .map_err(NodeError::from)?;
                out.extend(
                    page.items
                        .into_iter()
                        .filter(|i| i.outcome == Outcome::Allowed)
                        .map(|i| format!("{ty}:{}", i.id)),
                );
                cursor = page.cursor;
                let full = cap.is_some_and(|c| out.len() >= c);
                if cursor.is_none() || full || started.elapsed() >= LIST_DEADLINE {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    /// ListObjects (at most [`MAX_LIST_RESULTS`]).
    pub async fn list_objects(
        &self,
        req: pb::ListObjectsRequest,
    ) -> FgaResult<pb::ListObjectsResponse> {
        contextual(req.contextual_tuples.as_ref())?;
        let objects = self
            .list(
                &req.store_id,
                &req.authorization_model_id,
                req.consistency,
                &req.r#type,
                &req.relation,
                &req.user,
                req.context.as_ref(),
                Some(MAX_LIST_RESULTS),
            )
            .await?;
        Ok(pb::ListObjectsResponse { objects })
    }

    /// StreamedListObjects: every object found within the deadline.
    pub async fn streamed_list_objects(
        &self,
        req: pb::StreamedListObjectsRequest,
    ) -> FgaResult<Vec<String>> {
        contextual(req.contextual_tuples.as_ref())?;
        self.list(
            &req.store_id,
            &req.authorization_model_id,
            req.consistency,
            &req.r#type,
            &req.relation,
            &req.user,
            req.context.as_ref(),
            None,
        )
        .await
    }

    /// ListUsers (exactly one filter).
    pub async fn list_users(&self, req: pb::ListUsersRequest) -> FgaResult<pb::ListUsersResponse> {
        no_contextual(&req.contextual_tuples)?;
        let [filter] = req.user_filters.as_slice() else {
            return Err(FgaError::field(
                "ListUsersRequest.UserFilters",
                "value must contain exactly 1 item(s)",
            ));
        };
        let Some(object) = req.object.as_ref() else {
            return Err(FgaError::field(
                "ListUsersRequest.Object",
                "value is required",
            ));
        };
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let resource = Self::check_target(
            &r,
            &format!("{}:{}", object.r#type, object.id),
            &req.relation,
            FgaError::relation_not_found,
        )?;
        if r.model.type_def(&filter.r#type).is_none() {
            return Err(FgaError::type_not_found(format!(
                "type '{}' not found",
                filter.r#type
            )));
        }
        let ctx = context_map(req.context.as_ref());
        let (state, tenant, revision, engine) =
            (self.state.clone(), r.tenant, r.revision, r.engine);
        let (relation, fty) = (req.relation.clone(), filter.r#type.clone());
        let frel = (!filter.relation.is_empty()).then(|| filter.relation.clone());
        let found = blocking(move || {
            let snapshot = state
                .store
                .snapshot(&tenant, revision)
                .map_err(NodeError::from)?;
            Ok(engine
                .lookup_subjects(
                    &snapshot,
                    &resource,
                    &relation,
                    &fty,
                    frel.as_deref(),
                    &ctx,
                    Timestamp::now(),
                )
                .map_err(NodeError::from)?)
        })
        .await?;
        use pb::user::User as U;
        let users = found
            .into_iter()
            .filter(|s| s.outcome == Outcome::Allowed)
            .take(MAX_LIST_RESULTS)
            .map(|s| {
                let user = if s.id == verdict_storage::WILDCARD {
                    U::Wildcard(pb::TypedWildcard {
                        r#type: filter.r#type.clone(),
                    })
                } else if filter.relation.is_empty() {
                    U::Object(pb::Object {
                        r#type: filter.r#type.clone(),
                        id: s.id,
                    })
                } else {
                    U::Userset(pb::UsersetUser {
                        r#type: filter.r#type.clone(),
                        id: s.id,
                        relation: filter.relation.clone(),
                    })
                };
                pb::User { user: Some(user) }
            })
            .collect();
        Ok(pb::ListUsersResponse { users })
    }

    /// What answers 5004 for now.
    pub fn unimplemented(rpc: &str) -> FgaError {
        FgaError::unimplemented(format!(
            "openfga.v1.OpenFGAService/{rpc} is not implemented by Verdict yet"
        ))
    }
}

fn ignore_flag(value: &str, field: &str) -> FgaResult<bool> {
    match value {
        "" | "error" => Ok(false),
        "ignore" => Ok(true),
        other => Err(FgaError::field(
            field,
            format!("value must be in list [error ignore], got `{other}`"),
        )),
    }
}

fn author() -> String {
    request_context::current()
        .map(|c| c.key_id().to_string())
        .unwrap_or_default()
}

fn tree_node(n: &ExpandNode) -> pb::userset_tree::Node {
    use pb::userset_tree::{leaf, node, Difference, Leaf, Node, Nodes, Users};
    let name = format!(
        "{}:{}#{}",
        n.object.object_type,
        n.object.object_id,
        model::public_relation(&n.relation)
    );
    let leaf_of = |users: Vec<String>| {
        node::Value::Leaf(Leaf {
            value: Some(leaf::Value::Users(Users { users })),
        })
    };
    let value = match &n.kind {
        ExpandKind::Leaf(subjects) => leaf_of(
            subjects
                .iter()
                .map(|s| tuples::user_text(&s.subject))
                .collect(),
        ),
        ExpandKind::Union(c) => node::Value::Union(Nodes {
            nodes: c.iter().map(tree_node).collect(),
        }),
        ExpandKind::Intersection(c) => node::Value::Intersection(Nodes {
            nodes: c.iter().map(tree_node).collect(),
        }),
        ExpandKind::Exclusion(c) => node::Value::Difference(Box::new(Difference {
            base: c.first().map(|b| Box::new(tree_node(b))),
            subtract: c.get(1).map(|s| Box::new(tree_node(s))),
        })),
        ExpandKind::Cycle => leaf_of(Vec::new()),
    };
    Node {
        name,
        value: Some(value),
    }
}
