//! SpiceDB's HTTP/JSON API (grpc-gateway's routes of `authzed.api.v1`) on
//! the real `verdict serve`'s HTTP port, over raw HTTP/1.1 as `curl` sends
//! it: protojson bodies (camelCase, enum names), newline-delimited
//! `{"result": …}` streams, imports, watch, and grpc-gateway's error
//! bodies and HTTP statuses, bearer auth included.

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

const KEY: &str = "gateway-preshared-key";

pub(crate) const SCHEMA: &str = "definition user {}
definition group {
  relation member: user | group#member
}
definition doc {
  relation viewer: user | group#member
  relation banned: user
  permission view = viewer - banned
}
";

/// One POST with a raw body; the status and the body text (de-chunked).
pub(crate) fn post_raw(
    server: &Server,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(&server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, crate::openfga_api::dechunk(head, rest))
}

/// A unary call: status and JSON body.
pub(crate) fn post(server: &Server, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
    let (status, text) = post_raw(server, path, &body.to_string(), token);
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, value)
}

/// A streaming call: status and one JSON value per line.
pub(crate) fn post_stream(
    server: &Server,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, Vec<Value>) {
    let (status, text) = post_raw(server, path, &body.to_string(), token);
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (status, lines)
}

/// Asserts grpc-gateway's error body: HTTP status, gRPC code, ErrorInfo
/// reason (when `reason` is given, with domain `authzed.com`).
pub(crate) fn assert_error(got: &(u16, Value), status: u16, code: i64, reason: Option<&str>) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
    let details = got.1["details"].as_array().unwrap();
    if let Some(reason) = reason {
        let info = details
            .iter()
            .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
            .unwrap_or_else(|| panic!("no ErrorInfo in {}", got.1));
        assert_eq!(info["reason"], reason, "{}", got.1);
        assert_eq!(info["domain"], "authzed.com", "{}", got.1);
    }
}

pub(crate) fn rel(resource: &str, relation: &str, subject: &str) -> Value {
    let (rt, rid) = resource.split_once(':').unwrap();
    let (s, srel) = subject.split_once('#').unwrap_or((subject, ""));
    let (st, sid) = s.split_once(':').unwrap();
    json!({
        "resource": {"objectType": rt, "objectId": rid},
        "relation": relation,
        "subject": {"object": {"objectType": st, "objectId": sid}, "optionalRelation": srel},
    })
}

pub(crate) fn check_body(resource: &str, permission: &str, subject: &str) -> Value {
    let r = rel(resource, permission, subject);
    json!({
        "consistency": {"fullyConsistent": true},
        "resource": r["resource"],
        "permission": permission,
        "subject": r["subject"],
    })
}

