//! OpenFGA's assertions (WriteAssertions / ReadAssertions) and UpdateStore
//! on the real `verdict serve`, over HTTP and gRPC: per model, replaced as
//! a set, validated against their model, durable across a restart, and
//! without effect on which model queries use.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::openfga_api::{assert_error, call, check, create_store, get, model, tk, write_model};
use crate::support::Server;

use serde_json::{json, Value};

/// The test model plus `doc#editor: [user]` (only in the second model).
fn model_with_editor() -> Value {
    let mut m = model();
    let doc = &mut m["type_definitions"][2];
    doc["relations"]["editor"] = json!({"this": {}});
    doc["metadata"]["relations"]["editor"] =
        json!({"directly_related_user_types": [{"type": "user"}]});
    m
}

fn put(server: &Server, path: &str, body: Value) -> (u16, Value) {
    call(server, "PUT", path, Some(&body), None)
}

#[test]
fn assertions_are_kept_per_model_validated_and_durable() {
    let server = Server::start(&["--insecure-no-auth"]);
    let store = create_store(&server, "assertions");
    let m1 = write_model(&server, &store, model());
    let m2 = write_model(&server, &store, model_with_editor());
    let a1 = format!("/stores/{store}/assertions/{m1}");
    let a2 = format!("/stores/{store}/assertions/{m2}");

    // None written yet: an empty set, not an error.
    let (status, body) = get(&server, &a1);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authorization_model_id"], m1.as_str());
    assert!(
        body["assertions"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );

    let set = json!({"assertions": [
        {"tuple_key": tk("user:anne", "viewer", "doc:1"), "expectation": true},
        {"tuple_key": tk("user:bob", "viewer", "doc:1"), "expectation": false,
         "contextual_tuples": [tk("user:bob", "owner", "doc:2")],
         "context": {"x": 1}}
    ]});
    assert_eq!(put(&server, &a1, set.clone()), (204, Value::Null));
    let (status, body) = get(&server, &a1);
    assert_eq!(status, 200, "{body}");
    let got = body["assertions"].as_array().unwrap();
    assert_eq!(got.len(), 2, "{body}");
    assert_eq!(got[0]["tuple_key"]["user"], "user:anne");
    assert_eq!(got[0]["expectation"], true);
    assert_eq!(got[1]["expectation"], false, "{body}");
    assert_eq!(got[1]["contextual_tuples"][0]["object"], "doc:2");
    assert_eq!(got[1]["context"]["x"], 1.0);
    // Another model's set is its own.
    let (_, body) = get(&server, &a2);
    assert!(
        body["assertions"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );

    // Writing assertions for the older model leaves the latest model in
    // force: `editor` exists only in the second one.
    let writes = json!({"writes": {"tuple_keys": [tk("user:carl", "editor", "doc:1")]}});
    let (status, body) = call(
        &server,
        "POST",
        &format!("/stores/{store}/write"),
        Some(&writes),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert!(check(&server, &store, "user:carl", "editor", "doc:1"));

    // Each set is validated against its own model, as a Check's input.
    let editor = json!({"assertions": [
        {"tuple_key": tk("user:anne", "editor", "doc:1"), "expectation": true}]});
    assert_error(
        put(&server, &a1, editor.clone()),
        400,
        "validation_error",
        "editor",
    );
    assert_eq!(put(&server, &a2, editor), (204, Value::Null));
    assert_error(
        put(
            &server,
            &a1,
            json!({"assertions": [{"tuple_key": tk("user:anne", "viewer", "folder:1"), "expectation": true}]}),
        ),
        400,
        "validation_error",
        "folder",
    );
    assert_error(
        put(
            &server,
            &a1,
            json!({"assertions": [{"tuple_key": tk("user:anne", "viewer", "doc:1"), "expectation": true,
                "contextual_tuples": [tk("group:g", "viewer", "doc:1")]}]}),
        ),
        400,
        "validation_error",
        "group:g",
    );
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"tuple_key": tk("user:anne", "viewer", &format!("doc:{i}")), "expectation": true}))
        .collect();
    assert_error(
        put(&server, &a1, json!({ "assertions": many })),
        400,
        "validation_error",
        "100",
    );
    assert_error(
        put(
            &server,
            &format!("/stores/{store}/assertions/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            json!({"assertions": []}),
        ),
        400,
        "authorization_model_not_found",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    );
    assert_error(
        get(&server, &format!("/stores/{store}/assertions/not-a-ulid")),
        400,
        "validation_error",
        "authorization_model_id",
    );
    // A refused write changed nothing.
    let (_, body) = get(&server, &a1);
    assert_eq!(body["assertions"].as_array().unwrap().len(), 2, "{body}");

    // A write replaces the set; an empty one clears it.
    let one = json!({"assertions": [{"tuple_key": tk("user:dan", "viewer", "doc:9"), "expectation": false}]});
    assert_eq!(put(&server, &a1, one), (204, Value::Null));
    let (_, body) = get(&server, &a1);
    assert_eq!(body["assertions"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["assertions"][0]["tuple_key"]["user"], "user:dan");

    // Durable: after a restart the sets and the latest model are as left.
    let data = server.stop();
    let server = Server::start_in(data, &["--insecure-no-auth"]);
    let (_, body) = get(&server, &a1);
    assert_eq!(
        body["assertions"][0]["tuple_key"]["user"], "user:dan",
        "{body}"
    );
    let (_, body) = get(&server, &a2);
    assert_eq!(
        body["assertions"][0]["tuple_key"]["relation"], "editor",
        "{body}"
    );
    assert!(check(&server, &store, "user:carl", "editor", "doc:1"));
    assert_eq!(
        put(&server, &a1, json!({"assertions": null})),
        (204, Value::Null)
    );
    let (_, body) = get(&server, &a1);
    assert!(
        body["assertions"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );
}

#[test]
fn update_store_renames_it() {
    let server = Server::start(&["--insecure-no-auth"]);
    let store = create_store(&server, "old name");
    let path = format!("/stores/{store}");
    let (status, body) = call(
        &server,
        "PATCH",
        &path,
        Some(&json!({"name": "new name"})),
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["id"].as_str(), body["name"].as_str()),
        (Some(store.as_str()), Some("new name"))
    );
    let (_, body) = get(&server, &path);
    assert_eq!(body["name"], "new name", "{body}");
    let (_, body) = get(&server, "/stores?name=new%20name");
    assert_eq!(body["stores"][0]["id"], store.as_str(), "{body}");
    let (_, body) = get(&server, "/stores?name=old%20name");
    assert!(
        body["stores"].as_array().is_none_or(Vec::is_empty),
        "{body}"
    );
    // Renaming before any model leaves the store model-less; after one,
    // the model stays in force.
    assert_error(
        crate::openfga_api::post(
            &server,
            &format!("/stores/{store}/check"),
            json!({"tuple_key": tk("user:anne", "viewer", "doc:1")}),
        ),
        400,
        "latest_authorization_model_not_found",
        &store,
    );
    write_model(&server, &store, model());
    let (status, _) = call(
        &server,
        "PATCH",
        &path,
        Some(&json!({"name": "third"})),
        None,
    );
    assert_eq!(status, 200);
    assert!(!check(&server, &store, "user:anne", "viewer", "doc:1"));
    assert_error(
        call(&server, "PATCH", &path, Some(&json!({"name": "x"})), None),
        400,
        "validation_error",
        "Name",
    );
    assert_error(
        call(
            &server,
            "PATCH",
            "/stores/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            Some(&json!({"name": "whatever"})),
            None,
        ),
        404,
        "store_id_not_found",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn assertions_and_update_store_over_grpc() {
    use verdict::api::openfga::pb;
    use verdict::api::openfga::pb::open_fga_service_client::OpenFgaServiceClient;
    let server = Server::start(&["--insecure-no-auth"]);
    let mut c = OpenFgaServiceClient::new(server.channel().await);
    let store = c
        .create_store(pb::CreateStoreRequest {
            name: "grpc assertions".into(),
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
    let assertion = pb::Assertion {
        tuple_key: Some(pb::AssertionTupleKey {
            object: "doc:1".into(),
            relation: "viewer".into(),
            user: "user:anne".into(),
        }),
        expectation: true,
        contextual_tuples: vec![],
        context: None,
    };
    c.write_assertions(pb::WriteAssertionsRequest {
        store_id: store.clone(),
        authorization_model_id: model_id.clone(),
        assertions: vec![assertion.clone()],
    })
    .await
    .unwrap();
    let read = c
        .read_assertions(pb::ReadAssertionsRequest {
            store_id: store.clone(),
            authorization_model_id: model_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.authorization_model_id, model_id);
    assert_eq!(read.assertions, vec![assertion]);
    let e = c
        .read_assertions(pb::ReadAssertionsRequest {
            store_id: store.clone(),
            authorization_model_id: "01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unknown, "2001 on the wire: {e:?}");
    assert!(e.message().contains("not found"), "{e:?}");
    let renamed = c
        .update_store(pb::UpdateStoreRequest {
            store_id: store.clone(),
            name: "renamed over grpc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "renamed over grpc");
    let got = c
        .get_store(pb::GetStoreRequest {
            store_id: store.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.name, "renamed over grpc");
}
