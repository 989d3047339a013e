//! The 19 `openfga.v1` calls over the node, transport-free: each takes the
//! generated request message and answers the response message or an
//! [`FgaError`]. The gRPC service and the HTTP routes both call these.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use verdict_storage::{
    ChangeKind, Cursor, IdFilter, RelationStore, Revision, SchemaVersionRecord, StoredSchema,
    SubjectRelationFilter, Tenant, TupleFilter, TupleReader, WriteBatch,
};

use super::error::{FgaError, FgaResult};
use super::ids;
use super::model::{self, Meta};
use super::pb;
use super::tuples;
use crate::engine::openfga::{self as fga, FgaCheck, FgaLimits, FgaUser};
use crate::engine::{Engine, ExpandKind, ExpandNode};
use crate::schema::openfga::names::{decode_id, decode_name};
use crate::server::consistency::Consistency;
use crate::server::error::NodeError;
use crate::server::request_context::{self, Principal};
use crate::server::state::AppState;

/// Most tuples one Write may carry (writes and deletes together).
pub const MAX_TUPLES_PER_WRITE: usize = 100;
/// Most checks in one BatchCheck.
pub const MAX_CHECKS_PER_BATCH: usize = 50;
/// ListUsers: most results (ListObjects' cap is a `serve` flag).
pub const MAX_LIST_RESULTS: usize = 1000;
/// Most contextual tuples one request may carry.
pub const MAX_CONTEXTUAL_TUPLES: usize = 100;
/// Most assertions one WriteAssertions may carry.
pub const MAX_ASSERTIONS: usize = 100;
/// Most contextual tuples one assertion may carry.
pub const MAX_ASSERTION_CONTEXTUAL_TUPLES: usize = 20;
/// Largest assertion set (OpenFGA's `maxAssertionSizeInBytes`).
pub const MAX_ASSERTIONS_BYTES: usize = 64 * 1024;

/// The API over one node.
#[derive(Debug, Clone)]
pub struct Fga {
    state: Arc<AppState>,
}

/// How many found objects may wait for a slow ListObjects receiver before
/// the evaluation pauses.
const LIST_CHANNEL_DEPTH: usize = 64;

/// The fields of a ListObjects / StreamedListObjects request.
struct ListQuery {
    store_id: String,
    model_id: String,
    pref: i32,
    ty: String,
    relation: String,
    user: String,
    extra: Vec<fga::FgaTupleKey>,
    context: Option<pbjson_types::Struct>,
}

/// The objects of a ListObjects as they are found; an error ends it.
#[derive(Debug)]
pub struct ObjectStream {
    first: Option<FgaResult<String>>,
    rest: tokio::sync::mpsc::Receiver<FgaResult<String>>,
}

impl ObjectStream {
    /// The next object, an error (then the end), or `None` at the end.
    pub async fn next(&mut self) -> Option<FgaResult<String>> {
        match self.first.take() {
            Some(item) => Some(item),
            None => self.rest.recv().await,
        }
    }

    /// As a `Stream` (for the gRPC and HTTP streaming responses).
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = FgaResult<String>> + Send {
        let first = tokio_stream::iter(self.first);
        tokio_stream::StreamExt::chain(
            first,
            tokio_stream::wrappers::ReceiverStream::new(self.rest),
        )
    }
}

/// What a query evaluates against.
struct Resolved {
    tenant: Tenant,
    revision: Revision,
    engine: Engine,
}

