//! SpiceDB's HTTP/JSON API (its grpc-gateway) on Verdict's HTTP port:
//! every `google.api.http` route of the vendored `authzed.api.v1` protos,
//! `POST /v1/...` with the request as protojson (lowerCamelCase, enums as
//! names, int64 as strings; an empty body is the empty request).
//!
//! ```text
//! JSON body ──serde (json.rs copy)──▶ protobuf bytes ──▶ pb request
//!   ──▶ the same tonic service impl gRPC calls, as the bearer's caller
//!   ◀── pb response ──▶ json copy ──▶ JSON (unary) or NDJSON `{"result":…}` lines (streams)
//! ```
//!
//! Errors are grpc-gateway's `{"code", "message", "details": [ErrorInfo…]}`
//! with its HTTP status for the gRPC code; an error from a streaming RPC is
//! one `{"error": {…}}` line (with that status when it comes first).
//! Client-streaming imports take newline-delimited request objects.

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio_stream::{Stream, StreamExt as _};
use tonic::{Code, Status};

use super::json::{self, transcode};
use super::pb;
use super::pb::experimental_service_server::ExperimentalService as _;
use super::pb::permissions_service_server::PermissionsService as _;
use super::pb::schema_service_server::SchemaService as _;
use super::pb::watch_service_server::WatchService as _;
use super::{auth, testing, ExperimentalApi, PermissionsApi, SchemaApi, WatchApi};
use crate::api::guard::{RequestContext, KEY_ID, REQUEST_ID};
use crate::server::keys::sha256_hex;
use crate::server::request_context;
use crate::server::state::AppState;

/// Lines buffered between a streaming RPC and its HTTP body.
const STREAM_BUFFER: usize = 64;

/// What every route shares.
#[derive(Clone)]
struct Gateway {
    state: Arc<AppState>,
    admin_hash: Option<String>,
    permissions: PermissionsApi,
    schema: SchemaApi,
    watch: WatchApi,
    experimental: ExperimentalApi,
}

/// The `/v1/...` routes.
pub fn router(state: Arc<AppState>) -> Router {
    let gateway = Gateway {
        admin_hash: state
            .settings
            .ops
            .admin_key
            .as_deref()
            .map(|k| sha256_hex(k.as_bytes())),
        permissions: PermissionsApi::new(state.clone()),
        schema: SchemaApi::new(state.clone()),
        watch: WatchApi::new(state.clone()),
        experimental: ExperimentalApi::new(PermissionsApi::new(state.clone())),
        state,
    };
    Router::new()
        .route("/v1/relationships/read", post(read_relationships))
        .route("/v1/relationships/write", post(write_relationships))
        .route("/v1/relationships/delete", post(delete_relationships))
        .route("/v1/permissions/check", post(check_permission))
        .route("/v1/permissions/checkbulk", post(check_bulk_permissions))
        .route("/v1/permissions/expand", post(expand_permission_tree))
        .route("/v1/permissions/resources", post(lookup_resources))
        .route("/v1/permissions/subjects", post(lookup_subjects))
        .route(
            "/v1/relationships/importbulk",
            post(import_bulk_relationships),
        )
        .route(
            "/v1/relationships/exportbulk",
            post(export_bulk_relationships),
        )
        .route("/v1/schema/read", post(read_schema))
        .route("/v1/schema/write", post(write_schema))
        .route("/v1/schema/reflectschema", post(reflect_schema))
        .route(
            "/v1/schema/permissions/computable",
            post(computable_permissions),
        )
        .route(
            "/v1/schema/permissions/dependent",
            post(dependent_relations),
        )
        .route("/v1/schema/diffschema", post(diff_schema))
        .route("/v1/watch", post(watch))
        .route(
            "/v1/experimental/relationships/bulkimport",
            post(bulk_import_relationships),
        )
        .route(
            "/v1/experimental/relationships/bulkexport",
            post(bulk_export_relationships),
        )
        .route(
            "/v1/experimental/permissions/bulkcheckpermission",
            post(bulk_check_permission),
        )
        .route(
            "/v1/experimental/reflectschema",
            post(experimental_reflect_schema),
        )
        .route(
            "/v1/experimental/permissions/computable",
            post(experimental_computable_permissions),
        )
        .route(
            "/v1/experimental/permissions/dependent",
            post(experimental_dependent_relations),
        )
        .route(
            "/v1/experimental/diffschema",
            post(experimental_diff_schema),
        )
        .route(
            "/v1/experimental/registerrelationshipcounter",
            post(experimental_register_relationship_counter),
        )
        .route(
            "/v1/experimental/countrelationships",
            post(experimental_count_relationships),
        )
        .route(
            "/v1/experimental/unregisterrelationshipcounter",
            post(experimental_unregister_relationship_counter),
        )
        .with_state(gateway)
}

