//! Group commit end to end: many concurrent writers against real
//! `verdict serve` processes (one node, then three), some of their writes
//! doomed (a precondition that fails, a CREATE of an existing
//! relationship). Every successful write is readable at its own zookie,
//! every failed one changed nothing, the watch feed shows each success
//! exactly once, and the writes did share Raft entries.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use support::cluster::{node_metric, Cluster};
use tokio_stream::StreamExt;
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;
use verdict::api::pb::watch_service_client::WatchServiceClient;

const SCHEMA: &str = "definition user {}
definition doc {
    relation viewer: user
    permission view = viewer
}";

/// Concurrent writers and writes per writer.
const WRITERS: usize = 48;
const WRITES_EACH: usize = 10;

fn tuple_pb(text: &str) -> pb::Relationship {
    verdict::api::convert::tuple_to_pb(&verdict_storage::Tuple::parse(text).expect("tuple"))
}

fn on_doc(id: &str) -> pb::RelationshipFilter {
    pb::RelationshipFilter {
        resource_type: "doc".into(),
        optional_resource_id: id.into(),
        ..Default::default()
    }
}

/// What one write should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// TOUCH with a precondition that holds.
    Succeeds,
    /// TOUCH with a precondition that fails.
    PreconditionFails,
    /// CREATE of the seeded relationship.
    Duplicate,
}

fn kind(k: usize) -> Kind {
    match k % 5 {
        0 => Kind::Duplicate,
        1 => Kind::PreconditionFails,
        _ => Kind::Succeeds,
    }
}

/// Retries UNAVAILABLE (an election settling) for up to 30 s.
async fn write_schema(endpoint: &str) -> pb::Zookie {
    let mut c = SchemaServiceClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written = c
            .write_schema(pb::WriteSchemaRequest {
                tenant: String::new(),
                schema: SCHEMA.into(),
                expected_version: 0,
                comment: String::new(),
            })
            .await;
        match written {
            Ok(r) => return r.into_inner().written_at.expect("zookie"),
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("schema write through {endpoint}: {s}"),
        }
    }
}

type Rel = RelationshipServiceClient<tonic::transport::Channel>;

async fn connect(endpoint: &str) -> Rel {
    RelationshipServiceClient::connect(endpoint.to_string())
        .await
        .expect("connect")
}

async fn write(
    c: &mut Rel,
    operation: pb::relationship_update::Operation,
    tuple: &str,
    preconditions: Vec<pb::Precondition>,
) -> Result<pb::Zookie, tonic::Status> {
    let r = c
        .write_relationships(pb::WriteRelationshipsRequest {
            tenant: String::new(),
            updates: vec![pb::RelationshipUpdate {
                operation: operation as i32,
                relationship: Some(tuple_pb(tuple)),
            }],
            preconditions,
        })
        .await?;
    r.into_inner()
        .written_at
        .ok_or_else(|| tonic::Status::internal("no zookie"))
}

async fn check(endpoint: &str, doc: &str, user: &str, consistency: pb::Consistency) -> i32 {
    let mut c = PermissionServiceClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    c.check(pb::CheckRequest {
        tenant: String::new(),
        consistency: Some(consistency),
        resource: Some(support::obj("doc", doc)),
        permission: "view".into(),
        subject: Some(support::subj("user", user, "")),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|s| panic!("check doc:{doc} user:{user} on {endpoint}: {s}"))
    .into_inner()
    .permissionship
}

fn at_exact(z: &pb::Zookie) -> pb::Consistency {
    pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtExactSnapshot(z.clone())),
    }
}

