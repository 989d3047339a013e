//! End-to-end: the built `verdict serve` binary on free loopback ports,
//! driven through the gRPC API with tonic clients; killed with SIGKILL and
//! restarted on the same data directory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tokio_stream::StreamExt;
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;

/// A running server; killed on drop so a failing test never leaks it.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args([
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--insecure-no-auth",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut endpoint = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("stdout line");
            if let Some(addr) = line.strip_prefix("grpc listening on ") {
                endpoint = format!("http://{addr}");
            }
            if line == "ready" {
                break;
            }
        }
        assert!(!endpoint.is_empty(), "server never printed its address");
        Server { child, endpoint }
    }

    fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on unix
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rel(text: &str) -> pb::Relationship {
    verdict::api::convert::tuple_to_pb(&verdict_storage::Tuple::parse(text).expect("tuple"))
}

fn full() -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    })
}

fn at_least(z: &pb::Zookie) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(z.clone())),
    })
}

fn exact(z: &pb::Zookie) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(z.clone())),
    })
}

async fn check(
    client: &mut PermissionServiceClient<tonic::transport::Channel>,
    tuple: &str,
    consistency: Option<pb::Consistency>,
) -> Result<i32, tonic::Status> {
    let t = verdict_storage::Tuple::parse(tuple).expect("check tuple");
    let response = client
        .check(pb::CheckRequest {
            tenant: String::new(),
            consistency,
            resource: Some(verdict::api::convert::object_to_pb(&t.resource)),
            permission: t.relation.clone(),
            subject: Some(verdict::api::convert::subject_to_pb(&t.subject)),
            context: None,
            with_trace: false,
            with_footprint: false,
        })
        .await?;
    Ok(response.into_inner().permissionship)
}

const ALLOWED: i32 = pb::Permissionship::Allowed as i32;
const DENIED: i32 = pb::Permissionship::Denied as i32;

const SCHEMA: &str = "definition user {}
definition folder {
    relation viewer: user
    permission view = viewer
}
definition document {
    relation folder: folder
    relation viewer: user
    permission view = viewer + folder->view
}";

