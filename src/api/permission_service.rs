//! PermissionService: check, bulk check, expand, lookup resources and
//! lookup subjects, each evaluated at the revision the request's
//! consistency resolves to and answered with the zookie of that revision.
//!
//! Engine work (CPU, RocksDB reads) runs on the blocking pool over a
//! snapshot pinned to that revision (a lone check inline, see
//! [`super::inline_gate`]); streams are fed through a bounded
//! channel, so a slow client applies back-pressure and a client that goes
//! away stops the work.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use verdict_storage::{RelationStore, Revision, SubjectRef, Tenant, Timestamp};

use super::convert::zookie_to_pb;
use super::convert::{
    self, consistency_from_pb, object_from_pb, required, struct_to_json, subject_from_pb,
};
use super::error::ApiError;
use super::inline_gate::InlineGate;
use super::pb;
use crate::engine::{self, CheckRequest, ExpandKind, ExpandNode, Outcome};
use crate::server::decision_log;
use crate::server::state::{AppState, SchemaEngine};

/// Most items one BulkCheck may carry.
pub const MAX_BULK_CHECK_ITEMS: usize = 1_000;
/// Most resources the engine is asked for per lookup page.
pub const MAX_LOOKUP_PAGE: usize = 1_000;
/// Request metadata that makes a check skip the shared decision cache
/// (neither read nor filled) when its value is `bypass`: cold-path
/// measurement (`verdict bench run --mode cold`). It only costs the caller
/// time, so it needs no extra privilege.
pub const CACHE_HEADER: &str = "x-verdict-cache";
/// Responses buffered per stream before the producer waits for the client.
const STREAM_BUFFER: usize = 128;

/// The PermissionService implementation.
#[derive(Debug, Clone)]
pub struct PermissionApi {
    state: Arc<AppState>,
    inline: Arc<InlineGate>,
}

impl PermissionApi {
    /// A service over the shared state.
    pub fn new(state: Arc<AppState>) -> Self {
        PermissionApi {
            state,
            inline: Arc::new(InlineGate::new()),
        }
    }

    /// Tenant, revision and engine for a read.
    async fn resolve(
        &self,
        tenant: &str,
        consistency: Option<&pb::Consistency>,
    ) -> Result<(Tenant, Revision, Arc<SchemaEngine>), ApiError> {
        let tenant = self.state.tenant(tenant)?;
        let revision = self
            .state
            .read_revision(consistency_from_pb(consistency, &self.state.zookies)?)
            .await?;
        let engine = self.state.engine_at(&tenant, revision)?;
        Ok((tenant, revision, engine))
    }
}

/// Runs engine work on the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("evaluation task failed: {e}")))?
}

/// A non-empty permission name.
fn permission_from_pb(permission: &str, field: &str) -> Result<String, ApiError> {
    if permission.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    Ok(permission.to_string())
}

fn context_from_pb(context: Option<&prost_types::Struct>) -> Map<String, Value> {
    context.map(struct_to_json).unwrap_or_default()
}

/// One check question from the wire; field names are prefixed by `prefix`
/// (`""` or `items[3].`).
fn check_request_from_pb(
    resource: &Option<pb::ObjectRef>,
    permission: &str,
    subject: &Option<pb::SubjectRef>,
    context: Option<&prost_types::Struct>,
    prefix: &str,
    now: Timestamp,
) -> Result<CheckRequest, ApiError> {
    let resource_field = format!("{prefix}resource");
    let subject_field = format!("{prefix}subject");
    let resource = object_from_pb(required(resource, &resource_field)?, &resource_field)?;
    let permission = permission_from_pb(permission, &format!("{prefix}permission"))?;
    let subject = subject_from_pb(required(subject, &subject_field)?, &subject_field)?;
    Ok(CheckRequest {
        resource,
        permission,
        subject,
        context: context_from_pb(context),
        now,
        trace: false,
    })
}

/// The wire permissionship and sorted missing caveat parameters.
fn permissionship(outcome: &Outcome) -> (pb::Permissionship, Vec<String>) {
    match outcome {
        Outcome::Allowed => (pb::Permissionship::Allowed, Vec::new()),
        Outcome::Denied => (pb::Permissionship::Denied, Vec::new()),
        // A BTreeSet: already sorted and de-duplicated.
        Outcome::Conditional { missing } => (
            pb::Permissionship::Conditional,
            missing.iter().cloned().collect(),
        ),
    }
}

