//! Read-your-writes for OpenFGA clients, opt-in: a Write answers a
//! consistency token (`Openfga-Consistency-Token`, HTTP header and gRPC
//! metadata) and a query that sends it back reads at least that revision,
//! even with MINIMIZE_LATENCY; a malformed token is refused naming the
//! header; clients that send none are unaffected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{Read as _, Write as _};
use std::time::Duration;

use serde_json::{json, Value};

use crate::openfga_api::{create_store, model, tk, write_model};
use crate::support::Server;

const HEADER: &str = "openfga-consistency-token";

/// One POST with extra headers: status, response head, body.
fn post_with(server: &Server, path: &str, body: &Value, extra: &str) -> (u16, String, Value) {
    let mut stream = std::net::TcpStream::connect(&server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let payload = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{payload}",
        payload.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(rest).unwrap_or(Value::Null);
    (status, head.to_string(), body)
}

fn header_value(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(": ")?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[test]
fn a_write_token_makes_a_minimize_latency_check_see_the_write() {
    let server = Server::start(&["--insecure-no-auth"]);
    let store = create_store(&server, "tokens");
    write_model(&server, &store, model());
    let writes = json!({"writes": {"tuple_keys": [tk("user:anne", "owner", "doc:1")]}});
    let (status, head, body) = post_with(&server, &format!("/stores/{store}/write"), &writes, "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({}), "the body stays OpenFGA's");
    let token = header_value(&head, HEADER).unwrap_or_else(|| panic!("no token: {head}"));

    let check = json!({"tuple_key": tk("user:anne", "viewer", "doc:1"),
                       "consistency": "MINIMIZE_LATENCY"});
    let path = format!("/stores/{store}/check");
    let (status, _, body) = post_with(&server, &path, &check, &format!("{HEADER}: {token}\r\n"));
    assert_eq!(
        (status, body["allowed"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    // Without a token: as before.
    let (status, _, body) = post_with(&server, &path, &check, "");
    assert_eq!(status, 200, "{body}");
    // A token that is not one is refused, naming the header.
    let (status, _, body) = post_with(&server, &path, &check, &format!("{HEADER}: nonsense\r\n"));
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_error")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains(HEADER), "{body}");
    // The token works on the other queries too.
    let list = json!({"type": "doc", "relation": "viewer", "user": "user:anne",
                      "consistency": "MINIMIZE_LATENCY"});
    let (status, _, body) = post_with(
        &server,
        &format!("/stores/{store}/list-objects"),
        &list,
        &format!("{HEADER}: {token}\r\n"),
    );
    assert_eq!(
        (status, body["objects"].clone()),
        (200, json!(["doc:1"])),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_rides_grpc_metadata() {
    use verdict::api::openfga::pb;
    use verdict::api::openfga::pb::open_fga_service_client::OpenFgaServiceClient;
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = OpenFgaServiceClient::new(server.channel().await);
    let store = c
        .create_store(pb::CreateStoreRequest {
            name: "grpc tokens".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    let typedefs: pb::WriteAuthorizationModelRequest = serde_json::from_value(model()).unwrap();
    c.write_authorization_model(pb::WriteAuthorizationModelRequest {
        store_id: store.clone(),
        ..typedefs
    })
    .await
    .unwrap();
    let written = c
        .write(pb::WriteRequest {
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
    let token = written.metadata().get(HEADER).unwrap().clone();
    let check = |token: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>| {
        let mut r = tonic::Request::new(pb::CheckRequest {
            store_id: store.clone(),
            tuple_key: Some(pb::CheckRequestTupleKey {
                user: "user:anne".into(),
                relation: "viewer".into(),
                object: "doc:1".into(),
            }),
            consistency: pb::ConsistencyPreference::MinimizeLatency as i32,
            ..Default::default()
        });
        if let Some(t) = token {
            r.metadata_mut().insert(HEADER, t);
        }
        r
    };
    let allowed = c
        .check(check(Some(token)))
        .await
        .unwrap()
        .into_inner()
        .allowed;
    assert!(allowed);
    let e = c
        .check(check(Some("nonsense".parse().unwrap())))
        .await
        .unwrap_err();
    assert!(e.message().contains(HEADER), "{e:?}");
}
