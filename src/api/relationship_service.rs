//! RelationshipService: write (validated against the tenant's schema, with
//! preconditions), delete by filter (with a dry run), read (streaming, with
//! resumable cursors), bulk import (client streaming) and export (server
//! streaming).

use std::sync::Arc;

use base64::Engine as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use verdict_storage::{
    Cursor, Precondition, RelationStore, Revision, StorageError, Tenant, Tuple, TupleFilter,
    TupleReader, WriteBatch,
};

use super::convert::zookie_to_pb;
use super::convert::{consistency_from_pb, filter_from_pb, required, tuple_from_pb, tuple_to_pb};
use super::error::ApiError;
use super::pb;
use crate::relationships::validate_against_schema;
use crate::schema::ir::Schema;
use crate::server::state::{AppState, SchemaEngine};

/// The most updates one WriteRelationships request may carry.
pub const MAX_UPDATES: usize = 1_000;
/// The most preconditions one write or delete request may carry.
pub const MAX_PRECONDITIONS: usize = 1_000;
/// The most relationships one ImportRelationships stream may carry.
pub const MAX_IMPORT: usize = 10_000_000;
/// Relationships per ExportRelationships response.
pub const EXPORT_CHUNK: usize = 1_000;
/// Responses buffered between a streaming reader task and the transport.
const STREAM_BUFFER: usize = 64;
/// Tuples per storage page when counting (dry run).
const COUNT_PAGE: usize = 1_000;

/// The RelationshipService implementation.
#[derive(Debug, Clone)]
pub struct RelationshipApi {
    state: Arc<AppState>,
}

impl RelationshipApi {
    /// A service over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        RelationshipApi { state }
    }

    /// The tenant's current schema (at the applied revision).
    fn current_schema(&self, tenant: &Tenant) -> Result<Arc<Schema>, ApiError> {
        Ok(self.current_schema_entry(tenant)?.0)
    }

    /// The tenant's current schema and the revision it became active at.
    fn current_schema_entry(&self, tenant: &Tenant) -> Result<(Arc<Schema>, Revision), ApiError> {
        let entry = self.current_engine(tenant)?;
        Ok((entry.engine.schema().clone(), entry.active_since))
    }

    /// The engine of the tenant's current schema.
    fn current_engine(&self, tenant: &Tenant) -> Result<Arc<SchemaEngine>, ApiError> {
        self.state
            .engine_at(tenant, self.state.store.applied_revision())
    }

    /// Collects an import stream: the tenant (from the first message; later
    /// messages may repeat it or leave it empty) and every relationship,
    /// each checked against the tenant's current schema.
    async fn collect_import<S>(&self, mut stream: S) -> Result<(Tenant, Vec<Tuple>), Status>
    where
        S: Stream<Item = Result<pb::ImportRelationshipsRequest, Status>> + Unpin,
    {
        let mut target: Option<(String, Tenant, Arc<Schema>)> = None;
        let mut tuples = Vec::new();
        let mut message = 0usize;
        while let Some(next) = stream.next().await {
            let req = next?;
            let (name, _, schema) = match &target {
                Some(t) => t,
                None => {
                    let tenant = self.state.tenant(&req.tenant)?;
                    let schema = self.current_schema(&tenant)?;
                    target.insert((req.tenant.clone(), tenant, schema))
                }
            };
            if !req.tenant.is_empty() && req.tenant != *name {
                return Err(ApiError::invalid(
                    format!("requests[{message}].tenant"),
                    format!("`{}` differs from the stream's tenant `{name}`", req.tenant),
                )
                .into());
            }
            if tuples.len().saturating_add(req.relationships.len()) > MAX_IMPORT {
                return Err(ApiError::invalid(
                    format!("requests[{message}].relationships"),
                    format!("an import may carry at most {MAX_IMPORT} relationships"),
                )
                .into());
            }
            for (i, r) in req.relationships.iter().enumerate() {
                // Formatted only for an error (millions of tuples per import).
                let field = ImportField { message, index: i };
                let tuple = tuple_from_pb(r, &field)?;
                validate_against_schema(schema, &tuple)
                    .map_err(|e| ApiError::invalid(field.to_string(), e))?;
                tuples.push(tuple);
            }
            message += 1;
        }
        match target {
            Some((_, tenant, _)) if !tuples.is_empty() => Ok((tenant, tuples)),
            _ => Err(ApiError::invalid(
                "relationships",
                "the import stream carried no relationships",
            )
            .into()),
        }
    }
}