fn check_to_pb(
    response: &engine::CheckResponse,
    checked_at: pb::Zookie,
    schema_version: u64,
    evaluation_micros: u64,
) -> pb::CheckResponse {
    let (permissionship, missing_fields) = permissionship(&response.outcome);
    pb::CheckResponse {
        permissionship: permissionship as i32,
        missing_fields,
        checked_at: Some(checked_at),
        schema_version,
        cache_hits: response.cache_hits,
        evaluation_micros,
        trace: response
            .trace
            .as_ref()
            .map(engine::TraceNode::render)
            .unwrap_or_default(),
        footprint: None,
    }
}

/// The answer's footprint on the wire, when it has one (see
/// [`engine::CheckResponse::footprint`]); keys derived from `tenant`.
fn footprint_to_pb(
    tenant: String,
    response: &engine::CheckResponse,
) -> Option<pb::DecisionFootprint> {
    let keys = response.footprint.as_ref()?;
    Some(pb::DecisionFootprint {
        tenant,
        keys: keys.to_vec(),
    })
}

/// A per-item error, as the gRPC status the error maps to.
fn bulk_error(err: ApiError) -> pb::BulkCheckResult {
    let status: Status = err.into();
    pb::BulkCheckResult {
        response: Some(pb::bulk_check_result::Response::Error(pb::BulkCheckError {
            code: status.code() as i32,
            message: status.message().to_string(),
        })),
    }
}

fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// [`ExpandNode`] → `pb::ExpandNode`, recursively.
fn expand_to_pb(node: &ExpandNode) -> pb::ExpandNode {
    use pb::expand_node::Kind;
    let (kind, children, subjects) = match &node.kind {
        ExpandKind::Leaf(subjects) => (
            Kind::Leaf,
            Vec::new(),
            subjects
                .iter()
                .map(|s| convert::subject_to_pb(&s.subject))
                .collect(),
        ),
        ExpandKind::Union(c) => (
            Kind::Union,
            c.iter().map(expand_to_pb).collect(),
            Vec::new(),
        ),
        ExpandKind::Intersection(c) => (
            Kind::Intersection,
            c.iter().map(expand_to_pb).collect(),
            Vec::new(),
        ),
        ExpandKind::Exclusion(c) => (
            Kind::Exclusion,
            c.iter().map(expand_to_pb).collect(),
            Vec::new(),
        ),
        ExpandKind::Cycle => (Kind::Cycle, Vec::new(), Vec::new()),
    };
    pb::ExpandNode {
        object: Some(convert::object_to_pb(&node.object)),
        relation: node.relation.clone(),
        kind: kind as i32,
        children,
        subjects,
    }
}

/// A validated lookup-resources question.
struct ResourceQuery {
    resource_type: String,
    permission: String,
    subject: SubjectRef,
    context: Map<String, Value>,
    cursor: Option<String>,
    /// 0 = all.
    limit: usize,
}

type ResourceSender = mpsc::Sender<Result<pb::LookupResourcesResponse, Status>>;

/// Pages through lookup-resources over one snapshot, sending each resource
/// to `tx`. `ready` receives the outcome of the first page (so request
/// errors become the RPC's status); later errors are sent in the stream.
/// Stops when the limit is reached or the receiver is dropped.
fn run_lookup_resources(
    state: &AppState,
    schema: &SchemaEngine,
    tenant: &Tenant,
    revision: Revision,
    query: ResourceQuery,
    tx: &ResourceSender,
    ready: oneshot::Sender<Result<(), ApiError>>,
) {
    let mut ready = Some(ready);
    let zookie = zookie_to_pb(revision, &state.zookies);
    let now = Timestamp::now();
    let page_size = if query.limit > 0 && query.limit <= MAX_LOOKUP_PAGE {
        query.limit
    } else {
        MAX_LOOKUP_PAGE
    };
    let mut remaining = (query.limit > 0).then_some(query.limit);
    let mut cursor = query.cursor;
    let mut run = || -> Result<(), ApiError> {
        let snapshot = state.store.snapshot(tenant, revision)?;
        loop {
            if tx.is_closed() {
                return Ok(());
            }
            let want = remaining.map_or(page_size, |r| r.min(page_size));
            let page = schema.engine.lookup_resources(
                &snapshot,
                &query.resource_type,
                &query.permission,
                &query.subject,
                &query.context,
                now,
                cursor.as_deref(),
                want,
            )?;
            if let Some(r) = ready.take() {
                let _ = r.send(Ok(()));
            }
            for item in page.items {
                let (permissionship, missing_fields) = permissionship(&item.outcome);
                let response = pb::LookupResourcesResponse {
                    cursor: item.id.clone(),
                    resource_id: item.id,
                    permissionship: permissionship as i32,
                    missing_fields,
                    looked_up_at: Some(zookie.clone()),
                };
                if tx.blocking_send(Ok(response)).is_err() {
                    return Ok(()); // The client went away.
                }
                if let Some(r) = remaining.as_mut() {
                    *r -= 1;
                    if *r == 0 {
                        return Ok(());
                    }
                }
            }
            match page.cursor {
                // No progress would loop forever; treat it as the end.
                Some(next) if cursor.as_deref() != Some(next.as_str()) => cursor = Some(next),
                _ => return Ok(()),
            }
        }
    };
    if let Err(e) = run() {
        match ready.take() {
            Some(r) => {
                let _ = r.send(Err(e));
            }
            None => {
                let _ = tx.blocking_send(Err(e.into()));
            }
        }
    }
}

