//! The Rust client library (`verdict-client`) against the real server:
//! the local decision cache stays exact from the watch feed (a revocation
//! stops local ALLOWEDs, an unrelated write evicts nothing, a schema
//! change drops everything), fails closed while the stream is down and
//! resumes from its last revision after a restart, and a session reads
//! its own writes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use verdict_client::cache::Lookup;
use verdict_client::footprint::{subject_key, ObjectKey, SubjectKey};
use verdict_client::{
    AnswerSource, CachePolicy, Check, Client, ClientConfig, Filter, LocalCache, Permissionship,
    Session, Update,
};

use crate::support::cluster::free_port;
use crate::support::{ADMIN, SCHEMA};

/// `verdict serve` on a fixed gRPC port (so a restart keeps the address
/// the client holds); killed on drop.
struct Node {
    child: Child,
    grpc: String,
    data: tempfile::TempDir,
}

impl Node {
    fn start(data: tempfile::TempDir, port: u16) -> Node {
        let grpc = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_verdict"))
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--grpc-addr", &grpc, "--http-addr", "127.0.0.1:0"])
            .args(["--admin-key", ADMIN])
            .env_remove("VERDICT_ADMIN_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("verdict serve starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("server prints `ready` within a minute");
            if line == "ready" {
                break;
            }
        }
        Node { child, grpc, data }
    }