/// grpc-gateway's HTTP status for a gRPC code (`HTTPStatusFromCode`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// One `google.protobuf.Any` detail in protojson form (`@type` + fields).
fn detail_json(any: &prost_types::Any) -> Value {
    if any.type_url.ends_with("/google.rpc.ErrorInfo") {
        if let Ok(info) = pb::google::rpc::ErrorInfo::decode(any.value.as_slice()) {
            return json!({
                "@type": any.type_url,
                "reason": info.reason,
                "domain": info.domain,
                "metadata": info.metadata,
            });
        }
    }
    json!({
        "@type": any.type_url,
        "value": base64::engine::general_purpose::STANDARD.encode(&any.value),
    })
}

/// A status as grpc-gateway's error body `{"code", "message", "details"}`.
pub fn status_json(status: &Status) -> Value {
    let details: Vec<Value> = if status.details().is_empty() {
        Vec::new()
    } else {
        pb::google::rpc::Status::decode(status.details())
            .map(|s| s.details.iter().map(detail_json).collect())
            .unwrap_or_default()
    };
    json!({
        "code": status.code() as i32,
        "message": status.message(),
        "details": details,
    })
}

/// The error response for `status`.
fn error_response(status: &Status) -> Response {
    (http_status(status.code()), axum::Json(status_json(status))).into_response()
}

fn internal(what: impl std::fmt::Display) -> Status {
    Status::internal(format!("HTTP gateway: {what}"))
}

/// Drops `null` members (protojson's "absent"), except inside caveat
/// `context` structs, where `null` is a value.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            for (k, x) in m.iter_mut() {
                if k != "context" {
                    strip_nulls(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Decodes one protojson request object into the gRPC message `P`.
fn decode_value<J, P>(mut value: Value) -> Result<P, Status>
where
    J: DeserializeOwned + Message,
    P: Message + Default,
{
    strip_nulls(&mut value);
    let parsed: J = serde_json::from_value(value)
        .map_err(|e| Status::invalid_argument(format!("invalid request body: {e}")))?;
    transcode(&parsed).map_err(internal)
}

/// Decodes a protojson body (empty = the empty request).
fn decode<J, P>(body: &Bytes) -> Result<P, Status>
where
    J: DeserializeOwned + Message,
    P: Message + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(P::default());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Status::invalid_argument(format!("invalid JSON body: {e}")))?;
    decode_value::<J, P>(value)
}

