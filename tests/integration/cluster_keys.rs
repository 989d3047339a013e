//! Tenant API keys on a three-node cluster of real `verdict serve`
//! processes running with `--admin-key`: a key created through a follower
//! authenticates on every node, a key revoked through another node fails
//! on every node, and a node killed before a key was created learns it
//! through a snapshot install (and keeps it across a restart).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests assert by panicking"
)]

use crate::support;

use std::time::{Duration, Instant};

use support::cluster::{node_metric, wait_leader, Cluster, Node, CLUSTER_KEY};
use support::{Clients, ADMIN};
use tonic::Code;
use verdict::api::pb;

/// Small, so the log is compacted while a node is down.
const SNAPSHOT_LOGS: u64 = 20;

/// Clients of `node` sending `token`.
async fn clients(node: &Node, token: &str) -> Clients {
    let channel = tonic::transport::Endpoint::from_shared(node.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    Clients::new(channel, Some(token))
}

/// Node `via`'s own Raft status (internal admin service): its log's
/// last, applied and purged indexes among others.
async fn raft_status(via: &Node) -> serde_json::Value {
    use verdict::server::raft_commit::AdminRequest;
    use verdict::server::raft_net::{PeerClient, Rpc};
    let client = PeerClient::new(&via.raft_addr(), Some(CLUSTER_KEY)).expect("peer client");
    let data = serde_json::to_vec(&AdminRequest::Status).expect("encode");
    let reply = client
        .call(Rpc::Admin, data, Duration::from_secs(5))
        .await
        .expect("status");
    serde_json::from_slice::<Result<serde_json::Value, verdict::server::error::PeerError>>(&reply)
        .expect("decode")
        .expect("status answered")
}

/// Creates a key for `tenant` through `node` with the admin key; returns
/// (id, token).
async fn create_key(node: &Node, tenant: &str) -> (String, String) {
    let r = clients(node, ADMIN)
        .await
        .keys
        .create_key(pb::CreateKeyRequest {
            tenant: tenant.into(),
        })
        .await
        .expect("create key")
        .into_inner();
    let id = r.key.expect("key").id;
    assert!(r.token.starts_with(&format!("vk_{id}_")), "{}", r.token);
    (id, r.token)
}

/// A check of `document:d#view@user:u` in `acme` with `token` on `node`;
/// UNAVAILABLE (leadership moving) is retried for up to 30 s.
async fn check_with(node: &Node, token: &str) -> Result<pb::Permissionship, tonic::Status> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match clients(node, token).await.check("acme", "d", "u").await {
            Err(e) if e.code() == Code::Unavailable && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Waits (bounded) until `token` is accepted on `node` for a write and a
/// check (a node may apply the key a moment after the one that created it).
async fn wait_accepted(node: &Node, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = clients(node, token).await;
        let wrote = c
            .write("acme", &[("document", "d", "viewer", "user", "u", "")])
            .await;
        match wrote {
            Ok(()) => {
                assert_eq!(
                    check_with(node, token).await.expect("check with the key"),
                    pb::Permissionship::Allowed,
                    "node {}",
                    node.id
                );
                return;
            }
            Err(e) if e.code() == Code::Unauthenticated || e.code() == Code::Unavailable => {
                assert!(
                    Instant::now() < deadline,
                    "node {} never accepted the key: {e:?}",
                    node.id
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("write with the key on node {}: {e:?}", node.id),
        }
    }
}

/// Waits (bounded) until `token` is refused as UNAUTHENTICATED on `node`.
async fn wait_refused(node: &Node, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match check_with(node, token).await {
            Err(e) if e.code() == Code::Unauthenticated => return,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "node {} still accepts the revoked key: {other:?}",
                    node.id
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_created_and_revoked_through_any_node_hold_on_every_node() {
    let logs = SNAPSHOT_LOGS.to_string();
    let mut cluster = Cluster::start(&[
        "--snapshot-logs",
        &logs,
        "--sync-writes",
        "false",
        "--admin-key",
        ADMIN,
    ]);
    let leader = wait_leader(&cluster.nodes[0], None, Duration::from_secs(20));
    let follower = if leader == 1 { 2 } else { 1 };
    let other = 6 - leader - follower;

    // Tenant, schema and key, all through a follower with the admin key.
    let f = &cluster.nodes[(follower - 1) as usize];
    let mut admin = clients(f, ADMIN).await;
    admin
        .tenants
        .create_tenant(pb::CreateTenantRequest {
            name: "acme".into(),
        })
        .await
        .expect("create tenant through a follower");
    admin.write_schema("acme").await;
    // A key for an unknown tenant is refused as before.
    let e = admin
        .keys
        .create_key(pb::CreateKeyRequest {
            tenant: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let (id1, token1) = create_key(f, "acme").await;
    // Works at once on the node that created it.
    assert_eq!(
        check_with(f, &token1)
            .await
            .expect("check on the creating node"),
        pb::Permissionship::Denied
    );
    for node in &cluster.nodes {
        wait_accepted(node, &token1).await;
    }
    // Every node lists it; no node's key file holds the token.
    for node in &cluster.nodes {
        let ids: Vec<String> = clients(node, ADMIN)
            .await
            .keys
            .list_keys(pb::ListKeysRequest {
                tenant: "acme".into(),
            })
            .await
            .expect("list keys")
            .into_inner()
            .keys
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, vec![id1.clone()], "node {}", node.id);
        let file = std::fs::read_to_string(node.dir.join("keys.json")).expect("keys.json");
        assert!(file.contains(&id1) && !file.contains(&token1));
    }

    // Revoked through another node: refused everywhere.
    let o = &cluster.nodes[(other - 1) as usize];
    clients(o, ADMIN)
        .await
        .keys
        .revoke_key(pb::RevokeKeyRequest { id: id1.clone() })
        .await
        .expect("revoke through another node");
    let e = check_with(o, &token1).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "at once where revoked");
    for node in &cluster.nodes {
        wait_refused(node, &token1).await;
    }
    // Revoking it again: the same refusal as on a single node.
    let e = clients(f, ADMIN)
        .await
        .keys
        .revoke_key(pb::RevokeKeyRequest { id: id1.clone() })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().contains("`id`"), "{e:?}");

    // A node down while the second key is created and the log compacted
    // catches up by snapshot and then accepts the key.
    let down = other;
    cluster.node(down).kill9();
    let l = &cluster.nodes[(leader - 1) as usize];
    let (id2, token2) = create_key(l, "acme").await;
    let key2_at = raft_status(l).await["last_log_index"]
        .as_u64()
        .expect("last log index");
    // Write until the leader's log no longer holds the key's entry (so the
    // node can only learn the key from a snapshot).
    let mut admin = clients(l, ADMIN).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 0;
    while raft_status(l).await["purged_index"].as_u64().unwrap_or(0) <= key2_at {
        assert!(Instant::now() < deadline, "the leader never purged its log");
        for _ in 0..SNAPSHOT_LOGS {
            i += 1;
            admin
                .write(
                    "acme",
                    &[("document", &format!("x{i}"), "viewer", "user", "u", "")],
                )
                .await
                .expect("write with a node down");
        }
    }
    cluster.restart(down);
    let d = &cluster.nodes[(down - 1) as usize];
    wait_accepted(d, &token2).await;
    wait_refused(d, &token1).await;
    // Its own metrics say it installed a snapshot (the log was compacted).
    let installed = node_metric(d.http, "verdict_raft_snapshots_installed_total").await;
    assert!(installed >= 1, "expected a snapshot install");
    let file = std::fs::read_to_string(d.dir.join("keys.json")).expect("keys.json");
    assert!(file.contains(&id2) && !file.contains(&id1), "{file}");

    // Restarted again, it still knows the key from its own applied state.
    cluster.node(down).kill9();
    cluster.restart(down);
    wait_accepted(&cluster.nodes[(down - 1) as usize], &token2).await;

    // Deleting the tenant (through a follower) revokes its keys everywhere.
    let f = &cluster.nodes[(follower - 1) as usize];
    clients(f, ADMIN)
        .await
        .tenants
        .delete_tenant(pb::DeleteTenantRequest {
            name: "acme".into(),
            confirm: "acme".into(),
        })
        .await
        .expect("delete tenant");
    for node in &cluster.nodes {
        wait_refused(node, &token2).await;
        let file = std::fs::read_to_string(node.dir.join("keys.json")).expect("keys.json");
        assert!(!file.contains(&id2), "node {}: {file}", node.id);
    }
}