/// The permissionship of a check over HTTP.
pub(crate) fn check(
    server: &Server,
    token: Option<&str>,
    resource: &str,
    permission: &str,
    subject: &str,
) -> String {
    let got = post(
        server,
        "/v1/permissions/check",
        &check_body(resource, permission, subject),
        token,
    );
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(
        got.1["checkedAt"]["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{}",
        got.1
    );
    got.1["permissionship"].as_str().unwrap().to_string()
}

#[test]
fn every_permissions_and_schema_route_answers_protojson() {
    let server = Server::start(&["--grpc-preshared-key", KEY]);
    let t = Some(KEY);

    // No schema yet: NOT_FOUND → 404 with grpc-gateway's body.
    let none = post(&server, "/v1/schema/read", &json!({}), t);
    assert_error(&none, 404, 5, None);

    let written = post(&server, "/v1/schema/write", &json!({ "schema": SCHEMA }), t);
    assert_eq!(written.0, 200, "{}", written.1);
    assert!(written.1["writtenAt"]["token"].is_string(), "{}", written.1);
    let read = post(&server, "/v1/schema/read", &json!({}), t);
    assert_eq!(read.0, 200);
    assert!(read.1["schemaText"]
        .as_str()
        .unwrap()
        .contains("definition doc"));
    assert!(read.1["readAt"]["token"].is_string());

    let updates: Vec<Value> = [
        ("doc:1", "viewer", "group:eng#member"),
        ("group:eng", "member", "user:alice"),
        ("group:eng", "member", "user:mallory"),
        ("doc:1", "banned", "user:mallory"),
    ]
    .iter()
    .map(|(r, rl, s)| json!({"operation": "OPERATION_TOUCH", "relationship": rel(r, rl, s)}))
    .collect();
    let w = post(
        &server,
        "/v1/relationships/write",
        &json!({ "updates": updates }),
        t,
    );
    assert_eq!(w.0, 200, "{}", w.1);
    assert!(w.1["writtenAt"]["token"].is_string());

    assert_eq!(
        check(&server, t, "doc:1", "view", "user:alice"),
        "PERMISSIONSHIP_HAS_PERMISSION"
    );
    assert_eq!(
        check(&server, t, "doc:1", "view", "user:mallory"),
        "PERMISSIONSHIP_NO_PERMISSION"
    );

    // CREATE of an existing relationship: ALREADY_EXISTS → 409.
    let dup = post(
        &server,
        "/v1/relationships/write",
        &json!({"updates": [{"operation": "OPERATION_CREATE", "relationship": rel("group:eng", "member", "user:alice")}]}),
        t,
    );
    assert_error(&dup, 409, 6, None);

    // Unknown permission: FAILED_PRECONDITION → 400 with its ErrorInfo.
    let unknown = post(
        &server,
        "/v1/permissions/check",
        &check_body("doc:1", "nosuch", "user:alice"),
        t,
    );
    assert_error(
        &unknown,
        400,
        9,
        Some("ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION"),
    );

    // Bulk check: one pair per item, in order.
    let items: Vec<Value> = ["user:alice", "user:mallory"]
        .iter()
        .map(|s| {
            let b = check_body("doc:1", "view", s);
            json!({"resource": b["resource"], "permission": "view", "subject": b["subject"]})
        })
        .collect();
    let bulk = post(
        &server,
        "/v1/permissions/checkbulk",
        &json!({"consistency": {"fullyConsistent": true}, "items": items}),
        t,
    );
    assert_eq!(bulk.0, 200, "{}", bulk.1);
    let pairs = bulk.1["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(
        pairs[0]["item"]["permissionship"],
        "PERMISSIONSHIP_HAS_PERMISSION"
    );
    assert_eq!(
        pairs[1]["item"]["permissionship"],
        "PERMISSIONSHIP_NO_PERMISSION"
    );

    // Server streams: newline-delimited {"result": …}.
    let (status, lines) = post_stream(
        &server,
        "/v1/relationships/read",
        &json!({"consistency": {"fullyConsistent": true}, "relationshipFilter": {"resourceType": "group"}}),
        t,
    );
    assert_eq!(status, 200);
    let mut members: Vec<String> = lines
        .iter()
        .map(|l| {
            l["result"]["relationship"]["subject"]["object"]["objectId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    members.sort();
    assert_eq!(members, ["alice", "mallory"]);
    assert!(lines
        .iter()
        .all(|l| l["result"]["readAt"]["token"].is_string()));

    let (status, lines) = post_stream(
        &server,
        "/v1/permissions/resources",
        &json!({"consistency": {"fullyConsistent": true}, "resourceObjectType": "doc", "permission": "view",
                "subject": {"object": {"objectType": "user", "objectId": "alice"}}}),
        t,
    );
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["result"]["resourceObjectId"], "1");
    assert_eq!(
        lines[0]["result"]["permissionship"],
        "LOOKUP_PERMISSIONSHIP_HAS_PERMISSION"
    );

    let (status, lines) = post_stream(
        &server,
        "/v1/permissions/subjects",
        &json!({"consistency": {"fullyConsistent": true}, "resource": {"objectType": "doc", "objectId": "1"},
                "permission": "view", "subjectObjectType": "user"}),
        t,
    );
    assert_eq!(status, 200);
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["result"]["subject"]["subjectObjectId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alice"], "{lines:?}");

    // A streaming RPC's error is one {"error": …} line with the status.
    let (status, lines) = post_stream(
        &server,
        "/v1/permissions/resources",
        &json!({"resourceObjectType": "nosuch", "permission": "view",
                "subject": {"object": {"objectType": "user", "objectId": "alice"}}}),
        t,
    );
    assert_eq!(status, 400, "{lines:?}");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["error"]["code"], 9, "{lines:?}");

    let expand = post(
        &server,
        "/v1/permissions/expand",
        &json!({"consistency": {"fullyConsistent": true}, "resource": {"objectType": "doc", "objectId": "1"}, "permission": "viewer"}),
        t,
    );
    assert_eq!(expand.0, 200, "{}", expand.1);
    assert!(expand.1["treeRoot"].is_object(), "{}", expand.1);
    assert!(expand.1["expandedAt"]["token"].is_string());

    let reflected = post(&server, "/v1/schema/reflectschema", &json!({}), t);
    assert!(reflected.0 == 200 || reflected.0 == 501, "{}", reflected.1);

    // Import (newline-delimited request objects), export (a stream), delete.
    let import = [
        json!({"relationships": [rel("doc:2", "viewer", "user:bob")]}),
        json!({"relationships": [rel("doc:3", "viewer", "user:bob")]}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let (status, text) = post_raw(&server, "/v1/relationships/importbulk", &import, t);
    assert_eq!(status, 200, "{text}");
    let imported: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(imported["numLoaded"], "2", "{imported}");
    let (status, pages) = post_stream(
        &server,
        "/v1/relationships/exportbulk",
        &json!({"consistency": {"fullyConsistent": true}}),
        t,
    );
    assert_eq!(status, 200);
    let exported: usize = pages
        .iter()
        .map(|p| p["result"]["relationships"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(exported, 6, "{pages:?}");

    let deleted = post(
        &server,
        "/v1/relationships/delete",
        &json!({"relationshipFilter": {"resourceType": "doc", "optionalResourceId": "2"}}),
        t,
    );
    assert_eq!(deleted.0, 200, "{}", deleted.1);
    assert!(deleted.1["deletedAt"]["token"].is_string());
    assert_eq!(
        check(&server, t, "doc:2", "view", "user:bob"),
        "PERMISSIONSHIP_NO_PERMISSION"
    );
    assert_eq!(
        check(&server, t, "doc:3", "view", "user:bob"),
        "PERMISSIONSHIP_HAS_PERMISSION"
    );
}

#[test]
fn bad_input_and_auth_get_grpc_gateway_errors() {
    let server = Server::start(&["--grpc-preshared-key", KEY]);
    let t = Some(KEY);
    // Missing token: UNAUTHENTICATED → 401; wrong token: PERMISSION_DENIED → 403.
    let missing = post(&server, "/v1/schema/read", &json!({}), None);
    assert_error(&missing, 401, 16, None);
    let wrong = post(&server, "/v1/schema/read", &json!({}), Some("nope"));
    assert_error(&wrong, 403, 7, None);

    // Not JSON, and a field of the wrong type: INVALID_ARGUMENT → 400.
    let (status, text) = post_raw(&server, "/v1/permissions/check", "{not json", t);
    assert_eq!(status, 400, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["code"], 3);
    let wrong_type = post(
        &server,
        "/v1/permissions/check",
        &json!({"permission": 5}),
        t,
    );
    assert_error(&wrong_type, 400, 3, None);
    // SpiceDB's field validation, through the same service code as gRPC.
    post(&server, "/v1/schema/write", &json!({ "schema": SCHEMA }), t);
    let bad_type = post(
        &server,
        "/v1/permissions/check",
        &check_body("Doc:1", "view", "user:a"),
        t,
    );
    assert_error(&bad_type, 400, 3, None);
    // Bad schema: INVALID_ARGUMENT with SpiceDB's reason.
    let bad_schema = post(
        &server,
        "/v1/schema/write",
        &json!({"schema": "definition {"}),
        t,
    );
    assert_eq!(bad_schema.0, 400, "{}", bad_schema.1);
    assert_eq!(bad_schema.1["code"], 3);
    // A bad zedtoken.
    let mut body = check_body("doc:1", "view", "user:a");
    body["consistency"] = json!({"atLeastAsFresh": {"token": "garbage"}});
    let bad_token = post(&server, "/v1/permissions/check", &body, t);
    assert_eq!(bad_token.0, 400, "{}", bad_token.1);
    // An unknown route is not a SpiceDB route.
    let (status, _) = post_raw(&server, "/v1/nosuch", "{}", t);
    assert_eq!(status, 404);
}

#[test]
fn watch_streams_updates_as_ndjson() {
    let server = Server::start(&["--grpc-preshared-key", KEY]);
    let t = Some(KEY);
    post(&server, "/v1/schema/write", &json!({ "schema": SCHEMA }), t);
    let mut stream = std::net::TcpStream::connect(&server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = json!({"optionalObjectTypes": ["doc"]}).to_string();
    write!(
        stream,
        "POST /v1/watch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Writes after the watch started; keep writing until one shows up.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    for i in 0..20 {
        let w = post(
            &server,
            "/v1/relationships/write",
            &json!({"updates": [{"operation": "OPERATION_TOUCH", "relationship": rel(&format!("doc:w{i}"), "viewer", "user:zed")}]}),
            t,
        );
        assert_eq!(w.0, 200, "{}", w.1);
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        if seen.contains("OPERATION_TOUCH") {
            break;
        }
    }
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    let update_line = seen
        .lines()
        .find(|l| l.starts_with("{\"result\"") && l.contains("updates"))
        .unwrap_or_else(|| panic!("no update line in {seen}"));
    let update: Value = serde_json::from_str(update_line).unwrap();
    let first = &update["result"]["updates"][0];
    assert_eq!(first["operation"], "OPERATION_TOUCH", "{update}");
    assert_eq!(first["relationship"]["resource"]["objectType"], "doc");
    assert!(
        update["result"]["changesThrough"]["token"].is_string(),
        "{update}"
    );
}