async fn write(
    client: &mut RelationshipServiceClient<tonic::transport::Channel>,
    op: pb::relationship_update::Operation,
    tuples: &[&str],
) -> pb::Zookie {
    client
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: String::new(),
            updates: tuples
                .iter()
                .map(|t| pb::RelationshipUpdate {
                    operation: op as i32,
                    relationship: Some(rel(t)),
                })
                .collect(),
            preconditions: Vec::new(),
        })
        .await
        .expect("write succeeds")
        .into_inner()
        .written_at
        .expect("zookie")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_write_check_kill_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let endpoint = server.endpoint.clone();

    let mut schema = SchemaServiceClient::connect(endpoint.clone())
        .await
        .unwrap();
    let written = schema
        .write_schema(pb::WriteSchemaRequest {
            tenant: String::new(),
            schema: SCHEMA.into(),
            expected_version: 0,
            comment: "e2e".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(written.version, 1);

    // A schema with an error is refused with line:column.
    let bad = schema
        .write_schema(pb::WriteSchemaRequest {
            tenant: String::new(),
            schema: "definition doc {\n relation viewer: usr\n}".into(),
            expected_version: 0,
            comment: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("schema:2:"), "{}", bad.message());

    let mut rels = RelationshipServiceClient::connect(endpoint.clone())
        .await
        .unwrap();
    let mut perms = PermissionServiceClient::connect(endpoint.clone())
        .await
        .unwrap();
    use pb::relationship_update::Operation::{Delete, Touch};

    // The "new enemy" scenario: remove alice from the folder, then add a
    // document to it; a check at least as fresh as the second write must
    // never see alice.
    let z1 = write(
        &mut rels,
        Touch,
        &[
            "folder:plans#viewer@user:alice",
            "folder:plans#viewer@user:bob",
        ],
    )
    .await;
    assert_eq!(
        check(&mut perms, "folder:plans#view@user:alice", at_least(&z1))
            .await
            .unwrap(),
        ALLOWED
    );
    let z2 = write(&mut rels, Delete, &["folder:plans#viewer@user:alice"]).await;
    let z3 = write(&mut rels, Touch, &["document:secret#folder@folder:plans"]).await;
    assert_eq!(
        check(&mut perms, "document:secret#view@user:alice", at_least(&z3))
            .await
            .unwrap(),
        DENIED
    );
    assert_eq!(
        check(&mut perms, "document:secret#view@user:bob", at_least(&z3))
            .await
            .unwrap(),
        ALLOWED
    );
    // At the exact snapshot before the removal alice could view the folder.
    assert_eq!(
        check(&mut perms, "folder:plans#view@user:alice", exact(&z1))
            .await
            .unwrap(),
        ALLOWED
    );
    assert_eq!(
        check(&mut perms, "folder:plans#view@user:alice", exact(&z2))
            .await
            .unwrap(),
        DENIED
    );
    assert_eq!(
        check(&mut perms, "folder:plans#view@user:alice", full())
            .await
            .unwrap(),
        DENIED
    );

    // Bad input: unknown relation, corrupt zookie, unknown tenant.
    let err = rels
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: String::new(),
            updates: vec![pb::RelationshipUpdate {
                operation: Touch as i32,
                relationship: Some(rel("document:x#owner@user:alice")),
            }],
            preconditions: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("updates[0]"), "{}", err.message());
    let corrupt = pb::Zookie {
        token: "AAAA".into(),
    };
    let err = check(&mut perms, "folder:plans#view@user:bob", at_least(&corrupt))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Lookups agree with check.
    let mut stream = perms
        .lookup_resources(pb::LookupResourcesRequest {
            tenant: String::new(),
            consistency: at_least(&z3),
            resource_type: "document".into(),
            permission: "view".into(),
            subject: Some(verdict::api::convert::subject_to_pb(
                &verdict_storage::SubjectRef::direct("user", "bob"),
            )),
            context: None,
            limit: 0,
            cursor: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut found = Vec::new();
    while let Some(item) = stream.next().await {
        found.push(item.unwrap().resource_id);
    }
    assert_eq!(found, vec!["secret"]);

    // Watch from z1 replays the later changes in order, each once; resuming
    // from z2 starts after it.
    let watch = pb::watch_service_client::WatchServiceClient::connect(endpoint.clone())
        .await
        .unwrap();
    let changes = |start: &pb::Zookie, want: usize| {
        let mut watch = watch.clone();
        let start = start.clone();
        async move {
            let mut stream = watch
                .watch(pb::WatchRequest {
                    tenant: String::new(),
                    optional_start: Some(start),
                    optional_resource_types: Vec::new(),
                })
                .await
                .unwrap()
                .into_inner();
            let mut seen = Vec::new();
            while seen.len() < want {
                let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                    .await
                    .expect("watch delivers within 10s")
                    .expect("stream open")
                    .expect("no error");
                for c in next.changes {
                    let t =
                        verdict::api::convert::tuple_from_pb(c.relationship.as_ref().unwrap(), "r")
                            .unwrap();
                    seen.push(format!("{} {t} {}", c.operation, c.event_id));
                }
            }
            seen
        }
    };
    let from_z1 = changes(&z1, 2).await;
    assert_eq!(from_z1.len(), 2, "{from_z1:?}");
    assert!(
        from_z1[0].starts_with("3 folder:plans#viewer@user:alice"),
        "{from_z1:?}"
    );
    assert!(
        from_z1[1].starts_with("2 document:secret#folder@folder:plans"),
        "{from_z1:?}"
    );
    let from_z2 = changes(&z2, 1).await;
    assert_eq!(from_z2[0], from_z1[1], "resume from z2 starts after it");

    // kill -9, restart on the same directory: every acknowledged write is
    // there and old zookies are still honoured.
    server.kill9();
    let server = Server::start(dir.path());
    let mut perms = PermissionServiceClient::connect(server.endpoint.clone())
        .await
        .unwrap();
    assert_eq!(
        check(&mut perms, "document:secret#view@user:bob", at_least(&z3))
            .await
            .unwrap(),
        ALLOWED
    );
    assert_eq!(
        check(&mut perms, "document:secret#view@user:alice", full())
            .await
            .unwrap(),
        DENIED
    );
    assert_eq!(
        check(&mut perms, "folder:plans#view@user:alice", exact(&z1))
            .await
            .unwrap(),
        ALLOWED
    );
}
