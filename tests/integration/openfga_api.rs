//! OpenFGA's `openfga.v1` API on the real `verdict serve`, over HTTP/JSON
//! (raw HTTP/1.1 on the HTTP port, as any client sends it) and gRPC: the
//! store/model/tuple lifecycle, the edge cases real clients hit (`null`
//! lists, continuation tokens, ReadChanges repeating its token), bad input
//! answered with OpenFGA's code naming the field, the limits, pinned
//! models, and the bearer key selecting the store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use serde_json::{json, Value};
use support::Server;

const ADMIN: &str = "openfga-admin-key-0123456789";

/// One HTTP/1.1 request; the status and the JSON body (`null` if empty).
pub(crate) fn call(
    server: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(&server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let payload = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let rest = &dechunk(head, rest);
    let body = if rest.trim().is_empty() {
        Value::Null
    } else if head.to_ascii_lowercase().contains("application/x-ndjson") {
        Value::Array(
            rest.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
        )
    } else {
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("{e}: {rest}"))
    };
    (status, body)
}

/// The body of a response, its chunked transfer encoding removed.
pub(crate) fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

pub(crate) fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    call(server, "POST", path, Some(&body), None)
}

pub(crate) fn get(server: &Server, path: &str) -> (u16, Value) {
    call(server, "GET", path, None, None)
}

/// Asserts an OpenFGA error: HTTP status, `code` name, and a word of the message.
pub(crate) fn assert_error(got: (u16, Value), status: u16, code: &str, words: &str) {
    assert_eq!(got.0, status, "{:?}", got.1);
    assert_eq!(got.1["code"], code, "{:?}", got.1);
    let message = got.1["message"].as_str().unwrap();
    assert!(message.contains(words), "`{message}` should say `{words}`");
}

pub(crate) fn model() -> Value {
    json!({
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {"type": "group", "relations": {"member": {"this": {}}},
             "metadata": {"relations": {"member": {"directly_related_user_types": [{"type": "user"}]}}}},
            {"type": "doc",
             "relations": {
                "owner": {"this": {}},
                "viewer": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "owner"}}]}}},
             "metadata": {"relations": {
                "owner": {"directly_related_user_types": [{"type": "user"}]},
                "viewer": {"directly_related_user_types": [
                    {"type": "user"}, {"type": "user", "wildcard": {}}, {"type": "group", "relation": "member"}]}}}}
        ]
    })
}

pub(crate) fn create_store(server: &Server, name: &str) -> String {
    let (status, body) = post(server, "/stores", json!({"name": name}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], name);
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 26, "a ULID: {id}");
    id
}

pub(crate) fn write_model(server: &Server, store: &str, model: Value) -> String {
    let (status, body) = post(
        server,
        &format!("/stores/{store}/authorization-models"),
        model,
    );
    assert_eq!(status, 201, "{body}");
    body["authorization_model_id"].as_str().unwrap().to_string()
}

pub(crate) fn tk(user: &str, relation: &str, object: &str) -> Value {
    json!({"user": user, "relation": relation, "object": object})
}

pub(crate) fn check(
    server: &Server,
    store: &str,
    user: &str,
    relation: &str,
    object: &str,
) -> bool {
    // What the fga CLI sends: null lists and an empty context.
    let (status, body) = post(
        server,
        &format!("/stores/{store}/check"),
        json!({"tuple_key": tk(user, relation, object),
               "contextual_tuples": {"tuple_keys": null}, "context": {},
               "authorization_model_id": null}),
    );
    assert_eq!(status, 200, "{body}");
    body["allowed"].as_bool().unwrap()
}