    /// Kills the server; its data directory, to restart on.
    fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(node: &Node) -> Client {
    let mut config = ClientConfig::new(node.grpc.clone()).with_bearer_key(ADMIN);
    config.retry.max_attempts = 2;
    Client::connect(config).unwrap()
}

fn grant(rel: &str) -> Update {
    Update::Touch(rel.parse().unwrap())
}

fn revoke(rel: &str) -> Update {
    Update::Delete(rel.parse().unwrap())
}

fn view(doc: &str, user: &str) -> Check {
    Check::parse(&format!("document:{doc}"), "view", &format!("user:{user}")).unwrap()
}

const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `f` every 10ms until it is true; panics after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Checks until the answer comes from the local cache.
async fn warm(cache: &LocalCache, check: &Check, expect: Permissionship) {
    eventually(&format!("{check} answered locally"), || async {
        let answer = cache.check(check).await.unwrap();
        assert_eq!(answer.permissionship, expect, "{check}");
        answer.source == AnswerSource::LocalCache
    })
    .await;
}

/// Waits until the cache's watch has applied `revision`.
async fn applied(cache: &LocalCache, revision: u64) {
    eventually(&format!("watch applied {revision}"), || async {
        cache.stats().position >= revision
    })
    .await;
}

async fn seeded(node: &Node) -> Client {
    let c = client(node);
    c.write_schema("", SCHEMA).await.unwrap();
    c.write(
        "",
        &[
            grant("document:d1#viewer@user:alice"),
            grant("document:d2#viewer@user:bob"),
        ],
    )
    .await
    .unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_stops_local_allows_and_an_unrelated_write_evicts_nothing() {
    let node = Node::start(tempfile::tempdir().unwrap(), free_port());
    let writer = seeded(&node).await;
    let cache = LocalCache::new(client(&node), "", CachePolicy::default());
    warm(&cache, &view("d1", "alice"), Permissionship::Allowed).await;
    warm(&cache, &view("d2", "bob"), Permissionship::Allowed).await;
    warm(&cache, &view("d1", "bob"), Permissionship::Denied).await;
    let before = cache.stats();
    assert_eq!(before.invalidations, 0, "{before:?}");

    // Unrelated: another document, and another user on d1.
    let z = writer
        .write(
            "",
            &[
                grant("document:d3#viewer@user:carol"),
                grant("document:d1#viewer@user:dan"),
            ],
        )
        .await
        .unwrap();
    applied(&cache, z.revision()).await;
    for (check, expect) in [
        (view("d1", "alice"), Permissionship::Allowed),
        (view("d2", "bob"), Permissionship::Allowed),
        (view("d1", "bob"), Permissionship::Denied),
    ] {
        assert_eq!(cache.lookup(&check, 0), Lookup::Hit(expect), "{check}");
    }
    assert_eq!(cache.stats().invalidations, 0, "{:?}", cache.stats());

    // The revocation, through another connection.
    let other = client(&node);
    let revoked = other
        .write("", &[revoke("document:d1#viewer@user:alice")])
        .await
        .unwrap();
    eventually("the cache stops answering ALLOWED", || async {
        !cache
            .check(&view("d1", "alice"))
            .await
            .unwrap()
            .permissionship
            .is_allowed()
    })
    .await;
    applied(&cache, revoked.revision()).await;
    assert_ne!(
        cache.lookup(&view("d1", "alice"), 0),
        Lookup::Hit(Permissionship::Allowed)
    );
    // Exactly that entry went: the others still answer locally.
    assert_eq!(
        cache.lookup(&view("d2", "bob"), 0),
        Lookup::Hit(Permissionship::Allowed)
    );
    assert_eq!(
        cache.lookup(&view("d1", "bob"), 0),
        Lookup::Hit(Permissionship::Denied)
    );
    let stats = cache.stats();
    assert_eq!(stats.invalidations, 1, "{stats:?}");
    assert!(stats.hits >= 3, "{stats:?}");
    // And the fresh answer is cached again.
    warm(&cache, &view("d1", "alice"), Permissionship::Denied).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_permission_always_goes_to_the_server() {
    let node = Node::start(tempfile::tempdir().unwrap(), free_port());
    let _writer = seeded(&node).await;
    let policy = CachePolicy::default().with_bound("document#view", Duration::ZERO);
    let cache = LocalCache::new(client(&node), "", policy);
    for _ in 0..5 {
        let answer = cache.check(&view("d1", "alice")).await.unwrap();
        assert_eq!(answer.source, AnswerSource::Server);
        assert!(answer.permissionship.is_allowed());
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.entries, stats.bypassed),
        (0, 0, 5),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_makes_the_cache_fail_closed_until_the_stream_resumes() {
    let port = free_port();
    let node = Node::start(tempfile::tempdir().unwrap(), port);
    let _writer = seeded(&node).await;
    let policy = CachePolicy {
        max_reconnect_backoff: Duration::from_millis(200),
        ..CachePolicy::default()
    };
    let cache = LocalCache::new(client(&node), "", policy);
    warm(&cache, &view("d1", "alice"), Permissionship::Allowed).await;
    warm(&cache, &view("d2", "bob"), Permissionship::Allowed).await;
    let position = cache.stats().position;

    let data = node.kill();
    eventually("entries stop answering once the stream is down", || async {
        cache.lookup(&view("d1", "alice"), 0) == Lookup::Stale
    })
    .await;
    // A check now goes to the (dead) server: an error, never a local ALLOWED.
    assert!(cache.check(&view("d1", "alice")).await.is_err());
    assert!(cache.stats().staleness_ms.is_none());

    let node = Node::start(data, port);
    // A revocation right after the restart, likely before the watcher is
    // back: the resumed stream must deliver it from the old position.
    let revoked = client(&node)
        .write("", &[revoke("document:d1#viewer@user:alice")])
        .await
        .unwrap();
    assert!(revoked.revision() > position);
    applied(&cache, revoked.revision()).await;
    assert_ne!(
        cache.lookup(&view("d1", "alice"), 0),
        Lookup::Hit(Permissionship::Allowed)
    );
    // The untouched entry answers again once a checkpoint proves the
    // resumed stream current.
    eventually("the untouched entry answers again", || async {
        cache.lookup(&view("d2", "bob"), 0) == Lookup::Hit(Permissionship::Allowed)
    })
    .await;
    let stats = cache.stats();
    assert!(stats.watch_connects >= 2, "{stats:?}");
    assert!(stats.stale >= 1, "{stats:?}");
    assert_eq!(
        cache
            .check(&view("d1", "alice"))
            .await
            .unwrap()
            .permissionship,
        Permissionship::Denied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_drops_every_entry() {
    let node = Node::start(tempfile::tempdir().unwrap(), free_port());
    let writer = seeded(&node).await;
    let cache = LocalCache::new(client(&node), "", CachePolicy::default());
    warm(&cache, &view("d1", "alice"), Permissionship::Allowed).await;
    warm(&cache, &view("d2", "alice"), Permissionship::Denied).await;
    assert_eq!(cache.stats().entries, 2);
    let z = writer
        .write_schema("", &format!("{SCHEMA}\ndefinition folder {{}}\n"))
        .await
        .unwrap();
    applied(&cache, z.revision()).await;
    let stats = cache.stats();
    assert_eq!((stats.entries, stats.invalidations), (0, 2), "{stats:?}");
    assert_eq!(cache.lookup(&view("d1", "alice"), 0), Lookup::Miss);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reads_its_own_writes_even_through_a_warm_cache() {
    let node = Node::start(tempfile::tempdir().unwrap(), free_port());
    let _writer = seeded(&node).await;
    let cache = Arc::new(LocalCache::new(client(&node), "", CachePolicy::default()));
    warm(&cache, &view("d9", "erin"), Permissionship::Denied).await;
    let session = Session::new(client(&node), "").with_cache(cache.clone());
    for round in 0..5 {
        let doc = format!("s{round}");
        let rel = format!("document:{doc}#viewer@user:erin");
        session.write(&[grant(&rel)]).await.unwrap();
        // No token passed by hand: the session's newest write is enough.
        assert!(
            session
                .check(&view(&doc, "erin"))
                .await
                .unwrap()
                .permissionship
                .is_allowed(),
            "round {round}"
        );
        let read = session
            .read(&Filter {
                resource_id: Some(doc.clone()),
                ..Filter::resource_type("document")
            })
            .await
            .unwrap();
        assert_eq!(read.len(), 1, "round {round}");
        assert_eq!(read[0].to_string(), rel);
    }
    // The warm entry grants nothing new: the session's write to d9 must
    // not be answered from the cached DENIED.
    session
        .write(&[grant("document:d9#viewer@user:erin")])
        .await
        .unwrap();
    assert!(session
        .check(&view("d9", "erin"))
        .await
        .unwrap()
        .permissionship
        .is_allowed());
    let listed = session
        .lookup_resources("document", "view", &"user:erin".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(listed.len(), 6, "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn footprints_on_the_wire_use_the_shared_key_derivation() {
    use verdict_client::pb;
    let node = Node::start(tempfile::tempdir().unwrap(), free_port());
    let _writer = seeded(&node).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut perm = pb::permission_service_client::PermissionServiceClient::new(channel);
    let ask = |with_footprint: bool| {
        let mut r = tonic::Request::new(pb::CheckRequest {
            resource: Some(pb::ObjectRef {
                object_type: "document".into(),
                object_id: "d1".into(),
            }),
            permission: "view".into(),
            subject: Some(pb::SubjectRef {
                object: Some(pb::ObjectRef {
                    object_type: "user".into(),
                    object_id: "alice".into(),
                }),
                optional_relation: String::new(),
            }),
            with_footprint,
            ..Default::default()
        });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {ADMIN}").parse().unwrap());
        r
    };
    let plain = perm.check(ask(false)).await.unwrap().into_inner();
    assert!(plain.footprint.is_none());
    let answer = perm.check(ask(true)).await.unwrap().into_inner();
    let footprint = answer
        .footprint
        .expect("a graph-only answer has a footprint");
    assert_eq!(footprint.tenant, "default");
    let mut sorted = footprint.keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, footprint.keys, "sorted and unique");
    let point = subject_key(
        "default",
        ObjectKey {
            object_type: "document",
            object_id: "d1",
            relation: "viewer",
        },
        SubjectKey {
            subject_type: "user",
            subject_id: "alice",
            subject_relation: None,
        },
    );
    assert!(footprint.keys.contains(&point), "{:?}", footprint.keys);
}