#[tonic::async_trait]
impl pb::permission_service_server::PermissionService for PermissionApi {
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let started = Instant::now();
        let bypass = request
            .metadata()
            .get(CACHE_HEADER)
            .is_some_and(|v| v.as_bytes() == b"bypass");
        let req = request.into_inner();
        let mut check = check_request_from_pb(
            &req.resource,
            &req.permission,
            &req.subject,
            req.context.as_ref(),
            "",
            Timestamp::now(),
        )?;
        check.trace = req.with_trace;
        let (tenant, revision, schema) =
            self.resolve(&req.tenant, req.consistency.as_ref()).await?;
        let state = self.state.clone();
        let version = schema.version;
        let footprint_tenant = req.with_footprint.then(|| tenant.as_str().to_string());
        // A warm answer needs no storage: serve it here rather than on the
        // blocking pool (the thread hand-off costs more than the lookup).
        let cached = (!bypass)
            .then(|| {
                let start = Instant::now();
                schema
                    .engine
                    .check_cached(tenant.as_str(), revision, &check)
                    .map(|r| (r, micros_since(start)))
            })
            .flatten();
        let (response, micros, check) = match cached {
            Some((response, micros)) => (response, micros, check),
            None => {
                let work = move || {
                    let snapshot = state.store.snapshot(&tenant, revision)?;
                    let start = Instant::now();
                    let response = if bypass {
                        schema.engine.without_cache().check(&snapshot, &check)?
                    } else {
                        schema.engine.check(&snapshot, &check)?
                    };
                    Ok::<_, ApiError>((response, micros_since(start), check))
                };
                match self.inline.try_pass() {
                    Some(_pass) => work()?,
                    None => blocking(work).await?,
                }
            }
        };
        decision_log::log_check(
            &self.state,
            &decision_log::current_request_id(),
            &req.tenant,
            &check,
            &response,
            revision.0,
            version,
            micros_since(started),
        );
        let mut answer = check_to_pb(
            &response,
            zookie_to_pb(revision, &self.state.zookies),
            version,
            micros,
        );
        answer.footprint = footprint_tenant.and_then(|tenant| footprint_to_pb(tenant, &response));
        Ok(Response::new(answer))
    }

    /// Per-item `evaluation_micros` is the time of the whole shared
    /// evaluation (items are decided together, not one by one).
    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant, items = request.get_ref().items.len()))]
    async fn bulk_check(
        &self,
        request: Request<pb::BulkCheckRequest>,
    ) -> Result<Response<pb::BulkCheckResponse>, Status> {
        let req = request.into_inner();
        if req.items.len() > MAX_BULK_CHECK_ITEMS {
            return Err(ApiError::invalid(
                "items",
                format!(
                    "has {} items; at most {MAX_BULK_CHECK_ITEMS} are allowed per call",
                    req.items.len()
                ),
            )
            .into());
        }
        let now = Timestamp::now();
        let converted: Vec<Result<CheckRequest, ApiError>> = req
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                check_request_from_pb(
                    &item.resource,
                    &item.permission,
                    &item.subject,
                    item.context.as_ref(),
                    &format!("items[{i}]."),
                    now,
                )
            })
            .collect();
        let (tenant, revision, schema) =
            self.resolve(&req.tenant, req.consistency.as_ref()).await?;
        let state = self.state.clone();
        let zookie = zookie_to_pb(revision, &self.state.zookies);
        let request_id = decision_log::current_request_id();
        let tenant_name = req.tenant.clone();
        let results = blocking(move || {
            let snapshot = state.store.snapshot(&tenant, revision)?;
            let mut slots: Vec<Option<Result<CheckRequest, ApiError>>> =
                converted.into_iter().map(Some).collect();
            let mut positions = Vec::new();
            let mut requests = Vec::new();
            for (i, slot) in slots.iter_mut().enumerate() {
                if matches!(slot, Some(Ok(_))) {
                    if let Some(Ok(r)) = slot.take() {
                        positions.push(i);
                        requests.push(r);
                    }
                }
            }
            let start = Instant::now();
            let answers = schema.engine.bulk_check(&snapshot, &requests);
            let micros = micros_since(start);
            let mut results: Vec<Option<pb::BulkCheckResult>> = slots
                .into_iter()
                .map(|slot| match slot {
                    Some(Err(e)) => Some(bulk_error(e)),
                    _ => None,
                })
                .collect();
            for ((i, answer), request) in positions.into_iter().zip(answers).zip(&requests) {
                if let Ok(r) = &answer {
                    decision_log::log_check(
                        &state,
                        &request_id,
                        &tenant_name,
                        request,
                        r,
                        revision.0,
                        schema.version,
                        micros,
                    );
                }
                let result = match answer {
                    Ok(r) => pb::BulkCheckResult {
                        response: Some(pb::bulk_check_result::Response::Item(check_to_pb(
                            &r,
                            zookie_to_pb(revision, &state.zookies),
                            schema.version,
                            micros,
                        ))),
                    },
                    Err(e) => bulk_error(ApiError::from(e)),
                };
                // `i` is a position in `slots`, so always present; were it
                // not, the slot stays empty and is reported below.
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(result);
                }
            }
            results
                .into_iter()
                .map(|r| r.ok_or_else(|| ApiError::Internal("bulk check lost a result".into())))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        Ok(Response::new(pb::BulkCheckResponse {
            results,
            checked_at: Some(zookie),
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn expand(
        &self,
        request: Request<pb::ExpandRequest>,
    ) -> Result<Response<pb::ExpandResponse>, Status> {
        let req = request.into_inner();
        let resource = object_from_pb(required(&req.resource, "resource")?, "resource")?;
        let permission = permission_from_pb(&req.permission, "permission")?;
        let (tenant, revision, schema) =
            self.resolve(&req.tenant, req.consistency.as_ref()).await?;
        let state = self.state.clone();
        let tree = blocking(move || {
            let snapshot = state.store.snapshot(&tenant, revision)?;
            let tree = schema
                .engine
                .expand(&snapshot, &resource, &permission, Timestamp::now())?;
            Ok(expand_to_pb(&tree))
        })
        .await?;
        Ok(Response::new(pb::ExpandResponse {
            tree: Some(tree),
            expanded_at: Some(zookie_to_pb(revision, &self.state.zookies)),
        }))
    }

    type LookupResourcesStream = ReceiverStream<Result<pb::LookupResourcesResponse, Status>>;

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<Self::LookupResourcesStream>, Status> {
        let req = request.into_inner();
        if req.resource_type.is_empty() {
            return Err(ApiError::invalid("resource_type", "is required").into());
        }
        let permission = permission_from_pb(&req.permission, "permission")?;
        let subject = subject_from_pb(required(&req.subject, "subject")?, "subject")?;
        let query = ResourceQuery {
            resource_type: req.resource_type,
            permission,
            subject,
            context: context_from_pb(req.context.as_ref()),
            cursor: (!req.cursor.is_empty()).then_some(req.cursor),
            limit: usize::try_from(req.limit).unwrap_or(usize::MAX),
        };
        let (tenant, revision, schema) =
            self.resolve(&req.tenant, req.consistency.as_ref()).await?;
        let state = self.state.clone();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (ready_tx, ready_rx) = oneshot::channel();
        tokio::task::spawn_blocking(move || {
            run_lookup_resources(&state, &schema, &tenant, revision, query, &tx, ready_tx);
        });
        match ready_rx.await {
            Ok(Ok(())) => Ok(Response::new(ReceiverStream::new(rx))),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(ApiError::Internal("lookup task ended without an answer".into()).into()),
        }
    }

    type LookupSubjectsStream = ReceiverStream<Result<pb::LookupSubjectsResponse, Status>>;

    #[tracing::instrument(skip_all, fields(tenant = %request.get_ref().tenant))]
    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<Self::LookupSubjectsStream>, Status> {
        let req = request.into_inner();
        let resource = object_from_pb(required(&req.resource, "resource")?, "resource")?;
        let permission = permission_from_pb(&req.permission, "permission")?;
        if req.subject_type.is_empty() {
            return Err(ApiError::invalid("subject_type", "is required").into());
        }
        let subject_type = req.subject_type;
        let subject_relation = (!req.optional_subject_relation.is_empty()
            && req.optional_subject_relation != "...")
            .then_some(req.optional_subject_relation);
        let context = context_from_pb(req.context.as_ref());
        let (tenant, revision, schema) =
            self.resolve(&req.tenant, req.consistency.as_ref()).await?;
        let state = self.state.clone();
        let subjects = blocking(move || {
            let snapshot = state.store.snapshot(&tenant, revision)?;
            Ok(schema.engine.lookup_subjects(
                &snapshot,
                &resource,
                &permission,
                &subject_type,
                subject_relation.as_deref(),
                &context,
                Timestamp::now(),
            )?)
        })
        .await?;
        let zookie = zookie_to_pb(revision, &self.state.zookies);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            for subject in subjects {
                let (permissionship, missing_fields) = permissionship(&subject.outcome);
                let response = pb::LookupSubjectsResponse {
                    subject_id: subject.id,
                    permissionship: permissionship as i32,
                    missing_fields,
                    excluded_subject_ids: subject.excluded,
                    looked_up_at: Some(zookie.clone()),
                };
                if tx.send(Ok(response)).await.is_err() {
                    break; // The client went away.
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt;
    use verdict_storage::{Op, SchemaVersionRecord, Tuple, WriteBatch};

    use super::*;
    use crate::api::pb::permission_service_server::PermissionService;
    use crate::server::config::ServerSettings;

    const SCHEMA: &str = r#"
definition user {}

definition group {
  relation member: user | group#member
}

caveat is_one(x int) {
  x == 1
}

definition doc {
  relation viewer: user | group#member | user with is_one
  relation banned: user
  permission view = viewer - banned
}

definition page {
  relation viewer: user | user:*
  relation banned: user
  permission view = viewer - banned
}
"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        state: Arc<AppState>,
        api: PermissionApi,
    }

    impl Fixture {
        async fn new(tuples: &[&str]) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let state = Arc::new(
                AppState::open(ServerSettings::for_data_dir(dir.path()))
                    .await
                    .unwrap(),
            );
            let tenant = state.tenant("").unwrap();
            state
                .committer
                .propose(
                    &tenant,
                    WriteBatch::new().put_schema(SchemaVersionRecord {
                        version: 1,
                        text: SCHEMA.to_string(),
                        comment: String::new(),
                        author: String::new(),
                    }),
                )
                .await
                .unwrap();
            let fixture = Fixture {
                api: PermissionApi::new(state.clone()),
                state,
                _dir: dir,
            };
            if !tuples.is_empty() {
                fixture.write(tuples, Op::Touch).await;
            }
            fixture
        }

        /// Applies one batch; returns its zookie.
        async fn write(&self, tuples: &[&str], op: fn(Tuple) -> Op) -> pb::Zookie {
            let tenant = self.state.tenant("").unwrap();
            let batch = WriteBatch {
                ops: tuples
                    .iter()
                    .map(|t| op(Tuple::parse(t).unwrap()))
                    .collect(),
                ..WriteBatch::default()
            };
            let outcome = self.state.committer.propose(&tenant, batch).await.unwrap();
            zookie_to_pb(outcome.revision, &self.state.zookies)
        }
    }

    fn obj(s: &str) -> pb::ObjectRef {
        let (t, id) = s.split_once(':').unwrap();
        pb::ObjectRef {
            object_type: t.into(),
            object_id: id.into(),
        }
    }

    fn subj(s: &str) -> pb::SubjectRef {
        let (o, rel) = s.split_once('#').unwrap_or((s, ""));
        pb::SubjectRef {
            object: Some(obj(o)),
            optional_relation: rel.into(),
        }
    }

    fn full() -> Option<pb::Consistency> {
        Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        })
    }

    fn check_req(resource: &str, permission: &str, subject: &str) -> pb::CheckRequest {
        pb::CheckRequest {
            consistency: full(),
            resource: Some(obj(resource)),
            permission: permission.into(),
            subject: Some(subj(subject)),
            ..pb::CheckRequest::default()
        }
    }

    async fn check(
        api: &PermissionApi,
        req: pb::CheckRequest,
    ) -> Result<pb::CheckResponse, Status> {
        api.check(Request::new(req)).await.map(Response::into_inner)
    }

    async fn permissionship_of(api: &PermissionApi, req: pb::CheckRequest) -> pb::Permissionship {
        let r = check(api, req).await.unwrap();
        pb::Permissionship::try_from(r.permissionship).unwrap()
    }

    const GROUPS: &[&str] = &[
        "group:eng#member@group:core#member",
        "group:core#member@user:alice",
        "doc:1#viewer@group:eng#member",
    ];

    #[tokio::test]
    async fn check_allows_through_nested_groups_and_denies_others() {
        let f = Fixture::new(GROUPS).await;
        let r = check(&f.api, check_req("doc:1", "view", "user:alice"))
            .await
            .unwrap();
        assert_eq!(r.permissionship, pb::Permissionship::Allowed as i32);
        assert_eq!(r.schema_version, 1);
        assert!(r.missing_fields.is_empty());
        assert!(r.trace.is_empty(), "no trace unless asked");
        let at = f
            .state
            .zookies
            .decode(&r.checked_at.unwrap().token)
            .unwrap();
        assert_eq!(at, f.state.store.applied_revision());
        assert_eq!(
            permissionship_of(&f.api, check_req("doc:1", "view", "user:bob")).await,
            pb::Permissionship::Denied
        );
        // A userset subject: members of core are members of eng.
        assert_eq!(
            permissionship_of(
                &f.api,
                check_req("group:eng", "member", "group:core#member")
            )
            .await,
            pb::Permissionship::Allowed
        );
    }

    #[tokio::test]
    async fn caveated_tuple_is_conditional_until_context_decides_it() {
        let f = Fixture::new(&["doc:1#viewer@user:a[is_one]"]).await;
        let r = check(&f.api, check_req("doc:1", "view", "user:a"))
            .await
            .unwrap();
        assert_eq!(r.permissionship, pb::Permissionship::Conditional as i32);
        assert_eq!(r.missing_fields, vec!["x".to_string()]);

        let mut with_context = check_req("doc:1", "view", "user:a");
        with_context.context = Some(convert::json_to_struct(
            serde_json::json!({"x": 1}).as_object().unwrap(),
        ));
        let r = check(&f.api, with_context.clone()).await.unwrap();
        assert_eq!(r.permissionship, pb::Permissionship::Allowed as i32);
        assert!(r.missing_fields.is_empty());

        with_context.context = Some(convert::json_to_struct(
            serde_json::json!({"x": 2}).as_object().unwrap(),
        ));
        assert_eq!(
            permissionship_of(&f.api, with_context).await,
            pb::Permissionship::Denied
        );
    }

    #[tokio::test]
    async fn check_with_trace_renders_the_path() {
        let f = Fixture::new(GROUPS).await;
        let mut req = check_req("doc:1", "view", "user:alice");
        req.with_trace = true;
        let r = check(&f.api, req).await.unwrap();
        assert!(!r.trace.trim().is_empty());
        assert!(r.trace.contains("doc:1"), "{}", r.trace);
        assert!(r.trace.contains("ALLOWED"), "{}", r.trace);
    }

    #[tokio::test]
    async fn invalid_requests_are_invalid_argument_naming_the_field() {
        let f = Fixture::new(GROUPS).await;
        let err = check(&f.api, check_req("doc:1", "nope", "user:alice"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
        assert!(err.message().contains("nope"), "{}", err.message());

        let mut missing = check_req("doc:1", "view", "user:alice");
        missing.subject = None;
        let err = check(&f.api, missing).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("`subject`"), "{}", err.message());

        let err = check(&f.api, check_req("doc:1", "", "user:alice"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("`permission`"), "{}", err.message());

        let mut corrupt = check_req("doc:1", "view", "user:alice");
        corrupt.consistency = Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(pb::Zookie {
                token: "not-a-zookie".into(),
            })),
        });
        let err = check(&f.api, corrupt).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().contains("consistency.at_least_as_fresh"),
            "{}",
            err.message()
        );

        let mut unknown_tenant = check_req("doc:1", "view", "user:alice");
        unknown_tenant.tenant = "nobody".into();
        let err = check(&f.api, unknown_tenant).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn exact_snapshot_sees_the_past_and_fresh_reads_see_the_delete() {
        let f = Fixture::new(&[]).await;
        let written = f.write(&["doc:s#viewer@user:carol"], Op::Touch).await;
        let deleted = f.write(&["doc:s#viewer@user:carol"], Op::Delete).await;
        let at = |requirement| {
            let mut r = check_req("doc:s", "view", "user:carol");
            r.consistency = Some(pb::Consistency {
                requirement: Some(requirement),
            });
            r
        };
        use pb::consistency::Requirement;
        let old = check(&f.api, at(Requirement::AtExactSnapshot(written.clone())))
            .await
            .unwrap();
        assert_eq!(old.permissionship, pb::Permissionship::Allowed as i32);
        assert_eq!(
            f.state
                .zookies
                .decode(&old.checked_at.unwrap().token)
                .unwrap(),
            f.state.zookies.decode(&written.token).unwrap()
        );
        assert_eq!(
            permissionship_of(&f.api, at(Requirement::FullyConsistent(true))).await,
            pb::Permissionship::Denied
        );
        // New enemy: a read at least as fresh as the delete never sees carol.
        assert_eq!(
            permissionship_of(&f.api, at(Requirement::AtLeastAsFresh(deleted))).await,
            pb::Permissionship::Denied
        );
    }

    #[tokio::test]
    async fn bulk_check_reports_item_errors_without_failing_the_call() {
        let f = Fixture::new(GROUPS).await;
        let item = |resource: &str, permission: &str, subject: Option<&str>| pb::BulkCheckItem {
            resource: Some(obj(resource)),
            permission: permission.into(),
            subject: subject.map(subj),
            context: None,
        };
        let req = pb::BulkCheckRequest {
            consistency: full(),
            items: vec![
                item("doc:1", "view", Some("user:alice")),
                item("doc:1", "view", None),
                item("doc:1", "view", Some("user:bob")),
                item("doc:1", "nope", Some("user:alice")),
                item("group:core", "member", Some("user:alice")),
            ],
            ..pb::BulkCheckRequest::default()
        };
        let r = f
            .api
            .bulk_check(Request::new(req))
            .await
            .unwrap()
            .into_inner();
        assert!(r.checked_at.is_some());
        assert_eq!(r.results.len(), 5);
        use pb::bulk_check_result::Response as R;
        let outcome = |i: usize| match &r.results[i].response {
            Some(R::Item(c)) => Ok(c.permissionship),
            Some(R::Error(e)) => Err((e.code, e.message.clone())),
            None => panic!("empty result {i}"),
        };
        assert_eq!(outcome(0), Ok(pb::Permissionship::Allowed as i32));
        let (code, message) = outcome(1).unwrap_err();
        assert_eq!(code, tonic::Code::InvalidArgument as i32);
        assert!(message.contains("items[1].subject"), "{message}");
        assert_eq!(outcome(2), Ok(pb::Permissionship::Denied as i32));
        let (code, message) = outcome(3).unwrap_err();
        assert_eq!(code, tonic::Code::InvalidArgument as i32);
        assert!(message.contains("nope"), "{message}");
        assert_eq!(outcome(4), Ok(pb::Permissionship::Allowed as i32));
    }

    #[tokio::test]
    async fn bulk_check_refuses_too_many_items() {
        let f = Fixture::new(&[]).await;
        let req = pb::BulkCheckRequest {
            items: vec![pb::BulkCheckItem::default(); MAX_BULK_CHECK_ITEMS + 1],
            ..pb::BulkCheckRequest::default()
        };
        let err = f.api.bulk_check(Request::new(req)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("`items`"), "{}", err.message());
    }

    #[tokio::test]
    async fn expand_returns_the_userset_tree() {
        let f = Fixture::new(&["doc:1#viewer@group:eng#member", "doc:1#banned@user:mallory"]).await;
        let r = f
            .api
            .expand(Request::new(pb::ExpandRequest {
                consistency: full(),
                resource: Some(obj("doc:1")),
                permission: "view".into(),
                ..pb::ExpandRequest::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(r.expanded_at.is_some());
        let tree = r.tree.unwrap();
        use pb::expand_node::Kind;
        assert_eq!(tree.kind, Kind::Exclusion as i32, "{tree:?}");
        assert_eq!(tree.object, Some(obj("doc:1")));
        assert_eq!(tree.relation, "view");
        assert_eq!(tree.children.len(), 2, "{tree:?}");
        let (viewer, banned) = (&tree.children[0], &tree.children[1]);
        assert_eq!(viewer.kind, Kind::Leaf as i32, "{viewer:?}");
        assert_eq!(viewer.relation, "viewer");
        assert_eq!(viewer.subjects, vec![subj("group:eng#member")]);
        assert_eq!(banned.kind, Kind::Leaf as i32, "{banned:?}");
        assert_eq!(banned.subjects, vec![subj("user:mallory")]);
    }

    async fn lookup_resources(
        api: &PermissionApi,
        limit: u32,
        cursor: &str,
    ) -> Vec<pb::LookupResourcesResponse> {
        let stream = api
            .lookup_resources(Request::new(pb::LookupResourcesRequest {
                consistency: full(),
                resource_type: "doc".into(),
                permission: "view".into(),
                subject: Some(subj("user:dave")),
                limit,
                cursor: cursor.into(),
                ..pb::LookupResourcesRequest::default()
            }))
            .await
            .unwrap()
            .into_inner();
        stream.map(Result::unwrap).collect().await
    }

    #[tokio::test]
    async fn lookup_resources_streams_with_limit_and_resumes_from_the_cursor() {
        let f = Fixture::new(&[
            "doc:a#viewer@user:dave",
            "doc:b#viewer@user:dave",
            "doc:c#viewer@user:dave[is_one]",
            "doc:d#viewer@user:erin",
        ])
        .await;
        let first = lookup_resources(&f.api, 1, "").await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].resource_id, "a");
        assert_eq!(first[0].cursor, "a");
        assert_eq!(first[0].permissionship, pb::Permissionship::Allowed as i32);
        assert!(first[0].looked_up_at.is_some());

        let rest = lookup_resources(&f.api, 0, &first[0].cursor).await;
        let ids: Vec<&str> = rest.iter().map(|r| r.resource_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(
            rest[1].permissionship,
            pb::Permissionship::Conditional as i32
        );
        assert_eq!(rest[1].missing_fields, vec!["x".to_string()]);

        let all = lookup_resources(&f.api, 0, "").await;
        assert_eq!(all.len(), 3);

        // Request errors are the RPC's status, not an in-stream error.
        let err = f
            .api
            .lookup_resources(Request::new(pb::LookupResourcesRequest {
                consistency: full(),
                resource_type: "doc".into(),
                permission: "nope".into(),
                subject: Some(subj("user:dave")),
                ..pb::LookupResourcesRequest::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn lookup_resources_pages_past_the_engine_page_size() {
        let tuples: Vec<String> = (0..MAX_LOOKUP_PAGE + 5)
            .map(|i| format!("doc:r{i:05}#viewer@user:dave"))
            .collect();
        let refs: Vec<&str> = tuples.iter().map(String::as_str).collect();
        let f = Fixture::new(&refs).await;
        assert_eq!(
            lookup_resources(&f.api, 0, "").await.len(),
            MAX_LOOKUP_PAGE + 5
        );
        assert_eq!(lookup_resources(&f.api, 1_002, "").await.len(), 1_002);
    }

    #[tokio::test]
    async fn lookup_subjects_reports_a_wildcard_with_its_exclusions() {
        let f = Fixture::new(&[
            "page:home#viewer@user:*",
            "page:home#viewer@user:zed",
            "page:home#banned@user:bob",
        ])
        .await;
        let stream = f
            .api
            .lookup_subjects(Request::new(pb::LookupSubjectsRequest {
                consistency: full(),
                resource: Some(obj("page:home")),
                permission: "view".into(),
                subject_type: "user".into(),
                ..pb::LookupSubjectsRequest::default()
            }))
            .await
            .unwrap()
            .into_inner();
        let mut found: Vec<pb::LookupSubjectsResponse> = stream.map(Result::unwrap).collect().await;
        found.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
        let ids: Vec<&str> = found.iter().map(|s| s.subject_id.as_str()).collect();
        assert_eq!(ids, ["*", "zed"]);
        assert_eq!(found[0].excluded_subject_ids, vec!["bob".to_string()]);
        assert!(found[1].excluded_subject_ids.is_empty());
        assert!(found
            .iter()
            .all(|s| s.permissionship == pb::Permissionship::Allowed as i32
                && s.looked_up_at.is_some()));

        let err = f
            .api
            .lookup_subjects(Request::new(pb::LookupSubjectsRequest {
                resource: Some(obj("page:home")),
                permission: "view".into(),
                ..pb::LookupSubjectsRequest::default()
            }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("subject_type"), "{}", err.message());
    }
}