#[test]
fn stores_models_tuples_and_queries_over_http() {
    let server = Server::start(&["--insecure-no-auth"]);
    assert_error(
        post(&server, "/stores", json!({"name": "ab"})),
        400,
        "validation_error",
        "Name",
    );
    let store = create_store(&server, "acme docs");
    let (status, got) = get(&server, &format!("/stores/{store}"));
    assert_eq!((status, got["name"].clone()), (200, json!("acme docs")));
    let (_, listed) = get(&server, "/stores?name=acme%20docs");
    assert_eq!(listed["stores"][0]["id"], store.as_str(), "{listed}");

    // No model yet.
    assert_error(
        post(
            &server,
            &format!("/stores/{store}/check"),
            json!({"tuple_key": tk("user:a", "viewer", "doc:1")}),
        ),
        400,
        "latest_authorization_model_not_found",
        "No authorization models",
    );
    let m1 = write_model(&server, &store, model());

    // Writes: validated against the model, atomic, idempotent only when asked.
    let w = format!("/stores/{store}/write");
    let ok = post(
        &server,
        &w,
        json!({"writes": {"tuple_keys": [
        tk("user:anne", "owner", "doc:1"),
        tk("group:eng#member", "viewer", "doc:2"),
        tk("user:bob", "member", "group:eng"),
        tk("user:*", "viewer", "doc:public")]}}),
    );
    assert_eq!(ok.0, 200, "{:?}", ok.1);
    assert!(check(&server, &store, "user:anne", "viewer", "doc:1"));
    assert!(check(&server, &store, "user:bob", "viewer", "doc:2"));
    assert!(check(&server, &store, "user:zed", "viewer", "doc:public"));
    assert!(!check(&server, &store, "user:bob", "viewer", "doc:1"));
    assert!(check(
        &server,
        &store,
        "group:eng#member",
        "viewer",
        "doc:2"
    ));

    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:anne", "owner", "doc:1")]}}),
        ),
        400,
        "write_failed_due_to_invalid_input",
        "already exist",
    );
    let ignored = post(
        &server,
        &w,
        json!({"writes": {"tuple_keys": [tk("user:anne", "owner", "doc:1")], "on_duplicate": "ignore"}}),
    );
    assert_eq!(ignored.0, 200, "{:?}", ignored.1);
    assert_error(
        post(
            &server,
            &w,
            json!({"deletes": {"tuple_keys": [tk("user:nobody", "owner", "doc:1")]}}),
        ),
        400,
        "write_failed_due_to_invalid_input",
        "did not exist",
    );
    let ignored = post(
        &server,
        &w,
        json!({"deletes": {"tuple_keys": [tk("user:nobody", "owner", "doc:1")], "on_missing": "ignore"}}),
    );
    assert_eq!(ignored.0, 200, "{:?}", ignored.1);
    // Atomic: one bad tuple and nothing is written.
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:carl", "owner", "doc:9"), tk("user:carl", "owner", "doc:1"), tk("user:anne", "owner", "doc:1")]}}),
        ),
        400,
        "write_failed_due_to_invalid_input",
        "user:anne",
    );
    assert!(!check(&server, &store, "user:carl", "owner", "doc:9"));
    // Bad input names the field or the tuple, and changes nothing.
    assert_error(
        post(&server, &w, json!({})),
        400,
        "invalid_write_input",
        "at least one write or delete",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:a", "owner", "doc")]}}),
        ),
        400,
        "validation_error",
        "'object'",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user a", "owner", "doc:1")]}}),
        ),
        400,
        "validation_error",
        "'user'",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("group:x#member", "owner", "doc:1")]}}),
        ),
        400,
        "validation_error",
        "not an allowed type restriction for 'doc#owner'",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:*", "owner", "doc:1")]}}),
        ),
        400,
        "validation_error",
        "user:*",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:a", "nope", "doc:1")]}}),
        ),
        400,
        "validation_error",
        "relation 'doc#nope' not found",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:a", "owner", "folder:1")]}}),
        ),
        400,
        "validation_error",
        "type 'folder' not found",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:a", "owner", "doc:1"), tk("user:a", "owner", "doc:1")]}}),
        ),
        400,
        "cannot_allow_duplicate_tuples_in_one_request",
        "user:a",
    );
    assert_error(
        post(
            &server,
            &w,
            json!({"writes": {"tuple_keys": [tk("user:a", "owner", "doc:1")], "on_duplicate": "maybe"}}),
        ),
        400,
        "validation_error",
        "on_duplicate",
    );
    let many: Vec<Value> = (0..101)
        .map(|i| tk("user:a", "owner", &format!("doc:{i}")))
        .collect();
    assert_error(
        post(&server, &w, json!({"writes": {"tuple_keys": many}})),
        400,
        "exceeded_entity_limit",
        "100",
    );
    let hundred: Vec<Value> = (0..100)
        .map(|i| tk("user:many", "owner", &format!("doc:m{i}")))
        .collect();
    assert_eq!(
        post(&server, &w, json!({"writes": {"tuple_keys": hundred}})).0,
        200
    );

    // Queries: OpenFGA's split of Check 2000 vs ListObjects 2022, 2021 for types.
    let c = format!("/stores/{store}/check");
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:a", "nope", "doc:1")}),
        ),
        400,
        "validation_error",
        "doc#nope",
    );
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:a", "viewer", "folder:1")}),
        ),
        400,
        "validation_error",
        "type 'folder' not found",
    );
    assert_error(
        post(&server, &c, json!({})),
        400,
        "validation_error",
        "TupleKey",
    );
    // Contextual tuples overlay the store for one request, validated (2027).
    let (_, with) = post(
        &server,
        &c,
        json!({"tuple_key": tk("user:ctx", "viewer", "doc:1"), "contextual_tuples": {"tuple_keys": [tk("user:ctx", "owner", "doc:1")]}}),
    );
    assert_eq!(with["allowed"], true, "{with}");
    assert!(
        !check(&server, &store, "user:ctx", "viewer", "doc:1"),
        "never stored"
    );
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:ctx", "viewer", "doc:1"), "contextual_tuples": {"tuple_keys": [tk("group:x#member", "owner", "doc:1")]}}),
        ),
        400,
        "invalid_tuple",
        "not an allowed type restriction",
    );
    let too_many: Vec<Value> = (0..101)
        .map(|i| tk(&format!("user:c{i}"), "owner", "doc:1"))
        .collect();
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:ctx", "viewer", "doc:1"), "contextual_tuples": {"tuple_keys": too_many}}),
        ),
        400,
        "validation_error",
        "contextual_tuples",
    );
    let (_, listed) = post(
        &server,
        &format!("/stores/{store}/list-objects"),
        json!({"type": "doc", "relation": "viewer", "user": "user:ctx", "contextual_tuples": {"tuple_keys": [tk("user:ctx", "owner", "doc:7")]}}),
    );
    let mut objects: Vec<String> = serde_json::from_value(listed["objects"].clone()).unwrap();
    objects.sort();
    assert_eq!(
        objects,
        ["doc:7", "doc:public"],
        "the contextual tuple, and user:*"
    );
    let lo = format!("/stores/{store}/list-objects");
    let (status, objs) = post(
        &server,
        &lo,
        json!({"type": "doc", "relation": "viewer", "user": "user:anne", "contextual_tuples": {"tuple_keys": null}, "context": {}}),
    );
    assert_eq!(status, 200, "{objs}");
    let mut objects: Vec<String> = serde_json::from_value(objs["objects"].clone()).unwrap();
    objects.sort();
    assert_eq!(objects, ["doc:1", "doc:public"]);
    assert_error(
        post(
            &server,
            &lo,
            json!({"type": "doc", "relation": "nope", "user": "user:anne"}),
        ),
        400,
        "relation_not_found",
        "doc#nope",
    );
    assert_error(
        post(
            &server,
            &lo,
            json!({"type": "folder", "relation": "viewer", "user": "user:anne"}),
        ),
        400,
        "type_not_found",
        "folder",
    );
    let (status, streamed) = post(
        &server,
        &format!("/stores/{store}/streamed-list-objects"),
        json!({"type": "doc", "relation": "viewer", "user": "user:bob"}),
    );
    assert_eq!(status, 200);
    let mut streamed: Vec<String> = streamed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["result"]["object"].as_str().unwrap().to_string())
        .collect();
    streamed.sort();
    assert_eq!(
        streamed,
        ["doc:2", "doc:public"],
        "bob through group:eng, and user:*"
    );
    let lu = format!("/stores/{store}/list-users");
    let (status, users) = post(
        &server,
        &lu,
        json!({"object": {"type": "doc", "id": "2"}, "relation": "viewer", "user_filters": [{"type": "group", "relation": "member"}], "contextual_tuples": null}),
    );
    assert_eq!(status, 200, "{users}");
    assert_eq!(
        users["users"],
        json!([{"userset": {"type": "group", "id": "eng", "relation": "member"}}])
    );
    let (_, users) = post(
        &server,
        &lu,
        json!({"object": {"type": "doc", "id": "public"}, "relation": "viewer", "user_filters": [{"type": "user"}]}),
    );
    assert_eq!(users["users"], json!([{"wildcard": {"type": "user"}}]));
    assert_error(
        post(
            &server,
            &lu,
            json!({"object": {"type": "doc", "id": "2"}, "relation": "viewer", "user_filters": []}),
        ),
        400,
        "validation_error",
        "UserFilters",
    );
    let (status, batch) = post(
        &server,
        &format!("/stores/{store}/batch-check"),
        json!({"checks": [
        {"tuple_key": tk("user:anne", "viewer", "doc:1"), "correlation_id": "one"},
        {"tuple_key": tk("user:anne", "viewer", "doc:2"), "correlation_id": "two"},
        {"tuple_key": tk("user:anne", "nope", "doc:2"), "correlation_id": "three"}]}),
    );
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["result"]["one"]["allowed"], true);
    assert_eq!(batch["result"]["two"]["allowed"], false);
    assert_eq!(
        batch["result"]["three"]["error"]["input_error"], "validation_error",
        "{batch}"
    );
    let (status, tree) = post(
        &server,
        &format!("/stores/{store}/expand"),
        json!({"tuple_key": {"relation": "owner", "object": "doc:1"}}),
    );
    assert_eq!(status, 200, "{tree}");
    assert_eq!(tree["tree"]["root"]["name"], "doc:1#owner");
    assert_eq!(
        tree["tree"]["root"]["leaf"]["users"]["users"],
        json!(["user:anne"])
    );

    // Read: pages with continuation tokens; relations reported as written.
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..200 {
        let (status, page) = post(
            &server,
            &format!("/stores/{store}/read"),
            json!({"tuple_key": {"user": "user:many", "object": "doc:"}, "page_size": 30, "continuation_token": token}),
        );
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["tuples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["key"]["object"].as_str().unwrap().to_string()),
        );
        token = page["continuation_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen.len(), 100);
    let (_, page) = post(
        &server,
        &format!("/stores/{store}/read"),
        json!({"tuple_key": {"object": "doc:2"}}),
    );
    assert_eq!(
        page["tuples"][0]["key"],
        tk("group:eng#member", "viewer", "doc:2"),
        "{page}"
    );
    assert_error(
        post(
            &server,
            &format!("/stores/{store}/read"),
            json!({"page_size": 101}),
        ),
        400,
        "validation_error",
        "page_size",
    );
    assert_error(
        post(
            &server,
            &format!("/stores/{store}/read"),
            json!({"continuation_token": "!!"}),
        ),
        400,
        "invalid_continuation_token",
        "continuation token",
    );
    assert_error(
        post(
            &server,
            &format!("/stores/{store}/read"),
            json!({"tuple_key": {"object": "doc:"}}),
        ),
        400,
        "validation_error",
        "'user'",
    );

    // ReadChanges: ascending, paged, and a caught-up poll repeats its token.
    let mut changes = Vec::new();
    let mut token = String::new();
    let mut repeats = 0;
    for _ in 0..100 {
        let (status, page) = get(
            &server,
            &format!("/stores/{store}/changes?type=doc&page_size=7&continuation_token={token}"),
        );
        assert_eq!(status, 200, "{page}");
        changes.extend(page["changes"].as_array().unwrap().iter().cloned());
        let next = page["continuation_token"].as_str().unwrap().to_string();
        assert!(!next.is_empty());
        if next == token {
            repeats += 1;
            assert!(page["changes"].as_array().unwrap().is_empty());
            break;
        }
        token = next;
    }
    assert_eq!(repeats, 1, "the poll ends by repeating its token");
    assert_eq!(
        changes.len(),
        103,
        "3 doc writes + 100 (the group write is filtered out)"
    );
    assert_eq!(changes[0]["tuple_key"], tk("user:anne", "owner", "doc:1"));
    assert_eq!(changes[0]["operation"], "TUPLE_OPERATION_WRITE");
    assert_eq!(
        changes[1]["tuple_key"]["relation"], "viewer",
        "the hidden direct relation is reported as written"
    );
    // New changes after the caught-up token are seen once.
    assert_eq!(
        post(
            &server,
            &w,
            json!({"deletes": {"tuple_keys": [tk("user:anne", "owner", "doc:1")]}})
        )
        .0,
        200
    );
    let (_, page) = get(
        &server,
        &format!("/stores/{store}/changes?type=doc&continuation_token={token}"),
    );
    assert_eq!(page["changes"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["changes"][0]["operation"], "TUPLE_OPERATION_DELETE");
    assert_error(
        get(
            &server,
            &format!("/stores/{store}/changes?type=group&continuation_token={token}"),
        ),
        400,
        "query_string_type_continuation_token_mismatch",
        "type",
    );

    // Models: immutable, newest first, paged; a request may pin one.
    let mut narrower = model();
    narrower["type_definitions"][2]["relations"]
        .as_object_mut()
        .unwrap()
        .remove("viewer");
    narrower["type_definitions"][2]["metadata"]["relations"]
        .as_object_mut()
        .unwrap()
        .remove("viewer");
    let m2 = write_model(&server, &store, narrower);
    assert_ne!(m1, m2);
    let (_, page) = get(
        &server,
        &format!("/stores/{store}/authorization-models?page_size=1"),
    );
    assert_eq!(page["authorization_models"][0]["id"], m2.as_str());
    let token = page["continuation_token"].as_str().unwrap();
    assert!(!token.is_empty());
    let (_, page) = get(
        &server,
        &format!("/stores/{store}/authorization-models?page_size=1&continuation_token={token}"),
    );
    assert_eq!(page["authorization_models"][0]["id"], m1.as_str());
    assert_eq!(page["continuation_token"], "");
    let (status, one) = get(
        &server,
        &format!("/stores/{store}/authorization-models/{m1}"),
    );
    assert_eq!(status, 200);
    let (back, sent) = (
        &one["authorization_model"]["type_definitions"][2],
        &model()["type_definitions"][2],
    );
    assert_eq!(back["type"], sent["type"]);
    assert_eq!(
        back["relations"]["viewer"]["union"]["child"][1]["computedUserset"]["relation"], "owner",
        "returned as written: {one}"
    );
    assert!(back["relations"]["owner"]["this"].is_object(), "{one}");
    assert_eq!(
        back["metadata"]["relations"]["viewer"]["directly_related_user_types"][2]["relation"],
        "member",
        "{one}"
    );
    assert!(
        back["metadata"]["relations"]["viewer"]["directly_related_user_types"][1]["wildcard"]
            .is_object(),
        "{one}"
    );
    assert_eq!(one["authorization_model"]["id"], m1.as_str());
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:bob", "viewer", "doc:2")}),
        ),
        400,
        "validation_error",
        "doc#viewer",
    );
    let (_, pinned) = post(
        &server,
        &c,
        json!({"tuple_key": tk("user:bob", "viewer", "doc:2"), "authorization_model_id": m1}),
    );
    assert_eq!(pinned["allowed"], true, "{pinned}");
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:bob", "viewer", "doc:2"), "authorization_model_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        ),
        400,
        "authorization_model_not_found",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    );
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:bob", "viewer", "doc:2"), "authorization_model_id": "nope"}),
        ),
        400,
        "validation_error",
        "authorization_model_id",
    );
    assert_error(
        get(
            &server,
            &format!("/stores/{store}/authorization-models/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        ),
        400,
        "authorization_model_not_found",
        "not found",
    );
    let am = format!("/stores/{store}/authorization-models");
    let mut bad = model();
    bad["schema_version"] = json!("1.0");
    assert_error(
        post(&server, &am, bad),
        400,
        "unsupported_schema_version",
        "1.0",
    );
    assert_error(
        post(
            &server,
            &am,
            json!({"schema_version": "1.1", "type_definitions": []}),
        ),
        400,
        "validation_error",
        "TypeDefinitions",
    );
    assert_error(
        post(
            &server,
            &am,
            json!({"schema_version": "1.1", "type_definitions": [{"type": "doc", "relations": {"viewer": {"computedUserset": {"relation": "missing"}}}}]}),
        ),
        400,
        "invalid_authorization_model",
        "missing",
    );

    // Unknown and deleted stores.
    assert_error(
        get(&server, "/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        404,
        "store_id_not_found",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    );
    assert_error(
        get(&server, "/stores/not%20a%20store"),
        400,
        "validation_error",
        "store_id",
    );
    let (status, body) = call(&server, "DELETE", &format!("/stores/{store}"), None, None);
    assert_eq!((status, body), (204, Value::Null));
    assert_error(
        post(
            &server,
            &c,
            json!({"tuple_key": tk("user:bob", "viewer", "doc:2")}),
        ),
        404,
        "store_id_not_found",
        &store,
    );
    assert_error(
        call(
            &server,
            "PUT",
            &format!("/stores/{store}/assertions/{m1}"),
            Some(&json!({})),
            None,
        ),
        404,
        "store_id_not_found",
        &store,
    );
}

/// Creates a tenant key for the store's tenant with Verdict's CLI.
fn store_key(server: &Server, store: &str) -> String {
    let r = server.cli(
        &[
            "key",
            "create",
            "--tenant",
            &store.to_ascii_lowercase(),
            "--json",
        ],
        &[("VERDICT_TOKEN", ADMIN)],
    );
    let v: Value = serde_json::from_str(r.ok().trim()).unwrap();
    v["token"].as_str().unwrap().to_string()
}

#[test]
fn the_bearer_key_selects_the_store() {
    let server = Server::start(&["--admin-key", ADMIN]);
    let mine = {
        let (s, b) = call(
            &server,
            "POST",
            "/stores",
            Some(&json!({"name": "mine"})),
            Some(ADMIN),
        );
        assert_eq!(s, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    };
    let theirs = {
        let (_, b) = call(
            &server,
            "POST",
            "/stores",
            Some(&json!({"name": "theirs"})),
            Some(ADMIN),
        );
        b["id"].as_str().unwrap().to_string()
    };
    let key = store_key(&server, &mine);
    assert_error(
        call(&server, "GET", &format!("/stores/{mine}"), None, None),
        401,
        "bearer_token_missing",
        "bearer",
    );
    assert_error(
        call(
            &server,
            "GET",
            &format!("/stores/{mine}"),
            None,
            Some("wrong"),
        ),
        401,
        "unauthenticated",
        "unauthenticated",
    );
    let (status, got) = call(&server, "GET", &format!("/stores/{mine}"), None, Some(&key));
    assert_eq!((status, got["name"].clone()), (200, json!("mine")));
    assert_error(
        call(
            &server,
            "GET",
            &format!("/stores/{theirs}"),
            None,
            Some(&key),
        ),
        403,
        "forbidden",
        "may not access",
    );
    let (_, listed) = call(&server, "GET", "/stores", None, Some(&key));
    assert_eq!(listed["stores"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["stores"][0]["id"], mine.as_str());
    let (_, all) = call(&server, "GET", "/stores", None, Some(ADMIN));
    assert!(
        all["stores"].as_array().unwrap().len() >= 3,
        "admin sees every store: {all}"
    );
    assert_error(
        call(
            &server,
            "POST",
            "/stores",
            Some(&json!({"name": "more"})),
            Some(&key),
        ),
        403,
        "forbidden",
        "admin key",
    );
    assert_error(
        call(
            &server,
            "DELETE",
            &format!("/stores/{mine}"),
            None,
            Some(&key),
        ),
        403,
        "forbidden",
        "admin key",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_grpc_service_answers_with_openfga_codes() {
    use verdict::api::openfga::pb;
    use verdict::api::openfga::pb::open_fga_service_client::OpenFgaServiceClient;
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = OpenFgaServiceClient::new(server.channel().await);
    let store = c
        .create_store(pb::CreateStoreRequest {
            name: "grpc store".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let typedefs: pb::WriteAuthorizationModelRequest = serde_json::from_value(model()).unwrap();
    let model_id = c
        .write_authorization_model(pb::WriteAuthorizationModelRequest {
            store_id: store.clone(),
            ..typedefs
        })
        .await
        .unwrap()
        .into_inner()
        .authorization_model_id;
    c.write(pb::WriteRequest {
        store_id: store.clone(),
        writes: Some(pb::WriteRequestWrites {
            tuple_keys: vec![pb::TupleKey {
                user: "user:anne".into(),
                relation: "owner".into(),
                object: "doc:1".into(),
                condition: None,
            }],
            on_duplicate: String::new(),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let key = |user: &str, relation: &str, object: &str| pb::CheckRequestTupleKey {
        user: user.into(),
        relation: relation.into(),
        object: object.into(),
    };
    let allowed = c
        .check(pb::CheckRequest {
            store_id: store.clone(),
            tuple_key: Some(key("user:anne", "viewer", "doc:1")),
            authorization_model_id: model_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .allowed;
    assert!(allowed);
    // OpenFGA puts its own number on the wire as the gRPC status (2021
    // is no standard code, so tonic reads it as Unknown); the internal
    // header that carries it to the guard never leaves the server.
    let e = c
        .check(pb::CheckRequest {
            store_id: store.clone(),
            tuple_key: Some(key("user:anne", "viewer", "folder:1")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown, "{e:?}");
    assert!(e.message().contains("type 'folder' not found"), "{e:?}");
    let e = c
        .list_objects(pb::ListObjectsRequest {
            store_id: store.clone(),
            r#type: "folder".into(),
            relation: "viewer".into(),
            user: "user:anne".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown, "2021 on the wire: {e:?}");
    assert!(e.metadata().get("x-openfga-code").is_none(), "{e:?}");
    let e = c
        .get_store(pb::GetStoreRequest {
            store_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown, "5002 on the wire: {e:?}");
    assert!(e.message().contains("not found"), "{e:?}");
    let objects: Vec<String> = {
        let mut stream = c
            .streamed_list_objects(pb::StreamedListObjectsRequest {
                store_id: store.clone(),
                r#type: "doc".into(),
                relation: "viewer".into(),
                user: "user:anne".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut out = Vec::new();
        while let Some(item) = stream.message().await.unwrap() {
            out.push(item.object);
        }
        out
    };
    assert_eq!(objects, ["doc:1"]);
}
