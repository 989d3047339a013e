//! OpenFGA's HTTP/JSON routes (grpc-gateway's mapping of the service) on
//! Verdict's HTTP port. Bodies are protojson of the same messages the gRPC
//! service takes; `null` anywhere outside a `context` is "absent", as
//! protojson reads it (the `fga` CLI sends `null` for empty lists).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::auth;
use super::error::{FgaError, FgaResult};
use super::pb;
use super::service::Fga;
use super::token;
use crate::server::request_context::{self, RequestContext};
use crate::server::state::AppState;

#[derive(Clone)]
struct Http {
    fga: Fga,
    state: Arc<AppState>,
}

/// The `/stores/...` routes.
pub fn router(state: Arc<AppState>) -> Router {
    let http = Http {
        fga: Fga::new(state.clone()),
        state,
    };
    Router::new()
        .route("/stores", post(create_store).get(list_stores))
        .route(
            "/stores/{store_id}",
            get(get_store).delete(delete_store).patch(update_store),
        )
        .route(
            "/stores/{store_id}/authorization-models",
            post(write_model).get(read_models),
        )
        .route(
            "/stores/{store_id}/authorization-models/{id}",
            get(read_model),
        )
        .route("/stores/{store_id}/write", post(write))
        .route("/stores/{store_id}/read", post(read))
        .route("/stores/{store_id}/changes", get(read_changes))
        .route("/stores/{store_id}/check", post(check))
        .route("/stores/{store_id}/batch-check", post(batch_check))
        .route("/stores/{store_id}/expand", post(expand))
        .route("/stores/{store_id}/list-objects", post(list_objects))
        .route(
            "/stores/{store_id}/streamed-list-objects",
            post(streamed_list_objects),
        )
        .route("/stores/{store_id}/list-users", post(list_users))
        .route(
            "/stores/{store_id}/assertions/{model_id}",
            get(read_assertions).put(write_assertions),
        )
        .with_state(http)
}

/// Drops `null` members (protojson's "absent"), except inside `context`
/// structs, where `null` is a value.
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

/// Decodes a protojson body (empty = `{}`).
fn decode<T: DeserializeOwned>(body: &Bytes) -> FgaResult<T> {
    let mut value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| FgaError::validation(format!("invalid JSON body: {e}")))?
    };
    strip_nulls(&mut value);
    serde_json::from_value(value)
        .map_err(|e| FgaError::validation(format!("invalid request body: {e}")))
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Authenticates and runs `work` as the caller, with the consistency
/// token the request sent (if any) in force; an error is already the
/// response.
async fn run<T, F>(h: &Http, headers: &HeaderMap, work: F) -> Result<T, Response>
where
    F: Future<Output = FgaResult<T>>,
{
    let principal = auth::authenticate(&h.state, headers).map_err(IntoResponse::into_response)?;
    let context = Arc::new(RequestContext::new(request_id(headers), principal));
    let token = headers.get(token::HEADER).and_then(|v| v.to_str().ok());
    let work = token::scoped(&h.state.zookies, token, work).map_err(IntoResponse::into_response)?;
    request_context::scope(context, work)
        .await
        .map_err(IntoResponse::into_response)
}

/// The JSON response `ok` (or an empty body for 204).
fn reply<T: serde::Serialize>(ok: StatusCode, v: &T) -> Response {
    if ok == StatusCode::NO_CONTENT {
        return ok.into_response();
    }
    match serde_json::to_value(v) {
        Ok(json) => (ok, axum::Json(json)).into_response(),
        Err(e) => FgaError::internal(format!("cannot encode the response: {e}")).into_response(),
    }
}

/// Authenticates, runs `work` as the caller, answers JSON with `ok` (or
/// an empty body for 204).
async fn serve<T, F>(h: &Http, headers: &HeaderMap, ok: StatusCode, work: F) -> Response
where
    T: serde::Serialize,
    F: Future<Output = FgaResult<T>>,
{
    match run(h, headers, work).await {
        Ok(v) => reply(ok, &v),
        Err(response) => response,
    }
}

/// A body decoded with the path's store id set.
fn with_store<T: DeserializeOwned>(body: &Bytes, set: impl FnOnce(&mut T)) -> FgaResult<T> {
    let mut req: T = decode(body)?;
    set(&mut req);
    Ok(req)
}