/// Encodes gRPC response `r` as protojson via its json twin `JR`.
fn encode<R, JR>(r: &R) -> Result<Value, Status>
where
    R: Message,
    JR: Message + Default + Serialize,
{
    let twin: JR = transcode(r).map_err(internal)?;
    serde_json::to_value(&twin).map_err(internal)
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

impl Gateway {
    /// Authenticates the bearer as gRPC would (and, in serve-testing mode,
    /// creates its tenant on first use).
    async fn caller(&self, headers: &HeaderMap) -> Result<Arc<RequestContext>, Status> {
        let principal = auth::authenticate(&self.state, self.admin_hash.as_deref(), headers)?;
        testing::admit(&self.state, &principal).await?;
        Ok(Arc::new(RequestContext::new(
            request_id(headers),
            principal,
        )))
    }
}

/// A tonic request carrying `message` and the caller's key id (as the
/// guard layer sets it for gRPC).
fn tonic_request<P>(context: &RequestContext, message: P) -> tonic::Request<P> {
    let mut request = tonic::Request::new(message);
    if let Ok(v) = context.key_id().parse() {
        request.metadata_mut().insert(KEY_ID, v);
    }
    request
}

/// A unary RPC: JSON in, JSON out.
async fn unary<J, P, R, JR, F, Fut>(
    g: &Gateway,
    headers: &HeaderMap,
    body: &Bytes,
    call: F,
) -> Response
where
    J: DeserializeOwned + Message,
    P: Message + Default,
    R: Message,
    JR: Message + Default + Serialize,
    F: FnOnce(tonic::Request<P>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<R>, Status>>,
{
    let answered = async {
        let context = g.caller(headers).await?;
        let message = decode::<J, P>(body)?;
        let request = tonic_request(&context, message);
        let response = request_context::scope(context, call(request)).await?;
        encode::<R, JR>(response.get_ref())
    }
    .await;
    match answered {
        Ok(v) => axum::Json(v).into_response(),
        Err(status) => error_response(&status),
    }
}

/// One NDJSON line: `{"result": …}` or `{"error": …}`.
fn line(v: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A server-streaming RPC: JSON in, newline-delimited `{"result": …}`
/// objects out. The RPC runs on its own task (as the caller) and hands
/// lines over a bounded channel, so a slow or vanished client stops it.
async fn streaming<J, P, R, JR, S, F, Fut>(
    g: &Gateway,
    headers: &HeaderMap,
    body: &Bytes,
    call: F,
) -> Response
where
    J: DeserializeOwned + Message,
    P: Message + Default + Send + 'static,
    R: Message + Send + 'static,
    JR: Message + Default + Serialize,
    S: Stream<Item = Result<R, Status>> + Send + Unpin + 'static,
    F: FnOnce(tonic::Request<P>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<S>, Status>> + Send + 'static,
{
    let started = async {
        let context = g.caller(headers).await?;
        let message = decode::<J, P>(body)?;
        Ok::<_, Status>((context, message))
    }
    .await;
    let (context, message) = match started {
        Ok(s) => s,
        Err(status) => return error_response(&status),
    };
    let request = tonic_request(&context, message);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, Status>>(STREAM_BUFFER);
    tokio::spawn(request_context::scope(context, async move {
        let mut stream = match call(request).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        while let Some(item) = stream.next().await {
            let out = item.and_then(|r| encode::<R, JR>(&r).map(|v| line(&json!({ "result": v }))));
            let failed = out.is_err();
            if tx.send(out).await.is_err() || failed {
                return;
            }
        }
    }));
    let first = match rx.recv().await {
        None => None,
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(status)) => {
            return (
                http_status(status.code()),
                [(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                line(&json!({ "error": status_json(&status) })),
            )
                .into_response()
        }
    };
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx).map(|item| {
        Ok::<_, std::convert::Infallible>(match item {
            Ok(bytes) => bytes,
            Err(status) => line(&json!({ "error": status_json(&status) })),
        })
    });
    let lines = tokio_stream::iter(first.map(Ok)).chain(rest);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Body::from_stream(lines),
    )
        .into_response()
}

/// Decodes a client-streaming body: request objects one after another
/// (newline-delimited or concatenated; empty = no messages).
fn decode_many<J, P>(body: &Bytes) -> Result<Vec<P>, Status>
where
    J: DeserializeOwned + Message,
    P: Message + Default,
{
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .map(|v| {
            v.map_err(|e| Status::invalid_argument(format!("invalid JSON body: {e}")))
                .and_then(decode_value::<J, P>)
        })
        .collect()
}

/// A client-streaming import: newline-delimited request objects in, one
/// JSON response out.
async fn import<J, P, R, JR>(
    g: &Gateway,
    headers: &HeaderMap,
    body: &Bytes,
    relationships: fn(P) -> Vec<pb::Relationship>,
    respond: fn(u64) -> R,
) -> Response
where
    J: DeserializeOwned + Message,
    P: Message + Default,
    R: Message,
    JR: Message + Default + Serialize,
{
    let answered = async {
        let context = g.caller(headers).await?;
        let batches: Vec<Result<Vec<pb::Relationship>, Status>> = decode_many::<J, P>(body)?
            .into_iter()
            .map(|m| Ok(relationships(m)))
            .collect();
        let permissions = g.permissions.clone();
        let loaded = request_context::scope(context, async move {
            permissions.import(tokio_stream::iter(batches)).await
        })
        .await?;
        encode::<R, JR>(&respond(loaded))
    }
    .await;
    match answered {
        Ok(v) => axum::Json(v).into_response(),
        Err(status) => error_response(&status),
    }
}

/// A unary route handler calling `$svc.$method`.
macro_rules! unary_route {
    ($name:ident, $svc:ident, $method:ident, $req:ident, $resp:ident) => {
        async fn $name(State(g): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
            let svc = g.$svc.clone();
            unary::<json::$req, pb::$req, pb::$resp, json::$resp, _, _>(
                &g,
                &headers,
                &body,
                move |r| async move { svc.$method(r).await },
            )
            .await
        }
    };
}

/// A server-streaming route handler calling `$svc.$method`.
macro_rules! streaming_route {
    ($name:ident, $svc:ident, $method:ident, $req:ident, $resp:ident) => {
        async fn $name(State(g): State<Gateway>, headers: HeaderMap, body: Bytes) -> Response {
            let svc = g.$svc.clone();
            streaming::<json::$req, pb::$req, pb::$resp, json::$resp, _, _, _>(
                &g,
                &headers,
                &body,
                move |r| async move { svc.$method(r).await },
            )
            .await
        }
    };
}

streaming_route!(
    read_relationships,
    permissions,
    read_relationships,
    ReadRelationshipsRequest,
    ReadRelationshipsResponse
);
unary_route!(
    write_relationships,
    permissions,
    write_relationships,
    WriteRelationshipsRequest,
    WriteRelationshipsResponse
);
unary_route!(
    delete_relationships,
    permissions,
    delete_relationships,
    DeleteRelationshipsRequest,
    DeleteRelationshipsResponse
);
unary_route!(
    check_permission,
    permissions,
    check_permission,
    CheckPermissionRequest,
    CheckPermissionResponse
);
unary_route!(
    check_bulk_permissions,
    permissions,
    check_bulk_permissions,
    CheckBulkPermissionsRequest,
    CheckBulkPermissionsResponse
);
unary_route!(
    expand_permission_tree,
    permissions,
    expand_permission_tree,
    ExpandPermissionTreeRequest,
    ExpandPermissionTreeResponse
);
streaming_route!(
    lookup_resources,
    permissions,
    lookup_resources,
    LookupResourcesRequest,
    LookupResourcesResponse
);
streaming_route!(
    lookup_subjects,
    permissions,
    lookup_subjects,
    LookupSubjectsRequest,
    LookupSubjectsResponse
);
streaming_route!(
    export_bulk_relationships,
    permissions,
    export_bulk_relationships,
    ExportBulkRelationshipsRequest,
    ExportBulkRelationshipsResponse
);
unary_route!(
    read_schema,
    schema,
    read_schema,
    ReadSchemaRequest,
    ReadSchemaResponse
);
unary_route!(
    write_schema,
    schema,
    write_schema,
    WriteSchemaRequest,
    WriteSchemaResponse
);
unary_route!(
    reflect_schema,
    schema,
    reflect_schema,
    ReflectSchemaRequest,
    ReflectSchemaResponse
);
unary_route!(
    computable_permissions,
    schema,
    computable_permissions,
    ComputablePermissionsRequest,
    ComputablePermissionsResponse
);
unary_route!(
    dependent_relations,
    schema,
    dependent_relations,
    DependentRelationsRequest,
    DependentRelationsResponse
);
unary_route!(
    diff_schema,
    schema,
    diff_schema,
    DiffSchemaRequest,
    DiffSchemaResponse
);
streaming_route!(watch, watch, watch, WatchRequest, WatchResponse);
streaming_route!(
    bulk_export_relationships,
    experimental,
    bulk_export_relationships,
    BulkExportRelationshipsRequest,
    BulkExportRelationshipsResponse
);
unary_route!(
    bulk_check_permission,
    experimental,
    bulk_check_permission,
    BulkCheckPermissionRequest,
    BulkCheckPermissionResponse
);
unary_route!(
    experimental_reflect_schema,
    experimental,
    experimental_reflect_schema,
    ExperimentalReflectSchemaRequest,
    ExperimentalReflectSchemaResponse
);
unary_route!(
    experimental_computable_permissions,
    experimental,
    experimental_computable_permissions,
    ExperimentalComputablePermissionsRequest,
    ExperimentalComputablePermissionsResponse
);
unary_route!(
    experimental_dependent_relations,
    experimental,
    experimental_dependent_relations,
    ExperimentalDependentRelationsRequest,
    ExperimentalDependentRelationsResponse
);
unary_route!(
    experimental_diff_schema,
    experimental,
    experimental_diff_schema,
    ExperimentalDiffSchemaRequest,
    ExperimentalDiffSchemaResponse
);
unary_route!(
    experimental_register_relationship_counter,
    experimental,
    experimental_register_relationship_counter,
    ExperimentalRegisterRelationshipCounterRequest,
    ExperimentalRegisterRelationshipCounterResponse
);
unary_route!(
    experimental_count_relationships,
    experimental,
    experimental_count_relationships,
    ExperimentalCountRelationshipsRequest,
    ExperimentalCountRelationshipsResponse
);
unary_route!(
    experimental_unregister_relationship_counter,
    experimental,
    experimental_unregister_relationship_counter,
    ExperimentalUnregisterRelationshipCounterRequest,
    ExperimentalUnregisterRelationshipCounterResponse
);

async fn import_bulk_relationships(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    import::<
        json::ImportBulkRelationshipsRequest,
        pb::ImportBulkRelationshipsRequest,
        pb::ImportBulkRelationshipsResponse,
        json::ImportBulkRelationshipsResponse,
    >(
        &g,
        &headers,
        &body,
        |m| m.relationships,
        |num_loaded| pb::ImportBulkRelationshipsResponse { num_loaded },
    )
    .await
}

async fn bulk_import_relationships(
    State(g): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    import::<
        json::BulkImportRelationshipsRequest,
        pb::BulkImportRelationshipsRequest,
        pb::BulkImportRelationshipsResponse,
        json::BulkImportRelationshipsResponse,
    >(
        &g,
        &headers,
        &body,
        |m| m.relationships,
        |num_loaded| pb::BulkImportRelationshipsResponse { num_loaded },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protojson_round_trip_uses_camel_case_and_enum_names() {
        let body = Bytes::from_static(
            br#"{"resource":{"objectType":"doc","objectId":"1"},"permission":"view",
                "subject":{"object":{"objectType":"user","objectId":"a"}},
                "consistency":{"fullyConsistent":true},"context":{"k":null}}"#,
        );
        let req: pb::CheckPermissionRequest =
            decode::<json::CheckPermissionRequest, _>(&body).unwrap();
        assert_eq!(req.resource.as_ref().unwrap().object_type, "doc");
        assert_eq!(req.permission, "view");
        assert!(req.context.unwrap().fields.contains_key("k"));
        let resp = pb::CheckPermissionResponse {
            permissionship: pb::check_permission_response::Permissionship::HasPermission as i32,
            checked_at: Some(pb::ZedToken { token: "t".into() }),
            ..Default::default()
        };
        let v = encode::<_, json::CheckPermissionResponse>(&resp).unwrap();
        assert_eq!(v["permissionship"], "PERMISSIONSHIP_HAS_PERMISSION");
        assert_eq!(v["checkedAt"]["token"], "t");
    }

    #[test]
    fn bad_bodies_are_invalid_argument() {
        let bad = decode::<json::CheckPermissionRequest, pb::CheckPermissionRequest>(
            &Bytes::from_static(b"{not json"),
        )
        .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        let wrong = decode::<json::CheckPermissionRequest, pb::CheckPermissionRequest>(
            &Bytes::from_static(br#"{"permission": 5}"#),
        )
        .unwrap_err();
        assert_eq!(wrong.code(), Code::InvalidArgument);
        assert_eq!(http_status(Code::AlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn ndjson_import_bodies_decode_every_object() {
        let body = Bytes::from_static(b"{\"relationships\":[]}\n{\"relationships\":[]}\n");
        let all = decode_many::<
            json::ImportBulkRelationshipsRequest,
            pb::ImportBulkRelationshipsRequest,
        >(&body)
        .unwrap();
        assert_eq!(all.len(), 2);
    }
}