/// Writers spread over `endpoints`; checks the outcome on every endpoint;
/// the watch feed is read through the first.
async fn exercise(endpoints: &[String]) {
    let first = endpoints[0].clone();
    write_schema(&first).await;
    let seeded = write(
        &mut connect(&first).await,
        pb::relationship_update::Operation::Touch,
        "doc:base#viewer@user:seed",
        Vec::new(),
    )
    .await
    .expect("seed");
    let mut watch = WatchServiceClient::connect(first.clone())
        .await
        .expect("connect")
        .watch(pb::WatchRequest {
            tenant: String::new(),
            optional_start: Some(seeded.clone()),
            optional_resource_types: Vec::new(),
        })
        .await
        .expect("watch")
        .into_inner();

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let endpoint = endpoints[w % endpoints.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&endpoint).await;
            let mut done = Vec::new();
            for k in 0..WRITES_EACH {
                let text = format!("doc:t{w}-{k}#viewer@user:u{w}");
                let must = |id: &str| pb::Precondition {
                    operation: pb::precondition::Operation::MustMatch as i32,
                    filter: Some(on_doc(id)),
                };
                let result = match kind(k) {
                    Kind::Succeeds => {
                        write(
                            &mut c,
                            pb::relationship_update::Operation::Touch,
                            &text,
                            vec![must("base")],
                        )
                        .await
                    }
                    Kind::PreconditionFails => {
                        write(
                            &mut c,
                            pb::relationship_update::Operation::Touch,
                            &text,
                            vec![must("nowhere")],
                        )
                        .await
                    }
                    Kind::Duplicate => {
                        write(
                            &mut c,
                            pb::relationship_update::Operation::Create,
                            "doc:base#viewer@user:seed",
                            Vec::new(),
                        )
                        .await
                    }
                };
                done.push((w, k, result));
            }
            done
        }));
    }
    let mut succeeded: BTreeMap<String, pb::Zookie> = BTreeMap::new();
    let mut failed: Vec<(usize, usize)> = Vec::new();
    for t in tasks {
        for (w, k, result) in t.await.expect("writer") {
            match (kind(k), result) {
                (Kind::Succeeds, Ok(z)) => {
                    succeeded.insert(format!("doc:t{w}-{k}#viewer@user:u{w}"), z);
                }
                (Kind::Succeeds, Err(s)) => panic!("write t{w}-{k} failed: {s}"),
                (Kind::PreconditionFails, Err(s)) => {
                    assert_eq!(s.code(), tonic::Code::FailedPrecondition, "t{w}-{k}: {s}");
                    failed.push((w, k));
                }
                (Kind::Duplicate, Err(s)) => {
                    assert_eq!(s.code(), tonic::Code::AlreadyExists, "t{w}-{k}: {s}");
                }
                (kind, Ok(_)) => panic!("write t{w}-{k} ({kind:?}) succeeded"),
            }
        }
    }
    assert_eq!(succeeded.len(), WRITERS * WRITES_EACH * 3 / 5);

    // Every success is visible at exactly its own zookie, on every node.
    for (text, z) in &succeeded {
        let t = verdict_storage::Tuple::parse(text).unwrap();
        for endpoint in endpoints {
            assert_eq!(
                check(
                    endpoint,
                    &t.resource.object_id,
                    &t.subject.object.object_id,
                    at_exact(z)
                )
                .await,
                pb::Permissionship::Allowed as i32,
                "{text} at its zookie on {endpoint}"
            );
        }
    }
    // Every failed write left nothing.
    let full = pb::Consistency {
        requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
    };
    for (w, k) in &failed {
        for endpoint in endpoints {
            assert_eq!(
                check(
                    endpoint,
                    &format!("t{w}-{k}"),
                    &format!("u{w}"),
                    full.clone()
                )
                .await,
                pb::Permissionship::Denied as i32,
                "failed write t{w}-{k} on {endpoint}"
            );
        }
    }

    // The watch feed: each success exactly once, nothing else.
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < succeeded.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(item)) = tokio::time::timeout(left, watch.next()).await else {
            panic!("watch ended or timed out after {} changes", seen.len());
        };
        let response = item.expect("watch item");
        for c in response.changes {
            let r = c.relationship.expect("relationship");
            let t = verdict::api::convert::tuple_from_pb(&r, "relationship").expect("tuple");
            assert_eq!(
                c.operation,
                pb::relationship_change::Operation::Touch as i32,
                "{t}"
            );
            seen.push(t.to_string());
        }
    }
    // Anything more would come before an idle checkpoint.
    loop {
        let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(10), watch.next()).await
        else {
            break;
        };
        let response = item.expect("watch item");
        if response.checkpoint {
            break;
        }
        for c in response.changes {
            seen.push(format!("{:?}", c.relationship));
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a change was delivered twice");
    assert_eq!(
        unique,
        succeeded.keys().collect::<BTreeSet<_>>(),
        "the watch feed shows exactly the successful writes"
    );
}

/// Writes per entry and entries the group committers of `ports` proposed.
async fn grouped(ports: &[u16]) -> (u64, u64) {
    let mut writes = 0;
    let mut entries = 0;
    for &port in ports {
        writes += node_metric(port, "verdict_group_commit_writes_per_entry_sum").await;
        entries += node_metric(port, "verdict_group_commit_writes_per_entry_count").await;
    }
    (writes, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_and_keep_their_own_outcomes_on_one_node() {
    let server = support::Server::start(&["--insecure-no-auth"]);
    let endpoint = format!("http://{}", server.grpc);
    exercise(std::slice::from_ref(&endpoint)).await;
    let port: u16 = server
        .http
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("http port");
    let (writes, entries) = grouped(&[port]).await;
    // The seed and every data write went through the group committer;
    // with 48 writers some of them shared an entry.
    assert!(writes as usize > WRITERS * WRITES_EACH, "{writes} writes");
    assert!(
        entries < writes,
        "no two writes shared an entry ({writes} writes in {entries} entries)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_entries_and_keep_their_own_outcomes_on_three_nodes() {
    let cluster = Cluster::start(&["--insecure-no-auth"]);
    let endpoints: Vec<String> = cluster.nodes.iter().map(|n| n.endpoint()).collect();
    exercise(&endpoints).await;
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.http).collect();
    let (writes, entries) = grouped(&ports).await;
    assert!(
        entries < writes,
        "no two writes shared an entry ({writes} writes in {entries} entries)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_group_commit_off_every_write_is_its_own_entry() {
    let server = support::Server::start(&["--insecure-no-auth", "--group-commit", "off"]);
    let endpoint = format!("http://{}", server.grpc);
    write_schema(&endpoint).await;
    write(
        &mut connect(&endpoint).await,
        pb::relationship_update::Operation::Touch,
        "doc:base#viewer@user:seed",
        Vec::new(),
    )
    .await
    .expect("write");
    let metrics = server.http_get("/metrics");
    assert!(
        !metrics.contains("verdict_group_commit_writes_per_entry"),
        "{metrics}"
    );
}
