//! The group index on a follower that caught up through a snapshot: three
//! real `verdict serve` processes, one follower killed with -9 while the
//! leader writes a nested group hierarchy and enough entries to compact
//! its log (the snapshot covering every write of the tenant), then
//! restarted; once it has installed the leader's snapshot it answers a
//! nested-membership check at the last write's zookie from its rebuilt
//! index (its own metrics say so), and the answer is right.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::time::{Duration, Instant};

use support::cluster::{at_least, node_metric, wait_leader, Cluster};
use verdict::api::pb;
use verdict::api::pb::permission_service_client::PermissionServiceClient;
use verdict::api::pb::relationship_service_client::RelationshipServiceClient;
use verdict::api::pb::schema_service_client::SchemaServiceClient;
use verdict::api::pb::tenant_service_client::TenantServiceClient;

/// Raft entries kept before the log is compacted into a snapshot.
const SNAPSHOT_LOGS: u64 = 20;
/// Groups in the nested chain g0 ⊂ g1 ⊂ … ⊂ g{DEEP-1}.
const DEEP: usize = 8;
/// Single-tuple writes made while the follower is down (≫ SNAPSHOT_LOGS).
const FILLER: usize = 100;

const SCHEMA: &str = "definition user {}
definition group {
    relation member: user | group#member
}
definition doc {
    relation viewer: user | group#member
    permission view = viewer
}";

async fn write_schema(endpoint: &str) {
    let mut c = SchemaServiceClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    c.write_schema(pb::WriteSchemaRequest {
        tenant: String::new(),
        schema: SCHEMA.into(),
        expected_version: 0,
        comment: String::new(),
    })
    .await
    .expect("schema write");
}

/// TOUCHes `lines` in one write (one Raft entry); its zookie.
async fn touch(endpoint: &str, lines: &[String]) -> pb::Zookie {
    let mut c = RelationshipServiceClient::connect(endpoint.to_string())
        .await
        .expect("connect");
    let updates = lines
        .iter()
        .map(|l| {
            let t = verdict_storage::Tuple::parse(l).expect("tuple");
            pb::RelationshipUpdate {
                operation: pb::relationship_update::Operation::Touch as i32,
                relationship: Some(verdict::api::convert::tuple_to_pb(&t)),
            }
        })
        .collect();
    c.write_relationships(pb::WriteRelationshipsRequest {
        tenant: String::new(),
        updates,
        preconditions: Vec::new(),
    })
    .await
    .expect("write with one follower down")
    .into_inner()
    .written_at
    .expect("zookie")
}

/// `tuple` as a check (permission in the relation's place) at
/// `consistency`, with its trace; UNAVAILABLE (a node still catching up
/// past `--max-wait`) is retried for up to 30 s.
async fn check(
    endpoint: &str,
    tuple: &str,
    consistency: Option<pb::Consistency>,
) -> (pb::Permissionship, String) {
    let t = verdict_storage::Tuple::parse(tuple).expect("tuple");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut c = PermissionServiceClient::connect(endpoint.to_string())
                .await
                .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
            c.check(pb::CheckRequest {
                tenant: String::new(),
                consistency: consistency.clone(),
                resource: Some(verdict::api::convert::object_to_pb(&t.resource)),
                permission: t.relation.clone(),
                subject: Some(verdict::api::convert::subject_to_pb(&t.subject)),
                context: None,
                with_trace: true,
                with_footprint: false,
            })
            .await
            .map(tonic::Response::into_inner)
        };
        match attempt.await {
            Ok(r) => return (r.permissionship(), r.trace),
            Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("check {tuple} on {endpoint}: {s}"),
        }
    }
}