/// `requests[M].relationships[I]`, the path of one imported relationship.
struct ImportField {
    message: usize,
    index: usize,
}

impl std::fmt::Display for ImportField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "requests[{}].relationships[{}]",
            self.message, self.index
        )
    }
}

/// `pb::Precondition`s → storage preconditions, naming bad fields.
fn preconditions_from_pb(list: &[pb::Precondition]) -> Result<Vec<Precondition>, ApiError> {
    use pb::precondition::Operation;
    if list.len() > MAX_PRECONDITIONS {
        return Err(ApiError::invalid(
            "preconditions",
            format!(
                "at most {MAX_PRECONDITIONS} preconditions per request (got {})",
                list.len()
            ),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            let field = format!("preconditions[{i}].filter");
            let filter = filter_from_pb(required(&p.filter, &field)?, &field, false)?;
            match Operation::try_from(p.operation) {
                Ok(Operation::MustMatch) => Ok(Precondition::MustMatch(filter)),
                Ok(Operation::MustNotMatch) => Ok(Precondition::MustNotMatch(filter)),
                _ => Err(ApiError::invalid(
                    format!("preconditions[{i}].operation"),
                    "must be OPERATION_MUST_MATCH or OPERATION_MUST_NOT_MATCH",
                )),
            }
        })
        .collect()
}

/// A storage scan cursor as an API token (base64url, no padding).
fn encode_cursor(cursor: &Cursor) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(cursor.as_bytes())
}

/// An API cursor token → a storage cursor (its content is checked when used).
fn decode_cursor(token: &str) -> Result<Cursor, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| ApiError::invalid("cursor", "is not a cursor returned by this API"))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            "cursor",
            "is not a cursor returned by this API",
        ));
    }
    Ok(Cursor::from_bytes(bytes))
}

/// Storage errors of a scan, with a bad cursor named as the `cursor` field.
fn scan_error(e: StorageError) -> ApiError {
    match e {
        StorageError::InvalidCursor => {
            ApiError::invalid("cursor", "is malformed or belongs to another tenant")
        }
        other => ApiError::from(other),
    }
}