fn page_size(q: &HashMap<String, String>) -> FgaResult<Option<pbjson_types::Int32Value>> {
    match q.get("page_size").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(|value| Some(pbjson_types::Int32Value { value }))
            .map_err(|_| FgaError::field("page_size", format!("`{s}` is not an integer"))),
    }
}

fn text(q: &HashMap<String, String>, key: &str) -> String {
    q.get(key).cloned().unwrap_or_default()
}

macro_rules! body_route {
    ($name:ident, $req:ty, $method:ident) => {
        async fn $name(
            State(h): State<Http>,
            Path(store_id): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            let work = async {
                let req = with_store(&body, |r: &mut $req| r.store_id = store_id)?;
                h.fga.$method(req).await
            };
            serve(&h, &headers, StatusCode::OK, work).await
        }
    };
}

body_route!(read, pb::ReadRequest, read);
body_route!(check, pb::CheckRequest, check);
body_route!(batch_check, pb::BatchCheckRequest, batch_check);
body_route!(expand, pb::ExpandRequest, expand);
body_route!(list_objects, pb::ListObjectsRequest, list_objects);
body_route!(list_users, pb::ListUsersRequest, list_users);

/// Write; the response carries the write's consistency token (opt-in
/// read-your-writes, see [`token`]).
async fn write(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let work = async {
        let req = with_store(&body, |r: &mut pb::WriteRequest| r.store_id = store_id)?;
        h.fga.write_with_token(req).await
    };
    match run(&h, &headers, work).await {
        Ok((answer, zookie)) => {
            let mut response = reply(StatusCode::OK, &answer);
            if let Ok(value) = axum::http::HeaderValue::from_str(&zookie) {
                response.headers_mut().insert(token::HEADER, value);
            }
            response
        }
        Err(response) => response,
    }
}

async fn create_store(State(h): State<Http>, headers: HeaderMap, body: Bytes) -> Response {
    let work = async {
        let req: pb::CreateStoreRequest = decode(&body)?;
        h.fga.create_store(req).await
    };
    serve(&h, &headers, StatusCode::CREATED, work).await
}

async fn list_stores(
    State(h): State<Http>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let work = async {
        let req = pb::ListStoresRequest {
            page_size: page_size(&q)?,
            continuation_token: text(&q, "continuation_token"),
            name: text(&q, "name"),
        };
        h.fga.list_stores(req).await
    };
    serve(&h, &headers, StatusCode::OK, work).await
}

async fn get_store(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let work = h.fga.get_store(pb::GetStoreRequest { store_id });
    serve(&h, &headers, StatusCode::OK, work).await
}

async fn delete_store(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let work = h.fga.delete_store(pb::DeleteStoreRequest { store_id });
    serve(&h, &headers, StatusCode::NO_CONTENT, work).await
}

async fn update_store(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let work = async {
        let req = with_store(&body, |r: &mut pb::UpdateStoreRequest| {
            r.store_id = store_id
        })?;
        h.fga.update_store(req).await
    };
    serve(&h, &headers, StatusCode::OK, work).await
}

async fn write_model(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let work = async {
        let req = with_store(&body, |r: &mut pb::WriteAuthorizationModelRequest| {
            r.store_id = store_id;
        })?;
        h.fga.write_model(req).await
    };
    serve(&h, &headers, StatusCode::CREATED, work).await
}

async fn read_models(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let work = async {
        let req = pb::ReadAuthorizationModelsRequest {
            store_id,
            page_size: page_size(&q)?,
            continuation_token: text(&q, "continuation_token"),
        };
        h.fga.read_models(req).await
    };
    serve(&h, &headers, StatusCode::OK, work).await
}