fn consistency(pref: i32) -> Consistency {
    // OpenFGA reads its database directly: the default must see the
    // caller's own writes, so only an explicit MINIMIZE_LATENCY may lag.
    // A consistency token sent with the request (opt-in) bounds it too.
    super::token::consistency(match pb::ConsistencyPreference::try_from(pref) {
        Ok(pb::ConsistencyPreference::MinimizeLatency) => Consistency::MinimizeLatency,
        _ => Consistency::FullyConsistent,
    })
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

    /// The node's zookie codec (consistency tokens).
    pub fn zookies(&self) -> &crate::zookie::ZookieCodec {
        &self.state.zookies
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
            if !current.as_ref().is_some_and(model::carries_model) {
                return Err(FgaError::latest_model_not_found(format!(
                    "No authorization models found for store '{store_id}'"
                )));
            }
            let entry = self.state.engine_at(&tenant, revision)?;
            return Ok(Resolved {
                tenant,
                revision,
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
        let Some((stored, _)) = found else {
            return Err(FgaError::model_not_found(format!(
                "Authorization Model '{model_id}' not found"
            )));
        };
        let entry = self.state.engine_at(&tenant, stored.revision)?;
        Ok(Resolved {
            tenant,
            revision,
            engine: entry.engine.clone(),
        })
    }

    // ---- stores ----

    /// The store's name: the latest one on record (CreateStore, UpdateStore).
    fn store_name(&self, tenant: &Tenant) -> FgaResult<String> {
        Ok(self
            .history(tenant)?
            .iter()
            .rev()
            .find_map(|s| match Meta::from_comment(&s.record.comment) {
                Some(Meta::OpenfgaStore { name }) => Some(name),
                _ => None,
            })
            .unwrap_or_else(|| tenant.as_str().to_string()))
    }

    fn store(&self, tenant: &Tenant) -> FgaResult<pb::Store> {
        let id = ids::store_of(tenant.as_str());
        // A tenant made otherwise has no creation time on record: the epoch.
        let created = Some(ids::ulid_time(&id).unwrap_or_default());
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

    /// Records `meta` as a new schema version of `tenant` whose text is the
    /// one active when it commits (so evaluation is unchanged), through the
    /// replicated write path.
    async fn put_meta(&self, tenant: &Tenant, meta: Meta) -> FgaResult<()> {
        let comment = meta.to_comment();
        let who = author();
        let t = tenant.clone();
        self.state
            .committer
            .propose_planned(tenant, move |store, applied| {
                let current = store.schema_at(&t, applied)?;
                let (version, text) = current.map_or_else(
                    || (0, model::STORE_TEXT.to_string()),
                    |s| (s.record.version, s.record.text),
                );
                let batch = WriteBatch::new().put_schema(SchemaVersionRecord {
                    version: version + 1,
                    text,
                    comment: comment.clone(),
                    author: who.clone(),
                });
                Ok((batch, ()))
            })
            .await?;
        Ok(())
    }

    /// UpdateStore: renames the store.
    pub async fn update_store(
        &self,
        req: pb::UpdateStoreRequest,
    ) -> FgaResult<pb::UpdateStoreResponse> {
        if !valid_store_name(&req.name) {
            return Err(FgaError::field(
                "UpdateStoreRequest.Name",
                "value does not match regex pattern \"^[a-zA-Z0-9\\\\s.\\\\-/^_&@]{3,64}$\"",
            ));
        }
        let tenant = self.tenant(&req.store_id)?;
        self.put_meta(
            &tenant,
            Meta::OpenfgaStore {
                name: req.name.clone(),
            },
        )
        .await?;
        let s = self.store(&tenant)?;
        Ok(pb::UpdateStoreResponse {
            id: s.id,
            name: req.name,
            created_at: s.created_at,
            updated_at: Some(ids::now()),
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
        let text = model::schema_text(&pbm)?;
        let comment = Meta::OpenfgaModel(pbm).to_comment();
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

    /// The stored version of model `model_id` (validated as a ULID).
    fn model_version(&self, tenant: &Tenant, model_id: &str) -> FgaResult<StoredSchema> {
        if !ids::is_ulid(model_id) {
            return Err(FgaError::field(
                "authorization_model_id",
                "value does not match regex pattern \"^[ABCDEFGHJKMNPQRSTVWXYZ0-9]{26}$\"",
            ));
        }
        self.models(tenant)?
            .into_iter()
            .find(|(_, m)| m.id == model_id)
            .map(|(s, _)| s)
            .ok_or_else(|| {
                FgaError::model_not_found(format!("Authorization Model '{model_id}' not found"))
            })
    }

    // ---- assertions ----

    /// WriteAssertions: replaces the assertions of one model, each
    /// validated as a Check's input against that model.
    pub async fn write_assertions(
        &self,
        req: pb::WriteAssertionsRequest,
    ) -> FgaResult<pb::WriteAssertionsResponse> {
        if req.assertions.len() > MAX_ASSERTIONS {
            return Err(FgaError::field(
                "WriteAssertionsRequest.Assertions",
                format!("value must contain no more than {MAX_ASSERTIONS} item(s)"),
            ));
        }
        for a in &req.assertions {
            if a.tuple_key.is_none() {
                return Err(FgaError::field("Assertion.TupleKey", "value is required"));
            }
            if a.contextual_tuples.len() > MAX_ASSERTION_CONTEXTUAL_TUPLES {
                return Err(FgaError::field(
                    "Assertion.ContextualTuples",
                    format!(
                        "value must contain no more than {MAX_ASSERTION_CONTEXTUAL_TUPLES} item(s)"
                    ),
                ));
            }
        }
        let tenant = self.tenant(&req.store_id)?;
        let stored = self.model_version(&tenant, &req.authorization_model_id)?;
        let entry = self.state.engine_at(&tenant, stored.revision)?;
        let schema = entry.engine.schema().clone();
        let limits = FgaLimits {
            max_contextual_tuples: MAX_ASSERTION_CONTEXTUAL_TUPLES,
            max_results: 0,
        };
        for a in &req.assertions {
            let Some(k) = a.tuple_key.as_ref() else {
                continue;
            };
            let key = fga::FgaTupleKey::new(k.user.clone(), k.relation.clone(), k.object.clone());
            let extra: Vec<fga::FgaTupleKey> =
                a.contextual_tuples.iter().map(tuples::key).collect();
            fga::validate_question(&schema, &key, &extra, &limits).map_err(|e| {
                let e = tuples::engine_error(e);
                FgaError::validation(e.message)
            })?;
        }
        let bytes = serde_json::to_vec(&req.assertions).map_or(0, |b| b.len());
        if bytes > MAX_ASSERTIONS_BYTES {
            return Err(FgaError::exceeded_entity_limit(format!(
                "the assertions are {bytes} bytes, more than the allowed {MAX_ASSERTIONS_BYTES}"
            )));
        }
        self.put_meta(
            &tenant,
            Meta::OpenfgaAssertions {
                model_id: req.authorization_model_id,
                assertions: req.assertions,
            },
        )
        .await?;
        Ok(pb::WriteAssertionsResponse {})
    }

    /// ReadAssertions: the set last written for the model (none yet: empty).
    pub async fn read_assertions(
        &self,
        req: pb::ReadAssertionsRequest,
    ) -> FgaResult<pb::ReadAssertionsResponse> {
        let tenant = self.tenant(&req.store_id)?;
        self.model_version(&tenant, &req.authorization_model_id)?;
        let assertions = self
            .history(&tenant)?
            .into_iter()
            .rev()
            .find_map(|s| match Meta::from_comment(&s.record.comment) {
                Some(Meta::OpenfgaAssertions {
                    model_id,
                    assertions,
                }) if model_id == req.authorization_model_id => Some(assertions),
                _ => None,
            })
            .unwrap_or_default();
        Ok(pb::ReadAssertionsResponse {
            authorization_model_id: req.authorization_model_id,
            assertions,
        })
    }

    // ---- tuples ----

    /// Write: atomic, at most [`MAX_TUPLES_PER_WRITE`] tuples.
    pub async fn write(&self, req: pb::WriteRequest) -> FgaResult<pb::WriteResponse> {
        self.write_with_token(req).await.map(|(r, _)| r)
    }

    /// Write, with the consistency token (zookie) of the revision it
    /// committed at, for clients that opt in to read-your-writes
    /// ([`super::token`]).
    pub async fn write_with_token(
        &self,
        req: pb::WriteRequest,
    ) -> FgaResult<(pb::WriteResponse, String)> {
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
        let schema = r.engine.schema().clone();
        for k in &writes {
            let invalid = |reason: String| {
                FgaError::validation(format!(
                    "Invalid tuple '{}#{}@{}'. Reason: {reason}",
                    k.object, k.relation, k.user
                ))
            };
            let t = fga::to_tuple(&schema, &tuples::key(k)).map_err(|e| invalid(e.message))?;
            if let Some(reason) = fga::model_rejects(&schema, &t) {
                return Err(invalid(reason));
            }
            ops.push((true, t));
        }
        for d in &deletes {
            let key = fga::FgaTupleKey::new(d.user.clone(), d.relation.clone(), d.object.clone());
            let t = fga::to_tuple(&schema, &key).map_err(tuples::engine_error)?;
            ops.push((false, t));
        }
        for (_, t) in &ops {
            let k = tuples::key_of(t, true);
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
                        let k = tuples::key_of(tuple, true);
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
            Ok((outcome, ())) => Ok((pb::WriteResponse {}, self.state.zookie(outcome.revision))),
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
            filter.resource_type = Some(tuples::name(ty, "a type name")?);
            if !id.is_empty() {
                filter.resource_id = Some(IdFilter::Exact(tuples::id(id)?));
            }
            if !k.relation.is_empty() {
                filter.relation = Some(tuples::name(&k.relation, "a relation name")?);
            }
            if !k.user.is_empty() {
                let bad =
                    || FgaError::validation(format!("invalid 'user' field format: `{}`", k.user));
                let (ut, rest) = k.user.split_once(':').ok_or_else(bad)?;
                let (uid, urel) = match rest.split_once('#') {
                    Some((i, r)) => (i, Some(r)),
                    None => (rest, None),
                };
                if ut.is_empty() || uid.is_empty() || urel.is_some_and(str::is_empty) {
                    return Err(bad());
                }
                filter.subject_type = Some(tuples::name(ut, "a type name")?);
                filter.subject_id = Some(tuples::id(uid)?);
                filter.subject_relation = Some(match urel {
                    Some(r) => SubjectRelationFilter::Relation(tuples::name(r, "a relation name")?),
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
                    key: Some(tuples::key_of(t, false)),
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
        let type_filter = if req.r#type.is_empty() {
            String::new()
        } else {
            tuples::name(&req.r#type, "a type name")?
        };
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
                    if req.r#type.is_empty() || c.tuple.resource.object_type == type_filter {
                        let operation = match c.kind {
                            ChangeKind::Delete => pb::TupleOperation::Delete,
                            _ => pb::TupleOperation::Write,
                        };
                        changes.push(pb::TupleChange {
                            tuple_key: Some(tuples::key_of(
                                &c.tuple,
                                matches!(c.kind, ChangeKind::Delete),
                            )),
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

    /// Runs `query` with the engine and a snapshot at the resolved revision.
    async fn evaluate<T, F>(&self, r: Resolved, query: F) -> FgaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, &dyn TupleReader) -> Result<T, fga::FgaError> + Send + 'static,
    {
        let state = self.state.clone();
        blocking(move || {
            let snapshot = state
                .store
                .snapshot(&r.tenant, r.revision)
                .map_err(NodeError::from)?;
            query(&r.engine, &snapshot).map_err(tuples::engine_error)
        })
        .await
    }

    /// Check.
    pub async fn check(&self, req: pb::CheckRequest) -> FgaResult<pb::CheckResponse> {
        let Some(k) = req.tuple_key.as_ref() else {
            return Err(FgaError::field(
                "CheckRequest.TupleKey",
                "value is required",
            ));
        };
        let key = tuples::check_key(k);
        let extra = tuples::keys(req.contextual_tuples.as_ref());
        let context = tuples::context_map(req.context.as_ref());
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let allowed = self
            .evaluate(r, move |engine, reader| {
                engine.fga_check(reader, &key, &extra, &context, &limits(0))
            })
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
        let mut seen = HashSet::new();
        let mut checks = Vec::with_capacity(req.checks.len());
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
            if !seen.insert(c.correlation_id.clone()) {
                return Err(FgaError::validation(format!(
                    "duplicate correlation_id provided: {}",
                    c.correlation_id
                )));
            }
            let Some(k) = c.tuple_key.as_ref() else {
                return Err(FgaError::field(
                    "BatchCheckItem.TupleKey",
                    "value is required",
                ));
            };
            checks.push(FgaCheck {
                tuple_key: tuples::check_key(k),
                contextual_tuples: tuples::keys(c.contextual_tuples.as_ref()),
                context: tuples::context_map(c.context.as_ref()),
            });
        }
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let answers = self
            .evaluate(r, move |engine, reader| {
                Ok(engine.fga_batch_check(reader, &checks, &limits(0)))
            })
            .await?;
        let result = req
            .checks
            .iter()
            .zip(answers)
            .map(|(c, answer)| {
                let single = match answer {
                    Ok(allowed) => CheckResult::Allowed(allowed),
                    Err(e) => {
                        let e = tuples::engine_error(e);
                        let code = i32::try_from(e.code).unwrap_or(4000);
                        CheckResult::Error(pb::CheckError {
                            message: e.message,
                            code: Some(if (4000..5000).contains(&code) {
                                pb::check_error::Code::InternalError(code)
                            } else {
                                pb::check_error::Code::InputError(code)
                            }),
                        })
                    }
                };
                (
                    c.correlation_id.clone(),
                    pb::BatchCheckSingleResult {
                        check_result: Some(single),
                    },
                )
            })
            .collect();
        Ok(pb::BatchCheckResponse { result })
    }

    /// Expand (Verdict's tree, in OpenFGA's shape).
    pub async fn expand(&self, req: pb::ExpandRequest) -> FgaResult<pb::ExpandResponse> {
        let Some(k) = req.tuple_key.as_ref() else {
            return Err(FgaError::field(
                "ExpandRequest.TupleKey",
                "value is required",
            ));
        };
        let (object, relation) = (k.object.clone(), k.relation.clone());
        let extra = tuples::keys(req.contextual_tuples.as_ref());
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let tree = self
            .evaluate(r, move |engine, reader| {
                engine.fga_expand(reader, &object, &relation, &extra, &limits(0))
            })
            .await?;
        Ok(pb::ExpandResponse {
            tree: Some(pb::UsersetTree {
                root: Some(tree_node(&tree)),
            }),
        })
    }

    /// Starts a ListObjects: evaluates on the blocking pool, sending each
    /// object on the channel as it is found, at most `cap` (0 = all), until
    /// the configured deadline. Waits for the first item so that a request
    /// refused before any object is an error of the call itself.
    async fn list(&self, q: ListQuery, cap: usize) -> FgaResult<ObjectStream> {
        let r = self.resolve(&q.store_id, &q.model_id, q.pref).await?;
        let settings = self.state.settings.openfga;
        let deadline = std::time::Instant::now() + settings.list_objects_deadline;
        let state = self.state.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<FgaResult<String>>(LIST_CHANNEL_DEPTH);
        tokio::task::spawn_blocking(move || {
            let run = || -> FgaResult<()> {
                let snapshot = state
                    .store
                    .snapshot(&r.tenant, r.revision)
                    .map_err(NodeError::from)?;
                let context = tuples::context_map(q.context.as_ref());
                let query = fga::FgaListObjects {
                    object_type: &q.ty,
                    relation: &q.relation,
                    user: &q.user,
                    contextual_tuples: &q.extra,
                    context: &context,
                };
                r.engine
                    .fga_list_objects_each(
                        &snapshot,
                        &query,
                        &limits(cap),
                        Some(deadline),
                        &mut |o| tx.blocking_send(Ok(o)).is_ok(),
                    )
                    .map_err(tuples::engine_error)?;
                Ok(())
            };
            if let Err(e) = run() {
                // The receiver may be gone; nothing more to tell then.
                let _ = tx.blocking_send(Err(e));
            }
        });
        let first = match rx.recv().await {
            Some(Err(e)) => return Err(e),
            other => other,
        };
        Ok(ObjectStream { first, rest: rx })
    }

    /// ListObjects: at most the configured cap (default 1000), what was
    /// found by the deadline (default 3 s), as OpenFGA.
    pub async fn list_objects(
        &self,
        req: pb::ListObjectsRequest,
    ) -> FgaResult<pb::ListObjectsResponse> {
        let q = ListQuery {
            extra: tuples::keys(req.contextual_tuples.as_ref()),
            store_id: req.store_id,
            model_id: req.authorization_model_id,
            pref: req.consistency,
            ty: req.r#type,
            relation: req.relation,
            user: req.user,
            context: req.context,
        };
        let cap = self.state.settings.openfga.list_objects_max_results;
        let mut stream = self.list(q, cap).await?;
        let mut objects = Vec::new();
        while let Some(item) = stream.next().await {
            objects.push(item?);
        }
        Ok(pb::ListObjectsResponse { objects })
    }

    /// StreamedListObjects: every object (no result cap) as it is found,
    /// until the deadline.
    pub async fn streamed_list_objects(
        &self,
        req: pb::StreamedListObjectsRequest,
    ) -> FgaResult<ObjectStream> {
        let q = ListQuery {
            extra: tuples::keys(req.contextual_tuples.as_ref()),
            store_id: req.store_id,
            model_id: req.authorization_model_id,
            pref: req.consistency,
            ty: req.r#type,
            relation: req.relation,
            user: req.user,
            context: req.context,
        };
        self.list(q, 0).await
    }

    /// ListUsers (exactly one filter).
    pub async fn list_users(&self, req: pb::ListUsersRequest) -> FgaResult<pb::ListUsersResponse> {
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
        let object = format!("{}:{}", object.r#type, object.id);
        let extra: Vec<fga::FgaTupleKey> = req.contextual_tuples.iter().map(tuples::key).collect();
        let context = tuples::context_map(req.context.as_ref());
        let (relation, fty, frel) = (
            req.relation.clone(),
            filter.r#type.clone(),
            filter.relation.clone(),
        );
        let r = self
            .resolve(&req.store_id, &req.authorization_model_id, req.consistency)
            .await?;
        let found = self
            .evaluate(r, move |engine, reader| {
                engine.fga_list_users(
                    reader,
                    &object,
                    &relation,
                    &fty,
                    (!frel.is_empty()).then_some(frel.as_str()),
                    &extra,
                    &context,
                    &limits(MAX_LIST_RESULTS),
                )
            })
            .await?;
        use pb::user::User as U;
        let users = found
            .into_iter()
            .map(|u| pb::User {
                user: Some(match u {
                    FgaUser::Object { object_type, id } => U::Object(pb::Object {
                        r#type: object_type,
                        id,
                    }),
                    FgaUser::Userset {
                        object_type,
                        id,
                        relation,
                    } => U::Userset(pb::UsersetUser {
                        r#type: object_type,
                        id,
                        relation,
                    }),
                    FgaUser::Wildcard { object_type } => U::Wildcard(pb::TypedWildcard {
                        r#type: object_type,
                    }),
                }),
            })
            .collect();
        Ok(pb::ListUsersResponse { users })
    }
}

/// The engine's limits for one request (`max_results` 0 = all).
fn limits(max_results: usize) -> FgaLimits {
    FgaLimits {
        max_contextual_tuples: MAX_CONTEXTUAL_TUPLES,
        max_results,
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
        decode_name(&n.object.object_type),
        decode_id(&n.object.object_id),
        decode_name(&n.relation)
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