/// Counts (up to `limit`) the tuples `filter` matches at `revision`, after
/// checking `preconditions` there: what a delete would do, changing nothing.
fn dry_run_count(
    state: &AppState,
    tenant: &Tenant,
    revision: Revision,
    filter: &TupleFilter,
    preconditions: &[Precondition],
    limit: Option<usize>,
) -> Result<u64, ApiError> {
    let snapshot = state.store.snapshot(tenant, revision)?;
    for (index, p) in preconditions.iter().enumerate() {
        let (f, must_match, kind) = match p {
            Precondition::MustMatch(f) => (f, true, "must match"),
            Precondition::MustNotMatch(f) => (f, false, "must not match"),
        };
        let matched = !snapshot.scan(f, None, 1)?.tuples.is_empty();
        if matched != must_match {
            return Err(StorageError::PreconditionFailed { index, kind }.into());
        }
    }
    let max = limit.unwrap_or(usize::MAX);
    let mut count = 0usize;
    let mut cursor = None;
    while count < max {
        let page = snapshot.scan(filter, cursor.as_ref(), (max - count).min(COUNT_PAGE))?;
        count += page.tuples.len();
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(count.min(max) as u64)
}

#[tonic::async_trait]
impl pb::relationship_service_server::RelationshipService for RelationshipApi {
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant, updates = request.get_ref().updates.len()))]
    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Result<Response<pb::WriteRelationshipsResponse>, Status> {
        use pb::relationship_update::Operation;
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        if req.updates.is_empty() {
            return Err(ApiError::invalid("updates", "at least one update is required").into());
        }
        if req.updates.len() > MAX_UPDATES {
            return Err(ApiError::invalid(
                "updates",
                format!(
                    "at most {MAX_UPDATES} updates per request (got {}); use ImportRelationships for bulk loads",
                    req.updates.len()
                ),
            )
            .into());
        }
        let mut schema: Option<(Arc<SchemaEngine>, Revision)> = None;
        let mut batch = WriteBatch::new();
        for (i, update) in req.updates.iter().enumerate() {
            let field = format!("updates[{i}].relationship");
            let operation = Operation::try_from(update.operation).ok();
            if matches!(operation, None | Some(Operation::Unspecified)) {
                return Err(ApiError::invalid(
                    format!("updates[{i}].operation"),
                    "must be OPERATION_CREATE, OPERATION_TOUCH or OPERATION_DELETE",
                )
                .into());
            }
            let tuple = tuple_from_pb(required(&update.relationship, &field)?, &field)?;
            if operation == Some(Operation::Delete) {
                batch = batch.delete(tuple);
                continue;
            }
            let (entry, _) = match &schema {
                Some(s) => s,
                None => {
                    let entry = self.current_engine(&tenant)?;
                    let since = entry.active_since;
                    schema.insert((entry, since))
                }
            };
            validate_against_schema(entry.engine.schema(), &tuple)
                .map_err(|e| ApiError::invalid(&field, e))?;
            if let Some(caveat) = &tuple.caveat {
                entry
                    .engine
                    .check_caveat_context(&caveat.name, &caveat.context)
                    .map_err(|e| {
                        ApiError::invalid(format!("{field}.optional_caveat.context"), e)
                    })?;
            }
            batch = if operation == Some(Operation::Create) {
                batch.create(tuple)
            } else {
                batch.touch(tuple)
            };
        }
        for p in preconditions_from_pb(&req.preconditions)? {
            batch = batch.precondition(p);
        }
        let outcome = match schema {
            // Validated against a schema version: commit only if it is
            // still the active one.
            Some((_, since)) => {
                self.state
                    .committer
                    .propose_validated(&tenant, batch, since)
                    .await?
            }
            None => self.state.committer.propose(&tenant, batch).await?,
        };
        Ok(Response::new(pb::WriteRelationshipsResponse {
            written_at: Some(zookie_to_pb(outcome.revision, &self.state.zookies)),
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant, dry_run = request.get_ref().dry_run))]
    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Result<Response<pb::DeleteRelationshipsResponse>, Status> {
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        let filter = filter_from_pb(required(&req.filter, "filter")?, "filter", false)?;
        let preconditions = preconditions_from_pb(&req.preconditions)?;
        let limit = (req.limit > 0).then_some(req.limit as usize);
        if req.dry_run {
            let state = self.state.clone();
            let (revision, deleted) = tokio::task::spawn_blocking(move || {
                let revision = state.store.applied_revision();
                dry_run_count(&state, &tenant, revision, &filter, &preconditions, limit)
                    .map(|n| (revision, n))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("dry-run task failed: {e}")))??;
            return Ok(Response::new(pb::DeleteRelationshipsResponse {
                deleted_at: Some(zookie_to_pb(revision, &self.state.zookies)),
                deleted,
            }));
        }
        let mut batch = WriteBatch::new().delete_by_filter(filter, limit);
        for p in preconditions {
            batch = batch.precondition(p);
        }
        let outcome = self.state.committer.propose(&tenant, batch).await?;
        Ok(Response::new(pb::DeleteRelationshipsResponse {
            deleted_at: Some(zookie_to_pb(outcome.revision, &self.state.zookies)),
            deleted: outcome.changes as u64,
        }))
    }

    type ReadRelationshipsStream = ReceiverStream<Result<pb::ReadRelationshipsResponse, Status>>;

    /// Streams matches one by one, each with the cursor that resumes after it
    /// (one storage seek per relationship, so every cursor is exact; use
    /// ExportRelationships for bulk reads).
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant, limit = request.get_ref().limit))]
    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Result<Response<Self::ReadRelationshipsStream>, Status> {
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        let filter = match &req.filter {
            Some(f) => filter_from_pb(f, "filter", true)?,
            None => TupleFilter::default(),
        };
        let mut cursor = if req.cursor.is_empty() {
            None
        } else {
            Some(decode_cursor(&req.cursor)?)
        };
        let limit = (req.limit > 0).then_some(req.limit as usize);
        let revision = self
            .state
            .read_revision(consistency_from_pb(
                req.consistency.as_ref(),
                &self.state.zookies,
            )?)
            .await?;
        let read_at = zookie_to_pb(revision, &self.state.zookies);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let state = self.state.clone();
        let now = verdict_storage::Timestamp::now();
        tokio::task::spawn_blocking(move || {
            let mut run = || -> Result<(), ApiError> {
                let snapshot = state.store.snapshot(&tenant, revision)?;
                let mut sent = 0usize;
                while limit.is_none_or(|l| sent < l) {
                    let page = snapshot
                        .scan(&filter, cursor.as_ref(), 1)
                        .map_err(scan_error)?;
                    let Some(tuple) = page.tuples.into_iter().next() else {
                        break;
                    };
                    // An expired relationship is gone on every read path.
                    if tuple.is_expired_at(now) {
                        match page.cursor {
                            Some(c) => {
                                cursor = Some(c);
                                continue;
                            }
                            None => break,
                        }
                    }
                    let item = pb::ReadRelationshipsResponse {
                        relationship: Some(tuple_to_pb(&tuple)),
                        read_at: Some(read_at.clone()),
                        cursor: page.cursor.as_ref().map(encode_cursor).unwrap_or_default(),
                    };
                    if tx.blocking_send(Ok(item)).is_err() {
                        return Ok(()); // the client went away
                    }
                    sent += 1;
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    #[tracing::instrument(skip_all)]
    async fn import_relationships(
        &self,
        request: Request<Streaming<pb::ImportRelationshipsRequest>>,
    ) -> Result<Response<pb::ImportRelationshipsResponse>, Status> {
        let (tenant, tuples) = self.collect_import(request.into_inner()).await?;
        let imported = tuples.len() as u64;
        let outcome = self.state.committer.import(&tenant, tuples).await?;
        Ok(Response::new(pb::ImportRelationshipsResponse {
            imported,
            written_at: Some(zookie_to_pb(outcome.revision, &self.state.zookies)),
        }))
    }

    type ExportRelationshipsStream =
        ReceiverStream<Result<pb::ExportRelationshipsResponse, Status>>;

    /// Streams every relationship (of every type, including types a later
    /// schema dropped) matching the optional filter, in chunks of
    /// [`EXPORT_CHUNK`], all at one revision.
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn export_relationships(
        &self,
        request: Request<pb::ExportRelationshipsRequest>,
    ) -> Result<Response<Self::ExportRelationshipsStream>, Status> {
        let req = request.into_inner();
        let tenant = self.state.tenant(&req.tenant)?;
        let filter = match &req.optional_filter {
            Some(f) => filter_from_pb(f, "optional_filter", true)?,
            None => TupleFilter::default(),
        };
        let revision = self
            .state
            .read_revision(consistency_from_pb(
                req.consistency.as_ref(),
                &self.state.zookies,
            )?)
            .await?;
        let read_at = zookie_to_pb(revision, &self.state.zookies);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let state = self.state.clone();
        let now = verdict_storage::Timestamp::now();
        tokio::task::spawn_blocking(move || {
            let run = || -> Result<(), ApiError> {
                let snapshot = state.store.snapshot(&tenant, revision)?;
                let mut cursor = None;
                let mut first = true;
                loop {
                    let page = snapshot.scan(&filter, cursor.as_ref(), EXPORT_CHUNK)?;
                    if page.tuples.is_empty() && !first {
                        break;
                    }
                    first = false;
                    let chunk = pb::ExportRelationshipsResponse {
                        relationships: page
                            .tuples
                            .iter()
                            .filter(|t| !t.is_expired_at(now))
                            .map(tuple_to_pb)
                            .collect(),
                        read_at: Some(read_at.clone()),
                    };
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return Ok(());
                    }
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e.into()));
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pb::relationship_service_server::RelationshipService as _;
    use crate::api::pb::schema_service_server::SchemaService as _;
    use crate::api::SchemaApi;
    use crate::server::config::ServerSettings;
    use pb::relationship_update::Operation as UpdateOp;
    use tonic::Code;

    const SCHEMA: &str = r#"
definition user {}

definition group {
    relation member: user
}

definition document {
    relation viewer: user | group#member
    relation owner: user
    permission view = viewer + owner
}
"#;

    async fn setup() -> (tempfile::TempDir, Arc<AppState>, RelationshipApi) {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(
            AppState::open(ServerSettings::for_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        SchemaApi::new(state.clone())
            .write_schema(Request::new(pb::WriteSchemaRequest {
                schema: SCHEMA.into(),
                ..Default::default()
            }))
            .await
            .unwrap();
        let api = RelationshipApi::new(state.clone());
        (dir, state, api)
    }

    fn rel(text: &str) -> pb::Relationship {
        tuple_to_pb(&Tuple::parse(text).unwrap())
    }

    fn update(op: UpdateOp, text: &str) -> pb::RelationshipUpdate {
        pb::RelationshipUpdate {
            operation: op as i32,
            relationship: Some(rel(text)),
        }
    }

    fn write_req(updates: Vec<pb::RelationshipUpdate>) -> Request<pb::WriteRelationshipsRequest> {
        Request::new(pb::WriteRelationshipsRequest {
            updates,
            ..Default::default()
        })
    }

    fn doc_filter() -> pb::RelationshipFilter {
        pb::RelationshipFilter {
            resource_type: "document".into(),
            ..Default::default()
        }
    }

    async fn read_all(
        api: &RelationshipApi,
        req: pb::ReadRelationshipsRequest,
    ) -> Vec<Result<pb::ReadRelationshipsResponse, Status>> {
        let stream = api
            .read_relationships(Request::new(req))
            .await
            .unwrap()
            .into_inner();
        stream.collect().await
    }

    fn full() -> Option<pb::Consistency> {
        Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        })
    }

    fn texts(items: &[Result<pb::ReadRelationshipsResponse, Status>]) -> Vec<String> {
        items
            .iter()
            .map(|r| {
                let r = r.as_ref().unwrap();
                tuple_from_pb(r.relationship.as_ref().unwrap(), "r")
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[tokio::test]
    async fn write_then_read_back_at_the_written_zookie() {
        let (_dir, state, api) = setup().await;
        let written = api
            .write_relationships(write_req(vec![
                update(UpdateOp::Create, "document:a#viewer@user:alice"),
                update(UpdateOp::Touch, "document:b#viewer@group:eng#member"),
                update(UpdateOp::Create, "group:eng#member@user:bob"),
            ]))
            .await
            .unwrap()
            .into_inner()
            .written_at
            .unwrap();
        let items = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: Some(pb::Consistency {
                    requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(
                        written.clone(),
                    )),
                }),
                filter: Some(doc_filter()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            texts(&items),
            vec![
                "document:a#viewer@user:alice",
                "document:b#viewer@group:eng#member"
            ]
        );
        let read_at = state
            .zookies
            .decode(&items[0].as_ref().unwrap().read_at.as_ref().unwrap().token)
            .unwrap();
        assert!(read_at >= state.zookies.decode(&written.token).unwrap());
        // A DELETE removes it; a DELETE of an absent tuple is a no-op.
        api.write_relationships(write_req(vec![
            update(UpdateOp::Delete, "document:a#viewer@user:alice"),
            update(UpdateOp::Delete, "document:zzz#viewer@user:nobody"),
        ]))
        .await
        .unwrap();
        let items = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                filter: Some(doc_filter()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(texts(&items), vec!["document:b#viewer@group:eng#member"]);
    }

    #[tokio::test]
    async fn create_of_an_existing_relationship_is_already_exists() {
        let (_dir, _state, api) = setup().await;
        api.write_relationships(write_req(vec![update(
            UpdateOp::Create,
            "document:a#viewer@user:alice",
        )]))
        .await
        .unwrap();
        let err = api
            .write_relationships(write_req(vec![update(
                UpdateOp::Create,
                "document:a#viewer@user:alice",
            )]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{err}");
        // TOUCH of the same tuple is fine.
        api.write_relationships(write_req(vec![update(
            UpdateOp::Touch,
            "document:a#viewer@user:alice",
        )]))
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn failed_precondition_writes_nothing() {
        let (_dir, _state, api) = setup().await;
        let mut req = pb::WriteRelationshipsRequest {
            updates: vec![update(UpdateOp::Create, "document:a#viewer@user:alice")],
            preconditions: vec![pb::Precondition {
                operation: pb::precondition::Operation::MustMatch as i32,
                filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    optional_resource_id: "a".into(),
                    optional_relation: "owner".into(),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let err = api
            .write_relationships(Request::new(req.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
        let items = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                ..Default::default()
            },
        )
        .await;
        assert!(items.is_empty(), "{:?}", texts(&items));
        // MUST_NOT_MATCH on the same filter holds: the write goes through.
        req.preconditions[0].operation = pb::precondition::Operation::MustNotMatch as i32;
        api.write_relationships(Request::new(req.clone()))
            .await
            .unwrap();
        // An unspecified precondition operation is named.
        req.preconditions[0].operation = 0;
        let err = api
            .write_relationships(Request::new(req))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("preconditions[0].operation"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn schema_violations_name_the_update() {
        let (_dir, _state, api) = setup().await;
        for bad in [
            "document:a#editor@user:alice",      // unknown relation
            "document:a#viewer@document:b",      // disallowed subject type
            "document:a#view@user:alice",        // a permission
            "folder:a#viewer@user:alice",        // unknown type
            "document:a#viewer@group:eng",       // group without #member
            "document:a#owner@group:eng#member", // userset not allowed
        ] {
            let err = api
                .write_relationships(write_req(vec![
                    update(UpdateOp::Touch, "document:ok#viewer@user:alice"),
                    update(UpdateOp::Create, bad),
                ]))
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err}");
            assert!(
                err.message().contains("updates[1].relationship"),
                "{bad}: {err}"
            );
        }
        // A DELETE only has to be well formed.
        api.write_relationships(write_req(vec![update(
            UpdateOp::Delete,
            "folder:a#viewer@user:alice",
        )]))
        .await
        .unwrap();
        // Malformed ids, unspecified operations, empty and oversized requests.
        let mut malformed = update(UpdateOp::Touch, "document:a#viewer@user:alice");
        malformed
            .relationship
            .as_mut()
            .unwrap()
            .resource
            .as_mut()
            .unwrap()
            .object_id = "has space".into();
        let err = api
            .write_relationships(write_req(vec![malformed]))
            .await
            .unwrap_err();
        assert!(err.message().contains("updates[0].relationship"), "{err}");
        let mut unspecified = update(UpdateOp::Touch, "document:a#viewer@user:alice");
        unspecified.operation = 0;
        let err = api
            .write_relationships(write_req(vec![unspecified]))
            .await
            .unwrap_err();
        assert!(err.message().contains("updates[0].operation"), "{err}");
        let err = api
            .write_relationships(write_req(vec![]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("`updates`"), "{err}");
        let many = (0..=MAX_UPDATES)
            .map(|i| update(UpdateOp::Touch, &format!("document:d{i}#viewer@user:alice")))
            .collect();
        let err = api.write_relationships(write_req(many)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("`updates`"), "{err}");
        let items = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                ..Default::default()
            },
        )
        .await;
        assert!(items.is_empty(), "{:?}", texts(&items));
    }

    #[tokio::test]
    async fn writes_without_a_schema_fail_precondition() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(
            AppState::open(ServerSettings::for_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        let err = RelationshipApi::new(state)
            .write_relationships(write_req(vec![update(
                UpdateOp::Touch,
                "document:a#viewer@user:alice",
            )]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    }

    #[tokio::test]
    async fn delete_by_filter_dry_run_counts_and_changes_nothing() {
        let (_dir, _state, api) = setup().await;
        let updates = (0..5)
            .map(|i| update(UpdateOp::Touch, &format!("document:d{i}#viewer@user:alice")))
            .chain([update(UpdateOp::Touch, "group:eng#member@user:alice")])
            .collect();
        api.write_relationships(write_req(updates)).await.unwrap();
        let req = |dry_run, limit| {
            Request::new(pb::DeleteRelationshipsRequest {
                filter: Some(doc_filter()),
                dry_run,
                limit,
                ..Default::default()
            })
        };
        let dry = api.delete_relationships(req(true, 0)).await.unwrap();
        assert_eq!(dry.into_inner().deleted, 5);
        let dry = api.delete_relationships(req(true, 3)).await.unwrap();
        assert_eq!(dry.into_inner().deleted, 3);
        let all = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(all.len(), 6);
        let done = api.delete_relationships(req(false, 2)).await.unwrap();
        assert_eq!(done.into_inner().deleted, 2);
        let done = api.delete_relationships(req(false, 0)).await.unwrap();
        assert_eq!(done.into_inner().deleted, 3);
        let all = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(texts(&all), vec!["group:eng#member@user:alice"]);
        // The filter needs a resource type.
        let err = api
            .delete_relationships(Request::new(pb::DeleteRelationshipsRequest {
                filter: Some(pb::RelationshipFilter::default()),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert!(err.message().contains("filter.resource_type"), "{err}");
        // A failing precondition fails a dry run too.
        let err = api
            .delete_relationships(Request::new(pb::DeleteRelationshipsRequest {
                filter: Some(pb::RelationshipFilter {
                    resource_type: "group".into(),
                    ..Default::default()
                }),
                preconditions: vec![pb::Precondition {
                    operation: pb::precondition::Operation::MustMatch as i32,
                    filter: Some(doc_filter()),
                }],
                dry_run: true,
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
    }

    #[tokio::test]
    async fn read_with_limit_and_cursor_resumes() {
        let (_dir, _state, api) = setup().await;
        let updates = (0..7)
            .map(|i| update(UpdateOp::Touch, &format!("document:d{i}#viewer@user:alice")))
            .collect();
        api.write_relationships(write_req(updates)).await.unwrap();
        let mut seen = Vec::new();
        let mut cursor = String::new();
        let mut rounds = 0;
        loop {
            let page = read_all(
                &api,
                pb::ReadRelationshipsRequest {
                    consistency: full(),
                    filter: Some(doc_filter()),
                    limit: 3,
                    cursor: cursor.clone(),
                    ..Default::default()
                },
            )
            .await;
            assert!(page.len() <= 3);
            if page.is_empty() {
                break;
            }
            seen.extend(texts(&page));
            cursor = page.last().unwrap().as_ref().unwrap().cursor.clone();
            rounds += 1;
            assert!(rounds < 10);
        }
        let expected: Vec<String> = (0..7)
            .map(|i| format!("document:d{i}#viewer@user:alice"))
            .collect();
        assert_eq!(seen, expected);
        assert_eq!(rounds, 3);
        // Resuming from the cursor of any item continues right after it.
        let first = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                filter: Some(doc_filter()),
                ..Default::default()
            },
        )
        .await;
        let after_second = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                filter: Some(doc_filter()),
                limit: 1,
                cursor: first[1].as_ref().unwrap().cursor.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(texts(&after_second), vec!["document:d2#viewer@user:alice"]);
        // A cursor that does not decode is named.
        let err = api
            .read_relationships(Request::new(pb::ReadRelationshipsRequest {
                cursor: "!!not a cursor!!".into(),
                ..Default::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("cursor"), "{err}");
        let garbage = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xFFu8; 3]);
        let items = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                cursor: garbage,
                ..Default::default()
            },
        )
        .await;
        let err = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.message().contains("cursor"), "{err}");
    }

    #[tokio::test]
    async fn import_then_export_round_trips() {
        let (_dir, _state, api) = setup().await;
        let mut expected: Vec<String> = (0..2500)
            .map(|i| format!("document:d{i:04}#viewer@user:u{}", i % 7))
            .collect();
        expected.push("group:eng#member@user:bob".into());
        let messages: Vec<Result<pb::ImportRelationshipsRequest, Status>> = expected
            .chunks(1000)
            .map(|chunk| {
                Ok(pb::ImportRelationshipsRequest {
                    tenant: String::new(),
                    relationships: chunk.iter().map(|t| rel(t)).collect(),
                })
            })
            .collect();
        let (tenant, tuples) = api
            .collect_import(tokio_stream::iter(messages))
            .await
            .unwrap();
        assert_eq!(tuples.len(), expected.len());
        let outcome = api.state.committer.import(&tenant, tuples).await.unwrap();
        assert!(outcome.revision.0 > 0);
        let chunks: Vec<_> = api
            .export_relationships(Request::new(pb::ExportRelationshipsRequest {
                consistency: full(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        let chunks: Vec<pb::ExportRelationshipsResponse> =
            chunks.into_iter().map(Result::unwrap).collect();
        assert!(chunks.iter().all(|c| c.relationships.len() <= EXPORT_CHUNK));
        assert_eq!(chunks.len(), 3);
        let mut exported: Vec<String> = chunks
            .iter()
            .flat_map(|c| c.relationships.iter())
            .map(|r| tuple_from_pb(r, "r").unwrap().to_string())
            .collect();
        exported.sort();
        expected.sort();
        assert_eq!(exported, expected);
        // A filtered export.
        let groups: Vec<_> = api
            .export_relationships(Request::new(pb::ExportRelationshipsRequest {
                consistency: full(),
                optional_filter: Some(pb::RelationshipFilter {
                    resource_type: "group".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner()
            .collect()
            .await;
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].as_ref().unwrap().relationships.len(), 1);
    }

    #[tokio::test]
    async fn import_rejects_schema_violations_naming_message_and_index() {
        let (_dir, _state, api) = setup().await;
        let messages = vec![
            Ok(pb::ImportRelationshipsRequest {
                tenant: String::new(),
                relationships: vec![rel("document:a#viewer@user:alice")],
            }),
            Ok(pb::ImportRelationshipsRequest {
                tenant: String::new(),
                relationships: vec![
                    rel("document:b#viewer@user:alice"),
                    rel("document:b#editor@user:alice"),
                ],
            }),
        ];
        let err = api
            .collect_import(tokio_stream::iter(messages))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("requests[1].relationships[1]"),
            "{err}"
        );
        let err = api
            .collect_import(tokio_stream::iter(Vec::new()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    #[tokio::test]
    async fn caveat_context_types_are_checked_and_expired_tuples_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(
            AppState::open(ServerSettings::for_data_dir(dir.path()))
                .await
                .unwrap(),
        );
        SchemaApi::new(state.clone())
            .write_schema(Request::new(pb::WriteSchemaRequest {
                schema: "use expiration\ndefinition user {}\ncaveat under(amount int, limit int) {\n amount <= limit\n}\ndefinition account {\n relation spender: user with under | user with expiration\n}".into(),
                ..Default::default()
            }))
            .await
            .unwrap();
        let api = RelationshipApi::new(state.clone());
        // A string where the caveat declares an int: refused, nothing written.
        let err = api
            .write_relationships(write_req(vec![update(
                UpdateOp::Touch,
                r#"account:a#spender@user:ann[under:{"limit":"lots"}]"#,
            )]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message()
                .contains("updates[0].relationship.optional_caveat.context"),
            "{err}"
        );
        assert!(err.message().contains("limit"), "{err}");
        api.write_relationships(write_req(vec![
            update(
                UpdateOp::Touch,
                r#"account:a#spender@user:ann[under:{"limit":100}]"#,
            ),
            update(
                UpdateOp::Touch,
                "account:a#spender@user:old[expiration:2020-01-01T00:00:00Z]",
            ),
            update(
                UpdateOp::Touch,
                "account:a#spender@user:new[expiration:2300-01-01T00:00:00Z]",
            ),
        ]))
        .await
        .unwrap();
        let items = read_all(
            &api,
            pb::ReadRelationshipsRequest {
                consistency: full(),
                filter: Some(pb::RelationshipFilter {
                    resource_type: "account".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await;
        let read = texts(&items);
        assert_eq!(read.len(), 2, "{read:?}");
        assert!(read.iter().all(|t| !t.contains("user:old")), "{read:?}");
    }
}