async fn read_model(
    State(h): State<Http>,
    Path((store_id, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let work = h
        .fga
        .read_model(pb::ReadAuthorizationModelRequest { store_id, id });
    serve(&h, &headers, StatusCode::OK, work).await
}

async fn read_changes(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let work = async {
        let start_time = match q.get("start_time").filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(
                serde_json::from_value::<pbjson_types::Timestamp>(Value::String(s.clone()))
                    .map_err(|e| FgaError {
                        code: 2059,
                        name: "invalid_start_time",
                        message: format!("invalid start_time `{s}`: {e}"),
                    })?,
            ),
        };
        let req = pb::ReadChangesRequest {
            store_id,
            r#type: text(&q, "type"),
            page_size: page_size(&q)?,
            continuation_token: text(&q, "continuation_token"),
            start_time,
        };
        h.fga.read_changes(req).await
    };
    serve(&h, &headers, StatusCode::OK, work).await
}

async fn streamed_list_objects(
    State(h): State<Http>,
    Path(store_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let work = async {
        let req = with_store(&body, |r: &mut pb::StreamedListObjectsRequest| {
            r.store_id = store_id;
        })?;
        h.fga.streamed_list_objects(req).await
    };
    match run(&h, &headers, work).await {
        Ok(objects) => {
            // One line per object as it is found; an error after the
            // first object ends the stream with grpc-gateway's error line.
            let lines = tokio_stream::StreamExt::map(objects.into_stream(), |item| {
                let line = match item {
                    Ok(object) => serde_json::json!({ "result": { "object": object } }),
                    Err(e) => serde_json::json!({ "error": {
                        "code": e.code, "message": e.message, "details": [] } }),
                };
                Ok::<_, std::convert::Infallible>(Bytes::from(format!("{line}\n")))
            });
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
                axum::body::Body::from_stream(lines),
            )
                .into_response()
        }
        Err(response) => response,
    }
}

async fn write_assertions(
    State(h): State<Http>,
    Path((store_id, model_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let work = async {
        let req = with_store(&body, |r: &mut pb::WriteAssertionsRequest| {
            r.store_id = store_id;
            r.authorization_model_id = model_id;
        })?;
        h.fga.write_assertions(req).await
    };
    serve(&h, &headers, StatusCode::NO_CONTENT, work).await
}

async fn read_assertions(
    State(h): State<Http>,
    Path((store_id, authorization_model_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let work = h.fga.read_assertions(pb::ReadAssertionsRequest {
        store_id,
        authorization_model_id,
    });
    serve(&h, &headers, StatusCode::OK, work).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_lists_from_real_clients_decode_as_empty() {
        let body = Bytes::from_static(
            br#"{"tuple_key":{"user":"user:anne","relation":"viewer","object":"doc:1"},
                "contextual_tuples":{"tuple_keys":null},"context":{"a":null},
                "authorization_model_id":null,"unknown_field":1}"#,
        );
        let req: pb::CheckRequest = decode(&body).unwrap();
        assert_eq!(req.tuple_key.unwrap().user, "user:anne");
        assert!(req.contextual_tuples.unwrap().tuple_keys.is_empty());
        assert!(req.context.unwrap().fields.contains_key("a"));
        let req: pb::ListUsersRequest =
            decode(&Bytes::from_static(br#"{"contextual_tuples":null}"#)).unwrap();
        assert!(req.contextual_tuples.is_empty());
        let empty: pb::CreateStoreRequest = decode(&Bytes::new()).unwrap();
        assert_eq!(empty.name, "");
        assert_eq!(
            decode::<pb::CheckRequest>(&Bytes::from_static(b"{"))
                .unwrap_err()
                .code,
            2000
        );
    }

    #[test]
    fn models_use_openfga_json_names_both_ways() {
        let body = Bytes::from_static(
            br#"{"schema_version":"1.1","type_definitions":[{"type":"doc","relations":{
                "viewer":{"computedUserset":{"relation":"owner"}},
                "owner":{"this":{}},
                "parent_viewer":{"tuple_to_userset":{"tupleset":{"relation":"owner"},"computedUserset":{"relation":"viewer"}}}},
                "metadata":{"relations":{"owner":{"directly_related_user_types":[{"type":"user"}]}}}}]}"#,
        );
        let req: pb::WriteAuthorizationModelRequest = decode(&body).unwrap();
        let out = serde_json::to_value(&req).unwrap();
        let viewer = &out["type_definitions"][0]["relations"]["viewer"];
        assert_eq!(viewer["computedUserset"]["relation"], "owner");
        assert!(
            out["type_definitions"][0]["relations"]["parent_viewer"]["tupleToUserset"].is_object()
        );
        assert_eq!(out["schema_version"], "1.1");
        let allowed = serde_json::to_value(pb::CheckResponse::default()).unwrap();
        assert_eq!(allowed["allowed"], false, "{allowed}");
    }
}