const ANSWERS: &str = "verdict_group_index_answers_total";
const HAS: pb::Permissionship = pb::Permissionship::Allowed;
const NO: pb::Permissionship = pb::Permissionship::Denied;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_answers_from_its_index_after_installing_a_snapshot() {
    let logs = SNAPSHOT_LOGS.to_string();
    let mut cluster = Cluster::start(&[
        "--snapshot-logs",
        &logs,
        "--sync-writes",
        "false",
        "--group-index",
        "on",
        "--insecure-no-auth",
    ]);
    let leader = wait_leader(&cluster.nodes[0], None, Duration::from_secs(20));
    let follower = if leader == 3 { 2 } else { 3 };
    let leader_endpoint = cluster.node(leader).endpoint();
    write_schema(&leader_endpoint).await;
    cluster.node(follower).kill9();

    // While it is down: ann in g0, half the chain, many unrelated writes
    // (the log is compacted past them), then the rest of the chain.
    let chain = |g: usize| format!("group:g{g}#member@group:g{}#member", g - 1);
    touch(&leader_endpoint, &["group:g0#member@user:ann".to_string()]).await;
    for g in 1..DEEP / 2 {
        touch(&leader_endpoint, &[chain(g)]).await;
    }
    for i in 0..FILLER {
        touch(&leader_endpoint, &[format!("group:f{i}#member@user:u{i}")]).await;
    }
    let mut last = None;
    for g in DEEP / 2..DEEP {
        last = Some(touch(&leader_endpoint, &[chain(g)]).await);
    }
    let last = last.expect("zookie");
    // Then entries of no tenant (tenant creations) until the leader's
    // snapshot covers every write above: the follower's tenant gets no
    // entry after the snapshot, so only the install can bring its index
    // up to date.
    let leader_http = cluster.node(leader).http;
    let written = node_metric(leader_http, "verdict_raft_applied_index").await;
    let mut tenants = TenantServiceClient::connect(leader_endpoint.clone())
        .await
        .expect("connect");
    for i in 0.. {
        if node_metric(leader_http, "verdict_raft_snapshot_index").await >= written {
            break;
        }
        assert!(
            i < 10 * SNAPSHOT_LOGS,
            "the leader built no snapshot past index {written}"
        );
        tenants
            .create_tenant(pb::CreateTenantRequest {
                name: format!("pad{i}"),
            })
            .await
            .expect("create a tenant");
    }

    cluster.restart(follower);
    let http = cluster.node(follower).http;
    let f = cluster.node(follower).endpoint();
    let deadline = Instant::now() + Duration::from_secs(60);
    while node_metric(http, "verdict_raft_snapshots_installed_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "the restarted follower installed no snapshot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Its index is rebuilt in the background after the install: until
    // then the walk answers. Ask a new non-member each time (no cached
    // answer can hide which one answered) until the index does.
    let top = format!("group:g{}", DEEP - 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        let before = node_metric(http, ANSWERS).await;
        let (p, trace) = check(
            &f,
            &format!("{top}#member@user:stranger{attempt}"),
            at_least(&last),
        )
        .await;
        assert_eq!(p, NO, "{trace}");
        if node_metric(http, ANSWERS).await > before {
            assert!(trace.contains("group index"), "{trace}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower's index never answered after the snapshot: {trace}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The nested member, through the whole chain, answered by the index.
    let before = node_metric(http, ANSWERS).await;
    let (p, trace) = check(&f, &format!("{top}#member@user:ann"), at_least(&last)).await;
    assert_eq!(p, HAS, "{trace}");
    assert!(
        trace.contains(&format!(
            "group index: user:ann reaches {top}#member via g0 → g1"
        )),
        "{trace}"
    );
    assert!(
        node_metric(http, ANSWERS).await > before,
        "the index answered, not the walk"
    );
    // A userset subject: g2's members are the top group's.
    let before = node_metric(http, ANSWERS).await;
    let (p, trace) = check(
        &f,
        &format!("{top}#member@group:g2#member"),
        at_least(&last),
    )
    .await;
    assert_eq!(p, HAS, "{trace}");
    assert!(node_metric(http, ANSWERS).await > before, "{trace}");
    // And the leader agrees.
    let (p, _) = check(
        &leader_endpoint,
        &format!("{top}#member@user:ann"),
        at_least(&last),
    )
    .await;
    assert_eq!(p, HAS);
}
