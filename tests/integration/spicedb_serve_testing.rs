//! `verdict serve-testing` (SpiceDB's `serve-testing`) as a real process:
//! any bearer token (or none) is served, each token gets its own isolated
//! tenant created on first use, `--load-configs` preloads every new
//! tenant, over both gRPC (authzed.api.v1) and the HTTP/JSON gateway.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::spicedb_http::{check, post, post_stream, rel, SCHEMA};
use crate::support;

use serde_json::{json, Value};
use support::Server;
use tonic::metadata::MetadataValue;
use verdict::api::spicedb::pb;

/// A validation file with the schema and two relationships.
fn config() -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    let indented: String = SCHEMA.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!(
        "schema: |-\n{indented}relationships: |-\n  doc:pre#viewer@group:eng#member\n  group:eng#member@user:alice\n"
    );
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file
}

fn subjects_of(server: &Server, token: Option<&str>) -> Vec<String> {
    let (status, lines) = post_stream(
        server,
        "/v1/relationships/read",
        &json!({"consistency": {"fullyConsistent": true}, "relationshipFilter": {"resourceType": "doc"}}),
        token,
    );
    assert_eq!(status, 200, "{lines:?}");
    let mut ids: Vec<String> = lines
        .iter()
        .map(|l| {
            l["result"]["relationship"]["resource"]["objectId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn each_token_gets_its_own_preloaded_tenant() {
    let file = config();
    let path = file.path().to_str().unwrap().to_string();
    let server = Server::start_testing(&["--load-configs", &path]);

    // Every token (and no token) starts from the preloaded data.
    for token in [Some("alpha"), Some("beta"), None] {
        assert_eq!(
            check(&server, token, "doc:pre", "view", "user:alice"),
            "PERMISSIONSHIP_HAS_PERMISSION",
            "token {token:?}"
        );
    }
    // A write under one token is invisible under the others.
    let w = post(
        &server,
        "/v1/relationships/write",
        &json!({"updates": [{"operation": "OPERATION_TOUCH", "relationship": rel("doc:alpha", "viewer", "user:bob")}]}),
        Some("alpha"),
    );
    assert_eq!(w.0, 200, "{}", w.1);
    assert_eq!(subjects_of(&server, Some("alpha")), ["alpha", "pre"]);
    assert_eq!(subjects_of(&server, Some("beta")), ["pre"]);
    assert_eq!(subjects_of(&server, None), ["pre"]);
    // A schema written under one token leaves the others' alone.
    let extended = format!("{SCHEMA}definition extra {{}}\n");
    let w = post(
        &server,
        "/v1/schema/write",
        &json!({ "schema": extended }),
        Some("gamma"),
    );
    assert_eq!(w.0, 200, "{}", w.1);
    let read: Value = post(&server, "/v1/schema/read", &json!({}), Some("gamma")).1;
    assert!(
        read["schemaText"]
            .as_str()
            .unwrap()
            .contains("definition extra"),
        "{read}"
    );
    let read: Value = post(&server, "/v1/schema/read", &json!({}), Some("beta")).1;
    assert!(
        !read["schemaText"]
            .as_str()
            .unwrap()
            .contains("definition extra"),
        "{read}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_clients_with_any_token_are_served_in_isolation() {
    let server = Server::start_testing(&[]);
    let channel = server.channel().await;
    let with = |token: &'static str| {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        pb::permissions_service_client::PermissionsServiceClient::with_interceptor(
            channel.clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", value.clone());
                Ok(r)
            },
        )
    };
    let schema_for = |token: &'static str| {
        let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
        pb::schema_service_client::SchemaServiceClient::with_interceptor(
            channel.clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", value.clone());
                Ok(r)
            },
        )
    };
    // No --load-configs: a new token's tenant is empty (no schema).
    let err = schema_for("one")
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
    schema_for("one")
        .write_schema(pb::WriteSchemaRequest {
            schema: SCHEMA.into(),
        })
        .await
        .unwrap();
    with("one")
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![pb::RelationshipUpdate {
                operation: pb::relationship_update::Operation::Touch as i32,
                relationship: Some(pb::Relationship {
                    resource: Some(pb::ObjectReference {
                        object_type: "doc".into(),
                        object_id: "1".into(),
                    }),
                    relation: "viewer".into(),
                    subject: Some(pb::SubjectReference {
                        object: Some(pb::ObjectReference {
                            object_type: "user".into(),
                            object_id: "alice".into(),
                        }),
                        optional_relation: String::new(),
                    }),
                    optional_caveat: None,
                    optional_expires_at: None,
                }),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    // The HTTP gateway sees the same tenant for the same token.
    assert_eq!(
        check(&server, Some("one"), "doc:1", "view", "user:alice"),
        "PERMISSIONSHIP_HAS_PERMISSION"
    );
    // Another token has no schema at all.
    let err = schema_for("two")
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");
}

#[test]
fn a_bad_config_file_stops_start_up() {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::io::Write::write_all(
        &mut file,
        b"schema: |-\n  definition user {}\nrelationships: |-\n  not a relationship\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
        .args([
            "serve-testing",
            "--grpc-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
        ])
        .arg("--load-configs")
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("relationship line 1"), "{stderr}");
}
